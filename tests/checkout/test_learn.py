"""Learning from every answer (kiosk.checkout.learn), the "ask instead of guessing" rule table-driven, and
``kiosk eval-stream``.  Real engine, catalogue and index on a copy of the demo catalogue."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from kiosk.demo import scenes as demo
from kiosk.assemble import checkout_session
from kiosk.camera import Frame
from kiosk.decide import Decider
from kiosk.engine import Engine
from kiosk.checkout.learn import Learner, LearnPolicy
from kiosk.checkout.session import SETTLED
from kiosk.pipeline import price_rivals
from kiosk.settings import Settings, with_changes
from kiosk.tools.stream_eval import item_outcome, run_stream

CASHIER = SimpleNamespace(id="C001", name="王芳")
ITEM = ("DEMO-001", 400, 300, 10)  # cola


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def engine(tmp_path, copy_demo_db, embedder):
    e = Engine.open(copy_demo_db(tmp_path / "store"), embedder=embedder)
    e.catalog.add_product("NEW-1", "新口味可乐", 380)  # a new flavour, no views yet
    yield e
    e.close()


@pytest.fixture(scope="module")
def crops():
    """Upright cut-outs of demo products as the kiosk's camera cuts them, by sku and view."""
    return {(s, v): demo.gallery_view(s, v) for s in ("DEMO-001", "DEMO-002", "DEMO-003",
                                                      "DEMO-006", "DEMO-009")
            for v in (7, 8)}


@pytest.fixture(scope="module")
def cola():
    """The cola of ITEM cut out of a tray picture, as the checkout cuts it."""
    from kiosk.detect.tray import TraySegmenter

    image = demo.render_tray([ITEM]).image
    return TraySegmenter(background=demo.empty_tray()).detect(image).crops(image)[0]


def decide(engine, crop):
    return engine.recognize_crops([crop])[0]


def show(session, image, clock, index=[0]):
    state = None
    for _ in range(12):
        index[0] += 1
        s = session.process(Frame(image, index[0], clock.t))
        clock.t += 0.1
        state = s or state
    assert session.state.phase == SETTLED
    return session.state


# ------------------------------------------------------------------ the kiosk learns at once
def test_a_cashier_answer_is_recognised_at_once_in_the_checkout(engine):
    # a can the store sells under a new listing that has no pictures yet (its old listing
    # and pictures are gone): the kiosk cannot know it
    engine.remove_product("DEMO-011")
    clock = Clock()
    session = checkout_session(engine, Settings(), settle_ms=300, clock=clock)
    image = demo.render_tray([("DEMO-011", 400, 300, 10)]).image
    item = show(session, image, clock).items[0]
    assert item.sku != "NEW-1"
    was = item.sku
    session.open_attendant(CASHIER)
    session.override(item.track_id, "NEW-1")  # the cashier searches it and picks it
    session.on_answer.flush()  # (learned on the learner's own thread)
    learned = engine.catalog.learned_views("NEW-1")
    assert [(v["status"], v["source"], v["actor"]) for v in learned] == [
        ("approved", "cashier", "C001")]
    assert Path(learned[0]["picture"]).is_file() and Path(learned[0]["file"]).is_file()
    # the same can put down again: now recognised, charged without the cashier
    session.end_attendant()
    session.reset()
    again = show(session, image, clock).items[0]
    assert again.sku == "NEW-1" and not again.needs_cashier and again.source == "recognized"
    assert again.price == 380
    audit = engine.catalog.audit_log(action="learn_view")
    assert audit[0]["actor"] == "C001" and audit[0]["role"] == "cashier"
    assert audit[0]["after"]["was"] == was


def test_paid_items_are_learned_only_when_the_settings_say_so(engine):
    clock = Clock()
    settings = with_changes(Settings(), "learning", learn_paid_items=True, near_duplicate=0.999)
    session = checkout_session(engine, settings, settle_ms=300, clock=clock)
    show(session, demo.render_tray([("DEMO-002", 400, 300, 40)]).image, clock)
    session.finish()
    session.on_answer.flush()
    assert [v["source"] for v in engine.catalog.learned_views("DEMO-002")] == ["paid"]
    off = checkout_session(engine, Settings(), settle_ms=300, clock=clock)
    show(off, demo.render_tray([("DEMO-009", 600, 300, 20)]).image, clock)
    off.finish()
    off.on_answer.flush()
    assert engine.catalog.learned_views("DEMO-009") == []


