"""CheckoutSession on the real engine and the demo catalogue, driven frame by frame.

Frames are rendered demo trays; ``Frame.t`` is set by the test (no sleeps), so settling is
deterministic.  Each test works on a private copy of the session demo catalogue.
"""
from __future__ import annotations

import threading

import numpy as np
import pytest
from types import SimpleNamespace

from kiosk.demo import scenes as demo
from kiosk.camera import Frame
from kiosk.engine import Engine
from kiosk.checkout.session import CheckoutSession, SessionState
from ean_drawing import R_CODES, barcode_label, ean13_check, ean13_modules, paste

PRICE = {p.sku: p.price for p in demo.PRODUCTS}

# fixed item places (sku, x, y, angle): far enough apart never to touch
A = ("DEMO-001", 200, 200, 10)
B = ("DEMO-006", 250, 520, -20)
C = ("DEMO-010", 640, 360, 30)
D = ("DEMO-011", 1050, 180, 75)
BARCODE_AT = (900, 500, 20)  # where a barcode label goes: x, y, angle


# ------------------------------------------------------------------------ EAN-13 drawing
def test_ean13_helper_matches_known_code():
    assert ean13_check("400638133393") == "4006381333931"
    bits = ean13_modules("4006381333931")
    assert bits.startswith("101" + "0001101") and bits.endswith(R_CODES[1] + "101")


# ------------------------------------------------------------------------------ plumbing
def tray(*items, barcode: str | None = None) -> np.ndarray:
    image = demo.render_tray(list(items)).image
    if barcode:
        image = paste(image, barcode_label(barcode), *BARCODE_AT)
    return image


class Clock:
    """Feeds frames with increasing index and controlled time."""

    def __init__(self, session: CheckoutSession) -> None:
        self.session, self.index, self.t = session, 0, 100.0

    def feed(self, image: np.ndarray, n: int = 1, dt: float = 0.1) -> list[SessionState]:
        states = []
        for _ in range(n):
            s = self.session.process(Frame(image, self.index, self.t))
            self.index += 1
            self.t += dt
            if s is not None:
                states.append(s)
        return states

    def settle(self, image: np.ndarray) -> SessionState:
        """Show ``image`` until it has been recognised (at most 1 s); returns that state."""
        states = [s for s in self.feed(image, 11) if s.settled]
        assert states, "the tray never settled"
        return states[-1]


@pytest.fixture
def engine(tmp_path, copy_demo_db, embedder):
    e = Engine.open(copy_demo_db(tmp_path / "store"), embedder=embedder)
    yield e
    e.close()


#: a cashier at the kiosk (these tests are about the basket; who may change it: test_till.py)
CASHIER = SimpleNamespace(id="C001", name="王芳")


@pytest.fixture
def session(engine):
    s = CheckoutSession(engine, settle_ms=300)
    s.open_attendant(CASHIER)
    return s


def skus(state: SessionState) -> list[str]:
    return sorted(i.sku for i in state.items)


def receipt_qty(state: SessionState) -> dict[str, int]:
    return {line.sku: line.qty for line in state.receipt.lines}


# ------------------------------------------------------------------------------- settling
@pytest.mark.parametrize("settle_ms,first_recognised", [(0, 1), (300, 3), (550, 6), (1000, 10)])
def test_recognised_after_settle_not_before(engine, settle_ms, first_recognised):
    s = CheckoutSession(engine, settle_ms=settle_ms)
    image = tray(A, B)
    got = []
    for n in range(12):
        st = s.process(Frame(image, n, 100.0 + 0.1 * n))
        got.append(st)
    # frame 0 starts the stillness; recognition at the first frame >= settle_ms later
    assert all(g is None for g in got[:first_recognised])
    st = got[first_recognised]
    assert st is not None and st.settled and skus(st) == ["DEMO-001", "DEMO-006"]
    assert st.receipt.total == PRICE["DEMO-001"] + PRICE["DEMO-006"]
    assert st.n_embedded == 2 and not st.needs_cashier
    assert {"detect", "embed", "search", "decide", "total"} <= set(st.timings_ms)
    assert all(g is None for g in got[first_recognised + 1:])  # no flood of states
    assert s.state is st


def test_moving_items_do_not_trigger_recognition(session, monkeypatch):
    calls = []
    real = session.engine.detector.detect
    monkeypatch.setattr(session.engine.detector, "detect", lambda im: calls.append(1) or real(im))
    clock = Clock(session)
    frames = [tray(A), tray(("DEMO-001", 230, 210, 20)), tray(("DEMO-001", 260, 220, 30), B)]
    for k in range(20):  # each frame differs from the one before, every 100 ms for 2 s
        assert clock.feed(frames[k % 3]) == []
    assert calls == []
    st = clock.settle(frames[2])
    assert skus(st) == ["DEMO-001", "DEMO-006"] and len(calls) == 1


