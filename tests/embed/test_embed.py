"""Embedding stage: torch-free checkpoint reader, EfficientNet-Lite0 conversion, Paddle embedders."""
from __future__ import annotations

import io
import os
import pickle
import struct
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from kiosk.embed import Embedder, Embeddings, load_embedder
from kiosk.embed import effnet_lite as E
from kiosk.runtime.paddle import load_yaml, params_digest

paddle = E.paddle


# --------------------------------------------------------------------------- test images


def _scene(seed: int, size=(240, 320)) -> np.ndarray:
    """A natural-ish BGR picture: smooth background, a few soft coloured blobs and a texture."""
    rng = np.random.default_rng(seed)
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.zeros((h, w, 3), np.float32)
    base = rng.uniform(40, 200, 3)
    grad = rng.uniform(-0.3, 0.3, 3)
    img[:] = base + grad * (xx[..., None] - w / 2)
    for _ in range(4):
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        r = rng.uniform(20, 80)
        colour = rng.uniform(0, 255, 3)
        m = np.exp(-(((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r)))[..., None]
        img = img * (1 - m) + colour * m
    f = rng.uniform(0.05, 0.3)
    img += 20 * np.sin(f * xx + rng.uniform(0, 6))[..., None] * np.cos(f * yy)[..., None]
    img = cv2.GaussianBlur(img, (0, 0), 1.0)
    return np.clip(img, 0, 255).astype(np.uint8)


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b))


# --------------------------------------------------------------------------- checkpoint reader


