"""Staff mode: the dialog that shows new views beside the existing product they look like."""
from __future__ import annotations

from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
)

from kiosk.money import format_price
from kiosk.ui.images import bgr_to_pixmap, file_thumbnail
from kiosk.ui.i18n import retranslating as _retranslating


@_retranslating
class LookalikeDialog(QDialog):
    """"Is this really a different product?": the new product's captured views beside the
    pictures, name and price of the existing product(s) they are a near-duplicate of."""

    THUMB = 96
    MAX_PICTURES = 6

    def __init__(self, check, name: str, parent=None) -> None:
        super().__init__(parent)
        self.setModal(True)
        self.check = check
        self.new_name = name
        self.heading = QLabel(objectName="Title")
        self.heading.setWordWrap(True)
        self.text = QLabel(objectName="Hint")
        self.text.setWordWrap(True)
        self.new_label = QLabel()
        lay = QVBoxLayout(self)
        lay.addWidget(self.heading)
        lay.addWidget(self.text)
        lay.addWidget(self.new_label)
        lay.addLayout(self._pictures([bgr_to_pixmap(c, self.THUMB, square=True)
                                      for c in check.crops if c is not None]))
        self.existing_labels: list[QLabel] = []
        for look in check.lookalikes[:3]:
            label = QLabel()
            label.setWordWrap(True)
            self.existing_labels.append(label)
            lay.addWidget(label)
            pics = [file_thumbnail(f, self.THUMB) for f in look.files[:self.MAX_PICTURES]]
            lay.addLayout(self._pictures([p for p in pics if p is not None]))
        self.cancel_button = QPushButton()
        self.cancel_button.clicked.connect(self.reject)
        self.save_button = QPushButton(objectName="PrimaryButton")
        self.save_button.clicked.connect(self.accept)
        row = QHBoxLayout()
        row.addWidget(self.cancel_button)
        row.addStretch(1)
        row.addWidget(self.save_button)
        lay.addLayout(row)
        self.cancel_button.setDefault(True)  # the safe answer
        self.retranslate()

    @staticmethod
    def _pictures(pixmaps) -> QHBoxLayout:
        row = QHBoxLayout()
        for pix in pixmaps:
            label = QLabel()
            label.setPixmap(pix)
            row.addWidget(label)
        row.addStretch(1)
        return row

    def retranslate(self) -> None:
        self.setWindowTitle(self.tr("Is this a new product?"))
        self.heading.setText(self.tr("This looks like a product already in the catalogue"))
        self.text.setText(self.tr(
            "Compare the pictures. Save only if it really is a different product (another "
            "flavour or size); otherwise cancel and change the existing product instead."))
        self.new_label.setText(self.tr("New product: %1").replace("%1", self.new_name))
        for label, look in zip(self.existing_labels, self.check.lookalikes):
            price = (format_price(look.price, look.currency) if look.price is not None
                     else self.tr("no price"))
            label.setText(self.tr("Already in the catalogue: %1 (SKU %2), %3, match %4 %")
                          .replace("%1", look.name).replace("%2", look.sku)
                          .replace("%3", price).replace("%4", str(round(100 * look.score))))
        self.save_button.setText(self.tr("It is a different product, save"))
        self.cancel_button.setText(self.tr("Cancel"))
