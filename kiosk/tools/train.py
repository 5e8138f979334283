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

from kiosk.embed.effnet_lite import INPUT_SIZE, preprocess_config
from kiosk.embed.paddle import Preprocess
from kiosk.embed.model import (
    BACKBONES, DESCRIPTORS, LITE0_DESCRIPTORS, Neck, TrainConfig, _slices, build_trunk, export_model,
    save_neck,
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
            if not (folder / "inference.pdiparams").is_file():
                tmp = Path(tempfile.mkdtemp(prefix="trunk.", dir=self.cache_dir))
                net = build_trunk(self.backbone)
                spec = [paddle.static.InputSpec([None, 3, INPUT_SIZE, INPUT_SIZE], "float32",
                                                "x")]
                with paddle.utils.unique_name.guard():
                    paddle.jit.save(net, str(tmp / "inference"), input_spec=spec)
                shutil.rmtree(folder, ignore_errors=True)
                os.replace(tmp, folder)
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
        from kiosk.images import load_image

        if self._subs is not None:  # each trunk's cache on its own, the same views, side by side
            return np.concatenate([c.descriptors(paths, views, seed, progress)
                                   for c in self._subs.values()], axis=2)
        paths = [Path(p) for p in paths]
        f = self.cache_dir / f"desc-{self._key(paths, views, seed)}.npy"
        if f.is_file():
            return np.load(f)
        total = sum(DESCRIPTORS[n] for n in BACKBONES[self.backbone])
        out = np.zeros((len(paths), views, total), np.float32)
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
            d = model.run({model.input_names[0]: self.pre.normalize(np.stack(batch))})[0]
            for (i, v), row in zip(chunk, d):
                out[i, v] = row
            if progress:
                progress(min(start + self.batch, len(jobs)), len(jobs))
        tmp = f.with_suffix(".tmp.npy")
        np.save(tmp, out)
        os.replace(tmp, f)
        return out


@dataclass
class TrainResult:
    config: TrainConfig
    best_epoch: int
    best: dict
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0


def _project(neck: Neck, desc: np.ndarray) -> np.ndarray:
    neck.eval()
    with paddle.no_grad():
        return neck.embed(paddle.to_tensor(desc)).numpy()


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
    sched = paddle.optimizer.lr.CosineAnnealingDecay(cfg.lr, T_max=steps)
    opt = paddle.optimizer.AdamW(learning_rate=sched, weight_decay=cfg.weight_decay,
                                 parameters=neck.parameters() + head.parameters())
    t0 = time.perf_counter()
    result = TrainResult(cfg, -1, {})
    best_state, best_key = None, None
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
            opt.step()
            opt.clear_grad()
            sched.step()
            losses.append(float(loss))
        row = {"epoch": epoch, "loss": round(float(np.mean(losses)), 4)}
        if evaluate is not None:
            row.update(evaluate(neck))
            key = (row["recall_at_1"], row["mAP"])
            if best_key is None or key > best_key:
                best_key = key
                best_state = {k: v.numpy().copy() for k, v in neck.state_dict().items()}
                result.best_epoch, result.best = epoch, dict(row)
        result.history.append(row)
        log_fn(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                        for k, v in row.items()))
    if best_state is not None:
        neck.set_state_dict({k: paddle.to_tensor(v) for k, v in best_state.items()})
    else:
        result.best_epoch, result.best = cfg.epochs, result.history[-1]
    neck.eval()
    result.seconds = round(time.perf_counter() - t0, 1)
    return neck, result


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
    cache = FeatureCache(cache_dir or models_dir() / "cache", backbone=cfg.backbone)
    entries = [e for lst in train_lists for e in parse_gallery_list(lst)]
    if len({e.label for e in entries}) < 2:
        raise ValueError("training needs at least two labels")
    show = lambda label: (lambda d, n: log_fn(f"{label}: {d}/{n}") if d == n or d % 2048 < 32 else None)  # noqa: E731
    if per_list_cache:  # each list's features cached on their own (a base list is reused)
        train_desc = np.concatenate([
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

    def evaluate(neck: Neck) -> dict:
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

    neck, result = train_neck(train_desc, [e.label for e in entries], cfg,
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
    if save_neck_to is not None:
        save_neck(neck, Path(save_neck_to), cfg, threshold)
    if out_dir is not None:
        report["model_id"] = export_model(neck, Path(out_dir), threshold=threshold, meta=meta)
    report["seconds"] = round(time.perf_counter() - t0, 1)
    return report


