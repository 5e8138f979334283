"""Stage 5: from nearest gallery images to a product (or "unknown").

For each item the ``k`` nearest gallery images vote for their product.  A vote weighs
``exp((s - s_top) / temperature)``: an image as close as the best match counts fully, one
0.05 further away about a third, so several near-equal views of one product beat a single
slightly better view of another, while a clearly better match still wins.  (On the dev data
this soft vote lifts accuracy from 0.750 with top-1 to 0.769; a plain similarity-sum vote
drops it to 0.711.)  The winner's score is its best single similarity; below the calibrated
``threshold`` the item is *unknown*, but it is never dropped: it keeps its ranked candidates
so a cashier can pick one.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import math

import numpy as np

from .retrieve import Neighbours

DEFAULT_K = 5
DEFAULT_TEMPERATURE = 0.05
# Cosine similarity below which the default model's best match is called unknown.  Measured
# with ``kiosk eval`` on the dev data (see README, "Thresholds"); a model's own
# ``inference.yml`` may carry a ``threshold`` that overrides it.
DEFAULT_THRESHOLD = 0.5


@dataclass(frozen=True)
class Candidate:
    sku: str
    score: float  # best cosine similarity among this product's gallery images
    votes: float  # soft votes among the top k (see module docstring)


@dataclass(frozen=True)
class Decision:
    sku: str | None  # None when unknown
    score: float
    unknown: bool
    candidates: tuple[Candidate, ...] = field(default=())

    @property
    def best(self) -> Candidate | None:
        return self.candidates[0] if self.candidates else None


class Decider:
    def __init__(self, k: int = DEFAULT_K, threshold: float = DEFAULT_THRESHOLD,
                 max_candidates: int = 5, temperature: float = DEFAULT_TEMPERATURE) -> None:
        if k < 1:
            raise ValueError("k must be at least 1")
        if temperature <= 0:
            raise ValueError("temperature must be positive")
        self.k = k
        self.temperature = float(temperature)
        self.threshold = float(threshold)
        self.max_candidates = max_candidates

    def decide_one(self, ids: np.ndarray, scores: np.ndarray,
                   sku_of: Mapping[int, str]) -> Decision:
        best: dict[str, float] = {}
        votes: dict[str, float] = {}
        top = None
        for gid, s in zip(np.asarray(ids).tolist()[: self.k], np.asarray(scores).tolist()):
            if gid < 0:
                continue
            sku = sku_of.get(int(gid))
            if sku is None:  # row deleted between search and decision
                continue
            top = s if top is None else top
            best[sku] = max(best.get(sku, -1.0), float(s))
            votes[sku] = votes.get(sku, 0.0) + math.exp((s - top) / self.temperature)
        ranked = sorted(best, key=lambda s: (votes[s], best[s]), reverse=True)
        cands = tuple(Candidate(s, best[s], votes[s]) for s in ranked[: self.max_candidates])
        if not cands:
            return Decision(None, 0.0, True, ())
        top = cands[0]
        if top.score < self.threshold:
            return Decision(None, top.score, True, cands)
        return Decision(top.sku, top.score, False, cands)

    def decide(self, neighbours: Neighbours, sku_of: Mapping[int, str]) -> list[Decision]:
        return [self.decide_one(*neighbours.row(i), sku_of) for i in range(len(neighbours))]

