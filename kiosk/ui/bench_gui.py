"""``kiosk bench --gui``: the real kiosk window, offscreen, on the demo catalogue.

A realtime scripted demo camera (30 fps) places 5 items, waits, clears, places 15 items
(auto-placed, so they are shrunk to fit), waits and clears, while this measures on the GUI thread:

* ``preview_fps``: distinct camera frames the tray view painted per second (paint events whose
  frame index changed), overall and while the recognition worker was recognising;
* ``settle_to_receipt_ms``: from the frame at which the session decided the scene had been still
  for its settle time (that frame's capture time) to the receipt panel holding the new lines
  (``receipt_paint_ms``: to its next paint), for the 5- and 15-item scenes, with the session's
  own ``timings_ms['total']`` for those recognitions (``recognition_ms``);
* GUI-thread stalls: a 5 ms timer's tick gaps (the first second after the window shows is
  left out).
"""
from __future__ import annotations

import itertools
import os
import statistics
import tempfile
import time
from pathlib import Path

SKUS = ("DEMO-001", "DEMO-002", "DEMO-003", "DEMO-004", "DEMO-005", "DEMO-006", "DEMO-007",
        "DEMO-008", "DEMO-009", "DEMO-010", "DEMO-011", "DEMO-012")


def _script(wait_s: float) -> list[tuple]:
    five = [("add", s) for s in SKUS[:5]]
    fifteen = [("add", SKUS[i % len(SKUS)]) for i in range(15)]
    return ([("wait", 1.0)] + five + [("wait", wait_s), ("clear",), ("wait", 1.0)]
            + fifteen + [("wait", wait_s + 1.0), ("clear",), ("wait", 1.5)])


def _script_seconds(script) -> float:
    from kiosk.camera.demo import CLEAR_S, SLIDE_S

    return sum(SLIDE_S if s[0] == "add" else CLEAR_S if s[0] == "clear" else float(s[1])
               for s in script)


