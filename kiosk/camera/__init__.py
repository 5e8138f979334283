"""Stage 1: frames from a camera (USB through OpenCV, a video file, an image folder, or the
built-in demo camera), captured in their own thread; the newest frame wins.

Sources all implement :class:`Camera` (``open`` / ``read`` / ``close``); :func:`open_camera`
makes one from a command-line spec.  :class:`CaptureThread` owns a camera: it keeps only the
newest :class:`Frame`, validates every image (grey and BGRA become BGR; garbage, all-black frames
and a frame whose size suddenly differs are dropped and counted), reports its status
(``starting`` / ``live`` / ``lost`` / ``bad`` / ``stopped``) and reconnects with back-off when the
camera goes away or sends only unusable frames.  Nothing here imports Qt.
"""
from __future__ import annotations

import glob
import logging
import os
import re
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

# the stage's types, shared with the demo camera
from kiosk.camera.base import Camera, CameraError, Frame  # noqa: F401

log = logging.getLogger(__name__)


VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".mov", ".m4v", ".webm")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def as_bgr(image) -> np.ndarray | None:
    """``image`` as a BGR uint8 (H, W, 3) array, or None when it is not a usable frame.

    Grey (H, W) / (H, W, 1) and BGRA (H, W, 4) images are converted; None, empty arrays,
    non-uint8 dtypes and other shapes are rejected (None)."""
    if image is None or not isinstance(image, np.ndarray):
        return None
    if image.dtype != np.uint8 or image.size == 0:
        return None
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim != 3 or image.shape[0] < 2 or image.shape[1] < 2:
        return None
    c = image.shape[2]
    if c == 3:
        return np.ascontiguousarray(image)  # (a flipped or cropped view gets copied)
    if c == 1:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if c == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return None


class _Pacer:
    """Sleeps so that successive ``wait()`` calls return ``fps`` times a second."""

    def __init__(self, fps: float) -> None:
        self.period = 1.0 / fps if fps and fps > 0 else 0.0
        self.next_t: float | None = None

    def reset(self) -> None:
        self.next_t = None

    def wait(self) -> None:
        if self.period <= 0:
            return
        now = time.monotonic()
        if self.next_t is None:
            self.next_t = now
        delay = self.next_t - now
        if delay > 0:
            time.sleep(delay)
        elif delay < -5 * self.period:  # far behind (a stall): do not try to catch up
            self.next_t = now
        self.next_t += self.period


# ------------------------------------------------------------------------------ USB cameras
def _v4l2_node(device: int | str) -> str | None:
    """The /dev/videoN node behind ``device`` (Linux), or None for other kinds of device."""
    if isinstance(device, int):
        return f"/dev/video{device}" if sys.platform.startswith("linux") else None
    if re.fullmatch(r"/dev/video\d+", device):
        return device
    return None


class OpenCVCamera:
    """A USB (UVC) camera through ``cv2.VideoCapture``; V4L2 for an index or a /dev path.

    ``device`` may also be any other string OpenCV opens (an ``rtsp://`` URL, ...).
    ``read`` returns None on a failed grab and raises :class:`CameraError` after
    ``max_failures`` consecutive failures or when the device node has vanished."""

    def __init__(self, device: int | str, width: int = 1280, height: int = 720,
                 fps: float = 30, *, max_failures: int = 10) -> None:
        self.device = device
        self.width, self.height, self.fps = int(width), int(height), float(fps)
        self.max_failures = int(max_failures)
        self.node = _v4l2_node(device)
        self.name = f"camera {self.node or device}"
        self._cap: cv2.VideoCapture | None = None
        self._failures = 0
        self.actual_size: tuple[int, int] | None = None

    def open(self) -> None:
        self.close()
        if self.node is not None:
            if not os.path.exists(self.node):
                raise CameraError(f"{self.name}: {self.node} does not exist (is the camera "
                                  "plugged in?)")
            if not os.access(self.node, os.R_OK | os.W_OK):
                raise CameraError(f"{self.name}: no permission to open {self.node} (add the "
                                  "user to the 'video' group)")
            cap = cv2.VideoCapture(self.device, cv2.CAP_V4L2)
        else:
            cap = cv2.VideoCapture(self.device)
        if not cap.isOpened():
            cap.release()
            raise CameraError(f"{self.name}: cannot open the device (busy in another program, "
                              "or not a video capture device?)")
        if self.node is not None:
            # MJPG lets UVC cameras deliver 1280x720 at 30 fps over USB 2; ignored if unsupported
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*"MJPG"))
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        if self.fps > 0:
            cap.set(cv2.CAP_PROP_FPS, self.fps)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # low latency: do not queue old frames
        self.actual_size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
                            int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        self._cap = cap
        self._failures = 0

    def read(self) -> np.ndarray | None:
        if self._cap is None:
            raise CameraError(f"{self.name} is not open")
        ok, img = self._cap.read()
        if ok and img is not None:
            self._failures = 0
            return img
        self._failures += 1
        if self.node is not None and not os.path.exists(self.node):
            raise CameraError(f"{self.name}: the camera was unplugged ({self.node} vanished)")
        if self._failures >= self.max_failures:
            raise CameraError(f"{self.name}: {self._failures} grabs in a row failed")
        return None

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


