"""An on-screen keyboard for touch screens: no hardware keyboard is needed to type a search,
a SKU, a barcode, a price or a code.

:class:`KeyboardManager` watches the application for a text field getting the focus and shows
a :class:`TouchKeyboard` along the bottom of that field's own window (a dialog or the main
window: a modal dialog blocks every other window, so the keyboard lives inside it).  Its keys
send real key events to the field, so validators, completers and ``textChanged`` behave exactly
as with a hardware keyboard.

The layout follows the field's ``keyboard`` property: ``"digits"`` (codes, prices, barcodes:
0-9, the decimal point where a price needs it), ``"text"`` (letters, digits and space; the
default), ``"search"`` (like text, Enter searches).  Chinese product names still need a hardware
keyboard (or a pinyin input method) in staff mode.
"""
from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QApplication,
    QGridLayout,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

ROWS_TEXT = ["1234567890", "QWERTYUIOP", "ASDFGHJKL-", "ZXCVBNM._"]
ROWS_DIGITS = ["123", "456", "789", ".0"]
BACKSPACE, ENTER, SPACE, HIDE, SHIFT = "⌫", "⏎", "␣", "⌨▾", "⇧"


def field_kind(widget) -> str:
    kind = widget.property("keyboard") if widget is not None else None
    return kind if kind in ("digits", "text", "search") else "text"


class TouchKeyboard(QWidget):
    """The keys; ``target`` is the field they type into."""

    hideRequested = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("TouchKeyboard")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.target = None
        self.kind = ""
        self.lower = True
        self.keys: dict[str, QPushButton] = {}
        self._grid = QGridLayout()
        self._grid.setSpacing(6)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(8, 8, 8, 8)
        lay.addLayout(self._grid)
        self.set_kind("text")

    # ------------------------------------------------------------ layout
    def set_kind(self, kind: str) -> None:
        if kind == self.kind:
            return
        self.kind = kind
        while self._grid.count():
            w = self._grid.takeAt(0).widget()
            if w is not None:
                w.deleteLater()
        self.keys = {}
        rows = ROWS_DIGITS if kind == "digits" else ROWS_TEXT
        for r, row in enumerate(rows):
            for c, ch in enumerate(row):
                self._key(ch, r, c)
        r = len(rows)
        if kind == "digits":
            self._key(BACKSPACE, 3, 2)
            self._key(ENTER, 4, 0, 1, 2)
            self._key(HIDE, 4, 2)
        else:
            self._key(SHIFT, r, 0, 1, 2)
            self._key(SPACE, r, 2, 1, 4)
            self._key(BACKSPACE, r, 6, 1, 2)
            self._key(ENTER, r, 8)
            self._key(HIDE, r, 9)
        self._relabel()

    def _key(self, ch: str, r: int, c: int, rs: int = 1, cs: int = 1) -> None:
        b = QPushButton(objectName="KeyboardKey")
        b.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # the field keeps the focus
        b.setAutoRepeat(ch == BACKSPACE)
        b.clicked.connect(lambda _c=False, k=ch: self.press(k))
        self._grid.addWidget(b, r, c, rs, cs)
        self.keys[ch] = b

    def _relabel(self) -> None:
        for ch, b in self.keys.items():
            text = {SPACE: self.tr("Space"), HIDE: "⌨▾", ENTER: "⏎", SHIFT: "⇧"}.get(ch, ch)
            if ch.isalpha() and len(ch) == 1:
                text = ch.lower() if self.lower else ch.upper()
            b.setText(text)

    # ------------------------------------------------------------- keys
    def press(self, ch: str) -> None:
        if ch == HIDE:
            self.hideRequested.emit()
            return
        if ch == SHIFT:
            self.lower = not self.lower
            self._relabel()
            return
        target = self.target
        if target is None:
            return
        if ch == BACKSPACE:
            key, text = Qt.Key.Key_Backspace, ""
        elif ch == ENTER:
            key, text = Qt.Key.Key_Return, "\r"
        elif ch == SPACE:
            key, text = Qt.Key.Key_Space, " "
        else:
            text = ch.lower() if (ch.isalpha() and self.lower) else ch
            key = Qt.Key(ord(ch.upper())) if ch.isalnum() else Qt.Key.Key_unknown
        for kind in (QEvent.Type.KeyPress, QEvent.Type.KeyRelease):
            QApplication.sendEvent(target, QKeyEvent(kind, key, Qt.KeyboardModifier.NoModifier,
                                                     text))

    def changeEvent(self, event) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self._relabel()
        super().changeEvent(event)


def _editable(widget) -> QWidget | None:
    """The text field behind ``widget`` (a line edit, or a spin box's), else None."""
    if widget is not None and widget.property("keyboard") == "none":
        return None
    if isinstance(widget, QLineEdit) and not widget.isReadOnly():
        if isinstance(widget.parentWidget(), QAbstractSpinBox):
            return None  # a spin box's own line edit: the spin box is the field
        return widget
    if isinstance(widget, QAbstractSpinBox) and not widget.isReadOnly():
        return widget
    return None


class KeyboardManager(QObject):
    """Shows the keyboard in the window of whichever text field has the focus."""

    def __init__(self, app: QApplication) -> None:
        super().__init__(app)
        self.app = app
        self.enabled = True
        self.boards: dict[int, TouchKeyboard] = {}  # per top-level window
        app.installEventFilter(self)

    def board_for(self, window: QWidget) -> TouchKeyboard:
        board = self.boards.get(id(window))
        if board is None or board.parent() is not window:
            board = TouchKeyboard(window)
            board.hideRequested.connect(lambda b=board: self._hide(b))
            board.destroyed.connect(lambda _o=None, k=id(window): self.boards.pop(k, None))
            self.boards[id(window)] = board
        return board

    def visible_board(self) -> TouchKeyboard | None:
        for b in self.boards.values():
            if b.isVisible():
                return b
        return None

    def _hide(self, board: TouchKeyboard) -> None:
        board.hide()
        board.target = None

    def show_for(self, field: QWidget) -> TouchKeyboard:
        window = field.window()
        board = self.board_for(window)
        board.set_kind(field_kind(field))
        board.target = field
        self.place(board)
        board.show()
        board.raise_()
        return board

    @staticmethod
    def place(board: TouchKeyboard) -> None:
        window = board.parentWidget()
        w, h = window.width(), window.height()
        rows = 5
        key = max(56, min(96, h // 12))
        height = min(int(h * 0.45), rows * (key + 6) + 16)
        width = w if board.kind != "digits" else min(w, max(360, 4 * (key * 2)))
        board.setGeometry((w - width) // 2, h - height, width, height)
        for b in board.keys.values():
            b.setMinimumHeight(min(key, (height - 16) // rows - 6))

    def eventFilter(self, obj, event) -> bool:
        if not self.enabled:
            return False
        t = event.type()
        if t == QEvent.Type.FocusIn and isinstance(obj, QWidget):
            field = _editable(obj)
            if field is not None and field.isVisible():
                self.show_for(field)
        elif t == QEvent.Type.FocusOut and isinstance(obj, QWidget) and _editable(obj):
            board = self.boards.get(id(obj.window()))
            if board is not None and board.target is obj:
                focus = QApplication.focusWidget()
                if focus is None or (_editable(focus) is None
                                     and not board.isAncestorOf(focus)):
                    self._hide(board)
        elif t == QEvent.Type.Resize and isinstance(obj, QWidget):
            board = self.boards.get(id(obj))
            if board is not None and board.isVisible():
                self.place(board)
        return False
