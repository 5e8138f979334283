"""Staff mode: choosing the camera."""
from __future__ import annotations

import logging

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from kiosk.ui.tasks import run_task
from kiosk.ui.i18n import retranslating as _retranslating

log = logging.getLogger(__name__)


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
