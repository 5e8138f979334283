"""Tray-level evaluation: real product photos composited onto trays, run through the engine.

``kiosk eval`` measures retrieval on whole photos; a shopper's tray adds detection (several
items, some touching, at any angle) and the cut-out / upright-turning of each crop.  This module
builds synthetic trays from labelled photos and scores the full pipeline on them:

* :func:`make_trays`: each item is one photo, scaled to a plausible package size, cut to a
  rectangle, rounded rectangle or ellipse ("package" outline), rotated, given a soft drop shadow
  and placed on the built-in empty tray (:func:`kiosk.demo.scenes.empty_tray`), without overlaps; a
  share of the items is pushed edge to edge against a neighbour.
* :func:`evaluate_trays`: ``engine.recognize`` on every tray (detector calibrated on the tray's
  own background) -> :class:`TrayReport`.  That is the checkout's own frame pipeline
  (:mod:`kiosk.pipeline`: tracking, barcodes, pack text, the "ask instead of guessing" rule),
  so the figures are the till's: ``till_accuracy`` counts the trays whose receipt, as the till
  charges it with nobody's help, holds exactly the true products.
* :func:`build_eval_catalog` / :func:`run_tray_eval`: a temporary catalogue from a gallery list
  (plain photos, imported whole) and the whole evaluation, as ``kiosk eval-trays`` runs it.
"""
from __future__ import annotations

import math
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

from kiosk.catalog.gallery_io import GalleryEntry, parse_gallery_list
from kiosk.images import load_image

Box = tuple[int, int, int, int]  # x1, y1, x2, y2 (exclusive)
Progress = Callable[[str, int, int], None]

SHAPES = ("rect", "rounded", "ellipse")
_SHADOW_OFFSET = (5, 7)  # dx, dy in pixels
_SHADOW_STRENGTH = 0.26
_SHADOW_BLUR = 6.0


@dataclass(frozen=True)
class GeneratedTray:
    """A synthetic tray: the image (BGR uint8), the empty tray it was drawn on (its calibration
    image) and the ground truth, one ``(label, box)`` per item."""

    image: np.ndarray
    background: np.ndarray
    items: list[tuple[str, Box]] = field(default_factory=list)

    @property
    def labels(self) -> list[str]:
        return [label for label, _ in self.items]


