"""Tracking: which detection of the new picture is which item already on the tray.

A :class:`Tracker` keeps the items of the last picture (:class:`Track`) and matches each new
picture's :class:`~kiosk.detect.Detections` to them in two passes, cheapest first:

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

import itertools
from dataclasses import dataclass, field
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


# ---------------------------------------------------------------------------------------------
# the tracks


class Track:
    """One item on the tray across pictures (mutable).

    The recognition fields are written by the frame pipeline (:mod:`kiosk.pipeline`, one
    recognition thread); the hand-made ones (a cashier's product, a quantity, a removal, a
    paid mark) by the checkout session.  All of them follow the item while it stays on the
    tray, nudged or not."""

    def __init__(self, track_id: int, box, sig, mask) -> None:
        from kiosk.decide import Decision

        self.id = track_id
        self.box: tuple[int, int, int, int] = tuple(int(v) for v in box)  # type: ignore
        self.sig = sig
        self.mask = mask
        # -- recognition (kiosk.pipeline)
        self.decision: Decision = Decision(None, 0.0, True, ())
        self.vectors: list[np.ndarray] = []  # embeddings of the views seen (fusion, tracking)
        self.view_sigs: list[np.ndarray] = []  # thumbnails of the embedded views
        self.words: tuple[str, ...] = ()  # the pack text last read on it
        self.text_crop: np.ndarray | None = None  # a view whose pack is still to be read
        self.fused = False  # the decision came from averaged views
        self.barcode_sku: str | None = None
        self.barcode_sig: np.ndarray | None = None  # thumbnail at the last code attempt
        # a view of an item the pictures named whose barcode is still to be checked (the
        # checkout reads it once the tray is still, kiosk.pipeline.FramePipeline.read_code)
        self.code_crop: np.ndarray | None = None
        # a barcode read on it of no product for sale, while the product the pictures named
        # has another: the pack is something else, so the cashier decides
        self.foreign_code: str | None = None
        self.crop: np.ndarray | None = None  # the item's latest upright cut-out (to learn from)
        # -- by hand (kiosk.checkout.session)
        self.override: str | None = None  # set by the cashier
        self.override_by: str | None = None  # the cashier's id ("shopper" for a shopper choice)
        self.removed = False  # the cashier said: ignore this item
        self.badge: str | None = None  # a cashier badge shown on the tray (the cashier's id)
        self.qty = 1
        self.paid = False  # part of a finished sale, still on the tray

    @property
    def sku(self) -> str | None:
        return self.override or self.barcode_sku or self.decision.sku

    @property
    def source(self) -> str:
        if self.override:
            return "shopper" if self.override_by == "shopper" else "cashier"
        if self.barcode_sku:
            return "barcode"
        return "recognized"

    @property
    def live(self) -> bool:
        return not (self.removed or self.paid or self.badge)

    @property
    def open(self) -> bool:
        """Recognition may still change what the item is (nobody named it by hand or by its
        barcode, and it counts)."""
        return self.override is None and self.barcode_sku is None and self.live


@dataclass
class Observation:
    """One picture's detections as the tracker sees them: each detection's box, thumbnail
    and mask, and which known track it is (``match``) or which track it starts (``new``)."""

    boxes: list[tuple[int, int, int, int]]
    sigs: list[np.ndarray]
    masks: list
    match: dict[int, Track]
    new: dict[int, Track] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.boxes)

    def track(self, j: int) -> Track:
        t = self.match.get(j)
        return t if t is not None else self.new[j]

    @property
    def tracks(self) -> list[Track]:
        """The track of every detection, in detection order (after :meth:`Tracker.start`)."""
        return [self.track(j) for j in range(len(self.boxes))]


class Tracker:
    """Which detection of each new picture is which item already on the tray.

    ``tracks`` (id -> :class:`Track`) are the items of the last committed picture.
    :meth:`observe` matches a picture's :class:`~kiosk.detect.Detections` in place,
    :meth:`follow_moved` matches what is left by embedding, :meth:`start` opens a track for a
    new item and :meth:`commit` makes the picture's tracks the current ones.  ``observe`` /
    ``follow_moved`` / ``start`` change no shared state (a recognition thread runs them on a
    snapshot of the tracks); ``commit`` replaces ``tracks``."""

    def __init__(self, *, iou_keep: float = 0.6, content_threshold: float = 12.0,
                 move_cosine: float = 0.82) -> None:
        if not 0 < iou_keep <= 1:
            raise ValueError("iou_keep must be in (0, 1]")
        self.iou_keep = float(iou_keep)
        self.content_threshold = float(content_threshold)
        self.move_cosine = float(move_cosine)
        self.tracks: dict[int, Track] = {}
        self._ids = itertools.count(1)

    def observe(self, image: np.ndarray, dets, tracks: Sequence[Track] | None = None
                ) -> Observation:
        """The picture's detections (:class:`kiosk.detect.Detections`), those that did not
        move matched to ``tracks`` (default: the current ones)."""
        tracks = list(self.tracks.values()) if tracks is None else list(tracks)
        masks = list(dets.masks) if dets.masks is not None else [None] * len(dets)
        boxes = [tuple(int(v) for v in b) for b in dets.boxes]
        sigs = [signature(image, b, m) for b, m in zip(boxes, masks)]
        match = match_in_place(tracks, boxes, sigs, iou_keep=self.iou_keep,
                               content_threshold=self.content_threshold)
        return Observation(boxes, sigs, masks, match)  # type: ignore[arg-type]

    def follow_moved(self, obs: Observation, tracks: Sequence[Track],
                     vectors: dict[int, np.ndarray]) -> None:
        """Match left-over detections (``vectors``: detection -> its embedding) to left-over
        ``tracks`` nudged or turned a little (:func:`match_moved`)."""
        used = {t.id for t in obs.match.values()}
        left = [t for t in tracks if t.id not in used]
        unmatched = {j: v for j, v in vectors.items() if j not in obs.match}
        if left and unmatched:
            obs.match.update(match_moved(left, obs.boxes, unmatched,
                                         min_cosine=self.move_cosine))

    def start(self, obs: Observation, j: int) -> Track:
        """A new track for detection ``j`` (not matched to any)."""
        t = Track(next(self._ids), obs.boxes[j], obs.sigs[j], obs.masks[j])
        obs.new[j] = t
        return t

    def commit(self, obs: Observation) -> set[int]:
        """The picture's tracks become the current ones (matched tracks take the new box,
        thumbnail and mask); returns the ids of the tracks no longer on the tray."""
        tracks: dict[int, Track] = {}
        for j, (box, sig, mask) in enumerate(zip(obs.boxes, obs.sigs, obs.masks)):
            t = obs.track(j)
            if j in obs.match:
                t.box, t.sig, t.mask = box, sig, mask
            tracks[t.id] = t
        gone = set(self.tracks) - set(tracks)
        self.tracks = tracks
        return gone

    def clear(self) -> None:
        self.tracks = {}
