"""Staff mode (behind the PIN): enrol new products, the catalogue, tray calibration, camera,
the audit log and backups."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PySide6.QtCore import QEvent, QSize, Qt, Signal
from PySide6.QtGui import QColor, QIcon
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QDialog,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from kiosk.catalog.enrol import DISAGREES, NO_ITEM, EnrolRefused, LookalikeNeedsConfirmation
from kiosk.money import format_amount, format_price, parse_price

from kiosk.ui.cashiers_tab import CashiersTab
from kiosk.ui.learned_tab import LearnedTab
from kiosk.ui.images import bgr_to_pixmap, file_thumbnail, product_thumbnail
from kiosk.ui.tasks import run_task
from kiosk.ui.tray_view import TrayView

log = logging.getLogger(__name__)

MIN_VIEWS = 3


def _retranslating(cls):
    """Give a widget class a changeEvent that calls its ``retranslate`` on LanguageChange."""
    def changeEvent(self, event):
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        QWidget.changeEvent(self, event)

    cls.changeEvent = changeEvent
    return cls


# =============================================================================== enrolment
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
        """Check and store the product off the GUI thread (Engine.enrol_product); a refusal
        comes back as a result to show, not as an error."""
        engine, frames = self.controller.engine, list(self.views)

        def work():
            try:
                engine.enrol_product(sku, name, price, frames, barcode=barcode, role="staff",
                                     confirm_lookalike=confirm_lookalike)
            except EnrolRefused as refused:
                return refused
            return sku

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
        refresh = getattr(self.controller.session, "catalogue_changed", None)
        if callable(refresh):
            refresh()
        self.controller.notify_catalogue_changed()
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


# =============================================================================== catalogue
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
        self.controller.engine.set_price(sku, fen, role="staff")
        self.message.setText(self.tr("Price changed."))
        self.controller.notify_catalogue_changed()

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
        self.controller.notify_catalogue_changed()

    def delete(self, sku: str) -> None:
        self.controller.engine.remove_product(sku, role="staff")
        self.controller.engine.save()
        self.message.setText(self.tr("Deleted %1.").replace("%1", sku))
        self.controller.notify_catalogue_changed()

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


# ==================================================================================== tray
@_retranslating
class TrayTab(QWidget):
    calibrated = Signal()

    def __init__(self, controller, parent=None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.hint = QLabel(objectName="Hint")
        self.hint.setWordWrap(True)
        self.picture = QLabel()
        self.picture.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.picture.setMinimumHeight(300)
        self.button = QPushButton(objectName="PrimaryButton")
        self.button.clicked.connect(self.recalibrate)
        self.message = QLabel(objectName="Hint")
        self.message.setWordWrap(True)
        lay = QVBoxLayout(self)
        lay.addWidget(self.hint)
        lay.addWidget(self.picture, 1)
        lay.addWidget(self.message)
        lay.addWidget(self.button)
        self._msg = ("", "")
        self.retranslate()
        self._show_picture()

    def retranslate(self) -> None:
        self.hint.setText(self.tr("Take everything off the tray, keep hands away, then press "
                                  "Recalibrate. The kiosk learns the empty tray and finds items "
                                  "by how they differ from it."))
        self.button.setText(self.tr("Recalibrate the empty tray"))
        kind, detail = self._msg
        self.message.setText({"": "", "ok": self.tr("Calibrated. Saved to %1"),
                              "error": self.tr("Not calibrated: %1"),
                              "noframe": self.tr("No camera picture yet."),
                              "unsupported": self.tr("This detector needs no calibration.")}[kind]
                             .replace("%1", detail))

    def _show_picture(self) -> None:
        from kiosk.engine import background_path_for

        path = background_path_for(self.controller.db_path)
        pix = file_thumbnail(path, 480) if Path(path).is_file() else None
        if pix is not None:
            self.picture.setPixmap(pix)
        else:
            self.picture.setText(self.tr("Not calibrated yet."))

    def recalibrate(self) -> None:
        from kiosk.engine import background_path_for

        detector = self.controller.engine.detector
        if not hasattr(detector, "calibrate"):
            self._msg = ("unsupported", "")
            self.retranslate()
            return
        frame = self.controller.latest_frame()
        if frame is None:
            self._msg = ("noframe", "")
            self.retranslate()
            return
        image = frame.image.copy()
        path = background_path_for(self.controller.db_path)

        def work():
            import cv2

            detector.calibrate(image)
            tmp = Path(path).with_name(Path(path).stem + ".tmp.png")
            if not cv2.imwrite(str(tmp), image):
                raise OSError(f"could not write {tmp}")
            tmp.replace(path)
            return str(path)

        self.button.setEnabled(False)
        run_task(work, on_done=self._done, on_error=self._failed)

    def _done(self, path: str) -> None:
        from kiosk.ui.images import _thumb_image

        _thumb_image.cache_clear()
        self.button.setEnabled(True)
        self._msg = ("ok", path)
        self.retranslate()
        self._show_picture()
        self.calibrated.emit()

    def _failed(self, message: str) -> None:
        self.button.setEnabled(True)
        self._msg = ("error", message)
        self.retranslate()


# ================================================================================== camera
@_retranslating
class CameraTab(QWidget):
    cameraChanged = Signal(str)

    def __init__(self, controller, parent=None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.current = QLabel(objectName="Hint")
        self.current.setWordWrap(True)
        self.demo = QRadioButton()
        self.device = QRadioButton()
        self.file = QRadioButton()
        self.group = QButtonGroup(self)
        for b in (self.demo, self.device, self.file):
            self.group.addButton(b)
            b.setMinimumHeight(48)
        self.index = QSpinBox()
        self.index.setRange(0, 9)
        self.path = QLineEdit()
        self.browse = QPushButton()
        self.browse.clicked.connect(self._browse)
        self.apply_button = QPushButton(objectName="PrimaryButton")
        self.apply_button.clicked.connect(self.apply)
        self.message = QLabel(objectName="Hint")
        self.message.setWordWrap(True)
        lay = QVBoxLayout(self)
        lay.addWidget(self.current)
        lay.addWidget(self.demo)
        row = QHBoxLayout()
        row.addWidget(self.device)
        row.addWidget(self.index)
        row.addStretch(1)
        lay.addLayout(row)
        row = QHBoxLayout()
        row.addWidget(self.file)
        row.addWidget(self.path, 1)
        row.addWidget(self.browse)
        lay.addLayout(row)
        lay.addStretch(1)
        lay.addWidget(self.message)
        lay.addWidget(self.apply_button)
        self._msg = ("", "")
        self._select(controller.camera_source)
        controller.cameraStatusChanged.connect(self._on_camera_status)
        self.retranslate()

    def _on_camera_status(self, _status: str, _message: str) -> None:
        self.retranslate()

    def _select(self, source: str) -> None:
        source = str(source or "demo")
        if source == "demo":
            self.demo.setChecked(True)
        elif source.isdigit():
            self.device.setChecked(True)
            self.index.setValue(int(source))
        else:
            self.file.setChecked(True)
            self.path.setText(source)

    def source(self) -> str:
        if self.demo.isChecked():
            return "demo"
        if self.device.isChecked():
            return str(self.index.value())
        return self.path.text().strip()

    def retranslate(self) -> None:
        status = {"starting": self.tr("starting"), "live": self.tr("live"),
                  "lost": self.tr("disconnected"), "bad": self.tr("no usable picture"),
                  "stopped": self.tr("stopped")}.get(
            self.controller.camera_status, self.controller.camera_status)
        self.current.setText(self.tr("Camera: %1 (%2)").replace(
            "%1", self._describe(self.controller.camera_source)).replace("%2", status))
        self.demo.setText(self.tr("Demo camera (built-in test pictures)"))
        self.device.setText(self.tr("USB camera number"))
        self.file.setText(self.tr("Video file or picture folder"))
        self.browse.setText(self.tr("Browse…"))
        self.apply_button.setText(self.tr("Use this camera"))
        kind, detail = self._msg
        self.message.setText({"": "", "ok": self.tr("Camera switched."),
                              "notsaved": self.tr("Camera switched, but not saved in the "
                                                  "settings: %1"),
                              "opening": self.tr("Opening the camera…"),
                              "error": self.tr("Could not open the camera: %1")}[kind]
                             .replace("%1", detail))

    def _describe(self, source: str) -> str:
        source = str(source)
        if source == "demo":
            return self.tr("demo camera")
        if source.isdigit():
            return self.tr("USB camera %1").replace("%1", source)
        return source

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, self.tr("Choose a video file"))
        if path:
            self.path.setText(path)
            self.file.setChecked(True)

    def apply(self) -> None:
        source = self.source()
        if not source:
            return
        opener = self.controller.camera_opener
        if opener is None:
            self._msg = ("error", "no camera opener")
            self.retranslate()
            return
        self.apply_button.setEnabled(False)
        self._msg = ("opening", "")
        self.retranslate()
        run_task(opener, source, on_done=lambda cam: self._opened(cam, source),
                 on_error=self._failed)

    def _opened(self, camera, source: str) -> None:
        self.apply_button.setEnabled(True)
        self.controller.set_camera(camera, source)
        self._msg = ("ok", "")
        try:
            self.controller.remember_camera_source(source)
        except Exception as exc:  # noqa: BLE001 - switched, but not kept for the next start
            log.warning("camera source not saved: %s", exc)
            self._msg = ("notsaved", str(exc))
        self.retranslate()
        self.cameraChanged.emit(source)

    def _failed(self, message: str) -> None:
        self.apply_button.setEnabled(True)
        self._msg = ("error", message)
        self.retranslate()


# =========================================================================== audit, backup
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

        base = self.default_backup_dir()
        base.mkdir(mode=0o700, parents=True, exist_ok=True)
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


# ================================================================================== page
@_retranslating
class StaffPage(QWidget):
    """The staff screen; ``leave`` asks the main window to go back to the checkout."""

    leave = Signal()

    def __init__(self, controller, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("StaffPage")
        self.controller = controller
        self.title = QLabel(objectName="Title")
        self.back = QPushButton()
        self.back.clicked.connect(self.leave)
        self.tabs = QTabWidget()
        self.enrol = EnrolTab(controller)
        self.catalogue = CatalogueTab(controller)
        self.tray = TrayTab(controller)
        self.camera = CameraTab(controller)
        self.cashiers = CashiersTab(controller)
        self.learned = LearnedTab(controller)
        self.audit = AuditTab(controller)
        for t in (self.enrol, self.catalogue, self.tray, self.camera, self.cashiers, self.learned,
                  self.audit):
            self.tabs.addTab(t, "")
        from kiosk.ui.store_tab import add_store_tab

        add_store_tab(self)  # the Store tab, only with a store server ([store] server)
        self.tabs.currentChanged.connect(self._tab_changed)
        top = QHBoxLayout()
        top.addWidget(self.title)
        top.addStretch(1)
        top.addWidget(self.back)
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(self.tabs, 1)
        self.retranslate()

    def retranslate(self) -> None:
        self.title.setText(self.tr("Staff mode"))
        self.back.setText(self.tr("Back to checkout"))
        for i, text in enumerate((self.tr("Enrol new product"), self.tr("Catalogue"),
                                  self.tr("Tray"), self.tr("Camera"), self.tr("Cashiers"),
                                  self.tr("Learned views"), self.tr("Audit log & backup"))):
            self.tabs.setTabText(i, text.replace("&", "&&"))  # a literal "&", not a shortcut

    def _tab_changed(self, i: int) -> None:
        if self.tabs.widget(i) is self.catalogue:
            self.catalogue.refresh()
        elif self.tabs.widget(i) is self.cashiers:
            self.cashiers.refresh()
        elif self.tabs.widget(i) is self.learned:
            self.learned.refresh()
        elif self.tabs.widget(i) is self.audit:
            self.audit.refresh()

    def set_frame(self, image, index: int) -> None:
        if self.tabs.currentWidget() is self.enrol:
            self.enrol.set_frame(image, index)
