"""The embedding stage's shared types: :class:`Embeddings` (vectors with the model that made
them), the :class:`Embedder` protocol and :func:`l2_normalize`.  :mod:`kiosk.embed` re-exports
them; the backends import them from here."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class Embeddings:
    """vectors: (N, D) float32, each row L2-normalised.  model_id: the model that made them."""

    vectors: np.ndarray
    model_id: str

    def __post_init__(self) -> None:
        v = np.ascontiguousarray(self.vectors, dtype=np.float32)
        if v.ndim != 2:
            raise ValueError("vectors must be 2-D")
        object.__setattr__(self, "vectors", v)

    def __len__(self) -> int:
        return len(self.vectors)

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]


@runtime_checkable
class Embedder(Protocol):
    model_id: str  # "<name>@<version>", changes whenever the weights change
    dim: int

    def embed(self, crops: Sequence[np.ndarray]) -> Embeddings:
        """Embed BGR uint8 crops (any sizes).  Returns one normalised row per crop."""
        ...


def l2_normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(n, eps)