# a paid item is learned only when its pictures named it clearly (a close call may be a wrong
# charge, and a wrong view teaches more of them); a person's answer is learned whatever the call
PAID_RULES = [
    # name, source, decision (None: none), status
    ("paid, clearly ahead by its pictures", "paid", dict(margin=0.25), "added"),
    ("paid, exactly at paid_min_margin", "paid", dict(margin=0.10), "added"),
    ("paid, no other product near", "paid", dict(), "added"),
    ("paid, a close call", "paid", dict(margin=0.06), "unclear"),
    ("paid, unsure (accepted at the same price)", "paid", dict(margin=0.3, unsure=True),
     "unclear"),
    ("paid, settled by the pack's words", "paid", dict(margin=0.3, by_text=True), "unclear"),
    ("paid, no decision", "paid", None, "unclear"),
    ("the cashier's answer to a close call", "cashier", dict(margin=0.01, unsure=True),
     "added"),
]


@pytest.mark.parametrize("name, source, decision, status", PAID_RULES,
                         ids=[r[0] for r in PAID_RULES])
def test_paid_items_are_learned_only_when_their_pictures_were_clear(engine, crops, name,
                                                                    source, decision, status):
    from kiosk.decide import Decision

    policy = LearnPolicy(paid_items=True, near_duplicate=0.999)
    assert policy.paid_min_margin == 0.10
    d = None if decision is None else Decision("DEMO-002", 0.9, False, **decision)
    r = Learner(engine, policy)(crops[("DEMO-002", 7)], "DEMO-002", source=source,
                                cashier="C001" if source == "cashier" else None, decision=d)
    assert r.status == status
    views = engine.catalog.learned_views("DEMO-002")
    assert len(views) == (status == "added")
    with pytest.raises(ValueError):
        LearnPolicy(paid_min_margin=1.5)


# ------------------------------------------------------------------ diversity and budget
def test_a_near_duplicate_view_is_dropped(engine, crops):
    learner = Learner(engine, LearnPolicy(near_duplicate=0.95))
    crop = crops[("DEMO-001", 7)]
    first = learner(crop, "NEW-1", cashier="C001")
    assert first.status == "added"
    again = learner(crop.copy(), "NEW-1", cashier="C001")
    assert again.status == "duplicate" and again.similarity > 0.99
    assert len(engine.catalog.learned_views("NEW-1")) == 1


def test_over_budget_the_least_useful_learned_view_goes_never_an_enrolment_view(engine, crops):
    enrolled = set(engine.catalog.gallery_ids_for_files(
        "DEMO-001", [f for _, f in engine.catalog.gallery_files("DEMO-001")]))
    assert enrolled
    learner = Learner(engine, LearnPolicy(views_per_product=2, near_duplicate=0.999))
    results = [learner(crops[(s, 7)], "DEMO-001", cashier="C001")
               for s in ("DEMO-002", "DEMO-003", "DEMO-006", "DEMO-009")]
    assert all(r.status in ("added", "redundant") for r in results)
    views = engine.catalog.learned_views("DEMO-001")
    assert sum(v["status"] == "approved" for v in views) == 2
    assert sum(v["status"] == "evicted" for v in views) == 2
    live = set(engine._ids_of["DEMO-001"])
    assert enrolled <= live  # every enrolment view kept
    assert len(live) == len(enrolled) + 2 * 2  # two learned views, each as cut and turned
    for v in views:
        if v["status"] == "evicted":
            assert not Path(v["picture"]).exists()
    assert engine.catalog.audit_log(action="learn_view_evicted")[0]["role"] == "system"


