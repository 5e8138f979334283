"""Gallery imports: list/CSV/folder parsing, image loading, and the all-or-nothing import."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import pytest

from kiosk.catalog import Catalog, Product
from kiosk.embed import Embedder, Embeddings, l2_normalize
from kiosk.catalog.gallery_io import (
    GalleryEntry,
    GalleryImportError,
    ProductRow,
    check_barcode,
    import_gallery,
    parse_gallery_list,
    parse_products_csv,
    scan_folder,
)
from kiosk.images import ImageError, load_image


class HistogramEmbedder:
    """Test double for the embed stage: a normalised 4x4x4 BGR colour histogram (64-d)."""

    model_id = "colour-hist@test"
    dim = 64

    def __init__(self) -> None:
        self.calls = 0

    def embed(self, crops: Sequence[np.ndarray]) -> Embeddings:
        self.calls += 1
        rows = [cv2.calcHist([c], [0, 1, 2], None, [4, 4, 4], [0, 256] * 3).ravel() for c in crops]
        return Embeddings(l2_normalize(np.array(rows, np.float32).reshape(len(rows), self.dim)), self.model_id)


def test_fake_embedder_meets_the_protocol():
    assert isinstance(HistogramEmbedder(), Embedder)


COLOURS = {"apple": (0, 0, 255), "milk": (255, 255, 255), "kiwi": (0, 160, 60)}


def write_image(path: Path, colour=(0, 0, 255), seed: int = 0, ext: str | None = None) -> Path:
    """A small noisy image of one colour, written with tofile (non-ASCII paths work)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    img = np.clip(np.array(colour, np.int16) + rng.integers(-40, 40, (48, 64, 3)), 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(ext or path.suffix, img)
    assert ok
    buf.tofile(str(path))
    return path


@pytest.fixture
def gallery(tmp_path) -> Path:
    """tmp/gal/<sku>/<n>.jpg with 2-3 images per sku, and gallery_list.txt next to them."""
    root = tmp_path / "gal"
    lines = []
    for sku, colour in COLOURS.items():
        for i in range(3 if sku != "kiwi" else 2):
            write_image(root / sku / f"{i}.jpg", colour, seed=i)
            lines.append(f"{sku}/{i}.jpg\t{sku}")
    (root / "gallery_list.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


@pytest.fixture
def cat(tmp_path):
    c = Catalog(tmp_path / "catalog.db")
    yield c
    c.close()


def snapshot(c: Catalog) -> list[str]:
    return list(c.conn.iterdump())


def files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*")) if path.exists() else []


# -- gallery lists ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("a/1.jpg\tA\n", [("a/1.jpg", "A", 1)]),
        ("a/1.jpg A\n", [("a/1.jpg", "A", 1)]),
        ("a/1.jpg A 0\na/2.jpg B 17\n", [("a/1.jpg", "A", 1), ("a/2.jpg", "B", 2)]),  # path label id
        ("a/1.jpg\tA\t3\n", [("a/1.jpg", "A", 1)]),
        ("# comment\n\n   \na/1.jpg\tA\n  # indented comment\n", [("a/1.jpg", "A", 4)]),
        ("a/1.jpg\tA\r\na/2.jpg\tA\r\n", [("a/1.jpg", "A", 1), ("a/2.jpg", "A", 2)]),  # CRLF
        ("a/1.jpg\tCoca Cola 330ml\n", [("a/1.jpg", "Coca Cola 330ml", 1)]),  # tab allows spaces
        ("a/my photo.jpg\tA\n", [("a/my photo.jpg", "A", 1)]),
        ("a/1.jpg \t A \n", [("a/1.jpg", "A", 1)]),
        ("a/1.jpg\tA", [("a/1.jpg", "A", 1)]),  # no final newline
        ("\ufeffa/1.jpg\tA\n", [("a/1.jpg", "A", 1)]),  # BOM
        ("./a/../a/1.jpg\tA\n", [("a/1.jpg", "A", 1)]),
        ("商品/苹果.jpg\t苹果\n", [("商品/苹果.jpg", "苹果", 1)]),
        ("", []),
    ],
)
def test_parse_gallery_list(tmp_path, text, expected):
    for name in ("a/1.jpg", "a/2.jpg", "a/my photo.jpg", "商品/苹果.jpg"):
        write_image(tmp_path / name)
    lst = tmp_path / "list.txt"
    lst.write_text(text, encoding="utf-8")
    entries = parse_gallery_list(lst)
    assert [(e.path, e.label, e.line_no) for e in entries] == [
        ((tmp_path / rel).resolve(), label, n) for rel, label, n in expected
    ]
    assert all(e.source == lst for e in entries)


