"""``kiosk bench``'s tray figures come from the checkout's own frame pipeline."""
from __future__ import annotations

import numpy as np

from kiosk.camera import Frame
from kiosk.checkout.session import CheckoutSession
from kiosk.demo.catalog import random_tray
from kiosk.tools.bench import bench_trays


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
