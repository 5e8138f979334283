"""The ``kiosk`` command line, run in-process (``kiosk.cli.main``) and once as a real process.

Other tools script against the JSON output: these tests pin its keys.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kiosk.demo import scenes as demo
from kiosk.catalog import Catalog
from kiosk.cli import main

PROJECT = Path(__file__).resolve().parents[1]
RESOURCES = PROJECT / "resources" / "demo"
GALLERY = demo.DEMO_GALLERY_DIR
TRAYS = {t["image"]: t for t in json.loads((RESOURCES / "trays.json").read_text())["trays"]}
ITEM_KEYS = {"box", "sku", "name", "score", "unknown", "candidates", "words", "by_text"}
LINE_KEYS = {"sku", "name", "qty", "unit_price", "amount"}
EVAL_KEYS = {"recall_at_1", "recall_at_5", "mAP", "n_queries", "accuracy", "false_reject_rate",
             "unknown_reject_rate"}


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> Path:
    """KIOSK_DATA_DIR in a fresh folder; no KIOSK_DB from the caller's environment."""
    path = tmp_path / "kiosk-data"
    monkeypatch.setenv("KIOSK_DATA_DIR", str(path))
    monkeypatch.delenv("KIOSK_DB", raising=False)
    return path


def run(capsys, *argv) -> tuple[int, str, str]:
    capsys.readouterr()  # drop anything printed before
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def json_lines(text: str) -> list:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def view_path(sku: str, view: int) -> Path:
    return GALLERY / sku / f"{sku}_v{view}.jpg"


def write_list(path: Path, skus, views) -> Path:
    path.write_text("".join(f"{view_path(s, v)}\t{s}\n" for s in skus for v in views),
                    encoding="utf-8")
    return path


def table_counts(db: Path) -> dict:
    cat = Catalog(db)
    try:
        return cat.table_counts()
    finally:
        cat.close()


def gallery_list_json(capsys, db: Path) -> dict:
    rc, out, _ = run(capsys, "gallery", "list", "--db", db, "--json")
    assert rc == 0
    return {row["sku"]: row for row in json.loads(out)}


# ------------------------------------------------------------------------------ recognize
def check_tray_json(obj: dict, image: str) -> None:
    tray = TRAYS[image]
    assert Path(obj["image"]).name == image
    assert isinstance(obj["items"], list) and len(obj["items"]) == len(tray["items"])
    for item in obj["items"]:
        assert set(item) == ITEM_KEYS
        assert len(item["box"]) == 4 and all(isinstance(v, int) for v in item["box"])
        x1, y1, x2, y2 = item["box"]
        assert x1 < x2 and y1 < y2
        assert item["unknown"] is False and isinstance(item["score"], float)
        assert item["candidates"] and set(item["candidates"][0]) == {"sku", "name", "score"}
        assert item["candidates"][0]["sku"] == item["sku"]
        assert item["name"] == demo.product(item["sku"]).name
    assert sorted(i["sku"] for i in obj["items"]) == sorted(i["sku"] for i in tray["items"])
    receipt = obj["receipt"]
    assert receipt["total"] == tray["total_fen"]
    for line in receipt["lines"]:
        assert LINE_KEYS <= set(line)
        assert line["amount"] == line["qty"] * line["unit_price"]
        assert line["unit_price"] == demo.product(line["sku"]).price
    assert sum(line["qty"] for line in receipt["lines"]) == len(tray["items"])


def test_recognize_json_two_trays(capsys, data_dir, copy_demo_db):
    # the demo catalogue where the CLI looks for it (building it is tested in a subprocess)
    copy_demo_db(data_dir / "demo")
    images = [RESOURCES / "tray_01.png", RESOURCES / "tray_03.png"]
    rc, out, err = run(capsys, "recognize", "--json", *images)
    assert rc == 0, err
    objs = json_lines(out)
    assert len(objs) == 2 and len(out.strip().splitlines()) == 2
    for obj, image in zip(objs, images):
        check_tray_json(obj, image.name)


def test_recognize_text_output(capsys, data_dir, copy_demo_db):
    db = copy_demo_db(data_dir / "store")
    rc, out, err = run(capsys, "recognize", "--db", db, RESOURCES / "tray_02.png")
    assert rc == 0, err
    assert "5 item(s)" in out and "TOTAL" in out and "¥28.40" in out
    assert "奥利奥饼干" in out