def test_parse_gallery_list_absolute_paths_and_other_folder(tmp_path):
    image = write_image(tmp_path / "images" / "x.png")
    lst = tmp_path / "lists" / "list.txt"
    lst.parent.mkdir()
    lst.write_text(f"{image}\tX\n../images/x.png\tY\n", encoding="utf-8")
    with pytest.raises(GalleryImportError, match="duplicate path ../images/x.png \\(already on line 1\\)"):
        parse_gallery_list(lst)
    lst.write_text(f"{image}\tX\n", encoding="utf-8")
    assert parse_gallery_list(lst)[0].path == image


@pytest.mark.parametrize(
    "content, message",
    [
        (b"a/missing.jpg\tA\n", "list.txt:1: file not found: a/missing.jpg"),
        (b"a/1.jpg,A\n", "list.txt:1: bad separator"),
        (b"a/1.jpg;A\n", "list.txt:1: bad separator"),
        (b"a/1.jpg\n", "list.txt:1: missing label"),
        (b"a/1.jpg\t\n", "list.txt:1: missing label"),
        (b"\tA\n", "list.txt:1: missing path"),
        (b"a/my photo.jpg A\n", "list.txt:1: bad separator: 3 space-separated columns"),
        (b"a/1.jpg A B C\n", "list.txt:1: bad separator: 4 space-separated columns"),
        (b"a/1.jpg\tA\tx\n", "list.txt:1: third column must be a numeric class id"),
        (b"a/1.jpg\tA\na/2.jpg\tB\na/1.jpg\tA\n", "list.txt:3: duplicate path a/1.jpg (already on line 1)"),
        (b"a/1.jpg\tA\na/2.jpg\t" + "苹果".encode("gbk") + b"\n", "list.txt:2: not UTF-8"),
    ],
)
def test_parse_gallery_list_errors(tmp_path, content, message):
    write_image(tmp_path / "a" / "1.jpg")
    write_image(tmp_path / "a" / "2.jpg")
    lst = tmp_path / "list.txt"
    lst.write_bytes(content)
    with pytest.raises(GalleryImportError) as info:
        parse_gallery_list(lst)
    assert isinstance(info.value, ValueError)
    assert len(info.value.errors) == 1
    assert message in info.value.errors[0]
    assert message in str(info.value)


def test_parse_gallery_list_collects_all_errors(tmp_path):
    write_image(tmp_path / "a" / "1.jpg")
    lines = ["a/1.jpg\tA", "nope.jpg\tA", "a/1.jpg", "# fine", "a/1.jpg,B"] + [f"m{i}.jpg\tM" for i in range(30)]
    lst = tmp_path / "list.txt"
    lst.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(GalleryImportError) as info:
        parse_gallery_list(lst)
    errors = info.value.errors
    assert len(errors) == 33
    assert [e.split(": ")[0] for e in errors[:3]] == [f"{lst}:2", f"{lst}:3", f"{lst}:5"]
    message = str(info.value)
    assert message.startswith("33 problems in")
    assert "... and 13 more" in message and message.count("\n  ") == 21


def test_parse_gallery_list_missing_list_file(tmp_path):
    with pytest.raises(GalleryImportError, match="cannot read"):
        parse_gallery_list(tmp_path / "nope.txt")


def test_scan_folder(tmp_path):
    write_image(tmp_path / "b" / "2.png")
    write_image(tmp_path / "b" / "1.JPG", ext=".jpg")
    write_image(tmp_path / "a" / "sub" / "x.webp")
    write_image(tmp_path / "苹果" / "x.bmp")
    (tmp_path / "a" / "notes.txt").write_text("ignored")
    (tmp_path / "a" / ".hidden.jpg").write_bytes(b"")
    (tmp_path / ".git").mkdir()
    write_image(tmp_path / "loose.jpg")  # not in a sku folder
    entries = scan_folder(tmp_path)
    assert [(e.path.relative_to(tmp_path).as_posix(), e.label) for e in entries] == [
        ("a/sub/x.webp", "a"),
        ("b/1.JPG", "b"),
        ("b/2.png", "b"),
        ("苹果/x.bmp", "苹果"),
    ]
    with pytest.raises(GalleryImportError, match="not a folder"):
        scan_folder(tmp_path / "nope")


