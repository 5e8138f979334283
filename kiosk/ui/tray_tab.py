"""Staff mode: calibrating the empty tray."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from kiosk.ui.images import file_thumbnail
from kiosk.ui.tasks import run_task
from kiosk.ui.i18n import retranslating as _retranslating


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
            from kiosk.checkout.staff_actions import recalibrate_tray

            return str(recalibrate_tray(detector, image, path))

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
