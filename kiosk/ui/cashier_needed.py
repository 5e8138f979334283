"""What a shopper sees on tapping an item: only a cashier may change it.

The panel offers to call the cashier, lets a cashier open an attendant session with their code
(or says to show the badge to the camera), and, where the store allows it
(``cashier.shopper_same_price_choice``), lets the shopper pick between look-alikes that have the
same price.  It sends intents to the controller; it never changes the basket itself.
"""
from __future__ import annotations

from PySide6.QtCore import QEvent, QSize, Signal
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QDialog, QHBoxLayout, QLabel, QPushButton, QVBoxLayout

from kiosk.money import format_price

from kiosk.ui.images import product_thumbnail

THUMB = 72


class CashierNeededDialog(QDialog):
    """``attendantOpened(track_id)`` once a cashier proved who they are (the window then opens
    the correction panel of that item)."""

    attendantOpened = Signal(int)

    def __init__(self, controller, track_id: int, cashier_auth=None, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("CashierNeededDialog")
        self.setModal(True)
        self.controller = controller
        self.track_id = int(track_id)
        self.cashier_auth = cashier_auth
        self.code_dialog = None
        self.title = QLabel(objectName="Title")
        self.title.setWordWrap(True)
        # the item's full name and price (names are cut short on the tray and the receipt)
        self.item_label = QLabel(objectName="ItemName")
        self.item_label.setWordWrap(True)
        self.message = QLabel(objectName="Hint")
        self.message.setWordWrap(True)
        self.choice_caption = QLabel(objectName="Hint")
        self.choice_caption.setWordWrap(True)
        self.choice_buttons: list[QPushButton] = []
        choices = QVBoxLayout()
        currency = (controller.state.receipt.currency if controller.state is not None
                    else "CNY")
        for sku in controller.shopper_choices(self.track_id):
            p = controller.engine.lookup_product(sku)
            if p is None:
                continue
            b = QPushButton(f"{p.name}   {format_price(p.price, currency)}",
                            objectName="ChoiceButton")
            b.setMinimumHeight(THUMB + 8)
            pix = product_thumbnail(controller.engine.catalog, sku, THUMB)
            if pix is not None:
                b.setIcon(QIcon(pix))
                b.setIconSize(QSize(THUMB, THUMB))
            b.setProperty("sku", sku)
            b.clicked.connect(lambda _c=False, s=sku: self.choose(s))
            choices.addWidget(b)
            self.choice_buttons.append(b)
        self.choice_caption.setVisible(bool(self.choice_buttons))
        self.call_button = QPushButton(objectName="PrimaryButton")
        self.call_button.clicked.connect(self.call)
        self.code_button = QPushButton()
        self.code_button.clicked.connect(self.ask_code)
        self.code_button.setEnabled(cashier_auth is not None)
        self.cancel_button = QPushButton()
        self.cancel_button.clicked.connect(self.reject)
        for b in (self.call_button, self.code_button, self.cancel_button):
            b.setMinimumHeight(64)
        lay = QVBoxLayout(self)
        lay.setSpacing(12)
        lay.addWidget(self.item_label)
        lay.addWidget(self.title)
        lay.addWidget(self.message)
        lay.addWidget(self.choice_caption)
        lay.addLayout(choices)
        row = QHBoxLayout()
        row.addWidget(self.cancel_button)
        row.addWidget(self.code_button)
        row.addWidget(self.call_button, 1)
        lay.addLayout(row)
        self.resize(720, 360)
        self.retranslate()
        controller.stateChanged.connect(self._on_state)

    def retranslate(self) -> None:
        self.setWindowTitle(self.tr("Cashier needed"))
        self.title.setText(self.tr("Only a cashier can change an item."))
        self.message.setText(self.tr(
            "Press Call the cashier and a cashier will come to help you. Cashiers: enter your "
            "code, or show your cashier badge to the camera."))
        self.choice_caption.setText(self.tr(
            "Or choose the right one yourself – these cost the same:"))
        self.call_button.setText(self.tr("Call the cashier"))
        self.code_button.setText(self.tr("Cashier code"))
        self.cancel_button.setText(self.tr("Back"))
        item = self.controller.item(self.track_id)
        if item is None:
            self.item_label.setText("")
        elif item.unknown or not item.sku:
            self.item_label.setText(self.tr("Not recognised"))
        else:
            currency = (self.controller.state.receipt.currency
                        if self.controller.state is not None else "CNY")
            price = (format_price(item.price, currency) if item.price is not None
                     else self.tr("no price"))
            qty = f"  ×{item.qty}" if item.qty > 1 else ""
            self.item_label.setText(f"{item.name or item.sku}   {price}{qty}")

    def changeEvent(self, event) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(event)

    # ------------------------------------------------------------ intents
    def call(self) -> None:
        self.controller.call_cashier()
        self.accept()

    def choose(self, sku: str) -> None:
        try:
            self.controller.shopper_choose(self.track_id, sku)
        except (KeyError, ValueError, PermissionError):
            self.message.setText(self.tr("This item can no longer be changed here: please call "
                                         "the cashier."))
            return
        self.accept()

    def ask_code(self) -> None:
        from kiosk.ui.cashier_pad import CashierCodeDialog

        dlg = CashierCodeDialog(self.cashier_auth, self)
        dlg.cashierAccepted.connect(self._cashier)
        dlg.finished.connect(lambda _r: setattr(self, "code_dialog", None))
        dlg.finished.connect(dlg.deleteLater)
        self.code_dialog = dlg
        dlg.open()

    def _cashier(self, cashier) -> None:
        self.controller.open_attendant(cashier, "code")
        self.accept()
        self.attendantOpened.emit(self.track_id)

    def _on_state(self, state) -> None:
        # a badge shown to the camera meanwhile opens the session just as well
        if getattr(state, "attendant", None) is not None and self.isVisible() \
                and self.code_dialog is None:
            self.accept()
            self.attendantOpened.emit(self.track_id)

    def done(self, result: int) -> None:
        try:
            self.controller.stateChanged.disconnect(self._on_state)
        except (RuntimeError, TypeError):
            pass
        super().done(result)
