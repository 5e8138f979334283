"""Staff mode: enrolling a new product from tray photos (checked, then stored all or nothing
by :meth:`kiosk.engine.Engine.enrol_product` off the GUI thread)."""
from __future__ import annotations

import logging

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QColor, QIcon
from PySide6.QtWidgets import (
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from kiosk.catalog.enrol import DISAGREES, NO_ITEM, EnrolRefused, LookalikeNeedsConfirmation
from kiosk.money import parse_price
from kiosk.ui.images import bgr_to_pixmap
from kiosk.ui.tasks import run_task
from kiosk.ui.tray_view import TrayView
from kiosk.ui.i18n import retranslating as _retranslating
from kiosk.ui.lookalike_dialog import LookalikeDialog

log = logging.getLogger(__name__)

MIN_VIEWS = 3


@_retranslating
class EnrolTab(QWidget):
    enrolled = Signal(str)  # sku
    enrolFailed = Signal(str)

    def __init__(self, controller, parent=None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.views: list[np.ndarray] = []
        self.busy = False
        self._status = ("", "")  # (kind, detail) of the last save, translated on show
        self._problems: tuple = ()  # kiosk.catalog.enrol.ViewProblem of the last refused save
        self.lookalike_dialog: LookalikeDialog | None = None  # open while staff decide

        self.preview = TrayView()
        self.preview.setMinimumSize(320, 180)  # (staff mode fits a 1280 x 800 screen)
        self.guide = QLabel(objectName="Hint")
        self.guide.setWordWrap(True)
        self.capture_button = QPushButton(objectName="PrimaryButton")
        self.capture_button.clicked.connect(self.capture_view)
        self.undo_button = QPushButton()
        self.undo_button.clicked.connect(self.remove_last_view)
        self.thumbs = QListWidget()
        self.thumbs.setViewMode(QListWidget.ViewMode.IconMode)
        self.thumbs.setIconSize(QSize(96, 96))
        self.thumbs.setGridSize(QSize(108, 128))  # the picture and its view number
        self.thumbs.setFixedHeight(148)
        self.thumbs.setFlow(QListWidget.Flow.LeftToRight)
        self.thumbs.setWrapping(False)
        self.thumbs.setMovement(QListWidget.Movement.Static)
        self.thumbs.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.thumbs.itemSelectionChanged.connect(self._update)
        self.count_label = QLabel()

        self.name = QLineEdit()
        self.sku = QLineEdit()
        self.price = QLineEdit()
        self.barcode = QLineEdit()
        self.price.setProperty("keyboard", "digits")
        self.barcode.setProperty("keyboard", "digits")
        self.form = QFormLayout()
        self.form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapAllRows)
        self._form_labels = [QLabel() for _ in range(4)]
        for lbl, field in zip(self._form_labels, (self.name, self.sku, self.price, self.barcode)):
            self.form.addRow(lbl, field)
        self.save_button = QPushButton(objectName="PrimaryButton")
        self.save_button.clicked.connect(self.save)
        self.clear_button = QPushButton()
        self.clear_button.clicked.connect(self.clear)
        self.status = QLabel(objectName="Hint")
        self.status.setWordWrap(True)
        for w in (self.name, self.sku, self.price, self.barcode):
            w.textChanged.connect(self._update)

        left = QVBoxLayout()
        left.addWidget(self.preview, 1)
        left.addWidget(self.guide)
        row = QHBoxLayout()
        row.addWidget(self.capture_button, 2)
        row.addWidget(self.undo_button, 1)
        left.addLayout(row)
        left.addWidget(self.count_label)
        left.addWidget(self.thumbs)
        right = QVBoxLayout()
        right.addLayout(self.form)
        right.addStretch(1)
        right.addWidget(self.status)
        row = QHBoxLayout()
        row.addWidget(self.clear_button)
        row.addWidget(self.save_button, 1)
        right.addLayout(row)
        lay = QHBoxLayout(self)
        lay.addLayout(left, 3)
        lay.addLayout(right, 2)
        self.retranslate()

    def retranslate(self) -> None:
        for lbl, text in zip(self._form_labels, (self.tr("Product name"), self.tr("SKU"),
                                                 self.tr("Price (yuan)"),
                                                 self.tr("Barcode (optional)"))):
            lbl.setText(text)
        self.name.setPlaceholderText(self.tr("e.g. 雪碧 500ml"))
        self.sku.setPlaceholderText(self.tr("e.g. 6901234567892 or SPRITE-500"))
        self.price.setPlaceholderText("3.50")
        self.barcode.setPlaceholderText(self.tr("EAN-13 / UPC"))
        self.capture_button.setText(self.tr("Capture view"))
        self.save_button.setText(self.tr("Save product"))
        self.clear_button.setText(self.tr("Start over"))
        self._update()

    # ------------------------------------------------------------ state/guidance
    def _update(self) -> None:
        n = len(self.views)
        if n == 0:
            guide = self.tr("1. Place the new item alone on the tray, then press Capture view.")
        elif n == 1:
            guide = self.tr("2. Turn the item over, then capture again.")
        elif n < MIN_VIEWS:
            guide = self.tr("3. Rotate it or show another side, and capture once more.")
        else:
            guide = self.tr("Enough views. More sides help recognition; fill in the form and "
                            "press Save product.")
        self.guide.setText(guide)
        self.count_label.setText(self.tr("Views captured: %1 (at least %2)")
                                 .replace("%1", str(n)).replace("%2", str(MIN_VIEWS)))
        self.undo_button.setEnabled(n > 0 and not self.busy)
        picked = self._selected_view()
        self.undo_button.setText(self.tr("Remove last view") if picked is None else
                                 self.tr("Remove view %1").replace("%1", str(picked + 1)))
        self.capture_button.setEnabled(not self.busy)
        ready = (n >= MIN_VIEWS and self.name.text().strip() and self.sku.text().strip()
                 and self.price.text().strip())
        self.save_button.setEnabled(bool(ready) and not self.busy)
        kind, detail = self._status
        text = {
            "": "",
            "saving": self.tr("Saving and learning the product…"),
            "saved": self.tr("Saved: %1 is recognised from now on."),
            "error": self.tr("Not saved: %1"),
            "refused": self.tr("Not saved: %1"),
            "confirm": self.tr("This looks like a product already in the catalogue: please "
                               "confirm."),
            "cancelled": self.tr("Cancelled: nothing was saved."),
            "noframe": self.tr("No camera picture yet."),
            "noitem": self.tr("No item found on the tray: place the item alone on the tray."),
            "many": self.tr("%1 items on the tray: put only this product on the tray, then "
                            "capture again."),
        }[kind]
        if kind == "refused":
            detail = "; ".join(self._problem_text(p) for p in self._problems)
        self.status.setText(text.replace("%1", detail))

    def _problem_text(self, problem) -> str:
        """One refused view (:class:`kiosk.catalog.enrol.ViewProblem`) in words."""
        if problem.kind == NO_ITEM:
            text = self.tr("view %1: no item on the tray")
        elif problem.kind == DISAGREES:
            text = self.tr("view %1 does not look like the other views (another product?): "
                           "remove it and capture this product again")
        else:
            text = self.tr("view %1: %2 items on the tray, put only this product on the tray"
                           ).replace("%2", str(problem.items))
        return text.replace("%1", str(problem.view))

    def _selected_view(self) -> int | None:
        rows = [self.thumbs.row(i) for i in self.thumbs.selectedItems()]
        return rows[0] if rows else None

    def _mark_views(self, problems=()) -> None:
        """Number the thumbnails; those of refused views are marked and the first selected
        (so *Remove view* takes it)."""
        bad = {p.view - 1 for p in problems}
        self.thumbs.clearSelection()
        for row in range(self.thumbs.count()):
            li = self.thumbs.item(row)
            li.setText(f"✕ {row + 1}" if row in bad else str(row + 1))
            li.setToolTip(str(row + 1))
            li.setData(Qt.ItemDataRole.ForegroundRole,
                       QColor("#c62828") if row in bad else None)
        if bad:
            self.thumbs.setCurrentRow(min(bad))

    def _set_status(self, kind: str, detail: str = "") -> None:
        self._status = (kind, detail)
        self._update()

    def set_frame(self, image, index: int) -> None:
        self.preview.set_frame(image, index)

    # ------------------------------------------------------------------ actions
    def capture_view(self) -> bool:
        frame = self.controller.latest_frame()
        if frame is None:
            self._set_status("noframe")
            return False
        image = frame.image.copy()
        try:  # one item exactly, cut out as the enrolment will cut it (kiosk.catalog.enrol)
            found, crop = self.controller.engine.cut_view(image)
        except Exception as exc:  # noqa: BLE001 - shown, no view added
            log.warning("enrolment view not cut out: %s", exc)
            self._set_status("error", str(exc))
            return False
        if found != 1:  # none, or which one would be the product?
            self._set_status("noitem" if not found else "many", str(found))
            return False
        self.views.append(image)
        li = QListWidgetItem()
        li.setIcon(QIcon(bgr_to_pixmap(crop, 96, square=True)))
        self.thumbs.addItem(li)
        self._mark_views()
        self.thumbs.scrollToBottom()
        self._set_status("")
        return True

    def remove_last_view(self) -> None:
        """Remove the selected view (e.g. one a save refused), else the last one."""
        if self.views:
            row = self._selected_view()
            row = len(self.views) - 1 if row is None else row
            self.views.pop(row)
            self.thumbs.takeItem(row)
            self._mark_views()
        self._update()

    def clear(self) -> None:
        self.views.clear()
        self.thumbs.clear()
        self._problems = ()
        for w in (self.name, self.sku, self.price, self.barcode):
            w.clear()
        self._set_status("")

    def save(self) -> None:
        name, sku = self.name.text().strip(), self.sku.text().strip()
        barcode = self.barcode.text().strip() or None
        try:
            price = parse_price(self.price.text())
        except ValueError as exc:
            self._set_status("error", str(exc))
            return
        if len(self.views) < MIN_VIEWS:
            self._set_status("error", self.tr("capture at least %1 views").replace(
                "%1", str(MIN_VIEWS)))
            return
        self._start_save(sku, name, price, barcode, confirm_lookalike=False)

    def _start_save(self, sku: str, name: str, price, barcode, *,
                    confirm_lookalike: bool) -> None:
        """Check and store the product off the GUI thread
        (:func:`kiosk.checkout.staff_actions.enrol_new_product`); a refusal comes back as a
        result to show, not as an error.  The catalogue and the basket hear of the new
        product from the catalogue's events."""
        from kiosk.checkout.staff_actions import enrol_new_product

        engine, frames = self.controller.engine, list(self.views)

        def work():
            return enrol_new_product(engine, sku, name, price, frames, barcode=barcode,
                                     confirm_lookalike=confirm_lookalike, role="staff")

        self.busy = True
        self._pending = (sku, name, price, barcode)  # what is being saved (for a confirmation)
        self._problems = ()
        self._mark_views()
        self._set_status("saving")
        run_task(work, on_done=self._saved, on_error=self._failed)

    def _saved(self, result) -> None:
        self.busy = False
        if isinstance(result, LookalikeNeedsConfirmation):
            self._set_status("confirm")
            self._ask_lookalike(result.check)
            return
        if isinstance(result, EnrolRefused):
            self._problems = result.check.problems
            self._mark_views(self._problems)
            self._set_status("refused")
            self.enrolFailed.emit(str(result))
            return
        sku = result
        name = self.name.text().strip() or sku
        self.clear()
        self._set_status("saved", name)
        self.enrolled.emit(sku)

    def _failed(self, message: str) -> None:
        self.busy = False
        self._set_status("error", message)
        self.enrolFailed.emit(message)

    # ------------------------------------------------------- near-duplicate
    def _ask_lookalike(self, check) -> None:
        """Show the new views beside the existing look-alike product; save only if staff say
        it is a different product."""
        sku, name, price, barcode = self._pending
        dialog = LookalikeDialog(check, name, self)
        self.lookalike_dialog = dialog

        def finished(result: int) -> None:
            self.lookalike_dialog = None
            dialog.deleteLater()
            if result == QDialog.DialogCode.Accepted:
                self._start_save(sku, name, price, barcode, confirm_lookalike=True)
            else:
                self._set_status("cancelled")

        dialog.finished.connect(finished)
        dialog.open()
