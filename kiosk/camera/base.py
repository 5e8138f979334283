"""The camera stage's shared types: a captured :class:`Frame`, the :class:`Camera` protocol every
source implements and :class:`CameraError`.  (The sources and the capture thread are in
:mod:`kiosk.camera`, the demo camera in :mod:`kiosk.camera.demo`; both import these.)"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class Frame:
    image: np.ndarray  # BGR uint8 (H, W, 3)
    index: int  # increases by one per captured frame, across reconnects
    t: float  # time.monotonic() when captured
    repeat: bool = False  # the very same picture as the frame before (a frozen stream)


class CameraError(RuntimeError):
    """A camera cannot be opened, or went away while reading."""


@runtime_checkable
class Camera(Protocol):
    name: str

    def open(self) -> None:
        """Open the device / file; raises :class:`CameraError` with a clear message."""

    def read(self) -> np.ndarray | None:
        """The next image (BGR uint8), or None when there is no frame right now.

        Raises :class:`CameraError` when the device is gone."""

    def close(self) -> None:
        """Release the device (safe to call twice)."""
