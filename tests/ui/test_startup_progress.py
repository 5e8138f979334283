"""A first start that shows its work: the engine reports how opening a catalogue goes
(kiosk.progress), sells as soon as pictures and index are ready while the pack text is read in
the background, and the starting screen says it in plain words with a determinate bar."""
from __future__ import annotations

import sqlite3
import threading

import pytest

from kiosk.engine import Engine
from kiosk.images import load_image
from kiosk.progress import EMBED, INDEX, MODEL, TEXT, Throttle
from kiosk.text import READER_ID

STALE = ("DEMO-001", "DEMO-002", "DEMO-003")  # 3 products x 5 views x 2 (half-turns) = 30
UNREAD = ("DEMO-005",)  # a crisps look-alike: its words tell it from DEMO-004 (5 views x 2)


def _recorder():
    seen: list[tuple[str, int, int, str]] = []
    return seen, lambda stage, done, total: seen.append(
        (stage, done, total, threading.current_thread().name))


def _counts(seen, stage):
    return [(d, t) for s, d, t, _ in seen if s == stage]


def test_reembedding_reports_counts_up_to_the_total(tmp_path, copy_demo_db, embedder):
    db = copy_demo_db(tmp_path / "store")
    with sqlite3.connect(db) as conn:  # as if embedded by an older model
        marks = ",".join("?" * len(STALE))
        n = conn.execute(f"UPDATE gallery_images SET model_id = 'older@1' WHERE sku IN "
                         f"({marks})", STALE).rowcount
    assert n == 30
    seen, progress = _recorder()
    engine = Engine.open(db, embedder=embedder, progress=progress)
    try:
        assert engine.reembedded == 30
        embed = _counts(seen, EMBED)
        assert embed[0] == (0, 30) and embed[-1] == (30, 30)
        done = [d for d, _ in embed]
        assert done == sorted(set(done)), embed  # strictly increasing
        assert {t for _, t in embed} == {30}
        index = _counts(seen, INDEX)  # the new rows went into the index
        assert index and index[-1] == (30, 30), seen
        assert [s for s, *_ in seen] == [EMBED] * len(embed) + [INDEX] * len(index)
    finally:
        engine.close()


def test_sells_before_the_pack_text_is_read_then_the_words_arrive(
        tmp_path, copy_demo_db, embedder, text_reader, demo_trays):
    db = copy_demo_db(tmp_path / "store")
    with sqlite3.connect(db) as conn:  # e.g. imported by `kiosk gallery import`
        conn.execute(f"DELETE FROM gallery_text WHERE sku IN ({','.join('?' * len(UNREAD))})",
                     UNREAD)
    seen, progress = _recorder()
    engine = Engine.open(db, embedder=embedder, text_reader=text_reader, progress=progress,
                         defer_text=True)
    try:
        assert not _counts(seen, TEXT)  # nothing read while opening ...
        assert _counts(seen, MODEL) == [(0, 1), (1, 1)]  # ... but the reader's models loaded
        assert engine.text_pending == 10 and engine.text_backfilled == 0
        assert not engine._text.has("DEMO-005") and engine._text.has("DEMO-004")
        tray = next(t for t in demo_trays if t["image"].name == "tray_01.png")
        image = load_image(tray["image"])
        crops = engine.detector.detect(image).crops(image)

        def decide():
            return {d.sku: d for d in engine.recognize_crops(crops)}

        # it sells by the pictures; the two look-alike crisps are not weighed by words while
        # one of them is unread (only the other one's words would count): the cashier looks
        before = decide()
        assert sorted(before) == sorted(i["sku"] for i in tray["items"])
        assert not before["DEMO-001"].unsure
        assert before["DEMO-004"].unsure and before["DEMO-005"].unsure
        assert not any(d.text_settled for d in before.values())

        thread = engine.start_reading_text(progress)
        assert thread is not None and thread is not threading.current_thread()
        assert engine.wait_for_text(120)
        text = _counts(seen, TEXT)
        assert text[0] == (0, 10) and text[-1] == (10, 10)
        assert [d for d, _ in text] == sorted({d for d, _ in text})
        assert {name for s, *_, name in seen if s == TEXT} == {"kiosk-pack-text"}
        # the engine took the words up without being reopened
        assert engine._text.has("DEMO-004") and engine._text.has("DEMO-005")
        after = decide()  # the words now settle the look-alikes
        assert sorted(after) == sorted(before)
        assert after["DEMO-005"].text_settled and not after["DEMO-005"].unsure
        assert after["DEMO-004"].text_settled and not after["DEMO-004"].unsure
        assert engine.catalog.files_without_words(READER_ID) == []
        assert engine.text_backfilled == 10 and engine.text_pending == 0
        assert engine.start_reading_text() is None  # nothing left
    finally:
        engine.close()


