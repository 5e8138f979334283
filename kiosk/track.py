"""Tracking: which detection of the new picture is which item already on the tray.

Two passes, cheapest first:

1. **In place** (:func:`match_in_place`): a detection that overlaps a known item by at least
   ``iou_keep`` and looks the same (a 16x16 colour thumbnail within ``content_threshold``) is
   that item.  It keeps its identity, decision and corrections and is not embedded again.
2. **Moved a little** (:func:`match_moved`): what is left after pass 1 is embedded anyway (it
   may be new).  A left-over detection whose embedding is close to a left-over item's
   (cosine >= ``min_cosine``) and whose centre moved by at most ``max_shift`` of the item's
   size is that item, nudged or turned: a shopper bumping the tray, an item slid aside.  The
   cashier's correction, the quantity and a paid mark follow it, and a correction panel open
   on it stays bound to it.

No Qt here.
"""
from __future__ import annotations

from typing import Protocol, Sequence

import cv2
import numpy as np

SIG_SIZE = 16  # item thumbnails compared to tell "same item, did not move" (16x16 colour)


class Trackable(Protocol):
    id: int
    box: tuple[int, int, int, int]
    sig: np.ndarray | None
    vectors: list[np.ndarray]


def iou(a, b) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def signature(image: np.ndarray, box, mask: np.ndarray | None) -> np.ndarray:
    """A tiny colour thumbnail of the item (outside its mask neutral grey)."""
    x1, y1, x2, y2 = (int(v) for v in box)
    crop = image[y1:y2, x1:x2]
    if crop.size == 0:
        return np.full((SIG_SIZE, SIG_SIZE, 3), 128, np.float32)
    if mask is not None and mask.shape == crop.shape[:2]:
        crop = crop.copy()
        crop[~np.asarray(mask, bool)] = 128
    return cv2.resize(crop, (SIG_SIZE, SIG_SIZE), interpolation=cv2.INTER_AREA).astype(np.float32)


def sig_diff(a: np.ndarray | None, b: np.ndarray | None) -> float:
    if a is None or b is None:
        return float("inf")
    return float(np.mean(np.abs(a - b)))


def match_in_place(tracks: Sequence[Trackable], boxes: Sequence[tuple], sigs: Sequence[np.ndarray],
                   *, iou_keep: float, content_threshold: float) -> dict[int, Trackable]:
    """Detection index -> track, for detections that did not move (greedy, best overlap
    first, only same-looking pairs)."""
    pairs = []
    for j, (box, sig) in enumerate(zip(boxes, sigs)):
        for t in tracks:
            o = iou(box, t.box)
            if o >= iou_keep:
                diff = sig_diff(sig, t.sig)
                if diff <= content_threshold:
                    pairs.append((o, -diff, j, t.id))
    pairs.sort(reverse=True)
    by_id = {t.id: t for t in tracks}
    match: dict[int, Trackable] = {}
    used: set[int] = set()
    for _, _, j, tid in pairs:
        if j not in match and tid not in used:
            match[j] = by_id[tid]
            used.add(tid)
    return match


def _centre(b) -> tuple[float, float]:
    return (b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0


def match_moved(tracks: Sequence[Trackable], boxes: Sequence[tuple], vectors: dict[int, np.ndarray],
                *, min_cosine: float = 0.82, max_shift: float = 1.0) -> dict[int, Trackable]:
    """Detection index -> track for left-over detections (``vectors``: index -> embedding)
    that are a left-over track moved a little: similar embedding (cosine to the mean of the
    track's views >= ``min_cosine``) and a centre shift of at most ``max_shift`` times the
    larger side of the track's box.  Greedy, most similar first."""
    pairs = []
    for t in tracks:
        if not t.vectors:
            continue
        mean = np.mean(np.asarray(t.vectors, np.float32), axis=0)
        mean = mean / max(float(np.linalg.norm(mean)), 1e-12)
        tx, ty = _centre(t.box)
        size = max(t.box[2] - t.box[0], t.box[3] - t.box[1], 1)
        for j, v in vectors.items():
            cx, cy = _centre(boxes[j])
            if np.hypot(cx - tx, cy - ty) > max_shift * size:
                continue
            v = np.asarray(v, np.float32)
            cos = float(v @ mean) / max(float(np.linalg.norm(v)), 1e-12)
            if cos >= min_cosine:
                pairs.append((cos, j, t.id))
    pairs.sort(reverse=True)
    by_id = {t.id: t for t in tracks}
    match: dict[int, Trackable] = {}
    used: set[int] = set()
    for _, j, tid in pairs:
        if j not in match and tid not in used:
            match[j] = by_id[tid]
            used.add(tid)
    return match
