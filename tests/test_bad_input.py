"""Bad input through the real command line: a clear one-line message, a non-zero exit status,
no traceback, and nothing changed (database rows, vector index, copied gallery files).

Images (corrupt, truncated, empty, huge, ...) go through ``kiosk gallery import``, ``kiosk
gallery add`` and ``kiosk recognize``; grey, 16-bit, RGBA and CMYK images are accepted and
converted to 8-bit BGR.  Gallery lists, products CSVs, ``gallery add`` options and settings
files are each tried with a table of faults.  (The parsers' own line-level messages are pinned
in test_import.py and test_settings.py; here it is what a user of the command line sees.)
"""
from __future__ import annotations

import hashlib
import shutil
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from kiosk.demo import scenes as demo
from kiosk.catalog import Catalog
from kiosk.__main__ import main  # the `kiosk` command (the window too)
from kiosk.engine import Engine, index_path_for
from kiosk.catalog.gallery_io import import_gallery, parse_gallery_list
from kiosk.images import MAX_IMAGE_PIXELS, load_image
from kiosk.retrieve import VectorIndex

GALLERY = demo.DEMO_GALLERY_DIR
TRAY = Path(__file__).resolve().parents[1] / "resources" / "demo" / "tray_01.png"


# ------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def base_db(tmp_path_factory, embedder) -> Path:
    """A small catalogue: two demo products with three views each, priced, with its index."""
    folder = tmp_path_factory.mktemp("bad_input_base")
    lst = folder / "list.txt"
    lst.write_text("".join(f"{GALLERY / s / f'{s}_v{v}.jpg'}\t{s}\n"
                           for s in ("DEMO-001", "DEMO-002") for v in range(3)), encoding="utf-8")
    db = folder / "store" / "catalog.db"
    with Catalog(db) as cat:
        import_gallery(cat, parse_gallery_list(lst), None, embedder, copy_to=db.parent / "gallery")
        cat.set_price("DEMO-001", 350)
        cat.set_price("DEMO-002", 200)
    Engine.open(db, embedder=embedder).close()
    return db


@pytest.fixture
def db(base_db, tmp_path, monkeypatch, embedder) -> Path:
    """A private copy of the base catalogue; the command line gets the session's model."""
    shutil.copytree(base_db.parent, tmp_path / "store")
    monkeypatch.setattr("kiosk.embed.load_embedder", lambda spec=None: embedder)
    monkeypatch.setattr("kiosk.engine.load_embedder", lambda spec=None: embedder)
    monkeypatch.setenv("KIOSK_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("KIOSK_DB", raising=False)
    return tmp_path / "store" / base_db.name


def fingerprint(db: Path) -> dict:
    """Everything a refused command must leave alone."""
    with Catalog(db) as cat:
        dump = list(cat.conn.iterdump())
        counts = cat.table_counts()
    index = index_path_for(db)
    return {
        "dump": dump,
        "counts": counts,
        "index": hashlib.sha256(index.read_bytes()).hexdigest(),
        "index_ids": sorted(VectorIndex.load(index).ids().tolist()),
        "files": sorted(str(p.relative_to(db.parent)) for p in db.parent.rglob("*")
                        if p.is_file() and "catalog.db" not in p.name),
    }


def run(capsys, *argv) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def assert_refused(rc: int, err: str, *fragments: str) -> None:
    """Exit status 2 and exactly one line: ``kiosk: error: ...`` naming the problem."""
    assert rc == 2, err
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("kiosk: error: "), err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


# --------------------------------------------------------------------------------- images
def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _noise(h: int = 48, w: int = 64) -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, (h, w, 3)).astype(np.uint8)


