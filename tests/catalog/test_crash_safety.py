"""Crash safety: real kiosk processes SIGKILLed in the middle of catalogue writes.

A child (``tests/catalog/crash_driver.py``, or the real ``kiosk`` command line) runs a gallery import,
an enrolment loop, a price-edit loop or a checkout-finish loop and prints a flushed line after
each step that has committed.  The test kills it with SIGKILL after the N-th marker (several N
per operation: while checking, embedding, inside the write transaction, after the commit but
before the vector index is saved, between index saves ...), then reopens the catalogue and
checks:

* ``PRAGMA integrity_check`` is ok and no foreign key dangles;
* every step the child reported as done is in the database;
* nothing is half-done: an import landed whole or not at all, an enrolled product has all
  its gallery rows, a sale has its lines and its correction, a price is either the old or
  the new one;
* every gallery row names a file that exists;
* the vector index left on disk never holds a vector that disagrees with the database, and
  opening the engine makes its live ids exactly the catalogue's gallery ids for the model.
"""
from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from kiosk.catalog import Catalog
from kiosk.engine import Engine, index_path_for
from kiosk.catalog.gallery_io import import_gallery, parse_gallery_list
from kiosk.retrieve import VectorIndex

pytestmark = pytest.mark.slow

PROJECT = Path(__file__).resolve().parents[2]
DRIVER = PROJECT / "tests" / "catalog" / "crash_driver.py"
TRAY = PROJECT / "resources" / "demo" / "tray_01.png"
sys.path.insert(0, str(DRIVER.parent))
from crash_driver import price_of  # noqa: E402

N_SKUS, PER_SKU = 12, 8  # the big import: 96 small images


