"""A checkout in progress: from camera frames to a live, correctable basket.

:class:`CheckoutSession` is what the recognition worker runs (no Qt here).  It recognises when the
tray has settled, not on every frame; keeps each item's identity across frames (an item that did
not move is not embedded again); resolves unknown items by barcode; applies the cashier's
corrections; and turns the items into a receipt.  The GUI only displays :class:`SessionState`
and calls the intent methods (``override``, ``remove``, ``set_qty``, ``finish``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .basket import Receipt


@dataclass(frozen=True)
class ItemCandidate:
    sku: str
    name: str
    price: int | None  # fen
    score: float


@dataclass(frozen=True)
class TrackedItem:
    """One item on the tray as the shopper and cashier see it."""

    track_id: int  # stable while the item stays on the tray
    box: tuple[int, int, int, int]  # x1, y1, x2, y2 in frame pixels
    sku: str | None  # None = unknown (needs the cashier)
    name: str | None
    price: int | None  # unit price in fen, None when unknown or unpriced
    score: float
    unknown: bool
    candidates: tuple[ItemCandidate, ...] = ()
    source: str = "recognized"  # "recognized" | "barcode" | "cashier"
    qty: int = 1


@dataclass(frozen=True)
class SessionState:
    """Everything the shopper view shows, as of one processed frame."""

    frame_index: int
    settled: bool  # False while things move on the tray (the view keeps the last items)
    items: tuple[TrackedItem, ...]
    receipt: Receipt
    needs_cashier: bool  # some item is unknown or unpriced
    timings_ms: dict = field(default_factory=dict)