# ------------------------------------------------------------------------------ item sprites
def _shape_alpha(w: int, h: int, shape: str, radius: float = 0.0) -> np.ndarray:
    """Anti-aliased alpha (float32 in [0, 1], h x w) of a package outline filling the frame."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    px, py = xs + 0.5 - w / 2.0, ys + 0.5 - h / 2.0  # pixel centres, origin at the middle
    hw, hh = w / 2.0, h / 2.0
    if shape == "ellipse":
        # approximate signed distance to the ellipse, in pixels
        rn = np.sqrt((px / hw) ** 2 + (py / hh) ** 2)
        d = (rn - 1.0) * min(hw, hh)
    elif shape == "rounded":
        r = float(min(radius, hw, hh))
        qx, qy = np.abs(px) - (hw - r), np.abs(py) - (hh - r)
        d = (np.sqrt(np.maximum(qx, 0) ** 2 + np.maximum(qy, 0) ** 2)
             + np.minimum(np.maximum(qx, qy), 0) - r)
    elif shape == "rect":
        d = np.maximum(np.abs(px) - hw, np.abs(py) - hh)
    else:
        raise ValueError(f"unknown shape {shape!r}: use one of {SHAPES}")
    return np.clip(0.5 - d, 0.0, 1.0).astype(np.float32)


def _rotate(bgra: np.ndarray, angle: float) -> np.ndarray:
    """Rotate a float32 BGRA sprite by ``angle`` degrees, growing the canvas to fit."""
    h, w = bgra.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), angle, 1.0)
    c, s = abs(m[0, 0]), abs(m[0, 1])
    nw, nh = int(math.ceil(w * c + h * s)) + 2, int(math.ceil(w * s + h * c)) + 2
    m[0, 2] += nw / 2.0 - w / 2.0
    m[1, 2] += nh / 2.0 - h / 2.0
    out = cv2.warpAffine(bgra, m, (nw, nh), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0))
    ys, xs = np.nonzero(out[..., 3] > 0.02)
    return out[ys.min():ys.max() + 1, xs.min():xs.max() + 1]


def make_sprite(photo: np.ndarray, rng: np.random.Generator, *,
                item_px: tuple[int, int] = (150, 260),
                shapes: Sequence[str] = SHAPES) -> np.ndarray:
    """One item: ``photo`` scaled so its long side is in ``item_px``, cut to a random package
    outline, lit slightly differently and rotated; float32 BGRA (alpha in [0, 1])."""
    w0 = photo.shape[1]
    side = float(rng.uniform(*item_px))
    aspect = float(rng.uniform(0.75, 1.0))  # packages are rarely square: squash one side a bit
    if rng.random() < 0.5:
        w, h = side, side * aspect
    else:
        w, h = side * aspect, side
    w, h = max(8, int(round(w))), max(8, int(round(h)))
    img = cv2.resize(photo, (w, h), interpolation=cv2.INTER_AREA if w < w0 else cv2.INTER_LINEAR)
    shape = shapes[int(rng.integers(0, len(shapes)))]
    alpha = _shape_alpha(w, h, shape, radius=float(rng.uniform(0.12, 0.3)) * min(w, h))
    gain = float(rng.uniform(0.92, 1.08))
    bgra = np.dstack([img.astype(np.float32) * gain, alpha]).astype(np.float32)
    bgra[..., :3] = np.clip(bgra[..., :3], 0, 255)
    return _rotate(bgra, float(rng.uniform(-180.0, 180.0)))


# ------------------------------------------------------------------------------ placement
class _Layout:
    """Occupancy of the tray: 0 = free, k = item k-1."""

    def __init__(self, size: tuple[int, int], margin: int, gap: int) -> None:
        self.width, self.height = size
        self.margin = margin
        self.occ = np.zeros((self.height, self.width), np.int32)
        self.kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * gap + 1, 2 * gap + 1))
        self.placed: list[tuple[int, int, np.ndarray]] = []  # x0, y0, mask

    def inside(self, mask: np.ndarray, x0: int, y0: int) -> bool:
        h, w = mask.shape
        m = self.margin
        return x0 >= m and y0 >= m and x0 + w <= self.width - m and y0 + h <= self.height - m

    def neighbours(self, mask: np.ndarray, x0: int, y0: int, grow: bool) -> set[int]:
        """Labels under ``mask`` at (x0, y0) (dilated by the gap when ``grow``), 0 excluded."""
        h, w = mask.shape
        if grow:  # the dilated mask sticks out of the sprite box: pad the window
            r = self.kernel.shape[0] // 2
            m = cv2.dilate(np.pad(mask, r).astype(np.uint8), self.kernel) > 0
            ys, xs = y0 - r, x0 - r
            cy0, cx0 = max(0, ys), max(0, xs)
            cy1, cx1 = min(self.height, ys + h + 2 * r), min(self.width, xs + w + 2 * r)
            sub = self.occ[cy0:cy1, cx0:cx1]
            m = m[cy0 - ys:cy1 - ys, cx0 - xs:cx1 - xs]
            return set(np.unique(sub[m]).tolist()) - {0}
        return set(np.unique(self.occ[y0:y0 + h, x0:x0 + w][mask]).tolist()) - {0}

    def put(self, mask: np.ndarray, x0: int, y0: int) -> None:
        h, w = mask.shape
        sub = self.occ[y0:y0 + h, x0:x0 + w]
        sub[mask & (sub == 0)] = len(self.placed) + 1
        self.placed.append((x0, y0, mask))

    def free_spot(self, mask: np.ndarray, rng: np.random.Generator,
                  tries: int) -> tuple[int, int] | None:
        h, w = mask.shape
        m = self.margin
        if w > self.width - 2 * m or h > self.height - 2 * m:
            return None
        for _ in range(tries):
            x0 = int(rng.integers(m, self.width - m - w + 1))
            y0 = int(rng.integers(m, self.height - m - h + 1))
            if not self.neighbours(mask, x0, y0, grow=True):
                return x0, y0
        return None

    def touching_spot(self, mask: np.ndarray, rng: np.random.Generator,
                      tries: int) -> tuple[int, int] | None:
        """Slide ``mask`` towards a random placed item until it would overlap it; the last free
        position leaves the two edge to edge.  No other item may come within the gap."""
        h, w = mask.shape
        for _ in range(tries):
            k = int(rng.integers(0, len(self.placed)))
            px, py, pm = self.placed[k]
            cx, cy = px + pm.shape[1] / 2.0, py + pm.shape[0] / 2.0
            theta = float(rng.uniform(0.0, 2.0 * math.pi))
            dx, dy = math.cos(theta), math.sin(theta)
            start = int(math.hypot(*pm.shape) / 2 + math.hypot(h, w) / 2) + 2
            last_free = None
            for dist in range(start, -1, -1):
                x0 = int(round(cx + dx * dist - w / 2.0))
                y0 = int(round(cy + dy * dist - h / 2.0))
                if not self.inside(mask, x0, y0):
                    last_free = None
                    continue
                hit = self.neighbours(mask, x0, y0, grow=False)
                if hit:
                    if hit == {k + 1} and last_free is not None:
                        fx, fy = last_free
                        if self.neighbours(mask, fx, fy, grow=True) <= {k + 1}:
                            return last_free
                    break
                last_free = (x0, y0)
        return None


def _composite(canvas: np.ndarray, sprite: np.ndarray, x0: int, y0: int) -> None:
    a = sprite[..., 3:4]
    h, w = sprite.shape[:2]
    region = canvas[y0:y0 + h, x0:x0 + w]
    canvas[y0:y0 + h, x0:x0 + w] = region * (1.0 - a) + sprite[..., :3] * a


def _shadow(canvas: np.ndarray, sprite: np.ndarray, x0: int, y0: int) -> None:
    """Darken the tray under a blurred, offset copy of the sprite's outline."""
    pad = int(3 * _SHADOW_BLUR)
    a = np.pad(sprite[..., 3], pad)
    dark = _SHADOW_STRENGTH * cv2.GaussianBlur(a, (0, 0), _SHADOW_BLUR)
    sx, sy = x0 - pad + _SHADOW_OFFSET[0], y0 - pad + _SHADOW_OFFSET[1]
    H, W = canvas.shape[:2]
    cx0, cy0 = max(0, sx), max(0, sy)
    cx1, cy1 = min(W, sx + dark.shape[1]), min(H, sy + dark.shape[0])
    if cx0 < cx1 and cy0 < cy1:
        canvas[cy0:cy1, cx0:cx1] *= 1.0 - dark[cy0 - sy:cy1 - sy, cx0 - sx:cx1 - sx, None]