def run_gui_bench(wait_s: float = 3.0, progress=None, model_process: bool = True) -> dict:
    """``model_process``: the model in its own process, as the kiosk runs it (False: in this
    process, one crop per Paddle run, for comparison)."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.setdefault("GLOG_minloglevel", "2")
    from PySide6.QtCore import QEvent, QObject, Qt, QTimer
    from PySide6.QtWidgets import QApplication

    from kiosk.assemble import demo_parts, load_model
    from kiosk.camera.demo import DemoCamera
    from kiosk.checkout.session import CheckoutSession
    from kiosk.demo.catalog import build_demo_catalog
    from kiosk.settings import Settings

    from kiosk.ui.app import build_window, setup_application

    say = progress or (lambda _m: None)
    settings = Settings()
    app = setup_application(settings=settings)
    tmp = tempfile.TemporaryDirectory(prefix="kiosk-gui-bench-")
    say("building the demo catalogue…")
    embedder = load_model(settings, own_process=model_process)
    db = build_demo_catalog(Path(tmp.name) / "catalog.db", embedder=embedder)

    script = _script(wait_s)
    settle_ms = float(settings.recognition.settle_ms)
    parts = demo_parts(db, settings, embedder=embedder,
                       camera=DemoCamera(fps=30, seed=3, realtime=True, script=script),
                       session=lambda engine: CheckoutSession(engine, settle_ms=settle_ms))
    session, camera = parts.session, parts.camera

    # ---- worker-thread hooks (plain appends: list.append is atomic under the GIL)
    frame_t: dict[int, float] = {}  # frame index -> capture time, for recognised frames
    windows: list[tuple[float, float]] = []  # (start, end) of each recognition, monotonic
    recognitions: list[dict] = []
    orig_process, orig_recognise, orig_apply = (session.process, session._recognise,
                                                session._apply)

    def process(frame):
        frame_t[frame.index] = frame.t
        state = orig_process(frame)
        if len(frame_t) > 4096:  # keep only what is needed
            for k in sorted(frame_t)[:-64]:
                if not any(r["frame"] == k for r in recognitions):
                    frame_t.pop(k, None)
        return state

    def recognise(image, tracks):
        t0 = time.monotonic()
        try:
            return orig_recognise(image, tracks)
        finally:
            windows.append((t0, time.monotonic()))

    def apply(frame_index, r):
        state = orig_apply(frame_index, r)
        recognitions.append({"frame": frame_index, "t_frame": frame_t.get(frame_index),
                             "t_done": time.monotonic(), "n_items": len(state.items),
                             "n_embedded": state.n_embedded,
                             "timings_ms": dict(state.timings_ms)})
        return state

    session.process, session._recognise, session._apply = process, recognise, apply

    # ---- the real window
    say("starting the kiosk window…")
    window = build_window(parts, settings)
    window.resize(1280, 800)
    window.show()
    from kiosk.runtime.pauses import after_start

    after_start()  # as the kiosk does once its window is up
    t_start = time.monotonic()

    shown: dict[int, float] = {}  # frame index -> receipt updated on the GUI thread
    painted_receipt: dict[int, float] = {}  # frame index -> first receipt paint after that
    pending_receipt: list[int] = []
    paints: list[float] = []  # times of tray paints showing a new frame
    last_painted = [-1]

    def on_state(state):  # connected after the window's show_state: runs after it
        if state.frame_index not in shown:
            shown[state.frame_index] = time.monotonic()
            pending_receipt.append(state.frame_index)

    window.controller.stateChanged.connect(on_state, Qt.ConnectionType.DirectConnection)

    class Painted(QObject):
        def eventFilter(self, obj, event):
            if event.type() == QEvent.Type.Paint:
                now = time.monotonic()
                if obj is window.tray:
                    if window.tray.frame_index != last_painted[0]:
                        last_painted[0] = window.tray.frame_index
                        paints.append(now)
                elif pending_receipt:
                    for idx in pending_receipt:
                        painted_receipt.setdefault(idx, now)
                    pending_receipt.clear()
            return False

    painted = Painted()
    window.tray.installEventFilter(painted)
    window.receipt.table.viewport().installEventFilter(painted)

    ticks: list[float] = []
    ticker = QTimer(timerType=Qt.TimerType.PreciseTimer, interval=5)
    ticker.timeout.connect(lambda: ticks.append(time.monotonic()))
    ticker.start()

    run_s = _script_seconds(script) + 1.0
    deadline = t_start + run_s + 20.0  # a slow machine: wait for the 15-item receipt

    def check():
        now = time.monotonic()
        done_15 = any(r["n_items"] >= 15 and r["frame"] in shown for r in recognitions)
        if (now >= t_start + run_s and done_15) or now >= deadline:
            app.quit()

    poll = QTimer(interval=100)
    poll.timeout.connect(check)
    poll.start()
    say(f"running the scripted scene (~{run_s:.0f} s)…")
    app.exec()
    t_end = time.monotonic()
    ticker.stop()
    poll.stop()
    window.controller.shutdown()
    window.close()
    window.deleteLater()
    QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    parts.close()  # the engine and the camera
    if hasattr(embedder, "close"):  # the model's process (lent to the parts)
        embedder.close()
    tmp.cleanup()

    # ---- figures
    def rate(times, spans):
        total = sum(b - a for a, b in spans)
        n = sum(1 for t in times if any(a <= t <= b for a, b in spans))
        return round(n / total, 1) if total > 0 else None

    first_paint = paints[0] if paints else t_start
    preview_fps = rate(paints, [(first_paint, t_end)])
    recog_windows = [(a, b) for a, b in windows if a >= first_paint]
    preview_fps_recog = rate(paints, recog_windows)

    def scene(n):
        for r in recognitions:
            if r["n_items"] == n and r["t_frame"] is not None:
                return r
        return None

    settle_to_receipt, settle_to_paint, recog_ms, scenes = {}, {}, {}, {}
    for n in (5, 15):
        r = scene(n)
        key = str(n)
        if r is None or r["frame"] not in shown:
            settle_to_receipt[key] = settle_to_paint[key] = recog_ms[key] = None
            continue
        settle_to_receipt[key] = round((shown[r["frame"]] - r["t_frame"]) * 1e3, 1)
        p = painted_receipt.get(r["frame"])
        settle_to_paint[key] = round((p - r["t_frame"]) * 1e3, 1) if p else None
        t = r["timings_ms"]
        recog_ms[key] = round(t.get("total", sum(t.get(k, 0.0) for k in
                                                 ("detect", "embed", "search", "decide"))), 1)
        scenes[key] = {"n_embedded": r["n_embedded"],
                       "stages_ms": {k: round(v, 1) for k, v in t.items()},
                       "worker_settle_to_done_ms": round((r["t_done"] - r["t_frame"]) * 1e3, 1)}

    spans = [(a, b) for a, b in itertools.pairwise(ticks) if a >= t_start + 1.0]
    gaps = [(b - a) * 1e3 for a, b in spans]
    # each stall over 50 ms: when (s after the window showed), how long, during a recognition?
    stalls = [[round(a - t_start, 2), round((b - a) * 1e3, 1),
               any(a < we and b > ws for ws, we in windows)]
              for a, b in spans if (b - a) * 1e3 > 50]
    return {
        "preview_fps": preview_fps,
        "preview_fps_while_recognising": preview_fps_recog,
        "camera_fps": camera.fps,
        "recognising_s": round(sum(b - a for a, b in recog_windows), 2),
        "settle_ms": settle_ms,
        "settle_to_receipt_ms": settle_to_receipt,
        "settle_to_receipt_paint_ms": settle_to_paint,
        "recognition_ms": recog_ms,
        "scenes": scenes,
        "recognitions": len(recognitions),
        "gui_max_gap_ms": round(max(gaps), 1) if gaps else None,
        "gui_median_gap_ms": round(statistics.median(gaps), 2) if gaps else None,
        "gui_gaps_over_50ms": sum(1 for g in gaps if g > 50),
        "gui_stalls": stalls,
        "recognition_windows": [[round(a - t_start, 2), round((b - a) * 1e3, 1)]
                                for a, b in windows],
        "run_s": round(t_end - t_start, 1),
    }
