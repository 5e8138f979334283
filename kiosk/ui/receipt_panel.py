"""The live itemised receipt and the big total with the Finish button."""
from __future__ import annotations

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
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


class ReceiptPanel(QWidget):
    finishClicked = Signal()
    lineClicked = Signal(str)  # sku of the tapped receipt line

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("ReceiptPanel")
        self._receipt = None
        self._needs_cashier = False
        self._stale = False
        self.title = QLabel(objectName="Title")
        self.table = QTableWidget(0, 4)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.table.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(52)
        self.table.setWordWrap(False)
        self.table.cellClicked.connect(self._on_cell)
        hh = self.table.horizontalHeader()
        hh.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for c in (1, 2, 3):
            hh.setSectionResizeMode(c, QHeaderView.ResizeMode.ResizeToContents)
        self.notice = QLabel(objectName="CashierNotice")
        self.notice.setWordWrap(True)
        self.notice.hide()
        self.count_label = QLabel(objectName="TotalCaption")
        self.total_caption = QLabel(objectName="TotalCaption")
        self.total_label = QLabel(objectName="TotalLabel")
        self.total_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.finish_button = QPushButton(objectName="FinishButton")
        self.finish_button.clicked.connect(self.finishClicked)
        self.finish_button.setEnabled(False)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(12, 12, 12, 12)
        lay.setSpacing(10)
        lay.addWidget(self.title)
        lay.addWidget(self.table, 1)
        lay.addWidget(self.notice)
        row = QHBoxLayout()
        caption = QVBoxLayout()
        caption.addWidget(self.total_caption)
        caption.addWidget(self.count_label)
        row.addLayout(caption)
        row.addStretch(1)
        row.addWidget(self.total_label)
        lay.addLayout(row)
        lay.addWidget(self.finish_button)
        self.retranslate()

    def retranslate(self) -> None:
        self.title.setText(self.tr("Your items"))
        self.table.setHorizontalHeaderLabels(
            [self.tr("Item"), self.tr("Qty"), self.tr("Unit price"), self.tr("Amount")])
        self.total_caption.setText(self.tr("Total"))
        self.finish_button.setText(self.tr("Finish and pay"))
        self._update_notice()
        self._update_count()

    def changeEvent(self, event) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(event)

    def _update_count(self) -> None:
        n = self._receipt.item_count if self._receipt is not None else 0
        self.count_label.setText(self.tr("Items: %1").replace("%1", str(n)))

    def _update_notice(self) -> None:
        if self._stale:
            self.notice.setText(self.tr("Picture not live – these items will be checked again "
                                        "before you can pay."))
        else:
            self.notice.setText(self.tr("Some items need the cashier: please call the "
                                        "cashier."))
        self.notice.setProperty("level", "stale" if self._stale else "")
        self.notice.style().unpolish(self.notice)
        self.notice.style().polish(self.notice)
        self.notice.setVisible(self._stale or self._needs_cashier)

    def set_receipt(self, receipt, needs_cashier: bool = False, *, payable: bool = True,
                    stale: bool = False) -> None:
        """Show ``receipt``; *Finish and pay* is enabled only when the checkout says the sale
        can be stored (``payable``); ``stale``: the lines belong to a picture that is not live
        (shown greyed, with a notice)."""
        self._receipt = receipt
        self._needs_cashier = needs_cashier
        self._stale = bool(stale)
        self.table.setEnabled(not self._stale)
        # lines of a picture that is not live are shown greyed (not what is charged)
        grey = "color: #9aa0a6;" if self._stale else ""
        self.table.setStyleSheet(grey)
        self.total_label.setStyleSheet(grey)
        cur = receipt.currency
        lines = receipt.lines
        self.table.setRowCount(len(lines))
        for r, line in enumerate(lines):
            unit = (format_price(line.unit_price, cur) if line.unit_price is not None
                    else self.tr("no price"))
            cells = [line.name, f"×{line.qty}", unit, format_price(line.amount, cur)]
            for c, text in enumerate(cells):
                item = self.table.item(r, c)
                if item is None:
                    item = QTableWidgetItem()
                    self.table.setItem(r, c, item)
                if item.text() != text:
                    item.setText(text)
                align = Qt.AlignmentFlag.AlignVCenter | (
                    Qt.AlignmentFlag.AlignLeft if c == 0 else Qt.AlignmentFlag.AlignRight)
                item.setTextAlignment(align)
                item.setData(Qt.ItemDataRole.UserRole, line.sku)
        self.total_label.setText(format_price(receipt.total, cur))
        self.total_label.setEnabled(not self._stale)
        self._update_notice()
        self.finish_button.setEnabled(bool(lines) and not needs_cashier and bool(payable)
                                      and not self._stale)
        self._update_count()

    def set_row_height(self, px: int) -> None:
        """Receipt lines are touch targets: at least ``px`` high."""
        self.table.verticalHeader().setDefaultSectionSize(max(52, int(px)))

    def _on_cell(self, row: int, _col: int) -> None:
        item = self.table.item(row, 0)
        sku = item.data(Qt.ItemDataRole.UserRole) if item is not None else None
        if sku:
            self.lineClicked.emit(str(sku))

    # for tests and the screenshot tool
    def rows(self) -> list[tuple[str, ...]]:
        return [tuple(self.table.item(r, c).text() for c in range(4))
                for r in range(self.table.rowCount())]
