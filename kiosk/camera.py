"""Stage 1: frames from a camera (USB through OpenCV, a video file, an image folder, or the
built-in demo camera), captured in their own thread; the newest frame wins."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Frame:
    image: np.ndarray  # BGR uint8 (H, W, 3)
    index: int  # increases by one per captured frame, across reconnects
    t: float  # time.monotonic() when captured