def test_motion_emits_unsettled_once_and_keeps_items(session):
    clock = Clock(session)
    first = clock.settle(tray(A, B))
    states = clock.feed(tray(A, B, C))  # a hand puts C down: motion
    assert len(states) == 1 and not states[0].settled
    assert states[0].items == first.items
    assert clock.feed(tray(A, B, C), 2) == []  # still again, but not for settle_ms yet


# ------------------------------------------------------------------------------- tracking
def test_unmoved_items_keep_identity_and_are_not_reembedded(session):
    clock = Clock(session)
    st1 = clock.settle(tray(A, B))
    assert st1.n_embedded == 2
    ids = {i.sku: i.track_id for i in st1.items}
    st2 = clock.settle(tray(A, B, C))
    assert skus(st2) == ["DEMO-001", "DEMO-006", "DEMO-010"]
    assert st2.n_embedded == 1  # only the new item
    assert {i.sku: i.track_id for i in st2.items if i.sku in ids} == ids
    st3 = clock.settle(tray(B, C))  # A taken off the tray
    assert skus(st3) == ["DEMO-006", "DEMO-010"] and st3.n_embedded == 0
    assert "DEMO-001" not in receipt_qty(st3)
    assert st3.receipt.total == PRICE["DEMO-006"] + PRICE["DEMO-010"]


def test_moved_item_is_embedded_again(session):
    clock = Clock(session)
    clock.settle(tray(A, B))
    st = clock.settle(tray(("DEMO-001", 700, 300, 80), B))
    assert st.n_embedded == 1 and skus(st) == ["DEMO-001", "DEMO-006"]


def test_replaced_item_in_same_place_is_recognised_again(session):
    clock = Clock(session)
    clock.settle(tray(A, B))
    st = clock.settle(tray(("DEMO-013", 200, 200, 10), B))  # another product, same spot
    assert st.n_embedded == 1 and skus(st) == ["DEMO-006", "DEMO-013"]


def test_frozen_stream_is_not_recognised_again(session, monkeypatch):
    clock = Clock(session)
    image = tray(A, B, C)
    clock.settle(image)
    calls = []
    monkeypatch.setattr(session.engine.detector, "detect", lambda im: calls.append(1))
    assert clock.feed(image, 200, dt=0.05) == []
    assert calls == []


def test_items_sorted_by_position(session):
    """Reading order: bands of 120 px from the top, left to right within a band."""
    st = Clock(session).settle(tray(D, C, B, A))
    assert [i.sku for i in st.items] == ["DEMO-001", "DEMO-011", "DEMO-010", "DEMO-006"]


# -------------------------------------------------------------------------------- intents
def test_override_sticks_and_is_logged(session, engine):
    clock = Clock(session)
    st = clock.settle(tray(A, B))
    a = next(i for i in st.items if i.sku == "DEMO-001")
    st = session.override(a.track_id, "DEMO-009")
    item = next(i for i in st.items if i.track_id == a.track_id)
    assert item.sku == "DEMO-009" and item.source == "cashier"
    assert receipt_qty(st) == {"DEMO-009": 1, "DEMO-006": 1}
    assert st.receipt.total == PRICE["DEMO-009"] + PRICE["DEMO-006"]
    log = engine.catalog.corrections()[-1]
    assert (log["from_sku"], log["to_sku"], log["box"]) == ("DEMO-001", "DEMO-009", list(a.box))
    st = clock.settle(tray(A, B, C))  # later recognitions keep the cashier's word
    assert receipt_qty(st) == {"DEMO-009": 1, "DEMO-006": 1, "DEMO-010": 1}
    assert next(i for i in st.items if i.track_id == a.track_id).source == "cashier"


@pytest.mark.parametrize("bad,error", [("NO-SUCH", ValueError), ("", ValueError)])
def test_override_unknown_sku(session, bad, error):
    st = Clock(session).settle(tray(A))
    with pytest.raises(error):
        session.override(st.items[0].track_id, bad)
    with pytest.raises(KeyError):
        session.override(9999, "DEMO-001")