def make_image(folder: Path, kind: str) -> Path:
    """An image file of the given kind (see IMAGES)."""
    folder.mkdir(parents=True, exist_ok=True)
    good_jpg = cv2.imencode(".jpg", _noise())[1].tobytes()
    good_png = cv2.imencode(".png", _noise())[1].tobytes()
    ext = ".png" if "png" in kind else ".bmp" if "bmp" in kind else ".jpg"
    path = folder / f"{kind}{ext}"
    if kind == "missing":
        return path
    if kind == "zero-byte":
        data = b""
    elif kind == "text":
        data = "这不是图片 / not a picture\n".encode()
    elif kind == "corrupt-png":  # the compressed pixel data overwritten
        data = bytearray(good_png)
        i = data.find(b"IDAT")
        data[i + 20:i + 60] = b"\0" * 40
    elif kind == "corrupt-jpeg":  # the header tables overwritten, markers intact at both ends
        data = bytearray(good_jpg)
        data[2:200] = bytes(range(198))
    elif kind == "truncated-jpeg":
        data = good_jpg[: len(good_jpg) // 2]
    elif kind == "truncated-png":
        data = good_png[: len(good_png) // 2]
    elif kind == "huge-png":  # a header claiming 20000x20000 (a decoded copy: 1.2 GB)
        data = (b"\x89PNG\r\n\x1a\n"
                + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0))
                + _png_chunk(b"IDAT", zlib.compress(b"\0" * 60001 * 4))
                + _png_chunk(b"IEND", b""))
    elif kind == "huge-jpeg":
        data = bytearray(good_jpg)
        sof = data.find(b"\xff\xc0")
        struct.pack_into(">HH", data, sof + 5, 20000, 20000)
    elif kind == "huge-bmp":
        data = bytearray(cv2.imencode(".bmp", _noise(4, 4))[1].tobytes())
        struct.pack_into("<ii", data, 18, 20000, -20000)
    elif kind == "grey-jpeg":
        data = cv2.imencode(".jpg", cv2.cvtColor(_noise(), cv2.COLOR_BGR2GRAY))[1].tobytes()
    elif kind == "16bit-png":
        data = cv2.imencode(".png", _noise().astype(np.uint16) * 257)[1].tobytes()
    elif kind == "16bit-grey-png":
        grey = cv2.cvtColor(_noise(), cv2.COLOR_BGR2GRAY).astype(np.uint16) * 257
        data = cv2.imencode(".png", grey)[1].tobytes()
    elif kind == "rgba-png":
        data = cv2.imencode(".png", np.dstack([_noise(), np.full((48, 64), 200, np.uint8)]))[1].tobytes()
    elif kind == "cmyk-jpeg":
        Image.fromarray(_noise()[..., ::-1]).convert("CMYK").save(path, "JPEG")
        return path
    else:
        raise AssertionError(kind)
    path.write_bytes(bytes(data))
    return path


BAD_IMAGES = [
    ("missing", "file not found"),
    ("zero-byte", "empty file (0 bytes)"),
    ("text", "not a readable image"),
    ("corrupt-png", "not a readable image"),
    ("corrupt-jpeg", "not a readable image"),
    ("truncated-jpeg", "truncated JPEG"),
    ("truncated-png", "truncated PNG"),
    ("huge-png", "20000x20000 pixels"),
    ("huge-jpeg", "20000x20000 pixels"),
    ("huge-bmp", "20000x20000 pixels"),
]
ODD_GOOD_IMAGES = ["grey-jpeg", "16bit-png", "16bit-grey-png", "rgba-png", "cmyk-jpeg"]


@pytest.mark.parametrize("kind, message", BAD_IMAGES)
def test_bad_image_refused_everywhere(capsys, db, tmp_path, kind, message):
    image = make_image(tmp_path / "in", kind)
    good = GALLERY / "DEMO-009" / "DEMO-009_v0.jpg"
    before = fingerprint(db)

    lst = tmp_path / "list.txt"
    lst.write_text(f"{good}\tDEMO-009\n{image}\tDEMO-009\n", encoding="utf-8")
    rc, _, err = run(capsys, "gallery", "import", "--db", db, lst)
    assert_refused(rc, err, f"{lst}:2", message)

    rc, _, err = run(capsys, "gallery", "add", "--db", db, "--sku", "NEW", "--name", "新品",
                     good, image)
    assert_refused(rc, err, str(image), message)

    rc, _, err = run(capsys, "recognize", "--db", db, TRAY, image)
    assert_refused(rc, err, str(image), message)

    assert fingerprint(db) == before


def test_huge_image_is_refused_before_decoding(tmp_path, monkeypatch):
    image = make_image(tmp_path, "huge-png")
    monkeypatch.setattr(cv2, "imdecode", lambda *a: pytest.fail("decoded a 400-megapixel image"))
    with pytest.raises(ValueError, match="more than the 64 megapixels"):
        load_image(image)
    assert 20000 * 20000 > MAX_IMAGE_PIXELS >= 8000 * 6000  # a 48 MP phone photo still loads


