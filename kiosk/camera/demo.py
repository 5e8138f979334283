"""The built-in demo camera: an endlessly looping, scripted checkout scene.

:class:`DemoCamera` implements :class:`kiosk.camera.Camera`.  Each "basket" puts 3–8 random demo
products on the empty tray one by one (each slides in for ~0.5 s, then rests), shifts one a
little, adds another, removes one, lets a hand pass over the tray for ~1 s and clears the tray.
A ``script`` plays fixed steps instead (tests).  Scene time counts frames (seconds × fps), so a
camera with ``realtime=False`` is fully deterministic for a seed and script.

Frames are cheap: the packages of a basket are rotated, lit and given a shadow once; the tray
with the resting items is composed only when that set changes; a frame is a copy of it plus the
moving item or hand and sensor noise (a precomputed noise tile at a random offset).
"""
from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from kiosk.demo import scenes as demo
from kiosk.camera.base import CameraError

Step = tuple

SLIDE_S = 0.5  # an item slides in / out
SHIFT_S = 0.3  # an item is nudged
CLEAR_S = 0.6  # everything is swept off the tray
SHADOW = 0.28  # as demo.render_tray
SHADOW_OFFSET = (5, 7)
SKIN_BGR = (128, 164, 222)
_STEP_ARGS = {"add": (1, 4), "wait": (1, 1), "hand": (1, 1), "remove": (1, 1),
              "shift": (3, 4), "clear": (0, 0), "until": (1, 1)}


@dataclass(eq=False)  # identity, not array comparison
class _Item:
    """One package on the tray, pre-rendered: drawing it is ``canvas * keep + paint`` over its
    canvas (the package canvas grown by the shadow offset), in 8.8 fixed point."""

    sku: str
    bgra: np.ndarray  # uint8 (h, w, 4) the rotated package
    keep: np.ndarray  # uint16 (h', w', 1): 256 * (1 - shadow) * (1 - alpha)
    paint: np.ndarray  # uint16 (h', w', 3): 256 * alpha * colour
    x0: int  # top-left of the package canvas on the tray at rest
    y0: int
    box: tuple[int, int, int, int]  # visible package pixels, canvas coordinates (x1, y1, x2, y2)
    dx: float = 0.0  # current offset from the rest position while moving
    dy: float = 0.0
    moving: bool = False


def _prepare(sku: str, bgra: np.ndarray, x0: int, y0: int) -> _Item:
    h, w = bgra.shape[:2]
    sdx, sdy = SHADOW_OFFSET
    a = bgra[..., 3].astype(np.float32) / 255.0
    keep = np.ones((h + sdy, w + sdx), np.float32)
    keep[sdy:, sdx:] -= SHADOW * cv2.GaussianBlur(a, (0, 0), 6.0)
    keep[:h, :w] *= 1.0 - a
    paint = np.zeros((h + sdy, w + sdx, 3), np.float32)
    paint[:h, :w] = bgra[..., :3].astype(np.float32) * a[..., None]
    ys, xs = np.nonzero(a > 0.5)
    box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    return _Item(sku, bgra, np.round(keep * 256)[..., None].astype(np.uint16),
                 np.floor(paint * 256).astype(np.uint16), x0, y0, box)


def _ease(t: float) -> float:
    t = min(max(t, 0.0), 1.0)
    return 1.0 - (1.0 - t) ** 3  # ease-out: fast approach, gentle landing


