"""The cashier's correction panel for one item: ranked candidates, search, quantity, remove."""
from __future__ import annotations

import logging

from PySide6.QtCore import QEvent, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
)

from kiosk.money import format_price

from kiosk.ui.images import product_thumbnail

log = logging.getLogger(__name__)

THUMB = 72


class CorrectionDialog(QDialog):
    """Opened by tapping an item box.  Choosing a candidate (or a search result) overrides the
    item's product; the quantity spinner and Remove act at once.  ``changed`` is emitted after
    every change."""

    changed = Signal()

    def __init__(self, controller, track_id: int, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("CorrectionDialog")
        self.controller = controller
        self.track_id = int(track_id)
        self.setModal(True)
        self.resize(760, 720)
        item = controller.item(self.track_id)
        self._currency = (controller.state.receipt.currency if controller.state is not None
                          else "CNY")

        self.title = QLabel(objectName="Title")
        self.current = QLabel(objectName="Hint")
        self.current.setWordWrap(True)
        self.list_caption = QLabel(objectName="Hint")
        self.candidates = QListWidget()
        self.candidates.setIconSize(QSize(THUMB, THUMB))
        self.candidates.setSpacing(2)
        self.candidates.itemClicked.connect(self._on_pick)
        self.search = QLineEdit()
        self.search.setProperty("keyboard", "search")
        self.search.setClearButtonEnabled(True)
        self._search_timer = QTimer(self, singleShot=True, interval=250)
        self._search_timer.timeout.connect(self.run_search)
        self.search.textChanged.connect(lambda _t: self._search_timer.start())
        self.search.returnPressed.connect(self.run_search)
        self.qty_label = QLabel()
        self.qty = QSpinBox(objectName="QtySpin")
        self.qty.setRange(1, 99)
        self.qty.setMinimumWidth(90)
        self.qty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.qty.setProperty("keyboard", "digits")
        # finger-sized − and + instead of a spin box's tiny arrows: the arrows are hidden by
        # the style sheet (#QtySpin); with NoButtons, a styled spin box leaves its number a
        # field 1 px wide
        self.qty_minus = QPushButton("−", objectName="QtyButton")
        self.qty_minus.clicked.connect(self.qty.stepDown)
        self.qty_plus = QPushButton("+", objectName="QtyButton")
        self.qty_plus.clicked.connect(self.qty.stepUp)
        self.qty.setValue(getattr(item, "qty", 1) if item else 1)
        self.qty.valueChanged.connect(self._on_qty)
        self.remove_button = QPushButton(objectName="DangerButton")
        self.remove_button.clicked.connect(self._on_remove)
        self.close_button = QPushButton(objectName="PrimaryButton")
        self.close_button.clicked.connect(self.accept)

        lay = QVBoxLayout(self)
        lay.setSpacing(10)
        lay.addWidget(self.title)
        lay.addWidget(self.current)
        lay.addWidget(self.search)
        lay.addWidget(self.list_caption)
        lay.addWidget(self.candidates, 1)
        row = QHBoxLayout()
        row.addWidget(self.qty_label)
        row.addWidget(self.qty_minus)
        row.addWidget(self.qty)
        row.addWidget(self.qty_plus)
        row.addStretch(1)
        row.addWidget(self.remove_button)
        row.addWidget(self.close_button)
        lay.addLayout(row)

        self._showing_search = False
        self.retranslate()
        self._show_candidates(item.candidates if item else ())
        controller.stateChanged.connect(self._on_state)

    # -------------------------------------------------------------- texts
    def retranslate(self) -> None:
        self.setWindowTitle(self.tr("Correct an item"))
        self.title.setText(self.tr("Which product is this?"))
        self.search.setPlaceholderText(self.tr("Search by name, SKU or barcode"))
        self.list_caption.setText(self.tr("Search results") if self._showing_search
                                  else self.tr("Best matches"))
        self.qty_label.setText(self.tr("Quantity"))
        self.remove_button.setText(self.tr("Remove item"))
        self.close_button.setText(self.tr("Done"))
        self._update_current()
        if hasattr(self, "_showing_search"):  # the list's texts in the new language
            self.run_search()

    def changeEvent(self, event) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(event)

    def _update_current(self) -> None:
        item = self.controller.item(self.track_id)
        gone = item is None
        for w in (self.candidates, self.search, self.qty, self.qty_minus, self.qty_plus,
                  self.remove_button):
            w.setEnabled(not gone)
        if gone:
            self.current.setText(self.tr("This item is no longer on the tray."))
        elif item.unknown or not item.sku:
            self.current.setText(self.tr("Not recognised yet: choose the product below."))
        else:
            price = (format_price(item.price, self._currency) if item.price is not None
                     else self.tr("no price"))
            self.current.setText(self.tr("Now: %1 (%2)").replace("%1", item.name or item.sku)
                                 .replace("%2", price))
        if item is not None and item.words:
            self.current.setText(self.current.text() + "\n" + self.tr("Read on the pack: %1")
                                 .replace("%1", " ".join(item.words[:12])))
        if item is not None and getattr(item, "code", None):
            self.current.setText(self.current.text() + "\n" + self.tr(
                "Barcode on the pack: %1, which no product on sale has").replace("%1", item.code))

    # --------------------------------------------------------------- list
    def _show_candidates(self, rows) -> None:
        self.candidates.clear()
        catalog = self.controller.engine.catalog
        for c in rows:
            price = getattr(c, "price", None)
            price_text = (format_price(price, self._currency) if price is not None
                          else self.tr("no price"))
            text = f"{c.name}\n{price_text}    {c.sku}"
            score = getattr(c, "score", None)
            if score is not None and not self._showing_search:
                text += "    " + self.tr("match %1%").replace("%1", f"{100 * float(score):.0f}")
            li = QListWidgetItem(text)
            li.setData(Qt.ItemDataRole.UserRole, c.sku)
            li.setSizeHint(QSize(0, THUMB + 16))
            pix = product_thumbnail(catalog, c.sku, THUMB)
            if pix is not None:
                li.setIcon(QIcon(pix))
            self.candidates.addItem(li)
        if not rows:
            li = QListWidgetItem(self.tr("Nothing found"))
            li.setFlags(Qt.ItemFlag.NoItemFlags)
            self.candidates.addItem(li)

    def candidate_skus(self) -> list[str]:
        return [self.candidates.item(i).data(Qt.ItemDataRole.UserRole)
                for i in range(self.candidates.count())
                if self.candidates.item(i).data(Qt.ItemDataRole.UserRole)]

    def run_search(self) -> None:
        text = self.search.text().strip()
        if not text:
            self._showing_search = False
            item = self.controller.item(self.track_id)
            self._show_candidates(item.candidates if item else ())
        else:
            self._showing_search = True
            try:
                rows = self.controller.search(text)
            except Exception as exc:  # noqa: BLE001
                log.warning("search %r: %s", text, exc)
                rows = []
            self._show_candidates(list(rows)[:30])
        self.list_caption.setText(self.tr("Search results") if self._showing_search
                                  else self.tr("Best matches"))

    # ------------------------------------------------------------ actions
    def _on_pick(self, li: QListWidgetItem) -> None:
        sku = li.data(Qt.ItemDataRole.UserRole)
        if sku:
            self.choose(sku)

    def choose(self, sku: str) -> None:
        try:
            self.controller.override(self.track_id, sku)
        except (KeyError, ValueError, PermissionError) as exc:
            self._refused(self.tr("Cannot change the item"), exc)
            return
        self.changed.emit()
        self.accept()

    def _on_qty(self, qty: int) -> None:
        try:
            self.controller.set_qty(self.track_id, int(qty))
        except (KeyError, ValueError, PermissionError) as exc:
            self._refused(self.tr("Cannot change the quantity"), exc)
            return
        self.changed.emit()

    def _on_remove(self) -> None:
        try:
            self.controller.remove(self.track_id)
        except (KeyError, ValueError, PermissionError) as exc:
            self._refused(self.tr("Cannot remove the item"), exc)
            return
        self.changed.emit()
        self.accept()

    def _refused(self, title: str, exc: BaseException) -> None:
        """Say in plain words why a change was refused (the details go to the log)."""
        log.info("correction refused: %r", exc)
        if isinstance(exc, PermissionError):
            text = self.tr("The cashier session has ended: enter the cashier code again or show "
                           "the badge to the camera.")
        elif isinstance(exc, KeyError):
            text = self.tr("This item is no longer on the tray.")
        else:
            text = self.tr("That did not work: please try again or choose another product.")
        self.message = QMessageBox(QMessageBox.Icon.Warning, title, text,
                                   QMessageBox.StandardButton.Ok, self)
        self.message.open()
        self._update_current()

    def _on_state(self, _state) -> None:
        self._update_current()

    def done(self, result: int) -> None:
        try:
            self.controller.stateChanged.disconnect(self._on_state)
        except (RuntimeError, TypeError):
            pass
        super().done(result)
