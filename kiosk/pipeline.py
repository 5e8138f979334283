"""The recognition path of one picture: detect -> track -> embed -> retrieve -> decide.

:class:`FramePipeline` is the only way a tray picture becomes items, for the shopper's checkout
(:class:`kiosk.checkout.session.CheckoutSession`, picture after picture) and for a single
picture (:meth:`kiosk.engine.Engine.recognize`: a fresh tracker, one picture; what ``kiosk
recognize``, ``kiosk eval-trays``, ``kiosk bench`` and the self-test run).  For each picture:

1. **detect** the items (the engine's detector: :class:`kiosk.detect.Detections`);
2. **track** them (:class:`kiosk.track.Tracker`): an item that did not move keeps its identity
   and decision and is not embedded again;
3. **embed** what is new, and new views of uncertain items (one batch);
4. **retrieve** the nearest gallery views and **decide** (:meth:`kiosk.engine.Engine.
   decide_vectors`); what is left over is matched to items nudged a little; an uncertain item
   seen again gets its views averaged and decided again (multi-frame fusion);
5. **barcode** fallback (and cashier badges) for items the pictures cannot name or are unsure
   of;
6. **pack text**: items whose close candidates have enrolled words have their pack read
   (:meth:`read_pack`): at once for a single picture, one per still frame at the checkout, so
   the shopper sees the pictures' answer first;
7. at the checkout, once packs are read, the **barcode** of every item the pictures named is
   checked, one item per still frame (:meth:`read_code`): a code of another product wins; a
   code of no product for sale, against the named product's own, sends it to the cashier.

The items come out as :class:`TrayItem` (:meth:`item`), the one item type of the kiosk, and
the receipt charges every item but the unknown and the unsure (:meth:`receipt`).  No Qt here.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Protocol, Sequence

import cv2
import numpy as np

from kiosk.adapt import search as adapted_search
from kiosk.basket import Receipt
from kiosk.decide import Decision
from kiosk.detect import item_crop
from kiosk.track import Observation, Track, Tracker, sig_diff

if TYPE_CHECKING:  # pragma: no cover
    from kiosk.catalog import Product


class Recogniser(Protocol):
    """What a frame pipeline needs of the recognition engine below it (provided by
    :class:`kiosk.engine.Engine`, which runs its single pictures through this pipeline): the
    detector, the embedding and the decision, pack text, products and prices."""

    catalog: Any
    detector: Any
    decider: Any

    def count_frame(self) -> None: ...

    def embed_and_decide(self, crops: Sequence[np.ndarray], timings: dict | None = None,
                         read_text: bool = True) -> tuple[np.ndarray, list[Decision]]: ...

    def decide_vectors(self, vectors: np.ndarray,
                       timings: dict | None = None) -> list[Decision]: ...

    def wants_text(self, d: Decision) -> bool: ...

    def read_and_refine(self, crop: np.ndarray, d: Decision) -> Decision: ...

    def refine_with_words(self, decisions: Sequence[Decision],
                          words: Sequence[tuple[str, ...]]) -> list[Decision]: ...

    def lookup_product(self, sku: str | None) -> "Product | None": ...

    def receipt_for(self, skus: Sequence[str]) -> Receipt: ...

log = logging.getLogger(__name__)

MAX_VIEWS = 8  # embeddings kept per track for multi-frame fusion
FUSE_MARGIN = 0.03  # a re-seen item whose top-2 candidates are closer than this is fused
_NEW_VIEW = 3.0  # a re-seen uncertain item is embedded again when its thumbnail moved this much


# ---------------------------------------------------------------------------------------------
# the item


@dataclass(frozen=True)
class ItemCandidate:
    sku: str
    name: str
    price: int | None  # fen
    score: float

    def to_dict(self) -> dict:
        return {"sku": self.sku, "name": self.name, "score": round(self.score, 4)}


@dataclass(frozen=True)
class TrayItem:
    """One item on the tray, as every stage after recognition sees it (the checkout's basket,
    the shopper's and the cashier's screens, ``kiosk recognize``, the evaluations)."""

    box: tuple[int, int, int, int]  # x1, y1, x2, y2 in frame pixels
    sku: str | None  # None = unknown (needs the cashier)
    name: str | None
    score: float
    unknown: bool
    candidates: tuple[ItemCandidate, ...] = ()
    words: tuple[str, ...] = ()  # pack text read on it (kiosk.text), when it was read
    by_text: bool = False  # the pack text changed the winner
    track_id: int = 0  # stable while the item stays on the tray
    price: int | None = None  # unit price in fen, None when unknown or unpriced
    source: str = "recognized"  # "recognized" | "barcode" | "cashier" | "shopper"
    qty: int = 1
    # recognised, but a product of another price is too close: not charged, the cashier decides
    unsure: bool = False
    # charged although a look-alike is close, because every close product has this price
    same_price: bool = False
    # the close products (sku) behind ``unsure`` / ``same_price``, best first
    rivals: tuple[str, ...] = ()
    # a barcode read on the pack that no product for sale has, while the product the
    # pictures named has another (``unsure`` then: the cashier says what it is)
    code: str | None = None

    @property
    def needs_cashier(self) -> bool:
        return self.unknown or self.unsure or self.price is None

    @property
    def charged(self) -> bool:
        """On the receipt: named and not unsure."""
        return not self.unknown and not self.unsure

    def to_dict(self) -> dict:
        return {
            "box": list(self.box),
            "sku": self.sku,
            "name": self.name,
            "score": round(self.score, 4),
            "unknown": self.unknown,
            "candidates": [c.to_dict() for c in self.candidates],
            "words": list(self.words),
            "by_text": self.by_text,
        }


@dataclass(frozen=True)
class TrayResult:
    """A single picture recognised (:meth:`kiosk.engine.Engine.recognize`)."""

    items: tuple[TrayItem, ...]
    receipt: Receipt
    timings_ms: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"items": [i.to_dict() for i in self.items], "receipt": self.receipt.to_dict()}


def reading_order(items: Sequence[TrayItem]) -> list[TrayItem]:
    """Bands of 120 px from the top, left to right within a band."""
    return sorted(items, key=lambda i: ((i.box[1] + i.box[3]) // 2 // 120, i.box[0],
                                        i.track_id))


def price_rivals(d: Decision, p: "Product | None", engine: "Recogniser", accept_same_price: bool
                 ) -> tuple[bool, bool, tuple[str, ...], bool]:
    """The "ask instead of guessing" rule for a recognised item decided ``d`` (its product
    ``p``): (unsure, same_price, rivals, rivals_same_price).  An unsure decision (another
    product within the decider's ``unsure_margin``, not settled by the pack's words) is sent to
    the cashier, unless every close product has the same price and ``accept_same_price``: then
    it is charged and marked ``same_price``.  Every item (:meth:`FramePipeline.item`) and
    ``kiosk eval-stream`` are decided through this."""
    if d.unknown or not d.unsure or d.text_settled or p is None:
        return False, False, (), False
    margin = engine.decider.unsure_margin
    rivals = tuple(c.sku for c in d.candidates
                   if c.sku != d.sku and c.score >= d.score - margin)
    if not rivals:
        return False, False, (), False
    prices = {p.price}
    for sku in rivals:
        rp = engine.lookup_product(sku)
        prices.add(rp.price if rp is not None and rp.active else None)
    same = len(prices) == 1 and p.price is not None
    if accept_same_price and same:
        return False, True, rivals, True
    return True, False, rivals, same


def _certainty(d: Decision) -> tuple:
    # a decision the pack's words settled beats a picture-only one, whose best similarity
    # may be higher exactly because the two products look alike
    return (not d.unknown, d.by_text or d.text_settled, d.score)


def _margin(d: Decision) -> float:
    c = d.candidates
    if len(c) < 2:
        return float("inf") if c else 0.0
    return c[0].score - c[1].score


# ---------------------------------------------------------------------------------------------
# retrieve and decide: one embedding -> a decision (the engine and ``kiosk eval`` both)


def retrieve_and_decide(index, sku_of, decider, vectors: np.ndarray, n_products: int,
                        timings: dict | None = None, adaptation=None) -> list[Decision]:
    """The nearest gallery views of each (L2-normalised) embedding in ``index`` (``sku_of``:
    gallery row -> product; ``n_products`` products in it) and the ``decider``'s decision.
    Items whose nearest ``search_k`` views name fewer than ``max_candidates`` products (many
    views of a few look-alikes) are searched again, wider, so that the cashier sees the best
    distinct products and the margin sees the best other one.  ``timings``: search / decide
    (ms) are put there.  ``adaptation``: the store's :class:`kiosk.adapt.Adaptation`, which
    re-scores the nearest views (None: the model's similarity)."""
    v = np.ascontiguousarray(vectors, np.float32)
    t0 = time.perf_counter()
    nb = adapted_search(index, v, decider.search_k, adaptation)
    t1 = time.perf_counter()
    decisions = decider.decide(nb, sku_of)
    want = min(decider.max_candidates, n_products)
    redo = [i for i, d in enumerate(decisions) if len(d.candidates) < want]
    k = min(index.n_live, decider.search_k * 8)
    if redo and k > decider.search_k:
        wide_nb = adapted_search(index, np.ascontiguousarray(v[redo]), k, adaptation)
        for row, i in enumerate(redo):
            wide = decider.decide_one(*wide_nb.row(row), sku_of, wide_nb.model_row(row))
            if wide.sku == decisions[i].sku:  # (the vote is the same: its first k agree)
                decisions[i] = wide
    t2 = time.perf_counter()
    if timings is not None:
        timings.update(search=(t1 - t0) * 1e3, decide=(t2 - t1) * 1e3)
    return decisions


def refine_with_words(decider, profiles, d: Decision, words: tuple[str, ...]) -> Decision:
    """Let the words read on an item re-rank ``d``'s close candidates (``profiles``: the
    products' enrolled words, :class:`kiosk.text.TextProfiles`)."""
    return decider.refine_with_text(
        d, {c.sku: profiles.score(words, c.sku) for c in decider.text_contenders(d)}, words)


# ---------------------------------------------------------------------------------------------
# the path


@dataclass
class FrameResult:
    """What :meth:`FramePipeline.run` made of one picture: the tracker's :class:`~kiosk.track.
    Observation` (each detection's track), the stage timings (ms: detect, match, embed, search,
    decide, barcode, total), how many crops were embedded and the cashier badges seen
    ((track, cashier) pairs)."""

    obs: Observation
    timings: dict[str, float]
    n_embedded: int = 0
    badges: list[tuple[Track, Any]] = field(default_factory=list)

    @property
    def tracks(self) -> list[Track]:
        return self.obs.tracks


class FramePipeline:
    """The per-picture recognition path (see the module docstring) on an engine.

    ``tracker``: the items of the pictures before (default: a fresh one, no items).
    ``fuse_margin``: a re-seen item whose top-2 candidates are closer than this (or unknown)
    gets its views averaged and decided again.  ``barcode``: read EAN/UPC codes off items the
    pictures cannot name or are unsure of (and QR cashier badges: ``badge_lookup(text)`` ->
    the cashier or None).  ``accept_same_price``: see :func:`price_rivals`."""

    def __init__(self, engine: "Recogniser", tracker: Tracker | None = None, *,
                 fuse_margin: float = FUSE_MARGIN, barcode: bool = True,
                 badge_lookup: Callable[[str], Any] | None = None,
                 accept_same_price: bool = True) -> None:
        self.engine = engine
        self.tracker = tracker if tracker is not None else Tracker()
        self.fuse_margin = float(fuse_margin)
        self.barcode = bool(barcode)
        self.badge_lookup = badge_lookup
        self.accept_same_price = bool(accept_same_price)

    # ----------------------------------------------------------------- one picture
    def recognize(self, image: np.ndarray, *, read_text: bool = True) -> "TrayResult":
        """The single-picture case: :meth:`run` on the tracker's tracks, commit, read every
        pack still to read (``read_text``), the items in reading order and their receipt."""
        t0 = time.perf_counter()
        r = self.run(image)
        self.tracker.commit(r.obs)
        timings = dict(r.timings)
        if read_text:
            t1 = time.perf_counter()
            for t in self.tracker.tracks.values():
                if self.wants_pack(t):
                    self.take_pack(t, self.read_pack(t))
            if any(t.words for t in self.tracker.tracks.values()):
                timings["text"] = (time.perf_counter() - t1) * 1e3
        t2 = time.perf_counter()
        items = self.items(self.tracker.tracks.values())
        receipt = self.receipt(items)
        t3 = time.perf_counter()
        timings.update(receipt=(t3 - t2) * 1e3, total=(t3 - t0) * 1e3)
        return TrayResult(tuple(items), receipt, timings)

    def run(self, image: np.ndarray, tracks: Sequence[Track] | None = None) -> FrameResult:
        """Detect, match to ``tracks`` (default: the tracker's), embed what is new or changed
        (one batch), match what moved a little, decide, fuse uncertain re-seen items, try
        barcodes and badges on unknown and unsure ones.  Packs are not read here
        (:meth:`read_pack`).
        Touches no shared state except the recognition fields of ``tracks``, which only the
        recognising thread writes; :meth:`Tracker.commit` makes the result current."""
        engine = self.engine
        tracker = self.tracker
        tracks = list(tracker.tracks.values()) if tracks is None else list(tracks)
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        dets = engine.detector.detect(image)
        t1 = time.perf_counter()
        obs = tracker.observe(image, dets, tracks)
        t2 = time.perf_counter()

        crops: dict[int, np.ndarray] = {}

        def crop(j: int) -> np.ndarray:
            if j not in crops:
                crops[j] = item_crop(image, obs.boxes[j], obs.masks[j])
            return crops[j]

        todo: list[int] = []  # detections to embed: new ones and uncertain re-seen ones
        for j in range(len(obs)):
            t = obs.match.get(j)
            if t is None:
                todo.append(j)
            elif (t.open and (t.decision.unknown or _margin(t.decision) < self.fuse_margin)
                  and min((sig_diff(obs.sigs[j], s) for s in t.view_sigs), default=1e9)
                  > _NEW_VIEW):
                todo.append(j)  # a new view of an uncertain item: worth embedding
        vectors, decisions = engine.embed_and_decide([crop(j) for j in todo], timings,
                                                     read_text=False)
        t3 = time.perf_counter()

        # what is left on both sides may be an item nudged or turned a little
        tracker.follow_moved(obs, tracks, dict(zip(todo, vectors)))

        fuse: list[Track] = []
        for j, v, d in zip(todo, vectors, decisions):
            t = obs.match.get(j)
            if t is None:
                t = tracker.start(obs, j)
                t.decision = d
            else:
                fuse.append(t)
                if _certainty(d) > _certainty(t.decision):
                    t.decision, t.fused = d, False
            if not t.words and engine.wants_text(t.decision):
                t.text_crop = crop(j)
            t.code_crop = crop(j) if self.barcode else None
            t.crop = crop(j)
            t.vectors = (t.vectors + [np.asarray(v, np.float32)])[-MAX_VIEWS:]
            t.view_sigs = (t.view_sigs + [obs.sigs[j]])[-MAX_VIEWS:]
        if fuse:
            fused = np.stack([np.mean(t.vectors, axis=0) for t in fuse])
            decided = engine.refine_with_words(engine.decide_vectors(fused),
                                               [t.words for t in fuse])
            for t, d in zip(fuse, decided):
                if _certainty(d) > _certainty(t.decision):
                    t.decision, t.fused = d, True
        t4 = time.perf_counter()

        badges = self._codes_fallback(image, obs, crop) if self.barcode else []
        t5 = time.perf_counter()
        timings.setdefault("embed", 0.0)
        timings.setdefault("search", 0.0)
        timings.setdefault("decide", 0.0)
        timings.update(detect=(t1 - t0) * 1e3, match=(t2 - t1) * 1e3,
                       barcode=(t5 - t4) * 1e3, total=(t5 - t0) * 1e3)
        if fuse:
            timings["decide"] += (t4 - t3) * 1e3
        engine.count_frame()
        return FrameResult(obs, timings, len(todo), badges)

    # ------------------------------------------------------------- barcodes, badges
    def _codes_fallback(self, image, obs: Observation, crop) -> list[tuple[Track, Any]]:
        """Barcodes (and cashier badges) of the items recognition cannot name or is unsure of
        (:meth:`_pictures_cannot_tell`): a barcode that names an active product settles the
        item as that product, whatever the pictures said (it is printed on the pack; at
        payment it is learned as a view, source ``barcode``)."""
        from kiosk.barcode import read_barcodes

        badges: list[tuple[Track, Any]] = []
        for j in range(len(obs)):
            t = obs.track(j)
            if (t.override or t.barcode_sku or t.removed or t.paid or t.badge
                    or not self._pictures_cannot_tell(t)
                    or sig_diff(obs.sigs[j], t.barcode_sig) <= _NEW_VIEW):
                continue
            t.barcode_sig = obs.sigs[j]
            codes = self._codes(image, obs.boxes[j], crop(j), read_barcodes)
            cashier = self._badge(codes)
            if cashier is not None:
                t.badge = str(cashier.id)
                badges.append((t, cashier))
                continue
            sku = self._sku_for_codes(codes)
            if sku:
                t.barcode_sku = sku
        return badges

    @staticmethod
    def _pictures_cannot_tell(t: Track) -> bool:
        """The pictures cannot tell what item ``t`` is: unknown, or unsure between look-alikes
        (sent to the cashier, or charged because they share a price; either way the barcode
        names the right one)."""
        return t.decision.sku is None or t.decision.unsure

    @staticmethod
    def _codes(image, box, crop, read_barcodes, qr: bool = True) -> list[str]:
        """Codes printed on an item: QR codes (cashier badges; ``qr``) and EAN/UPC
        barcodes."""
        x1, y1, x2, y2 = box
        plain = image[y1:y2, x1:x2]
        if plain.size and max(plain.shape[:2]) < 400:
            f = 400.0 / max(plain.shape[:2])
            plain = cv2.resize(plain, None, fx=f, fy=f, interpolation=cv2.INTER_CUBIC)
        codes: list[str] = []
        if plain.size and qr:
            try:
                text, _pts, _ = cv2.QRCodeDetector().detectAndDecode(plain)
            except cv2.error:  # pragma: no cover - odd sizes
                text = ""
            if text:
                codes.append(text)
        for img in (crop, plain):
            for code in read_barcodes(img):
                if code not in codes:
                    codes.append(code)
        return codes

    def _badge(self, codes: list[str]):
        if self.badge_lookup is None:
            return None
        for code in codes:
            try:
                cashier = self.badge_lookup(code)
            except Exception:  # noqa: BLE001 - a broken lookup is no badge
                log.exception("badge lookup")
                cashier = None
            if cashier is not None:
                return cashier
        return None

    def _sku_for_codes(self, codes: list[str]) -> str | None:
        for code in codes:
            try:
                p = self.engine.catalog.find_by_barcode(code)
            except ValueError:  # not a product barcode (e.g. an unknown QR code)
                continue
            if p is not None and p.active:
                self.engine.lookup_product(p.sku)  # make it known to the receipt
                return p.sku
        return None

    # ------------------------------------------- the barcode of a named item (deferred)
    @staticmethod
    def wants_code(t: Track) -> bool:
        """Item ``t`` was named by the pictures (sure of it) and the barcode of its latest
        view is still to be checked."""
        d = t.decision
        return (t.code_crop is not None and t.open and d.sku is not None
                and not d.unsure)

    def pending_code(self, tracks) -> Track | None:
        """The first item of ``tracks`` whose barcode is still to be checked, if any."""
        return next((t for t in tracks if self.wants_code(t)), None)

    def read_code(self, t: Track, image: np.ndarray) -> tuple[str | None, str | None]:
        """Read the barcodes on item ``t`` (its view still to be checked and its box in
        ``image``, the still picture now): (the active product they name, a code of no
        product for sale that contradicts the named product's own barcode), each None when
        there is none (:meth:`take_code` applies them).  Only a full EAN-13 / UPC-A counts
        here: the pictures were sure, and a short EAN-8 is too easily read out of other print.
        About 45 ms an item on a 2-core host (the cut-out and the box's own pixels are both
        read), so the checkout reads one item per still frame, after the receipt is shown."""
        from kiosk.barcode import read_barcodes

        crop, t.code_crop = t.code_crop, None
        if crop is None:
            return None, None
        codes = [c for c in self._codes(image, t.box, crop, read_barcodes, qr=False)
                 if c.isdigit() and len(c) >= 12]
        sku = self._sku_for_codes(codes)
        named = self.engine.lookup_product(t.decision.sku)
        own = named.barcode if named is not None else None
        foreign = None
        if sku is None and own and codes and own not in codes:
            foreign = codes[0]  # (no code named a product for sale: _sku_for_codes)
        return sku, foreign

    @staticmethod
    def take_code(t: Track, read: tuple[str | None, str | None]) -> bool:
        """Apply what :meth:`read_code` read.  A barcode that names another product than the
        pictures did is printed on the pack, so it wins (the item becomes that product, source
        ``barcode``, learned as a view of it at payment).  A code of no product for sale where
        the named product has a barcode of its own says the pack is something the catalogue
        does not sell by that picture: the item is not charged, the cashier decides
        (``foreign_code``).  True when the item changed."""
        sku, foreign = read
        if not t.open:
            return False
        if sku and sku != t.decision.sku:
            t.barcode_sku = sku
            return True
        if foreign and not sku and t.foreign_code != foreign:
            t.foreign_code = foreign
            return True
        return False

    # ----------------------------------------------------------------- pack text
    @staticmethod
    def wants_pack(t: Track) -> bool:
        """The item has a pack still to read (and reading could still change it)."""
        return t.text_crop is not None and t.open

    def pending_pack(self, tracks) -> Track | None:
        """The first item of ``tracks`` with a pack still to read, if any."""
        return next((t for t in tracks if self.wants_pack(t)), None)

    def read_pack(self, t: Track) -> Decision:
        """Read the pack still to read of item ``t`` and let its words re-rank its close
        candidates; the new decision (:meth:`take_pack` applies it)."""
        crop, t.text_crop = t.text_crop, None
        return self.engine.read_and_refine(crop, t.decision)

    @staticmethod
    def take_pack(t: Track, d: Decision) -> bool:
        """Apply a decision :meth:`read_pack` made; True when it changed the item or its
        words."""
        changed = (d.sku != t.decision.sku or bool(d.words and d.words != t.words)
                   or d.text_settled != t.decision.text_settled)
        t.decision = d
        if d.words:
            t.words = d.words
        return changed

    # ----------------------------------------------------------------- the items
    def rivals(self, t: Track, p: "Product | None") -> tuple[bool, bool, tuple[str, ...], bool]:
        """(unsure, same_price, rivals, rivals_same_price) of a recognised item."""
        if t.source != "recognized":
            return False, False, (), False
        return price_rivals(t.decision, p, self.engine, self.accept_same_price)

    def item(self, t: Track) -> TrayItem:
        """The item ``t`` is now, with the catalogue's current names and prices."""
        engine = self.engine
        sku = t.sku
        p = engine.lookup_product(sku)
        cands = []
        for c in t.decision.candidates:
            cp = engine.lookup_product(c.sku)
            cands.append(ItemCandidate(c.sku, cp.name if cp else c.sku,
                                       cp.price if cp else None, float(c.score)))
        score = 1.0 if t.source == "barcode" else float(t.decision.score)
        unsure, same_price, rivals, _same = self.rivals(t, p)
        code = t.foreign_code if t.source == "recognized" else None
        if code:  # its barcode says it is not p
            unsure, same_price = True, False
        return TrayItem(
            box=tuple(int(v) for v in t.box), sku=sku,  # type: ignore[arg-type]
            name=(p.name if p else sku) if sku else None, score=score, unknown=sku is None,
            candidates=tuple(cands), words=t.decision.words or t.words,
            by_text=t.source == "recognized" and t.decision.by_text, track_id=t.id,
            price=p.price if p else None, source=t.source, qty=t.qty, unsure=unsure,
            same_price=same_price, rivals=rivals, code=code)

    def items(self, tracks) -> list[TrayItem]:
        """The live items of ``tracks``, in reading order."""
        return reading_order([self.item(t) for t in tracks if t.live])

    def receipt(self, items: Sequence[TrayItem]) -> Receipt:
        """The receipt of ``items``: every one charged but the unknown and the unsure."""
        return self.engine.receipt_for([(i.sku, i.qty) for i in items if i.charged])
