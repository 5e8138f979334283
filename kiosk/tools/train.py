"""``kiosk train``: metric learning on top of the frozen EfficientNet-Lite0 backbone.

PP-ShiTu trains its recognition model with a neck (a linear projection to a compact embedding)
and an ArcMargin head.  On 2 CPU cores the backbone stays frozen, so its output is computed
once per image and augmented view and cached; only the neck is trained, which takes seconds
per epoch.  The cached descriptor concatenates several poolings so that the pooling lever can
be chosen without recomputing the backbone:

=========  ====  =============================================
name       dims  what
=========  ====  =============================================
``gap``    1280  global average pool of the 1280-channel head
``gem``    1280  generalised-mean pool (p = 3) of the head
``mid``    192   average pool of the 192-channel stage (7x7)
``low``    112   average pool of the 112-channel stage (14x14)
=========  ====  =============================================

The exported model is backbone + the chosen poolings + neck + L2 normalisation, saved with
``paddle.jit.save`` into a PaddleClas-style folder that :class:`kiosk.embed.paddle.PaddleEmbedder`
loads like any other model.  Its model id changes with its weights, so a catalogue opened with
it re-embeds its gallery.
"""
from __future__ import annotations

import hashlib
import logging
import math
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

from kiosk.embed.effnet_lite import INPUT_SIZE, LITE0_STAGES, preprocess_config
from kiosk.embed.paddle import Preprocess
from kiosk.embed.model import (
    _LOW_BLOCK, _MID_BLOCK, BACKBONES, DESCRIPTORS, GEM_P, LITE0_DESCRIPTORS, Neck, TrainConfig,
    Trunk, _slices, build_trunk, export_model, save_neck,
)
from kiosk.runtime.paddle import import_paddle

paddle = import_paddle()
nn = paddle.nn
F = paddle.nn.functional

log = logging.getLogger(__name__)

CACHE_VERSION = 1


class ArcMargin(nn.Layer):
    """Additive angular margin (ArcFace) classification head, used only in training."""

    def __init__(self, dim: int, n_classes: int, scale: float, margin: float):
        super().__init__()
        self.weight = self.create_parameter([dim, n_classes],
                                            default_initializer=nn.initializer.XavierNormal())
        self.scale, self.margin = scale, margin

    def forward(self, emb, labels):
        cos = paddle.matmul(F.normalize(emb, axis=1), F.normalize(self.weight, axis=0))
        cos = paddle.clip(cos, -1 + 1e-7, 1 - 1e-7)
        theta = paddle.acos(cos)
        target = paddle.cos(theta + self.margin)
        onehot = F.one_hot(labels, cos.shape[1])
        logits = self.scale * (onehot * target + (1 - onehot) * cos)
        return F.cross_entropy(logits, labels)


