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

__version__ = "0.1.0"