# ------------------------------------------------------------------------------ plumbing
def child_env(tmp_path: Path) -> dict:
    env = {**os.environ, "GLOG_minloglevel": "2", "KIOSK_DATA_DIR": str(tmp_path / "data"),
           "PYTHONPATH": str(PROJECT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("KIOSK_DB", None)
    return env


def run_and_kill(cmd: list, tmp_path: Path, until, *, timeout: float = 120.0) -> list[str]:
    """Run ``cmd``; SIGKILL it as soon as ``until(lines)`` holds for the marker lines read so
    far.  Returns every line it printed, also those flushed after the trigger but before the
    kill landed.  Fails if the child ends (or times out) first."""
    err_path = tmp_path / f"stderr-{time.monotonic_ns()}.txt"
    with open(err_path, "w") as err:
        proc = subprocess.Popen([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=err,
                                text=True, cwd=tmp_path, env=child_env(tmp_path))
    watchdog = threading.Timer(timeout, proc.kill)
    watchdog.start()
    lines: list[str] = []
    killed = False
    try:
        for line in proc.stdout:
            lines.append(line.strip())
            if until(lines):
                os.kill(proc.pid, signal.SIGKILL)
                killed = True
                break
        lines += [ln.strip() for ln in proc.stdout.read().splitlines()]
        proc.wait(30)
    finally:
        watchdog.cancel()
        proc.stdout.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert killed and proc.returncode == -signal.SIGKILL, (
        f"the child was not killed at the chosen point (rc {proc.returncode}); it printed "
        f"{lines[-5:]}; stderr:\n{err_path.read_text()[-3000:]}")
    return lines


def marked(lines: list[str], word: str) -> list[list[str]]:
    return [ln.split()[1:] for ln in lines if ln.split()[:1] == [word]]


def after(word: str, n: int = 1, *, stage: str | None = None, done: int = 0):
    """A kill trigger: the n-th ``word`` marker (for PROGRESS: of ``stage`` with done >= n)."""
    def until(lines: list[str]) -> bool:
        if stage is not None:
            return any(m[0] == stage and int(m[1]) >= done for m in marked(lines, word))
        return len(marked(lines, word)) >= n
    return until


# ------------------------------------------------------------------------------- checks
def check_sqlite(db: Path) -> None:
    con = sqlite3.connect(db)
    try:
        assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert con.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        con.close()


def check_files(db: Path) -> None:
    with Catalog(db) as cat:
        missing = [r["file"] for r in cat.gallery_rows() if not Path(r["file"]).is_file()]
    assert not missing, f"gallery rows name missing files: {missing[:5]}"


def check_index(db: Path, embedder) -> None:
    """The index file left behind may be stale, never wrong; the engine reconciles it."""
    model = embedder.model_id
    with Catalog(db) as cat:
        ids, _ = cat.gallery_ids(model)
        path = index_path_for(db)
        if path.exists():
            try:
                left = VectorIndex.load(path)
            except Exception:  # unreadable or half-written: the engine rebuilds it
                left = None
            if left is not None and left.model_id == model:
                common = np.intersect1d(left.ids(), ids)
                if len(common):
                    np.testing.assert_allclose(left.vectors_for(common),  # (float16)
                                               cat.gallery_vectors_for(common), atol=5e-4)
    engine = Engine.open(db, embedder=embedder)
    try:
        ids, _ = engine.catalog.gallery_ids(model)
        assert np.array_equal(np.sort(engine.index.live_ids()), ids)
        if len(ids):
            np.testing.assert_allclose(engine.index.vectors_for(ids),  # (float16)
                                       engine.catalog.gallery_vectors_for(ids), atol=5e-4)
    finally:
        engine.close()
    reloaded = VectorIndex.load(index_path_for(db))  # what the engine saved loads again
    assert set(ids.tolist()) <= set(reloaded.ids().tolist())


def check_all(db: Path, embedder) -> None:
    check_sqlite(db)
    check_files(db)
    check_index(db, embedder)
    check_sqlite(db)


def catalogue_state(db: Path) -> dict:
    with Catalog(db) as cat:
        products = {p.sku: (p.name, p.price, p.barcode) for p in cat.list_products(False)}
        gallery: dict[str, list[str]] = {}
        for r in cat.gallery_rows():
            gallery.setdefault(r["sku"], []).append(Path(r["file"]).name)
    return {"products": products, "gallery": {k: sorted(v) for k, v in gallery.items()}}


# ------------------------------------------------------------------------------- import
@pytest.fixture(scope="module")
def import_source(tmp_path_factory):
    """96 small images of 12 new skus in a list, a CSV that also reprices an existing product,
    and a base catalogue (2 products, their index) to import into."""
    root = tmp_path_factory.mktemp("import_source")
    rng = np.random.default_rng(0)
    lines = []
    for s in range(N_SKUS):
        colour = rng.integers(0, 256, 3)
        for v in range(PER_SKU):
            img = np.clip(colour + rng.integers(-50, 50, (48, 64, 3)), 0, 255).astype(np.uint8)
            path = root / "images" / f"NEW-{s:02d}" / f"{v}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(path), img)
            lines.append(f"images/NEW-{s:02d}/{v}.jpg\tNEW-{s:02d}")
    (root / "list.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (root / "products.csv").write_text(
        "sku,name,price\nBASE-1,Base one repriced,9.99\n"
        + "".join(f"NEW-{s:02d},New {s},{s + 1}.50\n" for s in range(N_SKUS)), encoding="utf-8")
    for s in range(2):
        for v in range(3):
            img = np.full((48, 64, 3), (40 + 100 * s, 90, 200 - 80 * v), np.uint8)
            path = root / "base" / f"BASE-{s + 1}" / f"{v}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(path), img)
    (root / "base" / "list.txt").write_text(
        "".join(f"BASE-{s + 1}/{v}.png\tBASE-{s + 1}\n" for s in range(2) for v in range(3)))
    return root


@pytest.fixture(scope="module")
def base_catalogue(import_source, embedder, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("base_catalogue")
    db = folder / "catalog.db"
    with Catalog(db) as cat:
        import_gallery(cat, parse_gallery_list(import_source / "base" / "list.txt"), None,
                       embedder, copy_to=folder / "gallery")
        cat.set_price("BASE-1", 120)
    Engine.open(db, embedder=embedder).close()
    return db


def fresh_copy(db: Path, folder: Path) -> Path:
    shutil.copytree(db.parent, folder)
    return folder / db.name


def check_import_all_or_nothing(db: Path, before: dict, lines: list[str]) -> str:
    """The import landed whole or not at all; returns "none" or "all"."""
    state = catalogue_state(db)
    new = sorted(s for s in state["products"] if s.startswith("NEW-"))
    if not new:
        assert state == before, "a refused/killed import changed the catalogue"
        assert not marked(lines, "COMMITTED")
        return "none"
    assert new == [f"NEW-{s:02d}" for s in range(N_SKUS)], f"half an import: {new}"
    assert all(len(state["gallery"][s]) == PER_SKU for s in new)
    assert state["products"]["BASE-1"] == ("Base one repriced", 999, None)
    assert state["gallery"]["BASE-1"] == before["gallery"]["BASE-1"]
    return "all"


@pytest.mark.parametrize("name, trigger, slow, expect", [
    ("checking", after("PROGRESS", stage="check", done=40), False, "none"),
    ("embedding", after("PROGRESS", stage="embed", done=32), False, "none"),
    ("inside the write transaction", after("ROWS", 3), True, "none"),
    ("committed, index not yet saved", after("COMMITTED"), False, "all"),
])
def test_import_killed(tmp_path, base_catalogue, import_source, embedder, name, trigger, slow,
                       expect):
    db = fresh_copy(base_catalogue, tmp_path / "store")
    before = catalogue_state(db)
    cmd = [sys.executable, DRIVER, "import", db, import_source / "list.txt",
           import_source / "products.csv"] + (["--slow-write"] if slow else [])
    lines = run_and_kill(cmd, tmp_path, trigger)
    check_sqlite(db)
    assert check_import_all_or_nothing(db, before, lines) == expect, name
    check_all(db, embedder)
    assert check_import_all_or_nothing(db, before, lines) == expect  # reopening changed nothing


def test_cli_import_killed_while_copying(tmp_path, base_catalogue, import_source, embedder):
    """The real ``kiosk gallery import``, killed once it starts copying images into the
    catalogue's gallery folder (just before its write transaction)."""
    db = fresh_copy(base_catalogue, tmp_path / "store")
    before = catalogue_state(db)
    marker = db.parent / "gallery" / "NEW-00"
    cmd = [sys.executable, "-m", "kiosk.cli", "gallery", "import", "--db", str(db),
           str(import_source / "list.txt"), "--products", str(import_source / "products.csv")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path,
                            env=child_env(tmp_path))
    deadline = time.monotonic() + 120
    while proc.poll() is None and not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]
    check_sqlite(db)
    outcome = check_import_all_or_nothing(db, before, [])
    check_all(db, embedder)
    assert check_import_all_or_nothing(db, before, []) == outcome


# ------------------------------------------------------------------------------- enrol
@pytest.mark.parametrize("trigger", [after("ENROLLED", 1), after("SAVED", 2), after("ENROLLED", 5)],
                         ids=["first-enrolled", "second-save", "fifth-enrolled"])
def test_enrol_killed(tmp_path, copy_demo_db, embedder, trigger):
    db = copy_demo_db(tmp_path / "store")
    before = catalogue_state(db)
    lines = run_and_kill([sys.executable, DRIVER, "enrol", db, 40], tmp_path, trigger)
    check_sqlite(db)
    state = catalogue_state(db)
    reported = {sku: int(n) for sku, n in marked(lines, "ENROLLED")}
    enrolled = sorted(s for s in state["products"] if s.startswith("EN-"))
    assert set(reported) <= set(enrolled)
    assert len(enrolled) <= len(reported) + 1  # at most the step in flight when killed
    for sku in enrolled:  # each product came with all its views (2 views x 2 half turns)
        assert len(state["gallery"].get(sku, [])) == reported.get(sku, 4) == 4, sku
    assert {s: v for s, v in state["products"].items() if not s.startswith("EN-")} == \
        before["products"]
    check_all(db, embedder)


# ------------------------------------------------------------------------------- prices
@pytest.mark.parametrize("n", [1, 150])
def test_price_edits_killed(tmp_path, copy_demo_db, embedder, n):
    db = copy_demo_db(tmp_path / "store")
    before = catalogue_state(db)["products"]
    skus = sorted(before)
    lines = run_and_kill([sys.executable, DRIVER, "price", db, 100000], tmp_path,
                         after("PRICED", n))
    check_sqlite(db)
    done = [(int(step), sku, int(fen)) for step, sku, fen in marked(lines, "PRICED")]
    assert [d[0] for d in done] == list(range(len(done)))
    assert all(sku == skus[step % len(skus)] and fen == price_of(step) for step, sku, fen in done)
    in_flight = len(done)  # the step the kill may have caught, committed or not
    prices = {sku: p[1] for sku, p in catalogue_state(db)["products"].items()}
    for sku in skus:
        last = max((step for step, s, _ in done if s == sku), default=None)
        allowed = {before[sku][1] if last is None else price_of(last)}
        if skus[in_flight % len(skus)] == sku:
            allowed.add(price_of(in_flight))
        assert prices[sku] in allowed, (sku, prices[sku], allowed)
    check_all(db, embedder)


# ------------------------------------------------------------------------------- finish
@pytest.mark.parametrize("n", [1, 6])
def test_finish_killed(tmp_path, copy_demo_db, embedder, n):
    db = copy_demo_db(tmp_path / "store")
    with Catalog(db) as cat:
        assert cat.table_counts()["transactions"] == 0
    lines = run_and_kill([sys.executable, DRIVER, "finish", db, 10000, TRAY], tmp_path,
                         after("FINISHED", n))
    check_sqlite(db)
    reported = {int(tx): int(total) for tx, total in marked(lines, "FINISHED")}
    with Catalog(db) as cat:
        txs = [r[0] for r in cat._rows("SELECT id FROM transactions ORDER BY id")]
        assert set(reported) <= set(txs) and len(txs) <= len(reported) + 1
        for tx in txs:  # every sale is whole: lines adding up, its correction attached
            got = cat.get_transaction(tx)
            assert got["lines"] and sum(ln["amount"] for ln in got["lines"]) == got["total"]
            assert got["total"] == reported.get(tx, got["total"])
        linked = [c["transaction_id"] for c in cat.corrections()]
        assert sorted(c for c in linked if c is not None) == txs  # one override per sale
        assert linked.count(None) <= 1  # the basket in progress, never paid
    check_all(db, embedder)


# ------------------------------------------------------------------- rolled-back enrolment
def test_rolled_back_enrolment_leaves_no_stale_vector(tmp_path, copy_demo_db, embedder):
    """A product enrolled inside a transaction that then fails (as ``kiosk gallery add`` and
    the staff screen enrol) is gone from the index too, even when SQLite hands its row ids
    out again to the next enrolment."""
    from kiosk.demo import scenes as demo

    db = copy_demo_db(tmp_path / "store")
    engine = Engine.open(db, embedder=embedder)
    try:
        cat = engine.catalog
        ghost = demo.gallery_view("DEMO-003", 0)
        with pytest.raises(RuntimeError, match="commit failed"):
            with cat.transaction():
                cat.add_product("GHOST", "ghost", 100)
                engine.add_images("GHOST", [ghost], [str(tmp_path / "ghost.jpg")])
                raise RuntimeError("commit failed")
        assert cat.get_product("GHOST") is None
        with cat.transaction():  # the next enrolment gets the same row ids back
            cat.add_product("NEXT", "next", 100)
            view = demo.gallery_view("DEMO-007", 0)
            cv2.imwrite(str(tmp_path / "next.jpg"), view)
            engine.add_images("NEXT", [view], [str(tmp_path / "next.jpg")])
        ids, _ = cat.gallery_ids(embedder.model_id)
        assert np.array_equal(np.sort(engine.index.live_ids()), ids)
        np.testing.assert_allclose(engine.index.vectors_for(ids), cat.gallery_vectors_for(ids),
                                   atol=5e-4)  # float16 index
    finally:
        engine.close()
    check_all(db, embedder)