# ------------------------------------------------------------------ augmentation and caching
def augment(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A view as the kiosk may see the product: any quarter turn (items are turned upright by
    their long side, so the rest is ambiguous), a slight tilt, a tighter or looser crop, other
    light, a little blur."""
    h, w = img.shape[:2]
    s = rng.uniform(0.7, 1.0)
    ch, cw = int(h * s), int(w * s * rng.uniform(0.85, 1.15))
    cw = min(cw, w)
    y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
    out = img[y:y + ch, x:x + cw]
    k = int(rng.integers(0, 4))
    if k:
        out = np.ascontiguousarray(np.rot90(out, k))
    angle = rng.uniform(-12, 12)
    oh, ow = out.shape[:2]
    m = cv2.getRotationMatrix2D((ow / 2, oh / 2), angle, 1.0)
    out = cv2.warpAffine(out, m, (ow, oh), borderMode=cv2.BORDER_REFLECT)
    gain, bias = rng.uniform(0.75, 1.25), rng.uniform(-20, 20)
    tint = rng.uniform(0.92, 1.08, size=3)
    out = np.clip(out.astype(np.float32) * gain * tint + bias, 0, 255).astype(np.uint8)
    if rng.random() < 0.3:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.5, 1.5))
    return out


def _save_trunk(build: Callable[[], "nn.Layer"], folder: Path) -> None:
    """The frozen network ``build()`` makes, exported once into ``folder`` (an inference model
    that caches activations), unless it is there already; written atomically."""
    if (folder / "inference.pdiparams").is_file():
        return
    tmp = Path(tempfile.mkdtemp(prefix="trunk.", dir=folder.parent))
    net = build()
    net.eval()
    spec = [paddle.static.InputSpec([None, 3, INPUT_SIZE, INPUT_SIZE], "float32", "x")]
    with paddle.utils.unique_name.guard():
        paddle.jit.save(net, str(tmp / "inference"), input_spec=spec)
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)


class FeatureCache:
    """Backbone descriptors of every image and view, computed once and kept on disk."""

    def __init__(self, cache_dir: Path, batch: int = 32, backbone: str = "lite0"):
        if backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {backbone!r} (one of {', '.join(BACKBONES)})")
        self.backbone = backbone
        self._subs = ({b: FeatureCache(cache_dir, batch, b) for b in backbone.split("+")}
                      if "+" in backbone else None)
        self.cache_dir = Path(cache_dir)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.batch = batch
        self.pre = Preprocess.from_config({"PreProcess": {"transform_ops": preprocess_config()}})
        self._trunk = None

    @property
    def trunk(self):
        """The frozen trunk on Paddle Inference with oneDNN (several times faster than
        dygraph on the CPU), exported once into the cache folder."""
        if self._trunk is None:
            from kiosk.runtime.paddle import PaddleModel

            tag = "" if self.backbone == "lite0" else f"-{self.backbone}"
            folder = self.cache_dir / f"trunk{tag}-v{CACHE_VERSION}"
            _save_trunk(lambda: build_trunk(self.backbone), folder)
            self._trunk = PaddleModel(folder)
        return self._trunk

    def _key(self, paths: Sequence[Path], views: int, seed: int) -> str:
        tag = "" if self.backbone == "lite0" else f":{self.backbone}"
        h = hashlib.sha256(f"v{CACHE_VERSION}:{views}:{seed}{tag}".encode())
        for p in paths:
            st = Path(p).stat()
            h.update(f"{Path(p).resolve()}:{st.st_size}:{int(st.st_mtime)}".encode())
        return h.hexdigest()[:20]

    def descriptors(self, paths: Sequence[Path], views: int = 1, seed: int = 0,
                    progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """(N, views, D) float32; view 0 is the plain image, the others :func:`augment`."""
        if self._subs is not None:  # each trunk's cache on its own, the same views, side by side
            return np.concatenate([c.descriptors(paths, views, seed, progress)
                                   for c in self._subs.values()], axis=2)
        paths = [Path(p) for p in paths]
        f = self.cache_dir / f"desc-{self._key(paths, views, seed)}.npy"
        if f.is_file():
            return np.load(f)
        total = sum(DESCRIPTORS[n] for n in BACKBONES[self.backbone])
        out = np.zeros((len(paths), views, total), np.float32)

        def store(i, v, outputs):
            out[i, v] = outputs[0]

        self._run_views(paths, views, seed, store, progress)
        _save_npy(f, out)
        return out

    def _run_views(self, paths: Sequence[Path], views: int, seed: int, store,
                   progress: Callable[[int, int], None] | None = None) -> None:
        """Run :attr:`trunk` on every image and view (view 0 plain, the others
        :func:`augment`, drawn in a fixed order from ``seed``); ``store(i, v, outputs)`` gets
        each row of the model's outputs."""
        from kiosk.images import load_image

        rng = np.random.default_rng(seed)
        jobs = [(i, v) for i in range(len(paths)) for v in range(views)]
        images: dict[int, np.ndarray] = {}
        for start in range(0, len(jobs), self.batch):
            chunk = jobs[start:start + self.batch]
            batch = []
            for i, v in chunk:
                if i not in images:
                    images.clear() if len(images) > 64 else None
                    images[i] = load_image(paths[i])
                img = images[i] if v == 0 else augment(images[i], rng)
                batch.append(self.pre.geometry(img))
            model = self.trunk
            outs = model.run({model.input_names[0]: self.pre.normalize(np.stack(batch))})
            for k, (i, v) in enumerate(chunk):
                store(i, v, [o[k] for o in outs])
            if progress:
                progress(min(start + self.batch, len(jobs)), len(jobs))


def _save_npy(f: Path, arr: np.ndarray) -> None:
    tmp = f.with_suffix(".tmp.npy")
    np.save(tmp, arr)
    os.replace(tmp, f)


# ------------------------------------------------- partial fine-tuning of the trunk's last blocks
N_BLOCKS = sum(stage[-1] for stage in LITE0_STAGES)  # 16 MBConv blocks in Lite0


def _avg(t):  # as Trunk.parts pools (adaptive pooling has a oneDNN kernel, reduce_mean not)
    return paddle.flatten(F.adaptive_avg_pool2d(t, 1), 1)


def tail_parts(net, x, start: int, low=None, mid=None) -> dict:
    """The descriptors of Lite0 ``net`` from the activation ``x`` entering block ``start``:
    blocks ``start``.. + head + poolings, as :meth:`Trunk.parts` computes them.  ``low`` and
    ``mid`` (pooled) are given when their block comes before ``start``."""
    for i in range(start, len(net.blocks)):
        x = net.blocks[i](x)
        if i == _LOW_BLOCK:
            low = _avg(x)
        elif i == _MID_BLOCK:
            mid = _avg(x)
    h = net.head(x)
    gem = paddle.pow(_avg(paddle.pow(paddle.clip(h, min=1e-6), GEM_P)), 1.0 / GEM_P)
    return {"gap": _avg(h), "gem": gem, "mid": mid, "low": low}


class _CutTrunk(nn.Layer):
    """The frozen Lite0 for the activation cache: its descriptors (as :class:`Trunk`, all four
    concatenated) and the activation entering block ``cut``."""

    def __init__(self, trunk: Trunk, cut: int):
        super().__init__()
        self.trunk, self.cut = trunk, cut

    def forward(self, x):
        n = self.trunk.net
        x = n.stem(x)
        low = mid = None
        for i in range(self.cut):
            x = n.blocks[i](x)
            if i == _LOW_BLOCK:
                low = _avg(x)
            elif i == _MID_BLOCK:
                mid = _avg(x)
        parts = tail_parts(n, x, self.cut, low, mid)
        return [paddle.concat([parts[k] for k in LITE0_DESCRIPTORS], axis=1), x]


@dataclass
class TuneFeatures:
    """What fine-tuning the last blocks trains on: the activation entering the first tuned
    block (float16, ``(N, V, C, H, W)``) and the frozen trunk's descriptors (``(N, V, D)``, of
    which those pooled before the tuned blocks stay fixed).  Indexes like the descriptor array
    (``feats[:, 0]``: the plain views)."""

    act: np.ndarray
    desc: np.ndarray

    def __getitem__(self, idx) -> "TuneFeatures":
        return TuneFeatures(self.act[idx], self.desc[idx])

    def __len__(self) -> int:
        return len(self.desc)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.desc.shape

    @staticmethod
    def concat(parts: Sequence["TuneFeatures"]) -> "TuneFeatures":
        return TuneFeatures(np.concatenate([p.act for p in parts]),
                            np.concatenate([p.desc for p in parts]))


class ActivationCache(FeatureCache):
    """Per image and view, the activation entering the first of the ``tune_blocks`` last
    blocks (float16) and the frozen descriptors, computed once and kept on disk: training the
    last blocks then runs only them, the head, the poolings and the neck."""

    def __init__(self, cache_dir: Path, tune_blocks: int, batch: int = 32):
        if not 1 <= tune_blocks <= N_BLOCKS:
            raise ValueError(f"tune_blocks must be 1..{N_BLOCKS}")
        super().__init__(cache_dir, batch, "lite0")
        self.cut = N_BLOCKS - tune_blocks

    @property
    def trunk(self):
        if self._trunk is None:
            from kiosk.runtime.paddle import PaddleModel

            folder = self.cache_dir / f"trunk-cut{self.cut}-v{CACHE_VERSION}"
            _save_trunk(lambda: _CutTrunk(build_trunk("lite0"), self.cut), folder)
            self._trunk = PaddleModel(folder)
        return self._trunk

    def descriptors(self, paths: Sequence[Path], views: int = 1, seed: int = 0,
                    progress: Callable[[int, int], None] | None = None) -> TuneFeatures:
        """:class:`TuneFeatures` of ``paths``, ``views`` views each (view 0 plain)."""
        paths = [Path(p) for p in paths]
        key = self._key(paths, views, seed)
        fa = self.cache_dir / f"act{self.cut}-{key}.npy"
        fd = self.cache_dir / f"desc{self.cut}-{key}.npy"
        if fa.is_file() and fd.is_file():
            return TuneFeatures(np.load(fa), np.load(fd))
        act = desc = None

        def store(i, v, outputs):
            nonlocal act, desc
            d, a = sorted(outputs, key=lambda o: o.ndim)
            if act is None:
                act = np.zeros((len(paths), views, *a.shape), np.float16)
                desc = np.zeros((len(paths), views, *d.shape), np.float32)
            act[i, v], desc[i, v] = a, d

        self._run_views(paths, views, seed, store, progress)
        _save_npy(fa, act)
        _save_npy(fd, desc)
        plain = self.cache_dir / f"desc-{key}.npy"
        if not plain.is_file():  # the same frozen descriptors: a neck-only run reuses them
            _save_npy(plain, desc)
        return TuneFeatures(act, desc)


@dataclass
class TrainResult:
    config: TrainConfig
    best_epoch: int
    best: dict
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0


def _project(neck, desc) -> np.ndarray:
    """Embeddings of plain-view features: cached descriptors through a :class:`Neck`, or
    :class:`TuneFeatures` through a :class:`TunedTail`."""
    if isinstance(neck, TunedTail):
        return neck.project(desc)
    neck.eval()
    with paddle.no_grad():
        return neck.embed(paddle.to_tensor(desc)).numpy()


def _cosine_adamw(lr: float, parameters, cfg: TrainConfig, steps: int):
    """(schedule, optimiser): AdamW with a cosine schedule over ``steps``, as every training
    loop here uses."""
    import paddle

    sched = paddle.optimizer.lr.CosineAnnealingDecay(lr, T_max=steps)
    return sched, paddle.optimizer.AdamW(learning_rate=sched, weight_decay=cfg.weight_decay,
                                         parameters=parameters)


def _step(*optimisers) -> None:
    """One step of each (schedule, optimiser) of :func:`_cosine_adamw`."""
    for _, opt in optimisers:
        opt.step()
        opt.clear_grad()
    for sched, _ in optimisers:
        sched.step()


class _Best:
    """The best epoch's weights by (recall@1, mAP) when each epoch is evaluated (else the
    last), and the training's record."""

    def __init__(self, result: TrainResult) -> None:
        self.result = result
        self.key: tuple | None = None
        self.state: dict | None = None

    def epoch(self, epoch: int, row: dict, model, evaluate, log_fn) -> None:
        if evaluate is not None:
            row.update(evaluate(model))
            key = (row["recall_at_1"], row["mAP"])
            if self.key is None or key > self.key:
                self.key = key
                self.state = {k: v.numpy().copy() for k, v in model.state_dict().items()}
                self.result.best_epoch, self.result.best = epoch, dict(row)
        self.result.history.append(row)
        log_fn(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                        for k, v in row.items()))

    def finish(self, model, epochs: int, t0: float):
        if self.state is not None:
            model.set_state_dict({k: paddle.to_tensor(v) for k, v in self.state.items()})
        else:
            self.result.best_epoch, self.result.best = epochs, self.result.history[-1]
        model.eval()
        self.result.seconds = round(time.perf_counter() - t0, 1)
        return model, self.result


