"""Calls for the cashier, and the one in-process channel on which they are published.

A call is opened by the shopper (the *Call the cashier* button) or by the checkout itself when
an item is unknown, unsure between products of different prices, or unpriced.  Each call is
stored in the catalogue (table ``calls``: reason, when it was opened, when and by whom it was
resolved) and published on :class:`CallBoard`.

The channel (for a store's attendant station, a pager, a light on the kiosk pole):

* ``board.subscribe(fn)`` registers ``fn(event: CallEvent)``; it returns a function that
  unsubscribes.  ``fn`` is called synchronously in the thread that opened or resolved the call
  (the recognition worker or the GUI thread): a subscriber that needs a particular thread
  hands the event over itself (the window does so through a Qt signal).  An exception in a
  subscriber is logged and does not reach the checkout.
* ``CallEvent.kind`` is ``"opened"`` or ``"resolved"``; ``CallEvent.call`` is a :class:`Call`.
* ``board.open_calls()`` lists the calls still open (e.g. for a subscriber that starts late).

No Qt here.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Callable

log = logging.getLogger(__name__)

#: why the cashier is called
REASONS = ("shopper", "unknown", "unsure", "unpriced", "camera", "printer")


@dataclass(frozen=True)
class Call:
    id: int
    reason: str
    detail: str | None
    opened_at: str  # ISO 8601, UTC
    resolved_at: str | None = None
    resolved_by: str | None = None  # a cashier's id; None when the system closed it
    resolution: str | None = None  # "attended", "cleared", "paid", "reset", ...

    @property
    def open(self) -> bool:
        return self.resolved_at is None


@dataclass(frozen=True)
class CallEvent:
    kind: str  # "opened" | "resolved"
    call: Call


def _call(row: dict) -> Call:
    return Call(int(row["id"]), row["reason"], row["detail"], row["opened_at"],
                row["resolved_at"], row["resolved_by"], row["resolution"])


class CallBoard:
    """The calls of one kiosk, stored in ``catalog`` and published to subscribers."""

    def __init__(self, catalog) -> None:
        self.catalog = catalog
        self._lock = threading.RLock()
        self._subscribers: list[Callable[[CallEvent], None]] = []

    # ------------------------------------------------------------ channel
    def subscribe(self, fn: Callable[[CallEvent], None]) -> Callable[[], None]:
        with self._lock:
            self._subscribers.append(fn)

        def unsubscribe() -> None:
            with self._lock:
                if fn in self._subscribers:
                    self._subscribers.remove(fn)

        return unsubscribe

    def _publish(self, event: CallEvent) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for fn in subscribers:
            try:
                fn(event)
            except Exception:  # noqa: BLE001 - a broken subscriber must not stop the checkout
                log.exception("a call subscriber failed on %s", event)

    # -------------------------------------------------------------- calls
    def get(self, call_id: int) -> Call | None:
        row = self.catalog.get_call(call_id)
        return _call(row) if row else None

    def open_calls(self) -> list[Call]:
        return [_call(r) for r in self.catalog.calls(open_only=True)]

    def history(self, limit: int = 200) -> list[Call]:
        return [_call(r) for r in self.catalog.calls(limit=limit)]

    def open(self, reason: str, detail: str | None = None) -> Call:
        """Open a call (stored, audited, published); the one already open for the same reason
        is returned instead of a second one."""
        if reason not in REASONS:
            raise ValueError(f"call reason must be one of {', '.join(REASONS)}; got {reason!r}")
        with self._lock:
            for c in self.open_calls():
                if c.reason == reason:
                    return c
            call_id = self.catalog.open_call(reason, detail)
            call = self.get(call_id)
        log.info("call %d opened: %s %s", call.id, reason, detail or "")
        self._publish(CallEvent("opened", call))
        return call

    def resolve(self, call_id: int, *, by: str | None, resolution: str) -> Call | None:
        """Close a call; None when it was not open."""
        with self._lock:
            role = "cashier" if by else "system"
            if not self.catalog.resolve_call(call_id, by=by, resolution=resolution, role=role):
                return None
            call = self.get(call_id)
        log.info("call %d resolved (%s) by %s", call.id, resolution, by or "the system")
        self._publish(CallEvent("resolved", call))
        return call

    def resolve_all(self, *, by: str | None, resolution: str,
                    reasons: tuple[str, ...] | None = None) -> list[Call]:
        """Close every open call (of ``reasons``, or all)."""
        out = []
        for c in self.open_calls():
            if reasons is None or c.reason in reasons:
                done = self.resolve(c.id, by=by, resolution=resolution)
                if done is not None:
                    out.append(done)
        return out