def test_remove_and_set_qty(session, engine):
    clock = Clock(session)
    st = clock.settle(tray(A, B))
    a = next(i for i in st.items if i.sku == "DEMO-001")
    b = next(i for i in st.items if i.sku == "DEMO-006")
    st = session.set_qty(b.track_id, 3)
    assert receipt_qty(st) == {"DEMO-001": 1, "DEMO-006": 3}
    assert st.receipt.total == PRICE["DEMO-001"] + 3 * PRICE["DEMO-006"]
    st = session.remove(a.track_id)
    assert receipt_qty(st) == {"DEMO-006": 3}
    st = clock.settle(tray(A, B, C))  # the removed item stays ignored while it stays
    assert receipt_qty(st) == {"DEMO-006": 3, "DEMO-010": 1}
    logs = engine.catalog.corrections()
    assert [(r["action"], r["from_sku"], r["to_sku"], r["qty"]) for r in logs[-2:]] == [
        ("qty", "DEMO-006", "DEMO-006", 3), ("remove", "DEMO-001", None, None)]
    with pytest.raises(ValueError):
        session.set_qty(b.track_id, -1)
    with pytest.raises(ValueError):
        session.set_qty(b.track_id, True)
    st = session.set_qty(b.track_id, 0)  # 0 removes
    assert receipt_qty(st) == {"DEMO-010": 1}


def test_search_passes_through(session):
    found = session.search("乐事")
    assert {p.sku for p in found} == {"DEMO-004", "DEMO-005"}
    assert session.search("6900120240017")[0].sku == "DEMO-001"


# -------------------------------------------------------------------------------- barcode
NEW_CODE = ean13_check("690123456789")


@pytest.mark.parametrize("use_barcode", [True, False])
def test_barcode_resolves_unknown_item(engine, use_barcode):
    engine.catalog.add_product("BC-001", "散装花生 500g", 1290, barcode=NEW_CODE)  # never enrolled
    s = CheckoutSession(engine, barcode=use_barcode)
    st = Clock(s).settle(tray(A, B, barcode=NEW_CODE))
    label = [i for i in st.items if i.sku not in ("DEMO-001", "DEMO-006")]
    assert len(label) == 1 and len(st.items) == 3
    if use_barcode:
        assert label[0].sku == "BC-001" and label[0].source == "barcode"
        assert not label[0].unknown and label[0].name == "散装花生 500g"
        assert st.receipt.total == PRICE["DEMO-001"] + PRICE["DEMO-006"] + 1290
        assert not st.needs_cashier
    else:
        assert label[0].unknown and label[0].sku is None and st.needs_cashier
        assert st.receipt.total == PRICE["DEMO-001"] + PRICE["DEMO-006"]


def test_unknown_barcode_stays_unknown(engine):
    s = CheckoutSession(engine)
    st = Clock(s).settle(tray(A, barcode=ean13_check("123456789012")))
    assert sum(i.unknown for i in st.items) == 1 and st.needs_cashier


CRISPS = ("DEMO-004", 640, 380, 10)  # the original crisps alone: the cucumber ones look alike
CRISPS_CODE_AT = (640, 430, 10)  # a small barcode label on the bag's lower half
BARCODE_OF = {p.sku: p.barcode for p in demo.PRODUCTS}


@pytest.mark.parametrize("same_price, code_of, charged", [
    # the flavours' prices differ: the look-alike is unsure and would call the cashier
    (False, "DEMO-005", "DEMO-005"),  # the code says the other flavour: the code is right
    (False, "DEMO-004", "DEMO-004"),
    (False, None, None),  # a code of no product: still the cashier's
    # one price: charged as the pictures' first, until the code names the right flavour
    (True, "DEMO-005", "DEMO-005"),
])
def test_barcode_settles_an_unsure_look_alike(engine, same_price, code_of, charged):
    """A look-alike the pictures are unsure of is settled by the barcode on its pack when the
    shopper turns it to the camera: charged as the barcode's product, no cashier, and that
    answer learned from this kiosk's camera at payment (source ``barcode``)."""
    if not same_price:
        engine.set_price("DEMO-005", PRICE["DEMO-005"] + 100)
    price = {"DEMO-004": PRICE["DEMO-004"], "DEMO-005": engine.lookup_product("DEMO-005").price}
    answers = []
    s = CheckoutSession(engine, on_answer=lambda crop, sku, **kw: answers.append(
        (sku, kw["source"])))
    clock = Clock(s)
    st = clock.settle(tray(CRISPS))
    (item,) = st.items
    assert item.sku == "DEMO-004" and item.rivals == ("DEMO-005",) and item.source == "recognized"
    if same_price:
        assert item.same_price and st.receipt.total == PRICE["DEMO-004"]
    else:
        assert item.unsure and st.needs_cashier and st.receipt.total == 0

    code = BARCODE_OF[code_of] if code_of else ean13_check("123456789012")
    st = clock.settle(paste(tray(CRISPS), barcode_label(code, module=1, height=40),
                            *CRISPS_CODE_AT))
    (item,) = st.items
    if charged is None:  # nothing changed: the cashier still decides, nothing is paid
        assert item.unsure and item.source == "recognized" and st.needs_cashier
        assert st.receipt.total == 0
        with pytest.raises(ValueError, match="cashier"):
            s.finish()
        assert answers == [] and engine.catalog.table_counts()["transactions"] == 0
        return
    assert (item.sku, item.source, item.unsure, item.same_price) == (charged, "barcode", False,
                                                                     False)
    assert st.receipt.total == price[charged] and not st.needs_cashier and st.payable
    tx = s.finish()
    assert engine.catalog.get_transaction(tx)["total"] == price[charged]
    assert answers == [(charged, "barcode")]


