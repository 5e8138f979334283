"""Child process for tests/test_crash_safety.py: runs one kind of catalogue write in a loop
through the real kiosk code and prints a flushed marker line after each step that has
committed, so the test can SIGKILL it at chosen points and then check what survived.

    python tests/catalog/crash_driver.py import DB LIST [CSV] [--slow-write]
    python tests/catalog/crash_driver.py enrol DB N
    python tests/catalog/crash_driver.py price DB N
    python tests/catalog/crash_driver.py finish DB N TRAY_IMAGE

Markers (one per line): ``READY`` once the models are loaded, then per mode:
import ``PROGRESS stage done total``, ``ROWS sku`` (rows written, transaction still open, only
with --slow-write), ``COMMITTED n``, ``INDEXED``; enrol ``ENROLLED sku n`` and ``SAVED``;
price ``PRICED step sku fen``; finish ``FINISHED tx total``.  ``DONE`` at the end.
"""
from __future__ import annotations

import os
import sys
from types import SimpleNamespace
import time
from pathlib import Path

os.environ.setdefault("GLOG_minloglevel", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402

from kiosk.embed import Embeddings  # noqa: E402


def say(*parts) -> None:
    print(*parts, flush=True)


def price_of(step: int) -> int:
    """The price the price loop sets at ``step`` (the test recomputes it)."""
    return 100 + 7 * step


class StoredVectorEmbedder:
    """Stands in for the model where the step under test embeds nothing new: it carries the
    catalogue's model id and returns that model's stored gallery vectors in turn, so recognition
    names real products without loading the network."""

    def __init__(self, catalog) -> None:
        (model_id,) = catalog._rows("SELECT DISTINCT model_id FROM gallery_images")[0]
        self.model_id = model_id
        _, self._vectors, _ = catalog.gallery_vectors(model_id)
        self.dim = self._vectors.shape[1]
        self._next = 0

    def embed(self, crops):
        rows = []
        for _ in crops:
            rows.append(self._vectors[self._next % len(self._vectors)])
            self._next += 5
        return Embeddings(np.asarray(rows, np.float32).reshape(len(rows), self.dim), self.model_id)


def run_import(db: Path, lst: Path, csv: Path | None, slow_write: bool) -> None:
    from kiosk.catalog import Catalog
    from kiosk.embed import load_embedder
    from kiosk.engine import Engine
    from kiosk.catalog.gallery_io import import_gallery, parse_gallery_list, parse_products_csv

    embedder = load_embedder()
    if slow_write:  # a slow disk: the write transaction stays open a while, sku by sku
        original = Catalog.add_gallery_images

        def add_gallery_images(self, sku, *args, **kwargs):
            ids = original(self, sku, *args, **kwargs)
            say("ROWS", sku)
            time.sleep(0.1)
            return ids

        Catalog.add_gallery_images = add_gallery_images
    say("READY")
    entries = parse_gallery_list(lst)
    products = parse_products_csv(csv) if csv else None
    catalog = Catalog(db)
    report = import_gallery(catalog, entries, products, embedder, copy_to=db.parent / "gallery",
                            progress=lambda stage, done, total: say("PROGRESS", stage, done, total))
    catalog.close()
    say("COMMITTED", len(report.gallery_ids))
    Engine.open(db, embedder=embedder).close()  # what `kiosk gallery import` does next
    say("INDEXED")


def run_enrol(db: Path, n: int) -> None:
    from kiosk.demo import scenes as demo
    from kiosk.embed import load_embedder
    from kiosk.engine import Engine

    engine = Engine.open(db, embedder=load_embedder())
    skus = [p.sku for p in demo.PRODUCTS]
    frames = [demo.gallery_frame(skus[v % len(skus)], v).image for v in range(4)]
    say("READY")
    cat = engine.catalog
    for i in range(n):
        sku = f"EN-{i:03d}"
        views = [frames[i % 4], frames[(i + 1) % 4]]
        with cat.transaction():  # as `kiosk gallery add` and the staff screen do
            cat.add_product(sku, f"enrolled {i}", 100 + i)
            ids = engine.enrol(sku, views)
        say("ENROLLED", sku, len(ids))
        if i % 2:
            engine.save()
            say("SAVED")
    engine.close()


def run_price(db: Path, n: int) -> None:
    from kiosk.catalog import Catalog
    from kiosk.engine import Engine

    probe = Catalog(db)
    embedder = StoredVectorEmbedder(probe)
    probe.close()
    engine = Engine.open(db, embedder=embedder)
    skus = [p.sku for p in engine.catalog.list_products(active_only=False)]
    say("READY")
    for step in range(n):
        sku = skus[step % len(skus)]
        engine.set_price(sku, price_of(step))
        say("PRICED", step, sku, price_of(step))
    engine.close()


def run_finish(db: Path, n: int, tray: Path) -> None:
    from kiosk.camera import Frame
    from kiosk.catalog import Catalog
    from kiosk.engine import Engine
    from kiosk.images import load_image
    from kiosk.checkout.session import CheckoutSession

    probe = Catalog(db)
    embedder = StoredVectorEmbedder(probe)
    probe.close()
    engine = Engine.open(db, embedder=embedder)
    session = CheckoutSession(engine, settle_ms=0, barcode=False)
    image = load_image(tray)
    products = [p.sku for p in engine.catalog.list_products() if p.price is not None]
    say("READY")
    index = 0
    for step in range(n):
        session.reset()
        state = None
        for _ in range(3):  # still frames: the tray settles and is recognised
            index += 1
            state = session.process(Frame(image, index, float(index))) or state
        assert state is not None and state.items, "the tray was not recognised"
        first = state.items[0]
        session.open_attendant(SimpleNamespace(id="C001", name="crash driver"))
        session.override(first.track_id, products[step % len(products)])  # a logged correction
        tx = session.finish()
        say("FINISHED", tx, engine.catalog.get_transaction(tx)["total"])
    engine.close()


def main(argv: list[str]) -> int:
    mode, db = argv[0], Path(argv[1])
    if mode == "import":
        rest = [a for a in argv[2:] if not a.startswith("--")]
        run_import(db, Path(rest[0]), Path(rest[1]) if len(rest) > 1 else None,
                   "--slow-write" in argv)
    elif mode == "enrol":
        run_enrol(db, int(argv[2]))
    elif mode == "price":
        run_price(db, int(argv[2]))
    elif mode == "finish":
        run_finish(db, int(argv[2]), Path(argv[3]))
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    say("DONE")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