# ------------------------------------------------------------------------------ video files
class VideoFileCamera:
    """Frames of a video file, paced to the file's frame rate when ``realtime``.

    At the end the file starts again (``loop``), or :attr:`finished` becomes True and ``read``
    returns None."""

    def __init__(self, path: str | Path, loop: bool = True, realtime: bool = True) -> None:
        self.path = Path(path)
        self.loop, self.realtime = bool(loop), bool(realtime)
        self.name = f"video {self.path.name}"
        self.fps = 0.0
        self.finished = False
        self._cap: cv2.VideoCapture | None = None
        self._pacer = _Pacer(0)

    def open(self) -> None:
        self.close()
        if not self.path.is_file():
            raise CameraError(f"{self.name}: file not found: {self.path}")
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            cap.release()
            raise CameraError(f"{self.name}: cannot decode {self.path} (not a video, or an "
                              "unsupported codec)")
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if 0 < fps < 1000 else 30.0
        self._pacer = _Pacer(self.fps if self.realtime else 0)
        self._cap = cap
        self.finished = False

    def read(self) -> np.ndarray | None:
        if self._cap is None:
            raise CameraError(f"{self.name} is not open")
        if self.finished:
            return None
        self._pacer.wait()
        ok, img = self._cap.read()
        if ok:
            return img
        if not self.loop:
            self.finished = True
            return None
        self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
        ok, img = self._cap.read()
        if not ok:  # some containers cannot seek: reopen
            self._cap.release()
            self._cap = cv2.VideoCapture(str(self.path))
            ok, img = self._cap.read()
            if not ok:
                raise CameraError(f"{self.name}: no frames could be decoded from {self.path}")
        return img

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


# ---------------------------------------------------------------------------- image folders
def _natural_key(p: Path):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", p.name)]


class ImageFolderCamera:
    """The images of a folder in (natural) sorted order, ``fps`` of them a second."""

    def __init__(self, folder: str | Path, fps: float = 10, loop: bool = True, *,
                 realtime: bool = True) -> None:
        self.folder = Path(folder)
        self.fps, self.loop, self.realtime = float(fps), bool(loop), bool(realtime)
        self.name = f"images {self.folder.name or self.folder}"
        self.files: list[Path] = []
        self.finished = False
        self._pos = 0
        self._pacer = _Pacer(0)

    def open(self) -> None:
        if not self.folder.is_dir():
            raise CameraError(f"{self.name}: not a folder: {self.folder}")
        self.files = sorted((p for p in self.folder.iterdir()
                             if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()),
                            key=_natural_key)
        if not self.files:
            raise CameraError(f"{self.name}: no images in {self.folder} (looked for "
                              f"{' '.join(IMAGE_EXTENSIONS)})")
        self._pos = 0
        self.finished = False
        self._pacer = _Pacer(self.fps if self.realtime else 0)

    def read(self) -> np.ndarray | None:
        if not self.files:
            raise CameraError(f"{self.name} is not open")
        if self._pos >= len(self.files):
            if not self.loop:
                self.finished = True
                return None
            self._pos = 0
        self._pacer.wait()
        path = self.files[self._pos]
        self._pos += 1
        try:  # np.fromfile + imdecode: works for non-ASCII paths too
            data = np.fromfile(str(path), dtype=np.uint8)
        except OSError:
            return None
        if data.size == 0:
            return None
        # IMREAD_UNCHANGED keeps grey / BGRA as they are; the capture thread converts them
        return cv2.imdecode(data, cv2.IMREAD_UNCHANGED)

    def close(self) -> None:
        pass


