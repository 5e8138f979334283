"""``kiosk bench`` on small inputs: the gallery part (real SQLite, faiss and the default model;
its memory report: resident memory at each stage and what the index holds) and the tray
figures, which come from the checkout's own frame pipeline."""
from __future__ import annotations

import numpy as np

from kiosk.camera import Frame
from kiosk.checkout.session import CheckoutSession
from kiosk.demo.catalog import random_tray
from kiosk.tools.bench import (
    MemoryLog,
    _synthetic_gallery,
    bench_code_check,
    bench_gallery,
    bench_trays,
)


def test_synthetic_gallery_comes_in_chunks_of_unit_vectors():
    parts = list(_synthetic_gallery(25, 5, 16, chunk=10))
    assert [first for first, _ in parts] == [0, 10, 20]
    assert [len(v) for _, v in parts] == [50, 50, 25]
    for _, v in parts:
        assert v.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)


def test_gallery_bench_reports_memory_by_stage(embedder):
    memory = MemoryLog()
    memory.stage("python")
    out = bench_gallery(embedder, 1000, memory=memory)
    assert out["n_vectors"] == 1000 and out["index_kind"] == "fp16"
    assert out["cold_start_index"] == "loaded"
    assert out["recall_at_1"] >= 0.9 and out["query_ms"] > 0 and out["query_cpu_ms"] >= 0
    mem = out["memory_mb"]
    stages = mem["stages"]
    for name in ("before_gallery", "catalogue_fill", "index_build", "closed", "cold_start",
                 "queries", "add_delete"):
        assert stages[name]["rss_mb"] > 0 and stages[name]["peak_mb"] >= stages[name]["rss_mb"]
    # 1000 float16 vectors of the model's size, the graph and the ids
    assert 1000 * embedder.dim * 2 / 2**20 <= mem["index"] < 1000 * embedder.dim * 4 / 2**20
    assert mem["process"] == stages["python"]["rss_mb"]
    assert out["peak_rss_mb"] >= mem["gallery_peak"] >= stages["cold_start"]["rss_mb"]


def test_bench_tray_figures_come_from_the_frame_pipeline(demo_engine):
    before = demo_engine.frames_recognised
    out = bench_trays(demo_engine, repeat=2, sizes=(5, 15), figure_repeat=3)
    assert out["path"] == "kiosk.pipeline.FramePipeline"
    # every timed picture (and each warm-up) was one frame of the pipeline
    assert out["frames"] == demo_engine.frames_recognised - before == 2 * (1 + 3)
    assert set(out["tray_ms"]) == set(out["items_found"]) == {"5", "15"}
    assert set(out["stages_ms"]) == {"segmentation", "embedding_per_crop", "search",
                                     "decision", "pack_text"}
    for n in ("5", "15"):
        f = out["trays"][n]
        assert f["runs"] == 3 and f["items"] == int(n)
        for stage in ("detect_ms", "track_ms", "embed_ms", "retrieve_decide_ms", "total_ms"):
            assert 0 <= f[stage]["p50"] <= f[stage]["p95"], (n, stage, f[stage])
        assert f["total_ms"]["p50"] >= f["detect_ms"]["p50"] + f["embed_ms"]["p50"]
        assert f["embed_ms"]["p50"] > 0

    # the same trays through the checkout: the items bench counted are the till's
    rng = np.random.default_rng(7)
    for n in (5, 15):
        image, truth = random_tray(n, rng)
        session = CheckoutSession(demo_engine, settle_ms=0)
        for i in range(3):
            session.process(Frame(image, i, 10.0 + 0.1 * i))
        items = session.state.items
        assert len(items) == out["items_found"][str(n)] == out["trays"][str(n)]["items_found"]
        right = (not any(i.unknown for i in items)
                 and sorted(i.sku for i in items) == sorted(truth))
        assert right == out["trays"][str(n)]["fully_right"]


def test_bench_times_the_checkouts_barcode_check_of_named_items(demo_engine):
    out = bench_code_check(demo_engine, n_items=5, repeat=2)
    assert out["items"] == 5
    assert 0 < out["p50"] <= out["p95"]