def train_neck(train_desc: np.ndarray, train_labels: Sequence[str], cfg: TrainConfig,
               evaluate: Callable[[Neck], dict] | None = None,
               log_fn: Callable[[str], None] = lambda m: None) -> tuple[Neck, TrainResult]:
    """Train a neck with ArcMargin on cached descriptors (N, V, D) of labelled images.

    ``evaluate(neck)`` returns metrics (must include ``recall_at_1`` and ``mAP``); the best
    epoch by recall@1 then mAP is kept.  Without it the last epoch is kept."""
    paddle.seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    classes = sorted(set(train_labels))
    y_img = np.array([classes.index(l) for l in train_labels], np.int64)
    n, v, d = train_desc.shape
    x_all = train_desc.reshape(n * v, d)
    y_all = np.repeat(y_img, v)
    with paddle.utils.unique_name.guard():
        neck = Neck(cfg.inputs, cfg.dim, cfg.blend, cfg.plain, BACKBONES[cfg.backbone])
        head = ArcMargin(cfg.dim, len(classes), cfg.scale, cfg.margin)
    steps = max(1, math.ceil(len(x_all) / cfg.batch)) * cfg.epochs
    neck_opt = _cosine_adamw(cfg.lr, neck.parameters() + head.parameters(), cfg, steps)
    t0 = time.perf_counter()
    best = _Best(TrainResult(cfg, -1, {}))
    for epoch in range(1, cfg.epochs + 1):
        neck.train()
        order = rng.permutation(len(x_all))
        losses = []
        for s in range(0, len(order), cfg.batch):
            idx = order[s:s + cfg.batch]
            if len(idx) < 2:
                continue
            loss = head(neck(paddle.to_tensor(x_all[idx])), paddle.to_tensor(y_all[idx]))
            loss.backward()
            _step(neck_opt)
            losses.append(float(loss))
        row = {"epoch": epoch, "loss": round(float(np.mean(losses)), 4)}
        best.epoch(epoch, row, neck, evaluate, log_fn)
    return best.finish(neck, cfg.epochs, t0)


