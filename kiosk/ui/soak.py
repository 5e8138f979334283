"""``kiosk bench --soak MINUTES --gui``: the soak (:mod:`kiosk.tools.soak`) with the real kiosk
window offscreen, in real time.

The Qt-free soak, its /proc samples, the growth summary and the cashier's part live in
:mod:`kiosk.tools.soak`; this is the window's loop around them (the one module of the window
that uses a tool: the program entry, :mod:`kiosk.__main__`, calls it).
"""
from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from kiosk.tools.soak import (
    LIMIT_PCT,
    WARMUP_FRACTION,
    model_and_catalogue,
    proc_sample,
    resolve_basket,
    summarize,
)


def run_gui_soak(minutes: float, *, embedder=None, db: str | Path | None = None, seed: int = 0,
                 sample_s: float | None = None, limit_pct: float = LIMIT_PCT,
                 progress: Callable[[str], None] = lambda m: None) -> dict:
    """The soak with the real kiosk window offscreen (controller, recognition worker, preview,
    receipt dialogs).  The demo camera runs in real time here (30 fps: the window's recognition
    worker uses the capture clock), so a minute is a minute of shop.  At the end of each basket
    the cashier's part goes through the controller and the sale through the window's Finish,
    whose receipt dialog is closed again on the next tick."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QDialog

    from kiosk.assemble import demo_parts
    from kiosk.camera.demo import DemoCamera
    from kiosk.checkout.session import CheckoutSession
    from kiosk.settings import Settings
    from kiosk.ui.app import build_window, setup_application

    if not float(minutes) > 0:
        raise ValueError(f"a soak needs a positive number of minutes, got {minutes!r}")
    duration = max(1.0, float(minutes) * 60.0)
    sample_s = float(sample_s) if sample_s else min(5.0, max(0.25, duration / 100.0))
    warmup_s = WARMUP_FRACTION * duration
    settings = Settings()
    app = setup_application(settings=settings)
    with tempfile.TemporaryDirectory(prefix="kiosk-soak-gui-") as tmp:
        embedder, db = model_and_catalogue(embedder, db, Path(tmp), progress)
        demo = DemoCamera(fps=30, seed=seed, realtime=True)
        parts = demo_parts(db, embedder=embedder, camera=demo, session=CheckoutSession)
        engine, session = parts.engine, parts.session
        window = build_window(parts, settings)
        window.resize(1280, 800)
        window.show()
        controller = window.controller
        counts = {"transactions": 0, "corrections": 0, "finish_refused": 0, "gui_states": 0}
        controller.stateChanged.connect(lambda _s: counts.__setitem__(
            "gui_states", counts["gui_states"] + 1))
        samples: list[dict] = []
        t0 = time.monotonic()
        last = {"phase": ""}

        def sample() -> None:
            samples.append({"t": round(time.monotonic() - t0, 2), **proc_sample(),
                            "frames": controller.worker.frames_processed,
                            "recognitions": session.recognitions,
                            "transactions": counts["transactions"],
                            "dialogs": len(window.findChildren(QDialog))})
            if len(samples) % 12 == 0:
                s = samples[-1]
                progress(f"{s['t']:7.0f} s  rss {s['rss_mb']} MiB  threads {s['threads']}  "
                         f"fds {s['fds']}  frames {s['frames']}  recognitions "
                         f"{s['recognitions']}  sales {s['transactions']}  dialogs "
                         f"{s['dialogs']}")

        def tick() -> None:
            if window.receipt_dialog is not None:  # the shopper took the receipt
                window.receipt_dialog.close()
            phase = demo.phase
            if phase == "hand" and last["phase"] != "hand":
                counts["corrections"] += resolve_basket(controller, demo.basket_count % 4 == 0)
                if controller.state is not None and controller.state.items:
                    ok = window.finish() is not None
                    counts["transactions" if ok else "finish_refused"] += 1
            last["phase"] = phase

        loop = QEventLoop()
        ticker = QTimer(interval=50, timeout=tick)
        sampler = QTimer(interval=int(sample_s * 1000), timeout=sample)
        QTimer.singleShot(int(duration * 1000), loop.quit)
        progress(f"soaking the window for {duration / 60:g} min (a sample every {sample_s:g} s)"
                 " ...")
        controller.start()
        sample()
        ticker.start()
        sampler.start()
        try:
            # the window's own message boxes (a refused Finish) would block: none are expected
            loop.exec()
            sample()
        finally:
            ticker.stop()
            sampler.stop()
            dialogs = len(window.findChildren(QDialog))
            capture = controller.capture
            captured = capture.frames_captured if capture is not None else 0
            controller.shutdown()
            window.close()
            window.deleteLater()
            app.processEvents()
            tables = engine.catalog.table_counts()
            parts.close()
    elapsed = samples[-1]["t"]
    metrics = summarize(samples, warmup_s, limit_pct)
    ok = all(m["pass"] for m in metrics.values())
    frames = controller.worker.frames_processed
    return {
        "mode": "gui",
        "duration_s": round(elapsed, 1),
        "warmup_s": round(warmup_s, 1),
        "sample_every_s": sample_s,
        "samples": len(samples),
        "frames_processed": frames,
        "frames_captured": captured,
        "repeats_skipped": controller.worker.frames_repeated,
        **counts,
        "recognitions": session.recognitions,
        "baskets": demo.basket_count,
        "scene_minutes": round(demo.frame_count / demo.fps / 60.0, 1),
        "frames_per_s": round(frames / max(elapsed, 1e-9), 1),
        "dialogs_alive_at_end": dialogs,
        **metrics,
        "limit_pct": limit_pct,
        "pass": ok,
        "verdict": "PASS" if ok else "FAIL",
        "transactions_stored": tables.get("transactions"),
        "corrections_stored": tables.get("corrections"),
        "trace": [[s["t"], s["rss_mb"], s["threads"], s["fds"], s["dialogs"]] for s in samples],
    }