@pytest.mark.parametrize("kind", ODD_GOOD_IMAGES)
def test_grey_16bit_rgba_cmyk_images_are_accepted_as_8bit_bgr(capsys, db, tmp_path, kind):
    image = make_image(tmp_path / "in", kind)
    pixels = load_image(image)
    assert pixels.dtype == np.uint8 and pixels.shape == (48, 64, 3)
    if kind == "cmyk-jpeg":  # colours survive the CMYK round trip (not inverted)
        expected = _noise().astype(np.int16)
        assert np.abs(pixels.astype(np.int16) - expected).mean() < 40

    rc, out, err = run(capsys, "recognize", "--db", db, image)
    assert rc == 0, err

    lst = tmp_path / "list.txt"
    lst.write_text(f"{image}\tODD-{kind}\n", encoding="utf-8")
    rc, out, err = run(capsys, "gallery", "import", "--db", db, lst)
    assert rc == 0, err
    rc, out, err = run(capsys, "gallery", "add", "--db", db, "--sku", "DEMO-001", image)
    assert rc == 0, err
    with Catalog(db) as cat:
        assert cat.gallery_counts()[f"ODD-{kind}"] == 1
        assert cat.gallery_counts()["DEMO-001"] == 4


# ---------------------------------------------------------------------------------- lists
GOOD_LINE = f"{GALLERY / 'DEMO-009' / 'DEMO-009_v0.jpg'}\tDEMO-009\n"
GOOD_PATH = GALLERY / "DEMO-009" / "DEMO-009_v0.jpg"

BAD_LISTS = [
    ("comma", f"{GOOD_PATH},DEMO-009\n".encode(), "list.txt:1: bad separator"),
    ("semicolon", f"{GOOD_PATH};DEMO-009\n".encode(), "list.txt:1: bad separator"),
    ("too many columns", f"{GOOD_PATH} DEMO 009 x\n".encode(), "list.txt:1: bad separator"),
    ("no label", f"{GOOD_PATH}\n".encode(), "list.txt:1: missing label"),
    ("missing file", (GOOD_LINE + "nope.jpg\tDEMO-009\n").encode(),
     "list.txt:2: file not found: nope.jpg"),
    ("duplicate line", (GOOD_LINE * 2).encode(), "list.txt:2: duplicate path"),
    ("gbk", GOOD_LINE.encode() + f"{GOOD_PATH}\t苹果\n".encode("gbk"), "list.txt:2: not UTF-8"),
    ("utf-16", GOOD_LINE.encode("utf-16"), "list.txt:1: not UTF-8"),
    ("empty", b"", "nothing to import"),
    ("comments only", b"# nothing here\n\n   \n", "nothing to import"),
    ("unknown user", b"~no-such-user-zz/a.jpg\tX\n", "list.txt:1: cannot expand"),
    ("name too long", ("a" * 5000 + ".jpg\tX\n").encode(), "list.txt:1: cannot use path"),
    ("control character label", f"{GOOD_PATH}\tA\x01B\n".encode(), "list.txt:1: bad label"),
]


@pytest.mark.parametrize("content, message", [b[1:] for b in BAD_LISTS],
                         ids=[b[0] for b in BAD_LISTS])
def test_bad_gallery_list(capsys, db, tmp_path, content, message):
    before = fingerprint(db)
    lst = tmp_path / "list.txt"
    lst.write_bytes(content)
    rc, _, err = run(capsys, "gallery", "import", "--db", db, lst)
    assert_refused(rc, err, message)
    assert fingerprint(db) == before


def test_empty_folder_and_missing_list(capsys, db, tmp_path):
    before = fingerprint(db)
    (tmp_path / "empty").mkdir()
    rc, _, err = run(capsys, "gallery", "import", "--db", db, tmp_path / "empty")
    assert_refused(rc, err, "nothing to import: no images found")
    rc, _, err = run(capsys, "gallery", "import", "--db", db, tmp_path / "nowhere.txt")
    assert_refused(rc, err, "nowhere.txt")
    assert fingerprint(db) == before


# ----------------------------------------------------------------------------- products CSV
BAD_CSVS = [
    ("negative", "sku,name,price\nDEMO-009,X,-1\n", "p.csv:2: price '-1' is negative"),
    ("not a number", "sku,name,price\nDEMO-009,X,three\n", "p.csv:2: price 'three' is not a number"),
    ("exponent", "sku,name,price\nDEMO-009,X,1e3\n", "is not a number"),
    ("absurd", "sku,name,price\nDEMO-009,X,99999999\n", "is absurd"),
    ("absurd fen", "sku,name,price\nDEMO-009,X,10000000000\n", "is absurd"),
    ("three decimals", "sku,name,price\nDEMO-009,X,1.234\n", "has more than 2 decimals"),
    ("missing column", "sku,name\nDEMO-009,X\n", "p.csv:1: header lacks column(s) price"),
    ("repeated column", "sku,name,price,name\nDEMO-009,X,1,Y\n", "header repeats column(s) name"),
    ("duplicate sku", "sku,name,price\nDEMO-009,X,1\nDEMO-009,Y,2\n",
     "p.csv:3: duplicate sku 'DEMO-009' (already on line 2)"),
    ("bad barcode", "sku,name,price,barcode\nDEMO-009,X,1,123\n", "barcode '123' has 3 digits"),
    ("control character", "sku,name,price\nDEMO-009,X\x07Y,1\n", "contains control characters"),
    ("empty", "", "p.csv: empty file"),
    ("gbk", "sku,name,price\nDEMO-009,苹果,1\n".encode("gbk"), "p.csv:2: not UTF-8"),
    ("barcode of another product",
     "sku,name,price,barcode\nDEMO-009,X,1,4006381333931\n", None),  # see below
]


