"""One recognition path: a single picture (``Engine.recognize``) and the checkout's frames
(``CheckoutSession``) go through the same frame pipeline and agree item for item.

Real engine, real SQLite, faiss, the default model and the pack-text reader on a private copy
of the demo catalogue."""
from __future__ import annotations

import numpy as np
import pytest

from kiosk.camera import Frame
from kiosk.checkout.session import SETTLED, CheckoutSession
from kiosk.demo import scenes as demo
from kiosk.demo.catalog import random_tray
from kiosk.detect import make_detector
from kiosk.engine import Engine
from kiosk.pipeline import TrayItem
from kiosk.images import load_image
from kiosk.pipeline import FramePipeline
from kiosk.track import Tracker


@pytest.fixture(scope="module")
def text_engine(tmp_path_factory, copy_demo_db, embedder, text_reader):
    """An engine that reads packs, as the kiosk runs it (the demo catalogue's words read)."""
    db = copy_demo_db(tmp_path_factory.mktemp("pipeline") / "store")
    engine = Engine.open(db, embedder=embedder, text_reader=text_reader)
    yield engine
    engine.close()


def key(item: TrayItem) -> tuple:
    """Everything an item says about the tray but its track number."""
    return (item.box, item.sku, item.name, item.price, round(item.score, 5), item.unknown,
            item.unsure, item.same_price, item.rivals, item.source, item.qty, item.words,
            tuple((c.sku, c.name, c.price, round(c.score, 5)) for c in item.candidates))


def settle(session: CheckoutSession, image: np.ndarray, n: int = 24):
    """Show ``image`` still for ``n`` frames (recognised, then its packs read one a frame)."""
    for i in range(n):
        session.process(Frame(image, i, 100.0 + 0.1 * i))
    return session.state


def pictures(demo_trays):
    one = next(t for t in demo_trays if t["image"].name == "tray_01.png")  # look-alike bags
    image, _skus = random_tray(12, np.random.default_rng(5))  # many items, some touching
    return [("tray_01", load_image(one["image"])), ("random_12", image)]


def test_single_picture_and_checkout_frame_are_one_path(text_engine, demo_trays):
    for what, image in pictures(demo_trays):
        frames = text_engine.frames_recognised
        result = text_engine.recognize(image)
        assert text_engine.frames_recognised == frames + 1, "recognize is one pipeline frame"

        session = CheckoutSession(text_engine, settle_ms=0)
        state = settle(session, image)
        assert state.phase == SETTLED and session.recognitions == 1
        assert text_engine.frames_recognised == frames + 2
        assert all(type(i) is TrayItem for i in (*state.items, *result.items))
        # the same products, boxes and decisions (pack text read at once for the picture,
        # a pack a frame at the checkout), in the same (reading) order
        assert [key(i) for i in state.items] == [key(i) for i in result.items], what
        assert state.receipt.to_dict() == result.receipt.to_dict(), what
        assert len(result.items) >= 3
        assert {"detect", "match", "embed", "search", "decide", "barcode", "total"} \
            <= set(result.timings_ms)
        assert {"detect", "match", "embed", "search", "decide", "barcode", "total"} \
            <= set(session.state.timings_ms)


def test_look_alikes_are_read_in_the_single_picture(text_engine, demo_trays):
    """tray_01 holds both flavours of one crisp bag: their packs are read by ``recognize``
    (the same reading the checkout defers to its still frames)."""
    _, image = pictures(demo_trays)[0]
    result = text_engine.recognize(image)
    assert any(i.words for i in result.items), [i.to_dict() for i in result.items]
    assert "text" in result.timings_ms


def test_pipeline_on_a_fresh_tracker_is_engine_recognize(text_engine, demo_trays):
    _, image = pictures(demo_trays)[0]
    mine = FramePipeline(text_engine, Tracker()).recognize(image)
    assert [key(i) for i in mine.items] == [key(i) for i in text_engine.recognize(image).items]


def test_tracker_keeps_still_items_and_starts_new_ones():
    """Tracking alone (no model): the same picture again is matched in place; a picture with
    an item more keeps the old ones and starts one track."""
    detector = make_detector("tray", background=demo.empty_tray())
    two = demo.render_tray([("DEMO-001", 250, 250, 10), ("DEMO-006", 300, 540, -20)]).image
    three = demo.render_tray([("DEMO-001", 250, 250, 10), ("DEMO-006", 300, 540, -20),
                              ("DEMO-010", 900, 360, 30)]).image
    tracker = Tracker()
    obs = tracker.observe(two, detector.detect(two))
    assert len(obs) == 2 and not obs.match
    first = [tracker.start(obs, j) for j in range(len(obs))]
    assert tracker.commit(obs) == set() and set(tracker.tracks) == {t.id for t in first}

    again = tracker.observe(two, detector.detect(two))
    assert {j: t.id for j, t in again.match.items()} == {j: t.id for j, t in enumerate(first)}

    more = tracker.observe(three, detector.detect(three))
    assert len(more) == 3 and sorted(t.id for t in more.match.values()) == sorted(
        t.id for t in first)
    (j,) = [j for j in range(3) if j not in more.match]
    new = tracker.start(more, j)
    assert new.id not in {t.id for t in first}
    assert tracker.commit(more) == set() and len(tracker.tracks) == 3
    obs = tracker.observe(two, detector.detect(two))
    assert tracker.commit(obs) == {new.id}  # taken off the tray
    tracker.clear()
    assert tracker.tracks == {}


FOREIGN = "6901234567892"  # a valid EAN-13 of no product
TAKE_CODE_CASES = [
    # id, named by hand, foreign code already seen, what read_code read (the product a code
    # names, a code of no product), expected (changed, barcode_sku, foreign_code)
    ("another product wins", False, None, ("DEMO-005", None), (True, "DEMO-005", None)),
    ("its own product", False, None, ("DEMO-006", None), (False, None, None)),
    ("a code of no product", False, None, (None, FOREIGN), (True, None, FOREIGN)),
    ("the same code again", False, FOREIGN, (None, FOREIGN), (False, None, FOREIGN)),
    ("nothing read", False, None, (None, None), (False, None, None)),
    ("named by hand: left alone", True, None, ("DEMO-005", None), (False, None, None)),
    ("named by hand, no product", True, None, (None, FOREIGN), (False, None, None)),
]


@pytest.mark.parametrize("by_hand, seen, read, expected", [c[1:] for c in TAKE_CODE_CASES],
                         ids=[c[0] for c in TAKE_CODE_CASES])
def test_take_code(by_hand, seen, read, expected):
    """What the checkout's deferred barcode check does to an item the pictures named
    (the Oreos, DEMO-006)."""
    from kiosk.decide import Candidate, Decision
    from kiosk.track import Track

    t = Track(1, (0, 0, 10, 10), None, None)
    t.decision = Decision("DEMO-006", 0.9, False, (Candidate("DEMO-006", 0.9, 1.0),),
                          margin=0.5)
    t.override = "DEMO-001" if by_hand else None
    t.foreign_code = seen
    changed = FramePipeline.take_code(t, read)
    assert (changed, t.barcode_sku, t.foreign_code) == expected