def test_checkpoint_keys_and_shapes():
    sd = E.read_torch_checkpoint(E.checkpoint_path())
    assert len(sd) == 296
    assert sd["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert sd["_conv_head.weight"].shape == (1280, 320, 1, 1)
    assert sd["_fc.weight"].shape == (1000, 1280) and sd["_fc.bias"].shape == (1000,)
    assert sd["_blocks.15._project_conv.weight"].shape == (320, 1152, 1, 1)
    assert sd["_bn0.num_batches_tracked"].dtype == np.int64
    assert all(v.dtype == np.float32 for k, v in sd.items() if not k.endswith("num_batches_tracked"))
    assert all(np.isfinite(v).all() for v in sd.values())
    # every key maps onto the paddle network with the right shape, nothing left over
    net = E.EfficientNetLite0()
    shapes = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    converted = E.convert_state_dict(sd, shapes)
    assert set(converted) == set(shapes)
    # the stem weights are stored TF-style (non-contiguous strides); the BN variances positive
    assert (sd["_bn1.running_var"] > 0).all()


def test_convert_rejects_mismatch():
    sd = E.read_torch_checkpoint(E.checkpoint_path())
    shapes = {k: tuple(v.shape) for k, v in E.EfficientNetLite0().state_dict().items()}
    extra = dict(sd, **{"_blocks.16._bn0.weight": np.zeros(3, np.float32)})
    with pytest.raises(ValueError, match="unexpected keys.*_blocks.16"):
        E.convert_state_dict(extra, shapes)
    bad = dict(sd, **{"_conv_head.weight": np.zeros((1280, 321, 1, 1), np.float32)})
    with pytest.raises(ValueError, match="shape mismatch for _conv_head.weight"):
        E.convert_state_dict(bad, shapes)


def _b(s: str) -> bytes:
    raw = s.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def _i(v: int) -> bytes:
    return b"J" + struct.pack("<i", v)


def _tensor_pickle(key: str, numel: int, offset: int, size, stride) -> bytes:
    """Protocol-2 pickle of {'w': tensor} exactly as torch writes it (built by hand, no torch)."""
    tup = lambda xs: b"(" + b"".join(_i(x) for x in xs) + b"t"  # noqa: E731
    return (
        b"\x80\x02ccollections\nOrderedDict\n)R(" + _b("w")
        + b"ctorch._utils\n_rebuild_tensor_v2\n("
        + b"(" + _b("storage") + b"ctorch\nFloatStorage\n" + _b(key) + _b("cpu") + _i(numel) + b"tQ"
        + _i(offset) + tup(size) + tup(stride) + b"\x89ccollections\nOrderedDict\n)RtR"
        + b"u."
    )


def test_zip_checkpoint_respects_offset_and_stride(tmp_path):
    data = np.arange(10, dtype=np.float32)
    p = tmp_path / "t.pth"
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr("archive/data.pkl", _tensor_pickle("0", 10, 1, (2, 3), (1, 2)))
        zf.writestr("archive/data/0", data.tobytes())
    w = E.read_torch_checkpoint(p)["w"]
    np.testing.assert_array_equal(w, [[1, 3, 5], [2, 4, 6]])  # element [i, j] = 1 + i + 2j


def test_legacy_checkpoint_format(tmp_path):
    data = np.arange(6, dtype=np.float32)
    p = tmp_path / "legacy.pth"
    with open(p, "wb") as f:
        pickle.dump(E._LEGACY_MAGIC, f, protocol=2)
        pickle.dump(1001, f, protocol=2)
        pickle.dump({"protocol_version": 1001, "little_endian": True}, f, protocol=2)
        f.write(_tensor_pickle("77", 6, 0, (3, 2), (2, 1)))
        pickle.dump(["77"], f, protocol=2)
        f.write(struct.pack("<q", 6) + data.tobytes())
    np.testing.assert_array_equal(E.read_torch_checkpoint(p)["w"], data.reshape(3, 2))


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_checkpoint_reader_refuses_other_globals(tmp_path, fmt):
    payload = pickle.dumps({"w": _Evil()}, protocol=2)
    p = tmp_path / "evil.pth"
    if fmt == "zip":
        with zipfile.ZipFile(p, "w") as zf:
            zf.writestr("archive/data.pkl", payload)
    else:
        buf = io.BytesIO()
        pickle.dump(E._LEGACY_MAGIC, buf, protocol=2)
        pickle.dump(1001, buf, protocol=2)
        pickle.dump({"little_endian": True}, buf, protocol=2)
        p.write_bytes(buf.getvalue() + payload)
    with pytest.raises(E.UnsafeCheckpointError, match=r"(posix|os)\.system.*does not allow"):
        E.read_torch_checkpoint(p)


# --------------------------------------------------------------------------- converted network


def test_classifier_is_sensible():
    """The ImageNet head is there and gives a confident, non-degenerate softmax."""
    net = E.build_model()
    img = _scene(3)
    x = _lite0_input(img)
    with paddle.no_grad():
        logits = net(paddle.to_tensor(x)).numpy()[0]
    assert logits.shape == (1000,) and np.isfinite(logits).all()
    p = np.exp(logits - logits.max())
    p /= p.sum()
    entropy = float(-(p * np.log(p + 1e-12)).sum())
    assert p.max() > 0.02 and entropy < 0.9 * np.log(1000)
    assert logits.std() > 0.5


@pytest.mark.shared
def test_classifier_recognises_fruit(dev_data):
    """Real photos: bananas and lemons from the dev set land on ImageNet 'banana' / 'lemon'."""
    net = E.build_model()
    rows = [ln.rstrip("\n").split("\t") for ln in (dev_data / "query_list.txt").read_text().splitlines()]
    want = {"Banana": 954, "Lemon": 951}
    picked = {k: [p for p, lab in rows if lab == k][:6] for k in want}
    xs, ys = [], []
    for lab, paths in picked.items():
        for p in paths:
            xs.append(_lite0_input(cv2.imread(str(dev_data / p)))[0])
            ys.append(want[lab])
    with paddle.no_grad():
        logits = net(paddle.to_tensor(np.stack(xs))).numpy()
    top5 = np.argsort(-logits, axis=1)[:, :5]
    hits = np.mean([y in t for y, t in zip(ys, top5)])
    assert hits >= 0.8, (hits, top5)


def _lite0_input(img_bgr: np.ndarray) -> np.ndarray:
    """Default preprocessing, written out by hand: short side 256, centre 224, RGB, (x-127)/128."""
    h, w = img_bgr.shape[:2]
    s = 256 / min(h, w)
    img = cv2.resize(img_bgr, (int(round(w * s)), int(round(h * s))), interpolation=cv2.INTER_LINEAR)
    h, w = img.shape[:2]
    y, x = (h - 224) // 2, (w - 224) // 2
    img = img[y : y + 224, x : x + 224, ::-1].astype(np.float32)
    return ((img - 127.0) / 128.0).transpose(2, 0, 1)[None].astype(np.float32)


@pytest.fixture(scope="module")
def embedder(imagenet_embedder):
    """This module tests the converted Lite0 model itself (the trained neck: test_train.py)."""
    return imagenet_embedder


def test_dygraph_matches_inference(embedder):
    # the exactness of the conversion is checked in fp32 (bf16, used where the CPU has it, is
    # checked against fp32 in test_bf16_matches_fp32)
    from kiosk.embed.paddle import PaddleEmbedder

    embedder = PaddleEmbedder(embedder.model_dir, precision="fp32")
    imgs = [_scene(i, (200 + 13 * i, 260)) for i in range(3)]
    x = np.concatenate([_lite0_input(i) for i in imgs])
    emb_net = E.build_embedding_model()
    with paddle.no_grad():
        ref = emb_net(paddle.to_tensor(x)).numpy()
    out = embedder.model.run({embedder.model.input_names[0]: x})[0]
    assert out.shape == (3, 1280)
    assert np.abs(out - ref).max() < 1e-4
    # and the embedder's own preprocessing equals the hand-written one
    got = embedder.embed(imgs).vectors
    assert np.abs(got - ref).max() < 1e-3


# --------------------------------------------------------------------------- default embedder


def test_default_embedder_contract(embedder):
    assert isinstance(embedder, Embedder)
    assert embedder.dim == 1280
    assert embedder.model_id.startswith("effnet-lite0-imagenet@") and len(embedder.model_id.split("@")[1]) == 12
    crops = [_scene(i, (100 + 40 * i, 180)) for i in range(5)]
    e = embedder.embed(crops)
    assert isinstance(e, Embeddings) and e.vectors.shape == (5, 1280) and e.vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e.vectors, axis=1), 1.0, atol=1e-5)
    again = embedder.embed(crops)
    np.testing.assert_allclose(again.vectors, e.vectors, atol=1e-6)
    assert again.model_id == e.model_id
    # batching does not change the result
    single = np.concatenate([embedder.embed([c]).vectors for c in crops])
    np.testing.assert_allclose(single, e.vectors, atol=1e-5)
    gram = e.vectors @ e.vectors.T
    assert (gram[~np.eye(5, dtype=bool)] < 0.999).all()
    assert len(embedder.embed([])) == 0