class TunedTail(nn.Layer):
    """The trained part when the last blocks are fine-tuned: Lite0's blocks ``cut``.. and
    head (BatchNorm kept in eval mode: running statistics frozen) + poolings + neck, on the
    cached activation entering block ``cut``.  The rest of :attr:`trunk` is never run here."""

    def __init__(self, trunk: Trunk, cut: int, neck: Neck):
        super().__init__()
        self.trunk, self.cut, self.neck = trunk, cut, neck
        self._fixed = dict(zip(LITE0_DESCRIPTORS, _slices(LITE0_DESCRIPTORS)))
        tuned = {id(p) for p in self.tuned_parameters()}
        for p in self.trunk.parameters():
            p.stop_gradient = id(p) not in tuned

    def tuned_parameters(self) -> list:
        n = self.trunk.net
        return [p for layer in [*list(n.blocks)[self.cut:], n.head] for p in layer.parameters()]

    def tuned_prefixes(self) -> tuple[str, ...]:
        """State-dict key prefixes of the tuned layers (in :class:`Trunk` naming)."""
        return tuple(f"net.blocks.{i}." for i in range(self.cut, N_BLOCKS)) + ("net.head.",)

    def train(self):  # only the neck trains in train mode; the trunk's BatchNorm stays frozen
        super().train()
        self.trunk.eval()
        return self

    def descriptors(self, act, desc):
        """(B, D) descriptor rows (LITE0_DESCRIPTORS layout) through the tuned blocks; those
        pooled before them are taken from the cached ``desc``."""
        fixed = {k: desc[:, a:b] for k, (a, b) in self._fixed.items()}
        parts = tail_parts(self.trunk.net, act, self.cut,
                           fixed["low"] if self.cut > _LOW_BLOCK else None,
                           fixed["mid"] if self.cut > _MID_BLOCK else None)
        return paddle.concat([parts[k] for k in LITE0_DESCRIPTORS], axis=1)

    def forward(self, act, desc):
        return self.neck(self.descriptors(act, desc))

    def project(self, feats: TuneFeatures, batch: int = 128) -> np.ndarray:
        """The kiosk's embedding (:meth:`Neck.embed`) of plain-view features."""
        self.eval()
        out = []
        with paddle.no_grad():
            for s in range(0, len(feats), batch):
                d = self.descriptors(paddle.to_tensor(feats.act[s:s + batch].astype(np.float32)),
                                     paddle.to_tensor(feats.desc[s:s + batch]))
                out.append(self.neck.embed(d).numpy())
        return np.concatenate(out)

    def trunk_state(self) -> dict[str, np.ndarray]:
        """The tuned layers' weights and statistics, keyed as :class:`Trunk`'s state dict."""
        pre = self.tuned_prefixes()
        return {k: v.numpy().copy() for k, v in self.trunk.state_dict().items()
                if k.startswith(pre)}


