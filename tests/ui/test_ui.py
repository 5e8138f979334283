"""The kiosk UI end to end (pytest-qt, offscreen): the real window, controller, capture thread
and recognition worker, the real engine on a private copy of the demo catalogue, and a scripted
realtime demo camera.  No blind sleeps: every wait is on a condition or a signal.
"""
from __future__ import annotations

import subprocess
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytest.importorskip("pytestqt")

from PySide6.QtCore import QEvent, QPoint, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from kiosk.camera.demo import DemoCamera
from kiosk.engine import Engine
from kiosk.assemble import checkout_session
from kiosk.settings import Settings, with_changes
from kiosk.ui import i18n
from kiosk.ui.app import KioskParts, build_window, setup_application

ROOT = Path(__file__).resolve().parents[2]
WAIT = 15_000  # ms: generous for a loaded 2-core CI machine; conditions end it early

NAME = {"DEMO-001": "可口可乐 330ml", "DEMO-002": "农夫山泉 550ml", "DEMO-004": "乐事原味薯片",
        "DEMO-005": "乐事黄瓜味薯片", "DEMO-011": "红牛"}


@pytest.fixture(scope="module")
def ui_settings():
    s = with_changes(Settings(), "store", name="袋鼯麻麻 测试店")
    return with_changes(s, "staff", session_timeout_s=300)


@pytest.fixture
def app(qapp, ui_settings):
    app = setup_application(settings=ui_settings)
    i18n.set_language(app, "zh_CN")
    return app


@pytest.fixture
def make_kiosk(app, qtbot, tmp_path, copy_demo_db, embedder, ui_settings):
    """``make_kiosk(script, prepare=None)``: the kiosk window on a private demo catalogue
    with a realtime scripted demo camera; ``prepare(engine)`` runs before the window opens."""
    made = []

    def make(script, prepare=None, settings=ui_settings, settings_path=None, text_reader=None,
             camera=None):
        db = copy_demo_db(tmp_path / f"store{len(made)}")
        camera = camera or DemoCamera(fps=30, seed=3, script=script)
        engine = Engine.open(db, embedder=embedder, background=camera.background(),
                             text_reader=text_reader)
        if prepare is not None:
            prepare(engine)
        session = checkout_session(engine, settings, settle_ms=150)
        window = build_window(KioskParts(engine, session, camera, "demo", db), settings,
                              settings_path)
        qtbot.addWidget(window)
        window.resize(1280, 800)
        window.show()
        made.append((window, engine))
        window.camera = camera
        return window

    yield make
    for window, engine in made:
        window.controller.shutdown()
        window.close()
        window.deleteLater()  # gone before its catalogue closes (no late LanguageChange)
    QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    for window, engine in made:
        engine.close()


def receipt_names(window) -> list[str]:
    return [row[0] for row in window.receipt.rows()]


def wait_items(qtbot, window, skus, timeout=WAIT):
    """Until the basket holds exactly ``skus`` (a multiset), all recognised."""
    want = sorted(skus)

    def ok():
        st = window.controller.state
        return (st is not None and not st.needs_cashier
                and sorted(i.sku for i in st.items if not i.unknown) == want
                and len(st.items) == len(want))

    qtbot.waitUntil(ok, timeout=timeout)
    return window.controller.state


def tap_item(qtbot, window, item):
    centre = window.tray.box_rect(item.box).center()
    QTest.mouseClick(window.tray, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     QPoint(round(centre.x()), round(centre.y())))


CASHIER_CODE = "246810"


def add_cashier(window, cashier_id="C001", name="王芳", code=CASHIER_CODE, badge=None):
    window.cashier_auth.add(cashier_id, name, code, badge=badge, role="staff")


def type_cashier_code(qtbot, dialog, code=CASHIER_CODE):
    """Open the keypad from the "only a cashier" panel and type ``code`` key by key."""
    QTest.mouseClick(dialog.code_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.code_dialog is not None and dialog.code_dialog.isVisible(),
                    timeout=WAIT)
    pad = dialog.code_dialog
    for digit in code:
        QTest.mouseClick(pad.keys[digit], Qt.MouseButton.LeftButton)
    QTest.mouseClick(pad.keys["OK"], Qt.MouseButton.LeftButton)


def open_as_cashier(qtbot, window, item, code=CASHIER_CODE):
    """Tap the item as a cashier would: the panel asks for the cashier, the code is typed on
    the keypad, and the correction panel of that item opens."""
    tap_item(qtbot, window, item)
    qtbot.waitUntil(lambda: window.cashier_needed is not None
                    and window.cashier_needed.isVisible(), timeout=WAIT)
    type_cashier_code(qtbot, window.cashier_needed, code)
    qtbot.waitUntil(lambda: window.correction is not None and window.correction.isVisible(),
                    timeout=WAIT)
    return window.correction


# ------------------------------------------------------------------------------ shopper view
def test_items_appear_on_the_receipt_as_the_tray_changes(qtbot, make_kiosk):
    w = make_kiosk([("add", "DEMO-001", 300, 300, 20), ("wait", 1.0),
                    ("add", "DEMO-002", 800, 400, -30), ("wait", 1.0),
                    ("remove", "DEMO-001"), ("wait", 30)])
    qtbot.waitUntil(lambda: w.tray.frame_index >= 0, timeout=WAIT)  # preview is live
    wait_items(qtbot, w, ["DEMO-001"])
    assert receipt_names(w) == [NAME["DEMO-001"]]
    assert w.receipt.total_label.text() == "¥3.50"
    wait_items(qtbot, w, ["DEMO-001", "DEMO-002"])
    assert sorted(receipt_names(w)) == sorted([NAME["DEMO-001"], NAME["DEMO-002"]])
    assert w.receipt.total_label.text() == "¥5.50"
    assert w.receipt.finish_button.isEnabled()
    wait_items(qtbot, w, ["DEMO-002"])
    assert receipt_names(w) == [NAME["DEMO-002"]]
    assert w.receipt.total_label.text() == "¥2.00"
    assert w.receipt.finish_button.text() == "结账"


def test_tap_opens_candidates_and_a_choice_changes_the_receipt(qtbot, make_kiosk):
    # the look-alike pair (same bag, different flavour band): the cashier puts it right
    w = make_kiosk([("add", "DEMO-004", 640, 380, 10), ("wait", 60)])
    qtbot.waitUntil(lambda: w.controller.state is not None and len(w.controller.state.items) == 1
                    and w.controller.state.items[0].sku in ("DEMO-004", "DEMO-005"),
                    timeout=WAIT)
    item = w.controller.state.items[0]
    other = "DEMO-005" if item.sku == "DEMO-004" else "DEMO-004"
    add_cashier(w)
    dlg = open_as_cashier(qtbot, w, item)
    assert dlg.candidate_skus()[0] == item.sku  # ranked: the recognised product first
    assert other in dlg.candidate_skus()
    # search (here by barcode-free name text) and choose: the receipt changes
    dlg.search.setText("黄瓜" if other == "DEMO-005" else "原味")
    dlg.run_search()
    assert dlg.candidate_skus() == [other]
    li = dlg.candidates.item(0)
    QTest.mouseClick(dlg.candidates.viewport(), Qt.MouseButton.LeftButton,
                     Qt.KeyboardModifier.NoModifier, dlg.candidates.visualItemRect(li).center())
    qtbot.waitUntil(lambda: receipt_names(w) == [NAME[other]], timeout=WAIT)
    assert w.correction is None  # closed after the choice
    item = w.controller.state.items[0]
    assert (item.sku, item.source) == (other, "cashier")
    # quantity (opened from the receipt line this time), then remove
    rect = w.receipt.table.visualItemRect(w.receipt.table.item(0, 0))
    QTest.mouseClick(w.receipt.table.viewport(), Qt.MouseButton.LeftButton,
                     Qt.KeyboardModifier.NoModifier, rect.center())
    qtbot.waitUntil(lambda: w.correction is not None, timeout=WAIT)
    w.correction.qty.setValue(3)
    qtbot.waitUntil(lambda: w.receipt.rows() == [(NAME[other], "×3", "¥7.50", "¥22.50")],
                    timeout=WAIT)
    w.correction.remove_button.click()
    qtbot.waitUntil(lambda: w.receipt.rows() == [], timeout=WAIT)
    assert not w.receipt.finish_button.isEnabled()