# ------------------------------------------------------------------ approval, undo, purge
def test_queued_views_are_not_searchable_until_approved(engine, cola):
    learner = Learner(engine, LearnPolicy(approval="queue"))
    crop = cola
    r = learner(crop, "NEW-1", cashier="C001")
    assert r.status == "pending"
    assert decide(engine, crop).sku == "DEMO-001"
    assert engine.catalog.audit_log(action="learn_view_queued")[0]["actor"] == "C001"
    assert learner.approve(r.view_id, actor="staff").status == "added"
    assert decide(engine, crop).sku == "NEW-1"
    row = engine.catalog.audit_log(action="learn_view_approved")[0]
    assert row["role"] == "staff" and row["after"] == {"view": r.view_id}


def test_undo_takes_a_learned_view_out_at_once_and_purge_deletes_it(engine, cola):
    learner = Learner(engine, LearnPolicy())
    crop = cola
    r = learner(crop, "NEW-1", cashier="C001")
    assert decide(engine, crop).sku == "NEW-1"
    assert learner.undo(r.view_id) == 2  # as cut and half-turned
    assert decide(engine, crop).sku == "DEMO-001"
    view = engine.catalog.get_learned_view(r.view_id)
    assert view["status"] == "undone" and Path(view["picture"]).is_file()
    assert engine.catalog.gallery_rows("NEW-1") == []
    learner.approve(r.view_id)  # staff changed their mind: back, from the lossless picture
    assert decide(engine, crop).sku == "NEW-1"
    assert learner.purge(r.view_id) == 2
    assert decide(engine, crop).sku == "DEMO-001"
    assert not Path(view["picture"]).exists()
    assert [a["action"] for a in engine.catalog.audit_log(5)][:4] == [
        "learn_view_purged", "learn_view_approved", "learn_view_undone", "learn_view"]
    # the index agrees with the catalogue after a restart
    engine.save()
    reopened = Engine.open(engine.catalog.path, embedder=engine.embedder)
    try:
        assert decide(reopened, crop).sku == "DEMO-001"
    finally:
        reopened.catalog.close()


def test_learned_views_refit_the_stores_adaptation_and_undo_refits_it_again(engine, crops):
    a = engine.adaptation
    assert a is not None and a.active  # on by default ([recognition] adapt)
    fits = a.fits
    learner = Learner(engine, LearnPolicy(near_duplicate=0.999))
    views = [crops[(s, v)] for s in ("DEMO-002", "DEMO-003", "DEMO-006", "DEMO-009")
             for v in (7, 8)]
    added = [learner(v, "NEW-1", cashier="C001") for v in views[:5]]
    assert all(r.status == "added" for r in added)
    # five views, each as cut and half-turned: ten rows, one refit (refit_every 10)
    assert a.fits == fits + 1
    # the checkout decides by the adapted similarity: the score of a learned view's own
    # picture is its adapted cosine with itself, whatever the model's similarity says
    ids, vectors = engine.vectors_of("NEW-1")
    q = engine.embedder.embed([views[0]]).vectors
    d = engine.decide_vectors(q)[0]
    assert d.sku == "NEW-1"
    assert d.score == pytest.approx(float((a.transform(q) @ a.vectors_of(ids, None).T).max()),
                                    abs=2e-3)
    for n, r in enumerate(added[:4]):  # each undone view stops weighing at once: a refit
        learner.undo(r.view_id)
        assert a.fits == fits + 2 + n
    assert not set(engine.vectors_of("NEW-1")[0].tolist()) - set(a._rows)


def test_one_cashier_cannot_flood_a_product(engine, crops):
    clock = Clock(50_000.0)
    learner = Learner(engine, LearnPolicy(per_cashier_per_product_per_hour=2,
                                          near_duplicate=0.999), clock=clock)
    views = [crops[(s, v)] for s in ("DEMO-002", "DEMO-003", "DEMO-006") for v in (7, 8)]
    got = [learner(views[i], "NEW-1", cashier="C001").status for i in range(3)]
    assert got == ["added", "added", "flood"]
    assert learner(views[3], "NEW-1", cashier="C002").status == "added"  # another cashier
    refused = engine.catalog.audit_log(action="learn_view_refused")
    assert refused[0]["actor"] == "C001"
    clock.t += 3601
    assert learner(views[4], "NEW-1", cashier="C001").status == "added"


