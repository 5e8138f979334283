"""Learning from every answer: the kiosk's own camera views join the gallery (no Qt here).

When the cashier says what an item really is (a pick from the candidates, a search, a barcode),
the item's upright cut-out from this kiosk's camera is exactly the picture the gallery lacked.
:class:`Learner` is the checkout session's ``on_answer`` hook
(:meth:`kiosk.checkout.session.CheckoutSession._answered`): it stores that cut-out as a gallery view of
the right product through the engine (as cut and half-turned, like an enrolment), searchable as
soon as it is stored: no restart, no retraining.

The policy (``[learning]`` in the settings, :class:`LearnPolicy`):

* **what is learned**: cashier answers, barcodes read on unknown items and shoppers' same-price
  choices (``learn_cashier_answers``); items charged as recognised, once paid
  (``learn_paid_items``, off by default: a silent wrong charge would be learned too), and of
  those only the ones whose pictures named their product clearly: the best product ahead of
  the next by at least ``paid_min_margin`` (a charge the pictures hardly told from a
  look-alike is the one most likely wrong, and a wrong view teaches more wrong charges);
* **approval**: ``auto`` (searchable at once) or ``queue`` (kept aside, not searchable, until
  staff approve it in staff mode);
* **diversity**: a new view at least ``near_duplicate`` similar to a view the product already
  has adds nothing and is not stored; over ``views_per_product`` learned views, the learned view
  that adds least coverage (the one most similar to the product's other views) is dropped.
  Enrolment views never count against the budget and are never dropped;
* **flood limit**: one cashier teaches one product at most ``per_cashier_per_product_per_hour``
  views an hour.

Every learned view is a ``learned_views`` row (source, cashier, time, status) and every change
is audited with who did it: learned or queued (the cashier), approved, undone or purged (staff),
dropped for the budget (system).  :meth:`Learner.undo` and :meth:`Learner.purge` take a view out
of the index at once (tombstones, nothing re-embedded).
"""
from __future__ import annotations

import hashlib
import logging
import queue
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

from kiosk.embed import Embeddings

log = logging.getLogger(__name__)

SOURCES = ("cashier", "shopper", "barcode", "paid")
# what a view's status becomes, by whom
_ROLE_OF_SOURCE = {"cashier": "cashier", "shopper": "shopper", "barcode": "system",
                   "paid": "system"}


@dataclass(frozen=True)
class LearnPolicy:
    """How answers are learned (see the module docstring; ``[learning]`` settings)."""

    cashier_answers: bool = True
    approval: str = "auto"  # "auto" | "queue"
    paid_items: bool = False
    paid_min_margin: float = 0.10
    views_per_product: int = 20
    near_duplicate: float = 0.95
    per_cashier_per_product_per_hour: int = 10

    def __post_init__(self) -> None:
        if self.approval not in ("auto", "queue"):
            raise ValueError("approval must be 'auto' or 'queue'")
        if self.views_per_product < 1 or self.per_cashier_per_product_per_hour < 1:
            raise ValueError("views_per_product and the flood limit must be at least 1")
        if not 0.0 <= self.paid_min_margin <= 1.0:
            raise ValueError("paid_min_margin must be in [0, 1]")

    @classmethod
    def from_settings(cls, settings: Any) -> "LearnPolicy":
        s = getattr(settings, "learning", None)
        if s is None:
            return cls()
        return cls(cashier_answers=bool(s.learn_cashier_answers), approval=str(s.approval),
                    paid_items=bool(s.learn_paid_items),
                    paid_min_margin=float(s.paid_min_margin),
                    views_per_product=int(s.views_per_product),
                    near_duplicate=float(s.near_duplicate),
                    per_cashier_per_product_per_hour=int(s.per_cashier_per_product_per_hour))

    def wants(self, source: str) -> bool:
        return self.paid_items if source == "paid" else self.cashier_answers


@dataclass(frozen=True)
class LearnResult:
    """What became of one answer.  ``status``: ``added`` (searchable now), ``pending`` (in the
    staff queue), ``duplicate`` (a near-duplicate of a view the product has), ``redundant``
    (stored, then dropped at once for the view budget), ``flood`` (over the cashier's limit),
    ``off`` (the policy does not learn this source), ``unclear`` (a paid item whose pictures
    did not name it clearly enough, see ``paid_min_margin``), ``no_product`` (not an active
    product),
    ``queued`` (handed to the background thread)."""

    status: str
    view_id: int | None = None
    similarity: float | None = None  # the new view's best similarity to the product's views
    evicted: tuple[int, ...] = ()

    @property
    def added(self) -> bool:
        return self.status == "added"