def test_throttle_passes_first_and_last_and_at_most_ten_a_second():
    clock = [0.0]
    out = []
    throttle = Throttle(lambda *a: out.append(a), interval=0.1, clock=lambda: clock[0])
    for i in range(101):  # 100 steps in 0.5 s
        throttle("embed", i, 100)
        clock[0] += 0.005
    assert out[0] == ("embed", 0, 100) and out[-1] == ("embed", 100, 100)
    assert len(out) <= 0.5 / 0.1 + 2
    throttle("embed", 100, 100)  # never twice the same count
    throttle("index", 0, 10)  # a new stage passes at once
    assert out[-1] == ("index", 0, 10) and out.count(("embed", 100, 100)) == 1
    throttle("index", 10, 10)
    throttle("index", 0, 10)  # 0 starts the stage again
    assert out[-2:] == [("index", 10, 10), ("index", 0, 10)]


# ----------------------------------------------------------------- the starting screen
pytest.importorskip("pytestqt")


@pytest.fixture
def splash(qapp, qtbot):
    from kiosk.ui.app import StartingScreen

    screen = StartingScreen()
    qtbot.addWidget(screen)
    return screen


def _report_from_worker(splash, reports):
    """Feed reports the way start-up does: a throttled ``splash.report`` called on a worker
    thread (``open_parts`` runs on one)."""
    progress = Throttle(splash.report)
    worker = threading.Thread(target=lambda: [progress(*r) for r in reports])
    worker.start()
    worker.join()


def test_starting_screen_counts_pictures_with_a_determinate_bar(qapp, qtbot, splash):
    from kiosk.ui import i18n

    i18n.set_language(qapp, "en")
    assert splash.bar.maximum() == 0  # busy until there is something to count
    _report_from_worker(splash, [("model", 0, 1)])
    qtbot.waitUntil(lambda: "recognition model" in splash.message.text())
    assert splash.bar.maximum() == 0
    _report_from_worker(splash, [("model", 1, 1), ("embed", 120, 325)])
    qtbot.waitUntil(lambda: "120 of 325" in splash.message.text())
    assert splash.message.text() == ("Learning the catalogue's pictures: 120 of 325 — "
                                     "estimating…")
    assert (splash.bar.minimum(), splash.bar.maximum(), splash.bar.value()) == (0, 325, 120)


def test_starting_screen_estimates_the_time_left_in_both_languages(qapp, qtbot, splash):
    from kiosk.ui import i18n

    i18n.set_language(qapp, "en")
    splash.show_progress("embed", 0, 325, now=100.0)
    assert splash.message.text().endswith("estimating…")
    # the time left comes from the rate so far: 160 pictures in 40 s, 165 to go
    splash.show_progress("embed", 160, 325, now=140.0)
    assert splash.message.text() == ("Learning the catalogue's pictures: 160 of 325 — "
                                     "about 40 s left")
    splash.show_progress("embed", 200, 325, now=150.0)
    i18n.set_language(qapp, "zh_CN")  # the same report in the shopper's language
    qtbot.waitUntil(lambda: "第 200 张，共 325 张" in splash.message.text())
    assert splash.message.text() == ("正在学习商品目录的图片：第 200 张，共 325 张 — "
                                     "约剩 30 秒")
    splash.show_progress("index", 5, 325, now=151.0)  # a new stage, a new rate
    assert splash.message.text() == "正在建立检索索引：5 / 325 — 正在估算剩余时间…"
    assert splash.bar.maximum() == 325 and splash.bar.value() == 5
    i18n.set_language(qapp, "en")