def test_model_id_tracks_params(embedder):
    d = E.ensure_converted()
    assert E.read_model_id(d) == embedder.model_id == f"effnet-lite0-imagenet@{params_digest(d)}"
    assert load_embedder("imagenet").model_id == embedder.model_id
    assert load_embedder(str(d)).model_id == embedder.model_id


def test_similar_images_are_closer(embedder):
    a = _scene(10)
    shifted = np.roll(a, (6, 9), axis=(0, 1))
    brighter = np.clip(a.astype(np.int16) + 20, 0, 255).astype(np.uint8)
    other = _scene(11)
    v = embedder.embed([a, shifted, brighter, other]).vectors
    assert _cos(v[0], v[1]) > _cos(v[0], v[3])
    assert _cos(v[0], v[2]) > _cos(v[0], v[3])


def test_grayscale_and_bgra_inputs(embedder):
    bgr = _scene(5)
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    bgra = cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA)
    v = embedder.embed([bgr, gray, gray[:, :, None], bgra]).vectors
    assert v.shape == (4, 1280)
    np.testing.assert_allclose(v[3], v[0], atol=1e-5)  # alpha channel ignored
    np.testing.assert_allclose(v[2], v[1], atol=1e-5)
    gray3 = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    np.testing.assert_allclose(embedder.embed([gray3]).vectors[0], v[1], atol=1e-5)


@pytest.mark.parametrize("shape", [(0, 10, 3), (10, 0, 3), (0, 0), (5, 5, 2)])
def test_bad_crop_raises(embedder, shape):
    with pytest.raises(ValueError):
        embedder.embed([_scene(1), np.zeros(shape, np.uint8)])


def test_tiny_crop_is_fine(embedder):
    v = embedder.embed([np.full((3, 7, 3), 128, np.uint8)]).vectors
    assert v.shape == (1, 1280) and np.isfinite(v).all()


