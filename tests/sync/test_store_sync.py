"""Many kiosks, one catalogue: a real PostgreSQL on loopback (Debian's ``postgresql`` package,
started by the tests in a temporary folder) and real kiosk processes (tests/sync/store_driver.py)
against it.  No mock of the database anywhere.

Every scenario ends by checking that each sale, correction and audit row of each kiosk is on
the server exactly once (:func:`assert_exactly_once`).
"""
from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from kiosk.sync.pgserver import LocalPostgres, find_pg_bin

pytestmark = pytest.mark.skipif(
    find_pg_bin() is None,
    reason="PostgreSQL server binaries (initdb, pg_ctl) not installed: apt-get install "
           "postgresql (.ci/run installs it)")

DRIVER = Path(__file__).resolve().parent / "store_driver.py"
ROOT = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def pg():
    server = LocalPostgres().start()
    yield server
    server.cleanup()


class Store:
    """One store: a fresh database on a server, its schema initialised."""

    def __init__(self, server: LocalPostgres, dbname: str) -> None:
        self.server = server
        self.dbname = dbname
        self.password = server.password

    @property
    def url(self) -> str:
        return f"postgresql://kiosk@127.0.0.1:{self.server.port}/{self.dbname}"

    def connect(self, autocommit: bool = True):
        from kiosk.sync.config import connect

        return connect(self.url, self.password, autocommit=autocommit)

    def q(self, sql: str, params=()):
        with self.connect() as conn:
            return conn.execute(sql, params).fetchall()


def new_store(server: LocalPostgres) -> Store:
    import psycopg

    from kiosk.sync.server import init_server

    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(host="127.0.0.1", port=server.port, user="kiosk", dbname="postgres",
                         password=server.password, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    store = Store(server, name)
    with store.connect(autocommit=False) as conn:
        init_server(conn)
    return store


@pytest.fixture
def store(pg):
    return new_store(pg)


class Kiosk:
    """A kiosk process (tests/sync/store_driver.py) driven line by line."""

    def __init__(self, tmp: Path, store: Store, name: str, *, model: str = "colour-hist@test",
                 fault: str | None = None) -> None:
        self.db = tmp / name / "catalog.db"
        self.db.parent.mkdir(parents=True, exist_ok=True)
        self.store, self.name, self.model = store, name, model
        self.proc = None
        self.start(fault)

    def start(self, fault: str | None = None) -> "Kiosk":
        env = {**os.environ, "KIOSK_STORE_PASSWORD": self.store.password,
               "PYTHONPATH": str(ROOT)}
        env.pop("KIOSK_SYNC_FAULT", None)
        if fault:
            env["KIOSK_SYNC_FAULT"] = fault
        self.log = open(self.db.parent / "driver.log", "a")
        self.proc = subprocess.Popen(
            [sys.executable, str(DRIVER), str(self.db), self.store.url, self.name, self.model],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True,
            bufsize=1, env=env)
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, args=(self.proc, self.lines), daemon=True).start()
        self.kiosk_id = self.expect("READY", 60).split()[1]
        return self

    @staticmethod
    def _read(proc, lines) -> None:
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))
        lines.put("<EOF>")

    def expect(self, prefix: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"{self.name}: no {prefix!r} within {timeout} s; log:\n"
                                     + self.log_text()) from None
            if line.startswith(prefix):
                return line
            if line == "<EOF>":
                raise AssertionError(f"{self.name} exited waiting for {prefix!r}; log:\n"
                                     + self.log_text())

    def log_text(self) -> str:
        try:
            return (self.db.parent / "driver.log").read_text()[-4000:]
        except OSError:
            return ""

    def send(self, line: str) -> None:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def ask(self, line: str, prefix: str, timeout: float = 30) -> str:
        self.send(line)
        return self.expect(prefix, timeout)

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.proc.stdin.close()
        self.log.close()

    def quit(self) -> None:
        if self.proc.poll() is None:
            try:
                self.ask("quit", "BYE", 30)
            finally:
                self.proc.wait(10)
        self.log.close()


@pytest.fixture
def kiosks(tmp_path):
    made: list[Kiosk] = []

    def make(store: Store, name: str, **kw) -> Kiosk:
        k = Kiosk(tmp_path, store, name, **kw)
        made.append(k)
        return k

    yield make
    for k in made:
        if k.proc is not None and k.proc.poll() is None:
            k.proc.kill()
            k.proc.wait(10)