# ---------------------------------------------------------------------------------- factory
def open_camera(spec: str, width: int = 1280, height: int = 720,
                fps: float | None = None) -> Camera:
    """A camera for ``spec`` (not opened yet; :class:`CaptureThread` opens it).

    ``"demo"`` (or ``"demo:SEED"``): the built-in scripted demo camera; ``"0"``, ``"1"``: a USB
    camera by index; ``"/dev/videoN"``; ``rtsp://`` / ``http://`` URLs; a video file
    (.mp4 .avi .mkv .mov ...); a folder of images.  ``fps`` defaults to the source's own rate
    (30 for cameras, 10 for image folders, the file's rate for videos).
    Raises :class:`CameraError` for a spec that names nothing usable."""
    s = str(spec).strip()
    if not s:
        raise CameraError("empty camera spec: use 'demo', a camera index like '0', "
                          "/dev/videoN, a video file or an image folder")
    m = re.fullmatch(r"demo(?::(\d+))?", s, flags=re.IGNORECASE)
    if m:
        from kiosk.camera.demo import DemoCamera

        return DemoCamera(fps=fps or 30, seed=int(m.group(1) or 0), size=(width, height))
    if s.isdigit():
        return OpenCVCamera(int(s), width, height, fps or 30)
    if s.startswith("/dev/"):
        if not re.fullmatch(r"/dev/video\d+", s):
            raise CameraError(f"camera spec {s!r}: expected a V4L2 device like /dev/video0")
        if not os.path.exists(s):
            raise CameraError(f"camera {s} does not exist (is the camera plugged in?)")
        return OpenCVCamera(s, width, height, fps or 30)
    if re.match(r"^[a-z][a-z0-9+.-]*://", s, flags=re.IGNORECASE):
        return OpenCVCamera(s, width, height, fps or 30)
    p = Path(s).expanduser()
    if p.suffix.lower() in VIDEO_EXTENSIONS:
        if not p.is_file():
            raise CameraError(f"video file not found: {p}")
        return VideoFileCamera(p, loop=True, realtime=True)
    if p.is_dir():
        return ImageFolderCamera(p, fps=fps or 10)
    if p.exists():
        raise CameraError(f"camera spec {s!r}: not a video file ({' '.join(VIDEO_EXTENSIONS)}) "
                          "or an image folder")
    raise CameraError(f"camera spec {s!r} not understood: use 'demo', a camera index like '0', "
                      "/dev/videoN, a video file (.mp4 .avi .mkv .mov) or an image folder "
                      "(no such file or folder)")


def _video_nodes() -> list[str]:
    def num(p: str) -> int:
        return int(re.sub(r"\D", "", p) or 0)

    return sorted((p for p in glob.glob("/dev/video*") if re.fullmatch(r"/dev/video\d+", p)),
                  key=num)


def find_default_camera(tries: int = 10) -> str:
    """``"N"`` for the first /dev/videoN that opens and delivers a frame (usually ``"0"``), else
    ``"demo"``."""
    for node in _video_nodes():
        cam = OpenCVCamera(node, max_failures=tries + 1)
        try:
            cam.open()
            for _ in range(tries):  # the first grabs of a UVC camera may fail
                if as_bgr(cam.read()) is not None:
                    return re.sub(r"\D", "", node)
        except CameraError as e:
            log.debug("find_default_camera: %s", e)
        finally:
            cam.close()
    return "demo"


# --------------------------------------------------------------------------- capture thread
STARTING, LIVE, LOST, BAD, STOPPED = "starting", "live", "lost", "bad", "stopped"
BLACK_LEVEL = 8  # a frame none of whose sampled pixels is brighter than this is "all black"
RESIZE_AFTER = 10  # a new frame size is believed after this many frames of it in a row


