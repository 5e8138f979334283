"""``kiosk`` (no subcommand) / ``kiosk gui``: the self-checkout kiosk application.

Start-up: the Qt application, the CJK font, the translation and the settings come first and a
small "starting" screen shows at once; the camera, the catalogue and the engine (about two
seconds of model loading) open in a worker thread; then the shopper view replaces it.
"""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtWidgets import (
    QApplication,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from kiosk.assemble import KioskParts, cashier_auth, open_camera_for, open_parts, staff_auth
from kiosk.ui import i18n
from kiosk.ui.controller import KioskController
from kiosk.ui.main_window import MainWindow
from kiosk.ui.style import apply_style, install_font
from kiosk.ui.tasks import run_task

log = logging.getLogger(__name__)


def _get(obj, dotted: str, default=None):
    for part in dotted.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return default
    return obj


def build_window(parts: KioskParts, settings, settings_path=None) -> MainWindow:
    """The controller (threads started) and the shopper window, not yet shown."""
    controller = KioskController(
        parts.engine, parts.session, parts.camera, db_path=parts.db_path, settings=settings,
        camera_opener=lambda src: open_camera_for(src, settings, parts.engine),
        camera_source=parts.camera_source, settings_path=settings_path)
    window = MainWindow(
        controller, settings, auth=staff_auth(parts.engine.catalog, settings),
        cashier_auth=cashier_auth(parts.engine.catalog, settings),
        store_name=_get(settings, "store.name", "") or "",
        staff_timeout_s=float(_get(settings, "staff.session_timeout_s", 120)),
        preview_fps=float(_get(settings, "camera.fps", 30) or 30))
    controller.start()
    return window


class StartingScreen(QWidget):
    """Shown while the engine opens: what start-up is doing, how far it is and about how long
    is left (fed by :meth:`report` from the worker thread); shows the error (and Quit) when
    start-up fails."""

    quit = Signal()
    # (stage, done, total) of kiosk.progress; emitted by report() on any thread, shown on the
    # GUI thread
    progressed = Signal(str, int, int)

    def __init__(self) -> None:
        super().__init__()
        self.setObjectName("StartingScreen")
        self.title = QLabel(objectName="Title")
        self.title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.message = QLabel(objectName="Hint")
        self.message.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.message.setWordWrap(True)
        self.bar = QProgressBar()
        self.bar.setRange(0, 0)
        self.bar.setTextVisible(False)
        self.bar.setFixedWidth(360)
        self.quit_button = QPushButton()
        self.quit_button.clicked.connect(self.quit)
        self.quit_button.hide()
        self._error = ""
        self._progress: tuple[str, int, int] | None = None
        self._rate_from: tuple[str, int, float] | None = None  # stage, done, when first seen
        self._left_s: float | None = None
        self.progressed.connect(self.show_progress, Qt.ConnectionType.QueuedConnection)
        lay = QVBoxLayout(self)
        lay.addStretch(1)
        lay.addWidget(self.title)
        lay.addWidget(self.message)
        lay.addWidget(self.bar, 0, Qt.AlignmentFlag.AlignHCenter)
        lay.addWidget(self.quit_button, 0, Qt.AlignmentFlag.AlignHCenter)
        lay.addStretch(1)
        self.resize(1024, 640)
        self.retranslate()

    def retranslate(self) -> None:
        self.setWindowTitle(self.tr("Self-checkout"))
        self.title.setText(self.tr("Self-checkout"))
        self.message.setText(self._progress_text() if not self._error else
                             self.tr("Could not start: %1").replace("%1", self._error))
        self.quit_button.setText(self.tr("Quit"))

    def report(self, stage: str, done: int, total: int) -> None:
        """A ``progress(stage, done, total)`` for :func:`open_parts`: safe on any thread."""
        self.progressed.emit(str(stage), int(done), int(total))

    def show_progress(self, stage: str, done: int, total: int, now: float | None = None
                      ) -> None:
        """Show a progress report (GUI thread).  The time left comes from the rate of this
        stage so far (``now``: a ``time.monotonic()`` reading, for tests)."""
        import time

        from kiosk.progress import MODEL

        now = time.monotonic() if now is None else float(now)
        start = self._rate_from
        if start is None or start[0] != stage or done < start[1]:
            self._rate_from, self._left_s = (stage, done, now), None
        elif done > start[1] and now - start[2] > 0.2:
            rate = (done - start[1]) / (now - start[2])
            self._left_s = max(0.0, (total - done) / rate)
        self._progress = (stage, done, total)
        if stage != MODEL and total > 0:
            self.bar.setRange(0, total)
            self.bar.setValue(min(done, total))
        else:  # (how long the model takes to start is not known in advance)
            self.bar.setRange(0, 0)
        if not self._error:
            self.retranslate()

    def _progress_text(self) -> str:
        from kiosk.progress import DEMO, EMBED, INDEX, MODEL, TEXT

        starting = self.tr("Starting: loading the product recognition…")
        if self._progress is None:
            return starting
        stage, done, total = self._progress
        if stage == MODEL:
            return (self.tr("Starting the product recognition model…") if done < total
                    else starting)
        text = {DEMO: self.tr("Building the demo catalogue: picture %1 of %2 — %3"),
                EMBED: self.tr("Learning the catalogue's pictures: %1 of %2 — %3"),
                TEXT: self.tr("Reading the text on the packs: %1 of %2 — %3"),
                INDEX: self.tr("Building the search index: %1 of %2 — %3")}.get(stage)
        if text is None or total <= 0:
            return starting
        return text.replace("%1", str(done)).replace("%2", str(total)).replace(
            "%3", self._time_left())

    def _time_left(self) -> str:
        left = self._left_s
        if left is None:
            return self.tr("estimating…")
        if left < 10:
            return self.tr("almost done")
        if left < 60:
            return self.tr("about %1 s left").replace("%1", str(int(round(left / 5)) * 5))
        return self.tr("about %1 min left").replace("%1", str(max(1, int(round(left / 60)))))

    def changeEvent(self, event) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(event)

    def fail(self, message: str) -> None:
        self._error = message
        self.bar.hide()
        self.quit_button.show()
        self.retranslate()


def setup_application(argv: list[str] | None = None, settings=None) -> QApplication:
    """The QApplication with the CJK font, the style and the configured language."""
    app = QApplication.instance() or QApplication(list(argv or sys.argv[:1]))
    app.setApplicationName("kiosk")
    scale = float(_get(settings, "ui.font_scale", 1.0) or 1.0)
    install_font(app, scale)
    apply_style(app, scale)
    i18n.set_language(app, str(_get(settings, "ui.language", "zh_CN") or "zh_CN"))
    if _get(settings, "ui.touch_keyboard", True) and app.property("kioskKeyboard") is None:
        from kiosk.ui.keyboard import KeyboardManager

        app.setProperty("kioskKeyboard", True)
        app._kiosk_keyboard = KeyboardManager(app)  # (kept alive with the application)
    return app


# libraries Qt's xcb platform plugin loads that a minimal Debian desktop may lack
X11_PACKAGES = {"xcb-cursor": "libxcb-cursor0", "xcb-icccm": "libxcb-icccm4",
                "xcb-keysyms": "libxcb-keysyms1", "xkbcommon-x11": "libxkbcommon-x11-0",
                "xcb-render-util": "libxcb-render-util0", "xcb-image": "libxcb-image0",
                "xcb-shape": "libxcb-shape0", "xcb-randr": "libxcb-randr0", "EGL": "libegl1",
                "fontconfig": "libfontconfig1"}


def missing_x11_libraries() -> list[str]:
    """The X11 libraries Qt will fail to load (only when it is going to use X11)."""
    import ctypes.util

    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if not sys.platform.startswith("linux") or not os.environ.get("DISPLAY") or (
            platform and not platform.startswith("xcb")):
        return []
    return [lib for lib in X11_PACKAGES if ctypes.util.find_library(lib) is None]


def main(argv: list[str] | None = None, settings_path: str | Path | None = None,
         fullscreen: bool = False, first_receipt_exit: float | None = None) -> int:
    """Run the kiosk.  ``first_receipt_exit`` (seconds, for smoke tests and start-up timing):
    quit as soon as the first receipt with items is on screen, printing how long after process
    launch that was; exit status 1 if none came within that many seconds."""
    from kiosk.settings import SettingsError, default_settings_path, load_settings

    if not logging.getLogger().handlers:  # started without the ``kiosk`` command
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    path = Path(settings_path) if settings_path else default_settings_path()
    try:
        settings = load_settings(path)
    except SettingsError as exc:
        print(f"kiosk: error: {exc}", file=sys.stderr)
        return 2
    if (sys.platform.startswith("linux") and not os.environ.get("QT_QPA_PLATFORM")
            and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY")):
        print("kiosk: error: no display found (DISPLAY / WAYLAND_DISPLAY are unset). Start the "
              "kiosk from the desktop session, or set QT_QPA_PLATFORM=offscreen for a headless "
              "run; `kiosk recognize` works without a display.", file=sys.stderr)
        return 2
    missing = missing_x11_libraries()
    if missing:
        print("kiosk: error: Qt's X11 platform needs system libraries that are not installed: "
              + ", ".join(missing) + ". On Debian: sudo apt-get install "
              + " ".join(X11_PACKAGES[m] for m in missing), file=sys.stderr)
        return 2
    from kiosk import __version__
    from kiosk.paths import data_dir

    log.info("kiosk %s starting: data folder %s, settings %s", __version__, data_dir(), path)
    app = setup_application(argv, settings)
    kiosk_mode = bool(fullscreen or _get(settings, "ui.kiosk_mode", False)
                      or _get(settings, "ui.fullscreen", False))
    splash = StartingScreen()
    splash.quit.connect(app.quit)
    from kiosk.progress import Throttle

    progress = Throttle(splash.report)  # (open_parts calls it on the worker thread)
    splash.showFullScreen() if kiosk_mode else splash.show()
    holder: dict[str, Any] = {}

    def started(parts: KioskParts) -> None:
        try:
            window = build_window(parts, settings, path)
        except Exception as exc:
            log.exception("start-up failed")
            splash.fail(str(exc))
            return
        holder["window"], holder["parts"] = window, parts
        from kiosk.ui.store_sync import start_store_sync

        holder["store"] = start_store_sync(window, parts, settings)  # None: no store server
        log.info("kiosk ready: camera %s, catalogue %s, model %s", parts.camera_source,
                 parts.db_path, getattr(parts.engine.embedder, "model_id", "?"))
        if first_receipt_exit is not None:
            _exit_on_first_receipt(app, window, holder)
        if _get(settings, "ui.kiosk_mode", False):
            window.lock_down()
        _quit_on_sigterm(app)  # again: importing paddle here (model_process off) replaces it
        window.show_fullscreen() if kiosk_mode else window.resize(1280, 800) or window.show()
        splash.close()
        from kiosk.runtime.pauses import after_start

        after_start()  # no collector walk over start-up's objects while a tray is decided
        # selling by the pictures from here; the packs' words count as they are read (logged)
        parts.engine.start_reading_text()

    def shutdown() -> None:
        if holder.get("store") is not None:
            holder["store"].stop()
        window = holder.get("window")
        if window is not None:
            window._allow_close = True
            window.controller.shutdown()
        parts = holder.get("parts")
        if parts is not None:
            parts.close()  # the engine (index saved), the model's process, the camera

    app.aboutToQuit.connect(shutdown)
    _quit_on_sigterm(app)
    if first_receipt_exit is not None:
        from PySide6.QtCore import QTimer

        def too_late() -> None:
            print(f"kiosk: error: no receipt within {first_receipt_exit:.0f} s", file=sys.stderr)
            holder["status"] = 1
            app.quit()

        QTimer.singleShot(int(first_receipt_exit * 1000), too_late)
    run_task(open_parts, settings, progress=progress, on_done=started, on_error=splash.fail)
    status = app.exec()
    return holder.get("status", status)


def _quit_on_sigterm(app) -> None:
    """``systemctl stop`` (SIGTERM) and Ctrl+C end the kiosk cleanly (threads stopped, index
    saved) instead of killing it mid-frame.  Python runs signal handlers only between
    bytecodes, so a timer lets the interpreter in while Qt's event loop waits."""
    import signal

    from PySide6.QtCore import QTimer

    def stop(signum, _frame) -> None:
        log.info("signal %d: quitting", signum)
        app.quit()

    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            signal.signal(sig, stop)
        except ValueError:  # not the main thread (tests)
            return
    if getattr(app, "_kiosk_signal_timer", None) is None:
        timer = QTimer(app)
        timer.timeout.connect(lambda: None)
        timer.start(250)
        app._kiosk_signal_timer = timer  # type: ignore[attr-defined]


def _exit_on_first_receipt(app, window, holder) -> None:
    from kiosk.progress import process_age_s

    def on_state(state) -> None:
        if state.receipt.lines and "status" not in holder:
            holder["status"] = 0
            items = sum(line.qty for line in state.receipt.lines)
            print(f"first receipt ({items} items, total {state.receipt.total}) on screen "
                  f"{process_age_s():.1f} s after launch", flush=True)
            app.quit()

    window.controller.stateChanged.connect(on_state)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv))