def train_tuned(feats: TuneFeatures, train_labels: Sequence[str], cfg: TrainConfig,
                evaluate: Callable[[TunedTail], dict] | None = None,
                log_fn: Callable[[str], None] = lambda m: None) -> tuple[TunedTail, TrainResult]:
    """Train the last ``cfg.tune_blocks`` blocks of Lite0 (+ head) and a neck with ArcMargin
    on cached activations (:class:`ActivationCache`); the blocks at ``cfg.tune_lr``, the neck
    and ArcMargin at ``cfg.lr``.  Best epoch as :func:`train_neck`."""
    paddle.seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    classes = sorted(set(train_labels))
    y_img = np.array([classes.index(l) for l in train_labels], np.int64)
    n, v = feats.desc.shape[:2]
    act_all = feats.act.reshape(n * v, *feats.act.shape[2:])
    desc_all = feats.desc.reshape(n * v, -1)
    y_all = np.repeat(y_img, v)
    with paddle.utils.unique_name.guard():
        neck = Neck(cfg.inputs, cfg.dim, cfg.blend, cfg.plain, LITE0_DESCRIPTORS)
        head = ArcMargin(cfg.dim, len(classes), cfg.scale, cfg.margin)
        model = TunedTail(build_trunk("lite0"), N_BLOCKS - cfg.tune_blocks, neck)
    steps = max(1, math.ceil(len(y_all) / cfg.batch)) * cfg.epochs
    neck_opt = _cosine_adamw(cfg.lr, neck.parameters() + head.parameters(), cfg, steps)
    tune_opt = _cosine_adamw(cfg.tune_lr, model.tuned_parameters(), cfg, steps)
    t0 = time.perf_counter()
    best = _Best(TrainResult(cfg, -1, {}))
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        order = rng.permutation(len(y_all))
        losses = []
        for s in range(0, len(order), cfg.batch):
            idx = np.sort(order[s:s + cfg.batch])
            if len(idx) < 2:
                continue
            emb = model(paddle.to_tensor(act_all[idx].astype(np.float32)),
                        paddle.to_tensor(desc_all[idx]))
            loss = head(emb, paddle.to_tensor(y_all[idx]))
            loss.backward()
            _step(neck_opt, tune_opt)
            losses.append(float(loss))
        row = {"epoch": epoch, "loss": round(float(np.mean(losses)), 4),
               "seconds": round(time.perf_counter() - t0, 1)}
        best.epoch(epoch, row, model, evaluate, log_fn)
    return best.finish(model, cfg.epochs, t0)


