"""The built-in demo catalogue, package renders, trays and the committed demo assets."""
from __future__ import annotations

import csv
import dataclasses
import json
import re

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw

from kiosk.demo import scenes as demo
from kiosk.fonts import cjk_font, cjk_font_path

GALLERY = demo.DEMO_GALLERY_DIR
RESOURCES = demo.DEMO_RESOURCES_DIR
CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.mark.parametrize("code, valid", [
    ("4006381333931", True), ("9780306406157", True), ("6901234567892", True),
    ("4006381333932", False), ("400638133393", False), ("40063813339a1", False),
])
def test_ean13_validation(code, valid):
    assert demo.ean13_is_valid(code) is valid


def test_products_table():
    skus = [p.sku for p in demo.PRODUCTS]
    assert len(set(skus)) == len(skus) >= 12
    assert len({p.barcode for p in demo.PRODUCTS}) == len(skus)
    for p in demo.PRODUCTS:
        assert re.fullmatch(r"DEMO-\d{3}", p.sku)
        assert isinstance(p.price, int) and not isinstance(p.price, bool) and p.price > 0
        assert demo.ean13_is_valid(p.barcode) and p.barcode.startswith("69")
        assert CJK.search(p.name)
        assert p.style.shape in {"can", "bottle", "cup", "box", "carton", "bag", "bar"}
    assert demo.product("DEMO-001").price_yuan == "3.50"


def test_lookalikes_share_design_but_differ():
    a, b = (demo.product(s) for s in demo.LOOKALIKES)
    assert (a.style.shape, a.style.body, a.style.size) == (b.style.shape, b.style.body,
                                                           b.style.size)
    pa, pb = demo.package_bgra(a.sku), demo.package_bgra(b.sku)
    diff = np.abs(pa.astype(int) - pb.astype(int)).max(axis=2) > 30
    assert 0.02 < diff.mean() < 0.3  # mostly identical, a distinct flavour band


def test_font_loads_and_draws_chinese():
    path = cjk_font_path()
    assert path.is_file()
    font = cjk_font(40)
    inks = []
    for ch in "乐事可乐":
        im = Image.new("L", (60, 60), 0)
        ImageDraw.Draw(im).text((30, 30), ch, font=font, fill=255, anchor="mm")
        inks.append(np.asarray(im))
    assert all(i.mean() > 5 for i in inks)
    assert not np.array_equal(inks[0], inks[1])  # real glyphs, not one "missing" box
    assert np.array_equal(inks[0], inks[3])


@pytest.mark.parametrize("sku", [p.sku for p in demo.PRODUCTS])
def test_package_name_is_drawn(sku):
    style = demo.product(sku).style
    with_text = demo.draw_package(style).astype(int)
    without = demo.draw_package(dataclasses.replace(style, title="", subtitle="")).astype(int)
    changed = np.abs(with_text - without)[..., :3].max(axis=2) > 40
    assert changed.mean() > 0.02, "name text is missing or invisible"


@pytest.mark.parametrize("view", [0, 1, 4])
def test_render_product_views(view):
    p = demo.PRODUCTS[0]
    a = demo.render_product(p, view, np.random.default_rng(5))
    b = demo.render_product(p, view, np.random.default_rng(5))
    assert a.shape[2] == 4 and a.dtype == np.uint8
    assert np.array_equal(a, b)
    alpha = a[..., 3] > 0
    assert 0.3 < alpha.mean() <= 1.0
    assert not alpha[0].all() or view == 0  # rotated views have transparent corners
    if view:
        assert not np.array_equal(a, demo.render_product(p, view, np.random.default_rng(6)))


def test_render_tray_and_empty_tray():
    items = [("DEMO-001", 300, 200, 30), ("DEMO-006", 800, 450, -20)]
    t1 = demo.render_tray(items)
    t2 = demo.render_tray(items)
    assert t1.image.shape == (720, 1280, 3) and t1.image.dtype == np.uint8
    assert np.array_equal(t1.image, t2.image) and t1.skus == ["DEMO-001", "DEMO-006"]
    for x1, y1, x2, y2 in t1.boxes:
        assert 0 <= x1 < x2 <= 1280 and 0 <= y1 < y2 <= 720
    empty = demo.empty_tray()
    assert np.array_equal(empty, demo.empty_tray())
    # away from the items the tray is untouched
    assert np.array_equal(empty[600:, :200], t1.image[600:, :200])
    assert len(demo.render_tray([]).boxes) == 0


