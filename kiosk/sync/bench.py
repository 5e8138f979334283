"""``kiosk bench --store N [--minutes M]``: N simulated kiosks against one PostgreSQL server.

Each simulated kiosk is the real thing minus camera and model: its own SQLite catalogue, a
:class:`~kiosk.sync.client.StoreClient` and :class:`~kiosk.sync.client.SyncWorker` (LISTEN/NOTIFY,
outbox, pull), and a till thread that records a sale every ``sale_every_s`` seconds (1-4 lines;
every tenth sale with a cashier correction, audited), enrols a product every ``enrol_every_s``
seconds (2 views: a 24 kB picture and a 1792-d vector each, as the shipped model makes), and
changes a price every ``price_every_s`` seconds.  Kiosks run as threads in a few processes
(so the machine's cores are shared as between real kiosks and their server).

Measured: the sync lag of product changes (from the edit on one kiosk to its arrival in every
other kiosk's catalogue, p50/p95/max), the lag of sales (made on the kiosk -> stored on the
server), the server's CPU (its processes' CPU time over the run, when the bench started the
server itself), rows written per second on the server, and whether anything was lost or
doubled: at the end every kiosk's outbox is drained and every sale, correction and audit row is
checked to be on the server exactly once, and every kiosk to have every product and view.
"""
from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

MODEL = "bench-model@1"
DIM = 1792
PICTURE_BYTES = 24_000
SEED_PRODUCTS = 200


def _pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 3) if values else None


