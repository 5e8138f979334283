"""A checkout in progress: from camera frames to a live, correctable basket.

:class:`CheckoutSession` is what the recognition worker runs (no Qt here).  It recognises when the
tray has settled, not on every frame, through the kiosk's one recognition path
(:class:`kiosk.pipeline.FramePipeline`: each item's identity kept across frames by
:mod:`kiosk.track`, so an item that did not move is not embedded again and one nudged a little
keeps its identity; fusion of uncertain items over frames; barcodes of unknown items; packs read
while the tray stays still); it applies the cashier's corrections and turns the items into a
receipt.  The GUI only displays :class:`SessionState` and calls the intent methods.

**The receipt is a function of the current picture.**  The checkout has an explicit
:attr:`SessionState.phase`:

=============  ===================================================================  =========
phase          when                                                                 payable
=============  ===================================================================  =========
``no_camera``  no camera, or it is starting, lost or stopped                        no
``no_picture`` frames come but none is usable (garbage, black, wrong size)          no
``stale``      the picture has not changed for ``frozen_after_s`` (a frozen camera)  no
``live``       fresh pictures, not recognised yet since the camera (re)started       no
``settling``   the tray changed since it was last recognised; waiting for it         no
``settled``    the current still picture is recognised                              see below
=============  ===================================================================  =========

A sale can be stored only in ``settled``, from a picture confirmed at most ``max_sale_age_s``
ago, with no item unknown, unsure or unpriced.  Whenever the picture is not live the items of the
old picture are kept (so a cashier's corrections survive a camera hiccup) but marked stale, left
off the tray view, and the picture is recognised afresh before anything can be paid.  A camera
switch forgets the basket.

**Authority.**  The shopper places and removes goods, calls the cashier and pays.  Relabelling an
item, changing a quantity, removing a line or accepting an unknown item needs an attendant
session (:meth:`CheckoutSession.open_attendant`, opened by a cashier code or a cashier badge
shown to the camera), which ends ``attendant_timeout_s`` after the cashier's last action.  Every
override is audited with the cashier's id.  Optionally (``shopper_same_price_choice``) the shopper
may choose between close candidates that have the same price: the bill is right either way.

**Asking instead of guessing.**  An item whose two best products are closer than the decider's
``unsure_margin`` is *unsure*: it is not charged but sent to the cashier, unless its pack's words
settle it, or (``accept_same_price``) every close product has the same price (charged, and marked
``same_price`` to learn from).  Unknown, unsure and unpriced items call the cashier by themselves
(:mod:`kiosk.checkout.calls`).
"""
from __future__ import annotations

import itertools
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import cv2
import numpy as np

from kiosk.basket import Receipt
from kiosk.pipeline import FrameResult, FramePipeline, TrayItem, price_rivals
from kiosk.track import Track, Tracker

if TYPE_CHECKING:  # pragma: no cover
    from kiosk.checkout.calls import Call, CallBoard
    from kiosk.camera import Frame
    from kiosk.catalog import Product
    from kiosk.engine import Engine

# the checkout's phases (see the module docstring)
NO_CAMERA = "no_camera"
NO_PICTURE = "no_picture"
STALE = "stale"
LIVE = "live"
SETTLING = "settling"
SETTLED = "settled"
PHASES = (NO_CAMERA, NO_PICTURE, STALE, LIVE, SETTLING, SETTLED)
_NOT_LIVE = (NO_CAMERA, NO_PICTURE, STALE)


class CashierRequired(PermissionError):
    """The action needs a cashier (an open attendant session)."""

    def __init__(self, what: str = "change an item") -> None:
        super().__init__(f"only a cashier can {what}: please call the cashier")


class ItemGone(KeyError):
    """The item is no longer on the tray."""

    def __str__(self) -> str:
        return "this item is no longer on the tray"


