"""``kiosk bench``: per-stage timings on demo trays and a 100,000-vector gallery.

The trays go through the checkout's own frame pipeline (:mod:`kiosk.pipeline`, by way of
:meth:`kiosk.engine.Engine.recognize`), so their figures are the till's.

Every figure is a median over repeated runs, in milliseconds, measured in this process on the
machine it runs on.  The 100k gallery uses synthetic clustered vectors of the default model's
dimension (20,000 products x 5 views), stored in a real SQLite catalogue and a real HNSW index.
Its ``memory_mb`` says what the process holds at each stage (VmRSS, and each stage's own peak
VmHWM), what the index and an opened engine hold, and the peak of the whole run.
"""
from __future__ import annotations

import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np


def _median_ms(fn: Callable[[], object], repeat: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return round(statistics.median(times), 2)


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _rss_mb() -> tuple[float, float]:
    """(now, peak) resident memory of this process in MB (VmRSS, VmHWM); the peak counts from
    the last :func:`_reset_peak`."""
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:  # pragma: no cover - not Linux
        return 0.0, _peak_rss_mb()
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    kb = lambda k: float(fields.get(k, "0 kB").split()[0])  # noqa: E731
    return round(kb("VmRSS") / 1024, 1), round(kb("VmHWM") / 1024, 1)


def _reset_peak() -> bool:
    """Start counting the peak (VmHWM) again from now, to see each stage's own peak (Linux:
    ``/proc/self/clear_refs``); False where that cannot be done."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:  # pragma: no cover
        return False


class MemoryLog:
    """Resident memory at each stage of a run: ``now`` and ``peak`` (MB) after the stage,
    the peak being the stage's own when the counter could be reset before it."""

    def __init__(self) -> None:
        self.stages: dict[str, dict[str, float]] = {}
        self.process_peak = _rss_mb()[1]  # before the first stage (counters not reset yet)
        self._resets = _reset_peak()

    def stage(self, name: str) -> dict[str, float]:
        now, peak = _rss_mb()
        last = list(self.stages.values())[-1]["rss_mb"] if self.stages else now
        self.stages[name] = {"rss_mb": now, "delta_mb": round(now - last, 1), "peak_mb": peak}
        self.process_peak = max(self.process_peak, peak)
        if self._resets:
            _reset_peak()
        return self.stages[name]

    @property
    def peak(self) -> float:
        return max([s["peak_mb"] for s in self.stages.values()] or [0.0])


def _p50_p95(values: list[float]) -> dict:
    v = np.asarray(values, np.float64)
    if not len(v):
        return {"p50": 0.0, "p95": 0.0}
    return {"p50": round(float(np.percentile(v, 50)), 2),
            "p95": round(float(np.percentile(v, 95)), 2)}


#: trays whose per-stage figures (p50 / p95 per tray) ``kiosk bench`` reports
FIGURE_SIZES = (5, 15)


def bench_trays(engine, repeat: int = 7, *, sizes: tuple[int, ...] = (1, 5, 15),
                figure_repeat: int = 20) -> dict:
    """Stage timings and image-to-receipt time for demo trays of 1, 5 and 15 items, each
    picture through :meth:`kiosk.engine.Engine.recognize`: the checkout's own frame pipeline
    (:class:`kiosk.pipeline.FramePipeline`: detect, track, embed, retrieve, decide, barcodes,
    pack text), so these are the till's numbers.

    ``tray_ms`` (median per size), ``items_found``, ``stages_ms`` (medians over all trays) as
    before; ``trays`` for 5 and 15 items: per tray p50 / p95 of detect, track, embed,
    retrieve + decide and the whole picture (``total_ms``), over ``figure_repeat`` runs after
    a warm-up; ``frames``: pictures the pipeline ran (warm-ups included)."""
    from collections import Counter

    from kiosk.demo.catalog import random_tray

    rng = np.random.default_rng(7)
    out: dict = {"tray_ms": {}, "path": "kiosk.pipeline.FramePipeline", "trays": {}}
    stages: dict[str, list[float]] = {"segmentation": [], "embedding_per_crop": [],
                                      "search": [], "decision": [], "pack_text": []}
    frames0 = engine.frames_recognised
    for n in sizes:
        image, truth = random_tray(n, rng)
        results: list = []

        def run():
            results.append(engine.recognize(image))

        runs = max(repeat, figure_repeat) if n in FIGURE_SIZES else repeat
        out["tray_ms"][str(n)] = _median_ms(run, runs)
        results = results[1:]  # (the warm-up)
        last = results[-1]
        found = len(last.items)
        out.setdefault("items_found", {})[str(n)] = found
        timings = [r.timings_ms for r in results]
        for t in timings:
            stages["segmentation"].append(t["detect"])
            stages["embedding_per_crop"].append(t.get("embed", 0.0) / max(found, 1))
            stages["search"].append(t.get("search", 0.0))
            stages["decision"].append(t.get("decide", 0.0))
            stages["pack_text"].append(t.get("text", 0.0))
        if n in FIGURE_SIZES:
            out["trays"][str(n)] = {
                "items": n,
                "items_found": found,
                "fully_right": (not any(i.unknown for i in last.items)
                                and Counter(i.sku for i in last.items) == Counter(truth)),
                "runs": len(timings),
                "detect_ms": _p50_p95([t["detect"] for t in timings]),
                "track_ms": _p50_p95([t.get("match", 0.0) for t in timings]),
                "embed_ms": _p50_p95([t.get("embed", 0.0) for t in timings]),
                "retrieve_decide_ms": _p50_p95([t.get("search", 0.0) + t.get("decide", 0.0)
                                                for t in timings]),
                "barcode_ms": _p50_p95([t.get("barcode", 0.0) for t in timings]),
                "pack_text_ms": _p50_p95([t.get("text", 0.0) for t in timings]),
                "total_ms": _p50_p95([t["total"] for t in timings]),
            }
    out["stages_ms"] = {k: round(statistics.median(v), 3) for k, v in stages.items()}
    out["frames"] = engine.frames_recognised - frames0
    return out


def bench_code_check(engine, n_items: int = 5, repeat: int = 3) -> dict:
    """The checkout's deferred barcode check of an item the pictures named
    (:meth:`kiosk.pipeline.FramePipeline.read_code`: the item's cut-out and its box's own
    pixels read), per item of a demo tray: p50 / p95 ms over ``repeat`` rounds.  The till
    reads one item per still frame, after the receipt is shown."""
    from kiosk.demo.catalog import random_tray
    from kiosk.pipeline import FramePipeline

    image, _truth = random_tray(n_items, np.random.default_rng(11))
    pipeline = FramePipeline(engine)
    pipeline.tracker.commit(pipeline.run(image).obs)
    tracks = [t for t in pipeline.tracker.tracks.values() if t.crop is not None]
    times = []
    for _ in range(repeat):
        for t in tracks:
            t.code_crop = t.crop
            t0 = time.perf_counter()
            pipeline.read_code(t, image)  # (what it read is not applied)
            times.append((time.perf_counter() - t0) * 1e3)
    return {"items": len(tracks), **_p50_p95(times)}


def _synthetic_gallery(n_products: int, views: int, dim: int, seed: int = 0,
                       chunk: int = 2000):
    """(first product, its views' unit vectors) for ``chunk`` products at a time: clustered
    views of random product centres, made as needed (never the whole gallery at once)."""
    rng = np.random.default_rng(seed)
    for start in range(0, n_products, chunk):
        n = min(chunk, n_products - start)
        centres = rng.standard_normal((n, dim), dtype=np.float32)
        vecs = np.repeat(centres, views, axis=0)
        vecs += 0.35 * rng.standard_normal(vecs.shape, dtype=np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        yield start, vecs


def _fill_catalogue(db: Path, n_products: int, views: int, dim: int, model: str,
                    picked: np.ndarray) -> None:
    """The synthetic catalogue (run in a child process); the views ``picked`` for queries are
    saved beside it (``<db>.queries.npy``)."""
    from kiosk.catalog import Catalog
    from kiosk.embed import Embeddings

    queries = np.empty((len(picked), dim), np.float32)
    cat = Catalog(db)
    with cat.transaction():
        for first, vecs in _synthetic_gallery(n_products, views, dim):
            lo = first * views
            here = picked[(picked >= lo) & (picked < lo + len(vecs))]
            queries[np.searchsorted(picked, here)] = vecs[here - lo]
            for p in range(first, first + len(vecs) // views):
                sku = f"B{p:06d}"
                cat.add_product(sku, f"bench product {p}", price=100 + p % 900)
                rows = vecs[(p - first) * views:(p - first + 1) * views]
                cat.add_gallery_images(sku, [f"/bench/{sku}/{v}.jpg" for v in range(views)],
                                       Embeddings(rows, model))
    cat.close()
    np.save(db.with_suffix(".queries.npy"), queries)


def bench_gallery(embedder, n_vectors: int = 100_000, views: int = 5,
                  progress: Callable[[str], None] = lambda m: None,
                  memory: MemoryLog | None = None) -> dict:
    """Catalogue fill, index build, cold start, query, add and delete times on a synthetic
    gallery of ``n_vectors``, and the resident memory of each stage (``memory``: the run's
    log so far, e.g. with the models' stages; a new one when None)."""
    import gc

    from kiosk.catalog import Catalog
    from kiosk.detect import make_detector
    from kiosk.engine import Engine

    memory = memory or MemoryLog()
    memory.stage("before_gallery")
    n_products = n_vectors // views
    dim, model = embedder.dim, embedder.model_id
    out: dict = {"n_vectors": n_products * views, "dim": dim}
    rng = np.random.default_rng(1)
    picked = np.sort(rng.choice(n_products * views, min(200, n_products * views),
                                replace=False))  # the views the queries are near
    with tempfile.TemporaryDirectory(prefix="kiosk-bench-") as tmp:
        db = Path(tmp) / "catalog.db"
        progress(f"building a {n_products * views}-vector catalogue ...")
        # filled by another process, as a kiosk opens a catalogue made elsewhere: what 100k
        # rows written from Python leave behind is not the kiosk's memory
        import multiprocessing

        t0 = time.perf_counter()
        child = multiprocessing.get_context("spawn").Process(
            target=_fill_catalogue, args=(db, n_products, views, dim, model, picked))
        child.start()
        child.join()
        if child.exitcode != 0:
            raise RuntimeError(f"filling the bench catalogue failed ({child.exitcode})")
        out["catalogue_fill_s"] = round(time.perf_counter() - t0, 2)
        queries = np.load(db.with_suffix(".queries.npy"))
        memory.stage("catalogue_fill")

        progress("building the HNSW index ...")
        detector = make_detector("tray")
        t0 = time.perf_counter()
        engine = Engine(Catalog(db), embedder, detector)
        out["index_build_s"] = round(time.perf_counter() - t0, 2)
        out["index_kind"] = engine.index.kind
        memory.stage("index_build")
        engine.close()
        del engine
        gc.collect()
        memory.stage("closed")

        progress("cold start ...")
        t0 = time.perf_counter()
        engine = Engine(Catalog(db), embedder, detector)
        out["cold_start_ms"] = round((time.perf_counter() - t0) * 1e3, 1)
        out["cold_start_index"] = engine.index_action
        memory.stage("cold_start")

        # another view of the product: about as far from the stored one as two stored views
        # are from each other (cosine ~0.9; the noise used to outweigh the view, cosine ~0.4)
        queries += (0.35 / np.sqrt(dim)) * rng.standard_normal((len(queries), dim),
                                                               dtype=np.float32)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        truth = [f"B{i // views:06d}" for i in picked.tolist()]
        qi = iter(range(10**9))

        def query():
            i = next(qi) % len(queries)
            nb = engine.index.search(queries[i:i + 1], k=engine.decider.search_k)
            engine.decider.decide(nb, engine._sku_of)

        out["query_ms"] = _median_ms(query, 200, warmup=20)
        # the same in CPU time of this thread (faiss searches on it): what a search costs
        # when other processes share the cores, as on a busy build machine
        cpu = []
        for _ in range(200):
            t0 = time.thread_time()
            query()
            cpu.append((time.thread_time() - t0) * 1e3)
        out["query_cpu_ms"] = round(statistics.median(cpu), 2)
        # the product each query was made from, as the index's nearest view and as decided
        nb = engine.index.search(queries, k=engine.decider.search_k)
        top = [engine._sku_of.get(int(i)) for i in nb.ids[:, 0]]
        out["recall_at_1"] = round(float(np.mean([a == b for a, b in zip(top, truth)])), 4)
        called = [d.sku for d in engine.decider.decide(nb, engine._sku_of)]
        out["accuracy"] = round(float(np.mean([a == b for a, b in zip(called, truth)])), 4)
        memory.stage("queries")

        crops = [np.full((160, 120, 3), 40 * v, np.uint8) for v in range(views)]
        counter = iter(range(10**6))

        def add():
            k = next(counter)
            sku = f"NEW{k:04d}"
            engine.catalog.add_product(sku, f"new product {k}", price=500)
            engine.add_images(sku, crops, [f"/bench/new/{k}/{v}.jpg" for v in range(views)])

        out["add_product_ms"] = _median_ms(add, 5)
        dels = iter(range(0, n_products, min(97, max(1, n_products // 12))))

        def delete():
            engine.remove_product(f"B{next(dels):06d}")

        out["delete_product_ms"] = _median_ms(delete, 10)
        memory.stage("add_delete")
        index_mb = engine.index.memory_bytes() / 2**20
        engine.catalog.close()
    stages = memory.stages
    # what each part holds (MB): the models are measured by run_bench's stages when present
    out["memory_mb"] = {
        "stages": stages,
        "index": round(index_mb, 1),
        "engine_open": stages["cold_start"]["delta_mb"],
        "index_build_transient": round(
            stages["index_build"]["peak_mb"] - stages["index_build"]["rss_mb"], 1),
        "gallery_peak": memory.peak,
    }
    if "python" in stages:  # run_bench's stages: the process and the models
        out["memory_mb"]["process"] = stages["python"]["rss_mb"]
    for name in ("embedder", "text_reader"):
        if name in stages:
            out["memory_mb"][name] = stages[name]["delta_mb"]
    out["peak_rss_mb"] = max(memory.process_peak, memory.peak)
    return out


def run_bench(quick: bool = False, progress: Callable[[str], None] = lambda m: None) -> dict:
    from kiosk.demo.catalog import build_demo_catalog
    from kiosk.embed import load_embedder
    from kiosk.engine import Engine

    memory = MemoryLog()
    memory.stage("python")  # the interpreter with numpy, faiss and the kiosk imported
    t0 = time.perf_counter()
    embedder = load_embedder()
    model_load_ms = round((time.perf_counter() - t0) * 1e3, 1)
    memory.stage("embedder")
    result: dict = {"model_id": embedder.model_id, "model_load_ms": model_load_ms}
    from kiosk.text import make_text_reader

    reader = make_text_reader()
    if reader is not None:  # (loads its models on the first read)
        reader.read(np.zeros((64, 64, 3), np.uint8))
        memory.stage("text_reader")
    with tempfile.TemporaryDirectory(prefix="kiosk-bench-demo-") as tmp:
        progress("demo catalogue ...")
        db = Path(tmp) / "demo.db"
        build_demo_catalog(db, embedder=embedder, text_reader=reader)
        engine = Engine.open(db, embedder=embedder)
        from kiosk.runtime.pauses import after_start

        after_start()  # as the kiosk once started (kiosk.runtime.pauses)
        progress("tray timings ...")
        result.update(bench_trays(engine))
        result["barcode_check_ms"] = bench_code_check(engine)
        engine.close()
        if reader is not None:
            # the same trays with pack text on, as the kiosk runs: items whose close
            # candidates have enrolled words are read (pack_text: the whole tray's reading)
            progress("tray timings with pack text ...")
            engine = Engine.open(db, embedder=embedder, text_reader=reader)
            result["with_pack_text"] = bench_trays(engine)
            engine.close()
            from kiosk.demo.catalog import DEMO_LIST
            from kiosk.catalog.gallery_io import parse_gallery_list
            from kiosk.images import load_image

            crop = load_image(next(iter(parse_gallery_list(DEMO_LIST))).path)
            result["pack_text_read_ms"] = _median_ms(lambda: reader.read(crop), 7)
            memory.stage("trays_read")
            # the synthetic gallery has no pack words: a kiosk with that catalogue never loads
            # the reader (kiosk.engine loads it only for a catalogue with words)
            reader.unload()
            memory.stage("text_reader_unloaded")
    n = 10_000 if quick else 100_000
    result["gallery_100k" if not quick else "gallery_10k"] = bench_gallery(
        embedder, n, progress=progress, memory=memory)
    return result
