"""Enrolment refuses what would poison the catalogue: real engine and model, real captures of
the scripted demo camera (kiosk.catalog.enrol, Engine.check_enrolment / enrol / enrol_product), and the
real staff Enrol tab driven through its buttons.
"""
from __future__ import annotations

import numpy as np
import pytest

from kiosk.demo import scenes as demo
from kiosk.camera.demo import DemoCamera
from kiosk.catalog.enrol import (
    DISAGREES,
    SEVERAL_ITEMS,
    EnrolRefused,
    LookalikeNeedsConfirmation,
    lookalike_floor,
    odd_views,
)
from kiosk.engine import Engine

NAME = {p.sku: p.name for p in demo.PRODUCTS}


def tray_views(script, n, seed=3):
    """The first ``n`` still scenes of a scripted demo camera (not realtime): a frame is taken
    once the tray has rested for 5 frames with items other than at the last capture."""
    cam = DemoCamera(fps=30, seed=seed, script=script, realtime=False)
    cam.open()
    views, last, still, prev = [], None, 0, None
    for _ in range(30 * 120):
        frame = cam.read()
        truth = tuple(cam.truth())
        still = still + 1 if cam.phase == "resting" and truth == prev else 0
        prev = truth
        if still == 5 and truth != last:
            views.append(frame.copy())
            last = truth
            if len(views) == n:
                return views, cam.background()
    raise AssertionError(f"only {len(views)} still scenes in the script")


def one_product(sku, turns=((0, 0, 90), (-220, 40, 135), (300, -60, 60))):
    """A script: ``sku`` alone on the tray, then moved and turned between views."""
    script = [("add", sku, 640, 360, 0), ("wait", 0.5)]
    for dx, dy, da in turns:
        script += [("shift", sku, dx, dy, da), ("wait", 0.5)]
    return script


def counts(engine):
    return (len(engine.catalog.list_products(active_only=False)),
            engine.catalog.count_gallery(), engine.index.n_live)


@pytest.fixture
def open_engine(tmp_path, copy_demo_db, embedder):
    made = []

    def open_(background):
        engine = Engine.open(copy_demo_db(tmp_path / f"store{len(made)}"), embedder=embedder,
                             background=background)
        made.append(engine)
        return engine

    yield open_
    for engine in made:
        engine.close()


# ------------------------------------------------------------------------- pure rules
def test_odd_views_rule():
    s = np.array([[1, .95, .30], [.95, 1, .35], [.30, .35, 1]])
    assert odd_views(s, 0.45) == [2]
    # an absolute floor alone misses a view 0.3 below two views that agree closely
    s = np.array([[1, .97, .60], [.97, 1, .62], [.60, .62, 1]])
    assert odd_views(s, 0.45) == [2]
    assert odd_views(s, 0.45, gap=1.0) == []
    # look-alike views agree: nothing odd
    s = np.array([[1, .9, .8], [.9, 1, .85], [.8, .85, 1]])
    assert odd_views(s, 0.45) == []
    # three different items: all but the first view are odd
    s = np.array([[1, .30, .38], [.30, 1, .35], [.38, .35, 1]])
    assert sorted(odd_views(s, 0.45)) == [1, 2]


# ---------------------------------------------------------------------- real captures
def test_a_frame_with_two_products_is_refused(open_engine):
    (alone, both, again), background = tray_views(
        [("add", "DEMO-005", 400, 300, 0), ("wait", 0.5),
         ("add", "DEMO-001", 950, 450, 30), ("wait", 0.5),
         ("remove", "DEMO-001"), ("shift", "DEMO-005", 100, 50, 90), ("wait", 0.5)], 3)
    engine = open_engine(background)
    assert engine.cut_view(both)[0] == 2 and engine.cut_view(both)[1] is None
    found, crop = engine.cut_view(alone)
    assert found == 1 and crop is not None

    check = engine.check_enrolment([alone, both, again])
    assert [(p.view, p.kind, p.items) for p in check.problems] == [(2, SEVERAL_ITEMS, 2)]
    before = counts(engine)
    with pytest.raises(ValueError, match="view 2: 2 items"):  # not the largest item
        engine.enrol("DEMO-005", [alone, both, again])
    with pytest.raises(EnrolRefused, match="view 2"):
        engine.enrol_product("NEW-1", "new", 100, [alone, both, again])
    assert counts(engine) == before
    assert engine.catalog.get_product("NEW-1") is None