class Learner:
    """Stores answered items as learned gallery views of ``engine``'s catalogue.

    Use it as the session's ``on_answer`` (``learner(crop, sku, cashier=..., source=...,
    decision=...)``).  ``gallery_dir``: where pictures go (default: ``gallery`` beside the
    catalogue, as enrolment); ``clock``: wall-clock seconds (the flood limit's hour)."""

    def __init__(self, engine, policy: LearnPolicy | None = None, *,
                 gallery_dir: str | Path | None = None,
                 clock: Callable[[], float] = time.time, background: bool = False) -> None:
        self.engine = engine
        # ``background``: answers are learned on a thread of the learner's own, so that the
        # cashier's tap never waits for the embedding and the database (:meth:`flush` waits)
        self.background = bool(background)
        self._queue: queue.Queue | None = None
        self._thread: threading.Thread | None = None
        self.policy = policy or LearnPolicy()
        self.gallery_dir = Path(gallery_dir) if gallery_dir else \
            engine.catalog.path.parent / "gallery"
        # each learned view's cut-out as seen, lossless, kept until it is purged or dropped
        self.picture_dir = self.gallery_dir.parent / "learned"
        self.clock = clock
        self._lock = threading.RLock()

    @property
    def catalog(self):
        return self.engine.catalog

    # ----------------------------------------------------------------- answers
    def __call__(self, crop: np.ndarray, sku: str, *, cashier: str | None = None,
                 source: str = "cashier", decision=None) -> LearnResult:
        """Learn one answer (see the module docstring).  With ``background`` the answer is
        queued and ``LearnResult("queued")`` returned at once."""
        if not self.background:
            return self.learn(crop, sku, cashier=cashier, source=source, decision=decision)
        refused = self._refused(source, decision)  # (nothing queued that would not be learned)
        if refused is not None:
            return refused
        self._start()
        self._queue.put((crop, sku, cashier, source, decision))
        return LearnResult("queued")

    def _refused(self, source: str, decision) -> LearnResult | None:
        """Why an answer of ``source`` is not learned, before looking at the item: the policy
        does not learn the source (``off``), or a paid item was not named clearly by its
        pictures (``unclear``: unknown, unsure, decided by its pack's words, no decision, or
        its best product ahead of the next by less than ``paid_min_margin``).  A person's
        answer is learned whatever the call.  None: go on."""
        if source not in SOURCES:
            raise ValueError(f"source must be one of {', '.join(SOURCES)}")
        if not self.policy.wants(source):
            return LearnResult("off")
        if source == "paid" and (
                decision is None or decision.unknown or decision.unsure or decision.by_text
                or float(decision.margin) < self.policy.paid_min_margin):
            return LearnResult("unclear")
        return None

    def _start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._queue = self._queue or queue.Queue()
                # nothing may be learned into a closed catalogue or index: the engine waits
                hook = getattr(self.engine, "add_close_hook", None)
                if callable(hook):
                    hook(self.flush)
                self._thread = threading.Thread(target=self._work, name="kiosk-learner",
                                                daemon=True)
                self._thread.start()

    def _work(self) -> None:
        while True:
            crop, sku, cashier, source, decision = self._queue.get()
            try:
                self.learn(crop, sku, cashier=cashier, source=source, decision=decision)
            except Exception:  # noqa: BLE001 - a view that cannot be learned never stops the till
                log.exception("learning a view of %s", sku)
            finally:
                self._queue.task_done()

    def flush(self) -> None:
        """Wait until every queued answer is learned (background mode)."""
        if self._queue is not None:
            self._queue.join()

    def learn(self, crop: np.ndarray, sku: str, *, cashier: str | None = None,
              source: str = "cashier", decision=None) -> LearnResult:
        """Learn one answer now, on the calling thread."""
        refused = self._refused(source, decision)
        if refused is not None:
            return refused
        p = self.engine.lookup_product(sku)
        if p is None or not p.active:
            return LearnResult("no_product")
        actor = cashier if source == "cashier" else None
        role = _ROLE_OF_SOURCE[source]
        with self._lock:
            now = float(self.clock())
            if self.catalog.count_learned_since(sku, actor, now - 3600.0) \
                    >= self.policy.per_cashier_per_product_per_hour:
                self.catalog.audit("learn_view_refused", sku, role=role, actor=actor,
                                   after={"source": source},
                                   detail="over the limit of views per cashier, product and hour")
                return LearnResult("flood")
            crop = np.ascontiguousarray(crop)
            turned = cv2.rotate(crop, cv2.ROTATE_180)
            emb = self.engine.embedder.embed([crop, turned])
            _ids, have = self.engine.vectors_of(sku)
            sim = float((have @ emb.vectors[0]).max()) if len(have) else None
            if sim is not None and sim >= self.policy.near_duplicate:
                return LearnResult("duplicate", similarity=sim)
            meta = dict(source=source, actor=actor, created_t=now,
                        decided_sku=getattr(decision, "sku", None),
                        score=getattr(decision, "score", None),
                        margin=getattr(decision, "margin", None))
            picture = str(self._write(crop))
            if self.policy.approval == "queue":
                with self.catalog.transaction():
                    vid = self.catalog.add_learned_view(sku, picture, status="pending", **meta)
                    self.catalog.audit("learn_view_queued", sku, role=role, actor=actor,
                                       after={"view": vid, "source": source})
                return LearnResult("pending", vid, sim)
            with self.catalog.transaction():
                vid = self.catalog.add_learned_view(sku, picture, status="approved", **meta)
                self._store(vid, sku, crop, emb)
                self.catalog.audit("learn_view", sku, role=role, actor=actor,
                                   after={"view": vid, "source": source,
                                          "was": meta["decided_sku"]})
            evicted = self._enforce_budget(sku)
            if vid in evicted:
                return LearnResult("redundant", vid, sim, evicted)
            return LearnResult("added", vid, sim, evicted)

    def _write(self, crop: np.ndarray) -> Path:
        # lossless: JPEG (q 92) moves a small cut-out's embedding by ~0.04 cosine, and the
        # queued view is embedded from this file when staff approve it
        ok, buf = cv2.imencode(".png", crop)
        if not ok:
            raise ValueError("could not encode a learned view")
        folder = self.picture_dir
        folder.mkdir(parents=True, exist_ok=True)
        # one file per learned view (purging one never takes another's picture)
        path = folder / f"{hashlib.sha256(buf.tobytes()).hexdigest()[:12]}-{uuid.uuid4().hex[:8]}.png"
        path.write_bytes(buf.tobytes())
        return path

    def _store(self, view_id: int, sku: str, crop: np.ndarray, emb: Embeddings | None) -> None:
        """Put ``crop`` (and its half turn) into the gallery of ``sku`` as learned view
        ``view_id`` (approved).  In the caller's transaction; searchable once it commits."""
        ids = self.engine.add_crops(sku, [crop], self.gallery_dir, role="system",
                                    embeddings=emb, audit_action=None)
        rows = {r["id"]: r["file"] for r in self.catalog.gallery_rows(sku)}
        self.catalog.update_learned_view(view_id, status="approved", file=rows[ids[0]],
                                         turned_file=rows[ids[1]] if len(ids) > 1 else None)

    # ------------------------------------------------------------ view budget
    def _enforce_budget(self, sku: str) -> tuple[int, ...]:
        """Drop the learned views of ``sku`` that add least until it has at most
        ``views_per_product``; returns the views dropped."""
        evicted = []
        while True:
            views = self.catalog.learned_views(sku, status="approved")
            if len(views) <= self.policy.views_per_product:
                return tuple(evicted)
            ids, vecs = self.engine.vectors_of(sku)
            if not len(ids):
                return tuple(evicted)
            pos = {int(i): n for n, i in enumerate(ids.tolist())}
            sims = vecs @ vecs.T
            worst, worst_sim = None, -np.inf
            for v in views:
                cut = [pos[i] for i in self.catalog.gallery_ids_for_files(sku, (v["file"],))
                       if i in pos]
                own = cut + [pos[i] for i in self.catalog.gallery_ids_for_files(
                    sku, (v["turned_file"],)) if i in pos]
                if not cut:
                    continue
                first = cut[0]
                others = np.ones(len(ids), bool)
                others[own] = False
                if not others.any():
                    continue
                s = float(sims[first, others].max())  # how well the others cover it already
                if s > worst_sim:
                    worst, worst_sim = v, s
            if worst is None:
                return tuple(evicted)
            with self.catalog.transaction():
                self._take_out(worst)
                self.catalog.update_learned_view(worst["id"], status="evicted", file=None,
                                                 turned_file=None, reviewed_by="system")
                self.catalog.audit("learn_view_evicted", sku, role="system",
                                   before={"view": worst["id"]},
                                   detail=f"view budget {self.policy.views_per_product}: "
                                          f"the view closest to the others ({worst_sim:.3f})")
            self._delete_files(sku, worst, picture=True)
            evicted.append(int(worst["id"]))

    # ------------------------------------------------------------ staff mode
    def views(self, sku: str | None = None, status=None) -> list[dict]:
        """Learned views, newest first (see :meth:`kiosk.catalog.Catalog.learned_views`)."""
        return self.catalog.learned_views(sku, status)

    def _get(self, view_id: int) -> dict:
        v = self.catalog.get_learned_view(view_id)
        if v is None:
            raise KeyError(f"no learned view {view_id}")
        return v

    def _take_out(self, v: dict) -> int:
        """Remove a learned view's gallery rows (in the caller's transaction)."""
        ids = self.catalog.gallery_ids_for_files(v["sku"], (v["file"], v["turned_file"]))
        return self.engine.remove_gallery_rows(ids)

    def _delete_files(self, sku: str, v: dict, *, picture: bool) -> None:
        """Delete a learned view's gallery files no gallery row uses (and its picture)."""
        for f in (v["file"], v["turned_file"]):
            if f and not self.catalog.gallery_ids_for_files(sku, (f,)):
                Path(f).unlink(missing_ok=True)
        if picture and v["picture"]:
            Path(v["picture"]).unlink(missing_ok=True)

    def approve(self, view_id: int, *, role: str = "staff", actor: str | None = None
                ) -> LearnResult:
        """Put a queued (or undone) view into the gallery: searchable at once."""
        from kiosk.images import load_image

        with self._lock:
            v = self._get(view_id)
            if v["status"] not in ("pending", "undone"):
                raise ValueError(f"learned view {view_id} is {v['status']}: only a pending or "
                                 "undone view can be approved")
            crop = load_image(Path(v["picture"]))
            with self.catalog.transaction():
                self._store(int(view_id), v["sku"], crop, None)
                self.catalog.update_learned_view(view_id, reviewed_by=actor or role)
                self.catalog.audit("learn_view_approved", v["sku"], role=role, actor=actor,
                                   after={"view": int(view_id)})
            evicted = self._enforce_budget(v["sku"])
            return LearnResult("redundant" if view_id in evicted else "added", int(view_id),
                               evicted=evicted)

    def undo(self, view_id: int, *, role: str = "staff", actor: str | None = None) -> int:
        """Take a learned view out of the gallery at once (a queued one: rejected); its picture
        is kept, so it can be approved again.  Returns the gallery rows removed."""
        with self._lock:
            v = self._get(view_id)
            if v["status"] not in ("pending", "approved"):
                raise ValueError(f"learned view {view_id} is {v['status']}: nothing to undo")
            with self.catalog.transaction():
                n = self._take_out(v)
                self.catalog.update_learned_view(view_id, status="undone", file=None,
                                                 turned_file=None, reviewed_by=actor or role)
                self.catalog.audit("learn_view_undone", v["sku"], role=role, actor=actor,
                                   before={"view": int(view_id), "status": v["status"]})
            self._delete_files(v["sku"], v, picture=False)
            return n

    def purge(self, view_id: int, *, role: str = "staff", actor: str | None = None) -> int:
        """Take a learned view out of the gallery and delete its pictures for good."""
        with self._lock:
            v = self._get(view_id)
            if v["status"] in ("purged", "evicted"):
                return 0
            with self.catalog.transaction():
                n = self._take_out(v)
                self.catalog.update_learned_view(view_id, status="purged", file=None,
                                                 turned_file=None, reviewed_by=actor or role)
                self.catalog.audit("learn_view_purged", v["sku"], role=role, actor=actor,
                                   before={"view": int(view_id), "status": v["status"]})
            self._delete_files(v["sku"], v, picture=True)
            return n

    def save(self) -> None:
        """Save the vector index (the kiosk also saves it when it closes)."""
        self.engine.save()


def learner_for(engine, settings=None, **kw) -> Learner | None:
    """The learner the settings ask for (None when nothing is to be learned)."""
    policy = LearnPolicy.from_settings(settings)
    if not (policy.cashier_answers or policy.paid_items):
        return None
    return Learner(engine, policy, **kw)
