"""Camera faults, for real: a misbehaving camera under the real capture thread, the real
checkout session and the real kiosk window (pytest-qt, offscreen).

:class:`FaultyCamera` is a double of the *hardware* only: it implements the project's Camera
interface on top of the scripted demo camera and injects what broken cameras do: unplugging
(reads give nothing, then raise; opening fails for a while), a frozen stream (the same frame
forever), garbage frames (the wrong size mid-stream, all black, one channel, the wrong dtype,
None) and a slow camera (2 fps).  Everything else is the kiosk's own code.  No blind sleeps:
every wait is on a condition, with a timeout.
"""
from __future__ import annotations

import itertools
import threading

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from PySide6.QtCore import QEvent
from PySide6.QtWidgets import QApplication

from kiosk.camera import CameraError, CaptureThread
from kiosk.camera.demo import DemoCamera
from kiosk.engine import Engine
from kiosk.checkout.session import CheckoutSession
from kiosk.settings import Settings
from kiosk.ui import i18n
from kiosk.ui.app import KioskParts, build_window, setup_application

WAIT = 20_000  # ms: generous for a loaded 2-core machine; conditions end it early
A = ("add", "DEMO-001", 400, 300, 0)  # 可口可乐
B = ("add", "DEMO-002", 800, 420, 60)  # 农夫山泉

LOST_TEXT = "Camera disconnected – reconnecting…"
BAD_TEXT = "No usable picture from the camera – reconnecting…"
FROZEN_TEXT = "The camera picture is not changing – please check the camera."


# -------------------------------------------------------------------------- the hardware
class FaultyCamera:
    """A camera (the project's Camera interface) that breaks on request.

    ``inner`` makes the pictures (a scripted demo camera); :meth:`swap` puts another scene in
    front of the lens (what the shopper did meanwhile)."""

    name = "faulty camera"

    def __init__(self, inner: DemoCamera) -> None:
        self.inner = inner
        self.lock = threading.Lock()
        self.unplugged = False  # open() fails; read() gives None a few times, then raises
        self.none_reads = 0
        self.frozen: np.ndarray | None = None  # the picture repeated while frozen
        self.freeze_when = None  # freeze as soon as this holds for the inner camera
        self.garbage = None  # callable(good image) -> what read() returns instead
        self.opens = self.failed_opens = 0

    def background(self) -> np.ndarray:
        return self.inner.background()

    # Camera interface
    def open(self) -> None:
        with self.lock:
            self.opens += 1
            if self.unplugged:
                self.failed_opens += 1
                raise CameraError(f"{self.name}: /dev/video0 does not exist")
            inner = self.inner
        inner.open()

    def read(self):
        with self.lock:
            if self.unplugged:
                if self.none_reads > 0:
                    self.none_reads -= 1
                    return None
                raise CameraError(f"{self.name}: the camera was unplugged")
            inner = self.inner
        img = inner.read()  # paced by the demo camera (30 fps, or 2 for the slow one)
        with self.lock:
            if self.frozen is None and self.freeze_when is not None and self.freeze_when(inner):
                self.frozen, self.freeze_when = img.copy(), None
            if self.frozen is not None:
                return self.frozen.copy()
            if self.garbage is not None:
                return self.garbage(img)
        return img

    def close(self) -> None:
        self.inner.close()

    # faults
    def unplug(self) -> None:
        with self.lock:
            self.unplugged, self.none_reads = True, 5

    def replug(self) -> None:
        with self.lock:
            self.unplugged = False

    def swap(self, script) -> None:
        inner = DemoCamera(fps=self.inner.fps, seed=3, script=script)
        inner.open()
        with self.lock:
            self.inner = inner

    def freeze(self) -> None:
        with self.lock:
            self.frozen = self.inner._last.copy() if self.inner._last is not None else None

    def unfreeze(self) -> None:
        with self.lock:
            self.frozen, self.freeze_when = None, None


