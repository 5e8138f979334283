"""Stage 5: from nearest gallery images to a product (or "unknown").

For each item the ``k`` nearest gallery images vote for their product, each vote weighted by
its cosine similarity.  The winner's score is its best single similarity; below the calibrated
``threshold`` the item is *unknown*, but it is never dropped: it keeps its ranked candidates
so a cashier can pick one.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from .retrieve import Neighbours

DEFAULT_K = 5
# Cosine similarity below which the default model's best match is called unknown.  Measured
# with ``kiosk eval`` on the dev data (see README, "Thresholds"); a model's own
# ``inference.yml`` may carry a ``threshold`` that overrides it.
DEFAULT_THRESHOLD = 0.5


@dataclass(frozen=True)
class Candidate:
    sku: str
    score: float  # best cosine similarity among this product's gallery images
    votes: float  # similarity-weighted votes among the top k


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
                 max_candidates: int = 5) -> None:
        if k < 1:
            raise ValueError("k must be at least 1")
        self.k = k
        self.threshold = float(threshold)
        self.max_candidates = max_candidates

    def decide_one(self, ids: np.ndarray, scores: np.ndarray,
                   sku_of: Mapping[int, str]) -> Decision:
        best: dict[str, float] = {}
        votes: dict[str, float] = {}
        for gid, s in zip(np.asarray(ids).tolist()[: self.k], np.asarray(scores).tolist()):
            if gid < 0:
                continue
            sku = sku_of.get(int(gid))
            if sku is None:  # row deleted between search and decision
                continue
            best[sku] = max(best.get(sku, -1.0), float(s))
            votes[sku] = votes.get(sku, 0.0) + max(float(s), 0.0)
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