# -- products CSV -------------------------------------------------------------------------------


def write_csv(path: Path, text: str, bom: bool = False) -> Path:
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return path


@pytest.mark.parametrize("bom", [False, True])
def test_parse_products_csv(tmp_path, bom):
    csv_path = write_csv(
        tmp_path / "p.csv",
        "SKU, Name ,price,barcode,currency,notes\n"
        "apple,Golden Delicious 苹果,3.50,4006381333931,CNY,x\n"
        'milk,"Oatly, 1L",19.9,,,\n'
        "\n"
        "kiwi,Kiwi,,96385074\n"
        "upc,UPC thing,¥0.05,036000291452,usd,\n",
        bom,
    )
    rows = parse_products_csv(csv_path)
    assert list(rows) == ["apple", "milk", "kiwi", "upc"]
    assert rows["apple"] == ProductRow("apple", "Golden Delicious 苹果", 350, "4006381333931", "CNY", 2)
    assert rows["milk"] == ProductRow("milk", "Oatly, 1L", 1990, None, "CNY", 3)
    assert rows["kiwi"].price is None and rows["kiwi"].barcode == "96385074" and rows["kiwi"].line_no == 5
    assert rows["upc"].price == 5 and rows["upc"].currency == "USD"


@pytest.mark.parametrize(
    "body, message",
    [
        ("a,A,-1\n", "p.csv:2: price '-1' is negative"),
        ("a,A,abc\n", "p.csv:2: price 'abc' is not a number"),
        ("a,A,3.555\n", "p.csv:2: price '3.555' has more than 2 decimals"),
        ("a,A,2000000\n", "p.csv:2: price '2000000' is absurd"),
        ("a,A,NaN\n", "p.csv:2: price 'NaN' is not a number"),
        ("a,A,1,4006381333932\n", "p.csv:2: barcode '4006381333932' has a wrong check digit"),
        ("a,A,1,12345\n", "p.csv:2: barcode '12345' has 5 digits"),
        ("a,A,1,40063813339x1\n", "p.csv:2: barcode '40063813339x1' must be digits"),
        ("a,A,1\nb,B,2\na,A2,3\n", "p.csv:4: duplicate sku 'a' (already on line 2)"),
        ("a,A,1,96385074\nb,B,2,96385074\n", "p.csv:3: barcode 96385074 already used by 'a' on line 2"),
        (",A,1\n", "p.csv:2: missing sku"),
        ("a,,1\n", "p.csv:2: missing name"),
        ("a,A,1,,yuan\n", "p.csv:2: currency 'yuan'"),
    ],
)
def test_parse_products_csv_errors(tmp_path, body, message):
    csv_path = write_csv(tmp_path / "p.csv", "sku,name,price,barcode,currency\n" + body)
    with pytest.raises(GalleryImportError) as info:
        parse_products_csv(csv_path)
    assert len(info.value.errors) == 1, info.value.errors
    assert message in info.value.errors[0]


@pytest.mark.parametrize(
    "content, message",
    [
        (b"sku,name\na,A\n", "p.csv:1: header lacks column(s) price"),
        (b"sku,name,price,price\n", "header repeats column(s) price"),
        (b"", "empty file"),
        (b"sku,name,price\na," + "苹果".encode("gbk") + b",1\n", "p.csv:2: not UTF-8"),
    ],
)
def test_parse_products_csv_file_errors(tmp_path, content, message):
    (tmp_path / "p.csv").write_bytes(content)
    with pytest.raises(GalleryImportError) as info:
        parse_products_csv(tmp_path / "p.csv")
    assert message in str(info.value)


def test_parse_products_csv_collects_all_errors(tmp_path):
    csv_path = write_csv(tmp_path / "p.csv", "sku,name,price\na,A,-1\nb,B,1\nc,C,x\nb,B,2\n")
    with pytest.raises(GalleryImportError) as info:
        parse_products_csv(csv_path)
    assert [e.split(": ")[0] for e in info.value.errors] == [f"{csv_path}:{n}" for n in (2, 4, 5)]


