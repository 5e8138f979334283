"""A cashier proves who they are: their code on a big on-screen keypad (or a hardware
keyboard).  The look is the staff PIN dialog's (kiosk/ui/pin.py: Title, Hint, KeypadButton,
KeypadOk); the rules are :class:`kiosk.checkout.cashier_auth.CashierAuth`'s."""
from __future__ import annotations

from PySide6.QtCore import QEvent, QRegularExpression, Qt, QTimer, Signal
from PySide6.QtGui import QRegularExpressionValidator
from PySide6.QtWidgets import (
    QDialog,
    QGridLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
)

from kiosk.checkout.cashier_auth import MAX_CODE, MIN_CODE

KEY_SIZE = 72  # px: a finger-sized key even without the kiosk's style sheet
BACKSPACE = "⌫"


class CashierCodeDialog(QDialog):
    """Modal keypad; on a right code emits ``cashierAccepted(Cashier)`` and ``accept()``s.
    A wrong code, or a lockout, is said in plain words and the dialog stays open."""

    cashierAccepted = Signal(object)  # kiosk.checkout.cashier_auth.Cashier

    def __init__(self, auth, parent=None, clock=None) -> None:
        super().__init__(parent)
        self.setObjectName("CashierCodeDialog")
        self.setModal(True)
        self.auth = auth
        self.clock = clock or auth.clock
        self.cashier = None  # the Cashier, once accepted
        self._message = ""  # what the last action said: "", "wrong", "short", "locked"
        self.title = QLabel(objectName="Title")
        self.title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.field = QLineEdit()
        self.field.setProperty("keyboard", "none")  # the keypad is its own keyboard
        self.field.setEchoMode(QLineEdit.EchoMode.Password)
        self.field.setMaxLength(MAX_CODE)
        self.field.setValidator(QRegularExpressionValidator(
            QRegularExpression(f"[0-9]{{0,{MAX_CODE}}}"), self.field))
        self.field.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.field.setMinimumHeight(KEY_SIZE)
        self.field.setStyleSheet("font-size: 28pt; letter-spacing: 6px;")
        self.field.returnPressed.connect(self.submit)
        self.field.textEdited.connect(self._typed)
        self.message = QLabel(objectName="Hint")
        self.message.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.message.setWordWrap(True)
        grid = QGridLayout()
        grid.setSpacing(10)
        self.keys: dict[str, QPushButton] = {}
        for n, key in enumerate([*"123456789", BACKSPACE, "0", "OK"]):
            b = QPushButton(objectName="KeypadOk" if key == "OK" else "KeypadButton")
            b.setMinimumSize(KEY_SIZE + 24, KEY_SIZE)
            b.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # typing stays in the field
            b.setAutoDefault(False)
            b.clicked.connect(lambda _c=False, k=key: self.press(k))
            grid.addWidget(b, n // 3, n % 3)
            self.keys[key] = b
        self.cancel_button = QPushButton()
        self.cancel_button.setMinimumHeight(KEY_SIZE)
        self.cancel_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.cancel_button.setAutoDefault(False)
        self.cancel_button.clicked.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.setSpacing(12)
        lay.addWidget(self.title)
        lay.addWidget(self.field)
        lay.addWidget(self.message)
        lay.addLayout(grid)
        lay.addWidget(self.cancel_button)
        self._lock_timer = QTimer(self, interval=500)
        self._lock_timer.timeout.connect(self._refresh_lock)
        self.field.setFocus()
        self.retranslate()
        self._refresh_lock()

    # ---------------------------------------------------------------- texts
    def retranslate(self) -> None:
        self.setWindowTitle(self.tr("Cashier"))
        self.title.setText(self.tr("Cashier: enter your code"))
        self.keys["OK"].setText(self.tr("OK"))
        self.keys[BACKSPACE].setText(BACKSPACE)
        self.keys[BACKSPACE].setToolTip(self.tr("Delete the last digit"))
        self.cancel_button.setText(self.tr("Cancel"))
        self._show()

    def changeEvent(self, event) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(event)

    def _show(self) -> None:
        if self._message == "wrong":
            text = self.tr("Wrong code, try again.")
        elif self._message == "short":
            text = self.tr("A cashier code has %1 to %2 digits.").replace(
                "%1", str(MIN_CODE)).replace("%2", str(MAX_CODE))
        elif self._message == "locked":
            left = max(1, round(self._locked_until() - self.clock()))
            text = self.tr("Too many wrong codes: locked for %1 s.").replace("%1", str(left))
        else:
            text = ""
        self.message.setText(text)

    # ---------------------------------------------------------------- lockout
    def _locked_until(self) -> float:
        try:
            until = self.auth.locked_until(self.clock())
        except Exception:  # noqa: BLE001 - a catalogue error must not leave the pad stuck
            return 0.0
        return float(until or 0.0)

    def locked(self) -> bool:
        return self._locked_until() > self.clock()

    def _refresh_lock(self) -> None:
        locked = self.locked()
        for b in self.keys.values():
            b.setEnabled(not locked)
        self.field.setReadOnly(locked)
        if locked:
            self._message = "locked"
            if not self._lock_timer.isActive():
                self._lock_timer.start()
        else:
            if self._message == "locked":
                self._message = ""
            self._lock_timer.stop()
        self._show()

    # ---------------------------------------------------------------- input
    @property
    def code(self) -> str:
        return self.field.text()

    def _typed(self, _text: str) -> None:
        if self._message in ("wrong", "short"):
            self._message = ""
            self._show()

    def press(self, key: str) -> None:
        if key == "OK":
            self.submit()
            return
        if self.field.isReadOnly():
            return
        if key == BACKSPACE:
            self.field.backspace()
        elif len(self.field.text()) < MAX_CODE:
            self.field.insert(key)
        self._typed(self.field.text())

    def enter(self, code: str) -> None:
        """Type ``code`` on the keypad and press OK (as a finger would)."""
        self.field.clear()
        for d in code:
            self.keys[d].click()
        self.keys["OK"].click()

    def submit(self) -> None:
        code = self.field.text()
        self.field.clear()
        if self.locked():
            self._refresh_lock()
            return
        if len(code) < MIN_CODE:
            self._message = "short" if code else ""
            self._show()
            return
        cashier = self.auth.verify_code(code)
        if cashier is not None:
            self.cashier = cashier
            self._message = ""
            self.cashierAccepted.emit(cashier)
            self.accept()
            return
        self._message = "wrong"
        self._refresh_lock()
