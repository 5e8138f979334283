"""The built-in demo catalogue: the demo products imported into a real catalogue.

``build_demo_catalog(db)`` imports ``gallery/demo/gallery_list.txt`` with
``resources/demo/products.csv`` through the normal import path, copies the demo empty-tray
image beside the database as its tray calibration, and builds the vector index.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from kiosk.detect import make_detector
from kiosk.demo.scenes import DEMO_GALLERY_DIR, DEMO_RESOURCES_DIR, random_layout, render_tray

DEMO_LIST = DEMO_GALLERY_DIR / "gallery_list.txt"
DEMO_PRODUCTS = DEMO_RESOURCES_DIR / "products.csv"
DEMO_EMPTY_TRAY = DEMO_RESOURCES_DIR / "empty_tray.png"


def build_demo_catalog(db: str | Path, embedder=None, text_reader="auto",
                       progress=None) -> Path:
    """Create the demo catalogue at ``db`` (which must not exist yet).

    The demo gallery images are upright item crops, as staff enrolment on the tray makes them,
    so they go in through :meth:`Engine.add_crops` like an enrolment would, their pack text
    read by ``text_reader`` (``"auto"``: :func:`kiosk.text.make_text_reader`; None: unread,
    an engine with a reader reads it when it opens the catalogue).  ``progress("demo", done,
    total)``: demo pictures enrolled so far (:mod:`kiosk.progress`)."""
    from collections import defaultdict

    from kiosk.catalog import Catalog
    from kiosk.embed import load_embedder
    from kiosk.engine import Engine, background_path_for, index_path_for
    from kiosk.catalog.gallery_io import parse_gallery_list, parse_products_csv
    from kiosk.images import load_image

    db = Path(db)
    if db.exists():
        raise FileExistsError(f"{db} already exists")
    embedder = embedder or load_embedder()
    products = parse_products_csv(DEMO_PRODUCTS)
    views = defaultdict(list)
    for entry in parse_gallery_list(DEMO_LIST):
        views[entry.label].append(load_image(entry.path))
    tmp = db.with_name(db.name + ".building")
    tmp_index = tmp.with_name(tmp.name + ".faiss")
    for leftover in db.parent.glob(tmp.name + "*"):
        leftover.unlink()
    catalog = Catalog(tmp)
    with catalog.transaction():
        for row in products.values():
            catalog.add_product(row.sku, row.name, row.price, barcode=row.barcode)
    if text_reader == "auto":
        from kiosk.text import make_text_reader

        text_reader = make_text_reader(embedder)
    engine = Engine(catalog, embedder, make_detector("tray"), index_path=tmp_index,
                    text_reader=text_reader)
    from kiosk.progress import DEMO, throttled

    progress = throttled(progress)
    total, done = sum(len(c) for c in views.values()), 0
    progress(DEMO, 0, total)
    for sku, crops in views.items():
        engine.add_crops(sku, crops, gallery_dir=db.parent / "gallery")
        done += len(crops)
        progress(DEMO, done, total)
    engine.close()
    Catalog(tmp).close()  # checkpoint: the WAL is folded back into the file
    shutil.copyfile(DEMO_EMPTY_TRAY, background_path_for(db))
    final_index = index_path_for(db)
    tmp_index.with_name(tmp_index.name + ".json").replace(final_index.with_name(
        final_index.name + ".json"))
    tmp_index.replace(final_index)
    tmp.replace(db)  # the catalogue appears complete or not at all
    return db


def random_tray(n_items: int, rng: np.random.Generator):
    """A freshly rendered demo tray with ``n_items`` random demo products (some touching).

    Returns (BGR image, list of ground-truth skus)."""
    from kiosk.demo.scenes import PRODUCTS

    skus = [PRODUCTS[int(i)].sku for i in rng.integers(0, len(PRODUCTS), n_items)]
    layout = random_layout(skus, rng, touching=min(2, n_items // 3),
                           scale=1.0 if n_items <= 8 else 0.75)
    tray = render_tray(layout, rng=rng)
    return tray.image, list(tray.skus)


def is_demo_catalog(catalog) -> bool:
    """True when ``catalog`` holds nothing but the built-in demo products (so nothing of a
    store's: first-use conveniences such as choosing the staff PIN on screen are safe)."""
    from kiosk.catalog.gallery_io import parse_products_csv

    skus = {p.sku for p in catalog.list_products(active_only=False)}
    demo = set(parse_products_csv(DEMO_PRODUCTS))
    return bool(skus) and skus <= demo

