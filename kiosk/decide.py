"""Stage 5: from nearest gallery images to a product (or "unknown").

For each item the ``k`` nearest gallery images vote for their product.  A vote weighs
``exp((s - s_top) / temperature)``: an image as close as the best match counts fully, one
0.05 further away about a third, so several near-equal views of one product beat a single
slightly better view of another, while a clearly better match still wins.  (On the dev data
this soft vote lifts accuracy from 0.750 with top-1 to 0.769; a plain similarity-sum vote
drops it to 0.711.)  The winner's score is its best single similarity; below the calibrated
``threshold`` the item is *unknown*, but it is never dropped: it keeps its ranked candidates
so a cashier can pick one.

Look-alike products (two flavours of one drink) can come out within a few hundredths of each
other.  When products this close are in the running and one of them has enrolled pack text,
:meth:`Decider.refine_with_text` adds ``text_weight`` times how well the words read on the
item fit each product (:mod:`kiosk.text`) to its similarity and re-ranks those close ones.  On the
held-out split this took unseen-but-enrolled products from 0.808 to 0.836 top-1 and known
ones from 0.839 to 0.845 (README, "Pack text").
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Mapping, Sequence

import math

import numpy as np

from kiosk.retrieve import Neighbours

DEFAULT_K = 5
DEFAULT_TEMPERATURE = 0.05
# Cosine similarity below which the default model's best match is called unknown.  Measured
# with ``kiosk eval`` on the dev data (see README, "Thresholds"); a model's own
# ``inference.yml`` may carry a ``threshold`` that overrides it.
DEFAULT_THRESHOLD = 0.5
# Pack text: products within TEXT_SPREAD of the best similarity are re-ranked by similarity +
# TEXT_WEIGHT x how well the pack's words fit them (kiosk.text.TextProfiles.score).  On the
# held-out split spread 0.05 / 0.1 / 0.2 read 17 / 35 / 66 % of the items, with no gain beyond
# 0.1; weight 0.1 / 0.2 / 0.3 gave 0.826 / 0.845 / 0.845 top-1 on known products.
TEXT_WEIGHT = 0.2
TEXT_SPREAD = 0.1
# the words may overrule the pictures without asking only when the pictures' winner is at
# most this much closer than the words' winner (README, "Pack text" under "Asking")
TEXT_OVERRULE = 0.02
# neighbours looked at per item: the first k vote, the rest fill the cashier's list of
# distinct products and measure the margin to the best other product
SEARCH_K = 30


@dataclass(frozen=True)
class Candidate:
    sku: str
    score: float  # best cosine similarity among this product's gallery images
    votes: float  # soft votes among the top k (see module docstring)
    # the model's own best similarity, when ``score`` is the store's adapted one (kiosk.adapt)
    model_score: float | None = None


@dataclass(frozen=True)
class Decision:
    sku: str | None  # None when unknown
    score: float
    unknown: bool
    candidates: tuple[Candidate, ...] = field(default=())
    words: tuple[str, ...] = ()  # words read on the item, when its pack was read
    by_text: bool = False  # the pack's text changed the winner
    # the winner's best similarity less the best similarity of any other product (inf when
    # no other product was near): how clearly the pictures tell it from its look-alikes
    margin: float = float("inf")
    unsure: bool = False  # recognised, but another product is too close to charge it blindly
    text_settled: bool = False  # the pack's words single out the winner among close ones

    @property
    def best(self) -> Candidate | None:
        return self.candidates[0] if self.candidates else None


class Decider:
    def __init__(self, k: int = DEFAULT_K, threshold: float = DEFAULT_THRESHOLD,
                 max_candidates: int = 5, temperature: float = DEFAULT_TEMPERATURE,
                 text_weight: float = TEXT_WEIGHT, text_spread: float = TEXT_SPREAD,
                 unsure_margin: float = 0.0, search_k: int = SEARCH_K,
                 product_floor: float | None = None) -> None:
        if k < 1:
            raise ValueError("k must be at least 1")
        if not 0.0 <= unsure_margin <= 1.0:
            raise ValueError("unsure_margin must be in [0, 1]")
        # the k nearest vote; up to search_k are looked at so that the cashier's list and
        # the margin see the best other products too (a product has several views)
        self.search_k = max(int(k), int(search_k))
        self.unsure_margin = float(unsure_margin)
        # per-product thresholds: a product is only called when its best similarity reaches
        # its own usual similarity (median, over its views, of the best similarity to its
        # other views) less ``product_floor``; ``floors`` (sku -> that threshold, e.g. a
        # :class:`ProductFloors`) is kept by the engine.  None: the global threshold only.
        if product_floor is not None and not -1.0 <= product_floor <= 1.0:
            raise ValueError("product_floor must be in [-1, 1]")
        self.product_floor = product_floor
        self.floors: Mapping[str, float] | None = None
        if temperature <= 0:
            raise ValueError("temperature must be positive")
        self.k = k
        self.temperature = float(temperature)
        self.threshold = float(threshold)
        self.max_candidates = max_candidates
        if text_weight < 0 or text_spread < 0:
            raise ValueError("text_weight and text_spread must not be negative")
        self.text_weight = float(text_weight)
        self.text_spread = float(text_spread)

    def decide_one(self, ids: np.ndarray, scores: np.ndarray,
                   sku_of: Mapping[int, str], model_scores: np.ndarray | None = None
                   ) -> Decision:
        best: dict[str, float] = {}
        best_model: dict[str, float] = {}
        votes: dict[str, float] = {}
        top = None
        n_voting = 0
        raw = (np.asarray(model_scores).tolist() if model_scores is not None
               else [None] * len(ids))
        for gid, s, m in zip(np.asarray(ids).tolist(), np.asarray(scores).tolist(), raw):
            if gid < 0:
                continue
            sku = sku_of.get(int(gid))
            if sku is None:  # row deleted between search and decision
                continue
            top = s if top is None else top
            best[sku] = max(best.get(sku, -1.0), float(s))
            if m is not None:
                best_model[sku] = max(best_model.get(sku, -1.0), float(m))
            if n_voting < self.k:
                votes[sku] = votes.get(sku, 0.0) + math.exp((s - top) / self.temperature)
                n_voting += 1
        # voters first (by their votes), then the other near products by similarity
        ranked = sorted(best, key=lambda s: (votes.get(s, 0.0), best[s]), reverse=True)
        cands = tuple(Candidate(s, best[s], votes.get(s, 0.0), best_model.get(s))
                      for s in ranked[: self.max_candidates])
        if not cands:
            return Decision(None, 0.0, True, ())
        top = cands[0]
        margin = top.score - max((best[s] for s in best if s != top.sku), default=-math.inf)
        if self.below(top):
            return Decision(None, top.score, True, cands, margin=margin)
        return Decision(top.sku, top.score, False, cands, margin=margin,
                        unsure=margin < self.unsure_margin)

    def below(self, c: Candidate) -> bool:
        """Whether candidate ``c`` is too far to be called: under the global threshold, or
        (per-product thresholds, when set) under its product's own.  A product's own threshold
        comes from the model's similarity between its views, so it is compared with the
        model's similarity (``model_score``) when the score is the store's adapted one: the
        adaptation learned from those very views, which look closer to each other there than a
        new picture will."""
        if c.score < self.threshold:
            return True
        if self.product_floor is None or self.floors is None:
            return False
        floor = self.floors.get(c.sku)
        own = c.model_score if c.model_score is not None else c.score
        return floor is not None and own < floor

    def decide(self, neighbours: Neighbours, sku_of: Mapping[int, str]) -> list[Decision]:
        return [self.decide_one(*neighbours.row(i), sku_of, neighbours.model_row(i))
                for i in range(len(neighbours))]


    def text_contenders(self, d: Decision) -> tuple[Candidate, ...]:
        """The candidates whose similarity is within ``text_spread`` of the best one, when
        there are at least two and the item is not unknown (else none: text cannot help)."""
        if d.unknown or len(d.candidates) < 2 or self.text_weight == 0:
            return ()
        top = max(c.score for c in d.candidates)
        close = tuple(c for c in d.candidates if c.score >= top - self.text_spread)
        return close if len(close) >= 2 else ()

    def refine_with_text(self, d: Decision, text_scores: Mapping[str, float | None],
                         words: tuple[str, ...] = ()) -> Decision:
        """Re-rank :meth:`text_contenders` by similarity + ``text_weight`` x text score
        (``text_scores``: product -> share of its enrolled words read on the item, None when
        there is no text to compare).  Ties keep the vote's order; the winner must still reach
        the threshold by its similarity."""
        close = self.text_contenders(d)
        if not close or not any(text_scores.get(c.sku) for c in close):
            return replace(d, words=tuple(words))
        fused = {c.sku: c.score + self.text_weight * (text_scores.get(c.sku) or 0.0)
                 for c in close}
        win = max(close, key=lambda c: fused[c.sku])  # max keeps the first of equals
        # the words single the winner out: its text score beats every other close product's
        own = text_scores.get(win.sku) or 0.0
        settled = own > 0 and all((text_scores.get(c.sku) or 0.0) < own
                                  for c in close if c.sku != win.sku)
        if win.sku == d.candidates[0].sku:
            return replace(d, words=tuple(words), text_settled=settled,
                           unsure=d.unsure and not settled)
        cands = (win,) + tuple(c for c in d.candidates if c.sku != win.sku)
        margin = win.score - max(c.score for c in d.candidates if c.sku != win.sku)
        if self.below(win):
            return Decision(None, win.score, True, cands, tuple(words), True, margin)
        # The words overrule the pictures here.  On the held-out split such turns were right
        # 11 times in 18 (a pack read as its organic twin's, an oat drink as the brand's oat
        # yoghurt), but 7 in 8 when the pictures were within TEXT_OVERRULE of a tie: beyond
        # that, a kiosk that asks when unsure (unsure_margin > 0) asks.
        ask = self.unsure_margin > 0 and margin < -TEXT_OVERRULE
        settled = settled and not ask
        return Decision(win.sku, win.score, False, cands, tuple(words), True, margin,
                        unsure=ask or (not settled and margin < self.unsure_margin),
                        text_settled=settled)


def usual_similarity(vectors: np.ndarray, views: Sequence) -> float | None:
    """A product's usual similarity to itself: the median, over its views, of a view's best
    similarity to the product's other views (any of its rows against any of theirs, as a query
    meets them; rows of one view, e.g. an item stored as cut and half-turned, never count as
    each other's match); None with fewer than two views."""
    v = np.asarray(vectors, np.float32)
    views = list(views)
    keys = list(dict.fromkeys(views))
    if len(keys) < 2:
        return None
    sims = v @ v.T
    same = np.array([[a == b for b in views] for a in views])
    sims[same] = -np.inf
    best_row = sims.max(axis=1)
    return float(np.median([max(best_row[i] for i, g in enumerate(views) if g == k)
                            for k in keys]))


class ProductFloors(Mapping):
    """sku -> per-product threshold (its :func:`usual_similarity` less ``delta``), computed on
    demand from ``views_of(sku) -> (vectors, view keys)`` and cached until
    :meth:`invalidate`."""

    def __init__(self, delta: float, views_of: Callable[[str], tuple[np.ndarray, Sequence]]
                 ) -> None:
        self.delta = float(delta)
        self._views_of = views_of
        self._cache: dict[str, float | None] = {}

    def __getitem__(self, sku: str) -> float:
        if sku not in self._cache:
            vectors, views = self._views_of(sku)
            usual = usual_similarity(vectors, views) if len(views) else None
            self._cache[sku] = None if usual is None else usual - self.delta
        value = self._cache[sku]
        if value is None:
            raise KeyError(sku)
        return value

    def __iter__(self):
        return iter(k for k, v in self._cache.items() if v is not None)

    def __len__(self) -> int:
        return sum(1 for v in self._cache.values() if v is not None)

    def invalidate(self, skus: Sequence[str] | None = None) -> None:
        if skus is None:
            self._cache.clear()
        else:
            for sku in skus:
                self._cache.pop(sku, None)