def test_recognize_missing_image(capsys, data_dir, copy_demo_db):
    db = copy_demo_db(data_dir / "store")
    rc, _out, err = run(capsys, "recognize", "--db", db, data_dir / "nope.png")
    assert rc == 2 and "nope.png" in err and "Traceback" not in err


def test_subprocess_recognize_builds_demo_catalogue(tmp_path):
    """A real ``python -m kiosk`` run with an empty data folder: the demo catalogue is built
    on first use, then the tray is recognised; the second run reuses the catalogue."""
    env = {**os.environ, "KIOSK_DATA_DIR": str(tmp_path / "data")}
    env.pop("KIOSK_DB", None)
    cmd = [sys.executable, "-m", "kiosk", "recognize", "--json", str(RESOURCES / "tray_01.png")]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "demo catalogue" in proc.stderr
    (obj,) = json_lines(proc.stdout)
    check_tray_json(obj, "tray_01.png")
    assert (tmp_path / "data" / "demo" / "catalog.db").is_file()
    assert (tmp_path / "data" / "demo" / "catalog.faiss").is_file()

    bad = subprocess.run([sys.executable, "-m", "kiosk", "gallery", "remove", "--db",
                          str(tmp_path / "data" / "demo" / "catalog.db"), "NO-SUCH-SKU"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
                         check=False)
    assert bad.returncode == 2
    assert "NO-SUCH-SKU" in bad.stderr and "Traceback" not in bad.stderr


# -------------------------------------------------------------------------------- gallery
def test_gallery_import_list_and_bad_input(capsys, data_dir, tmp_path):
    db = data_dir / "catalog.db"
    skus = ["DEMO-001", "DEMO-002", "DEMO-003"]
    lst = write_list(tmp_path / "gallery_list.txt", skus, range(3))
    csv = tmp_path / "products.csv"
    csv.write_text("sku,name,price,barcode\n"
                   "DEMO-001,可口可乐 330ml,3.50,6900120240017\n"
                   "DEMO-002,农夫山泉 550ml,2.00,\n", encoding="utf-8")

    rc, out, err = run(capsys, "gallery", "import", "--db", db, lst, "--products", csv,
                       "--json")
    assert rc == 0, err
    report = json.loads(out)
    assert sorted(report["products_created"]) == skus
    assert report["images_added"] == 9
    assert report["unpriced"] == ["DEMO-003"]

    rows = gallery_list_json(capsys, db)
    assert sorted(rows) == skus
    assert rows["DEMO-001"]["price"] == 350 and rows["DEMO-001"]["barcode"] == "6900120240017"
    assert rows["DEMO-002"]["price"] == 200 and rows["DEMO-002"]["barcode"] is None
    assert rows["DEMO-003"]["price"] is None  # a label without a CSV row: unpriced
    assert rows["DEMO-003"]["name"] == "DEMO-003"
    assert all(r["images"] == 3 and r["active"] is True for r in rows.values())
    assert (data_dir / "gallery").is_dir()  # images copied beside the catalogue
    assert (data_dir / "catalog.faiss").is_file()

    rc, out, err = run(capsys, "gallery", "list", "--db", db)
    assert rc == 0 and "unpriced" in out and "¥3.50" in out

    before = table_counts(db)
    copied = sorted(p for p in (data_dir / "gallery").rglob("*") if p.is_file())

    # a missing image file: nothing imported
    missing = tmp_path / "missing.txt"
    missing.write_text(f"{view_path('DEMO-004', 0)}\tDEMO-004\n"
                       f"{tmp_path / 'no_such.jpg'}\tDEMO-004\n", encoding="utf-8")
    rc, out, err = run(capsys, "gallery", "import", "--db", db, missing)
    assert rc == 2
    assert "no_such.jpg" in err and "not found" in err and "Traceback" not in err

    # a bad price in the products CSV
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("sku,name,price\nDEMO-004,乐事原味薯片,seven\n", encoding="utf-8")
    lst4 = write_list(tmp_path / "list4.txt", ["DEMO-004"], range(2))
    rc, out, err = run(capsys, "gallery", "import", "--db", db, lst4, "--products", bad_csv)
    assert rc == 2
    assert "bad.csv:2" in err and "seven" in err

    # a list that does not exist at all
    rc, out, err = run(capsys, "gallery", "import", "--db", db, tmp_path / "nowhere.txt")
    assert rc == 2 and "nowhere.txt" in err

    assert table_counts(db) == before
    assert sorted(p for p in (data_dir / "gallery").rglob("*") if p.is_file()) == copied
    assert sorted(gallery_list_json(capsys, db)) == skus


def test_gallery_add_and_remove(capsys, data_dir, copy_demo_db, tmp_path):
    db = copy_demo_db(data_dir / "store")
    images = [view_path("DEMO-011", 0), view_path("DEMO-011", 1)]
    n_products = len(gallery_list_json(capsys, db))

    # a new product needs a name; nothing is created without one
    rc, out, err = run(capsys, "gallery", "add", "--db", db, "--sku", "NEW", *images)
    assert rc == 2 and "--name" in err
    assert "NEW" not in gallery_list_json(capsys, db)
    # an unreadable image: nothing is created either
    rc, out, err = run(capsys, "gallery", "add", "--db", db, "--sku", "NEW", "--name", "新品",
                       images[0], tmp_path / "missing.jpg")
    assert rc == 2 and "missing.jpg" in err
    assert "NEW" not in gallery_list_json(capsys, db)

    rc, out, err = run(capsys, "gallery", "add", "--db", db, "--sku", "NEW", "--name", "新品",
                       "--price", "3.50", *images)
    assert rc == 0, err
    assert "NEW: 2 gallery image(s) added" in out
    rows = gallery_list_json(capsys, db)
    assert len(rows) == n_products + 1
    assert rows["NEW"] == {**rows["NEW"], "name": "新品", "price": 350, "images": 2,
                           "active": True}

    # more images for an existing product need no name
    rc, out, err = run(capsys, "gallery", "add", "--db", db, "--sku", "NEW",
                       view_path("DEMO-011", 2))
    assert rc == 0, err
    assert gallery_list_json(capsys, db)["NEW"]["images"] == 3

    rc, out, err = run(capsys, "gallery", "remove", "--db", db, "NEW")
    assert rc == 0, err
    assert "NEW: removed with 3 gallery image(s)" in out
    rows = gallery_list_json(capsys, db)
    assert "NEW" not in rows and len(rows) == n_products

    rc, out, err = run(capsys, "gallery", "remove", "--db", db, "NEW")
    assert rc == 2 and "NEW" in err and "Traceback" not in err

    # the catalogue still recognises its products after the edits
    rc, out, err = run(capsys, "recognize", "--db", db, "--json", RESOURCES / "tray_03.png")
    assert rc == 0, err
    check_tray_json(json_lines(out)[0], "tray_03.png")


# ----------------------------------------------------------------------------------- eval
@pytest.mark.parametrize("gallery_skus, n_unknown", [
    ([p.sku for p in demo.PRODUCTS], 0),  # every query label is in the gallery
    ([p.sku for p in demo.PRODUCTS][:10], 3 * 2),  # three products only among the queries
])
def test_eval_json(capsys, data_dir, tmp_path, gallery_skus, n_unknown):
    all_skus = [p.sku for p in demo.PRODUCTS]
    g = write_list(tmp_path / "gallery.txt", gallery_skus, range(3))
    q = write_list(tmp_path / "query.txt", all_skus, (3, 4))
    rc, out, err = run(capsys, "eval", "--gallery", g, "--query", q, "--json")
    assert rc == 0, err
    (report,) = json_lines(out)
    assert EVAL_KEYS <= set(report)
    assert report["n_queries"] == 2 * len(all_skus)
    assert report["n_gallery"] == 3 * len(gallery_skus)
    assert report["n_unknown_queries"] == n_unknown
    for key in ("recall_at_1", "recall_at_5", "mAP", "accuracy", "false_reject_rate"):
        assert 0.0 <= report[key] <= 1.0, key
    assert report["recall_at_5"] >= report["recall_at_1"] >= 0.8  # easy demo views
    assert report["adapted"] is True  # the store's similarity, as the kiosk (the default)
    if n_unknown:
        assert isinstance(report["unknown_reject_rate"], float)
        assert 0.0 <= report["unknown_reject_rate"] <= 1.0
        for rule in ("by_score", "by_margin"):
            got = report["open_set"][rule]
            assert set(got) == {"known_sent_away", "unknown_caught"}
            assert all(0.0 <= v <= 1.0 for v in got.values())
    else:
        assert report["unknown_reject_rate"] is None
        assert report["open_set"] is None

    rc, out, err = run(capsys, "eval", "--gallery", g, "--query", q)  # the text form
    assert rc == 0 and "recall_at_1" in out and "unknown_reject_rate" in out


def test_eval_lists_together_and_unadapted(capsys, data_dir, tmp_path):
    """Several --query lists are taken together; --no-adapt scores by the model alone."""
    skus = [p.sku for p in demo.PRODUCTS]
    g = write_list(tmp_path / "gallery.txt", skus[:10], range(3))
    q1 = write_list(tmp_path / "q1.txt", skus[:10], (3,))
    q2 = write_list(tmp_path / "q2.txt", skus[10:], (3, 4))
    rc, out, err = run(capsys, "eval", "--gallery", g, "--query", q1, "--query", q2,
                       "--no-adapt", "--json")
    assert rc == 0, err
    (report,) = json_lines(out)
    assert report["n_queries"] == 10 + 2 * (len(skus) - 10)
    assert report["n_unknown_queries"] == 2 * (len(skus) - 10)
    assert report["adapted"] is False and report["open_set"]["by_score"]


def test_eval_bad_list(capsys, data_dir, tmp_path):
    g = tmp_path / "gallery.txt"
    g.write_text("only-a-path.jpg\n", encoding="utf-8")
    rc, out, err = run(capsys, "eval", "--gallery", g, "--query", g, "--json")
    assert rc == 2 and "gallery.txt:1" in err and out == ""


# ------------------------------------------------------------------- failing well
def kiosk_proc(data: Path, *argv, stdin: str | None = None, timeout: int = 300):
    """A real ``python -m kiosk`` run with ``data`` as the data folder."""
    env = {**os.environ, "KIOSK_DATA_DIR": str(data)}
    env.pop("KIOSK_DB", None)
    return subprocess.run([sys.executable, "-m", "kiosk", *map(str, argv)], cwd=data.parent,
                          env=env, input=stdin, capture_output=True, text=True,
                          timeout=timeout, check=False)


# commands that read or change a catalogue but never create one (gallery import and
# restore may create the store catalogue)
NO_CREATE = [
    ("gallery", "list"),
    ("gallery", "remove", "DEMO-001"),
    ("gallery", "add", "--sku", "NEW", "--name", "新品", str(view_path("DEMO-011", 0))),
    ("read-text",),
    ("backup", "{tmp}/backup"),
    ("staff-pin", "--stdin"),
    ("recognize", str(RESOURCES / "tray_01.png")),
]


@pytest.mark.parametrize("command", NO_CREATE, ids=lambda c: " ".join(c[:2]))
def test_missing_db_is_a_one_line_error(tmp_path, command):
    missing = tmp_path / "nowhere" / "catalog.db"
    argv = [a.replace("{tmp}", str(tmp_path)) for a in command]
    proc = kiosk_proc(tmp_path / "data", *argv, "--db", missing, stdin="2468\n")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and str(missing) in proc.stderr, proc.stderr
    assert proc.stderr.startswith("kiosk: error: ") and "Traceback" not in proc.stderr
    assert proc.stdout == ""
    assert not missing.exists() and not missing.parent.exists()  # nothing created
    assert not (tmp_path / "backup").exists()


def test_recognize_json_reports_an_unreadable_image_and_goes_on(capsys, data_dir, copy_demo_db,
                                                                tmp_path):
    db = copy_demo_db(data_dir / "store")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really a picture")
    images = [RESOURCES / "tray_01.png", bad, tmp_path / "missing.png", RESOURCES / "tray_03.png"]
    rc, out, err = run(capsys, "recognize", "--db", db, "--json", *images)
    assert rc == 2
    objs = json_lines(out)
    assert len(objs) == 4
    check_tray_json(objs[0], "tray_01.png")
    check_tray_json(objs[3], "tray_03.png")
    for obj, path in zip(objs[1:3], images[1:3]):
        assert set(obj) == {"image", "error"} and obj["image"] == str(path)
        assert path.name in obj["error"]
    assert "Traceback" not in err


def test_closed_pipe_ends_quietly(tmp_path, copy_demo_db):
    db = copy_demo_db(tmp_path / "store")
    env = {**os.environ, "KIOSK_DATA_DIR": str(tmp_path / "data")}
    env.pop("KIOSK_DB", None)
    # the reader is gone before the first line is written
    proc = subprocess.Popen([sys.executable, "-m", "kiosk", "gallery", "list", "--db", str(db)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=tmp_path)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=120) == 1
    assert err == "", err
    # and as a shell pipeline
    shell = subprocess.run(
        ["bash", "-c", f'"{sys.executable}" -m kiosk gallery list --db "{db}" | head -1'],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert shell.returncode == 0 and len(shell.stdout.splitlines()) == 1
    assert shell.stderr == "", shell.stderr


def has_staff_pin(db: Path) -> bool:
    from kiosk.checkout.staff_auth import StaffAuth

    with Catalog(db) as catalog:
        return StaffAuth(catalog).has_pin()


def test_staff_pin_honours_the_settings_file(tmp_path, copy_demo_db):
    data = tmp_path / "data"
    data.mkdir()
    first = copy_demo_db(tmp_path / "first")
    second = copy_demo_db(tmp_path / "second")
    # the settings file in the data folder
    (data / "settings.toml").write_text(f'[paths]\ndb = "{first}"\n', encoding="utf-8")
    proc = kiosk_proc(data, "staff-pin", stdin="2468\n")
    assert proc.returncode == 0, proc.stderr
    assert str(first) in proc.stdout and has_staff_pin(first) and not has_staff_pin(second)
    # a settings file named with --settings
    other = tmp_path / "other.toml"
    other.write_text(f'[paths]\ndb = "{second}"\n', encoding="utf-8")
    proc = kiosk_proc(data, "--settings", other, "staff-pin", stdin="1357\n")
    assert proc.returncode == 0, proc.stderr
    assert has_staff_pin(second)
    # --db still wins over the settings
    third = copy_demo_db(tmp_path / "third")
    proc = kiosk_proc(data, "--settings", other, "staff-pin", "--db", third, stdin="1357\n")
    assert proc.returncode == 0 and has_staff_pin(third)
    # a settings file naming a catalogue that is not there
    other.write_text(f'[paths]\ndb = "{tmp_path / "gone.db"}"\n', encoding="utf-8")
    proc = kiosk_proc(data, "--settings", other, "staff-pin", stdin="1357\n")
    assert proc.returncode == 2 and "gone.db" in proc.stderr and "[paths] db" in proc.stderr
    assert not (tmp_path / "gone.db").exists()
    # a settings file that is not there, or not valid
    proc = kiosk_proc(data, "--settings", tmp_path / "nope.toml", "gallery", "list")
    assert proc.returncode == 2 and "nope.toml" in proc.stderr
    other.write_text("[paths]\ndb = 3\n", encoding="utf-8")
    proc = kiosk_proc(data, "--settings", other, "gallery", "list")
    assert proc.returncode == 2 and "[paths] db" in proc.stderr and "Traceback" not in proc.stderr


def test_commands_honour_the_settings_data_dir(tmp_path, copy_demo_db):
    data, elsewhere = tmp_path / "data", tmp_path / "elsewhere"
    data.mkdir()
    db = copy_demo_db(elsewhere)  # elsewhere/catalog.db: the store catalogue there
    (data / "settings.toml").write_text(f'[paths]\ndata_dir = "{elsewhere}"\n',
                                        encoding="utf-8")
    proc = kiosk_proc(data, "gallery", "list", "--json")
    assert proc.returncode == 0, proc.stderr
    assert {row["sku"] for row in json.loads(proc.stdout)} == {p.sku for p in demo.PRODUCTS}
    proc = kiosk_proc(data, "backup", tmp_path / "bk")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "bk" / "catalog.db").is_file()
    proc = kiosk_proc(data, "staff-pin", stdin="2468\n")
    assert proc.returncode == 0 and has_staff_pin(db)
    assert not (data / "catalog.db").exists() and not (data / "demo").exists()
    assert (elsewhere / "logs").is_dir() and not (data / "logs").exists()  # the log too