@pytest.mark.parametrize("code_of, own_code, outcome", [
    ("DEMO-005", True, "DEMO-005"),  # the pack's code names another product: it wins
    ("DEMO-006", True, "DEMO-006"),  # its own code: nothing to change
    (None, True, "cashier"),  # a code of no product, and the Oreos have another: ask
    (None, False, "DEMO-006"),  # ... but nothing contradicts Oreos without a code of their own
])
def test_the_barcode_of_an_item_the_pictures_named_is_checked(engine, code_of, own_code,
                                                              outcome):
    """An item the pictures are sure of still has its barcode checked once the tray is still
    (one item per still frame, after the receipt is shown): a code of another catalogue
    product is what the pack is, so the item is charged as that product and learned so at
    payment; a code of no product, where the product named has a code of its own, means the
    pack is something else: not charged, the cashier decides; its own code changes nothing."""
    if not own_code:
        engine.catalog.upsert_product("DEMO-006", barcode=None, role="staff")
        assert engine.lookup_product("DEMO-006").barcode is None
    code = BARCODE_OF[code_of] if code_of else ean13_check("123456789012")
    oreo = tray(B)
    x1, _y1, x2, y2 = next(i.box for i in Clock(CheckoutSession(engine)).settle(oreo).items)
    turned = paste(oreo, barcode_label(code, module=1, height=24), (x1 + x2) / 2, y2 - 45, B[3])
    # the pictures alone are sure it is the Oreos, label and all: this is no unsure item
    (pictures,) = engine.recognize(turned, barcode=False).items
    assert pictures.sku == "DEMO-006" and not pictures.unsure and not pictures.unknown
    answers = []
    s = CheckoutSession(engine, on_answer=lambda crop, sku, **kw: answers.append(
        (sku, kw["source"])))
    clock = Clock(s)
    clock.settle(turned)
    clock.feed(turned, 5)  # a few more still frames: every named item's code is read
    (item,) = s.state.items
    if outcome == "cashier":
        assert item.sku == "DEMO-006" and item.unsure and item.source == "recognized"
        assert s.state.needs_cashier and not s.state.payable and s.state.receipt.total == 0
        with pytest.raises(ValueError, match="cashier"):
            s.finish()
        s.open_attendant(CASHIER)  # the cashier looks at the pack and picks the product
        s.override(item.track_id, "DEMO-002")
        charged, source = "DEMO-002", "cashier"
    else:
        charged = outcome
        source = "barcode" if code_of and code_of != "DEMO-006" else "recognized"
        assert (item.sku, item.source, item.unsure) == (charged, source, False)
    assert s.state.receipt.total == PRICE[charged] and s.state.payable
    tx = s.finish()
    assert engine.catalog.get_transaction(tx)["total"] == PRICE[charged]
    # handed to learning at payment: as the cashier said, as read off its barcode, or as
    # paid for as recognised
    assert answers == [(charged, {"recognized": "paid"}.get(source, source))]


