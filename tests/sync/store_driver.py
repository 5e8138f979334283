"""A kiosk process for tests/test_store_sync.py: its own catalogue, an engine (a colour
histogram stands in for the model, so no network is loaded), a call board, and the store sync
worker, driven by commands on stdin, one per line.  Each answer is one flushed line.

    python tests/sync/store_driver.py DB URL NAME [MODEL_ID]      (password in $KIOSK_STORE_PASSWORD)

Commands:
    enrol SKU PRICE COLOUR      product + 2 views (cut and half-turned) of a COLOUR patch
    price SKU FEN               a staff price change
    sell N [PAUSE_S]            N sales of the first priced product: ``SOLD i tx`` each
    correct                     a cashier correction linked to the last sale
    recognize COLOUR            ``RECOGNIZED sku|unknown score``
    wait_recognize COLOUR SKU TIMEOUT  ``RECOGNIZED SKU seconds`` once a COLOUR patch is
                                recognised as SKU, else ``TIMEOUT sku|unknown``
    wait_price SKU FEN TIMEOUT  ``SEEN SKU FEN seconds`` once the engine charges that, else
                                ``TIMEOUT``
    call REASON                 ``CALL local_id``
    calls                       ``CALLS <json>`` (the store's open calls)
    close KIOSK_NAME            close the open store call of that kiosk: ``CLOSED 0|1``
    flush TIMEOUT               ``FLUSHED`` once the outbox is empty, else ``PENDING n``
    quit

Sync faults: ``KIOSK_SYNC_FAULT`` (see kiosk.sync.client._fault) prints ``FAULT point``.
``READY kiosk_id`` once running.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("GLOG_minloglevel", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from kiosk.embed import Embeddings, l2_normalize  # noqa: E402

COLOURS = {"red": (0, 0, 230), "green": (0, 200, 40), "blue": (230, 60, 0),
           "yellow": (0, 220, 230), "white": (245, 245, 245), "purple": (160, 30, 140)}


def say(*parts) -> None:
    print(*parts, flush=True)


class HistogramEmbedder:
    """The embed stage's stand-in: a normalised 4x4x4 BGR colour histogram (64-d)."""

    dim = 64

    def __init__(self, model_id: str = "colour-hist@test") -> None:
        self.model_id = model_id

    def embed(self, crops):
        rows = [cv2.calcHist([c], [0, 1, 2], None, [4, 4, 4], [0, 256] * 3).ravel() for c in crops]
        return Embeddings(l2_normalize(np.array(rows, np.float32).reshape(len(rows), self.dim)),
                          self.model_id)


def patch(colour: str, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.full((48, 32, 3), COLOURS[colour], np.uint8)
    noise = rng.integers(-12, 13, img.shape)
    return np.clip(img.astype(int) + noise, 0, 255).astype(np.uint8)


def main() -> int:
    from kiosk.checkout.calls import CallBoard
    from kiosk.catalog import Catalog
    from kiosk.decide import Decider
    from kiosk.detect import make_detector
    from kiosk.engine import Engine
    from kiosk.sync.client import StoreClient, SyncWorker, refresh_engine
    from kiosk.sync.store_calls import close_store_call, open_store_calls

    db, url, name = sys.argv[1], sys.argv[2], sys.argv[3]
    model = sys.argv[4] if len(sys.argv) > 4 else "colour-hist@test"
    embedder = HistogramEmbedder(model)
    catalog = Catalog(db)
    engine = Engine(catalog, embedder, make_detector("tray"), Decider(threshold=0.6))
    board = CallBoard(catalog)
    client = StoreClient(db, url, password=os.environ.get("KIOSK_STORE_PASSWORD"),
                         kiosk_name=name, embedder=embedder)

    def pulled(res) -> None:
        refresh_engine(engine)
        for cid in res.resolved_here:
            say("RESOLVED_HERE", cid)

    worker = SyncWorker(client, on_pulled=pulled, poll_s=0.1, pull_every_s=2.0).start()
    say("READY", client.kiosk_id)
    last_tx = None
    for line in sys.stdin:
        cmd = line.split()
        if not cmd:
            continue
        op, args = cmd[0], cmd[1:]
        if op == "enrol":
            sku, price, colour = args[0], int(args[1]), args[2]
            with catalog.transaction():
                catalog.add_product(sku, sku.upper(), price, role="staff")
                engine.add_crops(sku, [patch(colour, 1)], catalog.path.parent / "gallery",
                                 role="staff")
            worker.poke()
            say("ENROLLED", sku)
        elif op == "price":
            engine.set_price(args[0], int(args[1]), role="staff")
            worker.poke()
            say("PRICED", args[0], args[1])
        elif op == "sell":
            n, pause = int(args[0]), float(args[1]) if len(args) > 1 else 0.0
            p = next(p for p in catalog.list_products() if p.price is not None)
            for i in range(n):
                last_tx = catalog.record_transaction({
                    "lines": [{"sku": p.sku, "name": p.name, "qty": 1 + i % 3,
                               "unit_price": p.price, "amount": p.price * (1 + i % 3)}],
                    "total": p.price * (1 + i % 3), "currency": p.currency})
                say("SOLD", i, last_tx)
                if pause:
                    time.sleep(pause)
        elif op == "correct":
            cid = catalog.log_correction({"x": 1}, "a", "b", role="cashier", actor="C1")
            if last_tx is not None:
                catalog.link_corrections([cid], last_tx)
            say("CORRECTED", cid)
        elif op == "recognize":
            (d,) = engine.recognize_crops([patch(args[0], 7)])
            say("RECOGNIZED", d.sku or "unknown", f"{d.score:.3f}")
        elif op == "wait_recognize":
            colour, sku, timeout = args[0], args[1], float(args[2])
            t0 = time.monotonic()
            while True:
                (d,) = engine.recognize_crops([patch(colour, 7)])
                if d.sku == sku:
                    say("RECOGNIZED", sku, f"{time.monotonic() - t0:.3f}")
                    break
                if time.monotonic() - t0 > timeout:
                    say("TIMEOUT", d.sku or "unknown")
                    break
                time.sleep(0.02)
        elif op == "wait_price":
            sku, fen, timeout = args[0], int(args[1]), float(args[2])
            t0 = time.monotonic()
            while True:
                p = engine.lookup_product(sku)
                if p is not None and p.price == fen:
                    say("SEEN", sku, fen, f"{time.monotonic() - t0:.3f}")
                    break
                if time.monotonic() - t0 > timeout:
                    say("TIMEOUT")
                    break
                time.sleep(0.02)
        elif op == "call":
            say("CALL", board.open(args[0], "from the driver").id)
        elif op == "calls":
            say("CALLS", json.dumps([c.__dict__ for c in open_store_calls(catalog)]))
        elif op == "close":
            calls = [c for c in open_store_calls(catalog) if c.kiosk_name == args[0]]
            ok = bool(calls) and close_store_call(catalog, calls[0], by="C1", board=board)
            worker.poke()
            say("CLOSED", int(ok))
        elif op == "flush":
            t0 = time.monotonic()
            while client.catalog._rows("SELECT COUNT(*) FROM sync_outbox")[0][0]:
                if time.monotonic() - t0 > float(args[0]):
                    break
                worker.poke()
                time.sleep(0.05)
            n = client.catalog._rows("SELECT COUNT(*) FROM sync_outbox")[0][0]
            say("FLUSHED" if n == 0 else f"PENDING {n}")
        elif op == "quit":
            break
        else:
            say("ERROR unknown command", op)
    worker.stop()
    engine.close()
    say("BYE")
    return 0


if __name__ == "__main__":
    sys.exit(main())
