"""袋鼯麻麻 self-checkout kiosk.

The package reads as the recognition pipeline, one module (or sub-package) per stage:

    camera -> detect -> embed -> retrieve -> decide -> basket -> ui

``kiosk.engine`` wires the stages together; the Qt user interface only talks to the engine.
Nothing outside ``kiosk.ui`` imports Qt.
"""

__version__ = "0.1.0"
