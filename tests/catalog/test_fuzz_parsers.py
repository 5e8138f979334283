"""Hypothesis fuzzing of the three parsers staff feed files to: the gallery list, the products
CSV and the settings file.

For any text or bytes a parser either returns records that are valid all the way down (an
import of them succeeds, settings save and load back equal) or raises the project's own error
(:class:`GalleryImportError`, :class:`SettingsError`) naming the file; never another exception.
An import that is refused leaves the catalogue exactly as it was.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from kiosk.catalog import Catalog, check_sku
from kiosk.embed import Embeddings, l2_normalize
from kiosk.catalog.gallery_io import (
    GalleryImportError,
    import_gallery,
    parse_gallery_list,
    parse_products_csv,
)
from kiosk.settings import (
    Settings,
    SettingsError,
    format_settings,
    load_settings,
    parse_settings,
    settings_from_dict,
)

FUZZ = hsettings(max_examples=200, deadline=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture,
                                        HealthCheck.too_slow])


class MeanColourEmbedder:
    """A cheap stand-in for the model: the normalised mean colour (3-d)."""

    model_id = "mean-colour@fuzz"
    dim = 3

    def embed(self, crops):
        rows = np.array([c.reshape(-1, 3).mean(axis=0) + 1.0 for c in crops], np.float32)
        return Embeddings(l2_normalize(rows.reshape(len(crops), 3)), self.model_id)


IMAGES = ["a/1.jpg", "a/2.png", "b/x y.jpg", "商品/苹果.jpg", "bad.jpg", "notes.txt"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Images the fuzzed lists may name (bad.jpg is empty, notes.txt no image)."""
    root = tmp_path_factory.mktemp("fuzz")
    rng = np.random.default_rng(0)
    for name in IMAGES:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name == "bad.jpg":
            path.write_bytes(b"")
        elif name == "notes.txt":
            path.write_text("not a picture")
        else:
            img = rng.integers(0, 256, (8, 8, 3)).astype(np.uint8)
            cv2.imencode(path.suffix, img)[1].tofile(str(path))
    return root


def fresh_catalogue() -> tuple[Catalog, Path]:
    """A catalogue with one product that owns a barcode (so imports can collide with it)."""
    folder = Path(tempfile.mkdtemp(prefix="fuzz-cat-"))
    cat = Catalog(folder / "catalog.db")
    cat.add_product("OWNED", "Owner", 100, barcode="4006381333931")
    return cat, folder


def dump(cat: Catalog) -> list[str]:
    return list(cat.conn.iterdump())


def check_import(entries, products, copy_to_files: bool) -> None:
    """Importing parsed records succeeds, or is refused with GalleryImportError and no trace."""
    cat, tmp = fresh_catalogue()
    try:
        before = dump(cat)
        copy_to = tmp / "gallery" if copy_to_files else None
        try:
            report = import_gallery(cat, entries, products, MeanColourEmbedder(), copy_to=copy_to)
        except GalleryImportError as e:
            assert e.errors and str(e)
            assert dump(cat) == before
            assert not (tmp / "gallery").exists() or not any((tmp / "gallery").rglob("*.*"))
            return
        assert cat.count_gallery() == report.images_added
        assert all(cat.get_product(sku) is not None for sku in report.products_created)
    finally:
        cat.close()
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------------------- gallery list
# mostly well-formed lines with one odd part, so that faults deep in the parser are reached
ODD_PATHS = ["missing.jpg", "a/../a/1.jpg", "./a/2.png", "~", "~/x.jpg", "~no-such-user-zz/x.jpg",
             "a" * 300 + ".jpg", "b/" + "x" * 5000, "/", "a", "", "a/1.jpg\x00"]
PATHS = st.one_of(st.sampled_from(IMAGES), st.sampled_from(ODD_PATHS), st.text(max_size=15))
LABELS = st.one_of(st.sampled_from(["A", "B", "苹果", "Coca Cola"]),
                   st.sampled_from(["A\x01", " ", "#", "0", "\x7f", "\u2028"]), st.text(max_size=8))
SEPS = st.one_of(st.just("\t"), st.sampled_from(["\t", " ", "  ", ",", ";", "\t\t", " \t "]))
LIST_LINE = st.one_of(
    st.tuples(PATHS, SEPS, LABELS).map("".join),
    st.tuples(PATHS, SEPS, LABELS).map("".join),
    st.tuples(PATHS, SEPS, LABELS, SEPS, st.sampled_from(["3", "x", "", "-1"])).map("".join),
    st.sampled_from(["", "# comment", "   ", "\r"]),
    st.text(max_size=30),
)


def check_list(path: Path) -> None:
    try:
        entries = parse_gallery_list(path)
    except GalleryImportError as e:
        assert e.errors and all(err.startswith(str(path)) for err in e.errors), e.errors
        return
    assert len({e.path for e in entries}) == len(entries)
    assert [e.line_no for e in entries] == sorted({e.line_no for e in entries})
    for e in entries:
        assert e.path.is_file() and e.path.is_absolute() and e.source == path
        assert check_sku(e.label) == e.label
    check_import(entries, None, copy_to_files=True)


@FUZZ
@given(lines=st.lists(LIST_LINE, max_size=8), newline=st.sampled_from(["\n", "\r\n"]),
       bom=st.booleans())