def test_views_of_different_products_are_refused_by_number(open_engine):
    def swap(a, b):
        return [("remove", a), ("add", b, 640, 360, 20), ("wait", 0.5)]

    odd, background = tray_views(
        one_product("DEMO-005", turns=[(0, 0, 90)]) + swap("DEMO-005", "DEMO-001"), 3)
    mixed, _ = tray_views(
        [("add", "DEMO-005", 640, 360, 0), ("wait", 0.5)] + swap("DEMO-005", "DEMO-001")
        + swap("DEMO-001", "DEMO-007"), 3)
    engine = open_engine(background)
    before = counts(engine)

    check = engine.check_enrolment(odd)  # view 3 is another product
    assert [(p.view, p.kind) for p in check.problems] == [(3, DISAGREES)], check.agreement
    with pytest.raises(EnrolRefused, match="view 3 does not look like"):
        engine.enrol_product("CRISPS-2", "薯片", 750, odd)

    check = engine.check_enrolment(mixed)  # three products: the first view is the reference
    assert [(p.view, p.kind) for p in check.problems] == [(2, DISAGREES), (3, DISAGREES)], (
        check.agreement)
    with pytest.raises(EnrolRefused) as refused:
        engine.enrol_product("MIXED", "mixed", 100, mixed, confirm_lookalike=True)
    assert "view 2" in str(refused.value) and "view 3" in str(refused.value)
    assert counts(engine) == before
    assert engine.catalog.get_product("CRISPS-2") is None
    assert engine.catalog.get_product("MIXED") is None


def test_clean_enrolment_of_a_new_product_is_recognised_at_once(open_engine):
    views, background = tray_views(one_product("DEMO-011"), 4)
    engine = open_engine(background)
    engine.remove_product("DEMO-011")  # 红牛 is new to this catalogue
    before = counts(engine)
    check = engine.check_enrolment(views)
    assert check.ok and not check.lookalikes, check.message()

    ids = engine.enrol_product("RB-250", "红牛 250ml", 600, views, role="staff")
    assert len(ids) == 2 * len(views)  # as cut and half-turned
    assert counts(engine) == (before[0] + 1, before[1] + len(ids), before[2] + len(ids))
    # the stored vectors are the checked ones (embedded once)
    np.testing.assert_allclose(engine.index.vectors_for(np.array(ids)), check.vectors,
                               atol=5e-4)  # float16 index
    tray = demo.render_tray([("DEMO-011", 500, 300, 40), ("DEMO-001", 950, 450, 0)],
                            rng=np.random.default_rng(5))
    result = engine.recognize(tray.image)
    assert sorted(i.sku for i in result.items) == ["DEMO-001", "RB-250"]
    assert result.receipt.total == 950
    assert not engine.catalog.audit_log(action="enrol_lookalike_confirmed")


def test_lookalike_needs_confirmation(open_engine):
    views, background = tray_views(one_product("DEMO-005"), 3)
    engine = open_engine(background)
    before = counts(engine)

    check = engine.check_enrolment(views, sku="CUKE-2")
    assert check.ok and check.needs_confirmation
    # the crisps it is (and the other flavour, as close to the camera's views)
    assert {l.sku for l in check.lookalikes} <= {"DEMO-005", "DEMO-004"}
    look = next(l for l in check.lookalikes if l.sku == "DEMO-005")
    assert (look.name, look.price) == (NAME["DEMO-005"], 750)
    assert look.score >= lookalike_floor(engine.decider.threshold, look.usual)
    assert look.views and set(look.views) <= {1, 2, 3} and look.files
    with pytest.raises(LookalikeNeedsConfirmation, match="DEMO-005"):
        engine.enrol_product("CUKE-2", "黄瓜味薯片 大包", 990, views)
    assert counts(engine) == before and engine.catalog.get_product("CUKE-2") is None

    ids = engine.enrol_product("CUKE-2", "黄瓜味薯片 大包", 990, views,
                               confirm_lookalike=True)
    assert engine.catalog.get_product("CUKE-2").price == 990
    assert counts(engine) == (before[0] + 1, before[1] + len(ids), before[2] + len(ids))
    (row,) = engine.catalog.audit_log(action="enrol_lookalike_confirmed")
    assert row["role"] == "staff" and row["subject"] == "CUKE-2"
    assert "DEMO-005" in row["after"]["lookalikes"] and "DEMO-005" in row["detail"]


def test_the_other_flavour_is_a_lookalike(open_engine):
    """原味 (DEMO-004) enrolled anew beside 黄瓜味 (DEMO-005): the views agree with each other and
    staff are asked (flavours of one bag are as close as views of one product)."""
    views, background = tray_views(one_product("DEMO-004"), 3)
    engine = open_engine(background)
    engine.remove_product("DEMO-004")
    check = engine.check_enrolment(views, sku="DEMO-004")
    assert check.ok, check.message()
    assert [l.sku for l in check.lookalikes] == ["DEMO-005"]