@pytest.mark.parametrize("code", ["4006381333931", "5901234123457", "96385074", "036000291452"])
def test_check_barcode_valid(code):
    assert check_barcode(code) == code


# -- images -------------------------------------------------------------------------------------


def test_load_image_non_ascii_path(tmp_path):
    path = write_image(tmp_path / "商品 图片" / "苹果.png", (10, 20, 30), ext=".png")
    img = load_image(path)
    assert img.dtype == np.uint8 and img.shape == (48, 64, 3)


def test_load_image_gray_png_becomes_bgr(tmp_path):
    path = tmp_path / "g.png"
    cv2.imencode(".png", np.full((5, 7), 128, np.uint8))[1].tofile(str(path))
    assert load_image(path).shape == (5, 7, 3)


def make_bad(tmp_path: Path, kind: str) -> Path:
    good = write_image(tmp_path / "good.jpg")
    bad = tmp_path / f"bad_{kind}.jpg"
    if kind == "missing":
        return bad
    if kind == "empty":
        bad.write_bytes(b"")
    elif kind == "not-image":
        bad.write_text("this is not a picture")
    elif kind == "truncated-jpeg":
        bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    elif kind == "truncated-png":
        png = write_image(tmp_path / "good.png", ext=".png")
        bad = tmp_path / "bad.png"
        bad.write_bytes(png.read_bytes()[: png.stat().st_size // 2])
    elif kind == "directory":
        bad.mkdir()
    return bad


@pytest.mark.parametrize(
    "kind, message",
    [
        ("missing", "file not found"),
        ("empty", "empty file (0 bytes)"),
        ("not-image", "not a readable image"),
        ("truncated-jpeg", "truncated JPEG"),
        ("truncated-png", "truncated PNG"),
        ("directory", "cannot read"),
    ],
)
def test_load_image_errors(tmp_path, kind, message):
    bad = make_bad(tmp_path, kind)
    with pytest.raises(ImageError) as info:
        load_image(bad)
    assert message in str(info.value) and str(bad) in str(info.value)


# -- import -------------------------------------------------------------------------------------


def test_import_creates_products_and_gallery(tmp_path, gallery, cat):
    entries = parse_gallery_list(gallery / "gallery_list.txt")
    products = parse_products_csv(write_csv(
        tmp_path / "p.csv",
        "sku,name,price,barcode\napple,Golden Delicious,3.50,4006381333931\nmilk,Oatly 1L,19.90,\n"
        "juice,Juice without photos,5,\n",
    ))
    embedder = HistogramEmbedder()
    seen = []
    report = import_gallery(cat, entries, products, embedder, batch_size=3,
                            progress=lambda stage, done, total: seen.append((stage, done, total)))

    assert sorted(report.products_created) == ["apple", "juice", "kiwi", "milk"]
    assert report.products_updated == []
    assert report.images_added == 8 and report.images_skipped == 0
    assert report.unpriced == ["kiwi"]
    assert "4 products created" in report.summary()
    assert cat.get_product("kiwi").name == "kiwi" and cat.get_product("kiwi").price is None
    assert cat.get_product("apple").price == 350 and cat.find_by_barcode("4006381333931").sku == "apple"
    assert cat.get_product("juice").price == 500
    assert embedder.calls == 3  # 8 images in batches of 3
    assert ("embed", 8, 8) in seen and ("check", 8, 8) in seen and seen[-1] == ("write", 8, 8)

    # gallery rows: absolute source paths, model id, embeddings that round-trip bit-exactly
    rows = cat.gallery_rows()
    assert [r["file"] for r in rows] == [str(e.path) for e in entries]
    assert {r["model_id"] for r in rows} == {embedder.model_id} and {r["dim"] for r in rows} == {64}
    ids, vecs, skus = cat.gallery_vectors(embedder.model_id)
    assert ids.tolist() == report.gallery_ids
    assert skus == [e.label for e in entries]
    expected = HistogramEmbedder().embed([load_image(e.path) for e in entries]).vectors
    assert np.array_equal(vecs, expected)

    # the same import again adds nothing
    again = import_gallery(cat, entries, products, embedder)
    assert again.images_added == 0 and again.images_skipped == 8
    assert again.products_created == [] and again.products_updated == []
    assert cat.count_gallery() == 8


def test_import_updates_existing_products_and_keeps_unlisted_ones(gallery, cat, tmp_path):
    cat.add_product("apple", "Old apple", 100, barcode="96385074")
    cat.add_product("kiwi", "Kiwi (priced by staff)", 800)
    cat.add_product("milk", "Milk", 1990, barcode="4006381333931")
    entries = parse_gallery_list(gallery / "gallery_list.txt")
    # the barcode moves from milk to apple in the same import
    products = {"apple": ProductRow("apple", "New apple", 350, "4006381333931"),
                "milk": ProductRow("milk", "Milk", 1990, None)}
    report = import_gallery(cat, entries, products, HistogramEmbedder())
    assert report.products_created == []
    assert sorted(report.products_updated) == ["apple", "milk"]
    assert report.unpriced == []
    assert cat.get_product("apple") == Product("apple", "New apple", 350, barcode="4006381333931")
    assert cat.get_product("kiwi").price == 800 and cat.get_product("kiwi").name == "Kiwi (priced by staff)"
    assert cat.get_product("milk").barcode is None


def test_import_copies_images_with_content_hash_names(tmp_path, gallery, cat):
    entries = parse_gallery_list(gallery / "gallery_list.txt")
    store = tmp_path / "store"
    report = import_gallery(cat, entries, None, HistogramEmbedder(), copy_to=store)
    assert report.images_added == 8 and sorted(report.unpriced) == ["apple", "kiwi", "milk"]
    rows = cat.gallery_rows()
    for row, entry in zip(rows, entries):
        stored = Path(row["file"])
        assert stored.parent == store.resolve() / entry.label
        assert stored.suffix == ".jpg" and len(stored.stem) == 32
        assert stored.read_bytes() == entry.path.read_bytes()
    assert not [p for p in files_under(store) if p.name.startswith(".")]
    again = import_gallery(cat, entries, None, HistogramEmbedder(), copy_to=store)
    assert again.images_added == 0 and again.images_skipped == 8


@pytest.mark.parametrize("kind", ["missing", "empty", "not-image", "truncated-jpeg"])
def test_import_with_one_bad_image_changes_nothing(tmp_path, gallery, cat, kind):
    first = parse_gallery_list(gallery / "gallery_list.txt")[:2]
    import_gallery(cat, first, None, HistogramEmbedder(), copy_to=tmp_path / "store")
    before_db, before_files = snapshot(cat), files_under(tmp_path / "store")

    bad = make_bad(gallery / "apple", kind)
    lst = gallery / "gallery_list.txt"
    lst.write_text(lst.read_text() + f"apple/{bad.name}\tapple\n", encoding="utf-8")
    if kind == "missing":
        with pytest.raises(GalleryImportError, match="file not found"):
            parse_gallery_list(lst)
        entries = [*first, GalleryEntry(bad, "apple", 99, lst)]
    else:
        entries = parse_gallery_list(lst)
    embedder = HistogramEmbedder()
    with pytest.raises(GalleryImportError) as info:
        import_gallery(cat, entries, None, embedder, copy_to=tmp_path / "store")
    assert len(info.value.errors) == 1 and info.value.errors[0].startswith(f"{lst}:")
    assert embedder.calls == 0  # nothing is embedded before everything checks out
    assert snapshot(cat) == before_db
    assert files_under(tmp_path / "store") == before_files


def test_import_collects_every_bad_image(tmp_path, gallery, cat):
    entries = parse_gallery_list(gallery / "gallery_list.txt")
    bad = [make_bad(tmp_path / k, k) for k in ("empty", "not-image", "truncated-jpeg")]
    entries += [GalleryEntry(p, "apple") for p in bad] + [entries[0]]
    with pytest.raises(GalleryImportError) as info:
        import_gallery(cat, entries, None, HistogramEmbedder())
    errors = info.value.errors
    assert len(errors) == 4
    assert "empty file" in errors[0] and "not a readable image" in errors[1] and "truncated JPEG" in errors[2]
    assert "duplicate image" in errors[3]
    assert cat.table_counts()["products"] == 0


def test_import_refuses_barcode_of_another_product(gallery, cat):
    cat.add_product("other", "Other", 1, barcode="96385074")
    before = snapshot(cat)
    entries = parse_gallery_list(gallery / "gallery_list.txt")
    with pytest.raises(GalleryImportError, match="already belongs to 'other'"):
        import_gallery(cat, entries, {"apple": ProductRow("apple", "Apple", 1, "96385074")}, HistogramEmbedder())
    assert snapshot(cat) == before


def test_bad_csv_line_means_no_import(tmp_path, gallery, cat):
    csv_path = write_csv(tmp_path / "p.csv", "sku,name,price\napple,Apple,3.50\nmilk,Milk,-2\n")
    before = snapshot(cat)
    with pytest.raises(GalleryImportError, match="p.csv:3: price '-2' is negative"):
        import_gallery(cat, parse_gallery_list(gallery / "gallery_list.txt"), parse_products_csv(csv_path),
                       HistogramEmbedder())
    assert snapshot(cat) == before


class FailingEmbedder(HistogramEmbedder):
    def embed(self, crops):
        if self.calls == 1:
            raise RuntimeError("embedder crashed")
        return super().embed(crops)


def test_embedder_failure_changes_nothing(tmp_path, gallery, cat):
    before = snapshot(cat)
    with pytest.raises(RuntimeError, match="crashed"):
        import_gallery(cat, parse_gallery_list(gallery / "gallery_list.txt"), None, FailingEmbedder(),
                       copy_to=tmp_path / "store", batch_size=2)
    assert snapshot(cat) == before
    assert files_under(tmp_path / "store") == []


def test_failure_while_writing_rolls_back_db_and_copies(tmp_path, gallery, cat, monkeypatch):
    cat.add_product("apple", "Apple", 100)
    (tmp_path / "store" / "apple").mkdir(parents=True)
    before_db, before_files = snapshot(cat), files_under(tmp_path / "store")
    original = Catalog.add_gallery_images
    calls = []

    def flaky(self, sku, files, embeddings, **kw):
        calls.append(sku)
        if len(calls) == 3:
            raise OSError("disk full")
        return original(self, sku, files, embeddings, **kw)

    monkeypatch.setattr(Catalog, "add_gallery_images", flaky)
    with pytest.raises(OSError, match="disk full"):
        import_gallery(cat, parse_gallery_list(gallery / "gallery_list.txt"),
                       {"milk": ProductRow("milk", "Milk", 1990)}, HistogramEmbedder(), copy_to=tmp_path / "store")
    assert len(calls) == 3  # two skus were written before the failure ...
    assert snapshot(cat) == before_db  # ... and rolled back
    assert files_under(tmp_path / "store") == before_files


def test_embedding_size_must_match_the_catalogue(gallery, cat):
    cat.add_product("x", "X", 1)
    cat.add_gallery_images("x", ["x.jpg"], Embeddings(np.ones((1, 8)) / np.sqrt(8), HistogramEmbedder.model_id))
    with pytest.raises(GalleryImportError, match="8-d embeddings"):
        import_gallery(cat, parse_gallery_list(gallery / "gallery_list.txt"), None, HistogramEmbedder())


def test_import_from_folder(tmp_path, gallery, cat):
    entries = scan_folder(gallery)
    report = import_gallery(cat, entries, None, HistogramEmbedder())
    assert report.images_added == 8
    assert {p.sku for p in cat.list_products()} == set(COLOURS)


def test_empty_csv_fields_keep_catalogue_values_and_barcodes_can_swap(gallery, cat, tmp_path):
    cat.add_product("apple", "Apple", 350, barcode="96385074")
    cat.add_product("milk", "Milk", 1990, barcode="4006381333931")
    cat.add_product("kiwi", "Kiwi", 800, barcode="036000291452")
    csv_path = write_csv(tmp_path / "p.csv", "sku,name,price,barcode\napple,Apple,,4006381333931\n"
                                             "milk,Milk,20.50,96385074\nkiwi,Kiwi gold,,\n")
    report = import_gallery(cat, [], parse_products_csv(csv_path), HistogramEmbedder())
    assert sorted(report.products_updated) == ["apple", "kiwi", "milk"] and report.images_added == 0
    assert cat.get_product("apple") == Product("apple", "Apple", 350, barcode="4006381333931")
    assert cat.get_product("milk") == Product("milk", "Milk", 2050, barcode="96385074")
    assert cat.get_product("kiwi") == Product("kiwi", "Kiwi gold", 800, barcode="036000291452")