# ------------------------------------------------------------------------------- checks


def local_rows(db: Path, table: str) -> dict[str, int]:
    """uuid -> local id of the kiosk's rows of ``table`` that belong to the store (every row
    but those written while applying the store's own changes)."""
    from kiosk.catalog import Catalog

    with Catalog(db) as cat:
        rows = cat._rows(f"SELECT i.uuid, t.id FROM {table} t LEFT JOIN sync_ids i "
                         f"ON i.tbl = '{table}' AND i.local_id = t.id")
        unmapped = [r[1] for r in rows if r[0] is None]
        if table == "audit" and unmapped:  # only the store's own closing of a call here
            kinds = cat._rows(f"SELECT action, detail FROM audit WHERE id IN "
                              f"({','.join(map(str, unmapped))})")
            assert all(k == ("call_resolved", "closed on another kiosk") for k in kinds), kinds
        else:
            assert not unmapped, f"{table} rows without a UUID: {unmapped}"
    return {u: i for u, i in rows if u is not None}


def assert_exactly_once(store: Store, kiosk_id: str, db: Path) -> dict[str, int]:
    """Every sale (with its lines), correction and audit row of the kiosk at ``db`` is on the
    server once, and nothing else from that kiosk is."""
    counts = {}
    for table, server_table in (("transactions", "sales"), ("corrections", "corrections"),
                                ("audit", "audit")):
        mine = local_rows(db, table)
        there = store.q(f"SELECT uuid::text, local_id FROM {server_table} WHERE kiosk_id = %s",
                        (kiosk_id,))
        assert len(there) == len({u for u, _ in there}), f"{server_table}: a UUID twice"
        assert len(there) == len({i for _, i in there}), f"{server_table}: a local row twice"
        assert dict(there) == mine, f"{server_table} of {kiosk_id} differ from the kiosk's"
        counts[table] = len(mine)
    from kiosk.catalog import Catalog

    with Catalog(db) as cat:
        local_total = cat._rows("SELECT coalesce(sum(total), 0), COUNT(*) FROM transactions")[0]
        local_lines = cat._rows("SELECT COUNT(*) FROM transaction_lines")[0][0]
    total, n = store.q("SELECT coalesce(sum(total), 0), count(*) FROM sales WHERE kiosk_id = %s",
                       (kiosk_id,))[0]
    lines = store.q("SELECT count(*) FROM sale_lines l JOIN sales s ON s.uuid = l.sale_uuid "
                    "WHERE s.kiosk_id = %s", (kiosk_id,))[0][0]
    assert (int(total), n, lines) == (local_total[0], local_total[1], local_lines)
    return counts


# ------------------------------------------------------------------------------- in-process


def hist_embedder(model: str = "colour-hist@test"):
    sys.path.insert(0, str(DRIVER.parent))
    from store_driver import HistogramEmbedder

    return HistogramEmbedder(model)


def client_for(tmp_path: Path, store: Store, name: str, **kw):
    from kiosk.catalog import Catalog
    from kiosk.sync.client import StoreClient

    db = tmp_path / name / "catalog.db"
    Catalog(db).close()
    c = StoreClient(db, store.url, password=store.password, kiosk_name=name,
                    model_id=kw.pop("model_id", "colour-hist@test"), **kw)
    c.connect()
    return c


def enrol(catalog, sku: str, price: int, colour: str, model: str = "colour-hist@test") -> None:
    """A product with two views (pictures on disk, vectors of ``model``)."""
    import cv2

    sys.path.insert(0, str(DRIVER.parent))
    from store_driver import patch

    from kiosk.embed import Embeddings

    emb = hist_embedder(model)
    folder = catalog.path.parent / "gallery" / sku
    folder.mkdir(parents=True, exist_ok=True)
    crops = [patch(colour, 1), patch(colour, 2)]
    files = []
    for n, crop in enumerate(crops):
        f = folder / f"{sku}-{n}.jpg"
        cv2.imwrite(str(f), crop)
        files.append(f)
    with catalog.transaction():
        catalog.add_product(sku, sku.upper(), price, role="staff")
        catalog.add_gallery_images(sku, files, Embeddings(emb.embed(crops).vectors, model),
                                   role="staff", audit_action="enrol")