@pytest.fixture(scope="module")
def remote_text_reader():
    """The pack-text reader in a model process, as the kiosk runs it (model_process on)."""
    from kiosk.embed.remote import RemoteEmbedder
    from kiosk.text import ensure_models

    with RemoteEmbedder() as remote:
        yield remote.text_reader(ensure_models())


def test_cashier_sees_the_words_read_on_the_pack(qtbot, make_kiosk, remote_text_reader):
    def read_always(engine):  # any two candidates: read the pack
        engine.decider.text_spread = 1.0
        engine.decider.k = 20

    w = make_kiosk([("add", "DEMO-004", 640, 380, 10), ("wait", 60)], prepare=read_always,
                   text_reader=remote_text_reader)
    qtbot.waitUntil(lambda: w.controller.state is not None and len(w.controller.state.items) == 1
                    and bool(w.controller.state.items[0].words), timeout=WAIT)
    item = w.controller.state.items[0]
    assert item.sku == "DEMO-004" and "原味" in item.words
    add_cashier(w)
    open_as_cashier(qtbot, w, item)
    assert "包装上读到：" in w.correction.current.text()
    assert "原味" in w.correction.current.text()
    w.correction.accept()


def test_finish_records_the_sale_and_saves_a_pdf(qtbot, make_kiosk, tmp_path):
    w = make_kiosk([("add", "DEMO-001", 300, 300, 0), ("add", "DEMO-002", 800, 420, 60),
                    ("wait", 60)])
    wait_items(qtbot, w, ["DEMO-001", "DEMO-002"])
    with qtbot.waitSignal(w.finished, timeout=WAIT) as sig:
        QTest.mouseClick(w.receipt.finish_button, Qt.MouseButton.LeftButton)
    tx = sig.args[0]
    record = w.controller.engine.catalog.get_transaction(tx)
    assert record["total"] == 550 and record["currency"] == "CNY"
    assert sorted((line["sku"], line["qty"], line["amount"]) for line in record["lines"]) == [
        ("DEMO-001", 1, 350), ("DEMO-002", 1, 200)]
    dlg = w.receipt_dialog
    assert dlg is not None and dlg.isVisible()
    text = dlg.view.toPlainText()
    assert "袋鼯麻麻 测试店" in text and f"小票号：{tx}" in text and "¥5.50" in text
    pdf = dlg.save_pdf(tmp_path / "receipt.pdf")
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 1000
    # the paid items are not charged again while they stay on the tray
    qtbot.waitUntil(lambda: w.receipt.rows() == [], timeout=WAIT)
    dlg.close_button.click()
    qtbot.waitUntil(lambda: w.receipt_dialog is None, timeout=WAIT)


def test_camera_unplugged_shows_the_banner_and_keeps_the_basket(qtbot, make_kiosk):
    w = make_kiosk([("add", "DEMO-001", 400, 300, 0), ("wait", 60)])
    wait_items(qtbot, w, ["DEMO-001"])
    assert not w.banner_visible()
    w.camera.unplug()
    qtbot.waitUntil(w.banner_visible, timeout=WAIT)
    assert w.banner.text() == "摄像头已断开，正在重新连接…"
    assert receipt_names(w) == [NAME["DEMO-001"]]  # the basket is kept
    w.set_language("en")
    assert w.banner.text() == "Camera disconnected – reconnecting…"
    w.camera.replug()
    qtbot.waitUntil(lambda: not w.banner_visible(), timeout=WAIT)
    assert receipt_names(w) == [NAME["DEMO-001"]]
    assert w.controller.camera_status == "live"
    # a frozen picture (the same frame again and again) is reported too, and clears
    w.frozen_warn_s = 0.3
    w.camera.freeze(1.5)
    qtbot.waitUntil(w.banner_visible, timeout=WAIT)
    assert w.banner.text() == "The camera picture is not changing – please check the camera."
    qtbot.waitUntil(lambda: not w.banner_visible(), timeout=WAIT)
    assert receipt_names(w) == [NAME["DEMO-001"]]


def test_language_switches_live(qtbot, make_kiosk):
    w = make_kiosk([("wait", 60)])
    assert w.receipt.finish_button.text() == "结账"
    assert w.lang_button.text() == "English"
    QTest.mouseClick(w.lang_button, Qt.MouseButton.LeftButton)
    assert w.receipt.finish_button.text() == "Finish and pay"
    assert w.receipt.title.text() == "Your items"
    assert w.lang_button.text() == "中文"
    QTest.mouseClick(w.lang_button, Qt.MouseButton.LeftButton)
    assert w.receipt.title.text() == "您的商品"


# ---------------------------------------------------------------------------------- staff
NEW = "DEMO-011"  # 红牛: deleted from the copied catalogue, then enrolled at the kiosk


def test_staff_pin_enrol_makes_a_new_product_recognised(qtbot, make_kiosk):
    w = make_kiosk(
        [("add", NEW, 640, 360, 0), ("wait", 1.0), ("shift", NEW, 0, 0, 90), ("wait", 1.0),
         ("shift", NEW, -220, 40, 135), ("wait", 1.0), ("shift", NEW, 300, -60, 60),
         ("wait", 60)],
        prepare=lambda engine: engine.remove_product(NEW))
    cam = w.camera
    # before: the kiosk does not know the can (unknown, or taken for a look-alike)
    qtbot.waitUntil(lambda: w.controller.state is not None
                    and len(w.controller.state.items) == 1, timeout=WAIT)
    assert w.controller.state.items[0].sku != NEW

    # first use: create the PIN (twice), then it is asked for
    QTest.mouseClick(w.staff_button, Qt.MouseButton.LeftButton)
    pin = w.pin_dialog
    assert pin is not None and pin.creating
    pin.enter("2468")
    pin.enter("2468")
    qtbot.waitUntil(lambda: w.in_staff_mode, timeout=WAIT)
    w.staff_page.back.click()
    assert not w.in_staff_mode
    QTest.mouseClick(w.staff_button, Qt.MouseButton.LeftButton)
    pin = w.pin_dialog
    assert not pin.creating
    pin.enter("1111")
    assert pin.isVisible() and pin.message.text() == "密码错误，请重试。"
    pin.enter("2468")
    qtbot.waitUntil(lambda: w.in_staff_mode, timeout=WAIT)

    # enrol: three views of the item alone, each after it was turned and came to rest
    enrol = w.staff_page.enrol
    assert w.staff_page.tabs.currentWidget() is enrol
    seen = []
    for _ in range(3):
        qtbot.waitUntil(lambda: cam.phase == "resting" and cam.truth() not in seen,
                        timeout=WAIT)
        seen.append(cam.truth())
        index = w.controller.latest_frame().index
        qtbot.waitUntil(lambda i=index: w.controller.latest_frame().index > i + 1, timeout=WAIT)
        assert enrol.capture_view()
    assert enrol.thumbs.count() == 3
    enrol.name.setText("红牛 250ml")
    enrol.sku.setText(NEW)
    enrol.price.setText("6.00")
    assert enrol.save_button.isEnabled()
    with qtbot.waitSignal(enrol.enrolled, timeout=30_000):
        QTest.mouseClick(enrol.save_button, Qt.MouseButton.LeftButton)
    assert "红牛 250ml" in enrol.status.text()
    assert w.controller.engine.catalog.get_product(NEW).price == 600

    # recognised on the next frames: the kiosk sees the can again after it is put back
    w.controller.set_camera(DemoCamera(fps=30, seed=5, script=[
        ("add", NEW, 500, 300, 30), ("add", "DEMO-001", 950, 450, 0), ("wait", 60)]))
    w.staff_page.back.click()
    st = wait_items(qtbot, w, [NEW, "DEMO-001"])
    assert sorted(receipt_names(w)) == sorted(["红牛 250ml", NAME["DEMO-001"]])
    assert w.receipt.total_label.text() == "¥9.50"
    assert all(not i.unknown for i in st.items)


