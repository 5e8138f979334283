"""A checkout in progress: from camera frames to a live, correctable basket.

:class:`CheckoutSession` is what the recognition worker runs (no Qt here).  It recognises when the
tray has settled, not on every frame; keeps each item's identity across frames (an item that did
not move is not embedded again); resolves unknown items by barcode; applies the cashier's
corrections; and turns the items into a receipt.  The GUI only displays :class:`SessionState`
and calls the intent methods (``override``, ``remove``, ``set_qty``, ``finish``).
"""
from __future__ import annotations

import itertools
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from .basket import Receipt
from .decide import Decision
from .detect import item_crop

if TYPE_CHECKING:  # pragma: no cover
    from .camera import Frame
    from .catalog import Product
    from .engine import Engine


@dataclass(frozen=True)
class ItemCandidate:
    sku: str
    name: str
    price: int | None  # fen
    score: float


@dataclass(frozen=True)
class TrackedItem:
    """One item on the tray as the shopper and cashier see it."""

    track_id: int  # stable while the item stays on the tray
    box: tuple[int, int, int, int]  # x1, y1, x2, y2 in frame pixels
    sku: str | None  # None = unknown (needs the cashier)
    name: str | None
    price: int | None  # unit price in fen, None when unknown or unpriced
    score: float
    unknown: bool
    candidates: tuple[ItemCandidate, ...] = ()
    source: str = "recognized"  # "recognized" | "barcode" | "cashier"
    qty: int = 1
    words: tuple[str, ...] = ()  # pack text read on it (kiosk.text), when it was read


@dataclass(frozen=True)
class SessionState:
    """Everything the shopper view shows, as of one processed frame."""

    frame_index: int
    settled: bool  # False while things move on the tray (the view keeps the last items)
    items: tuple[TrackedItem, ...]
    receipt: Receipt
    needs_cashier: bool  # some item is unknown or unpriced
    timings_ms: dict = field(default_factory=dict)
    n_embedded: int = 0  # crops embedded by the recognition that made this state (0: none)


# ---------------------------------------------------------------------------------------------
# the session

log = logging.getLogger(__name__)

_MOTION_SIZE = (160, 90)  # the motion check looks at the frame this small (grey)
_PIXEL_DELTA = 10.0  # a downscaled grey pixel "changed" when it moves by more than this
_SIG_SIZE = 16  # item thumbnails compared to tell "same item, did not move" (16x16 colour)
_MAX_VIEWS = 8  # embeddings kept per track for multi-frame fusion