def wrong_size(img):
    h, w = img.shape[:2]
    return img[: h // 2, : w // 3]  # a cropped, smaller picture mid-stream


def all_black(img):
    return np.zeros_like(img)


def one_channel(img):
    return img[..., 1:2].copy()  # (H, W, 1): a grey picture


def wrong_dtype(img):
    return img.astype(np.float32)


def nothing(img):
    return None


def cycle(*kinds, every: int = 1):
    """A garbage injector: every ``every``-th frame is replaced, by ``kinds`` in turn."""
    n = itertools.count()
    kinds_it = itertools.cycle(kinds)

    def inject(img):
        return next(kinds_it)(img) if next(n) % every == 0 else img

    return inject


# ------------------------------------------------------------- capture thread, headless
def _textured(h=90, w=160, seed=0):
    return np.random.default_rng(seed).integers(30, 220, (h, w, 3), dtype=np.uint8)


class Playlist:
    """Plays ``frames`` at 50 fps, then gives nothing."""

    name = "playlist"

    def __init__(self, frames):
        self.frames = list(frames)
        self.lock = threading.Lock()
        self.done = threading.Event()

    def open(self):
        pass

    def read(self):
        threading.Event().wait(0.02)  # the camera's frame period
        with self.lock:
            if not self.frames:
                self.done.set()
                return None
            return self.frames.pop(0)

    def close(self):
        pass


def _collect(frames, **kw):
    """Run the capture thread over ``frames``; the published frames and the thread."""
    cam = Playlist(frames)
    t = CaptureThread(cam, lost_after=30.0, **kw)
    got = []
    t.start()
    last = -1
    while True:
        f = t.wait_next(last, 0.05)
        if f is not None:
            got.append(f)
            last = f.index
        elif cam.done.is_set() and (t.latest() is None or t.latest().index == last):
            break
    t.stop()
    return got, t


def test_capture_drops_black_and_wrong_size_frames_and_marks_repeats():
    a, b = _textured(seed=1), _textured(seed=2)
    frames = [a, np.zeros_like(a), wrong_size(b), a.copy(), a[::-1], b[..., :1],
              b.astype(np.float32), b]
    got, t = _collect(frames)
    assert t.frames_dropped == 3  # black, wrong size, wrong dtype
    assert t.frames_captured == 5  # a, a again, a flipped (a view: copied), b grey, b
    assert [f.index for f in got] == sorted({f.index for f in got})
    last = got[-1]
    assert last.index == 4 and last.image.shape == a.shape and not last.repeat


def test_capture_repeat_flag_and_changed_index():
    a, b = _textured(seed=1), _textured(seed=2)
    cam = Playlist([a, a.copy(), a.copy(), b])
    t = CaptureThread(cam, lost_after=30.0)
    seen = []
    t.start()
    f = t.wait_next(-1, 5.0)
    while f is not None:
        seen.append(f)
        f = t.wait_next(f.index, 0.5)
    t.stop()
    repeats = {f.index: f.repeat for f in seen}
    assert repeats.get(0) is False and repeats.get(3) is False
    assert all(repeats.get(i, True) for i in (1, 2))
    assert t.changed_index == 3


def test_a_new_frame_size_that_persists_is_believed():
    from kiosk.camera import RESIZE_AFTER

    small = [_textured(45, 80, seed=i) for i in range(RESIZE_AFTER + 2)]
    got, t = _collect([_textured(seed=9)] + small)
    assert t.frames_dropped == RESIZE_AFTER - 1
    assert got[-1].image.shape == (45, 80, 3)


def test_first_index_continues_numbering():
    cam = Playlist([_textured()])
    t = CaptureThread(cam, lost_after=30.0, first_index=500)
    t.start()
    f = t.wait_next(-1, 5.0)
    t.stop()
    assert f is not None and f.index == 500


def test_only_garbage_is_a_bad_signal_then_recovers():
    events = []
    cond = threading.Condition()

    def on_status(status, message):
        with cond:
            events.append((status, message))
            cond.notify_all()

    good = _textured()
    state = {"garbage": False}

    class Junk:
        name = "junk camera"

        def open(self):
            pass

        def read(self):
            threading.Event().wait(0.01)  # a 100 fps camera
            return next(junk) if state["garbage"] else good

        def close(self):
            pass

    junk = itertools.cycle([np.zeros_like(good), good.astype(np.float32), None, "junk",
                            np.zeros((3, 0, 3), np.uint8), wrong_size(good)])
    t = CaptureThread(Junk(), lost_after=0.3, backoff=(0.02, 0.1), on_status=on_status)
    t.start()
    try:
        with cond:
            assert cond.wait_for(lambda: events and events[-1][0] == "live", 10.0), events
        state["garbage"] = True
        with cond:
            assert cond.wait_for(lambda: events[-1][0] == "bad", 10.0), events
        assert "unusable" in events[-1][1]
        captured = t.frames_captured
        with cond:  # still bad after reopening: the garbage goes on
            assert not cond.wait_for(lambda: events[-1][0] != "bad", 1.0), events
        assert t.frames_captured == captured and t.frames_dropped > 20 and t.is_alive()
        state["garbage"] = False
        with cond:
            assert cond.wait_for(lambda: events[-1][0] == "live", 10.0), events
        assert [s for s, _ in events] == ["live", "bad", "live"]
    finally:
        t.stop()


# ------------------------------------------------------------------ the kiosk window
@pytest.fixture
def app(qapp):
    app = setup_application(settings=Settings())
    i18n.set_language(app, "en")
    return app


@pytest.fixture
def kiosk(app, qtbot, tmp_path, copy_demo_db, embedder):
    """``kiosk(camera)``: the real kiosk window on a private demo catalogue, fed by ``camera``.
    The window records every camera status and every state it was sent."""
    made = []

    def make(camera):
        db = copy_demo_db(tmp_path / f"store{len(made)}")
        engine = Engine.open(db, embedder=embedder, background=camera.background())
        session = CheckoutSession(engine, settle_ms=150)
        window = build_window(KioskParts(engine, session, camera, "demo", db), Settings())
        qtbot.addWidget(window)
        window.resize(1280, 800)
        window.show()
        made.append((window, engine))
        window.statuses, window.states = [], []
        window.controller.cameraStatusChanged.connect(
            lambda s, m: window.statuses.append((s, m)))
        window.controller.stateChanged.connect(window.states.append)
        return window

    yield make
    for window, _engine in made:
        window.controller.shutdown()
        window.close()
        window.deleteLater()
    QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    for _window, engine in made:
        engine.close()


def basket(window) -> list[tuple[int, str]]:
    st = window.controller.state
    return sorted((i.track_id, i.sku) for i in st.items) if st is not None else []


def wait_basket(qtbot, window, skus, timeout=WAIT):
    """Until the basket holds exactly ``skus``, all recognised."""
    want = sorted(skus)

    def ok():
        st = window.controller.state
        return (st is not None and st.settled and not st.needs_cashier
                and sorted(i.sku for i in st.items) == want)

    qtbot.waitUntil(ok, timeout=timeout)
    return basket(window)


def banner(window) -> str:
    return window.banner.text() if window.banner_visible() else ""


def test_unplugged_camera_keeps_the_basket_and_recovers(qtbot, kiosk):
    cam = FaultyCamera(DemoCamera(fps=30, seed=3, script=[A, ("wait", 600)]))
    w = kiosk(cam)
    before = wait_basket(qtbot, w, ["DEMO-001"])
    assert banner(w) == ""
    cam.unplug()  # reads give nothing, then raise; opening fails until replugged
    qtbot.waitUntil(lambda: banner(w) == LOST_TEXT, timeout=WAIT)
    qtbot.waitUntil(lambda: cam.failed_opens >= 2, timeout=WAIT)  # it keeps trying
    assert w.controller.camera_status == "lost"
    assert basket(w) == before and w.receipt.rows()  # the basket is kept (greyed) ...
    assert not w.receipt.finish_button.isEnabled()  # ... but not payable without a picture
    assert w.controller.state.phase == "no_camera" and w.controller.state.stale
    # meanwhile the shopper put a second item down; then the camera is back
    cam.swap([A, B, ("wait", 600)])
    recognitions = w.controller.session.recognitions
    cam.replug()
    qtbot.waitUntil(lambda: w.controller.camera_status == "live", timeout=WAIT)
    assert "reconnected" in w.statuses[-1][1]
    qtbot.waitUntil(lambda: banner(w) == "", timeout=WAIT)
    after = wait_basket(qtbot, w, ["DEMO-001", "DEMO-002"])  # recognition resumed
    assert before[0] in after  # the first item kept its identity (not a new basket)
    assert w.controller.session.recognitions > recognitions


def test_frozen_picture_is_never_a_new_scene(qtbot, kiosk):
    cam = FaultyCamera(DemoCamera(fps=30, seed=3, script=[A, ("wait", 600)]))
    w = kiosk(cam)
    before = wait_basket(qtbot, w, ["DEMO-001"])
    w.frozen_warn_s = 0.5
    # the shopper puts a second item down, and the camera freezes while it slides in
    cam.freeze_when = lambda inner: inner.phase == "placing" and len(inner.truth()) == 1
    cam.swap([A, ("wait", 0.5), B, ("wait", 600)])
    qtbot.waitUntil(lambda: banner(w) == FROZEN_TEXT, timeout=WAIT)
    worker = w.controller.worker
    repeats = worker.frames_repeated
    qtbot.waitUntil(lambda: worker.frames_repeated >= repeats + 45, timeout=WAIT)  # 1.5 s
    frozen_index = w.controller.capture.changed_index  # the frame that froze
    # nothing was recognised from the frozen picture: the basket is as it was
    assert not [s for s in w.states if s.frame_index > frozen_index]
    assert basket(w) == before
    assert w.controller.camera_status == "live"
    # the picture moves again: the banner goes and the new item is recognised
    cam.unfreeze()
    qtbot.waitUntil(lambda: banner(w) == "", timeout=WAIT)
    after = wait_basket(qtbot, w, ["DEMO-001", "DEMO-002"])
    assert before[0] in after


def test_picture_frozen_for_good_shows_the_state_and_changes_nothing(qtbot, kiosk):
    cam = FaultyCamera(DemoCamera(fps=30, seed=3, script=[A, ("wait", 600)]))
    w = kiosk(cam)
    before = wait_basket(qtbot, w, ["DEMO-001"])
    w.frozen_warn_s = 0.5
    recognitions = w.controller.session.recognitions
    n_states = len(w.states)
    cam.freeze()
    qtbot.waitUntil(lambda: banner(w) == FROZEN_TEXT, timeout=WAIT)
    worker = w.controller.worker
    qtbot.waitUntil(lambda: worker.frames_repeated >= 60, timeout=WAIT)  # 2 s of repeats
    assert w.controller.session.recognitions == recognitions
    assert len(w.states) == n_states and basket(w) == before
    assert banner(w) == FROZEN_TEXT  # still frozen: still told
    cam.unfreeze()
    qtbot.waitUntil(lambda: banner(w) == "", timeout=WAIT)
    assert basket(w) == before


def test_garbage_frames_are_dropped_and_recognition_goes_on(qtbot, kiosk):
    cam = FaultyCamera(DemoCamera(fps=30, seed=3, script=[A, ("wait", 600)]))
    w = kiosk(cam)
    before = wait_basket(qtbot, w, ["DEMO-001"])
    # every second frame is garbage: a smaller picture, all black, one channel, float, None
    # (black every fourth frame: were black frames taken for pictures, the tray would never
    # look still for the 150 ms it needs to settle)
    cam.garbage = cycle(wrong_size, all_black, one_channel, all_black, wrong_dtype, all_black,
                        nothing, all_black, every=2)
    capture = w.controller.capture
    dropped = capture.frames_dropped
    qtbot.waitUntil(lambda: capture.frames_dropped >= dropped + 20, timeout=WAIT)
    assert w.controller.camera_status == "live" and banner(w) == ""
    assert basket(w) == before  # garbage changed nothing
    cam.swap([A, B, ("wait", 600)])  # the tray changes while the garbage goes on
    after = wait_basket(qtbot, w, ["DEMO-001", "DEMO-002"])
    assert before[0] in after
    assert capture.frames_dropped > dropped + 20 and capture.is_alive()
    assert all(s == "live" for s, _ in w.statuses)


def test_only_garbage_shows_bad_signal_then_recovers(qtbot, kiosk):
    cam = FaultyCamera(DemoCamera(fps=30, seed=3, script=[A, ("wait", 600)]))
    w = kiosk(cam)
    before = wait_basket(qtbot, w, ["DEMO-001"])
    cam.garbage = cycle(wrong_size, all_black, wrong_dtype, nothing)
    qtbot.waitUntil(lambda: banner(w) == BAD_TEXT, timeout=WAIT)
    assert w.controller.camera_status == "bad"
    assert basket(w) == before and w.receipt.rows()
    w.set_language("zh_CN")
    assert banner(w) == "摄像头没有可用的画面，正在重新连接…"
    w.set_language("en")
    cam.swap([A, B, ("wait", 600)])
    cam.garbage = None
    qtbot.waitUntil(lambda: w.controller.camera_status == "live", timeout=WAIT)
    qtbot.waitUntil(lambda: banner(w) == "", timeout=WAIT)
    after = wait_basket(qtbot, w, ["DEMO-001", "DEMO-002"])
    assert before[0] in after


def test_slow_camera_two_fps_works_without_alarms(qtbot, kiosk):
    cam = FaultyCamera(DemoCamera(fps=2, seed=3, script=[("wait", 1.0), A, ("wait", 600)]))
    w = kiosk(cam)
    wait_basket(qtbot, w, ["DEMO-001"], timeout=30_000)
    capture = w.controller.capture
    qtbot.waitUntil(lambda: capture.fps > 0, timeout=WAIT)
    assert 1.0 < capture.fps < 3.0
    assert [s for s, _ in w.statuses] == ["live"]  # never lost, never bad
    assert banner(w) == ""


def test_camera_switch_after_a_sale_is_not_ignored(qtbot, kiosk):
    """States from a new camera are not older than the cashier's last change."""
    cam = FaultyCamera(DemoCamera(fps=30, seed=3, script=[A, ("wait", 600)]))
    w = kiosk(cam)
    wait_basket(qtbot, w, ["DEMO-001"])
    w.controller.finish()  # an intent: states made before it are dropped
    assert basket(w) == []
    w.controller.set_camera(FaultyCamera(DemoCamera(fps=30, seed=3, script=[B, ("wait", 600)])))
    wait_basket(qtbot, w, ["DEMO-002"])