class CheckoutBlocked(ValueError):
    """The sale cannot be stored now; ``reason`` says why (a code), ``str()`` in words."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Attendant:
    """A cashier acting on this kiosk, until ``until`` (the session's clock)."""

    cashier_id: str
    name: str
    how: str  # "code" | "badge"
    until: float

    def remaining(self, now: float) -> float:
        return max(0.0, self.until - now)



@dataclass(frozen=True)
class SessionState:
    """Everything the shopper view shows, as of one processed frame."""

    frame_index: int
    settled: bool  # False while things move on the tray (the view keeps the last items)
    items: tuple[TrayItem, ...]
    receipt: Receipt
    needs_cashier: bool  # some item is unknown, unsure or unpriced
    timings_ms: dict = field(default_factory=dict)
    n_embedded: int = 0  # crops embedded by the recognition that made this state (0: none)
    phase: str = SETTLING  # see the module docstring
    payable: bool = False  # a sale can be stored from this state
    blocked: str = ""  # why not payable: "empty", "not_settled", "not_live", "needs_cashier"
    attendant: Attendant | None = None  # the cashier acting on this kiosk now
    calls: tuple[Call, ...] = ()  # the calls for the cashier still open
    seq: int = 0  # made after every state with a lower seq (newest wins in the window)

    @property
    def stale(self) -> bool:
        """The items belong to an older picture than the one the camera shows (or none)."""
        return self.phase in _NOT_LIVE


# ---------------------------------------------------------------------------------------------
# the session

log = logging.getLogger(__name__)

_MOTION_SIZE = (160, 90)  # the motion check looks at the frame this small (grey)
_PIXEL_DELTA = 10.0  # a downscaled grey pixel "changed" when it moves by more than this


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


class CheckoutSession:
    """A live checkout on top of an :class:`~kiosk.engine.Engine`.

    Each settled picture goes through the kiosk's one recognition path
    (:class:`kiosk.pipeline.FramePipeline` on this session's :class:`kiosk.track.Tracker`), the
    same as a single picture's (:meth:`kiosk.engine.Engine.recognize`); the session keeps the
    phases, the authority, what is payable, the corrections, the calls and the basket.

    ``settle_ms``: how long the tray must be still (by ``Frame.t``) before recognising.
    ``motion_threshold``: fraction of the (downscaled, grey) frame that must change between
    two frames to count as motion.  ``iou_keep``, ``content_threshold``: tracking in place
    (:func:`kiosk.track.match_in_place`); ``move_cosine``: tracking of nudged items
    (:func:`kiosk.track.match_moved`).  ``barcode``: read EAN/UPC codes off items recognition
    calls unknown (and cashier badges).  ``fuse_margin``: a re-seen item whose top-2 candidates
    are closer than this (or unknown) gets its views averaged and decided again.

    ``frozen_after_s``: fresh pictures must come at least this often, else the phase is
    ``stale``.  ``max_sale_age_s``: a sale needs a settled picture confirmed this recently.
    ``attendant_timeout_s``: an attendant session ends this long after the cashier's last
    action.  ``accept_same_price`` / ``shopper_same_price_choice``: see the module docstring.
    ``calls``: a :class:`kiosk.checkout.calls.CallBoard` (None: no calls are stored); ``auto_call``: call
    the cashier for unknown, unsure and unpriced items.  ``badge_lookup(text)``: the cashier
    (an object with ``id`` and ``name``) whose badge reads ``text``, or None.  ``clock``: the
    monotonic clock (injectable for tests).

    Thread-safe: :meth:`process` may run in a worker thread while the GUI calls the intents;
    recognition itself runs outside the state lock, so intents never wait for the models.
    """

    def __init__(self, engine: "Engine", *, settle_ms: float = 300, motion_threshold: float = 0.003,
                 iou_keep: float = 0.6, barcode: bool = True, content_threshold: float = 12.0,
                 fuse_margin: float = 0.03, move_cosine: float = 0.82,
                 frozen_after_s: float = 3.0, max_sale_age_s: float = 10.0,
                 attendant_timeout_s: float = 60.0, accept_same_price: bool = True,
                 shopper_same_price_choice: bool = False, calls: "CallBoard | None" = None,
                 auto_call: bool = True,
                 badge_lookup: Callable[[str], Any] | None = None,
                 on_answer: Callable[..., None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if settle_ms < 0:
            raise ValueError("settle_ms must not be negative")
        if not 0 < iou_keep <= 1:
            raise ValueError("iou_keep must be in (0, 1]")
        if frozen_after_s <= 0 or max_sale_age_s <= 0 or attendant_timeout_s <= 0:
            raise ValueError("frozen_after_s, max_sale_age_s and attendant_timeout_s must be "
                             "positive")
        self.engine = engine
        self.settle_s = float(settle_ms) / 1000.0
        self.motion_threshold = float(motion_threshold)
        self.iou_keep = float(iou_keep)
        self.barcode = bool(barcode)
        self.content_threshold = float(content_threshold)
        self.fuse_margin = float(fuse_margin)
        self.move_cosine = float(move_cosine)
        self.frozen_after_s = float(frozen_after_s)
        self.max_sale_age_s = float(max_sale_age_s)
        self.attendant_timeout_s = float(attendant_timeout_s)
        self.accept_same_price = bool(accept_same_price)
        self.shopper_same_price_choice = bool(shopper_same_price_choice)
        self.calls = calls
        self.auto_call = bool(auto_call)
        self.badge_lookup = badge_lookup
        self.on_answer = on_answer
        self.clock = clock
        self.tracker = Tracker(iou_keep=self.iou_keep, content_threshold=self.content_threshold,
                               move_cosine=self.move_cosine)
        self.pipeline = FramePipeline(engine, self.tracker, fuse_margin=self.fuse_margin,
                                      barcode=self.barcode, badge_lookup=badge_lookup,
                                      accept_same_price=self.accept_same_price)
        self._lock = threading.RLock()  # guards the tracks, corrections and state
        self._process_lock = threading.Lock()  # one process() at a time
        self._gen = 0  # bumped by reset(): a recognition started before is discarded
        self._corrections: list[int] = []
        self._prev_small: np.ndarray | None = None
        self._ref_small: np.ndarray | None = None  # the last recognised scene
        self._still_since: float | None = None
        self._settled = False
        self._frame_index = -1
        self._camera: str | None = None  # the capture's status, when told (None: not told)
        self._phase = LIVE
        self._recognised_since_live = False
        self._fresh_at: float | None = None  # clock() at the last fresh (changed) picture
        self._confirmed_at: float | None = None  # clock() when the settled scene was last seen
        self._attendant: Attendant | None = None
        self._staff_present = False  # staff mode is open on this kiosk: no calls by itself
        self.recognitions = 0  # settled scenes recognised (detect + match + embed) so far
        self._seq = itertools.count(1)
        self._state = self._make_state(-1, False, {}, 0)

    # ------------------------------------------------------------------ state
    @property
    def _tracks(self) -> dict[int, Track]:
        """The items on the tray (the tracker's tracks of the last recognised picture)."""
        return self.tracker.tracks

    @_tracks.setter
    def _tracks(self, tracks: dict[int, Track]) -> None:
        self.tracker.tracks = tracks

    @property
    def state(self) -> SessionState:
        """The latest :class:`SessionState`."""
        with self._lock:
            return self._state

    @property
    def phase(self) -> str:
        with self._lock:
            return self._phase

    def _rivals(self, t: Track, p: "Product | None"
                ) -> tuple[bool, bool, tuple[str, ...], bool]:
        """(unsure, same_price, rivals, rivals_same_price) of a recognised item."""
        return self.pipeline.rivals(t, p)

    def _item(self, t: Track) -> TrayItem:
        return self.pipeline.item(t)

    def _attendant_now(self) -> Attendant | None:
        a = self._attendant
        if a is not None and a.remaining(self.clock()) <= 0:
            log.info("attendant session of %s ended (idle)", a.cashier_id)
            self._attendant = a = None
        return a

    def _pay_block(self, items, receipt, needs: bool) -> str:
        if not items:
            return "empty"
        if self._phase in _NOT_LIVE:
            return "not_live"
        if self._phase != SETTLED:
            return "not_settled"
        if needs or receipt.unpriced:
            return "needs_cashier"
        if self._confirmed_at is None or self.clock() - self._confirmed_at > self.max_sale_age_s:
            return "not_live"
        return ""

    def _make_state(self, frame_index: int, settled: bool, timings: dict, n_embedded: int
                    ) -> SessionState:
        items = self.pipeline.items(self._tracks.values())  # (in reading order)
        receipt = self.pipeline.receipt(items)
        needs = any(i.needs_cashier for i in items)
        blocked = self._pay_block(items, receipt, needs)
        calls = self._auto_calls(items) if self.calls is not None else ()
        state = SessionState(frame_index=frame_index, settled=settled, items=tuple(items),
                             receipt=receipt, needs_cashier=needs, timings_ms=dict(timings),
                             n_embedded=n_embedded, phase=self._phase, payable=not blocked,
                             blocked=blocked, attendant=self._attendant_now(), calls=calls,
                             seq=next(self._seq))
        self._state = state
        return state

    def _auto_calls(self, items) -> tuple:
        """Open the calls the settled basket needs, close those it no longer needs; the calls
        still open."""
        board = self.calls
        try:
            # no new call while a cashier or staff are at the kiosk (they see the basket)
            if (self.auto_call and self._phase == SETTLED and self._attendant_now() is None
                    and not self._staff_present):
                want = {}
                for i in items:
                    reason = ("unknown" if i.unknown else "unsure" if i.unsure
                              else "unpriced" if i.price is None else None)
                    if reason:
                        want.setdefault(reason, []).append(i.name or "?")
                open_now = {c.reason: c for c in board.open_calls()}
                for reason, names in want.items():
                    if reason not in open_now:
                        board.open(reason, ", ".join(names))
                for reason, c in open_now.items():
                    if reason in ("unknown", "unsure", "unpriced") and reason not in want:
                        board.resolve(c.id, by=None, resolution="cleared")
            return tuple(board.open_calls())
        except Exception:  # noqa: BLE001 - a call that cannot be stored must not stop the till
            log.exception("calls for the cashier")
            return ()

    def refresh(self) -> SessionState:
        """The current items again with the catalogue's current names and prices (after staff
        changed a price, renamed or priced a product), without recognising anything."""
        with self._lock:
            return self._restate()

    def _restate(self) -> SessionState:
        s = self._state
        return self._make_state(s.frame_index, s.settled, s.timings_ms, s.n_embedded)

    # ---------------------------------------------------------------- camera
    def _set_phase(self, phase: str) -> bool:
        if phase == self._phase:
            return False
        log.info("checkout: %s -> %s", self._phase, phase)
        self._phase = phase
        if phase in _NOT_LIVE:
            # whatever was recognised belongs to an older picture: recognise afresh
            self._ref_small = None
            self._prev_small = None
            self._still_since = None
            self._settled = False
            self._confirmed_at = None
            self._recognised_since_live = False
        return True

    def set_camera_status(self, status: str) -> SessionState | None:
        """Tell the session the capture's status (``starting``, ``live``, ``lost``, ``bad``,
        ``stopped``); a new state when the phase changed."""
        with self._lock:
            if status == self._camera:
                return None
            self._camera = status
            if status == "live":
                changed = self._set_phase(LIVE) if self._phase in (NO_CAMERA, NO_PICTURE) \
                    else False
                self._fresh_at = self.clock()
            elif status == "bad":
                changed = self._set_phase(NO_PICTURE)
            else:
                changed = self._set_phase(NO_CAMERA)
            return self._restate() if changed else None

    def camera_switched(self) -> SessionState:
        """Another camera (another picture altogether): the basket is forgotten and nothing is
        payable until the new picture has been recognised."""
        with self._lock:
            self._camera = None
            self._forget("camera switched")
            self._set_phase(NO_CAMERA)
            return self._make_state(self._frame_index, False, {}, 0)

    def tick(self, now: float | None = None, *, frozen_for: float = 0.0
             ) -> SessionState | None:
        """Time passed: a new state when the picture went stale (``frozen_for``: seconds the
        camera's picture has not changed, as the capture measures it; stale beyond
        ``frozen_after_s``), the attendant session ended, or the settled picture became too
        old to pay from."""
        with self._lock:
            now = self.clock() if now is None else now
            changed = False
            if self._phase not in _NOT_LIVE and frozen_for > self.frozen_after_s:
                changed = self._set_phase(STALE)
            a = self._attendant
            if a is not None and a.remaining(now) <= 0:
                changed = True
            s = self._state
            if self._pay_block(s.items, s.receipt, s.needs_cashier) != s.blocked:
                changed = True  # e.g. the settled picture became too old to pay from
            return self._restate() if changed else None

    # ---------------------------------------------------------------- frames
    def process(self, frame: "Frame") -> SessionState | None:
        """Feed one camera frame (a fresh one: frozen repeats are not fed, see :meth:`tick`).
        Returns a new state when there is something new to show (the tray started moving,
        settled, was recognised, or the phase changed), else None."""
        with self._process_lock:
            small = _small_grey(frame.image)
            with self._lock:
                self._frame_index = frame.index
                self._fresh_at = self.clock()
                revived = False
                if self._camera in (None, "starting", "live") and self._phase in _NOT_LIVE:
                    revived = self._set_phase(LIVE)  # fresh pictures again
                if self._camera in ("lost", "bad", "stopped"):
                    return None  # a frame that raced the status change
                moved = _changed_fraction(small, self._prev_small) > self.motion_threshold
                self._prev_small = small
                if moved or self._still_since is None:
                    self._still_since = frame.t
                    if self._recognised_since_live:
                        changed = self._set_phase(SETTLING)
                    else:
                        changed = False
                    if (moved and self._settled) or changed or revived:
                        self._settled = False
                        return self._make_state(frame.index, False, self._state.timings_ms, 0)
                    return None
                if frame.t - self._still_since < self.settle_s - 1e-6:  # (float time stamps)
                    return None
                if _changed_fraction(small, self._ref_small) <= self.motion_threshold:
                    self._confirmed_at = self.clock()
                    if not self._settled or self._phase != SETTLED:
                        # settled back on the scene already recognised
                        self._settled = True
                        self._set_phase(SETTLED)
                        return self._make_state(frame.index, True, self._state.timings_ms, 0)
                    # still the recognised scene: read one pack still to be read, else check
                    # one named item's barcode, if any
                    pending = self.pipeline.pending_pack(self._tracks.values())
                    code = (None if pending is not None
                            else self.pipeline.pending_code(self._tracks.values()))
                    if pending is None and code is None:
                        return None
                    gen = self._gen
                else:
                    pending = code = None
                    gen = self._gen
                    tracks = list(self._tracks.values())
            if pending is not None:
                return self._read_pack(pending, gen, frame.index)
            if code is not None:
                return self._read_code(code, frame.image, gen, frame.index)
            result = self._recognise(frame.image, tracks)
            self.recognitions += 1
            with self._lock:
                if gen != self._gen or self._phase in _NOT_LIVE:
                    return None  # reset() or the camera went away meanwhile: no basket of ours
                self._ref_small = small
                self._settled = True
                self._recognised_since_live = True
                self._confirmed_at = self.clock()
                self._set_phase(SETTLED)
                return self._apply(frame.index, result)

    def _recognise(self, image: np.ndarray, tracks: list[Track]) -> FrameResult:
        """The picture through the frame pipeline, matched to ``tracks`` (run outside the
        state lock; touches only the per-track recognition fields, which only this thread
        writes)."""
        return self.pipeline.run(image, tracks)

    def _read_pack(self, t: Track, gen: int, frame_index: int) -> SessionState | None:
        """Read the pack of a recognised item whose close candidates have enrolled words and
        let the words re-rank them; a new state when that changed the item or its words."""
        return self._read_later(t, gen, frame_index, "text", lambda: self.pipeline.read_pack(t),
                                lambda d: self.pipeline.take_pack(t, d))

    def _read_code(self, t: Track, image: np.ndarray, gen: int,
                   frame_index: int) -> SessionState | None:
        """Check the barcode of an item the pictures named (``image``: the still picture,
        the recognised scene); a new state when the code named another product (the item is
        now that product)."""
        def take(read: tuple[str | None, str | None]) -> bool:
            if not self.pipeline.take_code(t, read):
                return False
            sku, foreign = read
            if sku:
                log.info("item %d: its barcode names %s, not %s as the pictures said", t.id,
                         sku, t.decision.sku)
            else:
                log.info("item %d: its barcode %s is no product for sale, and %s has another: "
                         "the cashier decides", t.id, foreign, t.decision.sku)
            return True

        return self._read_later(t, gen, frame_index, "code",
                                lambda: self.pipeline.read_code(t, image), take)

    def _read_later(self, t: Track, gen: int, frame_index: int, timing: str,
                    read: Callable[[], Any], take: Callable[[Any], bool]
                    ) -> SessionState | None:
        """A read deferred to a still frame (a pack, a barcode): ``read()`` outside the state
        lock, then, if the basket is still the one it was read for, ``take(result)`` under it;
        a new state (its time as ``timing`` ms) when that changed the item."""
        t0 = time.perf_counter()
        result = read()
        ms = (time.perf_counter() - t0) * 1e3
        with self._lock:
            if gen != self._gen or self._tracks.get(t.id) is not t:
                return None
            if not take(result):
                return None
            return self._make_state(frame_index, True, {**self._state.timings_ms, timing: ms},
                                    0)

    def _apply(self, frame_index: int, r: FrameResult) -> SessionState:
        gone = self.tracker.commit(r.obs)
        if gone:
            log.debug("items taken off the tray: %s", sorted(gone))
        for _t, cashier in r.badges:
            self._open_attendant(str(cashier.id), str(cashier.name), "badge")
        return self._make_state(frame_index, True, r.timings, r.n_embedded)

    # -------------------------------------------------------------- attendant
    def _open_attendant(self, cashier_id: str, name: str, how: str) -> None:
        self._attendant = Attendant(cashier_id, name, how,
                                    self.clock() + self.attendant_timeout_s)
        try:
            self.engine.catalog.audit("attendant_session", cashier_id, role="cashier",
                                      actor=cashier_id, after={"how": how})
        except Exception:  # noqa: BLE001 - the log entry must not stop the cashier
            log.exception("auditing the attendant session")
        if self.calls is not None:
            try:
                self.calls.resolve_all(by=cashier_id, resolution="attended")
            except Exception:  # noqa: BLE001
                log.exception("closing calls")

    def open_attendant(self, cashier, how: str = "code") -> SessionState:
        """A cashier (an object with ``id`` and ``name``, e.g. :class:`kiosk.checkout.cashier_auth.Cashier`)
        proved who they are: they may correct this kiosk's basket until the session ends.
        Open calls for the cashier are closed as attended by them."""
        if how not in ("code", "badge"):
            raise ValueError("how must be 'code' or 'badge'")
        with self._lock:
            self._open_attendant(str(cashier.id), str(cashier.name), how)
            return self._restate()

    def end_attendant(self) -> SessionState:
        with self._lock:
            self._attendant = None
            return self._restate()

    @property
    def attendant(self) -> Attendant | None:
        with self._lock:
            return self._attendant_now()

    def _authority(self, cashier: str | None, what: str) -> str:
        """The acting cashier's id (the attendant session is extended), or CashierRequired."""
        a = self._attendant_now()
        if cashier is None:
            if a is None:
                raise CashierRequired(what)
            cashier = a.cashier_id
        elif a is None or a.cashier_id != cashier:
            raise CashierRequired(what)
        self._attendant = Attendant(a.cashier_id, a.name, a.how,
                                    self.clock() + self.attendant_timeout_s)
        return cashier

    # -------------------------------------------------------------- calls
    def set_staff_present(self, present: bool) -> SessionState:
        """Staff mode opened (True) or closed on this kiosk.  While staff are here the
        checkout calls nobody by itself (their enrolment items on the tray are not a shopper's
        unknown goods), and the calls already open are closed as attended by staff."""
        with self._lock:
            self._staff_present = bool(present)
            if present and self.calls is not None:
                try:
                    self.calls.resolve_all(by=None, resolution="staff")
                except Exception:  # noqa: BLE001
                    log.exception("closing calls")
            return self._restate()

    def call_cashier(self, detail: str | None = None) -> SessionState:
        """The shopper asks for help."""
        with self._lock:
            if self.calls is not None:
                self.calls.open("shopper", detail)
            return self._restate()

    # ---------------------------------------------------------------- intents
    def _track(self, track_id: int) -> Track:
        t = self._tracks.get(track_id)
        if t is None or not t.live:
            raise ItemGone(track_id)
        return t

    def override(self, track_id: int, sku: str, *, cashier: str | None = None) -> SessionState:
        """The cashier says item ``track_id`` is product ``sku`` (for as long as it stays on
        the tray).  Needs an attendant session (``cashier``: the acting cashier's id, default
        the attendant's).  Logged as a correction and audited with the cashier's id.  Unknown
        sku: ``ValueError``; no item: :class:`ItemGone`."""
        with self._lock:
            t = self._track(track_id)
            p = self.engine.lookup_product(sku)
            if p is None:
                raise ValueError(f"no product with sku {sku!r}")
            who = self._authority(cashier, "change an item")
            self._corrections.append(  # logged first: nothing changes unless it is logged
                self.engine.catalog.log_correction(list(t.box), t.sku, p.sku, role="cashier",
                                                   actor=who))
            t.override, t.override_by, t.removed = p.sku, who, False
            self._answered(t, p.sku, who, "cashier")
            return self._restate()

    def _answered(self, t: Track, sku: str, cashier: str | None, source: str) -> None:
        """Hand an answer (the item's cut-out from this kiosk's camera and the product it
        really is) to ``on_answer(crop, sku, cashier=..., source=..., decision=...)``, e.g. to
        learn it as a gallery view (:class:`kiosk.checkout.learn.Learner`); ``source``: ``cashier``,
        ``shopper``, ``barcode`` (read off an unknown item, at payment) or ``paid`` (charged as
        recognised, at payment).  A failure there never stops the till."""
        if self.on_answer is None or t.crop is None:
            return
        try:
            self.on_answer(t.crop, sku, cashier=cashier, source=source, decision=t.decision)
        except Exception:  # noqa: BLE001
            log.exception("learning from an answer")

    def shopper_choices(self, track_id: int) -> tuple[str, ...]:
        """The products the shopper may choose between for item ``track_id`` (empty unless
        ``shopper_same_price_choice`` and the item's close candidates all have its price)."""
        with self._lock:
            if not self.shopper_same_price_choice:
                return ()
            t = self._tracks.get(track_id)
            if t is None or not t.live or t.source != "recognized" or t.decision.unknown:
                return ()
            p = self.engine.lookup_product(t.decision.sku)
            _unsure, _charged, rivals, same = self._rivals(t, p)
            if not same:
                return ()
            return (t.decision.sku, *rivals)

    def shopper_choose(self, track_id: int, sku: str) -> SessionState:
        """The shopper picks one of :meth:`shopper_choices` (the bill is the same either way);
        audited as the shopper's choice and kept to learn from."""
        with self._lock:
            t = self._track(track_id)
            if sku not in self.shopper_choices(track_id):
                raise CashierRequired("choose this product")
            self._corrections.append(
                self.engine.catalog.log_action("shopper_choice", list(t.box), t.sku, sku,
                                               role="shopper"))
            t.override, t.override_by = sku, "shopper"
            self._answered(t, sku, None, "shopper")
            return self._restate()

    def remove(self, track_id: int, *, cashier: str | None = None) -> SessionState:
        """Ignore item ``track_id`` while it stays on the tray (needs an attendant session;
        logged and audited with the cashier's id)."""
        with self._lock:
            t = self._track(track_id)
            who = self._authority(cashier, "remove an item")
            self._corrections.append(
                self.engine.catalog.log_action("remove", list(t.box), t.sku, None,
                                               role="cashier", prev_qty=t.qty, actor=who))
            t.removed = True
            return self._restate()

    def set_qty(self, track_id: int, qty: int, *, cashier: str | None = None) -> SessionState:
        """Set how many of item ``track_id`` there are (e.g. a multipack); 0 removes it.
        Needs an attendant session."""
        if isinstance(qty, bool) or not isinstance(qty, int) or qty < 0:
            raise ValueError(f"quantity must be a whole number >= 0, got {qty!r}")
        if qty == 0:
            return self.remove(track_id, cashier=cashier)
        with self._lock:
            t = self._track(track_id)
            who = self._authority(cashier, "change a quantity")
            self._corrections.append(
                self.engine.catalog.log_action("qty", list(t.box), t.sku, t.sku, qty=qty,
                                               role="cashier", prev_qty=t.qty, actor=who))
            t.qty = qty
            return self._restate()

    def search(self, text: str) -> list["Product"]:
        """Products matching ``text`` (name, sku or barcode), for the cashier's picker."""
        return self.engine.catalog.search_products(text, active_only=True)

    _BLOCKED = {
        "not_live": "the camera picture is not live: wait until the tray has been checked "
                    "again",
        "not_settled": "the tray is still being checked: keep it still for a moment",
        "empty": "the basket is empty: nothing to pay for",
        "needs_cashier": "an item needs the cashier before payment",
    }

    def finish(self) -> int:
        """Record the sale; returns the transaction id.

        Refused (:class:`CheckoutBlocked`, a ``ValueError``) unless the current picture is
        settled and was confirmed within ``max_sale_age_s``, the basket is not empty and no
        item is unknown, unsure or unpriced.  Afterwards the basket is empty: the items still
        on the tray belong to the sale just made and are not added again while they stay
        there.
        """
        with self._lock:
            state = self._restate()
            if state.blocked:
                if state.blocked == "needs_cashier":
                    unknown = [i for i in state.items if i.unknown or i.unsure]
                    if unknown:
                        raise CheckoutBlocked("needs_cashier", (
                            f"{len(unknown)} item(s) not recognised for sure: the cashier must "
                            "choose the product or remove the item before payment"))
                    if state.receipt.unpriced:
                        raise CheckoutBlocked("needs_cashier", (
                            "no price for " + ", ".join(state.receipt.unpriced)
                            + ": staff must set a price before this can be sold"))
                raise CheckoutBlocked(state.blocked, self._BLOCKED[state.blocked])
            catalog = self.engine.catalog
            with catalog.transaction():  # the sale and its corrections land together
                tx = catalog.record_transaction(state.receipt)
                if self._corrections:
                    catalog.link_corrections(self._corrections, tx)
            self._corrections = []
            for t in self._tracks.values():
                if t.live and t.source == "barcode":
                    self._answered(t, t.barcode_sku, None, "barcode")
                elif t.live and t.source == "recognized" and not t.decision.unknown:
                    p = self.engine.lookup_product(t.decision.sku)
                    # charged as recognised and paid: an answer too (learned only where the
                    # settings say so); a same-price guess among look-alikes is not confirmed
                    if not price_rivals(t.decision, p, self.engine, True)[1]:
                        self._answered(t, t.decision.sku, None, "paid")
                t.paid = True
            self._restate()
            return tx

    def _forget(self, why: str) -> None:
        self._gen += 1
        self.tracker.clear()
        self._corrections = []
        self._ref_small = None
        self._still_since = None
        self._settled = False
        self._confirmed_at = None
        self._recognised_since_live = False
        if self.calls is not None:
            try:
                self.calls.resolve_all(by=None, resolution=why,
                                       reasons=("unknown", "unsure", "unpriced"))
            except Exception:  # noqa: BLE001
                log.exception("closing calls")

    def reset(self) -> SessionState:
        """Forget the basket (and any recognition in progress); what is on the tray is
        recognised afresh once it is still."""
        with self._lock:
            self._forget("reset")
            if self._phase not in _NOT_LIVE:
                self._set_phase(LIVE)
            return self._make_state(self._frame_index, False, {}, 0)