def retrieval_metrics(neck: Neck | None, g_desc: np.ndarray, g_labels, q_desc: np.ndarray,
                      q_labels, inputs: Sequence[str] = ("gap",),
                      layout: Sequence[str] = LITE0_DESCRIPTORS) -> dict:
    """recall@1/5 and mAP of plain views (view 0) through ``neck`` (None: raw descriptors)."""
    from kiosk.tools.evaluate import ranking_metrics

    def emb(desc):
        if neck is not None:
            return _project(neck, desc)
        parts = [desc[:, a:b] / np.linalg.norm(desc[:, a:b], axis=1, keepdims=True)
                 for a, b in _slices(inputs, layout)]
        e = np.concatenate(parts, axis=1)
        return e / np.linalg.norm(e, axis=1, keepdims=True)

    g, q = emb(g_desc), emb(q_desc)
    return ranking_metrics(q @ g.T, np.asarray(g_labels, dtype=object),
                           np.asarray(q_labels, dtype=object))


# ------------------------------------------------------------------------------ orchestration
def calibrate_threshold(g: np.ndarray, g_labels, q: np.ndarray, q_labels,
                        target_frr: float = 0.03) -> float:
    """Similarity under which ``target_frr`` of the queries whose product is enrolled would be
    called unknown (the best match's similarity, as the decision uses it)."""
    g_labels = np.asarray(g_labels, dtype=object)
    known = np.isin(np.asarray(q_labels, dtype=object), g_labels)
    top = (q[known] @ g.T).max(axis=1)
    return float(np.quantile(top, target_frr)) if len(top) else 0.5


