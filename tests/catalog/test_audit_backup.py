"""Issue 6: the append-only audit log, backup and restore, owner-only files.

Real SQLite files, the real engine (on private copies of the session demo catalogue) and the
real staff page; nothing of ours is mocked.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import stat
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
from types import SimpleNamespace

from kiosk.demo import scenes as demo
from kiosk.catalog.backup import BackupError, backup, restore, verify_backup
from kiosk.camera import Frame
from kiosk.catalog import SCHEMA_VERSION, Catalog
from kiosk.embed import Embeddings
from kiosk.checkout.staff_auth import StaffAuth


@pytest.fixture
def cat(tmp_path):
    with Catalog(tmp_path / "data" / "catalog.db") as c:
        yield c


def audit_rows(cat: Catalog) -> list[dict]:
    return list(reversed(cat.audit_log(limit=None)))  # oldest first


def vectors(n: int, dim: int = 8, seed: int = 0) -> Embeddings:
    v = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return Embeddings(v / np.linalg.norm(v, axis=1, keepdims=True), "test-model")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def snapshot(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` (to prove nothing changed)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------ the schema
def test_migration_adds_the_audit_table_to_an_older_catalogue(tmp_path):
    import sqlite_utils

    from kiosk.catalog import MIGRATIONS

    path = tmp_path / "old.db"
    db = sqlite_utils.Database(path)
    for number, migrate in enumerate(MIGRATIONS[:3], 1):  # a catalogue of schema version 3
        migrate(db)
        db.execute(f"PRAGMA user_version = {number}")
    db.execute("INSERT INTO products (sku, name, price) VALUES ('OLD', 'old product', 100)")
    db.conn.commit()
    db.close()
    with Catalog(path) as c:
        assert c.schema_version == SCHEMA_VERSION >= 4
        assert c.get_product("OLD").price == 100
        c.set_price("OLD", 120, role="cli")
        assert [(r["action"], r["before"]["price"], r["after"]["price"]) for r in c.audit_log()] == [
            ("price", 100, 120)]


# ------------------------------------------------------------------- rows for each change
CHANGES = [
    # (what, change(cat), action, role, subject, before, after)
    ("add", lambda c: c.add_product("P2", "pear", 300, role="staff"),
     "product_add", "staff", "P2", None,
     {"sku": "P2", "name": "pear", "price": 300, "currency": "CNY", "barcode": None, "active": True}),
    ("price", lambda c: c.set_price("P1", 420, role="staff"),
     "price", "staff", "P1", {"price": 350, "currency": "CNY"}, {"price": 420, "currency": "CNY"}),
    ("unprice", lambda c: c.set_price("P1", None, role="cli"),
     "price", "cli", "P1", {"price": 350, "currency": "CNY"}, {"price": None, "currency": "CNY"}),
    ("upsert price", lambda c: c.upsert_product("P1", price=360, role="cli"),
     "price", "cli", "P1", {"price": 350}, {"price": 360}),
    ("upsert name", lambda c: c.upsert_product("P1", name="apple big", price=360, role="cli"),
     "product_update", "cli", "P1", {"name": "apple", "price": 350}, {"name": "apple big", "price": 360}),
    ("deactivate", lambda c: c.set_active("P1", False, role="staff"),
     "deactivate", "staff", "P1", {"active": True}, {"active": False}),
    ("delete", lambda c: c.delete_product("P1", role="staff"),
     "product_delete", "staff", "P1",
     {"sku": "P1", "name": "apple", "price": 350, "currency": "CNY", "barcode": None, "active": True,
      "images": 3}, None),
    ("gallery", lambda c: c.add_gallery_images("P1", ["x.jpg", "y.jpg"], vectors(2, seed=1),
                                               role="cli", audit_action="enrol"),
     "enrol", "cli", "P1", None, {"images": 2}),
    ("override", lambda c: c.log_correction([1, 2, 3, 4], "P1", "P3"),
     "override", "cashier", "P3", {"sku": "P1"}, {"sku": "P3"}),
    ("remove", lambda c: c.log_action("remove", [1, 2, 3, 4], "P1", None, prev_qty=2),
     "remove", "cashier", "P1", {"sku": "P1", "qty": 2}, None),
    ("qty", lambda c: c.log_action("qty", [1, 2, 3, 4], "P1", "P1", qty=3, prev_qty=1),
     "qty", "cashier", "P1", {"sku": "P1", "qty": 1}, {"sku": "P1", "qty": 3}),
]


@pytest.mark.parametrize("what,change,action,role,subject,before,after", CHANGES,
                         ids=[c[0] for c in CHANGES])
def test_each_change_writes_one_audit_row(cat, what, change, action, role, subject, before, after):
    cat.add_product("P1", "apple", 350)
    cat.add_product("P3", "plum", 200)
    cat.add_gallery_images("P1", ["a.jpg", "b.jpg", "c.jpg"], vectors(3))
    n = len(audit_rows(cat))
    change(cat)
    rows = audit_rows(cat)[n:]
    assert len(rows) == 1, rows
    row = rows[0]
    assert (row["action"], row["role"], row["subject"]) == (action, role, subject)
    assert (row["before"], row["after"]) == (before, after)
    assert row["time"].endswith("Z") and row["time"][:4].isdigit()


def test_no_change_no_row_and_a_failed_change_leaves_no_row(cat):
    cat.add_product("P1", "apple", 350)
    n = len(audit_rows(cat))
    cat.set_price("P1", 350, role="staff")  # same price: nothing changed
    cat.set_active("P1", True, role="staff")
    with pytest.raises(KeyError):
        cat.set_price("NOPE", 100, role="staff")
    with pytest.raises(ValueError):
        cat.set_price("P1", -5, role="staff")
    assert len(audit_rows(cat)) == n
    # an audit row that cannot be written takes its change down with it (one transaction)
    with pytest.raises(ValueError, match="audit role"):
        cat.set_price("P1", 999, role="intruder")
    assert cat.get_product("P1").price == 350 and len(audit_rows(cat)) == n


@pytest.mark.parametrize("sql", ["UPDATE audit SET role = 'staff'",
                                 "UPDATE audit SET after = NULL WHERE id = 1",
                                 "DELETE FROM audit", "DELETE FROM audit WHERE id = 1"])
def test_the_audit_log_is_append_only(cat, sql):
    cat.add_product("P1", "apple", 350, role="staff")
    cat.set_price("P1", 400, role="staff")
    before = cat.audit_log()
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        cat.conn.execute(sql)
    cat.conn.rollback()  # (the failed statement opened an implicit transaction)
    # and from another connection, straight into the file
    other = sqlite3.connect(cat.path)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        other.execute(sql)
    other.close()
    assert cat.audit_log() == before


def test_staff_pin_changes_are_audited_without_the_pin_or_its_hash(cat):
    now = [1000.0]
    auth = StaffAuth(cat, max_attempts=2, lockout_s=30, clock=lambda: now[0])
    auth.set_pin("4711")
    auth.set_pin("86420", role="cli")
    assert not auth.verify("1111") and not auth.verify("2222")  # locked out
    rows = audit_rows(cat)
    assert [(r["action"], r["role"]) for r in rows] == [
        ("pin_set", "staff"), ("pin_set", "cli"), ("pin_lockout", "system")]
    assert rows[0]["before"] == {"pin_set": False} and rows[1]["before"] == {"pin_set": True}
    secret = cat.get_staff_auth()
    dump = "\n".join(" ".join(map(str, r)) for r in cat.conn.execute("SELECT * FROM audit"))
    for value in ("4711", "86420", "1111", "2222", bytes(secret["pin_hash"]).hex(),
                  bytes(secret["salt"]).hex(), str(secret["pin_hash"]), str(secret["salt"])):
        assert value not in dump


# ------------------------------------------------------------- engine and cashier actions
@pytest.fixture
def engine(tmp_path, copy_demo_db, embedder):
    from kiosk.engine import Engine

    e = Engine.open(copy_demo_db(tmp_path / "store"), embedder=embedder)
    yield e
    e.close()


def test_cashier_corrections_are_audited_as_cashier(engine):
    from kiosk.checkout.session import CheckoutSession

    session = CheckoutSession(engine, settle_ms=0)
    image = demo.render_tray([("DEMO-001", 200, 200, 10), ("DEMO-006", 250, 520, -20)]).image
    states = [session.process(Frame(image, i, 100.0 + i * 0.1)) for i in range(3)]
    st = next(s for s in reversed(states) if s is not None and s.items)
    a = next(i for i in st.items if i.sku == "DEMO-001")
    b = next(i for i in st.items if i.sku == "DEMO-006")
    session.open_attendant(SimpleNamespace(id="C007", name="李雷"))
    n = len(audit_rows(engine.catalog))
    session.override(a.track_id, "DEMO-009")
    session.set_qty(b.track_id, 3)
    session.remove(a.track_id)
    rows = audit_rows(engine.catalog)[n:]
    assert [(r["role"], r["action"], r["subject"], r["before"], r["after"]) for r in rows] == [
        ("cashier", "override", "DEMO-009", {"sku": "DEMO-001"}, {"sku": "DEMO-009"}),
        ("cashier", "qty", "DEMO-006", {"sku": "DEMO-006", "qty": 1}, {"sku": "DEMO-006", "qty": 3}),
        ("cashier", "remove", "DEMO-009", {"sku": "DEMO-009", "qty": 1}, None),
    ]
    assert [r["actor"] for r in rows] == ["C007"] * 3  # the cashier who did it, by id
    assert json.loads(rows[0]["detail"])["box"] == list(a.box)


def test_engine_changes_are_audited_with_the_callers_role(engine):
    crops = [demo.render_tray([("DEMO-011", 640, 360, 0)]).image[200:520, 480:800]]
    engine.catalog.add_product("NEW-1", "new thing", 100, role="staff")
    engine.add_crops("NEW-1", crops, role="staff")  # kept twice: as cut and half-turned
    engine.set_price("NEW-1", 150, role="staff")
    engine.set_active("NEW-1", False, role="cli")
    engine.set_active("NEW-1", True, role="cli")
    engine.remove_product("NEW-1", role="staff")
    rows = [r for r in audit_rows(engine.catalog) if r["subject"] == "NEW-1"]
    assert [(r["role"], r["action"]) for r in rows] == [
        ("staff", "product_add"), ("staff", "enrol"), ("staff", "price"), ("cli", "deactivate"),
        ("cli", "activate"), ("staff", "product_delete")]
    assert rows[1]["after"] == {"images": 2}
    assert rows[-1]["before"]["images"] == 2 and rows[-1]["before"]["price"] == 150


def test_gallery_import_writes_one_summary_row(tmp_path, embedder):
    from kiosk.catalog.gallery_io import import_gallery, scan_folder

    src = tmp_path / "photos"
    for sku, x in (("IMP-A", 0), ("IMP-B", 1)):
        (src / sku).mkdir(parents=True)
        for v in range(2):
            img = demo.render_tray([(("DEMO-001", "DEMO-006")[x], 640, 360, 40 * v)]).image
            import cv2

            cv2.imwrite(str(src / sku / f"{v}.jpg"), img[180:540, 460:820])
    with Catalog(tmp_path / "data" / "catalog.db") as c:
        import_gallery(c, scan_folder(src), None, embedder, copy_to=tmp_path / "data" / "gallery",
                       role="cli")
        rows = audit_rows(c)
    assert [(r["action"], r["role"], r["subject"]) for r in rows] == [
        ("product_add", "cli", "IMP-A"), ("product_add", "cli", "IMP-B"),
        ("gallery_import", "cli", None)]
    assert rows[-1]["after"]["images"] == 4 and rows[-1]["after"]["skus"] == ["IMP-A", "IMP-B"]


# -------------------------------------------------------------------------------- backup
def make_store(engine) -> dict:
    """Pictures under the data folder, a sale, a price change: something worth backing up."""
    crops = [demo.render_tray([("DEMO-011", 640, 360, a)]).image[200:520, 480:800] for a in (0, 60)]
    engine.catalog.add_product("NEW-1", "new thing", 100, role="staff")
    engine.add_crops("NEW-1", crops, role="staff")
    engine.set_price("DEMO-001", 777, role="staff")
    tx = engine.catalog.record_transaction(engine.receipt_for(["DEMO-001", "DEMO-002"]))
    engine.save()
    return {"tx": tx}


def catalogue_state(db: Path) -> dict:
    with Catalog(db) as c:
        return {
            "products": c.list_products(active_only=False),
            "gallery": [(r["id"], r["sku"], Path(r["file"]).name, r["model_id"])
                        for r in c.gallery_rows()],
            "vectors": c.gallery_vectors_for([r["id"] for r in c.gallery_rows()]).tobytes(),
            "transactions": [c.get_transaction(i) for (i,) in c._rows("SELECT id FROM transactions")],
            "audit": [r for r in c.audit_log(limit=None) if r["action"] not in ("backup", "restore")],
        }


@pytest.mark.parametrize("name", ["bk", "bk.tar", "bk.tar.gz", "bk.zip"])
def test_backup_restore_round_trip(tmp_path, engine, embedder, name):
    from kiosk.engine import Engine

    make_store(engine)
    db = engine.catalog.path
    data = db.parent
    want = catalogue_state(db)
    own = [Path(f) for _, f in engine.catalog.gallery_files("NEW-1")]
    assert own and all(f.is_file() and data in f.parents for f in own)
    manifest = backup(db, tmp_path / "out" / name, role="cli")
    assert manifest["schema_version"] == SCHEMA_VERSION
    assert manifest["counts"]["transactions"] == len(want["transactions"])
    assert {f["rel"] for f in manifest["files"]} >= {f.relative_to(data).as_posix() for f in own}
    assert manifest["external"]  # the demo pictures live with the session demo catalogue
    assert verify_backup(tmp_path / "out" / name)["db"]["sha256"] == manifest["db"]["sha256"]

    # later: things go wrong -- a product deleted, pictures lost, the index out of date
    engine.remove_product("NEW-1", role="staff")
    engine.catalog.add_product("LATER", "added after the backup", 100)
    engine.add_crops("LATER", [demo.render_tray([("DEMO-004", 640, 360, 0)]).image[200:520, 480:800]])
    engine.close()
    for f in own:
        f.unlink()
    with pytest.raises(BackupError, match="in use"):  # the kiosk still has it open
        with Catalog(db):
            restore(tmp_path / "out" / name, db, role="cli")

    report = restore(tmp_path / "out" / name, db, role="cli")
    assert Path(report["previous"]).is_file()
    got = catalogue_state(db)
    assert got == want
    assert all(f.is_file() for f in own)
    assert not db.with_suffix(".faiss").exists()  # the old index is set aside ...
    with Catalog(db) as c:
        top = c.audit_log(limit=1)[0]
        assert (top["action"], top["role"], top["before"]) == (
            "restore", "cli", {"previous": report["previous"]})
    again = Engine.open(db, embedder=embedder)  # ... and rebuilt from the stored embeddings
    try:
        assert again.index_action.startswith("rebuilt")
        live, _ = again.catalog.gallery_ids(embedder.model_id)
        assert sorted(again.index.live_ids().tolist()) == sorted(live.tolist())
        tray = demo.render_tray([("DEMO-001", 300, 300, 0), ("DEMO-011", 800, 400, 30)]).image
        result = again.recognize(tray)
        assert sorted(i.sku for i in result.items) == ["DEMO-001", "DEMO-011"]
        assert again.product("DEMO-001").price == 777
        assert again.product("LATER") is None and again.product("NEW-1") is not None
    finally:
        again.close()


def test_restore_into_another_data_folder_points_the_gallery_there(tmp_path, engine):
    make_store(engine)
    db = engine.catalog.path
    backup(db, tmp_path / "bk.zip")
    engine.close()
    new_db = tmp_path / "elsewhere" / "data" / "catalog.db"
    report = restore(tmp_path / "bk.zip", new_db)
    assert report["previous"] is None
    with Catalog(new_db) as c:
        files = [Path(f) for _, f in c.gallery_files("NEW-1")]
    assert files and all(f.is_file() and new_db.parent in f.parents for f in files)


def test_backup_while_another_connection_writes_is_consistent(tmp_path, cat):
    cat.add_product("P1", "apple", 100)
    stop = threading.Event()
    receipt = {"lines": [{"sku": "P1", "name": "apple", "qty": 1, "unit_price": 100, "amount": 100},
                         {"sku": "P1", "name": "apple", "qty": 2, "unit_price": 100, "amount": 200}],
               "total": 300, "currency": "CNY"}
    written = [0]

    def writer():
        with Catalog(cat.path) as other:  # its own connection, like the running kiosk
            while not stop.is_set():
                other.record_transaction(receipt)
                written[0] += 1

    t = threading.Thread(target=writer)
    t.start()
    try:
        for n in range(5):
            while written[0] < 20 * (n + 1):
                stop.wait(0.005)
            m = backup(cat.path, tmp_path / f"bk{n}")
            snap = sqlite3.connect(tmp_path / f"bk{n}" / "catalog.db")
            tx, lines, total = snap.execute(
                "SELECT (SELECT COUNT(*) FROM transactions), (SELECT COUNT(*) FROM transaction_lines),"
                " (SELECT SUM(total) FROM transactions)").fetchone()
            assert snap.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            snap.close()
            assert tx > 0 and lines == 2 * tx and total == 300 * tx  # whole sales only
            assert m["counts"]["transactions"] == tx
    finally:
        stop.set()
        t.join()


# ------------------------------------------------------------------------- bad backups
def _rehash(root: Path, manifest: dict) -> None:
    db = root / "catalog.db"
    manifest["db"].update(size=db.stat().st_size, sha256=hashlib.sha256(db.read_bytes()).hexdigest())


def _damage_db_bytes(root, m):
    data = bytearray((root / "catalog.db").read_bytes())
    data[5000] ^= 0xFF
    (root / "catalog.db").write_bytes(bytes(data))


def _corrupt_db_and_fix_the_hash(root, m):
    data = bytearray((root / "catalog.db").read_bytes())
    for page in range(1, len(data) // 4096):  # trash every b-tree page header after the first
        data[page * 4096:page * 4096 + 8] = b"\xff" * 8
    (root / "catalog.db").write_bytes(bytes(data))
    _rehash(root, m)


def _newer_schema(root, m):
    conn = sqlite3.connect(root / "catalog.db")
    conn.execute("PRAGMA user_version = 99")
    conn.commit()
    conn.close()
    m["schema_version"] = 99
    _rehash(root, m)


def _drop_a_sale_and_fix_the_hash(root, m):
    conn = sqlite3.connect(root / "catalog.db")
    conn.execute("DELETE FROM transactions")
    conn.commit()
    conn.close()
    _rehash(root, m)


def _change_a_picture(root, m):
    f = root / m["files"][0]["path"]
    f.write_bytes(f.read_bytes() + b"x")


def _lose_a_picture(root, m):
    (root / m["files"][0]["path"]).unlink()


def _escape_the_data_folder(root, m):
    m["files"][0]["rel"] = "../../outside.jpg"


def _no_manifest(root, m):
    (root / "manifest.json").unlink()
    m.clear()


def _not_json(root, m):
    m.clear()
    m["raw"] = "{not json"


BAD = [
    ("db bytes", _damage_db_bytes, "does not match its manifest"),
    ("corrupt db", _corrupt_db_and_fix_the_hash, "integrity check|cannot be read"),
    ("newer schema", _newer_schema, "newer kiosk"),
    ("counts", _drop_a_sale_and_fix_the_hash, "does not match its manifest"),
    ("picture changed", _change_a_picture, "does not match its manifest"),
    ("picture missing", _lose_a_picture, "missing"),
    ("unsafe path", _escape_the_data_folder, "unsafe path"),
    ("no manifest", _no_manifest, "not a kiosk backup"),
    ("manifest not json", _not_json, "not valid JSON"),
]


@pytest.mark.parametrize("what,damage,error", BAD, ids=[b[0] for b in BAD])
def test_a_bad_backup_is_refused_and_nothing_changes(tmp_path, engine, what, damage, error):
    make_store(engine)
    db = engine.catalog.path
    backup(db, tmp_path / "bk")
    engine.close()
    root = tmp_path / "bk"
    manifest = json.loads((root / "manifest.json").read_text())
    damage(root, manifest)
    if "raw" in manifest:
        (root / "manifest.json").write_text(manifest["raw"])
    elif manifest:
        (root / "manifest.json").write_text(json.dumps(manifest))
    before = snapshot(db.parent)
    with pytest.raises(BackupError, match=error):
        restore(root, db)
    assert snapshot(db.parent) == before
    # and the same damage inside an archive
    with tarfile.open(tmp_path / "bk.tar", "w") as t:
        for p in sorted(root.rglob("*")):
            t.add(p, p.relative_to(root).as_posix(), recursive=False)
    with pytest.raises(BackupError, match=error):
        restore(tmp_path / "bk.tar", db)
    assert snapshot(db.parent) == before


def test_truncated_or_foreign_archives_are_refused(tmp_path, cat):
    cat.add_product("P1", "apple", 100)
    backup(cat.path, tmp_path / "bk.tar.gz")
    data = (tmp_path / "bk.tar.gz").read_bytes()
    (tmp_path / "cut.tar.gz").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.zip").write_bytes(b"PK\x03\x04 not really a zip")
    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as t:
        info = tarfile.TarInfo("../escape.txt")
        info.size = 0
        t.addfile(info)
    cat.close()
    before = snapshot(cat.path.parent)
    for bad, error in (("cut.tar.gz", "cannot be read"), ("junk.zip", "not a backup"),
                       ("evil.tar", "unsafe path"), ("nothing-here", "no such backup")):
        with pytest.raises(BackupError, match=error):
            restore(tmp_path / bad, cat.path)
    assert snapshot(cat.path.parent) == before
    assert not (tmp_path / "escape.txt").exists()


def test_backup_refuses_to_overwrite(tmp_path, cat):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(BackupError, match="already exists"):
        backup(cat.path, tmp_path / "full")
    with pytest.raises(BackupError, match="no catalogue"):
        backup(tmp_path / "none.db", tmp_path / "bk")
    backup(cat.path, tmp_path / "bk.zip")
    with pytest.raises(BackupError, match="already exists"):
        backup(cat.path, tmp_path / "bk.zip")


# --------------------------------------------------------------------------- permissions
@pytest.fixture
def loose_umask():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_files_the_kiosk_writes_are_owner_only(tmp_path, loose_umask):
    from kiosk.settings import Settings, save_settings

    db = tmp_path / "data" / "catalog.db"
    with Catalog(db) as c:
        c.add_product("P1", "apple", 100)  # the -wal and -shm files exist now
        for suffix in ("", "-wal", "-shm"):
            assert mode(db.with_name(db.name + suffix)) == 0o600, suffix
        backup(db, tmp_path / "bk")
        backup(db, tmp_path / "deeper" / "bk.zip")
    assert mode(tmp_path / "bk") == 0o700 and mode(tmp_path / "deeper") == 0o700
    assert all(mode(p) == (0o700 if p.is_dir() else 0o600) for p in (tmp_path / "bk").rglob("*"))
    assert mode(tmp_path / "deeper" / "bk.zip") == 0o600
    restore(tmp_path / "bk", db)
    for p in db.parent.iterdir():
        assert mode(p) == 0o600, p
    save_settings(Settings(), tmp_path / "data" / "settings.toml")
    assert mode(tmp_path / "data" / "settings.toml") == 0o600
    # an existing catalogue left readable by others is tightened when opened
    os.chmod(db, 0o644)
    Catalog(db).close()
    assert mode(db) == 0o600


def test_cli_backup_restore_and_umask(tmp_path, cat, loose_umask, capsys):
    from kiosk.cli import main

    cat.add_product("P1", "apple", 100)
    cat.close()
    assert main(["backup", "--db", str(cat.path), str(tmp_path / "bk")]) == 0
    assert os.umask(0o022) == 0o077  # the command line makes everything owner-only
    assert "backup written to" in capsys.readouterr().out
    with Catalog(cat.path) as c:
        c.set_price("P1", 999, role="cli")
    assert main(["restore", "--db", str(cat.path), str(tmp_path / "bk")]) == 0
    out = capsys.readouterr().out
    assert "restored" in out and "pre-restore" in out
    with Catalog(cat.path) as c:
        assert c.get_product("P1").price == 100
        assert [(r["action"], r["role"]) for r in c.audit_log(limit=1)] == [("restore", "cli")]
    shutil.rmtree(tmp_path / "bk" / "files", ignore_errors=True)
    (tmp_path / "bk" / "catalog.db").write_bytes(b"garbage")
    assert main(["restore", "--db", str(cat.path), str(tmp_path / "bk")]) == 2
    assert "does not match its manifest" in capsys.readouterr().err


# ---------------------------------------------------------------------------------- GUI
def test_staff_audit_page_lists_a_price_change_and_backs_up(qtbot, qapp, engine, tmp_path):
    pytest.importorskip("pytestqt")
    from kiosk.checkout.session import CheckoutSession
    from kiosk.settings import Settings
    from kiosk.ui import i18n
    from kiosk.ui.app import setup_application
    from kiosk.ui.controller import KioskController
    from kiosk.ui.staff import StaffPage

    app = setup_application(settings=Settings())
    i18n.set_language(app, "zh_CN")
    controller = KioskController(engine, CheckoutSession(engine), None)
    page = StaffPage(controller)
    qtbot.addWidget(page)
    page.tabs.setCurrentWidget(page.catalogue)
    page.catalogue.set_price("DEMO-001", "4.20")
    page.tabs.setCurrentWidget(page.audit)
    assert page.tabs.tabText(page.tabs.currentIndex()) == "审计记录与备份"
    top = page.audit.rows()[0]
    assert top[1:4] == ["店员", "改价", "DEMO-001"]
    assert top[4] == "价格: ¥3.50 → ¥4.20", top
    i18n.set_language(app, "en")
    assert page.audit.rows()[0][1:] == ["Staff", "Price changed", "DEMO-001", "price: ¥3.50 → ¥4.20"]
    dest = tmp_path / "backups" / "b1"
    with qtbot.waitSignal(page.audit.backedUp, timeout=30_000):
        page.audit.backup_to(dest)
    assert (dest / "manifest.json").is_file()
    assert page.audit.rows()[0][2] == "Backup"
    i18n.set_language(app, "zh_CN")
    controller.shutdown()
