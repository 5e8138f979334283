"""Catalogue events: each committed change publishes exactly what changed, after commit;
a change that rolls back publishes nothing."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from kiosk.catalog import Catalog, CatalogEvent
from kiosk.catalog import events as ev
from kiosk.embed import Embeddings, l2_normalize

EAN = "4006381333931"
MODEL = "test-model"


def emb(n: int, seed: int = 0) -> Embeddings:
    return Embeddings(l2_normalize(np.random.default_rng(seed).standard_normal((n, 8))), MODEL)


@pytest.fixture
def cat(tmp_path):
    c = Catalog(tmp_path / "catalog.db")
    c.add_product("a", "Apple", 350)
    c.add_product("b", "Banana", None)
    c.add_gallery_images("a", ["a1.jpg", "a2.jpg"], emb(2))  # gallery ids 1, 2
    c.add_learned_view("a", "p.jpg", source="cashier", status="pending", created_t=1.0)  # id 1
    yield c
    c.close()


class Recorder:
    """Records events, and whether the catalogue's transaction was over when each arrived."""

    def __init__(self, cat: Catalog) -> None:
        self.events: list[CatalogEvent] = []
        self.seen_committed: list[bool] = []
        self._cat = cat

    def __call__(self, event: CatalogEvent) -> None:
        self.events.append(event)
        self.seen_committed.append(not self._cat.conn.in_transaction)

    def close(self) -> None:
        pass


# (change, events it publishes: (kind, skus, ids))
CHANGES = [
    ("add_product", lambda c: c.add_product("c", "Cherry", 100, role="staff"),
     [(ev.PRODUCT_ADDED, ("c",), ())]),
    ("upsert new", lambda c: c.upsert_product("c", "Cherry"),
     [(ev.PRODUCT_ADDED, ("c",), ())]),
    ("upsert name", lambda c: c.upsert_product("a", "Green apple"),
     [(ev.PRODUCT_EDITED, ("a",), ())]),
    ("upsert barcode", lambda c: c.upsert_product("a", barcode=EAN),
     [(ev.PRODUCT_EDITED, ("a",), ())]),
    ("upsert price", lambda c: c.upsert_product("a", price=400),
     [(ev.PRICE, ("a",), ())]),
    ("upsert name+price+active", lambda c: c.upsert_product("a", "A", price=1, active=False),
     [(ev.PRODUCT_EDITED, ("a",), ()), (ev.PRICE, ("a",), ()), (ev.ACTIVATION, ("a",), ())]),
    ("upsert unchanged", lambda c: c.upsert_product("a", "Apple", price=350), []),
    ("set_price", lambda c: c.set_price("a", 420, role="staff"), [(ev.PRICE, ("a",), ())]),
    ("set_price unpriced", lambda c: c.set_price("a", None), [(ev.PRICE, ("a",), ())]),
    ("set_price same", lambda c: c.set_price("a", 350), []),
    ("deactivate", lambda c: c.set_active("a", False, role="staff"),
     [(ev.ACTIVATION, ("a",), ())]),
    ("activate already active", lambda c: c.set_active("a", True), []),
    ("delete", lambda c: c.delete_product("a", role="staff"),
     [(ev.PRODUCT_DELETED, ("a",), (1, 2))]),
    ("delete without views", lambda c: c.delete_product("b"),
     [(ev.PRODUCT_DELETED, ("b",), ())]),
    ("add views", lambda c: c.add_gallery_images("b", ["b1.jpg"], emb(1, 3)),
     [(ev.VIEWS_ADDED, ("b",), (3,))]),
    ("remove views", lambda c: c.remove_gallery_images([2, 99]),
     [(ev.VIEWS_REMOVED, ("a",), (2,))]),
    ("remove nothing", lambda c: c.remove_gallery_images([99]), []),
    ("remove model", lambda c: c.remove_model(MODEL),
     [(ev.VIEWS_REMOVED, ("a",), (1, 2))]),
    ("learn a view", lambda c: c.add_learned_view("b", "q.jpg", source="cashier",
                                                  status="pending", created_t=2.0),
     [(ev.VIEWS_LEARNED, ("b",), (2,))]),
    ("review a learned view", lambda c: c.update_learned_view(1, status="approved"),
     [(ev.VIEWS_LEARNED, ("a",), (1,))]),
    ("words are not an event", lambda c: c.set_gallery_words("a", [("a1.jpg", "a1.jpg", ["x"])],
                                                            "reader"), []),
]


@pytest.mark.parametrize("name, change, expected", CHANGES, ids=[c[0] for c in CHANGES])
def test_each_change_publishes_exactly_its_events_after_commit(cat, name, change, expected):
    rec = Recorder(cat)
    cat.subscribe(rec)
    try:
        change(cat)
        assert [(e.kind, e.skus, e.ids) for e in rec.events] == expected
        assert all(rec.seen_committed)
    finally:
        rec.close()


@pytest.mark.parametrize("name, change, expected", CHANGES, ids=[c[0] for c in CHANGES])
def test_inside_a_transaction_events_wait_for_commit_and_vanish_on_rollback(
        cat, name, change, expected):
    rec = Recorder(cat)
    cat.subscribe(rec)
    try:
        with pytest.raises(RuntimeError):
            with cat.transaction():
                change(cat)
                assert rec.events == []  # not before the commit
                raise RuntimeError("roll back")
        assert rec.events == []  # nothing on rollback
        with cat.transaction():
            change(cat)
            assert rec.events == []
        assert [(e.kind, e.skus, e.ids) for e in rec.events] == expected
        assert all(rec.seen_committed)
    finally:
        rec.close()


def test_subscriber_sees_the_committed_rows(cat):
    other = Catalog(cat.path)  # another connection: sees only what committed
    seen = []
    cat.subscribe(lambda e: seen.append(other.get_product("a").price))
    try:
        cat.set_price("a", 999)
        assert seen == [999]
    finally:
        other.close()


def test_rolled_back_savepoint_drops_only_its_events(cat):
    got = []
    cat.subscribe(got.append)
    with cat.transaction():
        cat.set_price("a", 1)
        with pytest.raises(ValueError):
            with cat.transaction():
                cat.set_price("b", 2)
                raise ValueError
    assert [(e.kind, e.skus) for e in got] == [(ev.PRICE, ("a",))]


def test_unsubscribe_and_a_failing_subscriber(cat, caplog):
    got = []

    def broken(_e):
        raise RuntimeError("listener bug")

    cat.subscribe(broken)
    stop = cat.subscribe(got.append)
    cat.set_price("a", 1)  # the change stands and the other listener still hears it
    assert cat.get_product("a").price == 1 and len(got) == 1
    assert "listener bug" in caplog.text
    stop()
    stop()
    cat.set_price("a", 2)
    assert len(got) == 1


def test_event_is_small_and_frozen():
    e = CatalogEvent(ev.PRICE, ("a",))
    with pytest.raises(AttributeError):
        e.kind = ev.PRODUCT_ADDED  # type: ignore[misc]
    with pytest.raises(ValueError):
        CatalogEvent("nonsense")


def test_subscribers_run_outside_the_catalogue_lock(cat):
    """A listener may read the catalogue from another thread while it runs (no deadlock)."""
    read = []

    def listener(_e):
        t = threading.Thread(target=lambda: read.append(cat.get_product("a").price))
        t.start()
        t.join(5)

    cat.subscribe(listener)
    cat.set_price("a", 7)
    assert read == [7]