def _enrol(cat, sku: str, price: int, rng: random.Random) -> None:
    from kiosk.embed import Embeddings

    folder = cat.path.parent / "gallery" / sku
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for n in range(2):
        f = folder / f"{sku}-{n}.jpg"
        f.write_bytes(rng.randbytes(PICTURE_BYTES))
        files.append(f)
    v = np.random.default_rng(rng.getrandbits(32)).standard_normal((2, DIM)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    with cat.transaction():
        cat.add_product(sku, f"Product {sku}", price, role="staff")
        cat.add_gallery_images(sku, files, Embeddings(v, MODEL), role="staff", audit_action="enrol")


class _Kiosk:
    def __init__(self, index: int, root: Path, url: str, password: str | None, cfg: dict) -> None:
        from kiosk.catalog import Catalog
        from kiosk.sync.client import StoreClient, SyncWorker

        self.index, self.cfg = index, cfg
        self.name = f"bench-{index:02d}"
        self.db = root / self.name / "catalog.db"
        self.cat = Catalog(self.db)
        self.client = StoreClient(self.db, url, password=password, kiosk_name=self.name,
                                  model_id=MODEL)
        self.seen: list[tuple[str, int | None, float]] = []  # (sku, price, applied at)
        self.events: list[tuple[str, int | None, float]] = []  # own edits (sku, price, at)
        self.sales = 0
        self.rng = random.Random(1000 + index)
        self.worker = SyncWorker(self.client, on_pulled=self._pulled)
        self._stop = threading.Event()

    def _pulled(self, res) -> None:
        for sku, _old, new in res.products:
            self.seen.append((sku, None if new is None else new.price, res.applied_at))

    def start(self) -> None:
        self.worker.start()

    def till(self, deadline: float) -> None:
        cfg, rng, cat = self.cfg, self.rng, self.cat
        start = time.time()
        next_sale = start + rng.uniform(0, cfg["sale_every_s"])
        next_enrol = start + rng.uniform(0, cfg["enrol_every_s"])
        next_price = start + rng.uniform(0, cfg["price_every_s"])
        n_enrol = 0
        while not self._stop.is_set():
            now = time.time()
            if now >= deadline:
                break
            if now >= next_sale:
                products = cat._rows("SELECT sku, name, price FROM products WHERE price IS NOT "
                                     "NULL AND active = 1 ORDER BY random() LIMIT ?",
                                     (rng.randint(1, 4),))
                lines = [{"sku": s, "name": n, "qty": q, "unit_price": p, "amount": p * q}
                         for (s, n, p), q in zip(products, [rng.randint(1, 3) for _ in products])]
                if lines:
                    with cat.transaction():
                        tx = cat.record_transaction({"lines": lines, "currency": "CNY",
                                                     "total": sum(l["amount"] for l in lines)})
                        if self.sales % 10 == 9:
                            cid = cat.log_correction({"box": [1, 2, 3, 4]}, lines[0]["sku"],
                                                     lines[0]["sku"], role="cashier", actor="C1")
                            cat.link_corrections([cid], tx)
                    self.sales += 1
                self.worker.poke()
                next_sale += cfg["sale_every_s"]
            if now >= next_enrol:
                n_enrol += 1
                sku = f"{self.name}-e{n_enrol}"
                price = rng.randint(100, 9999)
                _enrol(cat, sku, price, rng)
                self.events.append((sku, price, time.time()))
                self.worker.poke()
                next_enrol += cfg["enrol_every_s"]
            if now >= next_price:
                row = cat._rows("SELECT sku FROM products ORDER BY random() LIMIT 1")
                if row:
                    price = rng.randint(100, 9999)
                    t = time.time()
                    cat.set_price(row[0][0], price, role="staff")
                    self.events.append((row[0][0], price, t))
                    self.worker.poke()
                next_price += cfg["price_every_s"]
            time.sleep(max(0.0, min(next_sale, next_enrol, next_price, deadline) - time.time()))


def _group(indices: list[int], root: str, url: str, password: str | None, cfg: dict,
           start_at: float, out) -> None:
    """One process: some kiosks, each a sync worker plus a till thread."""
    logging.basicConfig(level=logging.WARNING)
    kiosks = [_Kiosk(i, Path(root), url, password, cfg) for i in indices]
    for k in kiosks:
        k.start()
    time.sleep(max(0.0, start_at - time.time()))
    deadline = start_at + cfg["seconds"]
    threads = [threading.Thread(target=k.till, args=(deadline,), daemon=True) for k in kiosks]
    cpu0 = time.process_time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    cpu = time.process_time() - cpu0
    # drain: every outbox empty, every kiosk caught up with the server
    drain_start = time.time()
    while time.time() - drain_start < cfg["drain_s"]:
        for k in kiosks:
            k.worker.poke()
        if all(k.client.pending() == 0 for k in kiosks):
            break
        time.sleep(0.1)
    out.put(("drained", indices, time.time() - drain_start))
    out.put(("wait", indices))
    while True:  # the parent writes the server's final change number to a file
        try:
            high = int(Path(cfg["high_file"]).read_text())
            break
        except (OSError, ValueError):
            time.sleep(0.05)
    t0 = time.time()
    while time.time() - t0 < cfg["drain_s"]:
        if all(k.worker.status()["last_change_no"] >= high for k in kiosks):
            break
        for k in kiosks:
            k.worker.poke()
        time.sleep(0.1)
    for k in kiosks:
        k.worker.stop()
    result = []
    for k in kiosks:
        st = k.worker.status()
        result.append({"index": k.index, "name": k.name, "kiosk_id": st["kiosk_id"],
                       "db": str(k.db), "sales": k.sales, "events": k.events, "seen": k.seen,
                       "pending": st["pending"], "last_change_no": st["last_change_no"]})
        k.client.close()
        k.cat.close()
    out.put(("result", result, cpu))


def run_store_bench(n_kiosks: int, minutes: float = 2.0, *, server_url: str | None = None,
                    password: str | None = None, processes: int | None = None,
                    sale_every_s: float = 2.0, enrol_every_s: float = 60.0,
                    price_every_s: float = 30.0, seed_products: int = SEED_PRODUCTS,
                    progress=None) -> dict[str, Any]:
    from kiosk.sync.client import StoreClient
    from kiosk.sync.config import connect
    from kiosk.sync.pgserver import LocalPostgres
    from kiosk.sync.server import init_server
    from kiosk.sync.status import store_status

    say = progress or (lambda msg: None)
    root = Path(tempfile.mkdtemp(prefix="kiosk-store-bench-"))
    pg = None
    try:
        if server_url is None:
            say("starting a local PostgreSQL server")
            pg = LocalPostgres().start()
            server_url, password = pg.url, pg.password
        with connect(server_url, password) as conn:
            init_server(conn)
        # the store's catalogue to start from: seeded on one kiosk, then everyone pulls
        say(f"seeding {seed_products} products")
        from kiosk.catalog import Catalog

        seed_db = root / "bench-00" / "catalog.db"
        rng = random.Random(7)
        with Catalog(seed_db) as cat:
            for i in range(seed_products):
                _enrol(cat, f"seed-{i:04d}", rng.randint(100, 9999), rng)
        seeder = StoreClient(seed_db, server_url, password=password, kiosk_name="bench-00",
                             model_id=MODEL)
        seeder.sync_once()
        seeder.close()
        for i in range(1, n_kiosks):
            c = StoreClient(root / f"bench-{i:02d}" / "catalog.db", server_url, password=password,
                            kiosk_name=f"bench-{i:02d}", model_id=MODEL)
            c.sync_once()
            c.close()
        say(f"{n_kiosks} kiosks in step; running {minutes:g} min")
        with connect(server_url, password) as conn:
            base = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in _TABLES}
        high_file = root / "high"
        cfg = {"seconds": minutes * 60.0, "sale_every_s": sale_every_s,
               "enrol_every_s": enrol_every_s, "price_every_s": price_every_s, "drain_s": 120.0,
               "high_file": str(high_file)}
        procs_n = processes or max(1, min(n_kiosks, os.cpu_count() or 2, 4))
        groups = [list(range(g, n_kiosks, procs_n)) for g in range(procs_n)]
        ctx = mp.get_context("spawn")
        out = ctx.Queue()
        start_at = time.time() + 3.0 + 0.5 * n_kiosks / procs_n
        procs = [ctx.Process(target=_group, args=(g, str(root), server_url, password, cfg,
                                                  start_at, out), daemon=True) for g in groups]
        for p in procs:
            p.start()
        cpu0 = pg.cpu_seconds() if pg else None
        t0 = None
        drained, waiting, results, kiosk_cpu, reported = [], 0, [], 0.0, 0
        while reported < len(procs):
            msg = out.get(timeout=cfg["seconds"] + 600)
            if msg[0] == "drained":
                drained.append(msg[2])
            elif msg[0] == "wait":
                waiting += 1
                if waiting == len(procs):
                    run_end = time.time()
                    cpu1 = pg.cpu_seconds() if pg else None
                    with connect(server_url, password) as conn:
                        high = conn.execute(
                            "SELECT greatest((SELECT max(change_no) FROM products), (SELECT "
                            "max(change_no) FROM views), (SELECT max(change_no) FROM "
                            "view_vectors), (SELECT max(change_no) FROM calls), 0)").fetchone()[0]
                    tmp = high_file.with_suffix(".tmp")
                    tmp.write_text(str(high))
                    os.replace(tmp, high_file)
            elif msg[0] == "result":
                results += msg[1]
                kiosk_cpu += msg[2]
                reported += 1
        for p in procs:
            p.join(30)
        t0 = start_at
        # the run, measured on the server (from the start to the end of the drain)
        elapsed = run_end - t0
        with connect(server_url, password) as conn:
            counts = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] - base[t]
                      for t in _TABLES}
            sale_lag = [float(r[0]) for r in conn.execute(
                "SELECT extract(epoch FROM received_at - created_at) FROM sales WHERE "
                "created_at >= to_timestamp(%s)", (t0,))]
            status = store_status(conn)
            live_views = conn.execute("SELECT count(*) FROM views WHERE NOT deleted").fetchone()[0]
            live_products = conn.execute("SELECT count(*) FROM products WHERE NOT deleted").fetchone()[0]
            exact = _exactly_once(conn, results)
        # product-change lag: an edit on one kiosk until it is in another kiosk's catalogue
        made = {}
        for r in results:
            for sku, price, t in r["events"]:
                made[(sku, price)] = (r["index"], t)
        lags, missing = [], 0
        for r in results:
            got = {}
            for sku, price, t in r["seen"]:
                got.setdefault((sku, price), t)
            for key, (src, t) in made.items():
                if src == r["index"]:
                    continue
                if key in got:
                    lags.append(got[key] - t)
        for r in results:  # each kiosk ends with every product and view
            with Catalog(r["db"]) as cat:
                if cat._rows("SELECT COUNT(*) FROM products")[0][0] != live_products or \
                        cat.count_gallery(MODEL) != live_views:
                    missing += 1
        sales = sum(r["sales"] for r in results)
        rows = sum(counts.values())
        report = {
            "kiosks": n_kiosks, "processes": procs_n, "minutes": minutes,
            "load": {"sale_every_s": sale_every_s, "enrol_every_s": enrol_every_s,
                     "price_every_s": price_every_s, "views_per_enrolment": 2,
                     "picture_bytes": PICTURE_BYTES, "vector_dim": DIM,
                     "seed_products": seed_products},
            "elapsed_s": round(elapsed, 1),
            "sales": sales, "sales_per_s": round(sales / elapsed, 2),
            "product_changes_applied_elsewhere": len(lags),
            "product_sync_lag_s": {"p50": _pct(lags, 50), "p95": _pct(lags, 95),
                                   "max": round(max(lags), 3) if lags else None},
            "sale_push_lag_s": {"p50": _pct(sale_lag, 50), "p95": _pct(sale_lag, 95),
                                "max": round(max(sale_lag), 3) if sale_lag else None},
            "server_rows_written": counts, "server_rows_per_s": round(rows / elapsed, 1),
            "server_cpu_s": None if cpu0 is None else round(cpu1 - cpu0, 1),
            "server_cpu_pct_of_one_core": None if cpu0 is None
            else round(100 * (cpu1 - cpu0) / elapsed, 1),
            "kiosk_processes_cpu_s": round(kiosk_cpu, 1),
            "drain_s_max": round(max(drained), 2) if drained else None,
            "exactly_once": exact,
            "kiosks_missing_products_or_views": missing,
            "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
            "status": {k: v for k, v in status.items() if k != "kiosks"},
        }
        report["pass"] = bool(exact["ok"] and missing == 0 and len(results) == n_kiosks
                              and exact["checked"]["sales"] == counts["sales"])
        return report
    finally:
        if pg is not None:
            pg.cleanup()
        shutil.rmtree(root, ignore_errors=True)