# --------------------------------------------------------------------------------- finish
def test_finish_records_sale_and_links_corrections(session, engine):
    clock = Clock(session)
    st = clock.settle(tray(A, B, C))
    c = next(i for i in st.items if i.sku == "DEMO-010")
    session.set_qty(c.track_id, 2)
    st = session.state
    tx = session.finish()
    rec = engine.catalog.get_transaction(tx)
    assert rec["total"] == PRICE["DEMO-001"] + PRICE["DEMO-006"] + 2 * PRICE["DEMO-010"]
    assert rec["total"] == st.receipt.total
    assert {line["sku"]: line["qty"] for line in rec["lines"]} == receipt_qty(st)
    assert rec["created_at"]
    assert [r["transaction_id"] for r in engine.catalog.corrections()] == [tx]
    # the basket is empty; the goods still on the tray are not added again...
    assert session.state.items == () and session.state.receipt.total == 0
    assert clock.feed(tray(A, B, C), 20) == []
    with pytest.raises(ValueError, match="empty"):
        session.finish()
    # ...and when the tray changes only what is new counts
    st = clock.settle(tray(A, B, C, D))
    assert receipt_qty(st) == {"DEMO-011": 1}
    st = clock.settle(tray())  # the shopper takes everything away
    assert st.items == ()
    st = clock.settle(tray(A))  # the next shopper
    assert receipt_qty(st) == {"DEMO-001": 1}


def test_finish_refuses(engine):
    s = CheckoutSession(engine, barcode=False)
    clock = Clock(s)
    with pytest.raises(ValueError, match="empty"):
        s.finish()
    st = clock.settle(tray(A, barcode=NEW_CODE))
    with pytest.raises(ValueError, match="not recognised"):
        s.finish()
    unknown = next(i for i in st.items if i.unknown)
    s.open_attendant(CASHIER)
    s.override(unknown.track_id, "DEMO-012")
    engine.set_price("DEMO-012", None)
    with pytest.raises(ValueError, match="no price for DEMO-012"):
        s.finish()
    assert engine.catalog.table_counts()["transactions"] == 0
    engine.set_price("DEMO-012", 500)
    tx = s.finish()
    assert engine.catalog.get_transaction(tx)["total"] == PRICE["DEMO-001"] + 500


def test_reset_forgets_basket(session):
    clock = Clock(session)
    st = clock.settle(tray(A, B))
    session.override(st.items[0].track_id, "DEMO-013")
    st = session.reset()
    assert st.items == () and not st.settled
    st = clock.settle(tray(A, B))  # the goods are recognised afresh, without the override
    assert skus(st) == ["DEMO-001", "DEMO-006"]
    assert all(i.source == "recognized" for i in st.items)


def test_intents_from_another_thread(session):
    """Intents (GUI thread) while frames are processed (worker thread) never break a state."""
    clock = Clock(session)
    st = clock.settle(tray(A, B))
    b = next(i for i in st.items if i.sku == "DEMO-006")
    frames = [tray(A, B), tray(A, B, C), tray(A, B, C, D)]
    errors = []

    def worker():
        try:
            for img in frames:
                clock.feed(img, 6)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    th = threading.Thread(target=worker)
    th.start()
    for q in range(1, 30):
        session.set_qty(b.track_id, q)
    th.join()
    assert not errors
    st = session.state
    assert receipt_qty(st)["DEMO-006"] == 29
    assert skus(st) == ["DEMO-001", "DEMO-006", "DEMO-010", "DEMO-011"]


# ------------------------------------------------------------------------------ pack text
def test_pack_text_is_read_and_survives_fusing_views(tmp_path, copy_demo_db, embedder,
                                                     text_reader):
    """The look-alike crisps: the words read decide, and a later fused decision on the
    averaged views (which reads nothing) applies the words already read instead of
    forgetting them."""
    engine = Engine.open(copy_demo_db(tmp_path / "store"), embedder=embedder,
                         text_reader=text_reader)
    engine.decider.text_spread = 1.0  # read whenever two products are in the running
    engine.decider.k = 20  # ... and let more than one product in
    try:
        s = CheckoutSession(engine, settle_ms=300, fuse_margin=1.0)  # always fuse re-seen views
        clock = Clock(s)
        states = [st for st in clock.feed(tray(("DEMO-005", 640, 360, 10)), 8) if st.settled]
        # first the pictures' answer, at once; the pack is read on the next still frame
        assert len(states) == 2
        assert states[0].n_embedded == 1 and states[0].items[0].words == ()
        assert "text" not in states[0].timings_ms
        (item,) = states[1].items
        assert item.sku == "DEMO-005" and "黄瓜味" in item.words
        assert states[1].n_embedded == 0 and states[1].timings_ms["text"] > 0
        assert s.recognitions == 1
        # a new view of the same item (turned a little): embedded again, views fused
        clock.feed(tray(("DEMO-005", 640, 360, 10)), 1)
        st = clock.settle(tray(("DEMO-005", 650, 365, 25)))
        (item,) = st.items
        assert item.sku == "DEMO-005" and "黄瓜味" in item.words
        assert not st.needs_cashier
    finally:
        engine.close()