def test_load_embedder_rejects_unknown_spec(tmp_path):
    with pytest.raises(ValueError, match="unknown embedder"):
        load_embedder(str(tmp_path / "nope"))


def test_ensure_converted_reuses_finished_export(embedder, tmp_path, monkeypatch):
    d = E.ensure_converted()
    mtime = (d / "inference.pdiparams").stat().st_mtime_ns
    assert E.ensure_converted() == d
    assert (d / "inference.pdiparams").stat().st_mtime_ns == mtime
    cfg = load_yaml(d / "inference.yml")
    ops = [next(iter(op)) for op in cfg["PreProcess"]["transform_ops"]]
    assert ops == ["ResizeImage", "CropImage", "NormalizeImage", "ToCHWImage"]
    # no stray temp folders left next to it
    assert not [p for p in d.parent.iterdir() if p.name.startswith(".effnet-lite0-imagenet-")]


# --------------------------------------------------------------------------- PaddleClas adapter


class _TinyRec(paddle.nn.Layer):
    def __init__(self):
        super().__init__()
        paddle.seed(7)
        self.conv = paddle.nn.Conv2D(3, 6, 3, padding=1)
        self.pool = paddle.nn.AdaptiveAvgPool2D(2)
        self.fc = paddle.nn.Linear(24, 8)

    def forward(self, x):
        return self.fc(paddle.flatten(self.pool(paddle.nn.functional.relu(self.conv(x))), 1))


REC_YML = """\
Global:
  infer_imgs: ./images
{model_id_line}
PreProcess:
  transform_ops:
  - DecodeImage:
      to_rgb: false
      channel_first: false
  - ResizeImage:
      resize_short: 40
  - CropImage:
      size: 32
  - NormalizeImage:
      scale: 1.0/255.0
      mean: [0.2, 0.4, 0.6]
      std: [0.5, 0.25, 0.125]
      order: ''
  - ToCHWImage:
PostProcess: null
"""


def _export_tiny(d: Path, model_id: str | None) -> _TinyRec:
    net = _TinyRec()
    net.eval()
    paddle.jit.save(net, str(d / "inference"),
                    input_spec=[paddle.static.InputSpec([None, 3, 32, 32], "float32", "x")])
    line = f"  model_id: {model_id}" if model_id else ""
    (d / "inference.yml").write_text(REC_YML.format(model_id_line=line))
    return net


def test_paddleclas_style_model(tmp_path):
    d = tmp_path / "tinyrec"
    d.mkdir()
    net = _export_tiny(d, "tiny-rec@v3")
    from kiosk.embed.paddle import PaddleEmbedder

    emb = PaddleEmbedder(d, precision="fp32")  # compared with the dygraph net to 1e-4
    assert load_embedder(str(d)).model_id == "tiny-rec@v3"
    assert emb.model_id == "tiny-rec@v3" and emb.dim == 8
    crops = [_scene(20, (60, 90)), _scene(21, (120, 50))]
    out = emb.embed(crops)
    assert out.vectors.shape == (2, 8)
    np.testing.assert_allclose(np.linalg.norm(out.vectors, axis=1), 1.0, atol=1e-5)
    # the same preprocessing by hand (BGR kept, short side 40, centre crop 32, mean/std) + dygraph
    xs = []
    for c in crops:
        h, w = c.shape[:2]
        s = 40 / min(h, w)
        r = cv2.resize(c, (int(round(w * s)), int(round(h * s))), interpolation=cv2.INTER_LINEAR)
        y, x = (r.shape[0] - 32) // 2, (r.shape[1] - 32) // 2
        r = r[y : y + 32, x : x + 32].astype(np.float32) / 255.0
        r = (r - np.array([0.2, 0.4, 0.6], np.float32)) / np.array([0.5, 0.25, 0.125], np.float32)
        xs.append(r.transpose(2, 0, 1))
    with paddle.no_grad():
        ref = net(paddle.to_tensor(np.stack(xs))).numpy()
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    np.testing.assert_allclose(out.vectors, ref, atol=1e-4)
    # feeding RGB instead would give something else: the channel order really is applied
    flipped = emb.embed([c[:, :, ::-1].copy() for c in crops]).vectors
    assert np.abs(flipped - ref).max() > 1e-3