def test_the_policy_decides_what_is_learned(engine, crops):
    off = Learner(engine, LearnPolicy(cashier_answers=False))
    assert off(crops[("DEMO-002", 7)], "NEW-1", cashier="C001").status == "off"
    assert Learner(engine)(crops[("DEMO-002", 7)], "NEW-1", source="paid").status == "off"
    assert Learner(engine)(crops[("DEMO-002", 7)], "NO-SUCH").status == "no_product"


# ------------------------------------------------------------------ asking instead of guessing
# (best similarity of each product among the neighbours, at the default unsure margin) -> what
# the till does.  Demo prices:
# DEMO-004 and DEMO-005 ¥7.50 each, DEMO-006 ¥6.00, DEMO-011 ¥6.00, DEMO-001 ¥3.50.
RULES = [
    # name, neighbours (sku, similarity), label, accept_same_price, text_settled, outcome
    ("clear winner, right", [("DEMO-001", 0.90), ("DEMO-006", 0.60)], "DEMO-001", True,
     False, "ok"),
    ("clear winner, wrong", [("DEMO-001", 0.90), ("DEMO-006", 0.60)], "DEMO-006", True,
     False, "silent"),
    ("below the threshold", [("DEMO-001", 0.40), ("DEMO-006", 0.30)], "DEMO-001", True,
     False, "cashier"),
    ("close rival, other price", [("DEMO-001", 0.80), ("DEMO-006", 0.79)], "DEMO-001", True,
     False, "cashier"),
    ("close rival just outside the margin", [("DEMO-001", 0.80), ("DEMO-006", None)],
     "DEMO-001", True, False, "ok"),
    ("close rival, same price", [("DEMO-004", 0.80), ("DEMO-005", 0.79)], "DEMO-004", True,
     False, "ok"),
    ("close rival, same price, wrong", [("DEMO-004", 0.80), ("DEMO-005", 0.79)], "DEMO-005",
     True, False, "silent"),
    ("close rival, same price not accepted", [("DEMO-004", 0.80), ("DEMO-005", 0.79)],
     "DEMO-004", False, False, "cashier"),
    ("close rival, the pack's words settle it", [("DEMO-001", 0.80), ("DEMO-006", 0.79)],
     "DEMO-001", True, True, "ok"),
    ("no other product near", [("DEMO-011", 0.70)], "DEMO-011", True, False, "ok"),
]


@pytest.mark.parametrize("name,neighbours,label,same_price,settled,outcome", RULES,
                         ids=[r[0] for r in RULES])
def test_unsure_rules(demo_engine, name, neighbours, label, same_price, settled, outcome):
    from dataclasses import replace

    margin = demo_engine.decider.unsure_margin  # the settings' default
    assert margin > 0.01
    # (None: just outside the margin)
    neighbours = [(sku, 0.80 - margin - 0.001 if s is None else s) for sku, s in neighbours]
    decider = Decider(threshold=0.54, unsure_margin=margin)
    ids = np.arange(len(neighbours))
    d = decider.decide_one(ids, np.array([s for _, s in neighbours]),
                           {i: sku for i, (sku, _) in enumerate(neighbours)})
    if settled:
        d = replace(d, text_settled=True, unsure=False)
    got, charged = item_outcome(demo_engine, d, label, accept_same_price=same_price)
    assert got == outcome
    assert (charged is None) == (outcome == "cashier")
    if not d.unknown:
        p = demo_engine.lookup_product(d.sku)
        unsure, marked, rivals, _ = price_rivals(d, p, demo_engine, same_price)
        assert unsure == (outcome == "cashier")
        # charged although a look-alike is close: marked to learn from
        assert marked == (name.startswith("close rival, same price") and same_price)


