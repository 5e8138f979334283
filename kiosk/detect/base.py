"""The detection stage's shared types: :class:`Detections` (the items found in one image, cut
out by :func:`item_crop`) and the :class:`Detector` protocol the backends
(:mod:`kiosk.detect.tray`, :mod:`kiosk.detect.paddle`) implement.  :mod:`kiosk.detect`
re-exports them."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import cv2
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

    def crops(self, image: np.ndarray, normalize: bool = True) -> list[np.ndarray]:
        """One image per item, ready to embed.

        With masks and ``normalize`` each item is cut out by :func:`item_crop` (background
        neutral grey, turned upright), so neither the tray, a touching neighbour nor the angle
        at which the shopper put it down changes its embedding.  Otherwise the plain box.
        """
        if normalize and self.masks is not None:
            return [item_crop(image, b, m) for b, m in zip(self.boxes, self.masks)]
        return [image[y1:y2, x1:x2] for x1, y1, x2, y2 in self.boxes]

    def largest(self) -> int:
        """Index of the item with the largest box (raises on no detections)."""
        if not len(self):
            raise ValueError("no item found")
        b = self.boxes.astype(np.int64)
        return int(np.argmax((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])))


@runtime_checkable
class Detector(Protocol):
    """A detection backend.  ``name`` identifies it in settings and logs."""

    name: str

    def detect(self, image: np.ndarray) -> Detections: ...


FILL_VALUE = 128  # neutral grey around a cut-out item


def item_crop(image: np.ndarray, box, mask: np.ndarray | None, *,
              fill: int = FILL_VALUE, margin: float = 0.04) -> np.ndarray:
    """Cut an item out of a tray image and turn it upright.

    ``mask`` is the item's box-sized boolean mask.  Pixels outside the (slightly dilated) mask
    become ``fill``; the crop is rotated so that the sides of the item's minimum-area rectangle
    are axis-aligned with the long side vertical.  Gallery images enrolled from the tray go
    through the same function, so query and gallery views agree up to a half turn, which
    several enrolled views cover.
    """
    x1, y1, x2, y2 = (int(v) for v in box)
    crop = np.ascontiguousarray(image[y1:y2, x1:x2])
    if mask is None or crop.size == 0:
        return crop
    m = np.asarray(mask, dtype=np.uint8)
    if m.shape != crop.shape[:2]:
        raise ValueError(f"mask {m.shape} does not match box {crop.shape[:2]}")
    grow = max(1, int(round(0.01 * max(m.shape))))
    m = cv2.dilate(m, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1,) * 2))
    cut = crop.copy()
    cut[m == 0] = fill
    pts = cv2.findNonZero(m)
    if pts is None:
        return cut
    (cx, cy), (rw, rh), angle = cv2.minAreaRect(pts)
    if rw > rh:  # long side vertical
        angle += 90.0
        rw, rh = rh, rw
    pad = margin * max(rw, rh)
    out_w, out_h = max(1, int(round(rw + 2 * pad))), max(1, int(round(rh + 2 * pad)))
    rot = cv2.getRotationMatrix2D((cx, cy), angle, 1.0)
    rot[0, 2] += out_w / 2.0 - cx
    rot[1, 2] += out_h / 2.0 - cy
    border = (fill,) * (cut.shape[2] if cut.ndim == 3 else 1)
    return cv2.warpAffine(cut, rot, (out_w, out_h), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=border)
