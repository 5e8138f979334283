"""Staff mode's learned views: the kiosk's own camera views learned from cashier answers (see
:mod:`kiosk.checkout.learn`), newest first, with picture, product, source, cashier, time and status;
approve a queued one, undo one (out of the gallery at once, the picture kept) or purge one (out
and deleted).  Every action goes through :class:`kiosk.checkout.learn.Learner`, which audits it (role
"staff")."""
from __future__ import annotations

from PySide6.QtCore import QEvent, QSize, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from kiosk.ui.images import file_thumbnail

THUMB = 64


class LearnedTab(QWidget):
    """``changed`` is emitted after every successful action."""

    changed = Signal()
    COLS = 7  # picture, product, source, cashier, time, status, was recognised as
    FILTERS = ("pending", "approved", "undone", "all")

    def __init__(self, controller, parent=None, *, learner=None) -> None:
        super().__init__(parent)
        self.controller = controller
        self._learner = learner
        self._msg: tuple[str, str] = ("", "")
        self.filter = QComboBox()
        self.filter.currentIndexChanged.connect(lambda _i: self.refresh())
        self.filter_label = QLabel()
        self.table = QTableWidget(0, self.COLS)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setIconSize(QSize(THUMB, THUMB))
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(THUMB + 8)
        hh = self.table.horizontalHeader()
        hh.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        hh.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.approve_button = QPushButton(objectName="PrimaryButton")
        self.approve_button.clicked.connect(lambda: self._act("approve"))
        self.undo_button = QPushButton()
        self.undo_button.clicked.connect(lambda: self._act("undo"))
        self.purge_button = QPushButton()
        self.purge_button.clicked.connect(lambda: self._act("purge"))
        self.message = QLabel(objectName="Hint")
        self.message.setWordWrap(True)
        top = QHBoxLayout()
        top.addWidget(self.filter_label)
        top.addWidget(self.filter)
        top.addStretch(1)
        buttons = QHBoxLayout()
        for b in (self.approve_button, self.undo_button, self.purge_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(self.table, 1)
        lay.addLayout(buttons)
        lay.addWidget(self.message)
        self.retranslate()
        events = getattr(controller, "catalogEvent", None)
        if events is not None:  # views learned or reviewed elsewhere (the till, the learner)
            events.connect(self._on_catalog_event)

    def _on_catalog_event(self, event) -> None:
        from kiosk.catalog import events as ev

        if event.kind in (ev.VIEWS_LEARNED, ev.VIEWS_REMOVED, ev.PRODUCT_DELETED) \
                and self.isVisible():
            self.refresh()

    @property
    def learner(self):
        """The checkout's own learner (its policy), else one on the controller's engine."""
        if self._learner is None:
            from kiosk.checkout.learn import Learner, LearnPolicy

            hook = getattr(getattr(self.controller, "session", None), "on_answer", None)
            if isinstance(hook, Learner):
                self._learner = hook
            else:
                self._learner = Learner(self.controller.engine, LearnPolicy.from_settings(
                    getattr(self.controller, "settings", None)))
        return self._learner

    # ---------------------------------------------------------------- texts
    def retranslate(self) -> None:
        self.filter_label.setText(self.tr("Show"))
        current = self.filter.currentIndex()
        self.filter.blockSignals(True)
        self.filter.clear()
        for text in (self.tr("Waiting for approval"), self.tr("In the gallery"),
                     self.tr("Undone"), self.tr("All")):
            self.filter.addItem(text)
        self.filter.setCurrentIndex(max(0, current))
        self.filter.blockSignals(False)
        self.table.setHorizontalHeaderLabels([
            self.tr("Picture"), self.tr("Product"), self.tr("Source"), self.tr("Cashier"),
            self.tr("Time"), self.tr("Status"), self.tr("Recognised as")])
        self.approve_button.setText(self.tr("Approve"))
        self.undo_button.setText(self.tr("Undo"))
        self.purge_button.setText(self.tr("Delete for good"))
        self._show_message()
        if self.isVisible():  # (a hidden tab re-reads its rows when it is shown again)
            self.refresh()

    def changeEvent(self, event) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(event)

    def _source_text(self, source: str) -> str:
        return {"cashier": self.tr("cashier"), "shopper": self.tr("shopper's choice"),
                "barcode": self.tr("barcode"), "paid": self.tr("paid item")}.get(source, source)

    def _status_text(self, status: str) -> str:
        return {"pending": self.tr("waiting for approval"), "approved": self.tr("in the gallery"),
                "undone": self.tr("undone"), "evicted": self.tr("dropped (view budget)"),
                "purged": self.tr("deleted")}.get(status, status)

    def _say(self, kind: str, detail: str = "") -> None:
        self._msg = (kind, detail)
        self._show_message()

    def _show_message(self) -> None:
        kind, detail = self._msg
        self.message.setText({
            "": self.tr("Views the kiosk learned from the cashier's answers, from its own "
                        "camera. Undo takes a view out of the gallery at once."),
            "approve": self.tr("View %1 approved: it is recognised from now on."),
            "undo": self.tr("View %1 undone: it is no longer used for recognition."),
            "purge": self.tr("View %1 deleted for good."),
            "error": self.tr("Not changed: %1"),
        }[kind].replace("%1", detail))

    # ---------------------------------------------------------------- the list
    def status_filter(self):
        kind = self.FILTERS[max(0, self.filter.currentIndex())]
        return None if kind == "all" else kind

    def refresh(self) -> None:
        engine = getattr(self.controller, "engine", None)
        if engine is None:
            return
        selected = self.selected_id()
        views = engine.catalog.learned_views(status=self.status_filter(), limit=500)
        self.table.setRowCount(len(views))
        for r, v in enumerate(views):
            p = engine.lookup_product(v["sku"])
            was = v["decided_sku"] or self.tr("unknown")
            cells = ["", f"{v['sku']}  {p.name if p else ''}", self._source_text(v["source"]),
                     v["actor"] or "", (v["created_at"] or "")[:19].replace("T", " "),
                     self._status_text(v["status"]), was]
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setData(Qt.ItemDataRole.UserRole, int(v["id"]))
                self.table.setItem(r, col, item)
            pix = file_thumbnail(v["picture"], THUMB) if v["status"] not in (
                "purged", "evicted") else None
            if pix is not None:
                self.table.item(r, 0).setIcon(pix)
            if v["id"] == selected:
                self.table.selectRow(r)
        self._update_buttons()

    def rows(self) -> list[list[str]]:
        return [[self.table.item(r, c).text() for c in range(1, self.COLS)]
                for r in range(self.table.rowCount())]

    def select(self, view_id: int) -> bool:
        for r in range(self.table.rowCount()):
            if self.table.item(r, 0).data(Qt.ItemDataRole.UserRole) == view_id:
                self.table.selectRow(r)
                return True
        return False

    def selected_id(self) -> int | None:
        model = self.table.selectionModel()
        rows = model.selectedRows() if model else []
        if not rows:
            return None
        item = self.table.item(rows[0].row(), 0)
        return item.data(Qt.ItemDataRole.UserRole) if item else None

    def _update_buttons(self) -> None:
        vid = self.selected_id()
        engine = getattr(self.controller, "engine", None)
        v = engine.catalog.get_learned_view(vid) if vid is not None and engine else None
        status = v["status"] if v else None
        self.approve_button.setEnabled(status in ("pending", "undone"))
        self.undo_button.setEnabled(status in ("pending", "approved"))
        self.purge_button.setEnabled(status in ("pending", "approved", "undone"))

    # ---------------------------------------------------------------- actions
    def act(self, action: str, view_id: int) -> bool:
        """Approve, undo or purge learned view ``view_id`` (audited as staff)."""
        try:
            getattr(self.learner, action)(view_id, role="staff")
        except (ValueError, KeyError, OSError) as exc:
            self._say("error", str(exc))
            return False
        self.refresh()
        self._say(action, str(view_id))
        self.changed.emit()
        return True

    def _act(self, action: str) -> None:
        vid = self.selected_id()
        if vid is not None:
            self.act(action, vid)
