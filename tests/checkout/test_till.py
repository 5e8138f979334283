"""A till that can be trusted (the recognition core, no Qt): the checkout's phases table-driven
over every transition, who may change the bill, calls for the cashier, cashier badges shown to
the camera, and items that keep their identity when nudged.  Real engine, real catalogue.

Every table row ends with the money: when the state is payable, its receipt is exactly what
the current picture shows; when it is not, ``finish()`` refuses and stores nothing.
"""
from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from kiosk.demo import scenes as demo
from kiosk.assemble import checkout_session
from kiosk.checkout.calls import CallBoard
from kiosk.camera import Frame
from kiosk.checkout.cashier_auth import CashierAuth
from kiosk.engine import Engine
from kiosk.checkout.session import (
    LIVE,
    NO_CAMERA,
    NO_PICTURE,
    SETTLED,
    SETTLING,
    STALE,
    CashierRequired,
    CheckoutBlocked,
    ItemGone,
)

A = ("DEMO-001", 250, 220, 10)  # cola ¥3.50
B = ("DEMO-006", 300, 520, -20)  # oreo ¥6.00
C = ("DEMO-010", 700, 360, 30)  # dove ¥12.90
D = ("DEMO-011", 1050, 200, 75)  # red bull ¥6.00
A_NUDGED = ("DEMO-001", 290, 250, 22)  # A pushed 50 px and turned 12 degrees
BADGE = "KIOSK-BADGE-C001-7f3a"
CASHIER = SimpleNamespace(id="C001", name="王芳")


def tray(*items, badge: str | None = None) -> np.ndarray:
    image = demo.render_tray(list(items)).image
    if badge:
        image = badge_card(image, badge, 1000, 520)
    return image


