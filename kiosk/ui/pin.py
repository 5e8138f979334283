"""Staff PIN entry with a big numeric keypad (first use: create the PIN)."""
from __future__ import annotations

import time

from PySide6.QtCore import QEvent, Qt, QTimer
from PySide6.QtWidgets import QDialog, QGridLayout, QLabel, QPushButton, QVBoxLayout

MIN_PIN = 4
MAX_PIN = 8


class PinDialog(QDialog):
    """``accept()``s once the PIN is verified (or created and confirmed)."""

    def __init__(self, auth, parent=None, clock=time.time, allow_create: bool = True) -> None:
        super().__init__(parent)
        self.setObjectName("PinDialog")
        self.auth = auth
        self.clock = clock
        self.setModal(True)
        # no PIN yet: create it here, or (a store's kiosk) say how a technician sets it
        self.unset = not auth.has_pin() and not allow_create
        self.creating = not auth.has_pin() and allow_create
        self._first: str | None = None  # creating: the PIN typed the first time
        self._pin = ""
        self._message = ""  # a translated message, set by the last action
        self.title = QLabel(objectName="Title")
        self.title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.dots = QLabel()
        self.dots.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.dots.setStyleSheet("font-size: 34pt; letter-spacing: 8px; min-height: 56px;")
        self.message = QLabel(objectName="Hint")
        self.message.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.message.setWordWrap(True)
        grid = QGridLayout()
        grid.setSpacing(10)
        self.keys: dict[str, QPushButton] = {}
        for n, key in enumerate("123456789C0K"):
            b = QPushButton(objectName="KeypadButton")
            b.clicked.connect(lambda _c=False, k=key: self.press(k))
            grid.addWidget(b, n // 3, n % 3)
            self.keys[key] = b
        self.keys["K"].setObjectName("KeypadOk")
        self.cancel_button = QPushButton()
        self.cancel_button.clicked.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.setSpacing(12)
        lay.addWidget(self.title)
        lay.addWidget(self.dots)
        lay.addWidget(self.message)
        lay.addLayout(grid)
        lay.addWidget(self.cancel_button)
        self._lock_timer = QTimer(self, interval=500)
        self._lock_timer.timeout.connect(self._refresh_lock)
        self.retranslate()
        self._refresh_lock()

    # ---------------------------------------------------------------- texts
    def retranslate(self) -> None:
        self.setWindowTitle(self.tr("Staff"))
        if self.unset:
            self.title.setText(self.tr("No staff PIN yet"))
        elif self.creating:
            self.title.setText(self.tr("Create a staff PIN") if self._first is None
                               else self.tr("Enter the new PIN again"))
        else:
            self.title.setText(self.tr("Enter the staff PIN"))
        for key, b in self.keys.items():
            b.setText({"C": self.tr("Clear"), "K": self.tr("OK")}.get(key, key))
        self.cancel_button.setText(self.tr("Cancel"))
        self._show()

    def changeEvent(self, event) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(event)

    def _show(self) -> None:
        self.dots.setText("●" * len(self._pin) if self._pin else "–")
        if self.unset:
            text = self.tr("A technician sets the staff PIN on the kiosk PC with the "
                           "command:") + "\nkiosk staff-pin"
        elif self._message == "wrong":
            text = self.tr("Wrong PIN, try again.")
        elif self._message == "short":
            text = self.tr("The PIN needs at least %1 digits.").replace("%1", str(MIN_PIN))
        elif self._message == "mismatch":
            text = self.tr("The two PINs differ: start again.")
        elif self._message == "locked":
            left = max(0, round(self._locked_until() - self.clock()))
            text = self.tr("Too many wrong PINs: locked for %1 s.").replace("%1", str(left))
        elif self.creating:
            text = self.tr("First use: choose a PIN of %1 to %2 digits.").replace(
                "%1", str(MIN_PIN)).replace("%2", str(MAX_PIN))
        else:
            text = ""
        self.message.setText(text)

    # ---------------------------------------------------------------- lockout
    def _locked_until(self) -> float:
        try:
            until = self.auth.locked_until(self.clock())
        except Exception:  # noqa: BLE001
            return 0.0
        return float(until or 0.0)

    def locked(self) -> bool:
        return self._locked_until() > self.clock()

    def _refresh_lock(self) -> None:
        locked = not self.creating and self.locked()
        for b in self.keys.values():
            b.setEnabled(not locked and not self.unset)
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
    def press(self, key: str) -> None:
        if key == "C":
            self._pin = ""
        elif key == "K":
            self._submit()
            return
        elif len(self._pin) < MAX_PIN:
            self._pin += key
            if self._message in ("wrong", "short", "mismatch"):
                self._message = ""
        self._show()

    def enter(self, pin: str) -> None:
        """Type ``pin`` and press OK (as a finger would)."""
        self.keys["C"].click()
        for d in pin:
            self.keys[d].click()
        self.keys["K"].click()

    def _submit(self) -> None:
        pin, self._pin = self._pin, ""
        if self.unset:
            return
        if self.creating:
            if len(pin) < MIN_PIN:
                self._message = "short"
            elif self._first is None:
                self._first, self._message = pin, ""
                self.retranslate()
                return
            elif pin != self._first:
                self._first, self._message = None, "mismatch"
                self.retranslate()
                return
            else:
                self.auth.set_pin(pin)
                self.accept()
                return
            self._show()
            return
        if self.locked():
            self._refresh_lock()
            return
        if self.auth.verify(pin):
            self.accept()
            return
        self._message = "wrong"
        self._refresh_lock()