# ------------------------------------------------------------------------------ generator
def make_trays(entries: Sequence[GalleryEntry], n_trays: int, rng: np.random.Generator, *,
               items: tuple[int, int] = (2, 6), size: tuple[int, int] = (1280, 720),
               touching_frac: float = 0.3, item_px: tuple[int, int] = (150, 260),
               shapes: Sequence[str] = SHAPES, margin: int = 24, gap: int = 14,
               tries: int = 300) -> list[GeneratedTray]:
    """``n_trays`` trays of ``items`` (inclusive range) photos from ``entries`` each.

    Every item is a different photo within a tray (drawn at random; products may repeat).
    ``touching_frac`` of a tray's items (rounded) are pushed edge to edge against an item placed
    before; the others keep ``gap`` pixels from everything.  Items never overlap and stay
    ``margin`` pixels inside the image.  An item that does not fit is drawn again smaller.
    Deterministic for a given ``rng`` state and ``entries``.
    """
    from kiosk.demo.scenes import empty_tray

    entries = list(entries)
    if not entries:
        raise ValueError("make_trays needs at least one labelled photo")
    lo, hi = int(items[0]), int(items[1])
    if not 1 <= lo <= hi:
        raise ValueError(f"items must be a range 1 <= min <= max, got {items}")
    background = empty_tray(tuple(size))
    photos: dict[Path, np.ndarray] = {}
    trays: list[GeneratedTray] = []
    for _ in range(int(n_trays)):
        n = int(rng.integers(lo, hi + 1))
        picks = rng.choice(len(entries), size=n, replace=n > len(entries))
        n_touch = min(n - 1, int(round(touching_frac * n)))
        layout = _Layout(tuple(size), margin, gap)
        canvas = background.astype(np.float32)
        placed: list[tuple[str, np.ndarray, int, int]] = []
        for i, idx in enumerate(picks):
            entry = entries[int(idx)]
            if entry.path not in photos:
                photos[entry.path] = load_image(entry.path)
            touch = i >= n - n_touch and layout.placed
            px_range = item_px
            for _attempt in range(8):
                sprite = make_sprite(photos[entry.path], rng, item_px=px_range, shapes=shapes)
                mask = sprite[..., 3] > 0.5
                spot = layout.touching_spot(mask, rng, tries // 10) if touch else None
                if spot is None:
                    spot = layout.free_spot(mask, rng, tries)
                if spot is not None:
                    break
                px_range = (max(40, int(px_range[0] * 0.85)), max(48, int(px_range[1] * 0.85)))
            else:
                raise RuntimeError(f"could not place item {i} ({entry.label}) on the tray")
            x0, y0 = spot
            layout.put(mask, x0, y0)
            placed.append((entry.label, sprite, x0, y0))
        for _, sprite, x0, y0 in placed:  # shadows first: they fall on the tray, not on items
            _shadow(canvas, sprite, x0, y0)
        truth: list[tuple[str, Box]] = []
        for label, sprite, x0, y0 in placed:
            _composite(canvas, sprite, x0, y0)
            ys, xs = np.nonzero(sprite[..., 3] > 0.5)
            truth.append((label, (x0 + int(xs.min()), y0 + int(ys.min()),
                                  x0 + int(xs.max()) + 1, y0 + int(ys.max()) + 1)))
        image = np.clip(canvas + 0.5, 0, 255).astype(np.uint8)
        trays.append(GeneratedTray(image, background, truth))
    return trays


# ------------------------------------------------------------------------------ evaluation
@dataclass
class TrayReport:
    n_trays: int
    n_items: int  # true items on all trays
    checkout_accuracy: float  # trays whose recognised skus equal the truth exactly (multiset)
    mean_count_error: float  # mean |#detected - #true| per tray
    item_accuracy: float  # true items matched (IoU >= iou) by a detection with the right sku
    detection_recall: float  # true items matched (IoU >= iou) by any detection
    unknown_rate: float  # detections decided "unknown"
    n_detections: int = 0
    model_id: str = ""
    iou: float = 0.5
    # detections recognised but sent to the cashier: a look-alike of another price is too close
    unsure_rate: float = 0.0
    # trays whose receipt (unknown and unsure items left to the cashier) is exactly the truth
    till_accuracy: float = 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, float):
                d[k] = round(v, 4)
        return d


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def match_boxes(truth: Sequence[Box], dets: Sequence[Box], iou: float = 0.5) -> dict[int, int]:
    """Greedy one-to-one matching by IoU (highest first): truth index -> detection index."""
    pairs = sorted(((box_iou(t, d), ti, di) for ti, t in enumerate(truth)
                    for di, d in enumerate(dets)), reverse=True)
    out: dict[int, int] = {}
    used: set[int] = set()
    for v, ti, di in pairs:
        if v < iou:
            break
        if ti in out or di in used:
            continue
        out[ti] = di
        used.add(di)
    return out