class DemoCamera:
    """A scripted checkout scene rendered from :mod:`kiosk.demo.scenes` (see the module docstring).

    ``script``: steps to play instead of random baskets, e.g.
    ``[("add", "DEMO-001"), ("wait", 1.0), ("add", "DEMO-004"), ("hand", 1.0),
    ("remove", "DEMO-001"), ("shift", "DEMO-004", 10, -5), ("until", "cue"), ("clear",)]``;
    ``("until", cue)`` holds the scene until :meth:`go` gives that cue.  ``("add", sku)``
    places the item at a free random spot (seeded), ``("add", sku, x, y[, angle])`` at the given
    centre; ``remove`` / ``shift`` act on the most recently added item of that sku; ``shift``
    takes dx, dy[, dangle].  A script plays once and then holds its last scene, unless
    ``loop_script``.
    """

    name = "demo camera"

    def __init__(self, fps: float = 30, seed: int = 0, realtime: bool = True,
                 size: tuple[int, int] = demo.TRAY_SIZE, *, script: Sequence[Step] | None = None,
                 loop_script: bool = False, noise: float = 2.0) -> None:
        self.fps = float(fps)
        if self.fps <= 0:
            raise ValueError("fps must be positive")
        self.seed = int(seed)
        self.realtime = bool(realtime)
        self.size = (int(size[0]), int(size[1]))
        self.script = [tuple(s) for s in script] if script is not None else None
        if self.script is not None:
            _check_script(self.script)
        self.loop_script = bool(loop_script)
        self.noise = float(noise)
        self.frame_count = 0  # scene frames simulated so far
        self.basket_count = 0
        w, h = self.size
        self._background = demo.empty_tray((w, h))
        self._lock = threading.RLock()
        self._rng = np.random.default_rng([self.seed, 1])
        self._noise_rng = np.random.default_rng([self.seed, 2])
        self._noise_pos, self._noise_neg = self._noise_tiles(w, h)
        self._items: list[_Item] = []
        self._hand: tuple[float, float, float] | None = None  # palm x, y, arm base x
        self._phase = "empty"
        self._static: np.ndarray | None = None  # tray + resting items, uint8
        self._last: np.ndarray | None = None
        self._timeline = self._make_timeline()
        self._opened = False
        self._unplugged = False
        self._freeze_left = 0
        self._t0: float | None = None
        self._reads = 0
        self._go: set[str] = set()  # cues given with go() ("until" steps wait for them)

    # ------------------------------------------------------------------ Camera
    def open(self) -> None:
        with self._lock:
            if self._unplugged:
                raise CameraError("demo camera: not connected (unplugged)")
            self._opened = True
            self._t0 = None

    def close(self) -> None:
        with self._lock:
            self._opened = False

    def read(self) -> np.ndarray | None:
        # pacing sleeps outside the lock, so unplug() / truth() never wait for a frame
        steps = self._pace() if self.realtime and self._opened else 1
        with self._lock:
            if self._unplugged:
                raise CameraError("demo camera: unplugged")
            if not self._opened:
                raise CameraError("demo camera is not open")
            for _ in range(steps):
                self._advance()
            if self._freeze_left > 0 and self._last is not None:
                self._freeze_left -= steps
                return self._last.copy()
            self._last = self._render()
            return self._last

    # ------------------------------------------------------------ test controls
    def unplug(self) -> None:
        """From now on ``read`` and ``open`` raise :class:`CameraError` (until :meth:`replug`)."""
        with self._lock:
            self._unplugged = True

    def replug(self) -> None:
        with self._lock:
            self._unplugged = False

    def go(self, cue: str) -> None:
        """Give ``cue``: a script's ``("until", cue)`` step ends and the scene goes on."""
        with self._lock:
            self._go.add(str(cue))

    def freeze(self, seconds: float) -> None:
        """Repeat the current frame for ``seconds`` (of scene time) while the scene goes on;
        ``freeze(0)`` ends a freeze."""
        with self._lock:
            self._freeze_left = max(1, round(seconds * self.fps)) if seconds > 0 else 0

    def background(self) -> np.ndarray:
        """The empty tray without noise (the segmenter's calibration image), BGR uint8."""
        return self._background.copy()

    def truth(self) -> list[tuple[str, tuple[int, int, int, int]]]:
        """(sku, box) of every item at rest on the tray, boxes clipped to the frame."""
        w, h = self.size
        out = []
        with self._lock:
            for it in self._items:
                if it.moving:
                    continue
                x1, y1, x2, y2 = it.box
                box = (max(0, it.x0 + x1), max(0, it.y0 + y1), min(w, it.x0 + x2),
                       min(h, it.y0 + y2))
                if box[0] < box[2] and box[1] < box[3]:
                    out.append((it.sku, box))
        return out

    @property
    def phase(self) -> str:
        """``empty``, ``placing``, ``resting``, ``shifting``, ``removing``, ``hand`` or
        ``clearing``: what the scene of the last frame shows."""
        return self._phase

    @property
    def settled(self) -> bool:
        return self._phase in ("empty", "resting")

    # --------------------------------------------------------------- internals
    def _pace(self) -> int:
        """Sleep until the next frame is due; the number of scene frames to advance."""
        now = time.monotonic()
        if self._t0 is None:
            self._t0, self._reads = now, 0
            return 1
        self._reads += 1
        due = self._t0 + self._reads / self.fps
        if due > now:
            time.sleep(due - now)
            return 1
        behind = int((now - due) * self.fps)  # a slow reader: the scene goes on regardless
        if behind > 0:
            self._reads += behind
        return 1 + behind

    def _noise_tiles(self, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
        pad = 64
        n = self._noise_rng.normal(0, self.noise, size=(h + pad, w + pad, 3)) if self.noise > 0 \
            else np.zeros((h + pad, w + pad, 3))
        n = np.clip(np.round(n), -127, 127)
        return (np.maximum(n, 0).astype(np.uint8), np.maximum(-n, 0).astype(np.uint8))

    def _advance(self) -> None:
        self.frame_count += 1
        try:
            next(self._timeline)
        except StopIteration:  # a finished script holds its last scene
            self._timeline = iter(())

    # ----- rendering
    def _make_item(self, sku: str, cx: float, cy: float, angle: float,
                   scale: float = 1.0) -> _Item:
        pkg = demo.package_bgra(sku)
        bgr = demo._lighting(pkg[..., :3], self._rng, 0.3)  # per-basket lighting jitter
        pkg = demo._rotate_bgra(np.dstack([bgr, pkg[..., 3]]), angle, scale)
        ph, pw = pkg.shape[:2]
        return _prepare(sku, pkg, round(cx - pw / 2), round(cy - ph / 2))

    @staticmethod
    def _clip(canvas: np.ndarray, arr: np.ndarray, x0: int, y0: int):
        H, W = canvas.shape[:2]
        h, w = arr.shape[:2]
        cx0, cy0, cx1, cy1 = max(0, x0), max(0, y0), min(W, x0 + w), min(H, y0 + h)
        if cx0 >= cx1 or cy0 >= cy1:
            return None
        return (slice(cy0, cy1), slice(cx0, cx1)), (slice(cy0 - y0, cy1 - y0),
                                                     slice(cx0 - x0, cx1 - x0))

    def _draw_item(self, canvas: np.ndarray, it: _Item, x0: int, y0: int) -> None:
        """Shadow and package onto the uint8 canvas: (canvas * keep + paint) / 256."""
        c = self._clip(canvas, it.keep, x0, y0)
        if c is not None:
            dst, src = c
            acc = canvas[dst] * it.keep[src]  # uint16: 255 * 256 at most
            acc += it.paint[src]
            acc += 128
            canvas[dst] = acc >> 8

    def _draw_hand(self, canvas: np.ndarray) -> None:
        px, py, bx = self._hand
        h = canvas.shape[0]
        dark = tuple(int(c * 0.82) for c in SKIN_BGR)
        # arm from below the bottom edge to the wrist, then palm and fingers
        ang = math.atan2(py - (h + 60), px - bx)
        wx, wy = px - 55 * math.cos(ang), py - 55 * math.sin(ang)
        cv2.line(canvas, (int(bx), h + 60), (int(wx), int(wy)), dark, 78, cv2.LINE_AA)
        cv2.line(canvas, (int(bx), h + 60), (int(wx), int(wy)), SKIN_BGR, 66, cv2.LINE_AA)
        deg = math.degrees(ang)
        cv2.ellipse(canvas, (int(px), int(py)), (62, 50), deg, 0, 360, SKIN_BGR, -1, cv2.LINE_AA)
        for k, (off, length) in enumerate(((-33, 58), (-11, 68), (11, 66), (32, 54))):
            fx = px + 50 * math.cos(ang) - off * math.sin(ang)
            fy = py + 50 * math.sin(ang) + off * math.cos(ang)
            ex = fx + length * math.cos(ang)
            ey = fy + length * math.sin(ang)
            cv2.line(canvas, (int(fx), int(fy)), (int(ex), int(ey)), SKIN_BGR, 19, cv2.LINE_AA)
        tx = px - 10 * math.cos(ang) + 58 * math.sin(ang + 0.5)
        ty = py - 10 * math.sin(ang) - 58 * math.cos(ang + 0.5)
        cv2.line(canvas, (int(px), int(py)), (int(tx), int(ty)), SKIN_BGR, 22, cv2.LINE_AA)

    def _render(self) -> np.ndarray:
        if self._static is None:
            static = self._background.copy()
            for it in self._items:
                if not it.moving:
                    self._draw_item(static, it, it.x0, it.y0)
            self._static = static
        frame = self._static.copy()
        for it in self._items:
            if it.moving:
                self._draw_item(frame, it, it.x0 + round(it.dx), it.y0 + round(it.dy))
        if self._hand is not None:
            self._draw_hand(frame)
        if self.noise > 0:
            w, h = self.size
            ox, oy = (int(v) for v in self._noise_rng.integers(0, 64, size=2))
            cv2.add(frame, self._noise_pos[oy:oy + h, ox:ox + w], dst=frame)
            cv2.subtract(frame, self._noise_neg[oy:oy + h, ox:ox + w], dst=frame)
        return frame

    # ----- the scene (a generator: one ``yield`` per frame)
    def _frames(self, seconds: float) -> int:
        return max(1, round(seconds * self.fps))

    def _settle(self) -> None:
        self._static = None
        self._phase = "resting" if self._items else "empty"

    def _set_moving(self, items: list[_Item], moving: bool) -> None:
        for it in items:
            it.moving = moving
            if not moving:
                it.dx = it.dy = 0.0
        self._static = None

    def _off_tray_dy(self, it: _Item) -> float:
        """How far down an item must go to be fully below the frame."""
        return float(self.size[1] - it.y0 + 10)

    def _play(self, steps: Sequence[Step]) -> Iterator[None]:
        places = self._auto_places(steps)
        for i, step in enumerate(steps):
            kind = step[0]
            if kind == "add":
                sku = step[1]
                if len(step) >= 4:
                    cx, cy = float(step[2]), float(step[3])
                    angle = float(step[4]) if len(step) >= 5 else 0.0
                    it = self._make_item(sku, cx, cy, angle)
                else:
                    it = self._make_item(*places[i])
                self._items.append(it)
                self._set_moving([it], True)
                self._phase = "placing"
                n = self._frames(SLIDE_S)
                start = self._off_tray_dy(it)
                for k in range(1, n + 1):
                    it.dy = start * (1.0 - _ease(k / n))
                    yield
                self._set_moving([it], False)
                self._settle()
            elif kind == "remove":
                it = self._find(step[1])
                self._set_moving([it], True)
                self._phase = "removing"
                n = self._frames(SLIDE_S)
                end = self._off_tray_dy(it)
                for k in range(1, n + 1):
                    it.dy = end * (k / n) ** 2
                    yield
                self._items.remove(it)
                self._settle()
            elif kind == "shift":
                it = self._find(step[1])
                dx, dy = float(step[2]), float(step[3])
                dangle = float(step[4]) if len(step) >= 5 else 0.0
                self._set_moving([it], True)
                self._phase = "shifting"
                n = self._frames(SHIFT_S)
                moved = it
                if dangle:  # the nudged item, turned by dangle around its centre
                    h, w = it.bgra.shape[:2]
                    turned = demo._rotate_bgra(it.bgra, dangle)
                    th, tw = turned.shape[:2]
                    moved = _prepare(it.sku, turned, round(it.x0 + w / 2 - tw / 2),
                                     round(it.y0 + h / 2 - th / 2))
                    moved.moving = True
                for k in range(1, n + 1):
                    f = _ease(k / n)
                    if k == (n + 1) // 2 and moved is not it:  # turns half-way through
                        self._items[self._items.index(it)] = moved
                        it = moved
                    it.dx, it.dy = dx * f, dy * f
                    yield
                it.x0 += round(dx)
                it.y0 += round(dy)
                self._set_moving([it], False)
                self._settle()
            elif kind == "hand":
                yield from self._hand_pass(float(step[1]))
                self._settle()
            elif kind == "clear":
                items = list(self._items)
                if items:
                    self._set_moving(items, True)
                    self._phase = "clearing"
                    n = self._frames(CLEAR_S)
                    ends = [self._off_tray_dy(it) for it in items]
                    for k in range(1, n + 1):
                        for it, end in zip(items, ends):
                            it.dy = end * (k / n) ** 2
                        yield
                self._items.clear()
                self._settle()
            elif kind == "wait":
                self._settle()
                for _ in range(self._frames(float(step[1]))):
                    yield
            elif kind == "until":  # the scene rests until a test (or a demo) gives the cue
                self._settle()
                while str(step[1]) not in self._go:
                    yield

    def _find(self, sku: str) -> _Item:
        for it in reversed(self._items):
            if it.sku == sku:
                return it
        raise ValueError(f"demo script: {sku} is not on the tray")

    def _hand_pass(self, seconds: float) -> Iterator[None]:
        """A hand comes in from the bottom edge, reaches over the tray and goes back."""
        w, h = self.size
        self._phase = "hand"
        n = self._frames(seconds)
        bx = float(self._rng.uniform(0.3, 0.7) * w)
        x_in = float(self._rng.uniform(0.15, 0.45) * w)
        x_out = float(self._rng.uniform(0.55, 0.85) * w)
        if self._rng.random() < 0.5:
            x_in, x_out = x_out, x_in
        reach = float(self._rng.uniform(0.25, 0.45) * h)
        for k in range(n):
            t = (k + 0.5) / n
            lift = math.sin(math.pi * t)  # in, over, out
            px = x_in + (x_out - x_in) * t
            py = h + 120 - (h + 120 - reach) * min(1.0, 1.6 * lift)
            self._hand = (px, py, bx + (px - bx) * 0.3)
            yield
        self._hand = None

    def _auto_places(self, steps: Sequence[Step]) -> dict[int, tuple]:
        """Free random places for the ``("add", sku)`` steps, one layout per basket (between
        clears)."""
        places: dict[int, tuple] = {}
        group: list[int] = []

        def flush() -> None:
            if group:
                layout = _layout([steps[i][1] for i in group], self._rng, self.size)
                for i, (sku, x, y, angle, scale) in zip(group, layout):
                    places[i] = (sku, x, y, angle, scale)
                group.clear()

        for i, s in enumerate(steps):
            if s[0] == "add" and len(s) < 4:
                group.append(i)
            elif s[0] == "clear":
                flush()
        flush()
        return places

    def _make_timeline(self) -> Iterator[None]:
        if self.script is not None:
            while True:
                yield from self._play(self.script)
                if not self.loop_script:
                    return
                self._items.clear()
                self._settle()
        while True:
            yield from self._play(self._random_basket())

    def _random_basket(self) -> list[Step]:
        """The steps of one random basket (see the module docstring)."""
        rng = self._rng
        self.basket_count += 1
        skus_all = [p.sku for p in demo.PRODUCTS]
        n = int(rng.integers(3, 9))
        skus = [skus_all[int(i)] for i in rng.integers(0, len(skus_all), n)]
        if n >= 4 and rng.random() < 0.35:  # the look-alike pair together
            skus[int(rng.integers(0, n - 1))] = demo.LOOKALIKES[0]
            skus[n - 1] = demo.LOOKALIKES[1]
        if rng.random() < 0.35:  # two of the same
            skus[int(rng.integers(1, n))] = skus[0]
        rng.shuffle(skus)

        def wait() -> Step:
            return ("wait", float(rng.uniform(0.8, 1.4)))

        steps: list[Step] = [("wait", 1.0)]
        for sku in skus[:-1]:
            steps += [("add", sku), wait()]
        nudged = skus[int(rng.integers(0, n - 1))]
        steps += [("shift", nudged, float(rng.uniform(-8, 8)), float(rng.uniform(-8, 8)),
                   float(rng.uniform(-6, 6))), wait()]
        steps += [("add", skus[-1]), wait()]
        steps += [("remove", skus[int(rng.integers(0, n))]), wait()]
        steps += [("hand", 1.0), ("wait", 1.5), ("clear",)]
        return steps


def _layout(skus: list[str], rng: np.random.Generator,
            size: tuple[int, int]) -> list[tuple[str, float, float, float, float]]:
    """Non-overlapping places for ``skus`` (smaller packages when many do not fit)."""
    scale = 1.0 if size == demo.TRAY_SIZE else min(size[0] / demo.TRAY_SIZE[0],
                                                     size[1] / demo.TRAY_SIZE[1])
    for _ in range(6):
        try:
            return demo.random_layout(skus, rng, size=size, scale=scale, gap=18, tries=200)
        except RuntimeError:
            scale *= 0.85
    raise ValueError(f"demo camera: {len(skus)} items do not fit on a {size[0]}×{size[1]} tray")


def _check_script(script: list[Step]) -> None:
    on_tray: list[str] = []
    for i, s in enumerate(script):
        if not s or s[0] not in _STEP_ARGS:
            raise ValueError(f"demo script step {i}: {s!r} (steps: {', '.join(_STEP_ARGS)})")
        lo, hi = _STEP_ARGS[s[0]]
        if not lo <= len(s) - 1 <= hi:
            raise ValueError(f"demo script step {i}: {s!r} has the wrong number of arguments")
        if s[0] == "add":
            if s[1] not in demo.PRODUCTS_BY_SKU:
                raise ValueError(f"demo script step {i}: unknown sku {s[1]!r}")
            if len(s) == 3:
                raise ValueError(f"demo script step {i}: give both x and y, or neither")
            on_tray.append(s[1])
        elif s[0] in ("remove", "shift"):
            if s[1] not in on_tray:
                raise ValueError(f"demo script step {i}: {s[1]} is not on the tray")
            if s[0] == "remove":
                on_tray.reverse()
                on_tray.remove(s[1])
                on_tray.reverse()
        elif s[0] == "clear":
            on_tray.clear()
        elif s[0] in ("wait", "hand") and float(s[1]) < 0:
            raise ValueError(f"demo script step {i}: negative duration")
