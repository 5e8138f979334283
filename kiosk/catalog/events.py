"""What changed in the catalogue, told to whoever listens, once it has committed.

The catalogue publishes a :class:`CatalogEvent` for each change (a product added, edited or
deleted, a price, a product put on or taken off sale, gallery views added or removed, a view
learned at the till) through :meth:`Events.subscribe`.  Events are handed out by the
catalogue's after-commit hooks (:meth:`kiosk.catalog.database.Database.after_commit`): a
subscriber never sees a change that was not committed, and a change that rolls back publishes
nothing.  Qt-free: a widget that listens relays the event to its own thread (see
:class:`kiosk.ui.controller.KioskController`).

Subscribers are called on the thread that committed, outside the catalogue's lock, in the
order they subscribed; one that raises is logged and the others still hear the event.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Iterable

log = logging.getLogger(__name__)

PRODUCT_ADDED = "product_added"
PRODUCT_EDITED = "product_edited"  # name, barcode or currency
PRODUCT_DELETED = "product_deleted"  # ids: its gallery rows (deleted with it)
PRICE = "price"
ACTIVATION = "activation"  # put on sale or taken off sale
VIEWS_ADDED = "views_added"  # ids: new gallery rows; model_id: whose embeddings they are
VIEWS_REMOVED = "views_removed"  # ids: gallery rows gone
VIEWS_LEARNED = "views_learned"  # ids: learned_views rows added or reviewed

KINDS = (PRODUCT_ADDED, PRODUCT_EDITED, PRODUCT_DELETED, PRICE, ACTIVATION,
         VIEWS_ADDED, VIEWS_REMOVED, VIEWS_LEARNED)


@dataclass(frozen=True)
class CatalogEvent:
    """One committed change: its ``kind`` (one of :data:`KINDS`), the products it touched and
    the row ids it is about (gallery rows; learned views for :data:`VIEWS_LEARNED`)."""

    kind: str
    skus: tuple[str, ...] = ()
    ids: tuple[int, ...] = ()
    model_id: str | None = None  # for gallery rows: the model that made their embeddings

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown catalogue event {self.kind!r}")


Subscriber = Callable[[CatalogEvent], None]


class Events:
    """Part of :class:`kiosk.catalog.Catalog`: publish/subscribe of committed changes."""

    def subscribe(self, fn: Subscriber) -> Callable[[], None]:
        """Call ``fn(event)`` after each committed change; returns a function that stops it
        (calling it twice is harmless)."""
        with self._event_lock:
            self._event_subscribers.append(fn)

        def unsubscribe() -> None:
            with self._event_lock:
                if fn in self._event_subscribers:
                    self._event_subscribers.remove(fn)

        return unsubscribe

    def _publish(self, kind: str, skus: Iterable[str] = (), ids: Iterable[int] = (),
                 model_id: str | None = None) -> None:
        """Queue an event for when the current transaction commits (at once outside one)."""
        event = CatalogEvent(kind, tuple(skus), tuple(int(i) for i in ids), model_id)
        self.after_commit(lambda: self._deliver(event))

    def _deliver(self, event: CatalogEvent) -> None:
        with self._event_lock:
            subscribers = list(self._event_subscribers)
        for fn in subscribers:
            try:
                fn(event)
            except Exception:  # noqa: BLE001 - one listener's failure is not the change's
                log.exception("catalogue event %s: subscriber %r failed", event.kind, fn)
