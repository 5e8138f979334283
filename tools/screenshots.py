"""Render the kiosk UI to PNG files for the docs (offscreen, real engine, demo camera).

    python tools/screenshots.py [OUT_DIR]      # default: docs/screenshots

Shows the shopper view with items on the tray; the "only a cashier" panel a shopper gets on
tapping an item; a call for the cashier; a cashier's session with the correction panel; a stale
(frozen) picture; staff enrolment with captured views, a refused mixed capture and the
look-alike confirmation; each in Chinese and English (1280×800).  The demo
catalogue is built in a temporary folder unless ``--db`` names one (it is not changed).
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("GLOG_minloglevel", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SIZE = (1280, 800)
SCENE = [("add", "DEMO-001", 250, 220, 15), ("add", "DEMO-004", 620, 420, -10),
         ("add", "DEMO-006", 980, 230, 5), ("add", "DEMO-010", 330, 560, -20),
         ("add", "DEMO-007", 1000, 540, 0), ("wait", 600)]
ENROL_SKU = "DEMO-011"
# a second product is still on the tray at the first capture (refused), then taken off
ENROL_SCENE = [("add", ENROL_SKU, 640, 360, 0), ("add", "DEMO-002", 1030, 200, 30),
               ("until", "solo"), ("remove", "DEMO-002"), ("wait", 0.8),
               ("shift", ENROL_SKU, 0, 0, 90), ("wait", 0.8),
               ("shift", ENROL_SKU, -200, 40, 135), ("wait", 600)]
# a "new" product that is really the cucumber crisps already in the catalogue
LOOKALIKE_SCENE = [("add", "DEMO-005", 640, 360, 0), ("wait", 0.8),
                   ("shift", "DEMO-005", 0, 0, 90), ("wait", 0.8),
                   ("shift", "DEMO-005", -200, 40, 135), ("wait", 600)]
CASHIER = ("C001", "王芳", "246810")


def _pump(cond, timeout: float = 20.0) -> bool:
    from PySide6.QtCore import QEventLoop
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)
        if cond():
            return True
        time.sleep(0.01)
    return cond()


def _save(image, path: Path) -> Path:
    """Save a QImage/QPixmap as a small PNG (palette of 256 colours)."""
    from PIL import Image
    from PySide6.QtCore import QBuffer, QIODevice

    buf = QBuffer()
    buf.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buf, "PNG")
    import io

    img = Image.open(io.BytesIO(bytes(buf.data()))).convert("RGB")
    img.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
        path, optimize=True)
    return path


def _over(window, dialog):
    """The window with ``dialog`` drawn centred over it, the window dimmed (as on screen)."""
    from PySide6.QtGui import QColor, QPainter

    shot = window.grab()
    p = QPainter(shot)
    p.fillRect(shot.rect(), QColor(0, 0, 0, 90))
    d = dialog.grab()
    p.drawPixmap((shot.width() - d.width()) // 2, (shot.height() - d.height()) // 2, d)
    p.end()
    return shot


def _capture_views(window, camera, enrol, n: int = 3) -> None:
    """Capture ``n`` views, each once the item rests in a new place."""
    seen = []
    for _ in range(n):
        _pump(lambda: camera.phase == "resting" and camera.truth() not in seen)
        seen.append(camera.truth())
        idx = window.controller.latest_frame().index
        _pump(lambda i=idx: window.controller.latest_frame().index > i + 1, 5)
        enrol.capture_view()


VIEWS = ("shopper", "cashier_needed", "call", "attendant", "keyboard", "stale", "staff_enrol",
         "enrol_refused", "lookalike")
#: the shopper view is also shown at each of these screen sizes (``layout_<w>x<h>_<lang>``)
SCREENS = ((1280, 800), (1366, 768), (1920, 1080), (2560, 1440), (1080, 1920))


def render_screenshots(out_dir: str | Path, *, db: str | Path | None = None, embedder=None,
                       languages=("zh_CN", "en"), layouts: bool = True) -> list[Path]:
    """Render every view of :data:`VIEWS` in each language: ``<view>_<zh|en>.png``, and
    (``layouts``) the shopper view at every size of :data:`SCREENS`."""
    from kiosk.assemble import (
        KioskParts,
        cashier_auth,
        checkout_session,
        load_model,
        open_engine,
        text_reader_for,
    )
    from kiosk.camera.demo import DemoCamera
    from kiosk.settings import Settings
    from kiosk.ui import i18n
    from kiosk.ui.app import build_window, setup_application

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="kiosk-shots-"))
    tags = {lang: "zh" if lang.startswith("zh") else "en" for lang in languages}

    def each_language(name: str, grab) -> None:
        for lang in languages:
            i18n.set_language(app, lang)
            _pump(lambda: False, 0.3)
            files.append(_save(grab(), out / f"{name}_{tags[lang]}.png"))

    try:
        if embedder is None:
            embedder = load_model()
        if db is None:
            from kiosk.demo.catalog import build_demo_catalog

            db = build_demo_catalog(tmp / "demo" / "catalog.db", embedder=embedder)
        store = tmp / "store"
        shutil.copytree(Path(db).parent, store)
        db = store / Path(db).name
        settings = Settings()
        app = setup_application(settings=settings)
        camera = DemoCamera(fps=30, seed=1, script=SCENE)
        engine = open_engine(db, settings, embedder=embedder, background=camera.background(),
                             text_reader=text_reader_for(settings, embedder))
        engine.remove_product(ENROL_SKU)  # so that staff can enrol it
        cashier_auth(engine.catalog).add(*CASHIER, role="staff")
        session = checkout_session(engine, settings, settle_ms=150)
        parts = KioskParts(engine, session, camera, "demo", db, owns_model=False)
        window = build_window(parts, settings)
        window.resize(*SIZE)
        window.show()
        files: list[Path] = []
        try:
            ok = _pump(lambda: window.controller.state is not None
                       and len(window.controller.state.items) == 5
                       and window.controller.state.payable)
            if not ok:
                raise RuntimeError("the demo items were not recognised in time")
            each_language("shopper", window.grab)
            if layouts:
                for size in SCREENS:
                    window.resize(*size)
                    _pump(lambda s=size: (window.width(), window.height()) == s, 5)
                    window.apply_scale()
                    window.resize(*size)  # (the last size's style may have held it wider)
                    _pump(lambda s=size: (window.width(), window.height()) == s, 5)
                    _pump(lambda: False, 0.4)
                    each_language(f"layout_{size[0]}x{size[1]}", window.grab)
                window.resize(*SIZE)
                _pump(lambda: (window.width(), window.height()) == SIZE, 5)
                window.apply_scale()
                _pump(lambda: False, 0.3)
            # a shopper taps the crisps: only a cashier may change them
            crisps = next(i for i in window.controller.state.items
                          if i.sku in ("DEMO-004", "DEMO-005"))
            panel = window.open_correction(crisps.track_id)
            _pump(panel.isVisible, 5)
            each_language("cashier_needed", lambda: _over(window, panel))
            panel.call()  # ... and calls the cashier
            _pump(lambda: bool(window.controller.state.calls), 5)
            each_language("call", window.grab)
            # the cashier comes with their code: who acts is shown, the panel opens
            from kiosk.checkout.cashier_auth import Cashier

            window.controller.open_attendant(Cashier(CASHIER[0], CASHIER[1], True, False),
                                             "code")
            choc = next(i for i in window.controller.state.items if i.sku == "DEMO-010")
            window.controller.override(choc.track_id, "DEMO-010")  # the "set by hand" style
            dlg = window.open_correction(crisps.track_id)
            _pump(dlg.isVisible, 5)
            _pump(lambda: False, 0.2)
            each_language("attendant", lambda: _over(window, dlg))
            # the on-screen keyboard, inside the panel (a modal dialog blocks other windows)
            dlg.activateWindow()
            dlg.search.setFocus()
            _pump(lambda: app._kiosk_keyboard.visible_board() is not None, 5)
            for key in "DEMO-006":
                app._kiosk_keyboard.visible_board().press(key)
            _pump(lambda: False, 0.4)
            each_language("keyboard", lambda: _over(window, dlg))
            dlg.reject()
            window.controller.end_attendant()
            # the camera picture freezes: the receipt is withdrawn until it is live again
            camera.freeze(600)
            _pump(lambda: window.controller.state.phase == "stale", 15)
            each_language("stale", window.grab)
            camera.freeze(0)
            # staff enrolment: a capture with two products is refused, then three good views
            camera2 = DemoCamera(fps=30, seed=2, script=ENROL_SCENE)
            window.controller.set_camera(camera2)
            window.enter_staff()
            enrol = window.staff_page.enrol
            _pump(lambda: camera2.phase == "resting" and len(camera2.truth()) == 2)
            idx = window.controller.latest_frame().index
            _pump(lambda i=idx: window.controller.latest_frame().index > i + 1, 5)
            enrol.capture_view()
            each_language("enrol_refused", window.grab)
            camera2.go("solo")
            _pump(lambda: len(camera2.truth()) == 1 and camera2.phase == "resting")
            _capture_views(window, camera2, enrol)
            enrol.name.setText("红牛 250ml")
            enrol.sku.setText(ENROL_SKU)
            enrol.price.setText("6.00")
            each_language("staff_enrol", window.grab)
            # a "new" product that is an existing one: staff must confirm, seeing both
            enrol.clear()
            camera3 = DemoCamera(fps=30, seed=4, script=LOOKALIKE_SCENE)
            window.controller.set_camera(camera3)
            _capture_views(window, camera3, enrol)
            enrol.name.setText("乐事薯片 新口味")
            enrol.sku.setText("LAYS-NEW")
            enrol.price.setText("7.50")
            enrol.save()
            _pump(lambda: enrol.lookalike_dialog is not None
                  and enrol.lookalike_dialog.isVisible(), 60)
            look = enrol.lookalike_dialog
            _pump(lambda: False, 0.3)
            each_language("lookalike", lambda: _over(window, look))
            look.reject()
        finally:
            window.controller.shutdown()
            window.close()
            window.deleteLater()
            from PySide6.QtCore import QEvent
            from PySide6.QtWidgets import QApplication

            QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
            parts.close()  # the engine and the camera (the model is the caller's)
            i18n.set_language(app, "zh_CN")
        return files
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", nargs="?", default=str(Path(__file__).resolve().parents[1] / "docs"
                                                    / "screenshots"))
    ap.add_argument("--db", help="catalogue to copy (default: a fresh demo catalogue)")
    args = ap.parse_args(argv)
    for path in render_screenshots(args.out, db=args.db):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