def test_without_a_server_the_kiosk_keeps_no_outbox(tmp_path):
    """Migration 8 adds the sync tables, but until a kiosk joins a store nothing is queued:
    the kiosk works exactly as before."""
    from kiosk.catalog import Catalog
    from kiosk.sync import local

    with Catalog(tmp_path / "catalog.db") as cat:
        enrol(cat, "red", 300, "red")
        cat.set_price("red", 350, role="staff")
        tx = cat.record_transaction({"lines": [{"sku": "red", "name": "RED", "qty": 1,
                                                "unit_price": 350, "amount": 350}],
                                     "total": 350, "currency": "CNY"})
        cat.log_correction({"b": 1}, "red", None, tx, role="cashier")
        cat.open_call("shopper")
        cat.delete_product("red", role="staff")
        st = local.state(cat)
        assert (st["enabled"], st["pending"]) == (0, 0)
        assert cat._rows("SELECT COUNT(*) FROM sync_ids")[0][0] == 0
        assert cat._rows("SELECT COUNT(*) FROM sync_views")[0][0] == 0


def test_store_init_status_and_password_never_shown(pg, tmp_path, capsys, caplog, monkeypatch):
    from kiosk.cli import main

    import psycopg

    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(host="127.0.0.1", port=pg.port, user="kiosk", dbname="postgres",
                         password=pg.password, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = f"postgresql://kiosk@127.0.0.1:{pg.port}/{name}"
    pwfile = tmp_path / "pw"
    pwfile.write_text(pg.password + "\n")
    settings = tmp_path / "settings.toml"
    settings.write_text(f'[store]\nserver = "{url}"\npassword_file = "{pwfile}"\n'
                        f'kiosk_name = "Till 1"\n')
    monkeypatch.delenv("KIOSK_STORE_PASSWORD", raising=False)
    assert main(["--settings", str(settings), "store", "status"]) == 2
    assert "kiosk store init" in capsys.readouterr().err
    assert main(["--settings", str(settings), "store", "init"]) == 0
    assert "schema version 0 -> 1" in capsys.readouterr().out
    assert main(["--settings", str(settings), "store", "init"]) == 0
    assert "up to date" in capsys.readouterr().out
    # a kiosk with a sale syncs once from the command line, then shows in the status
    from kiosk.catalog import Catalog

    db = tmp_path / "k" / "catalog.db"
    with Catalog(db) as cat:
        enrol(cat, "red", 300, "red")
        cat.record_transaction({"lines": [{"sku": "red", "name": "RED", "qty": 1,
                                           "unit_price": 300, "amount": 300}],
                                "total": 300, "currency": "CNY"})
    assert main(["--settings", str(settings), "store", "sync", "--db", str(db)]) == 0
    assert "sent" in capsys.readouterr().out
    assert main(["--settings", str(settings), "store", "status", "--json"]) == 0
    st = json.loads(capsys.readouterr().out)
    (k,) = st["kiosks"]
    assert (k["name"], k["pending_outbox"], k["changes_behind"]) == ("Till 1", 0, 0)
    assert (st["totals"]["sales"], st["totals"]["products"], st["totals"]["views"]) == (1, 1, 2)
    assert main(["--settings", str(settings), "store", "status"]) == 0
    out = capsys.readouterr().out
    assert "Till 1" in out and "sales 1" in out
    # a wrong password: a one-line error naming the server, never a password
    pwfile.write_text("not-the-password\n")
    assert main(["--settings", str(settings), "store", "status"]) == 2
    err = capsys.readouterr().err
    assert "password authentication failed" in err and url in err
    assert pg.password not in err and "not-the-password" not in err
    # and a password in the URL is refused outright
    settings.write_text(f'[store]\nserver = "postgresql://kiosk:{pg.password}@127.0.0.1/x"\n')
    assert main(["--settings", str(settings), "store", "status"]) == 2
    err = capsys.readouterr().err
    assert "password_file" in err and pg.password not in err
    assert pg.password not in caplog.text


# ------------------------------------------------------------------ processes: the key scenario


def test_enrol_on_one_kiosk_recognised_and_charged_on_another(store, kiosks):
    """Two kiosk processes: a product enrolled on A is recognised on B, and a price changed on
    B is charged on A, each within 5 s; sales and corrections from both arrive exactly once."""
    a = kiosks(store, "A")
    b = kiosks(store, "B")
    assert b.ask("recognize red", "RECOGNIZED").split()[1] == "unknown"
    t0 = time.monotonic()
    a.ask("enrol red 300 red", "ENROLLED")
    seen = b.ask("wait_recognize red red 5", "", 10).split()
    assert seen[0] == "RECOGNIZED", seen
    assert float(b.ask("wait_price red 300 5", "SEEN", 10).split()[3]) < 1.0
    assert time.monotonic() - t0 < 5.0
    assert b.ask("recognize green", "RECOGNIZED").split()[1] == "unknown"
    b.ask("price red 420", "PRICED")
    a_seen = float(a.ask("wait_price red 420 5", "SEEN", 10).split()[3])
    assert a_seen < 5.0
    a.send("sell 6")
    b.send("sell 4")
    a.expect("SOLD 5")
    b.expect("SOLD 3")
    a.ask("correct", "CORRECTED")
    for k in (a, b):
        assert k.ask("flush 20", "FLUSHED", 30) == "FLUSHED"
    for k in (a, b):
        k.quit()
    ca = assert_exactly_once(store, a.kiosk_id, a.db)
    cb = assert_exactly_once(store, b.kiosk_id, b.db)
    assert (ca["transactions"], cb["transactions"], ca["corrections"]) == (6, 4, 1)
    # the sale on A after the price change charged the new price
    assert store.q("SELECT DISTINCT unit_price FROM sale_lines")[0][0] == 420
    # both kiosks' price rows are in the store's audit log
    assert {r[0] for r in store.q("SELECT kiosk_id::text FROM audit WHERE action IN "
                                  "('price', 'product_add')")} == {a.kiosk_id, b.kiosk_id}


@pytest.mark.parametrize("point", ["push_before_commit", "push_after_commit"])
def test_kiosk_killed_mid_push_loses_and_doubles_nothing(store, kiosks, point):
    """kill -9 of a kiosk while its push is open on the server (rolled back there) or just
    after the server committed it (the outbox still holds it): after a restart every sale,
    correction and audit row is on the server exactly once."""
    a = kiosks(store, "A", fault=point)
    a.ask("enrol red 300 red", "ENROLLED")
    a.expect(f"FAULT {point}", 20)
    a.kill9()
    a.start()  # no fault now
    a.send("sell 8")
    a.expect("SOLD 7")
    a.ask("correct", "CORRECTED")
    assert a.ask("flush 20", "FLUSHED", 30) == "FLUSHED"
    a.quit()
    counts = assert_exactly_once(store, a.kiosk_id, a.db)
    assert counts["transactions"] == 8
    assert store.q("SELECT count(*) FROM views")[0][0] == 2
    assert store.q("SELECT count(*), min(outcome) FROM product_changes") == [(1, "applied")]


def test_kiosk_killed_mid_pull_applies_everything_once(store, kiosks):
    """kill -9 of a kiosk after it fetched changes and before it applied them: after a restart
    it applies them (nothing half-applied, nothing skipped)."""
    a = kiosks(store, "A")
    b = kiosks(store, "B", fault="pull_before_apply")
    a.ask("enrol red 300 red", "ENROLLED")
    b.expect("FAULT pull_before_apply", 20)  # B has fetched the enrolment
    b.kill9()
    b.start()
    assert b.ask("wait_recognize red red 10", "", 20).startswith("RECOGNIZED")
    assert b.ask("wait_price red 300 10", "SEEN", 20)
    b.send("sell 3")
    b.expect("SOLD 2")
    b.ask("flush 20", "FLUSHED", 30)
    a.quit()
    b.quit()
    from kiosk.catalog import Catalog

    with Catalog(b.db) as cat:
        assert len(cat.gallery_rows("red")) == 2
        assert cat._rows("SELECT COUNT(*) FROM sync_views")[0][0] == 2
    assert_exactly_once(store, a.kiosk_id, a.db)
    assert_exactly_once(store, b.kiosk_id, b.db)


def test_server_killed_and_stopped_during_sales(tmp_path, kiosks):
    """The server is killed (kill -9 of every postgres process, one push open on it), brought
    back, later stopped cleanly for a while and started again, while two kiosks keep selling:
    every sale arrives exactly once."""
    server = LocalPostgres().start()
    try:
        store = new_store(server)
        a = kiosks(store, "A", fault="push_before_commit:2")
        b = kiosks(store, "B")
        b.ask("enrol blue 200 blue", "ENROLLED")
        b.ask("flush 20", "FLUSHED", 30)
        a.ask("enrol red 300 red", "ENROLLED")
        a.expect("FAULT push_before_commit", 20)  # A's push is open on the server
        b.send("sell 40 0.05")
        server.kill()
        b.expect("SOLD 20", 30)  # B sells on without the server
        time.sleep(2.5)  # A's commit has failed by now
        server.start()
        a.send("sell 30 0.05")
        a.expect("SOLD 10", 30)
        server.stop()
        a.expect("SOLD 29", 30)
        b.expect("SOLD 39", 30)
        time.sleep(1)
        server.start()
        for k in (a, b):
            assert k.ask("flush 60", "FLUSHED", 90) == "FLUSHED"
        assert b.ask("wait_price red 300 20", "SEEN", 30)
        for k in (a, b):
            k.quit()
        assert assert_exactly_once(store, a.kiosk_id, a.db)["transactions"] == 30
        assert assert_exactly_once(store, b.kiosk_id, b.db)["transactions"] == 40
    finally:
        server.cleanup()


def test_calls_from_every_kiosk_on_every_kiosk(store, kiosks):
    """A call opened on A shows on B with A's name, reason and waiting time; closing it on B
    closes it on A (A's own call board hears of it)."""
    a = kiosks(store, "A")
    b = kiosks(store, "B")
    a.ask("call unknown", "CALL")
    deadline = time.monotonic() + 5
    while True:
        calls = json.loads(b.ask("calls", "CALLS")[6:])
        if calls or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    (c,) = calls
    assert (c["kiosk_name"], c["reason"], c["own"]) == ("A", "unknown", False)
    assert 0 <= c["waiting_s"] < 10
    assert b.ask("close A", "CLOSED") == "CLOSED 1"
    a.expect("RESOLVED_HERE", 10)
    assert json.loads(a.ask("calls", "CALLS")[6:]) == []
    # and the other way round: B's call closed on B disappears from A
    b.ask("call shopper", "CALL")
    deadline = time.monotonic() + 5
    while not json.loads(a.ask("calls", "CALLS")[6:]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert json.loads(a.ask("calls", "CALLS")[6:])[0]["kiosk_name"] == "B"
    assert b.ask("close B", "CLOSED") == "CLOSED 1"
    deadline = time.monotonic() + 5
    while json.loads(a.ask("calls", "CALLS")[6:]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert json.loads(a.ask("calls", "CALLS")[6:]) == []
    for k in (a, b):
        k.ask("flush 20", "FLUSHED", 30)
        k.quit()
    rows = store.q("SELECT reason, resolved_at IS NOT NULL, resolved_on::text FROM calls ORDER BY opened_at")
    assert rows == [("unknown", True, b.kiosk_id), ("shopper", True, b.kiosk_id)]
    assert_exactly_once(store, a.kiosk_id, a.db)
    assert_exactly_once(store, b.kiosk_id, b.db)


# ------------------------------------------------------------------ in-process: the rules


def test_concurrent_edits_server_order_decides_both_audited(store, tmp_path):
    """Two kiosks change one product at the same moment: the change that reaches the server
    last stands on every kiosk, the other is kept in the log, both kiosks' audit rows arrive,
    and the server audits the conflict with both versions.  Edits of different fields both
    stand."""
    a = client_for(tmp_path, store, "A")
    b = client_for(tmp_path, store, "B")
    enrol(a.catalog, "red", 300, "red")
    a.push()
    b.pull()
    # truly at once: both push in parallel threads
    a.catalog.set_price("red", 310, role="staff")
    b.catalog.set_price("red", 320, role="staff")
    gate = threading.Barrier(2)
    errors = []

    def push(c):
        try:
            gate.wait()
            c.push()
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=push, args=(c,)) for c in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    order = store.q("SELECT kiosk_id::text, after->>'price', outcome FROM product_changes "
                    "WHERE op = 'update' ORDER BY seq")
    assert [r[1] for r in order] in (["310", "320"], ["320", "310"])
    winner = int(order[-1][1])
    assert order[-1][2] == "conflict-applied"
    for c in (a, b):
        c.pull()
        assert c.catalog.get_product("red").price == winner
    assert store.q("SELECT price FROM products WHERE sku = 'red'")[0][0] == winner
    (conflict,) = store.q("SELECT before->>'price', after->>'price', detail FROM audit "
                          "WHERE action = 'sync_conflict'")
    assert {int(conflict[0]), int(conflict[1])} == {310, 320} and int(conflict[1]) == winner
    prices = store.q("SELECT kiosk_id::text, after->>'price' FROM audit WHERE action = 'price'")
    assert sorted(prices) == sorted([(a.kiosk_id, "310"), (b.kiosk_id, "320")])
    # different fields at the same moment: both stand
    a.catalog.set_price("red", 500, role="staff")
    b.catalog.upsert_product("red", name="Red apple", role="staff")
    a.push()
    b.push()
    for c in (a, b):
        c.pull()
        p = c.catalog.get_product("red")
        assert (p.name, p.price) == ("Red apple", 500)
    for c in (a, b):
        assert_exactly_once(store, c.kiosk_id, c.catalog.path)
        c.close()


def test_deletes_are_tombstones_and_an_edit_of_a_deleted_product_is_refused(store, tmp_path):
    a = client_for(tmp_path, store, "A")
    b = client_for(tmp_path, store, "B")
    enrol(a.catalog, "red", 300, "red")
    enrol(a.catalog, "green", 200, "green")
    a.push()
    b.pull()
    assert len(b.catalog.gallery_rows("red")) == 2
    a.catalog.delete_product("red", role="staff")
    b.catalog.set_price("red", 999, role="staff")  # offline edit of what A deletes
    a.push()
    b.push()
    for c in (a, b):
        c.pull()
        assert c.catalog.get_product("red") is None
        assert c.catalog.gallery_rows("red") == []
        assert c.catalog.get_product("green").price == 200
    assert store.q("SELECT deleted FROM products WHERE sku = 'red'") == [(True,)]
    assert store.q("SELECT count(*) FROM views WHERE sku = 'red' AND NOT deleted") == [(0,)]
    assert store.q("SELECT outcome FROM product_changes WHERE kiosk_id = %s AND op = 'update'",
                   (b.kiosk_id,)) == [("refused-deleted",)]
    assert store.q("SELECT count(*) FROM audit WHERE action = 'sync_conflict' AND subject = 'red'"
                   ) == [(1,)]
    # the sku enrolled again: revived everywhere
    enrol(b.catalog, "red", 350, "red")
    b.push()
    a.pull()
    assert a.catalog.get_product("red").price == 350 and len(a.catalog.gallery_rows("red")) == 2
    for c in (a, b):
        assert_exactly_once(store, c.kiosk_id, c.catalog.path)
        c.close()


def test_views_of_another_model_are_embedded_locally_and_shared(store, tmp_path):
    """A kiosk with another model gets the pictures, embeds them itself and sends its vectors,
    so a third kiosk of that model takes them without embedding; a kiosk of the enrolling
    model embeds nothing."""
    a = client_for(tmp_path, store, "A")
    enrol(a.catalog, "red", 300, "red")
    a.push()
    other = hist_embedder("other-model@2")
    calls = []
    real = other.embed

    def counting(crops):
        calls.append(len(crops))
        return real(crops)

    other.embed = counting
    c = client_for(tmp_path, store, "C", model_id="other-model@2", embedder=other)
    c.pull()
    assert sum(calls) == 2
    rows = c.catalog.gallery_rows("red")
    assert {r["model_id"] for r in rows} == {"other-model@2"} and len(rows) == 2
    c.push()
    assert store.q("SELECT model_id, count(*) FROM view_vectors GROUP BY 1 ORDER BY 1") == [
        ("colour-hist@test", 2), ("other-model@2", 2)]
    d = client_for(tmp_path, store, "D", model_id="other-model@2")  # no embedder at all
    d.pull()
    assert len(d.catalog.gallery_rows("red", model_id="other-model@2")) == 2
    v_c = c.catalog.gallery_vectors("other-model@2")[1]
    v_d = d.catalog.gallery_vectors("other-model@2")[1]
    assert np.allclose(np.sort(v_c, axis=0), np.sort(v_d, axis=0))
    for k in (a, c, d):
        k.close()


def test_a_kiosk_joining_sends_its_history_once_and_takes_the_stores_products(store, tmp_path):
    from kiosk.catalog import Catalog

    a = client_for(tmp_path, store, "A")
    enrol(a.catalog, "red", 300, "red")
    a.push()
    db = tmp_path / "old" / "catalog.db"
    with Catalog(db) as cat:  # a kiosk that worked alone until now
        enrol(cat, "red", 100, "red")  # the store has its own "red"
        enrol(cat, "blue", 500, "blue")
        for _ in range(3):
            cat.record_transaction({"lines": [{"sku": "blue", "name": "BLUE", "qty": 1,
                                               "unit_price": 500, "amount": 500}],
                                    "total": 500, "currency": "CNY"})
    from kiosk.sync.client import StoreClient

    k = StoreClient(db, store.url, password=store.password, kiosk_name="Old",
                    model_id="colour-hist@test")
    k.sync_once()
    k.connect()  # joining again changes nothing
    assert k.push() == 0
    assert k.catalog.get_product("red").price == 300  # the store's
    a.pull()
    assert a.catalog.get_product("blue").price == 500 and len(a.catalog.gallery_rows("blue")) == 2
    assert len(a.catalog.gallery_rows("red")) == 2  # the old kiosk's own red views stay its own
    assert assert_exactly_once(store, k.kiosk_id, db)["transactions"] == 3
    for c in (a, k):
        c.close()


# ------------------------------------------------------------------ the window's side (Qt)


def test_staff_store_tab_lists_every_kiosks_calls_and_closes_them_everywhere(store, tmp_path,
                                                                               qtbot):
    from types import SimpleNamespace

    from kiosk.checkout.calls import CallBoard
    from kiosk.catalog import Catalog
    from kiosk.sync.client import SyncWorker
    from kiosk.ui.store_tab import StoreTab

    a = client_for(tmp_path, store, "A")
    b = client_for(tmp_path, store, "B")
    board_b = CallBoard(b.catalog)
    call = board_b.open("unknown", "an item")
    b.push()
    cat_a = Catalog(a.catalog.path)  # the engine's catalogue in the window
    worker = SyncWorker(a, poll_s=0.05).start()
    try:
        controller = SimpleNamespace(engine=SimpleNamespace(catalog=cat_a),
                                     session=SimpleNamespace(calls=CallBoard(cat_a)))
        tab = StoreTab(controller, SimpleNamespace(client=a, worker=worker, status=worker.status))
        qtbot.addWidget(tab)
        tab.show()

        def listed() -> bool:
            tab.refresh()
            return tab.calls.rowCount() == 1 and tab.kiosks.rowCount() == 2

        qtbot.waitUntil(listed, timeout=10000)
        assert tab.calls.item(0, 0).text() == "B"
        assert tab.calls.item(0, 1).text() == tab.reason_text("unknown")
        assert "A" in tab.status.text()
        tab.calls.selectRow(0)
        assert tab.close_selected()
        assert tab.calls.rowCount() == 0
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and board_b.get(call.id).open:
            b.pull()
            time.sleep(0.1)
        assert not board_b.get(call.id).open
        assert board_b.open_calls() == []
        tab.hide()
        qtbot.waitUntil(lambda: tab._task is None, timeout=10000)
    finally:
        worker.stop()
        cat_a.close()
        a.close()
        b.close()


@pytest.mark.parametrize("mode", ["apply", "keep"])
def test_price_change_during_a_basket_applies_as_the_store_chooses(store, tmp_path, qtbot, mode):
    """A price changed on another kiosk while a basket is open: shown on the screen; "apply"
    charges it at once, "keep" only from the next customer (the empty tray)."""
    from types import SimpleNamespace

    from PySide6.QtWidgets import QApplication

    from kiosk.ui import i18n

    i18n.set_language(QApplication.instance(), "en")  # (earlier tests may leave Chinese on)

    from PySide6.QtCore import QObject, Signal
    from PySide6.QtWidgets import QWidget

    from kiosk.checkout.calls import CallBoard
    from kiosk.catalog import Catalog
    from kiosk.decide import Decider
    from kiosk.detect import make_detector
    from kiosk.engine import Engine
    from kiosk.sync.config import StoreConfig
    from kiosk.ui.store_sync import StoreSync

    b = client_for(tmp_path, store, "B")
    enrol(b.catalog, "red", 300, "red")
    b.push()
    a = client_for(tmp_path, store, "A")
    a.pull()
    a.close()

    class Controller(QObject):
        stateChanged = Signal(object)

        def __init__(self, engine, session) -> None:
            super().__init__()
            self.engine, self.session, self.refreshed = engine, session, 0

        def notify_catalogue_changed(self) -> None:
            self.refreshed += 1

    class Window(QWidget):
        finished = Signal(int)

        def __init__(self, controller) -> None:
            super().__init__()
            self.controller = controller

    engine = Engine(Catalog(a.catalog.path), hist_embedder(), make_detector("tray"),
                    Decider(threshold=0.6))
    session = SimpleNamespace(calls=CallBoard(engine.catalog))
    window = Window(Controller(engine, session))
    qtbot.addWidget(window)
    window.resize(900, 600)
    window.show()
    sync = StoreSync(window, SimpleNamespace(engine=engine, session=session,
                                             db_path=a.catalog.path),
                     StoreConfig(store.url, store.password, "A", mode))
    try:
        basket = SimpleNamespace(items=(SimpleNamespace(sku="red"),))
        window.controller.stateChanged.emit(basket)
        b.catalog.set_price("red", 450, role="staff")
        b.push()
        qtbot.waitUntil(lambda: sync.label.isVisible(), timeout=10000)
        assert "¥3.00 → ¥4.50" in sync.label.text()
        assert window.controller.refreshed >= 1
        if mode == "apply":
            assert engine.lookup_product("red").price == 450
        else:
            assert "next customer" in sync.label.text()
            assert engine.lookup_product("red").price == 300  # this basket keeps its price
            assert engine.catalog.get_product("red").price == 450
            window.controller.stateChanged.emit(SimpleNamespace(items=()))  # tray empty
            qtbot.waitUntil(lambda: engine.lookup_product("red").price == 450, timeout=5000)
    finally:
        sync.stop()
        engine.close()
        b.close()


def test_cashier_accounts_are_the_stores(store, tmp_path):
    """A cashier added on one kiosk signs in on another with the same code (one store-wide
    salt); a kiosk with cashiers of its own under another salt keeps them to itself."""
    from kiosk.checkout.cashier_auth import CashierAuth

    a = client_for(tmp_path, store, "A")
    b = client_for(tmp_path, store, "B")
    CashierAuth(a.catalog).add("C001", "Li Na", "4711", badge="badge-0001")
    a.push()
    b.pull()
    auth_b = CashierAuth(b.catalog)
    assert auth_b.verify_code("4711").id == "C001"
    assert auth_b.verify_badge("badge-0001").id == "C001"
    CashierAuth(b.catalog).set_active("C001", False)
    b.push()
    a.pull()
    assert CashierAuth(a.catalog).get("C001").active is False
    from kiosk.catalog import Catalog

    db = tmp_path / "own" / "catalog.db"
    with Catalog(db) as cat:
        CashierAuth(cat).add("X9", "Own", "9999")
    from kiosk.sync.client import StoreClient

    c = StoreClient(db, store.url, password=store.password, kiosk_name="C",
                    model_id="colour-hist@test")
    c.sync_once()
    assert not c.cashiers_shared
    assert store.q("SELECT id FROM cashiers") == [("C001",)]
    assert CashierAuth(c.catalog).get("C001") is None and CashierAuth(c.catalog).get("X9")
    for k in (a, b, c):
        k.close()


@pytest.mark.slow
def test_store_bench_runs_and_loses_nothing():
    """``kiosk bench --store`` in small: 3 kiosks, 12 s, a sale every 0.4 s each."""
    from kiosk.sync.bench import format_store_bench, run_store_bench

    r = run_store_bench(3, 12 / 60, sale_every_s=0.4, enrol_every_s=5, price_every_s=3,
                        seed_products=10, processes=1)
    assert r["pass"], format_store_bench(r)
    assert r["sales"] >= 60 and r["exactly_once"]["checked"]["sales"] == r["sales"]
    assert r["product_changes_applied_elsewhere"] > 0
    assert r["product_sync_lag_s"]["p95"] < 5.0
    assert "exactly once: yes" in format_store_bench(r)
