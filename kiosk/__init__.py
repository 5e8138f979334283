"""袋鼯麻麻 self-checkout kiosk.

The package reads as the recognition pipeline, one module (or sub-package) per stage:

    camera -> detect -> embed -> retrieve -> decide -> basket -> ui

``kiosk.engine`` wires the stages together; ``kiosk.assemble`` builds every part from the
settings (the composition root).  The layers, each importing only those below it (checked by
import-linter: ``[tool.importlinter]`` in pyproject.toml, tests/test_contracts.py):

    kiosk.__main__ (the program entry: the only module above both user interfaces)
    -> kiosk.ui (Qt) | kiosk.cli -> kiosk.tools -> kiosk.assemble
    -> kiosk.checkout | kiosk.sync -> kiosk.engine -> the stages -> kiosk.catalog -> storage

Nothing outside ``kiosk.ui`` and the entry imports Qt; nothing but the command line and the
entry imports ``kiosk.tools``; there are no import cycles.
"""

import os as _os

# numpy's OpenBLAS starts a thread per core for every matrix product and keeps them spinning
# for a while after it.  Beside Paddle's own threads on a kiosk's few cores they only slow
# each other: on the 2-core host a 5-item tray went 172 -> 130 ms to the receipt, and its
# retrieve + decide p95 100 -> 6 ms, with one thread (as faiss, kiosk.retrieve).  Read when
# numpy is first imported, so it holds for the kiosk's programs, which import this package
# first; a value already in the environment is kept.
_os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"