@example(lines=["~no-such-user-zz/x.jpg\tA"], newline="\n", bom=False)  # found bugs, pinned
@example(lines=["a" * 300 + ".jpg\tA"], newline="\n", bom=False)
def test_fuzz_gallery_list_lines(folder, lines, newline, bom):
    path = folder / "list.txt"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + newline.join(lines).encode("utf-8",
                                                                                     "surrogatepass"))
    check_list(path)


@FUZZ
@given(data=st.binary(max_size=300))
def test_fuzz_gallery_list_bytes(folder, data):
    path = folder / "list.txt"
    path.write_bytes(data)
    check_list(path)


# ----------------------------------------------------------------------------- products CSV
CELLS = st.one_of(
    st.sampled_from(["", "A", " a ", "苹果", "3.50", "-1", "1e3", "NaN", "0.001", "99999999",
                     "1000000", "¥2", "3元", "4006381333931", "96385074", "036000291452",
                     "12345", "CNY", "usd", "yuan", "OWNED", '"quoted, cell"', '"', "\x07"]),
    st.text(max_size=10),
)
HEADERS = st.one_of(st.just("sku,name,price,barcode,currency"),
                    st.sampled_from(["sku,name,price", "sku,name,price,barcode",
                                     "SKU, Name ,PRICE,barcode,currency,notes", "sku,name",
                                     "sku,name,price,price", "name,price,sku,currency", ""]))
GOOD_ROW = st.tuples(  # sku, name, price, barcode, currency: each usually fine
    st.one_of(st.sampled_from(["A", "B", "苹果", "OWNED"]), CELLS),
    st.one_of(st.sampled_from(["Apple", "可口可乐", "Oatly, 1L"]), CELLS),
    st.one_of(st.sampled_from(["3.50", "0", "12", ""]), CELLS),
    st.one_of(st.sampled_from(["", "96385074", "4006381333931"]), CELLS),
    st.one_of(st.sampled_from(["", "CNY", "usd"]), CELLS),
).map(",".join)
CSV_ROW = st.one_of(GOOD_ROW, GOOD_ROW, st.lists(CELLS, min_size=0, max_size=6).map(",".join))


def check_csv(path: Path) -> None:
    try:
        rows = parse_products_csv(path)
    except GalleryImportError as e:
        assert e.errors and all(err.startswith(str(path)) for err in e.errors), e.errors
        return
    for sku, row in rows.items():
        assert row.sku == sku == check_sku(sku)
    check_import([], rows, copy_to_files=False)


@FUZZ
@given(header=HEADERS, rows=st.lists(CSV_ROW, max_size=6), bom=st.booleans())
@example(header="sku,name,price", rows=["A,B\x07C,1"], bom=False)  # a found bug, pinned
def test_fuzz_products_csv_rows(tmp_path_factory, header, rows, bom):
    path = tmp_path_factory.getbasetemp() / "fuzz.csv"
    text = "\n".join([header, *rows])
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8", "surrogatepass"))
    check_csv(path)


@FUZZ
@given(data=st.one_of(st.binary(max_size=300),
                      st.text(max_size=200).map(lambda t: ("sku,name,price\n" + t).encode(
                          "utf-8", "surrogatepass"))))
def test_fuzz_products_csv_bytes(tmp_path_factory, data):
    path = tmp_path_factory.getbasetemp() / "fuzz.csv"
    path.write_bytes(data)
    check_csv(path)


# -------------------------------------------------------------------------------- settings
SECTION_KEYS = {
    "camera": ["source", "width", "height", "fps"],
    "recognition": ["threshold", "k", "settle_ms", "detector", "background"],
    "store": ["currency", "name"],
    "ui": ["language", "kiosk_mode", "fullscreen", "font_scale"],
    "staff": ["session_timeout_s", "max_pin_attempts", "lockout_s"],
    "paths": ["db", "data_dir"],
    "bogus": ["x"],
}
SCALARS = st.one_of(
    st.integers(-(10 ** 400), 10 ** 400), st.integers(-5, 300), st.floats(), st.booleans(),
    st.text(max_size=10), st.sampled_from(["auto", "demo", "tray", "paddle:m", "CNY", "en"]),
    st.dates(), st.times(),
)
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=3),
                   st.dictionaries(st.text(max_size=3), SCALARS, max_size=2))
SETTINGS_DICT = st.dictionaries(
    st.sampled_from(list(SECTION_KEYS)),
    st.one_of(st.sampled_from(list(SECTION_KEYS)).flatmap(
        lambda s: st.dictionaries(st.sampled_from(SECTION_KEYS[s] + ["zz"]), VALUES, max_size=4)),
        SCALARS),
    max_size=4,
)


@FUZZ
@given(data=SETTINGS_DICT)
@example(data={"ui": {"font_scale": 10 ** 400}})  # found bugs, pinned
@example(data={"recognition": {"threshold": -(10 ** 309)}})
def test_fuzz_settings_values(data):
    try:
        s = settings_from_dict(data, "fuzz.toml")
    except SettingsError as e:
        assert str(e).startswith("fuzz.toml: ")
        return
    assert isinstance(s, Settings)
    assert parse_settings(format_settings(s)) == s


@FUZZ
@given(data=st.one_of(st.binary(max_size=300),
                      st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass"))))
@example(data=b"[camera]\nwidth = " + b"9" * 5000)  # a found bug, pinned
def test_fuzz_settings_file_bytes(tmp_path_factory, data):
    path = tmp_path_factory.getbasetemp() / "fuzz-settings.toml"
    path.write_bytes(data)
    try:
        s = load_settings(path)
    except SettingsError as e:
        assert str(e).startswith(str(path))
        return
    assert parse_settings(format_settings(s)) == s
