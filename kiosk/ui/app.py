"""``kiosk`` (no subcommand) / ``kiosk gui``: the self-checkout kiosk application.

Start-up: the Qt application, the CJK font, the translation and the settings come first and a
small "starting" screen shows at once; the camera, the catalogue and the engine (about two
seconds of model loading) open in a worker thread; then the shopper view replaces it.
"""
from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
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

from . import i18n
from .controller import KioskController
from .main_window import MainWindow
from .style import apply_style, install_font
from .tasks import run_task

log = logging.getLogger(__name__)


def _get(obj, dotted: str, default=None):
    for part in dotted.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return default
    return obj


@dataclass
class KioskParts:
    """What start-up opens off the GUI thread."""

    engine: Any
    session: Any
    camera: Any
    camera_source: str
    db_path: Path


def open_camera_for(source: str, settings, engine=None):
    """Open ``source`` with the configured size/fps.  The demo camera also calibrates the
    tray detector with its empty tray when an ``engine`` is given."""
    from kiosk.camera import open_camera

    camera = open_camera(str(source), _get(settings, "camera.width"),
                         _get(settings, "camera.height"), _get(settings, "camera.fps"))
    if engine is not None and hasattr(camera, "background"):
        calibrate = getattr(engine.detector, "calibrate", None)
        if callable(calibrate):
            calibrate(camera.background())
    return camera


def open_parts(settings, db_path: str | Path | None = None, embedder=None) -> KioskParts:
    """Camera, catalogue, engine and checkout session (slow: call it off the GUI thread)."""
    from kiosk.camera import find_default_camera
    from kiosk.cli import resolve_db
    from kiosk.engine import Engine
    from kiosk.assemble import checkout_session
    from kiosk.settings import Settings

    source = str(_get(settings, "camera.source", "auto"))
    if source == "auto":
        source = find_default_camera()
    camera = open_camera_for(source, settings)
    if db_path is None and _get(settings, "paths.db"):
        db_path = settings.db_path()
    if embedder is None and _get(settings, "recognition.model_process", True):
        # Paddle Inference keeps Python's GIL for a whole predictor run: in this process every
        # batch would freeze the GUI thread (~230 ms for 15 crops).  In a child process the
        # worker thread only waits on a pipe (measured: longest GUI-thread gap 244 → 8 ms
        # beside a worker embedding 16 crops three times).  Started first, so that building
        # the demo catalogue on a first start uses it too (no model in this process at all).
        from kiosk.embed.remote import RemoteEmbedder

        embedder = RemoteEmbedder()
    try:
        db = resolve_db(str(db_path) if db_path else None, embedder=embedder)
        background = None
        if _get(settings, "recognition.background"):
            from kiosk.gallery_io import load_image

            background = load_image(Path(settings.recognition.background).expanduser())
        elif hasattr(camera, "background"):  # the demo camera knows its empty tray
            background = camera.background()
        from kiosk.text import make_text_reader

        engine = Engine.open(db, embedder=embedder,
                             detector=_get(settings, "recognition.detector") or None,
                             background=background,
                             threshold=_get(settings, "recognition.threshold"),
                             k=_get(settings, "recognition.k"),
                             unsure_margin=_get(settings, "checkout.unsure_margin", 0.03),
                             text_reader=make_text_reader(embedder)
                             if _get(settings, "recognition.read_text", True) else None)
    except BaseException:  # nothing left running: the model process, the camera
        if hasattr(embedder, "close"):
            embedder.close()
        camera.close()
        raise
    # In this process (tests, model_process = false) one crop per run bounds a GUI freeze to
    # ~50 ms at the same total cost.
    if hasattr(engine.embedder, "batch_size"):
        engine.embedder.batch_size = 1
    session = checkout_session(engine, settings if isinstance(settings, Settings) else None)
    return KioskParts(engine, session, camera, source, Path(db))


def build_window(parts: KioskParts, settings, settings_path=None) -> MainWindow:
    """The controller (threads started) and the shopper window, not yet shown."""
    from kiosk.staff_auth import StaffAuth

    controller = KioskController(
        parts.engine, parts.session, parts.camera, db_path=parts.db_path, settings=settings,
        camera_opener=lambda src: open_camera_for(src, settings, parts.engine),
        camera_source=parts.camera_source, settings_path=settings_path)
    auth = StaffAuth(parts.engine.catalog,
                     max_attempts=int(_get(settings, "staff.max_pin_attempts", 5)),
                     lockout_s=float(_get(settings, "staff.lockout_s", 30)))
    from kiosk.assemble import cashier_auth

    window = MainWindow(
        controller, settings, auth=auth, cashier_auth=cashier_auth(parts.engine.catalog, settings),
        store_name=_get(settings, "store.name", "") or "",
        staff_timeout_s=float(_get(settings, "staff.session_timeout_s", 120)),
        preview_fps=float(_get(settings, "camera.fps", 30) or 30))
    controller.start()
    return window


class StartingScreen(QWidget):
    """Shown while the engine opens; shows the error (and Quit) when start-up fails."""

    quit = Signal()

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
        self.message.setText(self.tr("Starting: loading the product recognition…")
                             if not self._error else
                             self.tr("Could not start: %1").replace("%1", self._error))
        self.quit_button.setText(self.tr("Quit"))

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
        log.info("kiosk ready: camera %s, catalogue %s, model %s", parts.camera_source,
                 parts.db_path, getattr(parts.engine.embedder, "model_id", "?"))
        if first_receipt_exit is not None:
            _exit_on_first_receipt(app, window, holder)
        if _get(settings, "ui.kiosk_mode", False):
            window.lock_down()
        _quit_on_sigterm(app)  # again: importing paddle here (model_process off) replaces it
        window.showFullScreen() if kiosk_mode else window.resize(1280, 800) or window.show()
        splash.close()

    def shutdown() -> None:
        window = holder.get("window")
        if window is not None:
            window._allow_close = True
            window.controller.shutdown()
        parts = holder.get("parts")
        if parts is not None:
            try:
                parts.engine.close()
            except Exception:
                log.exception("closing the engine")
            close = getattr(parts.engine.embedder, "close", None)
            if callable(close):  # the model's child process
                close()

    app.aboutToQuit.connect(shutdown)
    _quit_on_sigterm(app)
    if first_receipt_exit is not None:
        from PySide6.QtCore import QTimer

        def too_late() -> None:
            print(f"kiosk: error: no receipt within {first_receipt_exit:.0f} s", file=sys.stderr)
            holder["status"] = 1
            app.quit()

        QTimer.singleShot(int(first_receipt_exit * 1000), too_late)
    run_task(open_parts, settings, on_done=started, on_error=splash.fail)
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
    from kiosk.selftest import process_age_s

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
