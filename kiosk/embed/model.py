"""The kiosk's recognition model, as it runs: the ImageNet trunk(s), the trained neck, and the exported inference folder built from the shipped neck on first start (training lives in :mod:`kiosk.tools.train`)."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from kiosk.embed.effnet_lite import INPUT_SIZE, build_model, preprocess_config
from kiosk.runtime.paddle import dump_yaml, import_paddle, params_digest

paddle = import_paddle()
nn = paddle.nn
F = paddle.nn.functional

DESCRIPTORS = {"gap": 1280, "gem": 1280, "mid": 192, "low": 112, "mgap": 1280}
# Which descriptors each backbone gives: ``mgap`` is the global average pool of a second
# ImageNet trunk, MobileNetV2 (:mod:`kiosk.embed.mobilenetv2`), cached on its own.
LITE0_DESCRIPTORS = ("gap", "gem", "mid", "low")
MNV2_DESCRIPTORS = ("mgap",)
BACKBONES = {"lite0": LITE0_DESCRIPTORS, "mnv2": MNV2_DESCRIPTORS,
             "lite0+mnv2": LITE0_DESCRIPTORS + MNV2_DESCRIPTORS}
_MID_BLOCK, _LOW_BLOCK = 14, 10  # last block of the 192- and 112-channel stages
GEM_P = 3.0


def _slices(names: Sequence[str], layout: Sequence[str] = tuple(DESCRIPTORS)) -> list[tuple[int, int]]:
    """Column ranges of ``names`` in a cached row holding the descriptors of ``layout``."""
    offsets, start = {}, 0
    for k in layout:
        d = DESCRIPTORS[k]
        offsets[k] = (start, start + d)
        start += d
    return [offsets[n] for n in names]


class Trunk(nn.Layer):
    """Frozen Lite0 returning every cached descriptor, concatenated in DESCRIPTORS order."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        """All descriptors concatenated (what the feature cache stores)."""
        parts = self.parts(x)
        return paddle.concat([parts[name] for name in LITE0_DESCRIPTORS], axis=1)

    def parts(self, x):
        """Each descriptor on its own, by name."""
        n = self.net
        x = n.stem(x)
        low = mid = None
        for i, b in enumerate(n.blocks):
            x = b(x)
            if i == _LOW_BLOCK:
                low = x
            elif i == _MID_BLOCK:
                mid = x
        h = n.head(x)

        def avg(t):  # pooling, not reduce_mean: the latter has no oneDNN kernel here
            return paddle.flatten(F.adaptive_avg_pool2d(t, 1), 1)

        gem = paddle.pow(avg(paddle.pow(paddle.clip(h, min=1e-6), GEM_P)), 1.0 / GEM_P)
        return {"gap": avg(h), "gem": gem, "mid": avg(mid), "low": avg(low)}


class MobileNetV2Trunk(nn.Layer):
    """Frozen ImageNet MobileNetV2: its pooled 1280-d ``mgap``.  Takes the Lite0 input
    ((x - 127) / 128 of 0..255 RGB) and renormalises it to ImageNet mean/std in the graph,
    so one preprocessed crop feeds both trunks."""

    def __init__(self, net):
        super().__init__()
        from kiosk.embed import mobilenetv2 as mnv2

        self.net = net
        mean, std = np.array(mnv2.MEAN, np.float32), np.array(mnv2.STD, np.float32)
        # p = 128 x + 127 (0..255);  y = (p / 255 - mean) / std = a x + b
        a = (128.0 / 255.0) / std
        b = (127.0 / 255.0 - mean) / std
        self.register_buffer("a", paddle.to_tensor(a.reshape(1, 3, 1, 1)))
        self.register_buffer("b", paddle.to_tensor(b.reshape(1, 3, 1, 1)))

    def forward(self, x):
        return self.parts(x)["mgap"]

    def parts(self, x):
        h = self.net.features_(x * self.a + self.b)
        return {"mgap": paddle.flatten(F.adaptive_avg_pool2d(h, 1), 1)}


class MultiTrunk(nn.Layer):
    """Several trunks on the same crop; :meth:`parts` merges their descriptors."""

    def __init__(self, trunks):
        super().__init__()
        self.trunks = nn.LayerList(trunks)

    def parts(self, x):
        out = {}
        for t in self.trunks:
            out.update(t.parts(x))
        return out


def build_trunk(backbone: str = "lite0"):
    """The frozen trunk of ``backbone`` (``lite0``, ``mnv2`` or ``lite0+mnv2``)."""
    if backbone not in BACKBONES:
        raise ValueError(f"unknown backbone {backbone!r} (one of {', '.join(BACKBONES)})")
    trunks = []
    with paddle.utils.unique_name.guard():
        if "lite0" in backbone.split("+"):
            trunks.append(Trunk(build_model()))
        if "mnv2" in backbone.split("+"):
            from kiosk.embed.mobilenetv2 import build_model as build_mnv2

            trunks.append(MobileNetV2Trunk(build_mnv2()))
    t = trunks[0] if len(trunks) == 1 else MultiTrunk(trunks)
    t.eval()
    return t


class Neck(nn.Layer):
    """Chosen descriptors -> (each L2-normalised) -> Linear -> BatchNorm: the trained part.

    :meth:`embed` is what the kiosk uses: the normalised neck output, and with ``blend`` > 0
    the plain ImageNet ``gap`` descriptor (weighted by ``blend``) beside it.  The neck learns
    what separates the trained products; the plain part keeps what a product never trained on
    still needs (on the honest split: unseen-SKU recall@1 0.76 with the neck alone, 0.83
    blended, 0.77 with no training)."""

    def __init__(self, inputs: Sequence[str], dim: int, blend: float = 0.0,
                 plain: Sequence[str] = ("gap",), layout: Sequence[str] = LITE0_DESCRIPTORS):
        super().__init__()
        self.inputs = list(inputs)
        self.layout = list(layout)
        self.parts = _slices(self.inputs, self.layout)
        self.blend = float(blend)
        self.plain = list(plain)
        in_dim = sum(b - a for a, b in self.parts)
        self.fc = nn.Linear(in_dim, dim)
        self.bn = nn.BatchNorm1D(dim)

    def forward(self, desc):
        xs = [F.normalize(desc[:, a:b], axis=1) for a, b in self.parts]
        x = xs[0] if len(xs) == 1 else paddle.concat(xs, axis=1)
        return self.bn(self.fc(x))

    def embed(self, desc):
        """The embedding of cached descriptor rows (laid out as :attr:`layout`)."""
        return self.embed_parts({name: desc[:, a:b] for name, (a, b)
                                 in zip(self.layout, _slices(self.layout, self.layout))})

    def embed_parts(self, parts):
        """The embedding from the descriptors given one by one, by name (the exported model
        passes its trunk's outputs straight in; :meth:`embed` slices cached rows).

        Same result, built so that Paddle 3.3.1's oneDNN passes cannot break it: a ×1.0 scale
        after the normalisation of the plain part was mis-fused in the exported graph (the
        plain half came out ~14x too small, so the kiosk effectively ran the neck alone:
        unseen SKUs 0.76 instead of 0.83 recall@1 on the held-out split), so no scale op is
        emitted for a blend of 1; :func:`_check_export` verifies every export."""
        xs = [F.normalize(parts[name], axis=1) for name in self.inputs]
        x = xs[0] if len(xs) == 1 else paddle.concat(xs, axis=1)
        e = F.normalize(self.bn(self.fc(x)), axis=1)
        if self.blend > 0:
            gs = []
            for name in self.plain:
                g = F.normalize(parts[name], axis=1)
                gs.append(self.blend * g if self.blend != 1.0 else g)
            e = paddle.concat(gs + [e], axis=1)
        return F.normalize(e, axis=1)

    @property
    def out_dim(self) -> int:
        plain = sum(DESCRIPTORS[n] for n in self.plain) if self.blend > 0 else 0
        return int(self.fc.weight.shape[1]) + plain


class Exported(nn.Layer):
    def __init__(self, trunk: Trunk, neck: Neck):
        super().__init__()
        self.trunk, self.neck = trunk, neck

    def forward(self, x):
        return self.neck.embed_parts(self.trunk.parts(x))


# --------------------------------------------------------------------------------- training
@dataclass
class TrainConfig:
    inputs: tuple[str, ...] = ("gap", "gem", "mid", "low")
    dim: int = 512
    blend: float = 1.0
    margin: float = 0.3
    scale: float = 30.0
    epochs: int = 30
    batch: int = 128
    lr: float = 2e-3
    weight_decay: float = 1e-4
    views: int = 8
    seed: int = 0
    backbone: str = "lite0"
    plain: tuple[str, ...] = ("gap",)
    # Partial fine-tuning: the last ``tune_blocks`` MBConv blocks of Lite0 (and its head conv)
    # trained too, at ``tune_lr``, on their cached input activations (0: the neck alone).
    tune_blocks: int = 0
    tune_lr: float = 1e-4


# ----------------------------------------------------------------------------------- export
MODEL_NAME = "kiosk-lite0-arc"


# The exported graph's version.  2: no ×1.0 scale after the plain part's normalisation (in
# version 1 Paddle 3.3.1's oneDNN passes mis-fused it, shrinking the plain half 14x).  Part of
# the model id and the model folder's name, so a catalogue embedded by an older export is
# re-embedded.
EXPORT_VERSION = 2


def export_model(neck: Neck, out_dir: Path, *, threshold: float, meta: dict,
                 trunk_state: dict | None = None) -> str:
    """Save backbone + neck as a Paddle inference model folder; returns its model id.
    ``trunk_state``: fine-tuned weights of some of the trunk's layers (keyed as the trunk's
    state dict), put in before exporting; the model id then says ``-tune``."""
    out_dir = Path(out_dir)
    if out_dir.exists():
        raise FileExistsError(f"{out_dir} already exists")
    tmp = Path(tempfile.mkdtemp(prefix=out_dir.name + ".", dir=out_dir.parent))
    try:
        trunk = build_trunk(meta.get("backbone", "lite0") if isinstance(meta, dict) else "lite0")
        if trunk_state:
            _load_trunk_state(trunk, trunk_state)
        net = Exported(trunk, neck)
        net.eval()
        spec = [paddle.static.InputSpec([None, 3, INPUT_SIZE, INPUT_SIZE], "float32", "x")]
        with paddle.utils.unique_name.guard():
            paddle.jit.save(net, str(tmp / "inference"), input_spec=spec)
        _check_export(net, tmp)
        model_id = f"{MODEL_NAME}{neck.out_dim}@{params_digest(tmp)}-x{EXPORT_VERSION}"
        if trunk_state:
            model_id += "-tune"
        cfg = {
            "Global": {"model_name": MODEL_NAME, "model_id": model_id,
                       "embedding_size": neck.out_dim},
            "PreProcess": {"channel_order": "RGB", "transform_ops": preprocess_config()},
            "IndexProcess": {"score_thres": round(float(threshold), 4)},
        }
        (tmp / "inference.yml").write_text(dump_yaml(cfg), encoding="utf-8")
        (tmp / "train.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False),
                                        encoding="utf-8")
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return model_id


def _check_export(net: nn.Layer, folder: Path, tol: float = 1e-3) -> None:
    """The exported model, run the way the kiosk runs it (Paddle Inference, oneDNN), must give
    what the trained network gives.  Paddle 3.3.1's oneDNN passes mis-fused a scale after a
    normalisation once (the plain descriptor came out 14x too small, silently): never again."""
    from kiosk.runtime.paddle import PaddleModel

    x = np.random.default_rng(0).uniform(-1, 1, (2, 3, INPUT_SIZE, INPUT_SIZE)).astype("float32")
    with paddle.no_grad():
        want = net(paddle.to_tensor(x)).numpy()
    model = PaddleModel(folder, precision="fp32")
    got = model.run({model.input_names[0]: x})[0]
    err = float(np.abs(got - want).max())
    if err > tol:
        raise RuntimeError(f"the exported model differs from the trained network by {err:.3g} "
                           "under Paddle Inference + oneDNN; not exporting it")


def _load_trunk_state(trunk, state: dict) -> None:
    """Put fine-tuned weights (a part of ``trunk``'s state dict) into ``trunk``."""
    own = trunk.state_dict()
    missing = sorted(set(state) - set(own))
    if missing:
        raise KeyError(f"not in the trunk: {', '.join(missing[:3])}")
    for k, v in state.items():
        if tuple(own[k].shape) != tuple(np.shape(v)):
            raise ValueError(f"{k}: shape {np.shape(v)}, the trunk has {own[k].shape}")
    own.update({k: paddle.to_tensor(np.asarray(v)) for k, v in state.items()})
    trunk.set_state_dict(own)


_TRUNK_PREFIX = "trunk:"


def save_neck(neck: Neck, path: Path, cfg: TrainConfig, threshold: float,
              trunk_state: dict | None = None) -> None:
    """The trained part alone (small, committed): weights + config as one .npz (with
    ``trunk_state``, the fine-tuned trunk layers too, under ``trunk:`` keys)."""
    arrays = {k: v.numpy() for k, v in neck.state_dict().items()}
    arrays.update({_TRUNK_PREFIX + k: np.asarray(v) for k, v in (trunk_state or {}).items()})
    arrays["__config__"] = np.frombuffer(json.dumps(
        {"train": asdict(cfg), "threshold": threshold}).encode(), np.uint8)
    tmp = Path(str(path) + ".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)


def load_neck(path: Path) -> tuple[Neck, TrainConfig, float]:
    data = np.load(path)
    meta = json.loads(bytes(data["__config__"]).decode())
    cfg = TrainConfig(**{**meta["train"], "inputs": tuple(meta["train"]["inputs"]),
                         "plain": tuple(meta["train"].get("plain", ("gap",)))})
    with paddle.utils.unique_name.guard():
        neck = Neck(cfg.inputs, cfg.dim, cfg.blend, cfg.plain, BACKBONES[cfg.backbone])
    neck.set_state_dict({k: paddle.to_tensor(data[k]) for k in data.files
                         if k != "__config__" and not k.startswith(_TRUNK_PREFIX)})
    neck.eval()
    return neck, cfg, float(meta["threshold"])


def load_trunk_state(path: Path) -> dict[str, np.ndarray]:
    """The fine-tuned trunk layers saved with a neck (empty for a neck trained alone)."""
    data = np.load(path)
    return {k[len(_TRUNK_PREFIX):]: data[k] for k in data.files if k.startswith(_TRUNK_PREFIX)}


# ------------------------------------------------------------------------- the shipped model
def shipped_neck() -> Path:
    """The trained neck the kiosk ships (reproduced by the command in the README)."""
    from kiosk.paths import resources_dir

    return resources_dir() / "models" / "kiosk-lite0-arc.npz"


def ensure_trained_model(neck_file: Path, models_root: Path | None = None) -> Path:
    """The exported model for ``neck_file`` (backbone + neck), built once into the models
    folder under a name derived from the neck file's content."""
    from kiosk.paths import models_dir

    neck_file = Path(neck_file)
    digest = hashlib.sha256(neck_file.read_bytes()).hexdigest()[:12]
    folder = Path(models_root or models_dir()) / f"{MODEL_NAME}-{digest}-x{EXPORT_VERSION}"
    if (folder / "inference.yml").is_file():
        return folder
    neck, cfg, threshold = load_neck(neck_file)
    try:
        export_model(neck, folder, threshold=threshold,
                     meta={"neck": neck_file.name, "config": asdict(cfg),
                           "backbone": cfg.backbone},
                     trunk_state=load_trunk_state(neck_file) or None)
    except FileExistsError:  # another process built it meanwhile
        pass
    return folder
