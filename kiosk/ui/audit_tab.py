"""Staff mode: the audit log and backups."""
from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from kiosk.money import format_price
from kiosk.ui.tasks import run_task
from kiosk.ui.i18n import retranslating as _retranslating

log = logging.getLogger(__name__)


@_retranslating
class AuditTab(QWidget):
    """The audit log, newest first (who changed what, before -> after), and the backup button."""

    backedUp = Signal(str)  # the backup folder
    backupFailed = Signal(str)
    COLS = 5
    LIMIT = 500

    def __init__(self, controller, parent=None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.table = QTableWidget(0, self.COLS)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setWordWrap(True)
        self.table.verticalHeader().setVisible(False)
        hh = self.table.horizontalHeader()
        hh.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        hh.setSectionResizeMode(self.COLS - 1, QHeaderView.ResizeMode.Stretch)
        self.refresh_button = QPushButton()
        self.refresh_button.clicked.connect(self.refresh)
        self.backup_button = QPushButton(objectName="PrimaryButton")
        self.backup_button.clicked.connect(self._ask_backup)
        self.message = QLabel(objectName="Hint")
        self.message.setWordWrap(True)
        self._msg = ("", "")
        lay = QVBoxLayout(self)
        lay.addWidget(self.table, 1)
        lay.addWidget(self.message)
        row = QHBoxLayout()
        row.addWidget(self.refresh_button)
        row.addStretch(1)
        row.addWidget(self.backup_button)
        lay.addLayout(row)
        controller.catalogueChanged.connect(self.refresh)
        self.retranslate()
        self.refresh()

    def retranslate(self) -> None:
        self.table.setHorizontalHeaderLabels([
            self.tr("Time"), self.tr("By"), self.tr("Action"), self.tr("Item"),
            self.tr("Before → after")])
        self.refresh_button.setText(self.tr("Refresh"))
        self.backup_button.setText(self.tr("Back up…"))
        kind, detail = self._msg
        self.message.setText({"": "", "saving": self.tr("Backing up…"),
                              "ok": self.tr("Backed up to %1"),
                              "error": self.tr("Not backed up: %1")}[kind].replace("%1", detail))
        if self.table.rowCount():
            self.refresh()

    # ------------------------------------------------------------------- the log
    def _role(self, role: str) -> str:
        return {"cashier": self.tr("Cashier"), "staff": self.tr("Staff"),
                "cli": self.tr("Command line"), "system": self.tr("System")}.get(role, role)

    def _action(self, action: str) -> str:
        return {
            "price": self.tr("Price changed"), "product_add": self.tr("Product added"),
            "product_update": self.tr("Product changed"),
            "product_delete": self.tr("Product deleted"), "activate": self.tr("Put on sale"),
            "deactivate": self.tr("Taken off sale"), "enrol": self.tr("Views enrolled"),
            "gallery_add": self.tr("Pictures added"), "gallery_import": self.tr("Gallery imported"),
            "reembed": self.tr("Pictures re-embedded"), "override": self.tr("Item corrected"),
            "remove": self.tr("Item removed"), "qty": self.tr("Quantity set"),
            "pin_set": self.tr("Staff PIN set"), "pin_lockout": self.tr("Staff mode locked"),
            "backup": self.tr("Backup"), "restore": self.tr("Restored from a backup"),
            "enrol_lookalike_confirmed": self.tr("Look-alike confirmed as a new product"),
            "cashier_added": self.tr("Cashier added"),
            "cashier_enabled": self.tr("Cashier enabled"),
            "cashier_disabled": self.tr("Cashier disabled"),
            "cashier_code_set": self.tr("Cashier code changed"),
            "cashier_badge_set": self.tr("Cashier badge changed"),
            "cashier_code_lockout": self.tr("Cashier codes locked"),
            "learn_view": self.tr("View learned from an answer"),
            "learn_view_queued": self.tr("Learned view waiting for approval"),
            "learn_view_approved": self.tr("Learned view approved"),
            "learn_view_undone": self.tr("Learned view undone"),
            "learn_view_purged": self.tr("Learned view deleted"),
            "learn_view_evicted": self.tr("Learned view dropped (view budget)"),
            "learn_view_refused": self.tr("Answer not learned (limit per cashier)"),
            "calibrate": self.tr("Operating point calibrated"),
            "model_swap": self.tr("Recognition model replaced (retrained)"),
        }.get(action, action)

    def _key(self, key: str) -> str:
        return {"price": self.tr("price"), "name": self.tr("name"), "sku": "SKU",
                "barcode": self.tr("barcode"), "active": self.tr("on sale"),
                "qty": self.tr("quantity"), "images": self.tr("pictures"),
                "pin_set": self.tr("PIN set"), "lockouts": self.tr("lockouts"),
                "locked_for_s": self.tr("locked (s)"), "files": self.tr("files"),
                "products": self.tr("products"), "schema_version": self.tr("schema version"),
                "lookalikes": self.tr("looks like"),
                "id": "ID", "enabled": self.tr("enabled"), "badge": self.tr("badge"),
                "code_set": self.tr("code set"),
                }.get(key, key)

    def _value(self, key: str, value, currency: str) -> str:
        if value is None:
            return self.tr("no price") if key == "price" else "–"
        if isinstance(value, bool):
            return self.tr("yes") if value else self.tr("no")
        if key == "price" and isinstance(value, int):
            return format_price(value, currency)
        if isinstance(value, (list, dict)):
            import json

            return json.dumps(value, ensure_ascii=False)
        return str(value)

    def _fields(self, data, currency: str, keys) -> str:
        if not isinstance(data, dict):
            return "–" if data is None else str(data)
        return ", ".join(f"{self._key(k)}: {self._value(k, data.get(k), currency)}"
                         for k in keys if k in data)

    def change_text(self, row: dict) -> str:
        """Before -> after of one audit row, in words (prices as money, on/off sale as yes/no)."""
        before, after = row.get("before"), row.get("after")
        currency = next((d.get("currency") for d in (after, before)
                         if isinstance(d, dict) and d.get("currency")), "CNY")
        if isinstance(before, dict) and isinstance(after, dict):
            keys = [k for k in dict.fromkeys([*before, *after]) if k != "currency"]
            same = [k for k in keys if before.get(k) == after.get(k)]
            moved = [k for k in keys if k not in same] or keys
            if len(moved) == 1:
                k = moved[0]
                return (f"{self._key(k)}: {self._value(k, before.get(k), currency)} → "
                        f"{self._value(k, after.get(k), currency)}")
            return f"{self._fields(before, currency, moved)} → {self._fields(after, currency, moved)}"
        if before is None and after is None:
            return ""
        if after is None:
            keys = [k for k in before if k != "currency"] if isinstance(before, dict) else []
            return f"{self._fields(before, currency, keys)} → –"
        keys = [k for k in after if k != "currency"] if isinstance(after, dict) else []
        return self._fields(after, currency, keys)  # something new: just what it is

    @staticmethod
    def _local_time(stamp: str) -> str:
        from datetime import datetime

        try:
            t = datetime.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S")
        except (TypeError, ValueError):
            return str(stamp)
        from datetime import timezone

        return t.replace(tzinfo=timezone.utc).astimezone().strftime("%Y-%m-%d %H:%M:%S")

    def rows(self) -> list[list[str]]:
        """The table as text, row by row (newest first)."""
        return [[self.table.item(r, c).text() for c in range(self.COLS)]
                for r in range(self.table.rowCount())]

    def refresh(self) -> None:
        catalog = self.controller.engine.catalog
        log_rows = catalog.audit_log(limit=self.LIMIT)
        names = {c["id"]: c["name"] for c in catalog.list_cashiers()}
        self.table.setRowCount(len(log_rows))
        for r, row in enumerate(log_rows):
            who = self._role(row["role"])
            if row.get("actor"):  # who exactly: the cashier's id and, if known, name
                who = " ".join([who, row["actor"], *filter(None, [names.get(row["actor"])])])
            cells = [self._local_time(row["time"]), who,
                     self._action(row["action"]), row["subject"] or "", self.change_text(row)]
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setData(Qt.ItemDataRole.UserRole, row["id"])
                if c == 4 and row.get("detail"):
                    item.setToolTip(str(row["detail"]))
                self.table.setItem(r, c, item)

    # -------------------------------------------------------------------- backup
    def default_backup_dir(self) -> Path:
        """DATA_DIR/backups: where the backup dialog starts."""
        return Path(self.controller.db_path).parent / "backups"

    def _ask_backup(self) -> None:
        from kiosk.catalog.backup import default_backup_name
        from kiosk.checkout.staff_actions import backup_folder

        base = backup_folder(self.controller.db_path)
        folder = QFileDialog.getExistingDirectory(self, self.tr("Back up to folder"), str(base))
        if folder:
            self.backup_to(Path(folder) / default_backup_name())

    def backup_to(self, dest: Path) -> None:
        """Write a backup to the new folder ``dest`` off the GUI thread."""
        from kiosk.catalog.backup import backup

        self.backup_button.setEnabled(False)
        self._msg = ("saving", "")
        self.retranslate()
        run_task(backup, self.controller.db_path, dest, role="staff",
                 catalog=self.controller.engine.catalog,
                 on_done=lambda _manifest: self._backed_up(str(dest)),
                 on_error=self._backup_failed)

    def _backed_up(self, dest: str) -> None:
        self.backup_button.setEnabled(True)
        self._msg = ("ok", dest)
        self.retranslate()
        self.refresh()
        self.backedUp.emit(dest)

    def _backup_failed(self, message: str) -> None:
        self.backup_button.setEnabled(True)
        self._msg = ("error", message)
        self.retranslate()
        self.backupFailed.emit(message)
