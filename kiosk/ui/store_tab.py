"""Staff mode's Store tab (only with ``[store] server``): the store's kiosks and their calls.

* this kiosk: its name, the server, connected or the last error, changes waiting in its outbox;
* the store's kiosks as the server sees them (``kiosk store status``): last contact, changes
  not yet applied there and how long the oldest has waited (sync lag), outbox;
* the calls for the cashier open on every kiosk: kiosk, reason, waiting time; *Close call*
  closes the selected one everywhere.

The server is read on a worker thread every few seconds while the tab is shown.
"""
from __future__ import annotations

import logging

from PySide6.QtCore import QEvent, QTimer
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

log = logging.getLogger(__name__)


def _ago(seconds: float) -> str:
    s = float(seconds)
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


class StoreTab(QWidget):
    def __init__(self, controller, sync, parent=None) -> None:
        super().__init__(parent)
        self.controller, self.sync = controller, sync
        self._task = None
        self._kiosks: list[dict] = []
        self._kiosks_error = ""
        self._calls: list = []
        self.status = QLabel(wordWrap=True)
        self.kiosks_title = QLabel(objectName="Section")
        self.kiosks = QTableWidget(0, 5)
        self.calls_title = QLabel(objectName="Section")
        self.calls = QTableWidget(0, 3)
        for t in (self.kiosks, self.calls):
            t.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
            t.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
            t.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
            t.verticalHeader().setVisible(False)
            t.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.calls.itemSelectionChanged.connect(self._update_buttons)
        self.close_button = QPushButton()
        self.close_button.clicked.connect(self.close_selected)
        self.refresh_button = QPushButton()
        self.refresh_button.clicked.connect(self.refresh)
        buttons = QHBoxLayout()
        buttons.addWidget(self.close_button)
        buttons.addStretch(1)
        buttons.addWidget(self.refresh_button)
        lay = QVBoxLayout(self)
        lay.addWidget(self.status)
        lay.addWidget(self.calls_title)
        lay.addWidget(self.calls, 1)
        lay.addLayout(buttons)
        lay.addWidget(self.kiosks_title)
        lay.addWidget(self.kiosks, 1)
        self._timer = QTimer(self, interval=2000, timeout=self._auto_refresh)
        self._timer.start()
        self.retranslate()
        self._update_buttons()

    # ----------------------------------------------------------------- texts
    def title(self) -> str:
        return self.tr("Store")

    def reason_text(self, reason: str) -> str:
        return {"shopper": self.tr("Shopper asked for help"),
                "unknown": self.tr("Unknown item"),
                "unsure": self.tr("Unsure between products"),
                "unpriced": self.tr("Item without a price"),
                "camera": self.tr("Camera problem"),
                "printer": self.tr("Printer problem")}.get(reason, reason)

    def retranslate(self) -> None:
        self.kiosks_title.setText(self.tr("Kiosks of the store"))
        self.calls_title.setText(self.tr("Calls for the cashier on every kiosk"))
        self.kiosks.setHorizontalHeaderLabels([
            self.tr("Kiosk"), self.tr("Last contact"), self.tr("Changes behind"),
            self.tr("Sync lag"), self.tr("Outbox")])
        self.calls.setHorizontalHeaderLabels([self.tr("Kiosk"), self.tr("Reason"),
                                              self.tr("Waiting")])
        self.close_button.setText(self.tr("Close call"))
        self.refresh_button.setText(self.tr("Refresh"))
        tabs = self._tabs()
        if tabs is not None:
            tabs.setTabText(tabs.indexOf(self), self.title())
        self._show()

    def changeEvent(self, event) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(event)

    def _tabs(self) -> QTabWidget | None:
        w = self.parent()
        while w is not None and not isinstance(w, QTabWidget):
            w = w.parent()
        return w

    # ----------------------------------------------------------------- data
    def _auto_refresh(self) -> None:
        if self.isVisible():
            self.refresh()

    def refresh(self) -> None:
        from kiosk.sync.store_calls import open_store_calls

        try:
            self._calls = open_store_calls(self.controller.engine.catalog)
        except Exception:  # noqa: BLE001
            log.exception("reading the store's calls")
            self._calls = []
        if self._task is None:
            from kiosk.ui.tasks import run_task

            self._task = run_task(self._read_server, on_done=self._server_read,
                                  on_error=self._server_failed)
        self._show()

    def _read_server(self):
        from kiosk.sync.config import connect
        from kiosk.sync.status import store_status

        client = self.sync.client
        with connect(client.url, client._password, connect_timeout=3) as conn:
            return store_status(conn)["kiosks"]

    def _server_read(self, kiosks) -> None:
        self._task = None
        self._kiosks, self._kiosks_error = kiosks, ""
        self._show()

    def _server_failed(self, message: str) -> None:
        self._task = None
        self._kiosks_error = message.splitlines()[0] if message else "?"
        self._show()

    def _show(self) -> None:
        try:
            st = self.sync.status() if self.sync is not None else {}
        except Exception:  # noqa: BLE001 - the kiosk is closing
            st = {}
        if st.get("connected"):
            state = self.tr("connected")
        else:
            state = self.tr("not connected (%1): selling goes on, changes wait in the outbox"
                            ).replace("%1", st.get("last_error") or "…")
        self.status.setText(self.tr("This kiosk: %1 – server %2, %3; changes waiting to be "
                                    "sent: %4").replace("%1", str(st.get("kiosk_name", "?")))
                            .replace("%2", str(st.get("server", "?"))).replace("%3", state)
                            .replace("%4", str(st.get("pending", "?"))))
        self.calls.setRowCount(len(self._calls))
        for r, c in enumerate(self._calls):
            for col, text in enumerate((c.kiosk_name, self.reason_text(c.reason),
                                        _ago(c.waiting_s))):
                self.calls.setItem(r, col, QTableWidgetItem(text))
        rows = self._kiosks
        self.kiosks.setRowCount(len(rows))
        for r, k in enumerate(rows):
            for col, text in enumerate((
                    k["name"], _ago(k["seconds_since_contact"]), str(k["changes_behind"]),
                    _ago(k["lag_s"]) if k["changes_behind"] else "-", str(k["pending_outbox"]))):
                self.kiosks.setItem(r, col, QTableWidgetItem(text))
        if self._kiosks_error:
            self.kiosks_title.setText(self.tr("Kiosks of the store (server not reachable: %1)")
                                      .replace("%1", self._kiosks_error))
        else:
            self.kiosks_title.setText(self.tr("Kiosks of the store"))
        self._update_buttons()

    def _update_buttons(self) -> None:
        self.close_button.setEnabled(bool(self.calls.selectionModel().selectedRows()))

    def close_selected(self) -> bool:
        from kiosk.sync.store_calls import close_store_call

        rows = self.calls.selectionModel().selectedRows()
        if not rows or rows[0].row() >= len(self._calls):
            return False
        call = self._calls[rows[0].row()]
        ok = close_store_call(self.controller.engine.catalog, call, by=None, role="staff",
                              board=getattr(self.controller.session, "calls", None))
        self.sync.worker.poke()
        self.refresh()
        return ok


def add_store_tab(page) -> StoreTab | None:
    """Add the Store tab to a staff page when this kiosk syncs with a store server."""
    sync = getattr(page.controller, "store_sync", None)
    if sync is None:
        return None
    tab = StoreTab(page.controller, sync)
    page.store = tab
    page.tabs.addTab(tab, tab.title())
    return tab