# ------------------------------------------------------------------ kiosk eval-stream
def _list(path: Path, pairs) -> Path:
    g = demo.DEMO_GALLERY_DIR
    path.write_text("".join(f"{(g / s / f'{s}_v{v}.jpg').resolve()}\t{s}\n" for s, v in pairs),
                    encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def stream_lists(tmp_path_factory):
    """Gallery: cola, original crisps, yoghurt.  Queries: cola (known: ok), cucumber crisps
    (never enrolled, the original's look-alike: charged as it, silently), red bull (never
    enrolled, like nothing: cashier)."""
    tmp = tmp_path_factory.mktemp("stream")
    gallery = _list(tmp / "gallery.txt", [(s, v) for s in ("DEMO-001", "DEMO-004", "DEMO-008")
                                          for v in (0, 1, 2)])
    query = _list(tmp / "query.txt", [(s, v) for s in ("DEMO-001", "DEMO-005", "DEMO-011")
                                      for v in (3, 4)])
    return gallery, query


def test_eval_stream_outcomes(embedder, stream_lists):
    gallery, query = stream_lists
    r = run_stream(embedder, gallery, [query], seed=3, details=True)
    by_label = {}
    for item in r["items"]:
        by_label.setdefault(item["label"], set()).add((item["outcome"], item["charged"]))
        # what the decision saw comes along: the first product, its similarity and margin
        assert item["first"] in {"DEMO-001", "DEMO-004", "DEMO-008"}
        assert -1.0 <= item["score"] <= 1.0 and Path(item["path"]).is_file()
        assert item["margin"] is None or item["margin"] >= 0.0
        if item["outcome"] != "cashier":
            assert item["first"] == item["charged"]
    assert by_label == {"DEMO-001": {("ok", "DEMO-001")},
                        "DEMO-005": {("silent", "DEMO-004")},
                        "DEMO-011": {("cashier", None)}}
    assert (r["n"], r["ok_rate"], r["silent_rate"], r["cashier_rate"]) == (6, 0.3333, 0.3333,
                                                                          0.3333)
    assert r["views_added"] == 0 and r["last_fifth"]["n"] == 1
    # the order is the seed's
    assert [i["path"] for i in run_stream(embedder, gallery, [query], seed=3,
                                          details=True)["items"]
            ] == [i["path"] for i in r["items"]]


def test_eval_stream_learns_the_cashiers_answers(embedder, stream_lists):
    gallery, query = stream_lists
    settings = with_changes(Settings(), "learning", near_duplicate=0.999)
    # every item with any other product in sight is unsure: all go to the cashier
    r = run_stream(embedder, gallery, [query], learn="cashier", unsure_margin=0.99,
                   settings=settings, details=True)
    assert r["cashier_rate"] == 1.0
    # the cola's two answers are learned; the products not in the catalogue teach nothing
    assert r["views_added"] == 2


def test_eval_stream_command_line(capsys, stream_lists, tmp_path, monkeypatch):
    from kiosk.cli import main

    monkeypatch.setenv("KIOSK_DATA_DIR", str(tmp_path / "data"))
    gallery, query = stream_lists
    capsys.readouterr()
    rc = main(["eval-stream", "--gallery", str(gallery), "--query", str(query),
               "--query", str(query), "--learn", "cashier", "--seed", "1", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert {"n", "ok_rate", "cashier_rate", "silent_rate", "last_fifth", "views_added",
            "ms_per_item"} <= set(out)
    assert set(out["last_fifth"]) >= {"ok_rate", "cashier_rate", "silent_rate"}
    assert out["n"] == 12

    # --items: every item as a JSON line, in stream order, agreeing with the rates
    items = tmp_path / "items.jsonl"
    rc = main(["eval-stream", "--gallery", str(gallery), "--query", str(query), "--seed", "1",
               "--items", str(items), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and "items" not in out
    lines = [json.loads(x) for x in items.read_text(encoding="utf-8").splitlines()]
    assert [x["n"] for x in lines] == list(range(6))
    for o in ("ok", "silent", "cashier"):
        assert sum(x["outcome"] == o for x in lines) / 6 == pytest.approx(out[f"{o}_rate"],
                                                                          abs=1e-4)
    # a folder that is not there: a clear error before any work, nothing written
    rc = main(["eval-stream", "--gallery", str(gallery), "--query", str(query),
               "--items", str(tmp_path / "nowhere" / "items.jsonl"), "--json"])
    assert rc == 2 and "--items: no folder" in capsys.readouterr().err
    assert not (tmp_path / "nowhere").exists()


# ------------------------------------------------------------------ staff mode
def test_staff_review_approves_undoes_and_purges(qtbot, qapp, engine, cola):
    from kiosk.ui import i18n
    from kiosk.ui.learned_tab import LearnedTab

    i18n.set_language(qapp, "en")  # (earlier tests may have left the UI in Chinese)

    learner = Learner(engine, LearnPolicy(approval="queue"))
    vid = learner(cola, "NEW-1", cashier="C001").view_id
    tab = LearnedTab(SimpleNamespace(engine=engine, session=None, settings=None),
                     learner=learner)
    qtbot.addWidget(tab)
    tab.show()
    tab.refresh()
    assert tab.rows() == [["NEW-1  新口味可乐", "cashier", "C001", tab.rows()[0][3],
                           "waiting for approval", "unknown"]]
    assert tab.select(vid) and tab.approve_button.isEnabled()
    tab.approve_button.click()
    assert decide(engine, cola).sku == "NEW-1"
    assert tab.rows() == []  # no longer waiting
    tab.filter.setCurrentIndex(tab.FILTERS.index("all"))
    assert tab.select(vid) and tab.undo_button.isEnabled() and not tab.approve_button.isEnabled()
    tab.undo_button.click()
    assert decide(engine, cola).sku == "DEMO-001"
    assert tab.select(vid)
    tab.purge_button.click()
    assert engine.catalog.get_learned_view(vid)["status"] == "purged"
    assert [a["role"] for a in engine.catalog.audit_log(3)] == ["staff"] * 3
    tab.close()
    tab.deleteLater()  # gone before its catalogue closes (no late LanguageChange)
    from PySide6.QtCore import QCoreApplication, QEvent

    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)


# ------------------------------------------------------------------ per-product thresholds
def test_per_product_thresholds_from_each_products_own_views():
    from kiosk.decide import ProductFloors, usual_similarity

    a = np.array([[1.0, 0.0], [0.8, 0.6], [0.6, 0.8]], np.float32)
    # rows 0 and 1 are one view (as cut and half-turned): never each other's match
    assert usual_similarity(a, ["v1", "v1", "v2"]) == pytest.approx(0.96)
    assert usual_similarity(a[:2], ["v1", "v1"]) is None  # one view: no spread to measure
    floors = ProductFloors(0.05, lambda sku: (a, ["v1", "v1", "v2"]) if sku == "P" else
                           (a[:1], ["x"]))
    assert floors.get("P") == pytest.approx(0.91) and floors.get("Q") is None
    decider = Decider(threshold=0.5, product_floor=0.05)
    decider.floors = floors
    sku_of = {0: "P", 1: "Q"}
    # 0.9 is above the global threshold but below P's own (0.91): not charged blindly
    d = decider.decide_one(np.array([0, 1]), np.array([0.90, 0.40]), sku_of)
    assert d.unknown and d.candidates[0].sku == "P"
    assert not decider.decide_one(np.array([0, 1]), np.array([0.92, 0.40]), sku_of).unknown
    # a product without a threshold of its own keeps the global one
    assert decider.decide_one(np.array([1, 0]), np.array([0.60, 0.2]), sku_of).sku == "Q"


# with the store's adaptation, calibrate refits it on every other view of each product and
# replays only the others (an adaptation makes the views it learned from look too close)
@pytest.mark.parametrize("adapt, views", [("true", 13 * 2), ("false", 13 * 5)])
def test_calibrate_sets_the_operating_point_from_the_catalogues_views(capsys, tmp_path,
                                                                       copy_demo_db, adapt,
                                                                       views):
    from kiosk.cli import main
    from kiosk.settings import load_settings

    db = copy_demo_db(tmp_path / "store")
    settings = tmp_path / "settings.toml"
    settings.write_text(f"[store]\nname = \"测试店\"\n[recognition]\nadapt = {adapt}\n",
                        encoding="utf-8")
    capsys.readouterr()
    rc = main(["--settings", str(settings), "calibrate", "--db", str(db), "--silent-rate",
               "0.01", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert rc == 0 and report["reached"]
    assert report["expected"]["silent_rate"] <= 0.01
    assert {"ok_rate", "silent_rate", "cashier_rate"} == set(report["expected"])
    assert report["views"] == views  # source views only, not their half-turned copies
    # never below the kiosk's default margin, whatever the catalogue's own views allow
    assert report["min_margin"] == 0.05 and report["unsure_margin"] >= 0.05
    assert min(r["unsure_margin"] for r in report["table"]) == 0.0  # (measured all the same)
    rc = main(["--settings", str(settings), "calibrate", "--db", str(db), "--silent-rate",
               "0.01", "--min-margin", "0", "--dry-run", "--json"])
    alone = json.loads(capsys.readouterr().out)
    assert rc == 0 and alone["unsure_margin"] <= report["unsure_margin"]
    assert report["held_at_min_margin"] == (alone["unsure_margin"] < 0.05)
    assert not alone["held_at_min_margin"] and "settings" not in alone
    written = load_settings(settings)
    assert written.checkout.unsure_margin == report["unsure_margin"]
    assert written.checkout.product_floor == report["product_floor"]
    assert written.store.name == "测试店"  # the rest of the file kept
    from kiosk.catalog import Catalog

    with Catalog(db) as c:
        row = c.audit_log(action="calibrate")[0]
    assert row["role"] == "cli" and row["after"]["unsure_margin"] == report["unsure_margin"]


# ------------------------------------------------------------------ retraining on own views
def test_train_from_catalog_holds_out_the_newest_views_and_swaps_only_when_better(
        tmp_path, copy_demo_db, embedder, crops):
    from kiosk.catalog import Catalog
    from kiosk.tools.catalog_train import catalog_lists, take_model, train_from_catalog
    from kiosk.embed import load_embedder
    from kiosk.settings import load_settings
    from kiosk.embed.model import TrainConfig

    db = copy_demo_db(tmp_path / "store")
    engine = Engine.open(db, embedder=embedder)
    clock = Clock(10_000.0)
    learner = Learner(engine, LearnPolicy(near_duplicate=0.999), clock=clock)
    for (sku, view), crop in sorted(crops.items()):
        clock.t += 60
        assert learner(crop, sku, cashier="C001").status == "added"
    engine.close()
    with Catalog(db) as catalog:
        lists = catalog_lists(catalog, embedder.model_id, tmp_path / "lists")
        newest = [v["picture"] for v in catalog.learned_views()[:2]]
    assert (lists["n_learned"], lists["n_heldout"], lists["n_train"]) == (10, 2, 13 * 5 + 8)
    held = [line.split("\t")[0] for line in lists["query"].read_text().splitlines()]
    assert held == newest  # the two most recent learned views, as seen (lossless)
    assert not set(held) & set(lists["train"].read_text().split())

    settings_file = tmp_path / "settings.toml"
    report = train_from_catalog(db, embedder, tmp_path / "model",
                                cfg=TrainConfig(epochs=2, views=1, dim=32),
                                settings_path=settings_file, cache_dir=tmp_path / "cache")
    assert report["swapped"] == report["better"]
    assert set(report["heldout"]) == {"current", "new"}
    assert (load_settings(settings_file).recognition.model is not None) == report["swapped"]

    # the swap: the gallery embedded by the new model first, then the settings name it
    new = load_embedder(str(tmp_path / "model"))
    with Catalog(db) as catalog:
        n = take_model(catalog, embedder, new, tmp_path / "model", settings_path=settings_file)
        assert n in (0, catalog.count_gallery(embedder.model_id))
        assert catalog.audit_log(action="model_swap")[0]["after"]["model"] == new.model_id
    assert load_settings(settings_file).recognition.model == str((tmp_path / "model").resolve())
    swapped = Engine.open(db, embedder=new)
    try:
        assert swapped.reembedded == 0  # nothing left to embed at the kiosk's start
        assert swapped.catalog.stale_models(new.model_id) == {}
        assert decide(swapped, crops[("DEMO-002", 7)]).sku == "DEMO-002"
    finally:
        swapped.close()