_TABLES = ("sales", "sale_lines", "corrections", "audit", "products", "product_changes",
           "views", "view_vectors", "calls")


def _exactly_once(conn, results) -> dict[str, Any]:
    """Every sale, correction and audit row of every kiosk on the server once, nothing more."""
    from kiosk.catalog import Catalog

    problems = []
    checked = {"sales": 0, "corrections": 0, "audit": 0}
    for r in results:
        with Catalog(r["db"]) as cat:
            for table, server_table in (("transactions", "sales"), ("corrections", "corrections"),
                                        ("audit", "audit")):
                mine = dict(cat._rows(f"SELECT i.uuid, t.id FROM {table} t JOIN sync_ids i ON "
                                      f"i.tbl = '{table}' AND i.local_id = t.id"))
                there = conn.execute(f"SELECT uuid::text, local_id FROM {server_table} WHERE "
                                     "kiosk_id = %s", (r["kiosk_id"],)).fetchall()
                if len({i for _, i in there}) != len(there) or dict(there) != mine:
                    problems.append(f"{r['name']} {server_table}: {len(mine)} here, "
                                    f"{len(there)} on the server")
                checked[server_table] += len(mine)
    return {"ok": not problems, "problems": problems[:20], "checked": checked}


def format_store_bench(r: dict[str, Any]) -> str:
    lag, sl = r["product_sync_lag_s"], r["sale_push_lag_s"]
    lines = [
        f"{r['kiosks']} kiosks ({r['processes']} processes), {r['minutes']:g} min: a sale every "
        f"{r['load']['sale_every_s']:g} s, an enrolment every {r['load']['enrol_every_s']:g} s and "
        f"a price change every {r['load']['price_every_s']:g} s per kiosk",
        f"sales {r['sales']} ({r['sales_per_s']}/s); product changes seen on other kiosks "
        f"{r['product_changes_applied_elsewhere']}",
        f"product sync lag (edit on one kiosk -> in another's catalogue): p50 {lag['p50']} s, "
        f"p95 {lag['p95']} s, max {lag['max']} s",
        f"sale push lag (kiosk -> server): p50 {sl['p50']} s, p95 {sl['p95']} s, max {sl['max']} s",
        f"server rows written {sum(r['server_rows_written'].values())} "
        f"({r['server_rows_per_s']}/s): " + ", ".join(f"{k} {v}" for k, v in
                                                      r['server_rows_written'].items()),
        f"server CPU {r['server_cpu_s']} s = {r['server_cpu_pct_of_one_core']} % of one core; "
        f"kiosk processes {r['kiosk_processes_cpu_s']} s",
        f"exactly once: {'yes' if r['exactly_once']['ok'] else 'NO'} "
        f"({r['exactly_once']['checked']}); kiosks missing products or views: "
        f"{r['kiosks_missing_products_or_views']}",
        "PASS" if r["pass"] else "FAIL",
    ]
    return "\n".join(lines)


def cmd_store_bench(args) -> int:
    from kiosk.sync.config import read_password

    server = getattr(args, "server", None)
    password = read_password(None) if server else None
    r = run_store_bench(int(args.store), float(getattr(args, "minutes", 2.0) or 2.0),
                        server_url=server, password=password,
                        progress=lambda msg: print(msg, file=sys.stderr, flush=True))
    if getattr(args, "json", False):
        print(json.dumps(r, ensure_ascii=False, indent=2))
    else:
        print(format_store_bench(r))
    return 0 if r["pass"] else 1