def evaluate_trays(engine, trays: Sequence[GeneratedTray], *, iou: float = 0.5,
                   progress: Progress | None = None) -> TrayReport:
    """Run ``engine.recognize`` on every tray, its detector calibrated on the tray's background
    (the engine's own detector is put back afterwards), and score the result."""
    from kiosk.detect import make_detector

    detectors: dict[int, object] = {}
    own = engine.detector
    n_items = n_dets = n_unknown = n_found = n_right = n_checkout = n_unsure = n_till = 0
    count_err = 0
    try:
        for t, tray in enumerate(trays):
            if progress is not None:
                progress("recognise", t, len(trays))
            key = id(tray.background)
            if key not in detectors:
                detectors[key] = make_detector("tray", background=tray.background)
            engine.detector = detectors[key]
            result = engine.recognize(tray.image)
            got = [(item.box, None if item.unknown else item.sku) for item in result.items]
            labels = tray.labels
            matched = match_boxes([b for _, b in tray.items], [b for b, _ in got], iou)
            n_items += len(labels)
            n_dets += len(got)
            n_unknown += sum(sku is None for _, sku in got)
            n_found += len(matched)
            n_right += sum(got[di][1] == labels[ti] for ti, di in matched.items())
            count_err += abs(len(got) - len(labels))
            n_checkout += Counter(sku for _, sku in got) == Counter(labels)
            n_unsure += sum(item.unsure for item in result.items)
            charged: Counter = Counter()
            for line in result.receipt.lines:
                charged[line.sku] += line.qty
            n_till += (charged == Counter(labels)
                       and all(item.charged for item in result.items))
    finally:
        engine.detector = own
    if progress is not None:
        progress("recognise", len(trays), len(trays))
    n = len(trays)
    return TrayReport(
        n_trays=n,
        n_items=n_items,
        checkout_accuracy=n_checkout / n if n else 0.0,
        mean_count_error=count_err / n if n else 0.0,
        item_accuracy=n_right / n_items if n_items else 0.0,
        detection_recall=n_found / n_items if n_items else 0.0,
        unknown_rate=n_unknown / n_dets if n_dets else 0.0,
        n_detections=n_dets,
        unsure_rate=n_unsure / n_dets if n_dets else 0.0,
        till_accuracy=n_till / n if n else 0.0,
        model_id=str(engine.embedder.model_id),
        iou=float(iou),
    )