def test_catalogue_price_deactivate_delete_and_staff_timeout(qtbot, make_kiosk):
    w = make_kiosk([("add", "DEMO-001", 400, 300, 0), ("wait", 60)])
    wait_items(qtbot, w, ["DEMO-001"])
    assert w.controller.state.receipt.total == 350
    w.auth.set_pin("1357")
    QTest.mouseClick(w.staff_button, Qt.MouseButton.LeftButton)
    w.pin_dialog.enter("1357")
    qtbot.waitUntil(lambda: w.in_staff_mode, timeout=WAIT)
    page = w.staff_page
    page.tabs.setCurrentWidget(page.catalogue)
    tab = page.catalogue
    assert "DEMO-001" in tab.skus() and len(tab.skus()) == 13
    seen = w.controller.session.recognitions
    tab.set_price("DEMO-001", "4.20")
    assert w.controller.engine.product("DEMO-001").price == 420
    # the basket shows the new price at once, without recognising the tray again
    assert w.controller.state.receipt.total == 420
    assert w.controller.session.recognitions == seen
    assert tab.select("DEMO-002")
    tab.toggle_active()
    assert not w.controller.engine.catalog.get_product("DEMO-002").active
    assert tab.active_button.text() == "上架"
    tab.delete("DEMO-003")
    assert "DEMO-003" not in tab.skus()
    assert w.controller.engine.catalog.get_product("DEMO-003") is None
    tab.filter.setText("乐事")
    assert sorted(tab.skus()) == ["DEMO-004", "DEMO-005"]
    # tray recalibration from the live (empty) tray, saved beside the catalogue
    from kiosk.engine import background_path_for

    bg = background_path_for(w.controller.db_path)
    bg.unlink()
    page.tabs.setCurrentWidget(page.tray)
    with qtbot.waitSignal(page.tray.calibrated, timeout=WAIT):
        page.tray.button.click()
    assert bg.is_file() and page.tray.message.text().startswith("校准完成")
    # staff mode closes itself after the idle timeout
    w.staff_session.timeout_s = 0.3
    qtbot.waitUntil(lambda: not w.in_staff_mode, timeout=WAIT)


# (a change made on the catalogue itself, from another thread, by whoever; what the staff
#  catalogue tab and the basket then show without being told)
STAFF_EVENTS = [
    ("price", lambda cat: cat.set_price("DEMO-001", 480, role="cli"),
     lambda tab, st: (tab_row(tab, "DEMO-001")[3] == "¥4.80" and st.receipt.total == 480)),
    ("renamed", lambda cat: cat.upsert_product("DEMO-001", "可乐 新装", role="cli"),
     lambda tab, st: (tab_row(tab, "DEMO-001")[1] == "可乐 新装"
                      and [l.name for l in st.receipt.lines] == ["可乐 新装"])),
    ("off sale", lambda cat: cat.set_active("DEMO-002", False, role="cli"),
     lambda tab, st: tab_row(tab, "DEMO-002")[5] == "否"),
    ("deleted", lambda cat: cat.delete_product("DEMO-003", role="cli"),
     lambda tab, st: "DEMO-003" not in tab.skus()),
    ("product added", lambda cat: cat.add_product("NEW-1", "新品", 100, role="cli"),
     lambda tab, st: tab_row(tab, "NEW-1")[3] == "¥1.00"),
    ("views removed", lambda cat: cat.remove_gallery_images(
        [r["id"] for r in cat.gallery_rows(sku="DEMO-004")][:4]),
     lambda tab, st: int(tab_row(tab, "DEMO-004")[4]) == views_before["DEMO-004"] - 4),
]
views_before: dict[str, int] = {}


def tab_row(tab, sku) -> list[str]:
    for r in range(tab.table.rowCount()):
        if tab.table.item(r, 2).text() == sku:
            return [tab.table.item(r, c).text() for c in range(tab.table.columnCount())]
    return []


def test_staff_tabs_and_basket_refresh_on_catalogue_events(qtbot, make_kiosk):
    """Nobody tells the widgets: each committed change reaches them as a catalogue event,
    also when it is made on another thread; a change rolled back shows nowhere."""
    import threading

    w = make_kiosk([("add", "DEMO-001", 400, 300, 0), ("wait", 60)])
    wait_items(qtbot, w, ["DEMO-001"])
    w.auth.set_pin("1357")
    QTest.mouseClick(w.staff_button, Qt.MouseButton.LeftButton)
    w.pin_dialog.enter("1357")
    qtbot.waitUntil(lambda: w.in_staff_mode, timeout=WAIT)
    page = w.staff_page
    page.tabs.setCurrentWidget(page.catalogue)
    tab, cat = page.catalogue, w.controller.engine.catalog
    views_before.update(cat.gallery_counts())
    events = []
    w.controller.catalogEvent.connect(events.append)

    def rolled_back():
        with cat.transaction():
            cat.set_price("DEMO-001", 1, role="cli")
            raise RuntimeError("not this one")

    with pytest.raises(RuntimeError):
        rolled_back()
    QApplication.processEvents()
    assert tab_row(tab, "DEMO-001")[3] == "¥3.50" and events == []
    for name, change, shows in STAFF_EVENTS:
        n = len(events)
        worker = threading.Thread(target=change, args=(cat,))
        worker.start()
        worker.join(WAIT / 1000)
        qtbot.waitUntil(lambda: len(events) > n, timeout=WAIT)
        qtbot.waitUntil(lambda: shows(tab, w.controller.state), timeout=WAIT)