# --------------------------------------------------------------------------- the screen
@pytest.fixture
def kiosk_window(qapp, qtbot, tmp_path, copy_demo_db, embedder):
    from PySide6.QtCore import QEvent
    from PySide6.QtWidgets import QApplication

    from kiosk.checkout.session import CheckoutSession
    from kiosk.settings import Settings, with_changes
    from kiosk.ui import i18n
    from kiosk.ui.app import KioskParts, build_window, setup_application

    settings = with_changes(Settings(), "staff", session_timeout_s=300)
    app = setup_application(settings=settings)
    i18n.set_language(app, "zh_CN")
    made = []

    def make(script):
        db = copy_demo_db(tmp_path / "store")
        camera = DemoCamera(fps=30, seed=3, script=script)
        engine = Engine.open(db, embedder=embedder, background=camera.background())
        session = CheckoutSession(engine, settle_ms=150)
        window = build_window(KioskParts(engine, session, camera, "demo", db), settings, None)
        qtbot.addWidget(window)
        window.resize(1280, 800)
        window.show()
        window.camera = camera
        made.append((window, engine))
        return window

    yield make
    for window, engine in made:
        window.controller.shutdown()
        window.close()
        window.deleteLater()
    QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    for _, engine in made:
        engine.close()


def test_enrol_tab_refuses_two_items_and_asks_about_a_lookalike(qtbot, kiosk_window):
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    wait = 15_000
    w = kiosk_window([("add", "DEMO-005", 640, 360, 0), ("wait", 1.5),
                      ("shift", "DEMO-005", 0, 0, 90), ("wait", 1.5),
                      ("shift", "DEMO-005", -220, 40, 135), ("wait", 1.5),
                      ("add", "DEMO-001", 1050, 550, 0), ("wait", 120)])
    cam = w.camera
    w.auth.set_pin("1357")
    QTest.mouseClick(w.staff_button, Qt.MouseButton.LeftButton)
    w.pin_dialog.enter("1357")
    qtbot.waitUntil(lambda: w.in_staff_mode, timeout=wait)
    tab = w.staff_page.enrol
    assert w.staff_page.tabs.currentWidget() is tab

    def capture_when_still(n_items):
        seen = [f[0] for f in tab_seen]
        qtbot.waitUntil(lambda: cam.phase == "resting" and len(cam.truth()) == n_items
                        and cam.truth() not in seen, timeout=wait)
        tab_seen.append((cam.truth(),))
        index = w.controller.latest_frame().index
        qtbot.waitUntil(lambda: w.controller.latest_frame().index > index + 1, timeout=wait)
        QTest.mouseClick(tab.capture_button, Qt.MouseButton.LeftButton)

    tab_seen = []
    for n in range(3):  # three views of 黄瓜味 alone, turned between them
        capture_when_still(1)
        assert tab.thumbs.count() == n + 1, tab.status.text()
    capture_when_still(2)  # a second product joined it: refused, no view added
    assert tab.thumbs.count() == 3
    assert "只把这一件商品放在托盘上" in tab.status.text()

    tab.name.setText("黄瓜味薯片 大包")
    tab.sku.setText("CUKE-2")
    tab.price.setText("9.90")
    engine = w.controller.engine
    before = counts(engine)

    # a near-duplicate of 乐事黄瓜味薯片: staff see both and cancel; nothing is saved
    QTest.mouseClick(tab.save_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: tab.lookalike_dialog is not None
                    and tab.lookalike_dialog.isVisible(), timeout=30_000)
    dialog = tab.lookalike_dialog
    labels = " ".join(lbl.text() for lbl in dialog.existing_labels)
    assert NAME["DEMO-005"] in labels and "¥7.50" in labels and "DEMO-005" in labels
    assert dialog.new_label.text().endswith("黄瓜味薯片 大包")
    assert dialog.save_button.text() == "是不同的商品，保存"
    QTest.mouseClick(dialog.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: tab.lookalike_dialog is None, timeout=wait)
    assert not tab.busy and tab.thumbs.count() == 3
    assert counts(engine) == before and engine.catalog.get_product("CUKE-2") is None

    # again, and this time staff confirm it is a different product: saved and audited
    QTest.mouseClick(tab.save_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: tab.lookalike_dialog is not None
                    and tab.lookalike_dialog.isVisible(), timeout=30_000)
    with qtbot.waitSignal(tab.enrolled, timeout=30_000):
        QTest.mouseClick(tab.lookalike_dialog.save_button, Qt.MouseButton.LeftButton)
    assert engine.catalog.get_product("CUKE-2").price == 990
    assert counts(engine)[0] == before[0] + 1
    (row,) = engine.catalog.audit_log(action="enrol_lookalike_confirmed")
    assert row["role"] == "staff" and "DEMO-005" in row["after"]["lookalikes"]
    assert "黄瓜味薯片 大包" in tab.status.text()