def run_training(train_lists: Sequence[Path], out_dir: Path | None, cfg: TrainConfig, *,
                 gallery_list: Path | None = None, query_lists: dict[str, Path] | None = None,
                 target_frr: float = 0.03, threshold: float | None = None,
                 save_neck_to: Path | None = None,
                 cache_dir: Path | None = None, per_list_cache: bool = False,
                 log_fn: Callable[[str], None] = lambda m: None) -> dict:
    """Cache descriptors, train the neck, calibrate the threshold, export; returns a report.
    ``per_list_cache``: each training list's descriptors are cached on their own (else the
    lists together, as one).

    ``query_lists`` maps a name to a query list evaluated against ``gallery_list`` after every
    epoch; the one named ``known`` (else the first) also calibrates the threshold, and one
    named ``unknown`` (products not in the gallery) reports the rejection rate.  A given
    ``threshold`` is used as it is (e.g. one calibrated on a held-out split with the same
    recipe, for a model trained on everything)."""
    from kiosk.catalog.gallery_io import parse_gallery_list
    from kiosk.paths import models_dir

    t0 = time.perf_counter()
    if cfg.tune_blocks:  # the last blocks fine-tuned: their input activations cached
        if cfg.backbone != "lite0":
            raise ValueError("fine-tuning the last blocks needs the lite0 backbone alone")
        cache = ActivationCache(cache_dir or models_dir() / "cache", cfg.tune_blocks)
        join = TuneFeatures.concat
    else:
        cache = FeatureCache(cache_dir or models_dir() / "cache", backbone=cfg.backbone)
        join = np.concatenate
    entries = [e for lst in train_lists for e in parse_gallery_list(lst)]
    if len({e.label for e in entries}) < 2:
        raise ValueError("training needs at least two labels")
    show = lambda label: (lambda d, n: log_fn(f"{label}: {d}/{n}") if d == n or d % 2048 < 32 else None)  # noqa: E731
    if per_list_cache:  # each list's features cached on their own (a base list is reused)
        train_desc = join([
            cache.descriptors([e.path for e in parse_gallery_list(lst)], cfg.views, cfg.seed,
                              progress=show(f"train features ({Path(lst).name})"))
            for lst in train_lists])
    else:
        train_desc = cache.descriptors([e.path for e in entries], cfg.views, cfg.seed,
                                       progress=show("train features"))
    evals: dict[str, tuple[np.ndarray, list[str]]] = {}
    g_desc = g_labels = None
    if gallery_list is not None:
        ge = parse_gallery_list(gallery_list)
        g_desc, g_labels = cache.descriptors([e.path for e in ge])[:, 0], [e.label for e in ge]
        for name, lst in (query_lists or {}).items():
            qe = parse_gallery_list(lst)
            evals[name] = (cache.descriptors([e.path for e in qe])[:, 0], [e.label for e in qe])

    def evaluate(neck) -> dict:
        out = {}
        for name, (qd, ql) in evals.items():
            if name == "unknown":
                continue
            m = retrieval_metrics(neck, g_desc, g_labels, qd, ql)
            out.update({f"{name}_recall_at_1": round(m["recall_at_1"], 4),
                        f"{name}_mAP": round(m["mAP"], 4)})
        first = next((n for n in evals if n != "unknown"), None)
        out["recall_at_1"] = out.get(f"{first}_recall_at_1", 0.0)
        out["mAP"] = out.get(f"{first}_mAP", 0.0)
        return out

    trainer = train_tuned if cfg.tune_blocks else train_neck
    neck, result = trainer(train_desc, [e.label for e in entries], cfg,
                           evaluate if evals else None, log_fn)
    report = {"config": asdict(cfg), "epochs": result.history, "train_seconds": result.seconds,
              "n_train_images": len(entries), "n_classes": len({e.label for e in entries})}
    if g_desc is not None and evals:
        g = _project(neck, g_desc)
        calib = "known" if "known" in evals else next(iter(evals))
        qd, ql = evals[calib]
        if threshold is None:
            threshold = calibrate_threshold(g, g_labels, _project(neck, qd), ql, target_frr)
        final = {}
        for name, (qd, ql) in evals.items():
            q = _project(neck, qd)
            top = (q @ g.T).max(axis=1)
            if name == "unknown":
                final["unknown_reject_rate"] = round(float((top < threshold).mean()), 4)
            else:
                m = retrieval_metrics(neck, g_desc, g_labels, qd, ql)
                final[name] = {k: round(v, 4) for k, v in m.items()}
                final[name]["false_reject_rate"] = round(float((top < threshold).mean()), 4)
        report["final"] = final
    elif threshold is None:  # no validation lists: calibrate on the training images themselves
        tr = _project(neck, train_desc[:, 0])
        labels = np.array([e.label for e in entries], dtype=object)
        sims = tr @ tr.T
        np.fill_diagonal(sims, -1)
        same = np.where(labels[:, None] == labels[None, :], sims, -1).max(axis=1)
        threshold = float(np.quantile(same, target_frr))
    report["threshold"] = round(threshold, 4)
    meta = {"train_lists": [str(p) for p in train_lists], "report": report,
            "backbone": cfg.backbone}
    trunk_state = None
    if isinstance(neck, TunedTail):  # exported: the whole trunk with the tuned blocks + neck
        trunk_state, neck = neck.trunk_state(), neck.neck
        meta["tune_blocks"] = cfg.tune_blocks
    if save_neck_to is not None:
        save_neck(neck, Path(save_neck_to), cfg, threshold, trunk_state=trunk_state)
    if out_dir is not None:
        report["model_id"] = export_model(neck, Path(out_dir), threshold=threshold, meta=meta,
                                          trunk_state=trunk_state)
    report["seconds"] = round(time.perf_counter() - t0, 1)
    return report


