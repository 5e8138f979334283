"""``kiosk bench``'s gallery part on a small gallery: real SQLite, faiss and the default model;
its memory report (resident memory at each stage and what the index holds)."""
from __future__ import annotations

import numpy as np

from kiosk.tools.bench import MemoryLog, _synthetic_gallery, bench_gallery


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