def test_enrol_tab_saves_through_the_staff_intent_and_the_catalogue_tab_hears_it(
        qtbot, make_kiosk):
    """The enrol tab stores a product on a worker thread (staff_actions.enrol_new_product, one
    transaction, audited as staff); the catalogue tab shows it from the catalogue's events
    alone, and the engine recognises its views at once."""
    from kiosk.demo import scenes as demo

    w = make_kiosk([("wait", 60)], prepare=lambda engine: engine.remove_product(NEW))
    w.auth.set_pin("1357")
    QTest.mouseClick(w.staff_button, Qt.MouseButton.LeftButton)
    w.pin_dialog.enter("1357")
    qtbot.waitUntil(lambda: w.in_staff_mode, timeout=WAIT)
    page = w.staff_page
    enrol, catalogue = page.enrol, page.catalogue
    assert NEW not in catalogue.skus()
    enrol.views = [demo.gallery_frame(NEW, v).image for v in range(3)]
    enrol.name.setText("红牛 250ml")
    enrol.sku.setText(NEW)
    enrol.price.setText("6.00")
    events = []
    w.controller.catalogEvent.connect(events.append)
    with qtbot.waitSignal(enrol.enrolled, timeout=60_000):
        enrol.save()
    qtbot.waitUntil(lambda: NEW in catalogue.skus(), timeout=WAIT)
    assert [e.kind for e in events][:2] == ["product_added", "views_added"]
    assert tab_row(catalogue, NEW)[3] == "¥6.00" and int(tab_row(catalogue, NEW)[4]) == 6
    engine = w.controller.engine
    assert len(engine._ids_of[NEW]) == 6  # three views and their half turns, searchable
    (row,) = engine.catalog.audit_log(action="product_add", limit=1)
    assert row["subject"] == NEW and row["role"] == "staff"


def test_camera_tab_switches_the_camera_and_saves_the_choice(qtbot, make_kiosk, tmp_path,
                                                             ui_settings):
    from kiosk.settings import load_settings

    path = tmp_path / "settings.toml"
    w = make_kiosk([("add", "DEMO-001", 400, 300, 0), ("wait", 60)], settings_path=path)
    wait_items(qtbot, w, ["DEMO-001"])
    old = w.controller.camera
    w.enter_staff()
    tab = w.staff_page.camera
    assert tab.demo.isChecked()
    tab.device.setChecked(True)
    tab.index.setValue(7)
    tab.file.setChecked(True)
    tab.path.setText(str(tmp_path / "no-such-video.mp4"))
    tab.apply_button.click()  # a source that cannot be opened: told, old camera kept
    qtbot.waitUntil(lambda: tab.apply_button.isEnabled(), timeout=WAIT)
    assert tab.message.text().startswith("无法打开摄像头")
    assert w.controller.camera is old and not path.exists()
    tab.demo.setChecked(True)
    tab.apply_button.click()
    qtbot.waitUntil(lambda: w.controller.camera is not old, timeout=WAIT)
    assert tab.message.text() == "已切换摄像头。"
    assert load_settings(path).camera.source == "demo"
    qtbot.waitUntil(lambda: w.controller.camera_status == "live", timeout=WAIT)


def test_pin_lockout_shows_the_time_left(qtbot, app):
    from kiosk.catalog import Catalog
    from kiosk.checkout.staff_auth import StaffAuth
    from kiosk.ui.pin import PinDialog

    now = [1000.0]
    with tempfile.TemporaryDirectory() as d:
        cat = Catalog(Path(d) / "c.db")
        auth = StaffAuth(cat, max_attempts=2, lockout_s=30, clock=lambda: now[0])
        auth.set_pin("1234")
        dlg = PinDialog(auth, clock=lambda: now[0])
        qtbot.addWidget(dlg)
        dlg.enter("0000")
        dlg.enter("0000")
        assert not dlg.keys["5"].isEnabled()
        assert dlg.message.text() == "密码错误次数过多：已锁定，30 秒后可重试。"
        now[0] += 31
        dlg._refresh_lock()
        assert dlg.keys["5"].isEnabled()
        dlg.enter("1234")
        assert dlg.result() == dlg.DialogCode.Accepted
        cat.close()


def test_kiosk_mode_window_cannot_be_closed_by_the_shopper(qtbot, make_kiosk):
    w = make_kiosk([("wait", 60)])
    w.lock_down()
    w.show()
    qtbot.waitExposed(w)
    assert w.windowFlags() & Qt.WindowType.FramelessWindowHint
    assert not w.close()  # Alt+F4 / the window manager's close is refused
    assert w.isVisible()
    w._allow_close = True  # what the application does when it quits
    assert w.close()