def test_touching_position_touches():
    anchor = ("DEMO-001", 400, 300, 0)
    x, y = demo.touching_position(anchor, "DEMO-011", 60, 30)
    a = demo.render_tray([anchor], background=np.zeros((720, 1280, 3), np.uint8), shadow=0)
    b = demo.render_tray([("DEMO-011", x, y, 60)], background=np.zeros((720, 1280, 3), np.uint8),
                         shadow=0)
    ma, mb = a.image.max(axis=2) > 0, b.image.max(axis=2) > 0
    grown = cv2.dilate(ma.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    assert (grown & mb).any()                # adjacent ...
    assert (ma & mb).sum() < 0.02 * mb.sum()  # ... not stacked


def test_committed_catalogue_matches_products():
    with open(RESOURCES / "products.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["sku", "name", "price", "barcode"]
    assert [r["sku"] for r in rows] == [p.sku for p in demo.PRODUCTS]
    for r, p in zip(rows, demo.PRODUCTS):
        assert re.fullmatch(r"\d+\.\d\d", r["price"])
        assert round(float(r["price"]) * 100) == p.price
        assert r["name"] == p.name and r["barcode"] == p.barcode


def test_committed_gallery_consistent():
    lines = (GALLERY / "gallery_list.txt").read_text(encoding="utf-8").splitlines()
    skus = {p.sku for p in demo.PRODUCTS}
    listed = set()
    for line in lines:
        rel, sku = line.split("\t")
        assert sku in skus and (GALLERY / rel).is_file()
        listed.add(rel)
    on_disk = {str(p.relative_to(GALLERY)) for p in GALLERY.rglob("*.jpg")}
    assert on_disk == listed
    assert {line.split("\t")[1] for line in lines} == skus
    total = sum(p.stat().st_size for p in GALLERY.rglob("*") if p.is_file())
    assert total < 5 * 1024 * 1024
    # deterministic: the committed view is what the renderer makes (JPEG tolerance)
    img = cv2.imread(str(GALLERY / "DEMO-004" / "DEMO-004_v2.jpg"))
    ok, buf = cv2.imencode(".jpg", demo.gallery_view("DEMO-004", 2),
                           [cv2.IMWRITE_JPEG_QUALITY, 88])
    fresh = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    assert img.shape == fresh.shape
    assert np.abs(img.astype(int) - fresh.astype(int)).mean() < 0.5


def test_committed_trays_consistent():
    meta = json.loads((RESOURCES / "trays.json").read_text(encoding="utf-8"))
    w, h = meta["size"]
    assert (RESOURCES / meta["empty"]).is_file()
    empty = cv2.imread(str(RESOURCES / meta["empty"]))
    assert empty.shape == (h, w, 3)
    assert np.abs(empty.astype(int) - demo.empty_tray().astype(int)).mean() < 0.5
    names = {t["image"] for t in meta["trays"]}
    assert names == {p.name for p in RESOURCES.glob("tray_*.png")}
    lookalike_together = False
    for t in meta["trays"]:
        skus = [it["sku"] for it in t["items"]]
        assert 3 <= len(skus) <= 15
        assert t["total_fen"] == sum(demo.product(s).price for s in skus)
        for it in t["items"]:
            x1, y1, x2, y2 = it["box"]
            assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
        lookalike_together |= set(demo.LOOKALIKES) <= set(skus)
    assert lookalike_together
    # the committed image is what demo_tray renders
    first = meta["trays"][0]
    tray, _ = demo.demo_tray(first["image"].removesuffix(".png"))
    img = cv2.imread(str(RESOURCES / first["image"]))
    assert np.abs(img.astype(int) - tray.image.astype(int)).mean() < 0.5
    assert tray.boxes.tolist() == [it["box"] for it in first["items"]]


def test_build_demo_assets(tmp_path):
    written = demo.build_demo_assets(tmp_path / "g", tmp_path / "r", views=1, trays=["tray_01"])
    assert all(p.is_file() for files in written.values() for p in files)
    lines = (tmp_path / "g" / "gallery_list.txt").read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(demo.PRODUCTS)
    assert lines[0] == "DEMO-001/DEMO-001_v0.jpg\tDEMO-001"
    meta = json.loads((tmp_path / "r" / "trays.json").read_text(encoding="utf-8"))
    assert [t["image"] for t in meta["trays"]] == ["tray_01.png"]
    a = cv2.imread(str(tmp_path / "r" / "tray_01.png"))
    assert np.array_equal(a, cv2.imread(str(RESOURCES / "tray_01.png")))
