"""Stage 2: find every item on the tray.

A detector takes a BGR ``uint8`` image and returns :class:`Detections`.  Backends:

* ``tray`` (default, :mod:`kiosk.detect.tray`): class-agnostic segmentation against a calibrated
  empty-tray image (or the tray colour estimated from the image border).
* ``paddle`` (:mod:`kiosk.detect.paddle`): any PaddleDetection-exported inference model.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class Detections:
    """Items found in one image.

    boxes:  (N, 4) int32, x1, y1, x2, y2 in image pixels, x2/y2 exclusive.
    scores: (N,) float32 confidence in [0, 1].
    masks:  optional per-item boolean masks, each the size of its box (None when the backend
            has no masks).
    """

    boxes: np.ndarray
    scores: np.ndarray
    masks: tuple[np.ndarray, ...] | None = field(default=None)

    def __post_init__(self) -> None:
        boxes = np.asarray(self.boxes, dtype=np.int32).reshape(-1, 4)
        scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        if len(boxes) != len(scores):
            raise ValueError("boxes and scores differ in length")
        if self.masks is not None and len(self.masks) != len(boxes):
            raise ValueError("masks and boxes differ in length")
        object.__setattr__(self, "boxes", boxes)
        object.__setattr__(self, "scores", scores)

    def __len__(self) -> int:
        return len(self.boxes)

    @classmethod
    def empty(cls) -> "Detections":
        return cls(np.zeros((0, 4), np.int32), np.zeros((0,), np.float32), ())

    def crops(self, image: np.ndarray, pad: float = 0.0) -> list[np.ndarray]:
        """Cut each box out of ``image`` (optionally padded by a fraction of the box size)."""
        h, w = image.shape[:2]
        out = []
        for x1, y1, x2, y2 in self.boxes:
            px = int(round((x2 - x1) * pad))
            py = int(round((y2 - y1) * pad))
            a, b = max(0, x1 - px), max(0, y1 - py)
            c, d = min(w, x2 + px), min(h, y2 + py)
            out.append(image[b:d, a:c])
        return out


@runtime_checkable
class Detector(Protocol):
    """A detection backend.  ``name`` identifies it in settings and logs."""

    name: str

    def detect(self, image: np.ndarray) -> Detections: ...


def make_detector(spec: str | None = None, background: np.ndarray | None = None) -> Detector:
    """Build a detector from a settings string.

    ``None`` or ``"tray"``: tray segmentation (``background`` is the calibrated empty tray).
    ``"paddle:DIR"``: a PaddleDetection inference model exported to DIR.
    """
    if spec is None or spec == "tray":
        from .tray import TraySegmenter

        return TraySegmenter(background=background)
    if spec.startswith("paddle:"):
        from .paddle import PaddleDetector

        return PaddleDetector(spec.split(":", 1)[1])
    raise ValueError(f"unknown detector {spec!r}: use 'tray' or 'paddle:MODEL_DIR'")