def test_first_pin_is_not_chosen_on_a_store_kiosk(qtbot, app, tmp_path, monkeypatch):
    """On a store's catalogue a fresh kiosk has no PIN: the shopper-facing screen must not let
    anyone claim staff mode; a technician sets the PIN with ``kiosk staff-pin``."""
    import io

    from kiosk.catalog import Catalog
    from kiosk.cli import main as cli
    from kiosk.checkout.staff_auth import StaffAuth
    from kiosk.ui.pin import PinDialog

    db = tmp_path / "store.db"
    cat = Catalog(db)
    cat.add_product("STORE-1", "店内商品", 300)
    auth = StaffAuth(cat)
    dlg = PinDialog(auth, allow_create=False)
    qtbot.addWidget(dlg)
    assert dlg.unset and not dlg.creating
    assert not dlg.keys["1"].isEnabled() and not dlg.keys["K"].isEnabled()
    assert "kiosk staff-pin" in dlg.message.text()
    dlg._pin = "2468"
    dlg._submit()
    assert not auth.has_pin() and dlg.result() != dlg.DialogCode.Accepted

    monkeypatch.setattr("sys.stdin", io.StringIO("2468\n"))
    assert cli(["staff-pin", "--db", str(db), "--stdin"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("1111\n"))
    assert cli(["staff-pin", "--db", str(db), "--stdin"]) == 2  # no silent replacement
    monkeypatch.setattr("sys.stdin", io.StringIO("12\n"))
    assert cli(["staff-pin", "--db", str(db), "--stdin", "--reset"]) == 2  # too short
    dlg = PinDialog(auth, allow_create=False)
    qtbot.addWidget(dlg)
    assert not dlg.unset and not dlg.creating
    dlg.enter("2468")
    assert dlg.result() == dlg.DialogCode.Accepted
    log = [r for r in cat.audit_log() if r["action"] == "pin_set"]
    cat.close()
    assert len(log) == 1 and log[0]["role"] == "cli" and "2468" not in str(log[0])


def test_staff_button_on_a_store_catalogue_without_pin(make_kiosk, qtbot, tmp_path):
    """The real window: the demo catalogue lets the first PIN be chosen on screen; once a
    store product is in the catalogue, it no longer does."""
    w = make_kiosk([("wait", 60)])
    QTest.mouseClick(w.staff_button, Qt.MouseButton.LeftButton)
    assert w.pin_dialog is not None and w.pin_dialog.creating
    w.pin_dialog.reject()
    w.controller.engine.catalog.add_product("STORE-9", "店内商品", 300)
    QTest.mouseClick(w.staff_button, Qt.MouseButton.LeftButton)
    assert w.pin_dialog is not None and w.pin_dialog.unset
    w.pin_dialog.reject()


# ---------------------------------------------------------------------------- translations
TS = ROOT / "resources" / "i18n" / "kiosk_zh_CN.ts"
QM = ROOT / "resources" / "i18n" / "kiosk_zh_CN.qm"
BIN = Path(__import__("sys").executable).parent


def _tool(name: str) -> Path:
    path = BIN / name
    if not path.exists():
        pytest.skip(f"{name} not installed")
    return path


def test_translations_complete_and_compiled(tmp_path):
    # every UI string is in the .ts and translated
    ts = tmp_path / "check.ts"
    ts.write_bytes(TS.read_bytes())
    subprocess.run([str(_tool("pyside6-lupdate")), *sorted(map(str, (ROOT / "kiosk" / "ui")
                                                               .glob("*.py"))),
                    "-ts", str(ts), "-no-obsolete", "-locations", "none"],
                   check=True, capture_output=True)
    root = ET.parse(ts).getroot()
    missing = [m.findtext("source") for m in root.iter("message")
               if m.find("translation").get("type") == "unfinished"
               or not (m.findtext("translation") or "").strip()]
    assert not missing, f"untranslated UI strings (run resources/i18n/update.sh): {missing}"
    # the committed .qm is what lrelease makes of the .ts
    qm = tmp_path / "check.qm"
    subprocess.run([str(_tool("pyside6-lrelease")), str(TS), "-qm", str(qm)], check=True,
                   capture_output=True)
    assert qm.read_bytes() == QM.read_bytes(), "kiosk_zh_CN.qm is stale: run resources/i18n/update.sh"


# ----------------------------------------------------------------------------- screenshots
def test_screenshot_tool_renders_every_view(app, tmp_path, demo_db, embedder):
    import importlib.util

    from PySide6.QtGui import QImage

    spec = importlib.util.spec_from_file_location("screenshots", ROOT / "tools" / "screenshots.py")
    shots = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(shots)
    files = shots.render_screenshots(tmp_path, db=demo_db, embedder=embedder)
    names = sorted(p.name for p in files)
    layouts = [f"layout_{w}x{h}" for w, h in shots.SCREENS]
    assert names == sorted(f"{v}_{lang}.png" for v in (*shots.VIEWS, *layouts)
                           for lang in ("zh", "en"))
    assert {"stale", "attendant", "call", "cashier_needed", "enrol_refused",
            "lookalike"} <= set(shots.VIEWS)
    for p in files:
        img = QImage(str(p))
        size = next(((w, h) for w, h in shots.SCREENS if f"_{w}x{h}_" in p.name), (1280, 800))
        assert (img.width(), img.height()) == size, p
        assert p.stat().st_size < 400_000 * max(1, size[0] * size[1] // (1280 * 800)), p


# ------------------------------------------------------------- the till, as people use it
# Each scenario drives the real window with real mouse clicks, the real capture thread and
# recognition worker, and checks the money: the receipt against what the demo camera shows
# (it knows every scene's truth), and that Finish and pay is possible only then.
from collections import Counter  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

PRICE = {"DEMO-001": 350, "DEMO-002": 200, "DEMO-004": 750, "DEMO-005": 750, "DEMO-011": 600}


def receipt_skus(window) -> Counter:
    st = window.controller.state
    return Counter({line.sku: line.qty for line in st.receipt.lines})


def truth_skus(camera) -> Counter:
    return Counter(sku for sku, _box in camera.truth())


def assert_money_matches_the_tray(window, camera=None, expect=None):
    """The receipt is what is on the tray (``expect``: what the cashier made of it), the
    visible lines and total say so, and the shopper can pay."""
    want = Counter(expect) if expect is not None else truth_skus(camera or window.camera)
    assert receipt_skus(window) == want
    total = sum(PRICE[sku] * n for sku, n in want.items())
    assert window.receipt.total_label.text() == f"¥{total / 100:.2f}"
    assert sorted(r[0] for r in window.receipt.rows()) == sorted(NAME[s] for s in want)
    assert window.controller.state.payable and window.receipt.finish_button.isEnabled()


def assert_nothing_payable(window):
    st = window.controller.state
    assert not st.payable and not window.receipt.finish_button.isEnabled()


def settled_on(qtbot, window, skus, timeout=WAIT):
    """Until the window shows a payable receipt of exactly ``skus``."""
    want = Counter(skus)
    qtbot.waitUntil(lambda: window.controller.state is not None
                    and window.controller.state.payable and receipt_skus(window) == want,
                    timeout=timeout)


def test_camera_switch_mid_basket_to_a_frozen_picture(qtbot, make_kiosk, tmp_path):
    # staff switch the camera (staff → Camera) to a source that sends one frozen picture of
    # other goods: the old receipt must not stay payable, nor its boxes over the new picture
    from kiosk.demo import scenes as demo

    frozen = tmp_path / "frozen"
    frozen.mkdir()
    cv2.imwrite(str(frozen / "only.png"), demo.render_tray([("DEMO-011", 640, 360, 0)]).image)
    w = make_kiosk([("add", "DEMO-001", 300, 300, 0), ("add", "DEMO-002", 800, 420, 60),
                    ("wait", 60)])
    settled_on(qtbot, w, ["DEMO-001", "DEMO-002"])
    assert_money_matches_the_tray(w)
    w.enter_staff()
    tab = w.staff_page.camera
    tab.file.setChecked(True)
    tab.path.setText(str(frozen))
    QTest.mouseClick(tab.apply_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: w.controller.camera_source == str(frozen), timeout=WAIT)
    QTest.mouseClick(w.staff_page.back, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not w.in_staff_mode, timeout=WAIT)
    # at once: the old goods are gone from the receipt and from the picture
    assert receipt_skus(w) == Counter() and w.receipt.rows() == []
    assert_nothing_payable(w)
    # the picture never changes: it goes stale and stays unpayable, with no boxes drawn
    qtbot.waitUntil(lambda: w.controller.state.phase == "stale", timeout=WAIT)
    assert w.tray._items == () or list(w.tray._items) == []
    assert receipt_skus(w) == Counter() and w.receipt.rows() == []
    assert_nothing_payable(w)
    assert "not live" in w.hint.text() or "实时" in w.hint.text()
    assert w.controller.engine.catalog.table_counts()["transactions"] == 0


def turned_oreos_camera(folder: Path, code: str):
    """A live camera on the Oreos, turned so that a barcode label ``code`` on the pack shows
    (a few frames of sensor noise, so the picture is not frozen); the pictures alone are sure
    they are the Oreos (``the_pictures_are_sure_of_the_oreos`` checks it on the engine)."""
    from ean_drawing import barcode_label, paste
    from kiosk.camera import ImageFolderCamera
    from kiosk.demo import scenes as demo

    class StillTray(ImageFolderCamera):
        def background(self):
            return demo.render_tray([]).image

    oreo = ("DEMO-006", 640, 360, -20)
    tray = demo.render_tray([oreo])
    x1, _y1, x2, y2 = tray.boxes[0]
    turned = paste(tray.image, barcode_label(code, module=1, height=24), (x1 + x2) / 2,
                   y2 - 45, oreo[3])
    folder.mkdir()
    rng = np.random.default_rng(0)
    for n in range(6):
        noisy = np.clip(turned + rng.normal(0, 1.5, turned.shape), 0, 255).astype(np.uint8)
        cv2.imwrite(str(folder / f"{n}.png"), noisy)

    def the_pictures_are_sure_of_the_oreos(engine):
        (seen,) = engine.recognize(turned, barcode=False).items
        assert seen.sku == "DEMO-006" and not seen.unsure and not seen.unknown

    return StillTray(folder, fps=15), the_pictures_are_sure_of_the_oreos


def test_a_pack_showing_another_products_barcode_is_charged_as_that_product(
        qtbot, make_kiosk, tmp_path):
    # the shopper's pack looks like the Oreos, but the barcode it shows the camera is the
    # cucumber crisps': once the tray is still, the receipt in the window charges the crisps
    # (the box says "barcode") and the sale records what is on the tray
    from kiosk.demo import scenes as demo

    code = next(p.barcode for p in demo.PRODUCTS if p.sku == "DEMO-005")
    camera, check = turned_oreos_camera(tmp_path / "camera", code)
    w = make_kiosk(None, camera=camera, prepare=check)
    settled_on(qtbot, w, ["DEMO-005"], timeout=2 * WAIT)
    (item,) = w.controller.state.items
    assert item.source == "barcode" and not item.unsure
    assert_money_matches_the_tray(w, expect={"DEMO-005": 1})
    with qtbot.waitSignal(w.finished, timeout=WAIT) as sig:
        QTest.mouseClick(w.receipt.finish_button, Qt.MouseButton.LeftButton)
    record = w.controller.engine.catalog.get_transaction(sig.args[0])
    assert [(line["sku"], line["qty"]) for line in record["lines"]] == [("DEMO-005", 1)]
    assert record["total"] == PRICE["DEMO-005"]


def test_a_pack_whose_barcode_no_product_has_waits_for_the_cashier(qtbot, make_kiosk, tmp_path):
    # the pack looks like the Oreos but its barcode is no product of the store (a product never
    # enrolled): nothing is charged for it until the cashier, who sees the code, says what it is
    camera, check = turned_oreos_camera(tmp_path / "camera", "6901234567892")
    w = make_kiosk(None, camera=camera, prepare=check)
    add_cashier(w)
    qtbot.waitUntil(lambda: w.controller.state is not None and len(w.controller.state.items) == 1
                    and w.controller.state.items[0].unsure, timeout=2 * WAIT)
    assert_nothing_payable(w)
    assert receipt_skus(w) == Counter() and w.receipt.rows() == []
    dlg = open_as_cashier(qtbot, w, w.controller.state.items[0])
    assert "包装上的条码：6901234567892，没有在售商品使用此条码" in dlg.current.text()
    # the quantity shows between its − and + (its spin box has no arrows to make room for)
    assert dlg.qty.lineEdit().text() == "1"
    assert dlg.qty.lineEdit().width() >= dlg.qty.fontMetrics().horizontalAdvance("99")
    dlg.search.setText("DEMO-002")  # the cashier looks at the pack: it is the water
    dlg.run_search()
    li = dlg.candidates.item(0)
    QTest.mouseClick(dlg.candidates.viewport(), Qt.MouseButton.LeftButton,
                     Qt.KeyboardModifier.NoModifier, dlg.candidates.visualItemRect(li).center())
    qtbot.waitUntil(lambda: receipt_skus(w) == Counter({"DEMO-002": 1}), timeout=WAIT)
    QTest.mouseClick(dlg.close_button, Qt.MouseButton.LeftButton)
    w.controller.end_attendant()
    assert_money_matches_the_tray(w, expect={"DEMO-002": 1})


def test_frozen_camera_mid_basket_withdraws_the_receipt_until_fresh(qtbot, make_kiosk):
    w = make_kiosk([("add", "DEMO-001", 300, 300, 0), ("add", "DEMO-002", 800, 420, 60),
                    ("until", "take"), ("remove", "DEMO-001"), ("wait", 60)])
    settled_on(qtbot, w, ["DEMO-001", "DEMO-002"])
    w.camera.freeze(9.0)  # the picture stops changing while the shopper goes on
    w.camera.go("take")  # ... and takes the cola back off the tray meanwhile
    qtbot.waitUntil(lambda: w.controller.state.phase == "stale", timeout=WAIT)
    assert_nothing_payable(w)
    assert not w.receipt.notice.isHidden()  # the lines are shown as not checked
    assert list(w.tray._items) == []  # no boxes over a picture that is not live
    QTest.mouseClick(w.receipt.finish_button, Qt.MouseButton.LeftButton)
    assert w.controller.engine.catalog.table_counts()["transactions"] == 0
    # fresh pictures again: the tray is recognised again and the cola is not charged
    settled_on(qtbot, w, ["DEMO-002"], timeout=2 * WAIT)
    assert_money_matches_the_tray(w)


def test_camera_unplugged_mid_basket_keeps_the_cashiers_change_but_not_payment(
        qtbot, make_kiosk):
    w = make_kiosk([("add", "DEMO-001", 400, 300, 0), ("wait", 60)])
    add_cashier(w)
    settled_on(qtbot, w, ["DEMO-001"])
    dlg = open_as_cashier(qtbot, w, w.controller.state.items[0])
    dlg.qty.setValue(2)  # two cans in one shrink-wrap
    qtbot.waitUntil(lambda: receipt_skus(w) == Counter({"DEMO-001": 2}), timeout=WAIT)
    QTest.mouseClick(dlg.close_button, Qt.MouseButton.LeftButton)
    w.camera.unplug()
    qtbot.waitUntil(lambda: w.controller.state.phase == "no_camera", timeout=WAIT)
    assert_nothing_payable(w)
    assert list(w.tray._items) == []
    w.camera.replug()
    settled_on(qtbot, w, ["DEMO-001", "DEMO-001"], timeout=2 * WAIT)
    assert_money_matches_the_tray(w, expect={"DEMO-001": 2})


def test_shopper_cannot_relabel_calls_the_cashier_who_relabels_with_their_code(
        qtbot, make_kiosk):
    w = make_kiosk([("add", "DEMO-011", 640, 360, 0), ("wait", 60)])
    add_cashier(w)
    settled_on(qtbot, w, ["DEMO-011"])
    item = w.controller.state.items[0]
    catalog = w.controller.engine.catalog
    # the shopper taps the red bull to make it a bottle of water: refused, asked for a cashier
    tap_item(qtbot, w, item)
    qtbot.waitUntil(lambda: w.cashier_needed is not None and w.cashier_needed.isVisible(),
                    timeout=WAIT)
    panel = w.cashier_needed
    assert w.correction is None
    assert panel.title.text() == "只有收银员可以修改商品。"
    assert panel.choice_buttons == []  # no same-price look-alikes to choose from
    QTest.mouseClick(panel.call_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: w.cashier_needed is None, timeout=WAIT)
    # help is on the way, on screen and in the catalogue
    assert w.hint.text() == "已呼叫收银员，正在赶来，请稍候。"
    assert not w.call_button.isEnabled()
    call = catalog.calls()[0]
    assert (call["reason"], call["resolved_at"]) == ("shopper", None)
    assert_money_matches_the_tray(w, expect={"DEMO-011": 1})  # nothing changed
    # the cashier comes: a wrong code first, then the right one
    tap_item(qtbot, w, item)
    qtbot.waitUntil(lambda: w.cashier_needed is not None, timeout=WAIT)
    type_cashier_code(qtbot, w.cashier_needed, "111111")
    pad = w.cashier_needed.code_dialog
    assert pad is not None and pad.isVisible() and "错误" in pad.message.text()
    for _ in range(6):
        QTest.mouseClick(pad.keys["⌫"], Qt.MouseButton.LeftButton)
    for digit in CASHIER_CODE:
        QTest.mouseClick(pad.keys[digit], Qt.MouseButton.LeftButton)
    QTest.mouseClick(pad.keys["OK"], Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: w.correction is not None and w.correction.isVisible(),
                    timeout=WAIT)
    # the screen says who is acting
    assert not w.attendant_bar.isHidden()
    assert "王芳" in w.attendant_label.text() and "C001" in w.attendant_label.text()
    dlg = w.correction
    dlg.search.setText("农夫山泉")
    dlg.run_search()
    li = dlg.candidates.item(0)
    QTest.mouseClick(dlg.candidates.viewport(), Qt.MouseButton.LeftButton,
                     Qt.KeyboardModifier.NoModifier, dlg.candidates.visualItemRect(li).center())
    qtbot.waitUntil(lambda: receipt_skus(w) == Counter({"DEMO-002": 1}), timeout=WAIT)
    assert_money_matches_the_tray(w, expect={"DEMO-002": 1})
    row = catalog.audit_log(1, action="override")[0]
    assert (row["role"], row["actor"], row["before"], row["after"]) == (
        "cashier", "C001", {"sku": "DEMO-011"}, {"sku": "DEMO-002"})
    call = catalog.get_call(call["id"])
    assert (call["resolved_by"], call["resolution"]) == ("C001", "attended")
    # the cashier ends the session: the next tap asks for a cashier again
    QTest.mouseClick(w.attendant_end, Qt.MouseButton.LeftButton)
    assert w.attendant_bar.isHidden()
    tap_item(qtbot, w, w.controller.state.items[0])
    qtbot.waitUntil(lambda: w.cashier_needed is not None, timeout=WAIT)
    w.cashier_needed.reject()
    with qtbot.waitSignal(w.finished, timeout=WAIT) as sig:
        QTest.mouseClick(w.receipt.finish_button, Qt.MouseButton.LeftButton)
    record = catalog.get_transaction(sig.args[0])
    assert [(ln["sku"], ln["qty"], ln["amount"]) for ln in record["lines"]] == [
        ("DEMO-002", 1, 200)]
    w.receipt_dialog.close_button.click()


class BadgeCamera:
    """The demo camera, and a cashier holding a staff card on the tray when told to."""

    name = "demo camera"

    def __init__(self, inner) -> None:
        self.inner, self.card = inner, None

    def open(self):
        self.inner.open()

    def close(self):
        self.inner.close()

    def background(self):
        return self.inner.background()

    def truth(self):
        return self.inner.truth()

    def read(self):
        img = self.inner.read()
        if img is None or self.card is None:
            return img
        qr = cv2.QRCodeEncoder.create().encode(self.card)
        qr = cv2.resize(qr, None, fx=5, fy=5, interpolation=cv2.INTER_NEAREST)
        card = np.full((qr.shape[0] + 60, qr.shape[1] + 60, 3), 250, np.uint8)
        card[30:30 + qr.shape[0], 30:30 + qr.shape[1]] = qr[..., None]
        img = img.copy()
        h, w = card.shape[:2]
        img[400:400 + h, 980:980 + w] = card
        return img


def test_an_unknown_card_calls_the_cashier_and_a_badge_opens_the_session(qtbot, make_kiosk):
    camera = BadgeCamera(DemoCamera(fps=30, seed=3, script=[("add", "DEMO-001", 400, 300, 0),
                                                            ("wait", 60)]))
    w = make_kiosk(None, camera=camera)
    add_cashier(w, badge="KIOSK-BADGE-C001-7f3a")
    settled_on(qtbot, w, ["DEMO-001"])
    camera.card = "A-LOYALTY-CARD-123"  # something the kiosk does not know
    qtbot.waitUntil(lambda: any(c.reason == "unknown" for c in w.controller.state.calls),
                    timeout=WAIT)
    assert w.hint.text() == "已呼叫收银员，正在赶来，请稍候。"
    assert_nothing_payable(w)
    camera.card = "KIOSK-BADGE-C001-7f3a"  # the cashier lays their badge on the tray
    qtbot.waitUntil(lambda: w.controller.state.attendant is not None, timeout=WAIT)
    assert not w.attendant_bar.isHidden() and "王芳" in w.attendant_label.text()
    assert w.controller.state.attendant.how == "badge"
    assert w.controller.state.calls == ()
    # the badge is no item: once the card is off the tray the cola alone is charged
    camera.card = None
    settled_on(qtbot, w, ["DEMO-001"])
    assert_money_matches_the_tray(w, expect={"DEMO-001": 1})
    # and the cashier may act without typing a code
    tap_item(qtbot, w, w.controller.state.items[0])
    qtbot.waitUntil(lambda: w.correction is not None and w.correction.isVisible(),
                    timeout=WAIT)
    assert w.cashier_needed is None
    w.correction.reject()


def test_an_item_nudged_while_its_correction_panel_is_open(qtbot, make_kiosk):
    w = make_kiosk([("add", "DEMO-011", 500, 330, 0), ("add", "DEMO-001", 1000, 250, 0),
                    ("until", "nudge"), ("shift", "DEMO-011", 45, 30, 12), ("wait", 60)])
    add_cashier(w)
    settled_on(qtbot, w, ["DEMO-011", "DEMO-001"])
    item = next(i for i in w.controller.state.items if i.sku == "DEMO-011")
    dlg = open_as_cashier(qtbot, w, item)
    w.camera.go("nudge")  # the shopper bumps the red bull while the cashier looks at it
    qtbot.waitUntil(lambda: w.controller.state.payable and any(
        i.track_id == item.track_id and i.box != item.box for i in w.controller.state.items),
        timeout=WAIT)
    assert w.correction is dlg and dlg.isVisible() and dlg.track_id == item.track_id
    assert dlg.current.text().startswith("当前：红牛")  # still bound to the red bull
    assert dlg.candidates.isEnabled()
    dlg.search.setText("农夫山泉")
    dlg.run_search()
    li = dlg.candidates.item(0)
    QTest.mouseClick(dlg.candidates.viewport(), Qt.MouseButton.LeftButton,
                     Qt.KeyboardModifier.NoModifier, dlg.candidates.visualItemRect(li).center())
    qtbot.waitUntil(lambda: receipt_skus(w) == Counter({"DEMO-002": 1, "DEMO-001": 1}),
                    timeout=WAIT)
    assert_money_matches_the_tray(w, expect={"DEMO-002": 1, "DEMO-001": 1})


def test_the_correction_panel_says_plainly_when_its_item_left(qtbot, make_kiosk):
    w = make_kiosk([("add", "DEMO-011", 500, 330, 0), ("add", "DEMO-001", 1000, 250, 0),
                    ("until", "take"), ("remove", "DEMO-011"), ("wait", 60)])
    add_cashier(w)
    settled_on(qtbot, w, ["DEMO-011", "DEMO-001"])
    item = next(i for i in w.controller.state.items if i.sku == "DEMO-011")
    dlg = open_as_cashier(qtbot, w, item)
    w.camera.go("take")
    qtbot.waitUntil(lambda: dlg.current.text() == "这件商品已不在托盘上。", timeout=WAIT)
    assert not dlg.candidates.isEnabled() and not dlg.remove_button.isEnabled()
    settled_on(qtbot, w, ["DEMO-001"])
    assert_money_matches_the_tray(w)
    dlg.reject()


def test_shopper_picks_between_same_price_look_alikes_where_the_store_allows(
        qtbot, make_kiosk, ui_settings):
    settings = with_changes(ui_settings, "cashier", shopper_same_price_choice=True)
    w = make_kiosk([("add", "DEMO-004", 640, 380, 10), ("wait", 60)], settings=settings)
    qtbot.waitUntil(lambda: w.controller.state is not None and w.controller.state.payable
                    and len(w.controller.state.items) == 1, timeout=WAIT)
    item = w.controller.state.items[0]
    # the two crisp flavours cost ¥7.50 each and the pictures barely tell them apart
    assert item.same_price and set(item.rivals) | {item.sku} == {"DEMO-004", "DEMO-005"}
    tap_item(qtbot, w, item)
    qtbot.waitUntil(lambda: w.cashier_needed is not None and w.cashier_needed.isVisible(),
                    timeout=WAIT)
    panel = w.cashier_needed
    assert not panel.choice_caption.isHidden()
    by_sku = {b.property("sku"): b for b in panel.choice_buttons}
    assert set(by_sku) == {"DEMO-004", "DEMO-005"}
    assert "¥7.50" in by_sku["DEMO-005"].text() and NAME["DEMO-005"] in by_sku["DEMO-005"].text()
    QTest.mouseClick(by_sku["DEMO-005"], Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: receipt_skus(w) == Counter({"DEMO-005": 1}), timeout=WAIT)
    assert w.controller.state.items[0].source == "shopper"
    assert_money_matches_the_tray(w, expect={"DEMO-005": 1})
    row = w.controller.engine.catalog.audit_log(1, action="shopper_choice")[0]
    assert (row["role"], row["after"]["sku"]) == ("shopper", "DEMO-005")


# ------------------------------------------------------------------ touch and screen sizes
SCREENS = [(1280, 800), (1366, 768), (1920, 1080), (2560, 1440), (1080, 1920)]


def _touch_targets(root):
    """Every visible button of ``root`` (and the receipt's lines) with its size."""
    from PySide6.QtWidgets import QPushButton

    for b in root.findChildren(QPushButton):
        if b.isVisibleTo(root) and b.objectName() != "KeyboardKey":
            yield b.text() or b.objectName(), b.width(), b.height()


@pytest.mark.parametrize("size", SCREENS, ids=[f"{w}x{h}" for w, h in SCREENS])
def test_layout_at_every_screen_size_keeps_pay_visible_and_targets_big(qtbot, make_kiosk, size):
    from PySide6.QtCore import QRect

    w = make_kiosk([("add", "DEMO-001", 300, 300, 0), ("add", "DEMO-002", 800, 420, 60),
                    ("wait", 60)])
    w.resize(*size)
    qtbot.waitUntil(lambda: (w.width(), w.height()) == size, timeout=WAIT)
    w.apply_scale()
    settled_on(qtbot, w, ["DEMO-001", "DEMO-002"])
    for lang in ("zh_CN", "en"):
        w.set_language(lang)
        w._on_camera("lost", "")  # a warning banner on top: must not push Pay off screen
        QApplication.processEvents()
        assert (w.width(), w.height()) == size  # the banner did not grow the window
        whole = QRect(0, 0, *size)
        for widget in (w.receipt.finish_button, w.receipt.total_label):
            r = QRect(widget.mapTo(w, QPoint(0, 0)), widget.size())
            assert whole.contains(r) and widget.isVisible(), (size, lang, widget, r)
        assert w.touch >= 56
        small = [t for t in _touch_targets(w) if min(t[1], t[2]) < w.touch]
        assert not small, (size, lang, w.touch, small)
        rows = w.receipt.table
        assert all(rows.rowHeight(r) >= w.touch for r in range(rows.rowCount()))
        w._on_camera("live", "")
    portrait = size[1] > size[0]
    tray, receipt = w.tray.mapTo(w, QPoint(0, 0)), w.receipt.mapTo(w, QPoint(0, 0))
    assert (receipt.y() > tray.y()) if portrait else (receipt.x() > tray.x())


def test_on_screen_keyboard_types_a_search_and_a_price(qtbot, make_kiosk):
    from kiosk.ui.keyboard import KeyboardManager

    w = make_kiosk([("add", "DEMO-011", 640, 360, 0), ("wait", 60)])
    add_cashier(w)
    settled_on(qtbot, w, ["DEMO-011"])
    manager = QApplication.instance()._kiosk_keyboard
    assert isinstance(manager, KeyboardManager)
    dlg = open_as_cashier(qtbot, w, w.controller.state.items[0])
    QTest.mouseClick(dlg.search, Qt.MouseButton.LeftButton)  # a tap on the search field
    dlg.search.setFocus()
    qtbot.waitUntil(lambda: manager.visible_board() is not None, timeout=WAIT)
    board = manager.visible_board()
    assert board.parentWidget() is dlg and board.kind == "search"  # inside the modal dialog
    for key in "DEMO-002":
        QTest.mouseClick(board.keys[key.upper()], Qt.MouseButton.LeftButton)
    assert dlg.search.text() == "demo-002"  # lower case until shift
    QTest.mouseClick(board.keys["⏎"], Qt.MouseButton.LeftButton)
    assert dlg.candidate_skus() == ["DEMO-002"]
    QTest.mouseClick(board.keys["⌫"], Qt.MouseButton.LeftButton)
    assert dlg.search.text() == "demo-00"
    assert all(b.height() >= 56 for b in board.keys.values())
    QTest.mouseClick(board.keys["⌨▾"], Qt.MouseButton.LeftButton)
    assert manager.visible_board() is None
    dlg.reject()
    # staff: the price field gets the digit keys
    w.enter_staff()
    enrol = w.staff_page.enrol
    w.activateWindow()
    qtbot.waitUntil(w.isActiveWindow, timeout=WAIT)
    QTest.mouseClick(enrol.price, Qt.MouseButton.LeftButton)
    enrol.price.setFocus()
    qtbot.waitUntil(lambda: manager.visible_board() is not None, timeout=WAIT)
    board = manager.visible_board()
    assert board.kind == "digits" and board.parentWidget() is w
    for key in "7.50":
        QTest.mouseClick(board.keys[key], Qt.MouseButton.LeftButton)
    assert enrol.price.text() == "7.50"


def test_a_cashier_answer_is_learned_and_recognised_at_once_in_the_window(qtbot, make_kiosk):
    # a new pack of red bull the catalogue has a product for, but no picture of yet
    def new_pack(engine):
        engine.remove_product("DEMO-011")
        engine.catalog.add_product("RB-NEW", "红牛 新包装", 650, role="staff")

    w = make_kiosk([("add", "DEMO-011", 500, 330, 0), ("until", "take"),
                    ("remove", "DEMO-011"), ("wait", 1.0), ("add", "DEMO-011", 900, 420, 40),
                    ("wait", 60)], prepare=new_pack)
    add_cashier(w)
    qtbot.waitUntil(lambda: w.controller.state is not None and len(w.controller.state.items) == 1
                    and w.controller.state.items[0].needs_cashier, timeout=WAIT)
    assert_nothing_payable(w)
    dlg = open_as_cashier(qtbot, w, w.controller.state.items[0])
    dlg.search.setText("RB-NEW")
    dlg.run_search()
    li = dlg.candidates.item(0)
    QTest.mouseClick(dlg.candidates.viewport(), Qt.MouseButton.LeftButton,
                     Qt.KeyboardModifier.NoModifier, dlg.candidates.visualItemRect(li).center())
    qtbot.waitUntil(lambda: receipt_skus(w) == Counter({"RB-NEW": 1}), timeout=WAIT)
    catalog = w.controller.engine.catalog
    qtbot.waitUntil(lambda: catalog.gallery_counts().get("RB-NEW", 0) > 0, timeout=WAIT)
    w.controller.end_attendant()
    # the shopper takes the can off and puts it back elsewhere: no cashier needed this time
    w.camera.go("take")
    qtbot.waitUntil(lambda: w.controller.state.payable and receipt_skus(w) == Counter(
        {"RB-NEW": 1}) and w.controller.state.items[0].source == "recognized",
        timeout=2 * WAIT)
    assert w.controller.state.attendant is None and w.controller.state.calls == ()
    assert w.receipt.total_label.text() == "¥6.50"
    row = catalog.audit_log(None)
    assert any(r["actor"] == "C001" and "learn" in r["action"] for r in row)
