"""Stage 2: find every item on the tray.

A detector takes a BGR ``uint8`` image and returns :class:`Detections`.  Backends:

* ``tray`` (default, :mod:`kiosk.detect.tray`): class-agnostic segmentation against a calibrated
  empty-tray image (or the tray colour estimated from the image border).
* ``paddle`` (:mod:`kiosk.detect.paddle`): any PaddleDetection-exported inference model.
"""
from __future__ import annotations

import numpy as np

# the stage's types and the item cut-out, shared with the backends
from kiosk.detect.base import FILL_VALUE, Detections, Detector, item_crop  # noqa: F401


def make_detector(spec: str | None = None, background: np.ndarray | None = None) -> Detector:
    """Build a detector from a settings string.

    ``None`` or ``"tray"``: tray segmentation (``background`` is the calibrated empty tray).
    ``"paddle:DIR"``: a PaddleDetection inference model exported to DIR.
    """
    if spec is None or spec == "tray":
        from kiosk.detect.tray import TraySegmenter

        return TraySegmenter(background=background)
    if spec.startswith("paddle:"):
        from kiosk.detect.paddle import PaddleDetector

        return PaddleDetector(spec.split(":", 1)[1])
    raise ValueError(f"unknown detector {spec!r}: use 'tray' or 'paddle:MODEL_DIR'")