def test_paddleclas_model_without_model_id(tmp_path):
    d = tmp_path / "recmodel"
    d.mkdir()
    _export_tiny(d, None)
    emb = load_embedder(str(d))
    assert emb.model_id == f"recmodel@{params_digest(d)}"
    assert len(emb.model_id.split("@")[1]) == 12


def test_model_dir_missing_params(tmp_path):
    d = tmp_path / "broken"
    d.mkdir()
    _export_tiny(d, "x@1")
    (d / "inference.pdiparams").unlink()
    with pytest.raises(FileNotFoundError, match="no inference.pdiparams"):
        load_embedder(str(d))
    for f in d.iterdir():
        f.unlink()
    with pytest.raises(FileNotFoundError, match="no exported program"):
        load_embedder(str(d))


def test_model_id_is_reproducible(embedder, tmp_path):
    """A second export in this (busy) process yields the same params file and model id."""
    E.EfficientNetLite0()  # bumps paddle's global parameter-name counters
    assert E.export(tmp_path / "again") == embedder.model_id


# ------------------------------------------------------------------ model in a child process
def test_remote_embedder_matches_the_model_and_survives_a_kill(embedder, tmp_path):
    """The kiosk runs the model in a child process (Paddle holds the GIL while it runs): same
    vectors, same model id and threshold; a killed child is replaced on the next call."""
    import os
    import signal

    from kiosk.embed.remote import RemoteEmbedder

    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 255, (90 + 10 * i, 70, 3), dtype=np.uint8) for i in range(4)]
    with RemoteEmbedder("imagenet" if embedder.model_id.startswith("effnet") else None) as remote:
        assert (remote.model_id, remote.dim) == (embedder.model_id, embedder.dim)
        assert remote.threshold == getattr(embedder, "threshold", None)
        want = embedder.embed(crops).vectors
        got = remote.embed(crops)
        assert got.model_id == embedder.model_id
        np.testing.assert_allclose(got.vectors, want, atol=1e-5)
        assert remote.embed([]).vectors.shape == (0, embedder.dim)
        os.kill(remote.pid, signal.SIGKILL)
        np.testing.assert_allclose(remote.embed(crops[:2]).vectors, want[:2], atol=1e-5)
        assert remote.restarts == 1
        pid = remote.pid
    assert pid is not None


def test_remote_embedder_reports_a_model_that_does_not_load(tmp_path):
    from kiosk.embed.remote import EmbedderProcessError, RemoteEmbedder

    with pytest.raises(EmbedderProcessError, match="could not load the model"):
        RemoteEmbedder(str(tmp_path))  # an empty folder is no model


def test_bf16_matches_fp32(embedder, tmp_path):
    """Where the CPU computes bfloat16 (AVX512-BF16 / AMX) the kiosk runs the model in bf16,
    about twice as fast; its embeddings stay within cosine 0.99 of fp32 (dev recall@1 of the
    ImageNet model: 0.750 fp32, 0.757 bf16).  Elsewhere "auto" is fp32."""
    from kiosk.embed.paddle import PaddleEmbedder
    from kiosk.runtime.paddle import cpu_has_bf16, resolve_precision

    assert resolve_precision("fp32") == "fp32"
    assert resolve_precision("auto") == ("bf16" if cpu_has_bf16() else "fp32")
    with pytest.raises(ValueError, match="precision"):
        resolve_precision("int4")
    imgs = [_scene(i, (200 + 13 * i, 260)) for i in range(4)]
    fp32 = PaddleEmbedder(embedder.model_dir, precision="fp32").embed(imgs).vectors
    if not cpu_has_bf16():  # this CPU has no bfloat16: "auto" must mean fp32 here
        assert PaddleEmbedder(embedder.model_dir).model.precision == "fp32"
        return
    bf16_model = PaddleEmbedder(embedder.model_dir, precision="bf16")
    assert bf16_model.model.precision == "bf16"
    bf16 = bf16_model.embed(imgs).vectors
    assert (fp32 * bf16).sum(axis=1).min() > 0.99

