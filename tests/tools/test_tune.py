"""Partial fine-tuning (``kiosk train --tune-blocks N``): the last Lite0 blocks trained on their
cached input activations, exported with the whole trunk.  A handful of demo images, 1 epoch."""
from __future__ import annotations

import numpy as np
import pytest

from kiosk.catalog.gallery_io import parse_gallery_list
from kiosk.demo.catalog import DEMO_LIST
from kiosk.embed import load_embedder
from kiosk.embed.model import (
    TrainConfig, build_trunk, ensure_trained_model, export_model, load_neck, load_trunk_state,
)
from kiosk.images import load_image
from kiosk.tools.train import N_BLOCKS, ActivationCache, run_training, train_tuned

CFG = TrainConfig(epochs=1, views=2, dim=32, batch=8, tune_blocks=1, tune_lr=1e-3)
TUNED = (f"net.blocks.{N_BLOCKS - 1}.", "net.head.")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tune")
    entries = parse_gallery_list(DEMO_LIST)
    labels = sorted({e.label for e in entries})[:4]
    train = root / "train.txt"  # 4 products x 3 views
    train.write_text("".join(f"{e.path}\t{e.label}\n" for e in entries
                             if e.label in labels and e.path.stem[-1] in "012"))
    report = run_training([train], root / "model", CFG, save_neck_to=root / "neck.npz",
                          cache_dir=root / "cache")
    return root, train, report


def _fresh_trunk_state():
    return {k: v.numpy() for k, v in build_trunk("lite0").state_dict().items()}


def test_only_the_chosen_blocks_change(tiny):
    root, train, _ = tiny
    entries = parse_gallery_list(train)
    feats = ActivationCache(root / "cache", 1).descriptors([e.path for e in entries],
                                                             CFG.views, CFG.seed)
    assert feats.act.dtype == np.float16 and feats.act.shape[:2] == (12, 2)
    model, _ = train_tuned(feats, [e.label for e in entries], CFG)
    before, after = _fresh_trunk_state(), {k: v.numpy() for k, v
                                           in model.trunk.state_dict().items()}
    changed = {k for k in before if not np.array_equal(before[k], after[k])}
    assert changed and all(k.startswith(TUNED) for k in changed), sorted(changed)[:5]
    assert any(k.startswith(TUNED[0]) and k.endswith("conv.weight") for k in changed)
    assert any(k.startswith(TUNED[1]) for k in changed)
    # BatchNorm of the trunk stays in eval mode: running statistics untouched
    assert not any(k.endswith(("_mean", "_variance")) for k in changed)
    # what is saved and exported is exactly the tuned layers
    assert set(model.trunk_state()) == {k for k in before if k.startswith(TUNED)}


def test_export_runs_under_paddle_inference_as_trained(tiny):
    """The export (checked against the trained network by export_model itself) embeds real
    crops as the training measured them: cached activations through the tuned tail."""
    from kiosk.embed.paddle import PaddleEmbedder
    from kiosk.tools.train import TunedTail

    root, train, report = tiny
    neck, cfg, _ = load_neck(root / "neck.npz")
    assert cfg.tune_blocks == 1
    state = load_trunk_state(root / "neck.npz")
    assert state and all(k.startswith(TUNED) for k in state)
    trunk = build_trunk("lite0")
    trunk.set_state_dict({k: __import__("paddle").to_tensor(v) for k, v in state.items()})
    tail = TunedTail(trunk, N_BLOCKS - 1, neck)
    paths = [e.path for e in parse_gallery_list(train)[:4]]
    want = tail.project(ActivationCache(root / "cache", 1).descriptors(paths)[:, 0])
    emb = PaddleEmbedder(root / "model", precision="fp32")
    got = emb.embed([load_image(p) for p in paths]).vectors
    assert emb.model_id == report["model_id"]
    assert (got * want).sum(axis=1).min() > 0.999


def test_model_id_differs_and_the_saved_npz_rebuilds_it(tiny, tmp_path):
    root, train, report = tiny
    assert report["model_id"].endswith("-tune")
    neck, _cfg, threshold = load_neck(root / "neck.npz")
    plain_id = export_model(neck, tmp_path / "neck-only", threshold=threshold, meta={})
    assert plain_id != report["model_id"]  # same neck, stock trunk: another model
    folder = ensure_trained_model(root / "neck.npz", tmp_path)
    rebuilt, original = load_embedder(str(folder)), load_embedder(str(root / "model"))
    crops = [load_image(e.path) for e in parse_gallery_list(train)[:3]]
    assert np.allclose(rebuilt.embed(crops).vectors, original.embed(crops).vectors, atol=1e-5)
