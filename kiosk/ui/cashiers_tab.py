"""Staff mode's cashier accounts: list, add (code typed twice, optional badge), disable or
enable, a new code.  Every change goes through :class:`kiosk.checkout.cashier_auth.CashierAuth`, which
checks, writes and audits it (role "staff")."""
from __future__ import annotations

from PySide6.QtCore import QEvent, QRegularExpression, Qt, Signal
from PySide6.QtGui import QRegularExpressionValidator
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from kiosk.checkout.cashier_auth import MAX_CODE, CashierAuth, CodeFormatError, check_code


def _code_field() -> QLineEdit:
    field = QLineEdit()
    field.setProperty("keyboard", "digits")
    field.setEchoMode(QLineEdit.EchoMode.Password)
    field.setMaxLength(MAX_CODE)
    field.setValidator(QRegularExpressionValidator(QRegularExpression(f"[0-9]{{0,{MAX_CODE}}}"),
                                                   field))
    return field


class CashiersTab(QWidget):
    """``changed`` is emitted after every successful change."""

    changed = Signal()
    COLS = 4

    def __init__(self, controller, parent=None, *, auth: CashierAuth | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self._auth = auth
        self._msg: tuple[str, str] = ("", "")  # (kind, detail) of the last action
        self.table = QTableWidget(0, self.COLS)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(48)
        hh = self.table.horizontalHeader()
        hh.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        hh.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.active_button = QPushButton()
        self.active_button.clicked.connect(self.toggle_active)
        self.code_button = QPushButton()
        self.code_button.clicked.connect(self._ask_code)

        self.add_box = QGroupBox()
        self.id_field = QLineEdit()
        self.id_field.setMaxLength(32)
        self.name_field = QLineEdit()
        self.name_field.setMaxLength(64)
        self.code_field = _code_field()
        self.again_field = _code_field()
        self.badge_field = QLineEdit()
        self.badge_field.setEchoMode(QLineEdit.EchoMode.Password)  # a badge is a secret too
        self.add_button = QPushButton(objectName="PrimaryButton")
        self.add_button.clicked.connect(self.add_from_form)
        self.form = QFormLayout(self.add_box)
        self.labels = [QLabel() for _ in range(5)]
        for label, field in zip(self.labels, (self.id_field, self.name_field, self.code_field,
                                              self.again_field, self.badge_field)):
            self.form.addRow(label, field)
        self.form.addRow(self.add_button)

        self.message = QLabel(objectName="Hint")
        self.message.setWordWrap(True)
        lay = QVBoxLayout(self)
        lay.addWidget(self.table, 1)
        row = QHBoxLayout()
        row.addWidget(self.active_button)
        row.addWidget(self.code_button)
        row.addStretch(1)
        lay.addLayout(row)
        lay.addWidget(self.message)
        lay.addWidget(self.add_box)
        self.retranslate()
        self.refresh()

    @property
    def auth(self) -> CashierAuth:
        if self._auth is None:
            cfg = getattr(getattr(self.controller, "settings", None), "cashier", None)
            kw = {} if cfg is None else {"max_attempts": cfg.max_code_attempts,
                                         "lockout_s": cfg.lockout_s}
            self._auth = CashierAuth(self.controller.engine.catalog, **kw)
        return self._auth

    # ---------------------------------------------------------------- texts
    def retranslate(self) -> None:
        self.table.setHorizontalHeaderLabels([self.tr("ID"), self.tr("Name"), self.tr("Active"),
                                              self.tr("Badge")])
        self.add_box.setTitle(self.tr("Add a cashier"))
        for label, text in zip(self.labels, (
                self.tr("ID (such as C001)"), self.tr("Name"), self.tr("Code (4-8 digits)"),
                self.tr("Code again"), self.tr("Badge (optional)"))):
            label.setText(text)
        self.badge_field.setPlaceholderText(
            self.tr("scan the card's barcode or QR code, or type its text"))
        self.add_button.setText(self.tr("Add cashier"))
        self.code_button.setText(self.tr("New code…"))
        self._update_buttons()
        self._show_message()
        if self.table.rowCount():
            self.refresh()

    def changeEvent(self, event) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(event)

    def _say(self, kind: str, detail: str = "") -> None:
        self._msg = (kind, detail)
        self._show_message()

    def _show_message(self) -> None:
        kind, detail = self._msg
        self.message.setText({
            "": "",
            "added": self.tr("Cashier %1 added."),
            "disabled": self.tr("Cashier %1 disabled: their code and badge no longer work."),
            "enabled": self.tr("Cashier %1 enabled again."),
            "code_set": self.tr("New code set for cashier %1."),
            "differ": self.tr("The two codes differ: type them again."),
            "format": self.tr("A cashier code has 4 to 8 digits."),
            "error": self.tr("Not changed: %1"),
        }[kind].replace("%1", detail))

    # ---------------------------------------------------------------- the list
    def refresh(self) -> None:
        selected = self.selected_id()
        cashiers = self.auth.list()
        self.table.setRowCount(len(cashiers))
        for r, c in enumerate(cashiers):
            cells = [c.id, c.name, self.tr("yes") if c.active else self.tr("no"),
                     self.tr("yes") if c.has_badge else self.tr("no")]
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setData(Qt.ItemDataRole.UserRole, c.id)
                self.table.setItem(r, col, item)
            if c.id == selected:
                self.table.selectRow(r)
        self._update_buttons()

    def rows(self) -> list[list[str]]:
        return [[self.table.item(r, c).text() for c in range(self.COLS)]
                for r in range(self.table.rowCount())]

    def select(self, cashier_id: str) -> bool:
        for r in range(self.table.rowCount()):
            if self.table.item(r, 0).text() == cashier_id:
                self.table.selectRow(r)
                return True
        return False

    def selected_id(self) -> str | None:
        model = self.table.selectionModel()
        rows = model.selectedRows() if model else []
        if not rows:
            return None
        item = self.table.item(rows[0].row(), 0)
        return item.text() if item else None

    def _update_buttons(self) -> None:
        cid = self.selected_id()
        cashier = self.auth.get(cid) if cid else None
        self.active_button.setEnabled(cashier is not None)
        self.code_button.setEnabled(cashier is not None)
        self.active_button.setText(self.tr("Disable") if cashier is None or cashier.active
                                   else self.tr("Enable"))

    # ---------------------------------------------------------------- actions
    def add_from_form(self) -> bool:
        """Add the cashier typed in the form; True when added (the form is then cleared)."""
        code, again = self.code_field.text(), self.again_field.text()
        if code != again:
            self.again_field.clear()
            self._say("differ")
            return False
        try:
            check_code(code)
        except CodeFormatError:
            self._say("format")
            return False
        badge = self.badge_field.text().strip() or None
        try:
            cashier = self.auth.add(self.id_field.text(), self.name_field.text(), code, badge,
                                    role="staff")
        except ValueError as exc:
            self._say("error", str(exc))
            return False
        for field in (self.id_field, self.name_field, self.code_field, self.again_field,
                      self.badge_field):
            field.clear()
        self.refresh()
        self.select(cashier.id)
        self._say("added", f"{cashier.id} ({cashier.name})")
        self.changed.emit()
        return True

    def toggle_active(self) -> None:
        cid = self.selected_id()
        cashier = self.auth.get(cid) if cid else None
        if cashier is None:
            return
        self.auth.set_active(cashier.id, not cashier.active, role="staff")
        self.refresh()
        self._say("enabled" if not cashier.active else "disabled", cashier.id)
        self.changed.emit()

    def set_code(self, cashier_id: str, code: str, again: str) -> bool:
        if code != again:
            self._say("differ")
            return False
        try:
            self.auth.set_code(cashier_id, code, role="staff")
        except CodeFormatError:
            self._say("format")
            return False
        except ValueError as exc:
            self._say("error", str(exc))
            return False
        self._say("code_set", cashier_id)
        self.changed.emit()
        return True

    def _ask_code(self) -> None:
        cid = self.selected_id()
        if cid is None:
            return
        codes = []
        for prompt in (self.tr("New code for cashier %1 (4-8 digits):").replace("%1", cid),
                       self.tr("The same code again:")):
            text, ok = QInputDialog.getText(self, self.tr("New code…"), prompt,
                                            QLineEdit.EchoMode.Password)
            if not ok:
                return
            codes.append(text.strip())
        self.set_code(cid, *codes)