def build_eval_catalog(db: str | Path, gallery_list: str | Path, embedder,
                       progress: Progress | None = None) -> Path:
    """A catalogue at ``db`` (new) with every photo of ``gallery_list`` imported whole (the
    photos are plain product photos, not tray cut-outs); products named by their labels."""
    from kiosk.catalog import Catalog
    from kiosk.catalog.gallery_io import import_gallery

    db = Path(db)
    if db.exists():
        raise FileExistsError(f"{db} already exists")
    catalog = Catalog(db)
    try:
        import_gallery(catalog, parse_gallery_list(gallery_list), None, embedder,
                       progress=progress)
    finally:
        catalog.close()
    return db


def run_tray_eval(embedder, gallery_list: str | Path, query_list: str | Path, *,
                  n_trays: int = 50, seed: int = 0, items: tuple[int, int] = (2, 6),
                  touching_frac: float = 0.3, threshold: float | None = None,
                  progress: Progress | None = None, text_reader=None) -> TrayReport:
    """The whole evaluation: trays from ``query_list``, a temporary catalogue from
    ``gallery_list`` embedded by ``embedder``, the engine with the model's threshold (and
    with ``text_reader``, the gallery's pack text read and used as the kiosk does)."""
    from kiosk.engine import Engine

    trays = make_trays(parse_gallery_list(query_list), n_trays, np.random.default_rng(seed),
                       items=items, touching_frac=touching_frac)
    with tempfile.TemporaryDirectory(prefix="kiosk-eval-trays-") as tmp:
        db = build_eval_catalog(Path(tmp) / "catalog.db", gallery_list, embedder, progress)
        engine = Engine.open(db, embedder=embedder, background=trays[0].background if trays
                             else None, threshold=threshold, text_reader=text_reader)
        try:
            return evaluate_trays(engine, trays, progress=progress)
        finally:
            engine.close()