class CaptureThread(threading.Thread):
    """Reads a :class:`Camera` in its own (daemon) thread and keeps the newest frame only.

    ``on_status(status, message)`` is called from this thread on every status change.  When
    the camera raises, or delivers no valid frame for ``lost_after`` seconds, the status becomes
    ``"lost"``, the camera is closed and reopened with back-off (``backoff`` = first and largest
    delay) until frames come again (``"live"``); frame indices keep increasing.  A camera that
    delivers frames but none usable for ``lost_after`` seconds (garbage, all black, a wrong size)
    is ``"bad"`` and reopened the same way.  Garbage and all-black frames are dropped and counted
    (:attr:`frames_dropped`); so is a frame whose size differs from the stream's, unless that
    size persists (``RESIZE_AFTER`` frames in a row).  A source that
    ends (a video without ``loop``) stops the thread (``"stopped"``).  A camera
    that delivers the same image again and again stays ``"live"``; its repeats are marked
    (:attr:`Frame.repeat`) and :attr:`frozen_for` says for how long the picture has not changed.
    ``first_index``: the index of the first frame (a new thread for another camera continues
    the old one's numbering).  Like any thread it runs once: ``stop()`` it and make a new one to
    capture again.
    """

    def __init__(self, camera: Camera, *, lost_after: float = 2.0,
                 backoff: tuple[float, float] = (0.5, 5.0),
                 on_status: Callable[[str, str], None] | None = None,
                 name: str | None = None, first_index: int = 0) -> None:
        super().__init__(daemon=True, name=name or f"capture[{getattr(camera, 'name', '?')}]")
        self.camera = camera
        self.lost_after = float(lost_after)
        self.backoff = (float(backoff[0]), float(backoff[1]))
        self.on_status = on_status
        self.frames_captured = 0
        self.frames_dropped = 0
        self._status = STARTING
        self.status_message = f"opening {getattr(camera, 'name', 'camera')}"
        self._cond = threading.Condition()
        self._stop_evt = threading.Event()
        self._latest: Frame | None = None
        self._index = int(first_index) - 1
        self._times: deque[float] = deque(maxlen=31)  # capture times of the last frames
        self._sig: np.ndarray | None = None
        self._changed_t = 0.0
        self._changed_index = -1
        self._size: tuple[int, int] | None = None  # (h, w) of the stream
        self._odd_size: tuple[int, int] | None = None  # another size seen lately ...
        self._odd_count = 0  # ... this many frames in a row

    # ---------------------------------------------------------------- public
    @property
    def status(self) -> str:
        return self._status

    @property
    def fps(self) -> float:
        """Measured frame rate over the last (up to) 30 frames; 0 before two frames arrived."""
        times = list(self._times)
        if len(times) < 2 or times[-1] <= times[0]:
            return 0.0
        return (len(times) - 1) / (times[-1] - times[0])

    @property
    def frozen_for(self) -> float:
        """Seconds since the picture last changed (0 unless live)."""
        if self._status != LIVE or self._latest is None:
            return 0.0
        return max(0.0, time.monotonic() - self._changed_t)

    @property
    def changed_index(self) -> int:
        """Index of the newest frame whose content differed from the frame before it.  A frame
        with a higher index is a repeat (a frozen stream), not a new scene."""
        return self._changed_index

    def latest(self) -> Frame | None:
        return self._latest

    def wait_next(self, after_index: int, timeout: float) -> Frame | None:
        """The newest frame once its index is above ``after_index``; None on timeout or stop."""
        deadline = time.monotonic() + max(0.0, timeout)
        with self._cond:
            while True:
                f = self._latest
                if f is not None and f.index > after_index:
                    return f
                left = deadline - time.monotonic()
                if left <= 0 or self._stop_evt.is_set():
                    return None
                self._cond.wait(left)

    def stop(self, timeout: float = 2.0) -> bool:
        """Stop capturing and close the camera; True once the thread has ended."""
        self._stop_evt.set()
        with self._cond:
            self._cond.notify_all()
        if self.ident is None:  # never started
            self._set_status(STOPPED, f"{self.camera.name} stopped")
            return True
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout)
        return not self.is_alive()

    # -------------------------------------------------------------- internals
    def _set_status(self, status: str, message: str) -> None:
        self.status_message = message
        if status == self._status:
            return
        self._status = status
        (log.warning if status == LOST else log.info)("%s", message)
        if self.on_status is not None:
            try:
                self.on_status(status, message)
            except Exception:  # a broken callback must not kill capture
                log.exception("on_status callback failed")

    def _close_camera(self) -> None:
        try:
            self.camera.close()
        except Exception:
            log.exception("closing %s failed", getattr(self.camera, "name", "camera"))

    def _signature(self, img: np.ndarray) -> np.ndarray:
        # cheap: a decimated copy (the whole of a tiny image)
        return np.ascontiguousarray(img[4::8, 4::8] if min(img.shape[:2]) > 4 else img)

    def _usable(self, img: np.ndarray, sig: np.ndarray) -> bool:
        """False for an all-black frame and for a frame whose size differs from the stream's
        (a glitch), unless that new size keeps coming (then it is the stream's size)."""
        if int(sig.max()) <= BLACK_LEVEL:
            self._odd_count = 0  # (not "in a row")
            return False
        size = img.shape[:2]
        if self._size is None or size == self._size:
            self._size, self._odd_size, self._odd_count = size, None, 0
            return True
        self._odd_count = self._odd_count + 1 if size == self._odd_size else 1
        self._odd_size = size
        if self._odd_count < RESIZE_AFTER:
            return False
        log.info("%s: the frame size changed to %d×%d", self.camera.name, size[1], size[0])
        self._size, self._odd_size, self._odd_count = size, None, 0
        return True

    def _publish(self, img: np.ndarray, sig: np.ndarray) -> None:
        now = time.monotonic()
        repeat = self._sig is not None and sig.shape == self._sig.shape and np.array_equal(
            sig, self._sig)
        self._sig = sig
        self._times.append(now)
        with self._cond:
            self._index += 1
            if not repeat:
                self._changed_t = now
                self._changed_index = self._index
            self._latest = Frame(img, self._index, now, repeat)
            self.frames_captured += 1
            self._cond.notify_all()

    def run(self) -> None:
        cam = self.camera
        delay = self.backoff[0]
        opened = False
        ever_live = False
        junk_message = (f"{cam.name}: only unusable frames (garbage, black or the wrong size) "
                        f"for {self.lost_after:g} s")
        try:
            while not self._stop_evt.is_set():
                if not opened:
                    try:
                        cam.open()
                    except Exception as e:  # noqa: BLE001 - any failure means "retry later"
                        self._close_camera()
                        self._set_status(LOST, f"cannot open {cam.name}: {e}")
                        self._stop_evt.wait(delay)
                        delay = min(delay * 2, self.backoff[1])
                        continue
                    opened = True
                    last_good = time.monotonic()
                    junk = False  # unusable frames came since the last good one
                    self._times.clear()
                try:
                    raw = cam.read()
                except Exception as e:  # noqa: BLE001
                    self._lose(f"{cam.name}: {e}" if cam.name not in str(e) else str(e))
                    opened = False
                    continue
                if raw is None:
                    if getattr(cam, "finished", False):
                        self._set_status(STOPPED, f"{cam.name}: end of stream")
                        return
                    if time.monotonic() - last_good > self.lost_after:
                        if junk:  # frames came, none usable
                            self._lose(junk_message, BAD)
                        else:
                            self._lose(f"{cam.name}: no frames for {self.lost_after:g} s")
                        opened = False
                    else:
                        self._stop_evt.wait(0.005)
                    continue
                img = as_bgr(raw)
                sig = self._signature(img) if img is not None else None
                if img is None:
                    self._odd_count = 0
                if img is None or not self._usable(img, sig):
                    self.frames_dropped += 1
                    junk = True
                    if time.monotonic() - last_good > self.lost_after:
                        self._lose(junk_message, BAD)
                        opened = False
                    continue
                last_good = time.monotonic()
                junk = False
                self._publish(img, sig)
                if self._status != LIVE:
                    h, w = img.shape[:2]
                    verb = "reconnected" if ever_live else "live"
                    self._set_status(LIVE, f"{cam.name} {verb} ({w}×{h})")
                    ever_live = True
                    delay = self.backoff[0]
        except Exception as e:  # pragma: no cover - defensive: never die silently
            log.exception("capture thread crashed")
            self._set_status(STOPPED, f"capture failed: {e}")
        finally:
            self._close_camera()
            if self._status != STOPPED:
                self._set_status(STOPPED, f"{cam.name} stopped")
            with self._cond:
                self._cond.notify_all()

    def _lose(self, message: str, status: str = LOST) -> None:
        self._close_camera()
        self._set_status(status, message)
        self._stop_evt.wait(self.backoff[0])