@pytest.mark.parametrize("content, message", [b[1:] for b in BAD_CSVS],
                         ids=[b[0] for b in BAD_CSVS])
def test_bad_products_csv(capsys, db, tmp_path, content, message):
    if message is None:  # DEMO-001 owns the barcode: the import may not take it away
        with Catalog(db) as cat:
            cat.upsert_product("DEMO-001", barcode="4006381333931")
        message = "already belongs to 'DEMO-001'"
    before = fingerprint(db)
    lst = tmp_path / "list.txt"
    lst.write_text(GOOD_LINE, encoding="utf-8")
    csv = tmp_path / "p.csv"
    csv.write_bytes(content.encode() if isinstance(content, str) else content)
    rc, _, err = run(capsys, "gallery", "import", "--db", db, lst, "--products", csv)
    assert_refused(rc, err, message)
    assert fingerprint(db) == before


def test_missing_products_csv(capsys, db, tmp_path):
    before = fingerprint(db)
    lst = tmp_path / "list.txt"
    lst.write_text(GOOD_LINE, encoding="utf-8")
    rc, _, err = run(capsys, "gallery", "import", "--db", db, lst, "--products",
                     tmp_path / "nope.csv")
    assert_refused(rc, err, "nope.csv", "cannot read")
    assert fingerprint(db) == before


# --------------------------------------------------------------------------- gallery add
@pytest.mark.parametrize("options, message", [
    (["--price", "-1"], "is negative"),
    (["--price", "abc"], "is not a number"),
    (["--price", "1.234"], "more than 2 decimals"),
    (["--price", "99999999"], "is absurd"),
    (["--barcode", "123"], "barcode '123' has 3 digits"),
    (["--barcode", "4006381333932"], "wrong check digit"),
    ([], "--name is required"),
])
def test_bad_gallery_add_options(capsys, db, options, message):
    before = fingerprint(db)
    name = ["--name", "新品"] if options else []
    rc, _, err = run(capsys, "gallery", "add", "--db", db, "--sku", "NEW", *name, *options,
                     GOOD_PATH)
    assert_refused(rc, err, message)
    assert fingerprint(db) == before


# ------------------------------------------------------------------------------- settings
BAD_SETTINGS = [
    ("wrong type", '[camera]\nwidth = "wide"\n', "[camera] width must be a whole number"),
    ("bool for int", "[camera]\nfps = true\n", "[camera] fps must be a whole number"),
    ("out of range", "[ui]\nfont_scale = 9.0\n", "[ui] font_scale must be between 0.5 and 3"),
    ("too few attempts", "[staff]\nmax_pin_attempts = 0\n", "[staff] max_pin_attempts must be"),
    ("unknown key", '[ui]\ncolour = "red"\n', "[ui] unknown key 'colour'"),
    ("unknown section", "[scanner]\nport = 1\n", "unknown section [scanner]"),
    ("not a section", "camera = 3\n", "camera must be a [camera] section"),
    ("bad choice", '[ui]\nlanguage = "fr"\n', "[ui] language must be one of"),
    ("not TOML", "[ui\nfont_scale = 1\n", "not valid TOML"),
    ("huge number", "[ui]\nfont_scale = " + "9" * 400 + "\n", "[ui] font_scale must be between"),
    ("gbk", '[store]\nname = "袋鼯麻麻"\n'.encode("gbk"), "not UTF-8"),
]


@pytest.mark.parametrize("content, message", [b[1:] for b in BAD_SETTINGS],
                         ids=[b[0] for b in BAD_SETTINGS])
def test_bad_settings_file(capsys, tmp_path, monkeypatch, content, message):
    import kiosk.ui.app as app

    monkeypatch.setenv("KIOSK_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(app, "setup_application",
                        lambda *a, **k: pytest.fail("the kiosk started with bad settings"))
    path = tmp_path / "settings.toml"
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    before = path.read_bytes()
    rc, _, err = run(capsys, "gui", "--settings", path)
    assert_refused(rc, err, str(path), message)
    assert path.read_bytes() == before
    assert not list((tmp_path / "data").rglob("*.db"))