def _small_grey(image: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    small = cv2.resize(grey, _MOTION_SIZE, interpolation=cv2.INTER_AREA)
    return cv2.GaussianBlur(small, (3, 3), 0).astype(np.float32)


def _changed_fraction(a: np.ndarray | None, b: np.ndarray | None) -> float:
    """Fraction of the downscaled frame that changed between ``a`` and ``b`` (1.0 if either
    is missing)."""
    if a is None or b is None or a.shape != b.shape:
        return 1.0
    return float(np.mean(np.abs(a - b) > _PIXEL_DELTA))


def _iou(a, b) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _signature(image: np.ndarray, box, mask: np.ndarray | None) -> np.ndarray:
    """A tiny colour thumbnail of the item (outside its mask neutral grey)."""
    x1, y1, x2, y2 = (int(v) for v in box)
    crop = image[y1:y2, x1:x2]
    if crop.size == 0:
        return np.full((_SIG_SIZE, _SIG_SIZE, 3), 128, np.float32)
    if mask is not None and mask.shape == crop.shape[:2]:
        crop = crop.copy()
        crop[~np.asarray(mask, bool)] = 128
    return cv2.resize(crop, (_SIG_SIZE, _SIG_SIZE), interpolation=cv2.INTER_AREA).astype(np.float32)


def _sig_diff(a: np.ndarray | None, b: np.ndarray | None) -> float:
    if a is None or b is None:
        return float("inf")
    return float(np.mean(np.abs(a - b)))


def _certainty(d: Decision) -> tuple:
    # a decision the pack's words settled beats a picture-only one, whose best similarity
    # may be higher exactly because the two products look alike
    return (not d.unknown, d.by_text, d.score)


def _margin(d: Decision) -> float:
    c = d.candidates
    if len(c) < 2:
        return float("inf") if c else 0.0
    return c[0].score - c[1].score


class _Track:
    """One item on the tray, as the session keeps it (internal, mutable)."""

    def __init__(self, track_id: int, box, sig, mask) -> None:
        self.id = track_id
        self.box: tuple[int, int, int, int] = tuple(int(v) for v in box)  # type: ignore
        self.sig = sig
        self.mask = mask
        self.decision: Decision = Decision(None, 0.0, True, ())
        self.vectors: list[np.ndarray] = []  # embeddings of the views seen (fusion)
        self.view_sigs: list[np.ndarray] = []  # thumbnails of the embedded views
        self.words: tuple[str, ...] = ()  # the pack text last read on it
        self.text_crop: np.ndarray | None = None  # a view whose pack is still to be read
        self.fused = False  # the decision came from averaged views
        self.barcode_sku: str | None = None
        self.barcode_sig: np.ndarray | None = None  # thumbnail at the last barcode attempt
        self.override: str | None = None  # set by the cashier
        self.removed = False  # the cashier said: ignore this item
        self.qty = 1
        self.paid = False  # part of a finished sale, still on the tray

    @property
    def sku(self) -> str | None:
        return self.override or self.barcode_sku or self.decision.sku

    @property
    def source(self) -> str:
        if self.override:
            return "cashier"
        if self.barcode_sku:
            return "barcode"
        return "recognized"


class CheckoutSession:
    """A live checkout on top of an :class:`~kiosk.engine.Engine`.

    ``settle_ms``: how long the tray must be still (by ``Frame.t``) before recognising.
    ``motion_threshold``: fraction of the (downscaled, grey) frame that must change between
    two frames to count as motion.  ``iou_keep``: a detection overlapping a known item at least
    this much, and looking the same (``content_threshold``, mean abs difference of 16x16
    thumbnails, 0..255), is that item: it keeps its identity, decision and corrections and is
    not embedded again.  ``barcode``: read EAN/UPC codes off items recognition calls unknown.
    ``fuse_margin``: a re-seen item whose top-2 candidates are closer than this (or unknown)
    gets its views averaged and decided again.

    Thread-safe: :meth:`process` may run in a worker thread while the GUI calls the intents;
    recognition itself runs outside the state lock, so intents never wait for the models.
    """

    def __init__(self, engine: "Engine", *, settle_ms: float = 300, motion_threshold: float = 0.003,
                 iou_keep: float = 0.6, barcode: bool = True, content_threshold: float = 12.0,
                 fuse_margin: float = 0.03) -> None:
        if settle_ms < 0:
            raise ValueError("settle_ms must not be negative")
        if not 0 < iou_keep <= 1:
            raise ValueError("iou_keep must be in (0, 1]")
        self.engine = engine
        self.settle_s = float(settle_ms) / 1000.0
        self.motion_threshold = float(motion_threshold)
        self.iou_keep = float(iou_keep)
        self.barcode = bool(barcode)
        self.content_threshold = float(content_threshold)
        self.fuse_margin = float(fuse_margin)
        self._lock = threading.RLock()  # guards the tracks, corrections and state
        self._process_lock = threading.Lock()  # one process() at a time
        self._ids = itertools.count(1)
        self._gen = 0  # bumped by reset(): a recognition started before is discarded
        self._tracks: dict[int, _Track] = {}
        self._corrections: list[int] = []
        self._prev_small: np.ndarray | None = None
        self._ref_small: np.ndarray | None = None  # the last recognised scene
        self._still_since: float | None = None
        self._settled = False
        self._frame_index = -1
        self.recognitions = 0  # settled scenes recognised (detect + match + embed) so far
        self._state = self._make_state(-1, False, {}, 0)

    # ------------------------------------------------------------------ state
    @property
    def state(self) -> SessionState:
        """The latest :class:`SessionState`."""
        with self._lock:
            return self._state

    def _item(self, t: _Track) -> TrackedItem:
        sku = t.sku
        p = self.engine.lookup_product(sku)
        cands = []
        for c in t.decision.candidates:
            cp = self.engine.lookup_product(c.sku)
            cands.append(ItemCandidate(c.sku, cp.name if cp else c.sku,
                                       cp.price if cp else None, float(c.score)))
        score = 1.0 if t.source == "barcode" else float(t.decision.score)
        return TrackedItem(
            track_id=t.id, box=t.box, sku=sku,
            name=(p.name if p else sku) if sku else None,
            price=p.price if p else None, score=score, unknown=sku is None,
            candidates=tuple(cands), source=t.source, qty=t.qty,
            words=t.decision.words or t.words)

    def _make_state(self, frame_index: int, settled: bool, timings: dict, n_embedded: int
                    ) -> SessionState:
        live = [t for t in self._tracks.values() if not t.removed and not t.paid]
        # reading order: bands of 120 px from the top, left to right within a band
        items = sorted((self._item(t) for t in live),
                       key=lambda i: ((i.box[1] + i.box[3]) // 2 // 120, i.box[0], i.track_id))
        receipt = self.engine.receipt_for([(i.sku, i.qty) for i in items if not i.unknown])
        needs = any(i.unknown or i.price is None for i in items)
        state = SessionState(frame_index=frame_index, settled=settled, items=tuple(items),
                             receipt=receipt, needs_cashier=needs, timings_ms=dict(timings),
                             n_embedded=n_embedded)
        self._state = state
        return state

    def refresh(self) -> SessionState:
        """The current items again with the catalogue's current names and prices (after staff
        changed a price, renamed or priced a product), without recognising anything."""
        with self._lock:
            return self._restate()

    def _restate(self) -> SessionState:
        s = self._state
        return self._make_state(s.frame_index, s.settled, s.timings_ms, s.n_embedded)

    # ---------------------------------------------------------------- frames
    def process(self, frame: "Frame") -> SessionState | None:
        """Feed one camera frame.  Returns a new state when there is something new to show
        (the tray started moving, settled, or was recognised), else None."""
        with self._process_lock:
            small = _small_grey(frame.image)
            with self._lock:
                self._frame_index = frame.index
                moved = _changed_fraction(small, self._prev_small) > self.motion_threshold
                self._prev_small = small
                if moved or self._still_since is None:
                    self._still_since = frame.t
                    if moved and self._settled:
                        self._settled = False
                        return self._make_state(frame.index, False, self._state.timings_ms, 0)
                    return None
                if frame.t - self._still_since < self.settle_s - 1e-6:  # (float time stamps)
                    return None
                if _changed_fraction(small, self._ref_small) <= self.motion_threshold:
                    if not self._settled:  # settled back on the scene already recognised
                        self._settled = True
                        return self._make_state(frame.index, True, self._state.timings_ms, 0)
                    # still the recognised scene: read one pack still to be read, if any
                    pending = next((t for t in self._tracks.values()
                                    if t.text_crop is not None and t.override is None
                                    and t.barcode_sku is None and not t.removed
                                    and not t.paid), None)
                    if pending is None:
                        return None
                    gen = self._gen
                else:
                    pending = None
                    gen = self._gen
                    tracks = list(self._tracks.values())
            if pending is not None:
                return self._read_pack(pending, gen, frame.index)
            result = self._recognise(frame.image, tracks)
            self.recognitions += 1
            with self._lock:
                if gen != self._gen:  # reset() meanwhile: this result belongs to no basket
                    return None
                self._ref_small = small
                self._settled = True
                return self._apply(frame.index, result)

    def _recognise(self, image: np.ndarray, tracks: list[_Track]) -> dict[str, Any]:
        """Detect, match to ``tracks``, embed what is new or changed (one batch), decide,
        fuse uncertain re-seen items, try barcodes on unknown ones.  Touches no shared state
        except the per-track recognition fields, which only this thread writes."""
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        dets = self.engine.detector.detect(image)
        t1 = time.perf_counter()
        masks = dets.masks if dets.masks is not None else [None] * len(dets)
        boxes = [tuple(int(v) for v in b) for b in dets.boxes]
        sigs = [_signature(image, b, m) for b, m in zip(boxes, masks)]

        # greedy matching: best overlap first, only same-looking pairs
        pairs = []
        for j, (box, sig) in enumerate(zip(boxes, sigs)):
            for t in tracks:
                iou = _iou(box, t.box)
                if iou >= self.iou_keep:
                    diff = _sig_diff(sig, t.sig)
                    if diff <= self.content_threshold:
                        pairs.append((iou, -diff, j, t.id))
        pairs.sort(reverse=True)
        by_id = {t.id: t for t in tracks}
        match: dict[int, _Track] = {}
        used: set[int] = set()
        for _, _, j, tid in pairs:
            if j not in match and tid not in used:
                match[j] = by_id[tid]
                used.add(tid)
        t2 = time.perf_counter()

        crops: dict[int, np.ndarray] = {}

        def crop(j: int) -> np.ndarray:
            if j not in crops:
                crops[j] = item_crop(image, boxes[j], masks[j])
            return crops[j]

        todo: list[int] = []  # detections to embed: new ones and uncertain re-seen ones
        for j in range(len(boxes)):
            t = match.get(j)
            if t is None:
                todo.append(j)
            elif (t.override is None and t.barcode_sku is None and not t.removed and not t.paid
                  and (t.decision.unknown or _margin(t.decision) < self.fuse_margin)
                  and min((_sig_diff(sigs[j], s) for s in t.view_sigs), default=1e9) > 3.0):
                todo.append(j)  # a new view of an uncertain item: worth embedding
        # packs are read after the receipt is shown (process() reads one per frame while the
        # tray stays still): the shopper sees the pictures' answer at once
        vectors, decisions = self.engine.embed_and_decide([crop(j) for j in todo], timings,
                                                          read_text=False)
        t3 = time.perf_counter()

        new: dict[int, _Track] = {}
        fuse: list[_Track] = []
        for j, v, d in zip(todo, vectors, decisions):
            t = match.get(j)
            if t is None:
                t = _Track(next(self._ids), boxes[j], sigs[j], masks[j])
                new[j] = t
                t.decision = d
            else:
                fuse.append(t)
                if _certainty(d) > _certainty(t.decision):
                    t.decision, t.fused = d, False
            if not t.words and self.engine.wants_text(t.decision):
                t.text_crop = crop(j)
            t.vectors = (t.vectors + [np.asarray(v, np.float32)])[-_MAX_VIEWS:]
            t.view_sigs = (t.view_sigs + [sigs[j]])[-_MAX_VIEWS:]
        if fuse:
            fused = np.stack([np.mean(t.vectors, axis=0) for t in fuse])
            decided = self.engine.refine_with_words(self.engine.decide_vectors(fused),
                                                    [t.words for t in fuse])
            for t, d in zip(fuse, decided):
                if _certainty(d) > _certainty(t.decision):
                    t.decision, t.fused = d, True
        t4 = time.perf_counter()

        # barcode fallback for items recognition cannot name
        if self.barcode:
            from .barcode import read_barcodes

            for j in range(len(boxes)):
                t = match.get(j) or new[j]
                if (t.decision.sku is not None or t.override or t.barcode_sku or t.removed
                        or t.paid or _sig_diff(sigs[j], t.barcode_sig) <= 3.0):
                    continue
                t.barcode_sig = sigs[j]
                sku = self._barcode_sku(image, boxes[j], crop(j), read_barcodes)
                if sku:
                    t.barcode_sku = sku
        t5 = time.perf_counter()
        timings.setdefault("embed", 0.0)
        timings.setdefault("search", 0.0)
        timings.setdefault("decide", 0.0)
        timings.update(detect=(t1 - t0) * 1e3, match=(t2 - t1) * 1e3,
                       barcode=(t5 - t4) * 1e3, total=(t5 - t0) * 1e3)
        if fuse:
            timings["decide"] += (t4 - t3) * 1e3
        return {"boxes": boxes, "sigs": sigs, "masks": masks, "match": match, "new": new,
                "timings": timings, "n_embedded": len(todo)}

    def _read_pack(self, t: _Track, gen: int, frame_index: int) -> SessionState | None:
        """Read the pack of a recognised item whose close candidates have enrolled words and
        let the words re-rank them; a new state when that changed the item or its words."""
        crop, t.text_crop = t.text_crop, None
        t0 = time.perf_counter()
        d = self.engine.read_and_refine(crop, t.decision)
        ms = (time.perf_counter() - t0) * 1e3
        with self._lock:
            if gen != self._gen or self._tracks.get(t.id) is not t:
                return None
            changed = d.sku != t.decision.sku or (d.words and d.words != t.words)
            t.decision = d
            if d.words:
                t.words = d.words
            if not changed:
                return None
            return self._make_state(frame_index, True, {**self._state.timings_ms, "text": ms},
                                    0)

    def _barcode_sku(self, image, box, crop, read_barcodes) -> str | None:
        x1, y1, x2, y2 = box
        plain = image[y1:y2, x1:x2]
        if plain.size and max(plain.shape[:2]) < 400:
            f = 400.0 / max(plain.shape[:2])
            plain = cv2.resize(plain, None, fx=f, fy=f, interpolation=cv2.INTER_CUBIC)
        for img in (crop, plain):
            for code in read_barcodes(img):
                p = self.engine.catalog.find_by_barcode(code)
                if p is not None and p.active:
                    self.engine.lookup_product(p.sku)  # make it known to the receipt
                    return p.sku
        return None

    def _apply(self, frame_index: int, r: dict[str, Any]) -> SessionState:
        tracks: dict[int, _Track] = {}
        for j, box in enumerate(r["boxes"]):
            t = r["match"].get(j)
            if t is not None:
                t.box, t.sig, t.mask = box, r["sigs"][j], r["masks"][j]
            else:
                t = r["new"][j]
            tracks[t.id] = t
        gone = set(self._tracks) - set(tracks)
        if gone:
            log.debug("items taken off the tray: %s", sorted(gone))
        self._tracks = tracks
        return self._make_state(frame_index, True, r["timings"], r["n_embedded"])

    # ---------------------------------------------------------------- intents
    def _track(self, track_id: int) -> _Track:
        t = self._tracks.get(track_id)
        if t is None or t.paid:
            raise KeyError(f"no item {track_id!r} on the tray")
        return t

    def override(self, track_id: int, sku: str, *, role: str = "cashier") -> SessionState:
        """The cashier says item ``track_id`` is product ``sku`` (for as long as it stays on
        the tray).  Logged as a correction and audited.  Unknown sku: ``ValueError``."""
        with self._lock:
            t = self._track(track_id)
            p = self.engine.lookup_product(sku)
            if p is None:
                raise ValueError(f"no product with sku {sku!r}")
            self._corrections.append(  # logged first: nothing changes unless it is logged
                self.engine.catalog.log_correction(list(t.box), t.sku, p.sku, role=role))
            t.override, t.removed = p.sku, False
            return self._restate()

    def remove(self, track_id: int, *, role: str = "cashier") -> SessionState:
        """Ignore item ``track_id`` while it stays on the tray (logged and audited)."""
        with self._lock:
            t = self._track(track_id)
            self._corrections.append(
                self.engine.catalog.log_action("remove", list(t.box), t.sku, None, role=role,
                                               prev_qty=t.qty))
            t.removed = True
            return self._restate()

    def set_qty(self, track_id: int, qty: int, *, role: str = "cashier") -> SessionState:
        """Set how many of item ``track_id`` there are (e.g. a multipack); 0 removes it."""
        if isinstance(qty, bool) or not isinstance(qty, int) or qty < 0:
            raise ValueError(f"quantity must be a whole number >= 0, got {qty!r}")
        if qty == 0:
            return self.remove(track_id, role=role)
        with self._lock:
            t = self._track(track_id)
            self._corrections.append(
                self.engine.catalog.log_action("qty", list(t.box), t.sku, t.sku, qty=qty,
                                               role=role, prev_qty=t.qty))
            t.qty = qty
            return self._restate()

    def search(self, text: str) -> list["Product"]:
        """Products matching ``text`` (name, sku or barcode), for the cashier's picker."""
        return self.engine.catalog.search_products(text, active_only=True)

    def finish(self) -> int:
        """Record the sale; returns the transaction id.

        Refused (``ValueError``) when the basket is empty, an item is unknown or a line has no
        price.  Afterwards the basket is empty: the items still on the tray belong to the sale
        just made and are not added again while they stay there.
        """
        with self._lock:
            state = self._restate()
            if not state.items:
                raise ValueError("the basket is empty: nothing to pay for")
            unknown = [i for i in state.items if i.unknown]
            if unknown:
                raise ValueError(f"{len(unknown)} item(s) not recognised: the cashier must "
                                 "choose the product or remove the item before payment")
            if state.receipt.unpriced:
                raise ValueError("no price for " + ", ".join(state.receipt.unpriced)
                                 + ": staff must set a price before this can be sold")
            catalog = self.engine.catalog
            with catalog.transaction():  # the sale and its corrections land together
                tx = catalog.record_transaction(state.receipt)
                if self._corrections:
                    catalog.link_corrections(self._corrections, tx)
            self._corrections = []
            for t in self._tracks.values():
                t.paid = True
            self._restate()
            return tx

    def reset(self) -> SessionState:
        """Forget the basket (and any recognition in progress); what is on the tray is
        recognised afresh once it is still."""
        with self._lock:
            self._gen += 1
            self._tracks = {}
            self._corrections = []
            self._ref_small = None
            self._still_since = None
            self._settled = False
            return self._make_state(self._frame_index, False, {}, 0)
