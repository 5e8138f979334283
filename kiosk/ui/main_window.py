"""The shopper view: live tray with boxes, the receipt and total, Finish; staff mode behind
the PIN; camera banner; live language switching."""
from __future__ import annotations

import logging
import time

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QApplication,
    QBoxLayout,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from kiosk.ui import i18n
from kiosk.ui.correction import CorrectionDialog
from kiosk.ui.images import bgr_to_qimage
from kiosk.ui.pin import PinDialog
from kiosk.ui.receipt_dialog import ReceiptDialog
from kiosk.ui.receipt_panel import ReceiptPanel
from kiosk.ui.tray_view import TrayView

log = logging.getLogger(__name__)


class _ActivityFilter(QObject):
    """Counts any touch, click or key press as staff activity."""

    def __init__(self, on_activity) -> None:
        super().__init__()
        self._on_activity = on_activity

    def eventFilter(self, obj, event) -> bool:
        if event.type() in (QEvent.Type.MouseButtonPress, QEvent.Type.KeyPress,
                            QEvent.Type.TouchBegin, QEvent.Type.Wheel):
            self._on_activity()
        return False


class MainWindow(QMainWindow):
    finished = Signal(int)  # transaction id
    staffModeChanged = Signal(bool)

    def __init__(self, controller, settings=None, *, auth=None, cashier_auth=None,
                 store_name: str = "",
                 staff_timeout_s: float = 120.0, preview_fps: float = 30.0,
                 clock=time.monotonic) -> None:
        super().__init__()
        self.setObjectName("MainWindow")
        self.controller = controller
        self.settings = settings
        self.locked = False  # kiosk mode: the window refuses to close (lock_down)
        self._allow_close = False  # set by the application when it quits
        self.auth = auth
        self.cashier_auth = cashier_auth  # kiosk.checkout.cashier_auth.CashierAuth: cashier codes
        self.cashier_needed = None  # the "only a cashier can change an item" panel, when open
        self.store_name = store_name
        self.staff_timeout_s = staff_timeout_s
        self.clock = clock
        self.staff_session = None
        self.staff_page = None
        self.correction: CorrectionDialog | None = None
        self.receipt_dialog: ReceiptDialog | None = None
        self.pin_dialog: PinDialog | None = None
        self.last_transaction: int | None = None
        self._camera = (controller.camera_status, controller.camera_message)
        self._error = ""
        self.frozen_warn_s = 8.0  # warn when the picture has not changed for this long
        self._frozen = False
        ui = getattr(settings, "ui", None)
        self.font_scale = float(getattr(ui, "font_scale", 1.0) or 1.0)
        self.screen_inches = float(getattr(ui, "screen_inches", 15.6) or 15.6)
        self.ui_scale = 0.0  # text scale applied for the current window size
        self.touch = 0  # smallest touch target (px) for the current window size
        self._scale_timer = QTimer(self, singleShot=True, interval=120)
        self._scale_timer.timeout.connect(self.apply_scale)

        # header
        self.store_label = QLabel(objectName="Title")
        self.lang_button = QPushButton(objectName="SmallButton")
        self.lang_button.clicked.connect(self.toggle_language)
        self.staff_button = QPushButton(objectName="SmallButton")
        self.staff_button.clicked.connect(self.ask_staff)
        self.call_button = QPushButton(objectName="CallButton")
        self.call_button.clicked.connect(self.call_cashier)
        self.call_button.setMinimumHeight(56)
        header = QHBoxLayout()
        header.setContentsMargins(16, 8, 16, 0)
        header.addWidget(self.store_label)
        header.addStretch(1)
        header.addWidget(self.call_button)
        header.addWidget(self.lang_button)
        header.addWidget(self.staff_button)
        # who is acting: shown while a cashier's attendant session is open
        self.attendant_label = QLabel(objectName="AttendantLabel")
        self.attendant_end = QPushButton(objectName="SmallButton")
        self.attendant_end.clicked.connect(self.end_attendant)
        self.attendant_bar = QWidget(objectName="AttendantBar")
        self.attendant_bar.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        bar = QHBoxLayout(self.attendant_bar)
        bar.setContentsMargins(16, 6, 16, 6)
        bar.addWidget(self.attendant_label, 1)
        bar.addWidget(self.attendant_end)
        self.attendant_bar.hide()
        self.banner = QLabel(objectName="Banner")
        self.banner.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.banner.setWordWrap(True)  # a long warning takes lines, never the window's width
        self.banner.hide()

        # shopper page
        self.tray = TrayView()
        self.tray.itemClicked.connect(self.open_correction)
        self.hint = QLabel(objectName="Hint")
        self.hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.receipt = ReceiptPanel()
        self.receipt.setMinimumWidth(360)
        self.receipt.finishClicked.connect(self.finish)
        self.receipt.lineClicked.connect(self._on_line)
        shopper = QWidget(objectName="ShopperPage")
        left = QVBoxLayout()
        left.addWidget(self.tray, 1)
        left.addWidget(self.hint)
        row = QHBoxLayout(shopper)
        row.setContentsMargins(12, 8, 12, 12)
        row.addLayout(left, 2)
        row.addWidget(self.receipt, 1)
        self.shopper_row = row  # left to right; top to bottom on a portrait screen

        self.stack = QStackedWidget()
        self.stack.addWidget(shopper)
        central = QWidget()
        lay = QVBoxLayout(central)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(6)
        lay.addWidget(self.banner)
        lay.addWidget(self.attendant_bar)
        lay.addLayout(header)
        lay.addWidget(self.stack, 1)
        self.setCentralWidget(central)

        controller.stateChanged.connect(self.show_state)
        controller.cameraStatusChanged.connect(self._on_camera)
        controller.recognitionFailed.connect(self._on_error)
        controller.callEvent.connect(lambda _e: self._update_hint())
        self.tick_timer = QTimer(self, interval=1000)
        self.tick_timer.timeout.connect(self._tick)
        self.tick_timer.start()
        self.preview_timer = QTimer(self, interval=max(10, int(1000 / max(1.0, preview_fps))))
        self.preview_timer.timeout.connect(self.refresh_preview)
        self.preview_timer.start()
        self.staff_timer = QTimer(self, interval=1000)
        self.staff_timer.timeout.connect(self._check_staff_timeout)
        self._activity = _ActivityFilter(self._staff_activity)

        self.retranslate()
        if controller.state is not None:
            self.show_state(controller.state)
        self._update_banner()

    # ------------------------------------------------------------------ texts
    def retranslate(self) -> None:
        self.setWindowTitle(self.tr("Self-checkout"))
        self.store_label.setText(self.store_name or self.tr("Self-checkout"))
        # the button names the language it switches to, in that language
        self.lang_button.setText("English" if i18n.current_language() != "en" else "中文")
        self.staff_button.setText(self.tr("Staff"))
        self.call_button.setText(self.tr("Call the cashier"))
        self.attendant_end.setText(self.tr("End cashier session"))
        self.tray.set_placeholder(self.tr("Starting the camera…"))
        self._update_attendant()
        self._update_hint()
        self._update_banner()

    def changeEvent(self, event) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(event)

    def toggle_language(self) -> None:
        lang = "en" if i18n.current_language() != "en" else "zh_CN"
        self.set_language(lang)

    def set_language(self, lang: str) -> None:
        i18n.set_language(QApplication.instance(), lang)
        self.retranslate()  # also sent as LanguageChange; harmless twice

    def _update_hint(self) -> None:
        state = self.controller.state
        calls = getattr(state, "calls", ()) if state is not None else ()
        phase = getattr(state, "phase", "settled") if state is not None else "settled"
        if calls:
            text = self.tr("The cashier has been called and is on the way. Please wait.")
        elif phase in ("no_camera", "no_picture", "stale"):
            text = self.tr("The camera picture is not live: the receipt will be checked again "
                           "when it is.")
        elif state is None or not state.items:
            text = self.tr("Place your items on the tray, apart from each other.")
        elif state.needs_cashier:
            text = self.tr("An item needs the cashier: please call the cashier.")
        elif phase != "settled":
            text = self.tr("Checking the tray… keep it still for a moment.")
        else:
            text = self.tr("Check your items, then press Finish and pay.")
        self.hint.setText(text)
        self.hint.setProperty("level", "call" if calls else "")
        self.hint.style().unpolish(self.hint)
        self.hint.style().polish(self.hint)
        self.call_button.setEnabled(not calls)

    def _update_attendant(self) -> None:
        state = self.controller.state
        a = getattr(state, "attendant", None) if state is not None else None
        if a is None:
            self.attendant_bar.hide()
            return
        left = max(0, round(a.remaining(self.controller.session.clock())))
        self.attendant_label.setText(
            self.tr("Cashier %1 (%2) is acting on this kiosk – %3 s left")
            .replace("%1", a.name).replace("%2", a.cashier_id).replace("%3", str(left)))
        self.attendant_bar.show()

    def _tick(self) -> None:
        self.controller.tick()
        self._update_attendant()

    def call_cashier(self) -> None:
        self.controller.call_cashier()

    def end_attendant(self) -> None:
        self.controller.end_attendant()

    # ------------------------------------------------------------------ camera
    def refresh_preview(self) -> None:
        capture = self.controller.capture
        frozen = bool(capture is not None and capture.frozen_for > self.frozen_warn_s)
        if frozen != self._frozen:
            self._frozen = frozen
            self._update_banner()
        frame = self.controller.latest_frame()
        if frame is None or frame.index == self.tray.frame_index:
            return
        image = bgr_to_qimage(frame.image)
        if self.stack.currentIndex() == 0:
            self.tray.set_frame(image, frame.index)
        elif self.staff_page is not None:
            self.staff_page.set_frame(image, frame.index)
            self.tray.frame_index = frame.index

    def _on_camera(self, status: str, message: str) -> None:
        self._camera = (status, message)
        self._update_banner()

    def _on_error(self, message: str) -> None:
        self._error = message
        self._update_banner()

    def _update_banner(self) -> None:
        status, _message = self._camera
        if status == "lost":
            self.banner.setText(self.tr("Camera disconnected – reconnecting…"))
            self.banner.setProperty("level", "error")
            self.banner.show()
        elif status == "bad":  # frames come, but none is usable (garbage, black, wrong size)
            self.banner.setText(self.tr("No usable picture from the camera – reconnecting…"))
            self.banner.setProperty("level", "error")
            self.banner.show()
        elif self._frozen and status == "live":
            self.banner.setText(self.tr("The camera picture is not changing – please check the "
                                        "camera."))
            self.banner.setProperty("level", "warn")
            self.banner.show()
        elif self._error:
            # the details go to the log; the shopper gets plain words
            self.banner.setText(self.tr("Recognition is having a problem: please call the "
                                        "cashier if it persists."))
            self.banner.setProperty("level", "warn")
            self.banner.show()
        else:
            self.banner.hide()
        self.banner.style().unpolish(self.banner)
        self.banner.style().polish(self.banner)

    def banner_visible(self) -> bool:
        return not self.banner.isHidden()

    # ------------------------------------------------------------------- state
    def show_state(self, state) -> None:
        self._error = ""  # a processed frame: recognition works again
        currency = state.receipt.currency
        stale = bool(getattr(state, "stale", False))
        # the boxes belong to the picture they were found on: none over a picture that is not
        # live (frozen, lost, another camera)
        self.tray.set_items(() if stale else state.items, currency)
        if self.staff_page is not None:
            self.staff_page.enrol.preview.set_items(() if stale else state.items, currency)
        self.receipt.set_receipt(state.receipt, state.needs_cashier,
                                 payable=getattr(state, "payable", True),
                                 stale=stale)
        self._update_hint()
        self._update_attendant()
        if self.banner_visible() and self._camera[0] not in ("lost", "bad"):
            self._update_banner()

    # -------------------------------------------------------------- correction
    def open_correction(self, track_id: int):
        """A tapped item: its correction panel for a cashier (attendant session open), else
        the panel that says only a cashier can change it."""
        if self.controller.item(track_id) is None:
            return None
        if self.controller.attendant is None:
            return self.ask_cashier(track_id)
        return self._correction(track_id)

    def ask_cashier(self, track_id: int):
        from kiosk.ui.cashier_needed import CashierNeededDialog

        if self.cashier_needed is not None:
            self.cashier_needed.close()
        dlg = CashierNeededDialog(self.controller, track_id, self.cashier_auth, self)
        dlg.attendantOpened.connect(self._correction)
        dlg.finished.connect(lambda _r: setattr(self, "cashier_needed", None))
        dlg.finished.connect(dlg.deleteLater)
        self.cashier_needed = dlg
        dlg.open()
        return dlg

    def _correction(self, track_id: int) -> CorrectionDialog | None:
        if self.controller.item(track_id) is None:
            return None
        if self.correction is not None:
            self.correction.close()
        dlg = CorrectionDialog(self.controller, track_id, self)
        dlg.finished.connect(lambda _r: setattr(self, "correction", None))
        dlg.finished.connect(dlg.deleteLater)  # not kept as a hidden child for good
        self.correction = dlg
        dlg.open()
        return dlg

    def _on_line(self, sku: str) -> None:
        """A tapped receipt line opens the correction of (the first) item of that product."""
        for item in self.controller.state.items if self.controller.state else ():
            if item.sku == sku:
                self.open_correction(item.track_id)
                return

    # ------------------------------------------------------------------ finish
    def finish(self) -> int | None:
        try:
            tx = self.controller.finish()
        except ValueError as exc:
            reason = getattr(exc, "reason", "")
            text = {
                "not_live": self.tr("The camera picture is not live: wait until the tray has "
                                    "been checked again."),
                "not_settled": self.tr("The tray is still being checked: keep it still for a "
                                       "moment."),
                "empty": self.tr("The basket is empty: nothing to pay for."),
                "needs_cashier": self.tr("An item needs the cashier before payment: please "
                                         "call the cashier."),
            }.get(reason, self.tr("The sale cannot be finished yet: please call the cashier."))
            log.info("finish refused: %s", exc)
            self.message_box = QMessageBox(QMessageBox.Icon.Warning, self.tr("Cannot finish yet"),
                                           text, QMessageBox.StandardButton.Ok, self)
            self.message_box.open()
            return None
        self.last_transaction = tx
        record = self.controller.engine.catalog.get_transaction(tx)
        dlg = ReceiptDialog(record, self.store_name, self)
        dlg.finished.connect(lambda _r: setattr(self, "receipt_dialog", None))
        dlg.finished.connect(dlg.deleteLater)  # not kept as a hidden child for good
        self.receipt_dialog = dlg
        dlg.open()
        self.finished.emit(tx)
        return tx

    # ------------------------------------------------------------------- staff
    def ask_staff(self) -> PinDialog | None:
        if self.auth is None:
            QMessageBox.information(self, self.tr("Staff"), self.tr("Staff mode is not set up."))
            return None
        dlg = PinDialog(self.auth, self, allow_create=self._pin_setup_allowed())
        dlg.accepted.connect(self.enter_staff)
        dlg.finished.connect(lambda _r: setattr(self, "pin_dialog", None))
        dlg.finished.connect(dlg.deleteLater)  # not kept as a hidden child for good
        self.pin_dialog = dlg
        dlg.open()
        return dlg

    def _pin_setup_allowed(self) -> bool:
        """May the first staff PIN be chosen on this screen?  Only where settings say so, or
        on the built-in demo catalogue; a store's kiosk gets its PIN from a technician
        (``kiosk staff-pin``), so a shopper can never claim staff mode on a fresh kiosk."""
        staff = getattr(self.settings, "staff", None)
        if staff is not None and getattr(staff, "pin_setup_on_screen", False):
            return True
        try:
            from kiosk.demo.catalog import is_demo_catalog

            return is_demo_catalog(self.controller.engine.catalog)
        except Exception:  # noqa: BLE001 - unknown: the safe answer
            return False

    def enter_staff(self) -> None:
        from kiosk.checkout.staff_auth import StaffSession

        from kiosk.ui.staff import StaffPage

        if self.staff_page is None:
            self.staff_page = StaffPage(self.controller)
            self.staff_page.leave.connect(self.leave_staff)
            # staff mode scrolls on a small screen instead of growing the window past it
            from PySide6.QtWidgets import QFrame, QScrollArea

            self.staff_scroll = QScrollArea(objectName="StaffScroll")
            self.staff_scroll.setWidgetResizable(True)
            self.staff_scroll.setFrameShape(QFrame.Shape.NoFrame)
            self.staff_scroll.setWidget(self.staff_page)
            self.stack.addWidget(self.staff_scroll)
        self.staff_session = StaffSession(self.staff_timeout_s)
        self.staff_session.touch()
        QApplication.instance().installEventFilter(self._activity)
        self.staff_timer.start()
        self.stack.setCurrentWidget(self.staff_scroll)
        self.staff_button.hide()
        self.call_button.hide()
        self.controller.set_staff_present(True)
        self.staff_page.catalogue.refresh()
        self.staffModeChanged.emit(True)

    def leave_staff(self) -> None:
        QApplication.instance().removeEventFilter(self._activity)
        self.staff_timer.stop()
        self.staff_session = None
        self.stack.setCurrentIndex(0)
        self.staff_button.show()
        self.call_button.show()
        self.controller.set_staff_present(False)
        self.tray.frame_index = -1
        self.staffModeChanged.emit(False)

    @property
    def in_staff_mode(self) -> bool:
        return self.staff_page is not None and self.stack.currentWidget() is self.staff_scroll

    def _staff_activity(self) -> None:
        if self.staff_session is not None:
            self.staff_session.touch()

    def _check_staff_timeout(self) -> None:
        s = self.staff_session
        if s is not None and s.expired(self.clock()) and not (
                self.staff_page is not None and self.staff_page.enrol.busy):
            self.leave_staff()

    # ------------------------------------------------------------------ layout
    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._scale_timer.start()
        portrait = self.height() > self.width()
        want = (QBoxLayout.Direction.TopToBottom if portrait
                else QBoxLayout.Direction.LeftToRight)
        if self.shopper_row.direction() != want:
            self.shopper_row.setDirection(want)
            self.shopper_row.setStretch(0, 3 if portrait else 2)
            self.shopper_row.setStretch(1, 2 if portrait else 1)
            self.receipt.setMinimumWidth(0 if portrait else 360)

    def apply_scale(self) -> None:
        """Text, buttons and touch targets follow the window (the kiosk's screen): the style
        is re-applied when the size changes the scale."""
        from kiosk.ui.style import BASE_POINT_SIZE, apply_style, screen_scale, touch_px

        app = QApplication.instance()
        w, h = max(1, self.width()), max(1, self.height())
        scale = screen_scale(w, h) * self.font_scale
        touch = touch_px(w, h, self.screen_inches)
        if abs(scale - self.ui_scale) < 0.03 and touch == self.touch:
            return
        self.ui_scale, self.touch = scale, touch
        font = QFont(app.font())
        font.setPointSizeF(BASE_POINT_SIZE * scale)
        app.setFont(font)
        apply_style(app, scale, touch)
        self.receipt.set_row_height(touch + 4)

    def show_fullscreen(self) -> None:
        """Full screen with or without a window manager: without one Qt cannot ask for the
        full-screen state, so the window is also given the screen's whole geometry."""
        screen = self.screen() or QApplication.primaryScreen()
        if screen is not None:
            self.setGeometry(screen.geometry())
        self.showFullScreen()
        if screen is not None and self.geometry() != screen.geometry():
            self.setGeometry(screen.geometry())

    # ------------------------------------------------------------------- close
    def lock_down(self) -> None:
        """Kiosk mode (``ui.kiosk_mode``): no window frame, kept on top, and the shopper cannot
        close it (Alt+F4, the window manager's close); the service manager stops it with a
        signal (``systemctl --user stop kiosk``) and restarts it if it ever exits."""
        self.locked = True
        self.setWindowFlags(self.windowFlags() | Qt.WindowType.FramelessWindowHint
                            | Qt.WindowType.WindowStaysOnTopHint)

    def closeEvent(self, event) -> None:
        if self.locked and not self._allow_close:
            log.info("kiosk mode: a request to close the window was refused")
            event.ignore()
            return
        self.preview_timer.stop()
        self.staff_timer.stop()
        self.tick_timer.stop()
        super().closeEvent(event)
