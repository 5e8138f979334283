"""Checks that keep a new product's enrolment from poisoning the catalogue (Qt-free).

An enrolment is a few tray photos ("views") of one product, each cut out and turned upright as
at checkout.  Before anything is stored, :meth:`kiosk.engine.Engine.check_enrolment` asks:

1. **One item per view.**  A view with no item, or with two or more, is refused: which item
   would be the product?  (Taking the largest once taught the kiosk a bag of crisps as Sprite.)
2. **The views agree.**  Each view (as cut and half-turned, the way the gallery stores it) is
   compared with the others; a view that is clearly another item is refused, by number
   (:func:`odd_views`).  Look-alike flavours are legitimately close, so "agree" only means
   "not clearly a different item".
3. **Not a near-duplicate.**  Views as close to an existing product's gallery as that product's
   own pictures are to each other (:func:`lookalike_floor`) need staff to confirm that this is
   really a different product (a new flavour or size) before it is saved.

The numbers are offsets from the model's decision threshold (0.54 for the shipped model), so a
drop-in model with another similarity scale keeps them in proportion.  Measured with the
shipped model (``kiosk-lite0-arc1792``) on 12 fresh tray captures of each of the 13 demo
products and on the 5 gallery photos of each of the 65 dev SKUs
(``../shared/datasets/grocerystore-dev``, studio picture left out: a kiosk view is a camera
capture; the shipped model was trained on those photos, so their numbers flatter it):

* a view's best similarity to the product's other views: demo min 0.930 (1 % 0.949); dev photos
  min 0.436, 1 % 0.553, median 0.756;
* a view of another product against a product's views (best): demo median 0.424, max 0.766
  (the two crisp flavours DEMO-004/005: 0.94-0.99, inseparable); dev median 0.215, 99 % 0.520,
  max 0.668;
* 5 captures of each demo product by the demo camera (kiosk.camera.demo): a view's best
  similarity to its product's other views min 0.882; to another product's views median 0.463,
  max 0.742.

Simulated enrolments of 3-5 views, one view swapped for another product's (3,000 each):

=========================  ====================  =================  ===================
rule                       clean views refused   odd view missed    odd view missed
                           (dev photos)          (dev photos)       (demo)
=========================  ====================  =================  ===================
best < thr - 0.09 (0.45)   1.0 %                 3.2 %              39 %
+ gap 0.30 (kept)          3.1 %                 2.2 %              5.4 %
best < thr - 0.04 (0.50)   1.4 %                 1.1 %              32 %
=========================  ====================  =================  ===================

The synthetic demo packs resemble each other more than real ones (same tray, same renderer), so
an absolute floor alone lets most odd demo views through; the gap (a view 0.30 below how well the
other views agree among themselves) catches them at a cost of 2 % more refusals of real hand-held
photos, which vary more than tray captures do.  A refused view costs a re-capture; a stored odd
view costs wrong receipts.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

# A view whose best similarity to every other view is this far below the model's threshold is
# clearly another item (0.45 for the shipped model; see the module docstring for the numbers).
AGREE_BELOW_THRESHOLD = 0.09
# ... or, with at least two other views, this far below how well those agree among themselves.
AGREE_GAP = 0.30
# Near-duplicate of an existing product p: some view's best similarity to p's gallery reaches
# max(threshold + LOOKALIKE_ABOVE_THRESHOLD, median pairwise similarity of p's gallery -
# LOOKALIKE_BELOW_USUAL).  New views come from another session than the gallery: the demo
# camera's captures of a catalogue product reach its gallery at 0.853-0.937 (best view), 0.03-
# 0.06 below the gallery's own median (0.861-0.966); the other crisp flavour 0.874-0.887;
# another demo product at most 0.730.  Leave-one-product-out, 4,000 simulated 3-5 view
# enrolments each with this rule: demo (fresh renders) an existing product flagged 100 %, the
# other flavour 100 %, a product new to the catalogue never; dev photos (query photos against
# the gallery): an existing product flagged 99.8 %, a new product asked to confirm 4.5 %
# (threshold + 0.15 instead: 99.1 % / 1.0 %).  A needless question costs staff one tap; a
# missed duplicate costs wrong receipts.
LOOKALIKE_ABOVE_THRESHOLD = 0.10
LOOKALIKE_BELOW_USUAL = 0.10

NO_ITEM, SEVERAL_ITEMS, DISAGREES = "no_item", "several_items", "disagrees"


@dataclass(frozen=True)
class ViewProblem:
    """Why view ``view`` (1-based, in capture order) cannot be enrolled."""

    view: int
    kind: str  # NO_ITEM | SEVERAL_ITEMS | DISAGREES
    items: int = 1  # items found on the tray in that view
    score: float | None = None  # DISAGREES: its best similarity to the other views

    def message(self) -> str:
        if self.kind == NO_ITEM:
            return f"view {self.view}: no item found on the tray"
        if self.kind == SEVERAL_ITEMS:
            return (f"view {self.view}: {self.items} items on the tray; put only this product "
                    "on the tray")
        return (f"view {self.view} does not look like the other views (similarity "
                f"{self.score:.2f}): is it another product?")


@dataclass(frozen=True)
class Lookalike:
    """An existing product the new views are a near-duplicate of."""

    sku: str
    name: str
    price: int | None  # fen
    currency: str
    score: float  # best similarity of a new view to its gallery
    usual: float  # median pairwise similarity of its own gallery pictures
    views: tuple[int, ...]  # the new views (1-based) that reach the bar
    files: tuple[str, ...]  # its gallery pictures (to show staff)

    def to_dict(self) -> dict:
        return {"sku": self.sku, "name": self.name, "score": round(self.score, 4),
                "usual": round(self.usual, 4), "views": list(self.views)}


@dataclass(frozen=True)
class EnrolCheck:
    """What :meth:`kiosk.engine.Engine.check_enrolment` found.

    ``crops``: the upright item cut out of each view (None where the view has no single item);
    ``vectors``: their embeddings as stored, as cut and half-turned interleaved (2N, D), or None
    when the views were not embedded (a view without exactly one item); ``agreement``: (N, N)
    view-to-view similarity."""

    views: int
    problems: tuple[ViewProblem, ...] = ()
    lookalikes: tuple[Lookalike, ...] = ()
    crops: tuple[np.ndarray | None, ...] = ()
    vectors: np.ndarray | None = field(default=None, repr=False)
    model_id: str | None = None
    agreement: np.ndarray | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        """Nothing refused (look-alikes may still need confirmation)."""
        return not self.problems

    @property
    def needs_confirmation(self) -> bool:
        return self.ok and bool(self.lookalikes)

    def message(self) -> str:
        if self.problems:
            return "; ".join(p.message() for p in self.problems)
        if self.lookalikes:
            return "looks like " + ", ".join(
                f"{l.sku} {l.name} (similarity {l.score:.2f})" for l in self.lookalikes) + (
                ": confirm that it is a different product")
        return "ok"


class EnrolRefused(ValueError):
    """An enrolment that was refused; ``check`` says why (nothing was stored)."""

    def __init__(self, check: EnrolCheck) -> None:
        super().__init__(check.message())
        self.check = check


class LookalikeNeedsConfirmation(EnrolRefused):
    """The views are a near-duplicate of an existing product: save only with staff's
    confirmation (``confirm_lookalike=True``)."""


def count_problem(view: int, items: int) -> ViewProblem | None:
    """The problem of a view (1-based) with ``items`` items on the tray, if any."""
    if items == 1:
        return None
    return ViewProblem(view, NO_ITEM if items == 0 else SEVERAL_ITEMS, items)


def view_agreement(cut: np.ndarray, turned: np.ndarray) -> np.ndarray:
    """(N, N) similarity of views given their L2-normalised embeddings as cut and half-turned:
    an upright crop is only defined up to a half turn, so a pair counts its better way round."""
    cut = np.asarray(cut, np.float32)
    turned = np.asarray(turned, np.float32)
    s = np.maximum(cut @ cut.T, cut @ turned.T)
    return np.maximum(s, s.T)


def odd_views(agreement: np.ndarray, min_sim: float, gap: float = AGREE_GAP) -> list[int]:
    """Views (0-based) that do not look like the others, worst first.

    The view whose best similarity to the remaining views is lowest is odd when that is below
    ``min_sim``, or (with two or more other views) more than ``gap`` below the best similarity
    among those others; it is then set aside and the rest checked again.  When no two views
    agree, all but the first are named (the first view is the reference)."""
    s = np.array(agreement, np.float64, copy=True)
    np.fill_diagonal(s, -np.inf)
    live = list(range(len(s)))
    odd: list[int] = []
    while len(live) >= 2:
        sub = s[np.ix_(live, live)]
        best = sub.max(axis=1)
        w = max(range(len(live)), key=lambda i: (-best[i], i))
        rest = [i for i in range(len(live)) if i != w]
        ref = sub[np.ix_(rest, rest)].max() if len(rest) >= 2 else -np.inf
        if best[w] < min_sim or best[w] < ref - gap:
            odd.append(live.pop(w))
        else:
            break
    if len(s) >= 2 and len(live) == 1:  # no two views agree: all unlike the first
        return list(range(1, len(s)))
    return odd


def lookalike_floor(threshold: float, usual: float) -> float:
    """The similarity at which new views are a near-duplicate of a product whose own gallery
    pictures agree at ``usual`` (median pairwise)."""
    return max(threshold + LOOKALIKE_ABOVE_THRESHOLD, usual - LOOKALIKE_BELOW_USUAL)


def usual_similarity(vectors: np.ndarray) -> float:
    """Median pairwise similarity of a product's gallery vectors (1.0 for a single one)."""
    v = np.asarray(vectors, np.float32)
    if len(v) < 2:
        return 1.0
    s = v @ v.T
    return float(np.median(s[np.triu_indices(len(v), 1)]))


def problems_from_agreement(agreement: np.ndarray, threshold: float,
                            views: Sequence[int] | None = None) -> list[ViewProblem]:
    """:func:`odd_views` as problems; ``views``: the 1-based view numbers of the rows."""
    views = list(views) if views is not None else list(range(1, len(agreement) + 1))
    s = np.array(agreement, np.float64, copy=True)
    np.fill_diagonal(s, -np.inf)
    out = []
    for i in sorted(odd_views(agreement, threshold - AGREE_BELOW_THRESHOLD)):
        others = [j for j in range(len(s)) if j != i]
        out.append(ViewProblem(views[i], DISAGREES, 1,
                               float(s[i, others].max()) if others else None))
    return out
