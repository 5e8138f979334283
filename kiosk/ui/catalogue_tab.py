"""Staff mode: the catalogue (prices, on/off sale, delete); it refreshes on the catalogue's
events."""
from __future__ import annotations

import logging

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from kiosk.money import format_amount, format_price, parse_price
from kiosk.ui.images import product_thumbnail
from kiosk.ui.i18n import retranslating as _retranslating

log = logging.getLogger(__name__)


@_retranslating
class CatalogueTab(QWidget):
    COLS = 6

    def __init__(self, controller, parent=None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.filter = QLineEdit()
        self.filter.setClearButtonEnabled(True)
        self.filter.textChanged.connect(self.refresh)
        self.table = QTableWidget(0, self.COLS)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(72)
        self.table.setIconSize(QSize(64, 64))
        hh = self.table.horizontalHeader()
        hh.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        hh.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.price_button = QPushButton()
        self.price_button.clicked.connect(self._ask_price)
        self.active_button = QPushButton()
        self.active_button.clicked.connect(self.toggle_active)
        self.delete_button = QPushButton(objectName="DangerButton")
        self.delete_button.clicked.connect(self._ask_delete)
        self.message = QLabel(objectName="Hint")
        lay = QVBoxLayout(self)
        lay.addWidget(self.filter)
        lay.addWidget(self.table, 1)
        lay.addWidget(self.message)
        row = QHBoxLayout()
        row.addWidget(self.price_button)
        row.addWidget(self.active_button)
        row.addStretch(1)
        row.addWidget(self.delete_button)
        lay.addLayout(row)
        controller.catalogueChanged.connect(self.refresh)
        self.retranslate()
        self.refresh()

    def retranslate(self) -> None:
        self.filter.setPlaceholderText(self.tr("Filter by name, SKU or barcode"))
        self.table.setHorizontalHeaderLabels([
            self.tr("Picture"), self.tr("Name"), self.tr("SKU"), self.tr("Price"),
            self.tr("Views"), self.tr("On sale")])
        self.price_button.setText(self.tr("Change price"))
        self.delete_button.setText(self.tr("Delete product"))
        self._update_buttons()
        if self.table.rowCount():
            self.refresh()

    @property
    def catalog(self):
        return self.controller.engine.catalog

    def refresh(self) -> None:
        text = self.filter.text().strip()
        cat = self.catalog
        products = (cat.search_products(text, active_only=False, limit=500) if text
                    else cat.list_products(active_only=False))
        counts = cat.gallery_counts()
        selected = self.selected_sku()
        self.table.setRowCount(len(products))
        for r, p in enumerate(products):
            thumb = QTableWidgetItem()
            pix = product_thumbnail(cat, p.sku, 64)
            if pix is not None:
                thumb.setIcon(QIcon(pix))
            cells = [thumb, QTableWidgetItem(p.name), QTableWidgetItem(p.sku),
                     QTableWidgetItem(format_price(p.price, p.currency) if p.price is not None
                                      else self.tr("no price")),
                     QTableWidgetItem(str(counts.get(p.sku, 0))),
                     QTableWidgetItem(self.tr("yes") if p.active else self.tr("no"))]
            for c, cell in enumerate(cells):
                cell.setData(Qt.ItemDataRole.UserRole, p.sku)
                self.table.setItem(r, c, cell)
            if p.sku == selected:
                self.table.selectRow(r)
        self._update_buttons()

    def skus(self) -> list[str]:
        return [self.table.item(r, 2).text() for r in range(self.table.rowCount())]

    def select(self, sku: str) -> bool:
        for r in range(self.table.rowCount()):
            if self.table.item(r, 2).text() == sku:
                self.table.selectRow(r)
                return True
        return False

    def selected_sku(self) -> str | None:
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        if not rows:
            return None
        item = self.table.item(rows[0].row(), 2)
        return item.text() if item else None

    def _update_buttons(self) -> None:
        sku = self.selected_sku()
        p = self.catalog.get_product(sku) if sku else None
        for b in (self.price_button, self.active_button, self.delete_button):
            b.setEnabled(p is not None)
        self.active_button.setText(self.tr("Take off sale") if (p is None or p.active)
                                   else self.tr("Put on sale"))

    # -------------------------------------------------------------- actions
    def set_price(self, sku: str, text: str) -> None:
        fen = parse_price(text) if text.strip() else None
        self.controller.engine.set_price(sku, fen, role="staff")  # refreshes by its event
        self.message.setText(self.tr("Price changed."))

    def _ask_price(self) -> None:
        sku = self.selected_sku()
        p = self.catalog.get_product(sku) if sku else None
        if p is None:
            return
        current = format_amount(p.price) if p.price is not None else ""
        text, ok = QInputDialog.getText(self, self.tr("Change price"),
                                        self.tr("New price of %1 (yuan):").replace("%1", p.name),
                                        QLineEdit.EchoMode.Normal, current)
        if ok:
            try:
                self.set_price(sku, text)
            except ValueError as exc:
                QMessageBox.warning(self, self.tr("Change price"), str(exc))

    def toggle_active(self) -> None:
        sku = self.selected_sku()
        p = self.catalog.get_product(sku) if sku else None
        if p is None:
            return
        self.controller.engine.set_active(sku, not p.active, role="staff")
        self.message.setText(self.tr("Taken off sale.") if p.active else self.tr("On sale again."))

    def delete(self, sku: str) -> None:
        from kiosk.checkout.staff_actions import delete_product

        delete_product(self.controller.engine, sku, role="staff")
        self.message.setText(self.tr("Deleted %1.").replace("%1", sku))

    def _ask_delete(self) -> None:
        sku = self.selected_sku()
        p = self.catalog.get_product(sku) if sku else None
        if p is None:
            return
        answer = QMessageBox.question(
            self, self.tr("Delete product"),
            self.tr("Delete %1 (%2) and all its pictures? This cannot be undone.")
            .replace("%1", p.name).replace("%2", p.sku))
        if answer == QMessageBox.StandardButton.Yes:
            self.delete(sku)