def badge_card(image: np.ndarray, text: str, cx: int, cy: int) -> np.ndarray:
    """A white staff card with a QR code of ``text``, lying on the tray at (cx, cy)."""
    qr = cv2.QRCodeEncoder.create().encode(text)
    qr = cv2.resize(qr, None, fx=5, fy=5, interpolation=cv2.INTER_NEAREST)
    card = np.full((qr.shape[0] + 60, qr.shape[1] + 60, 3), 250, np.uint8)
    card[30:30 + qr.shape[0], 30:30 + qr.shape[1]] = qr[..., None]
    out = image.copy()
    h, w = card.shape[:2]
    out[cy - h // 2:cy - h // 2 + h, cx - w // 2:cx - w // 2 + w] = card
    return out


class Now:
    """The session's monotonic clock, moved by hand."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class Feeder:
    """Feeds frames (index and capture time increasing) and moves the session clock along."""

    def __init__(self, session, now: Now) -> None:
        self.session, self.now, self.index = session, now, 0

    def feed(self, image: np.ndarray, n: int = 1, dt: float = 0.1) -> list:
        states = []
        for _ in range(n):
            s = self.session.process(Frame(image, self.index, self.now.t))
            self.index += 1
            self.now.t += dt
            if s is not None:
                states.append(s)
        return states

    def show(self, image: np.ndarray):
        """Until ``image`` is recognised and settled (at most 1.5 s of frames)."""
        states = [s for s in self.feed(image, 15) if s.phase == SETTLED]
        assert states, "the tray never settled"
        return self.session.state


@pytest.fixture
def engine(tmp_path, copy_demo_db, embedder):
    e = Engine.open(copy_demo_db(tmp_path / "store"), embedder=embedder)
    yield e
    e.close()


@pytest.fixture
def kiosk(engine):
    """(session, feeder, clock) wired as the kiosk wires it, with one cashier account."""
    now = Now()
    auth = CashierAuth(engine.catalog)
    auth.add("C001", "王芳", "246810", badge=BADGE, role="staff")
    session = checkout_session(engine, settle_ms=300, clock=now, frozen_after_s=3.0,
                               max_sale_age_s=10.0, attendant_timeout_s=60.0)
    return session, Feeder(session, now), now


def receipt_of(state) -> Counter:
    return Counter({line.sku: line.qty for line in state.receipt.lines})


def truth(*items) -> Counter:
    return Counter(sku for sku, *_ in items)


# ------------------------------------------------------------------ the phases, table-driven
# (name, steps, phase after, payable after, what the receipt must show when payable)
# steps: ("show", items) until recognised; ("feed", items, n) n frames; ("status", s) the
# capture's status; ("frozen", s) the capture says the picture has not changed for s seconds;
# ("switch",) another camera; ("wait", s) time passes with no frame at all
TRANSITIONS = [
    ("nothing seen yet", [], LIVE, False, None),
    ("a still tray is recognised", [("show", (A, B))], SETTLED, True, (A, B)),
    ("items moving", [("show", (A, B)), ("feed", (A_NUDGED, B), 1)], SETTLING, False, None),
    ("moved, then still again", [("show", (A, B)), ("feed", (A_NUDGED, B), 1),
                                 ("show", (A_NUDGED, B))], SETTLED, True, (A_NUDGED, B)),
    ("an item added", [("show", (A,)), ("show", (A, C))], SETTLED, True, (A, C)),
    ("an item taken off", [("show", (A, C)), ("show", (C,))], SETTLED, True, (C,)),
    ("camera lost", [("show", (A, B)), ("status", "lost")], NO_CAMERA, False, None),
    ("camera stopped", [("show", (A, B)), ("status", "stopped")], NO_CAMERA, False, None),
    ("only unusable frames", [("show", (A, B)), ("status", "bad")], NO_PICTURE, False, None),
    ("back, not yet seen", [("show", (A, B)), ("status", "lost"), ("status", "live")], LIVE,
     False, None),
    ("back and recognised", [("show", (A, B)), ("status", "lost"), ("status", "live"),
                             ("show", (A, B))], SETTLED, True, (A, B)),
    ("back with other goods", [("show", (A, B)), ("status", "lost"), ("status", "live"),
                               ("show", (C, D))], SETTLED, True, (C, D)),
    ("frozen picture", [("show", (A, B)), ("frozen", 5.0)], STALE, False, None),
    ("a short freeze is no freeze", [("show", (A, B)), ("frozen", 1.0)], SETTLED, True,
     (A, B)),
    ("frozen, then fresh pictures", [("show", (A, B)), ("frozen", 5.0), ("show", (A, B))],
     SETTLED, True, (A, B)),
    ("frozen, goods changed meanwhile", [("show", (A, B)), ("frozen", 5.0), ("show", (D,))],
     SETTLED, True, (D,)),
    ("camera switched", [("show", (A, B)), ("switch",)], NO_CAMERA, False, None),
    ("switched, first pictures", [("show", (A, B)), ("switch",), ("status", "live"),
                                  ("feed", (C,), 1)], LIVE, False, None),
    ("switched and recognised", [("show", (A, B)), ("switch",), ("status", "live"),
                                 ("show", (C,))], SETTLED, True, (C,)),
    ("switched to an empty tray", [("show", (A, B)), ("switch",), ("status", "live"),
                                   ("show", ())], SETTLED, False, None),
    ("no frame for a while", [("show", (A, B)), ("wait", 11.0)], SETTLED, False, None),
    ("seen again after the wait", [("show", (A, B)), ("wait", 11.0), ("feed", (A, B), 1)],
     SETTLED, True, (A, B)),
]


@pytest.mark.parametrize("name,steps,phase,payable,shows", TRANSITIONS,
                         ids=[t[0] for t in TRANSITIONS])
def test_phase_transitions_and_the_money(kiosk, engine, name, steps, phase, payable, shows):
    session, feeder, now = kiosk
    for step in steps:
        kind = step[0]
        if kind == "show":
            feeder.show(tray(*step[1]))
        elif kind == "feed":
            feeder.feed(tray(*step[1]), step[2])
        elif kind == "status":
            session.set_camera_status(step[1])
        elif kind == "frozen":
            session.tick(frozen_for=step[1])
        elif kind == "switch":
            session.camera_switched()
        elif kind == "wait":
            now.t += step[1]
            session.tick()
    state = session.tick() or session.state
    assert state.phase == phase
    assert state.payable == payable
    assert state.stale == (phase in (NO_CAMERA, NO_PICTURE, STALE))
    sales = engine.catalog.table_counts()["transactions"]
    if payable:
        assert receipt_of(state) == truth(*shows)  # the money is what the picture shows
        tx = session.finish()
        record = engine.catalog.get_transaction(tx)
        assert Counter({ln["sku"]: ln["qty"] for ln in record["lines"]}) == truth(*shows)
    else:
        assert state.blocked
        with pytest.raises(CheckoutBlocked):
            session.finish()
        assert engine.catalog.table_counts()["transactions"] == sales  # nothing stored


def test_a_camera_switch_forgets_the_basket_and_its_boxes(kiosk):
    session, feeder, _now = kiosk
    feeder.show(tray(A, B, C))
    state = session.camera_switched()
    assert state.items == () and state.receipt.lines == () and not state.payable


def test_the_basket_survives_a_camera_hiccup_with_the_cashiers_change(kiosk, engine):
    session, feeder, _now = kiosk
    state = feeder.show(tray(A, B))
    a = next(i for i in state.items if i.sku == "DEMO-001")
    session.open_attendant(CASHIER)
    session.set_qty(a.track_id, 2)
    session.set_camera_status("lost")
    assert session.state.stale and not session.state.payable
    session.set_camera_status("live")
    state = feeder.show(tray(A, B))
    assert receipt_of(state) == Counter({"DEMO-001": 2, "DEMO-006": 1}) and state.payable


def test_picture_age_is_a_setting(engine):
    now = Now()
    session = checkout_session(engine, settle_ms=300, clock=now, max_sale_age_s=2.0)
    feeder = Feeder(session, now)
    feeder.show(tray(A))
    now.t += 1.5
    assert session.tick() is None and session.state.payable
    now.t += 1.0
    assert not session.tick().payable


# --------------------------------------------------------------------------- authority
def test_only_a_cashier_changes_the_bill(kiosk, engine):
    session, feeder, now = kiosk
    state = feeder.show(tray(A, B))
    a = next(i for i in state.items if i.sku == "DEMO-001")
    before = len(engine.catalog.audit_log(None))
    for intent in (lambda: session.override(a.track_id, "DEMO-002"),
                   lambda: session.set_qty(a.track_id, 5),
                   lambda: session.remove(a.track_id)):
        with pytest.raises(CashierRequired, match="only a cashier"):
            intent()
    assert receipt_of(session.state) == truth(A, B)  # the shopper changed nothing
    assert len(engine.catalog.audit_log(None)) == before
    # a cashier's code opens a session: the change is made and audited with their id
    session.open_attendant(CASHIER, "code")
    state = session.override(a.track_id, "DEMO-002")
    assert receipt_of(state) == Counter({"DEMO-002": 1, "DEMO-006": 1})
    assert state.attendant.cashier_id == "C001"
    row = engine.catalog.audit_log(1, action="override")[0]
    assert (row["role"], row["actor"]) == ("cashier", "C001")
    # the session ends 60 s after the cashier's last action
    now.t += 59
    session.set_qty(a.track_id, 2)  # (extends it)
    now.t += 59
    assert session.attendant is not None
    now.t += 2
    assert session.tick().attendant is None
    with pytest.raises(CashierRequired):
        session.remove(a.track_id)
    # another cashier's id while C001 acts is refused too
    session.open_attendant(CASHIER)
    with pytest.raises(CashierRequired):
        session.remove(a.track_id, cashier="C002")


def test_an_item_that_left_says_so(kiosk):
    session, feeder, _now = kiosk
    state = feeder.show(tray(A, B))
    a = next(i for i in state.items if i.sku == "DEMO-001")
    feeder.show(tray(B))
    session.open_attendant(CASHIER)
    with pytest.raises(ItemGone) as err:
        session.override(a.track_id, "DEMO-002")
    assert str(err.value) == "this item is no longer on the tray"


def test_a_badge_shown_to_the_camera_opens_the_attendant_session(kiosk, engine):
    session, feeder, _now = kiosk
    feeder.show(tray(A, B))
    assert session.attendant is None
    state = feeder.show(tray(A, B, badge=BADGE))
    assert state.attendant is not None and state.attendant.cashier_id == "C001"
    assert state.attendant.how == "badge"
    # the card is no item: the bill is still the goods
    assert receipt_of(state) == truth(A, B) and not state.needs_cashier and state.payable
    row = engine.catalog.audit_log(1, action="attendant_session")[0]
    assert (row["actor"], row["after"]) == ("C001", {"how": "badge"})


def test_an_unknown_card_is_no_badge(kiosk):
    session, feeder, _now = kiosk
    state = feeder.show(tray(A, badge="SOMEBODY-ELSES-CARD"))
    assert session.attendant is None
    assert state.needs_cashier and not state.payable  # an unknown thing on the tray


def test_shopper_may_choose_between_same_price_look_alikes_only_if_allowed(engine):
    from kiosk.settings import Settings, with_changes

    now = Now()
    for allowed in (False, True):
        settings = with_changes(Settings(), "cashier", shopper_same_price_choice=allowed)
        session = checkout_session(engine, settings, settle_ms=300, clock=now,
                                   accept_same_price=False)
        state = Feeder(session, now).show(tray(("DEMO-004", 640, 380, 10)))
        item = state.items[0]
        # the two crisp flavours are ¥7.50 each and a few hundredths apart: unsure
        assert item.unsure and item.rivals and not state.payable
        if not allowed:
            assert session.shopper_choices(item.track_id) == ()
            with pytest.raises(CashierRequired):
                session.shopper_choose(item.track_id, item.rivals[0])
            continue
        choices = session.shopper_choices(item.track_id)
        assert set(choices) == {"DEMO-004", "DEMO-005"}
        state = session.shopper_choose(item.track_id, "DEMO-005")
        assert state.items[0].source == "shopper" and state.payable
        assert receipt_of(state) == Counter({"DEMO-005": 1})
        row = engine.catalog.audit_log(1, action="shopper_choice")[0]
        assert row["role"] == "shopper"
        with pytest.raises(CashierRequired):  # anything else is still the cashier's
            session.shopper_choose(item.track_id, "DEMO-001")


# ------------------------------------------------------------------------------- calls
def test_calls_for_the_cashier_are_stored_published_and_resolved(kiosk, engine):
    session, feeder, _now = kiosk
    events = []
    unsubscribe = session.calls.subscribe(events.append)
    state = feeder.show(tray(A, badge="UNKNOWN-THING-42"))  # an unknown item: a call by itself
    assert [c.reason for c in state.calls] == ["unknown"]
    assert [(e.kind, e.call.reason) for e in events] == [("opened", "unknown")]
    # the shopper presses the button too: one call per reason
    state = session.call_cashier()
    assert sorted(c.reason for c in state.calls) == ["shopper", "unknown"]
    session.call_cashier()
    assert len(session.calls.open_calls()) == 2
    # the cashier comes (code): every open call is resolved by them
    state = session.open_attendant(CASHIER, "code")
    assert state.calls == ()
    rows = engine.catalog.calls()
    assert {(r["reason"], r["resolved_by"], r["resolution"]) for r in rows} == {
        ("unknown", "C001", "attended"), ("shopper", "C001", "attended")}
    assert all(r["opened_at"] and r["resolved_at"] for r in rows)
    assert [e.kind for e in events] == ["opened", "opened", "resolved", "resolved"]
    unsubscribe()
    # the cashier leaves with the unknown item still there: it calls again; taken off before
    # anyone came, the call closes by itself
    state = session.end_attendant()
    assert [c.reason for c in state.calls] == ["unknown"]
    state = feeder.show(tray(A))
    assert state.calls == () and state.payable
    last = engine.catalog.calls(limit=1)[0]
    assert (last["resolved_by"], last["resolution"]) == (None, "cleared")
    assert len(events) == 4  # unsubscribed: no more events


def test_a_broken_subscriber_does_not_stop_the_checkout(kiosk):
    session, feeder, _now = kiosk

    def broken(_event):
        raise RuntimeError("pager offline")

    session.calls.subscribe(broken)
    state = session.call_cashier()
    assert [c.reason for c in state.calls] == ["shopper"]


def test_call_reasons_are_checked(engine):
    board = CallBoard(engine.catalog)
    with pytest.raises(ValueError, match="reason"):
        board.open("bored")
    assert engine.catalog.calls() == []


# ---------------------------------------------------------------------------- tracking
def test_a_nudged_item_keeps_its_identity_and_the_cashiers_change(kiosk):
    session, feeder, _now = kiosk
    state = feeder.show(tray(A, C))
    a = next(i for i in state.items if i.sku == "DEMO-001")
    session.open_attendant(CASHIER)
    session.set_qty(a.track_id, 3)
    state = feeder.show(tray(A_NUDGED, C))
    moved = next(i for i in state.items if i.box != a.box and i.sku == "DEMO-001")
    assert moved.track_id == a.track_id and moved.qty == 3
    assert receipt_of(state) == Counter({"DEMO-001": 3, "DEMO-010": 1})
    # the whole tray pushed aside: every item keeps its identity
    ids = {i.sku: i.track_id for i in state.items}
    pushed = [(sku, x + 40, y - 30, ang) for sku, x, y, ang in (A_NUDGED, C)]
    state = feeder.show(tray(*pushed))
    assert {i.sku: i.track_id for i in state.items} == ids


def test_paid_items_nudged_are_not_charged_again(kiosk):
    session, feeder, _now = kiosk
    feeder.show(tray(A, C))
    session.finish()
    state = feeder.show(tray(A_NUDGED, C))
    assert state.items == () and state.receipt.lines == ()


def test_the_candidate_list_has_five_distinct_products(kiosk):
    session, feeder, _now = kiosk
    state = feeder.show(tray(("DEMO-004", 640, 380, 10)))
    cands = [c.sku for c in state.items[0].candidates]
    assert len(cands) == 5 and len(set(cands)) == 5
    assert set(cands[:2]) == {"DEMO-004", "DEMO-005"}  # the look-alike is right behind
    assert all(c.price is not None for c in state.items[0].candidates)


def test_no_calls_while_staff_are_at_the_kiosk(kiosk, engine):
    session, feeder, _now = kiosk
    state = feeder.show(tray(A, badge="UNKNOWN-THING-42"))
    assert [c.reason for c in state.calls] == ["unknown"]
    state = session.set_staff_present(True)  # staff mode: e.g. enrolling that very thing
    assert state.calls == ()
    assert engine.catalog.calls()[0]["resolution"] == "staff"
    state = feeder.show(tray(C, badge="UNKNOWN-THING-42"))
    assert state.calls == () and state.needs_cashier
    state = session.set_staff_present(False)  # staff left it there: the kiosk calls again
    assert [c.reason for c in state.calls] == ["unknown"]
