"""Staff mode (behind the PIN): the staff page and its tabs, one file each: enrol new
products (:mod:`kiosk.ui.enrol_tab`), the catalogue (:mod:`kiosk.ui.catalogue_tab`), tray
calibration (:mod:`kiosk.ui.tray_tab`), camera (:mod:`kiosk.ui.camera_tab`), cashiers
(:mod:`kiosk.ui.cashiers_tab`), learned views (:mod:`kiosk.ui.learned_tab`), the audit log and
backups (:mod:`kiosk.ui.audit_tab`), and the store (:mod:`kiosk.ui.store_tab`)."""
from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from kiosk.ui.audit_tab import AuditTab
from kiosk.ui.camera_tab import CameraTab
from kiosk.ui.cashiers_tab import CashiersTab
from kiosk.ui.catalogue_tab import CatalogueTab
from kiosk.ui.enrol_tab import MIN_VIEWS, EnrolTab
from kiosk.ui.i18n import retranslating as _retranslating
from kiosk.ui.learned_tab import LearnedTab
from kiosk.ui.lookalike_dialog import LookalikeDialog
from kiosk.ui.tray_tab import TrayTab

__all__ = ["MIN_VIEWS", "AuditTab", "CameraTab", "CashiersTab", "CatalogueTab", "EnrolTab",
           "LearnedTab", "LookalikeDialog", "StaffPage", "TrayTab"]


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
