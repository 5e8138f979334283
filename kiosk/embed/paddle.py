"""Embed crops with any PaddleClas-style exported recognition model on Paddle Inference.

The model folder holds the exported program (``inference.json`` or ``inference.pdmodel``), its
``inference.pdiparams`` and an ``inference.yml`` describing the preprocessing the PaddleClas way::

    Global:
      model_id: my-model@1        # optional; else "<folder name>@<sha256 prefix of params>"
    PreProcess:                   # or RecPreProcess, as in PaddleClas deploy configs
      channel_order: RGB          # optional (default RGB, the PaddleClas convention);
                                  # a DecodeImage op with to_rgb: false means BGR
      transform_ops:
        - ResizeImage: {resize_short: 256}     # or {size: 224} / {size: [w, h]}
        - CropImage: {size: 224}
        - NormalizeImage: {scale: 1.0/255.0, mean: [...], std: [...], order: ''}
        - ToCHWImage:
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from kiosk.embed.base import Embeddings, l2_normalize
from kiosk.runtime.paddle import PaddleModel, as_float_list, find_model_files, load_yaml, params_digest, parse_number

log = logging.getLogger(__name__)

_INTERP = {
    None: cv2.INTER_LINEAR,
    "nearest": cv2.INTER_NEAREST,
    "bilinear": cv2.INTER_LINEAR,
    "linear": cv2.INTER_LINEAR,
    "area": cv2.INTER_AREA,
    "bicubic": cv2.INTER_CUBIC,
    "cubic": cv2.INTER_CUBIC,
    "lanczos": cv2.INTER_LANCZOS4,
    0: cv2.INTER_NEAREST,
    1: cv2.INTER_LINEAR,
    2: cv2.INTER_CUBIC,
    3: cv2.INTER_AREA,
    4: cv2.INTER_LANCZOS4,
}
_IGNORED_OPS = {"DecodeImage", "ToCHWImage", "ToTensor"}


def _wh(size: Any) -> tuple[int, int]:
    """PaddleClas size: int → square, [w, h] list → (w, h)."""
    if isinstance(size, (list, tuple)):
        if len(size) != 2:
            raise ValueError(f"size must be an int or [w, h], got {size!r}")
        return int(size[0]), int(size[1])
    return int(size), int(size)


@dataclass(frozen=True)
class Preprocess:
    """The PaddleClas transform ops, compiled to a fast cv2/numpy pipeline."""

    resize_short: int | None = None
    resize_wh: tuple[int, int] | None = None
    crop_wh: tuple[int, int] | None = None
    interpolation: int = cv2.INTER_LINEAR
    scale: float = 1.0 / 255.0
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    rgb: bool = True

    @classmethod
    def from_config(cls, cfg: dict | None) -> "Preprocess":
        cfg = cfg or {}
        section = cfg.get("PreProcess") or cfg.get("RecPreProcess") or {}
        ops = section.get("transform_ops", cfg.get("transform_ops"))
        if ops is None:
            raise ValueError("inference.yml has no PreProcess.transform_ops")
        kw: dict[str, Any] = {}
        order = section.get("channel_order", cfg.get("channel_order"))
        for op in ops:
            if isinstance(op, str):
                name, args = op, {}
            elif isinstance(op, dict) and len(op) == 1:
                name, args = next(iter(op.items()))
                args = args or {}
            else:
                raise ValueError(f"bad transform op {op!r}")
            if name == "ResizeImage":
                if args.get("resize_short") is not None:
                    kw["resize_short"] = int(args["resize_short"])
                elif args.get("size") is not None:
                    kw["resize_wh"] = _wh(args["size"])
                else:
                    raise ValueError("ResizeImage needs resize_short or size")
                interp = args.get("interpolation")
                if interp not in _INTERP:
                    raise ValueError(f"unknown interpolation {interp!r}")
                kw["interpolation"] = _INTERP[interp]
            elif name in ("CropImage", "CenterCropImage"):
                kw["crop_wh"] = _wh(args["size"])
            elif name == "NormalizeImage":
                kw["scale"] = parse_number(args.get("scale", 1.0 / 255.0))
                kw["mean"] = tuple(as_float_list(args.get("mean", [0.485, 0.456, 0.406]), 3))
                kw["std"] = tuple(as_float_list(args.get("std", [0.229, 0.224, 0.225]), 3))
                if str(args.get("order", "") or "hwc").lower() not in ("hwc", "chw"):
                    raise ValueError(f"unsupported NormalizeImage order {args.get('order')!r}")
            elif name == "DecodeImage":
                if order is None and "to_rgb" in args:
                    order = "RGB" if args["to_rgb"] else "BGR"
            elif name not in _IGNORED_OPS:
                raise ValueError(f"unsupported PaddleClas transform op {name!r}")
        order = str(order or "RGB").upper()
        if order not in ("RGB", "BGR"):
            raise ValueError(f"channel_order must be RGB or BGR, got {order!r}")
        kw["rgb"] = order == "RGB"
        return cls(**kw)

    @property
    def output_wh(self) -> tuple[int, int] | None:
        return self.crop_wh or self.resize_wh

    def geometry(self, img: np.ndarray) -> np.ndarray:
        """Resize and crop one BGR uint8 image (H, W, 3)."""
        h, w = img.shape[:2]
        if self.resize_short is not None:
            s = self.resize_short / min(h, w)
            nw, nh = max(1, int(round(w * s))), max(1, int(round(h * s)))
            img = cv2.resize(img, (nw, nh), interpolation=self.interpolation)
        elif self.resize_wh is not None:
            img = cv2.resize(img, self.resize_wh, interpolation=self.interpolation)
        if self.crop_wh is not None:
            cw, ch = self.crop_wh
            h, w = img.shape[:2]
            if h < ch or w < cw:  # too small to crop: scale up so the crop fits
                s = max(ch / h, cw / w)
                img = cv2.resize(img, (max(cw, int(round(w * s))), max(ch, int(round(h * s)))),
                                 interpolation=self.interpolation)
                h, w = img.shape[:2]
            y, x = (h - ch) // 2, (w - cw) // 2
            img = img[y : y + ch, x : x + cw]
        return img

    def normalize(self, batch: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) BGR uint8 → (N, 3, H, W) float32 in the model's channel order."""
        n, h, w, _ = batch.shape
        out = np.empty((n, 3, h, w), dtype=np.float32)
        for c in range(3):
            src = 2 - c if self.rgb else c
            a = self.scale / self.std[c]
            b = -self.mean[c] / self.std[c]
            np.multiply(batch[..., src], np.float32(a), out=out[:, c], casting="unsafe")
            out[:, c] += np.float32(b)
        return out


def to_bgr(crop: np.ndarray) -> np.ndarray:
    """Any crop (gray, BGR, BGRA; uint8 or other) → contiguous BGR uint8 (H, W, 3)."""
    a = np.asarray(crop)
    if a.ndim not in (2, 3) or a.size == 0 or min(a.shape[:2]) == 0:
        raise ValueError(f"cannot embed an empty or malformed crop of shape {a.shape}")
    if a.dtype != np.uint8:
        if np.issubdtype(a.dtype, np.floating) and a.max(initial=0) <= 1.0:
            a = a * 255.0
        a = np.clip(a, 0, 255).astype(np.uint8)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim == 2:
        return cv2.cvtColor(a, cv2.COLOR_GRAY2BGR)
    if a.shape[2] == 4:
        return cv2.cvtColor(a, cv2.COLOR_BGRA2BGR)
    if a.shape[2] != 3:
        raise ValueError(f"crop has {a.shape[2]} channels; expected 1, 3 or 4")
    return np.ascontiguousarray(a)


class PaddleEmbedder:
    """:class:`kiosk.embed.Embedder` for a PaddleClas-style exported model folder."""

    def __init__(self, model_dir: str | os.PathLike, batch_size: int = 32, use_onednn: bool = True,
                 num_threads: int | None = None, precision: str = "auto") -> None:
        self.model_dir = Path(model_dir)
        find_model_files(self.model_dir)  # clear error for a missing/incomplete folder
        cfg_path = self.model_dir / "inference.yml"
        if not cfg_path.is_file():
            raise FileNotFoundError(f"model folder {str(self.model_dir)!r} has no inference.yml")
        cfg = load_yaml(cfg_path) or {}
        self.preprocess = Preprocess.from_config(cfg)
        gl = cfg.get("Global") or {}
        model_id = gl.get("model_id") or cfg.get("model_id")
        self.model_id: str = str(model_id) if model_id else f"{self.model_dir.name}@{params_digest(self.model_dir)}"
        # PP-ShiTu keeps the retrieval score threshold under IndexProcess.score_thres
        thres = (cfg.get("IndexProcess") or {}).get("score_thres")
        self.threshold: float | None = float(thres) if thres is not None else None
        self.batch_size = max(1, int(batch_size))
        # bf16 where the CPU has it (auto): ~2x faster per crop, cosine > 0.99 to fp32
        self.model = PaddleModel(self.model_dir, use_onednn=use_onednn, num_threads=num_threads,
                                 precision=precision)
        names = self.model.input_names
        if len(names) != 1:
            raise ValueError(f"{self.model_dir}: an embedding model must have one input, has {names}")
        self._input = names[0]
        # One dummy run fixes the output size and warms up (and, if needed, the oneDNN fallback).
        wh = self.preprocess.output_wh
        if wh is None:
            shape = self.model.input_shape(self._input)
            wh = (shape[3], shape[2]) if len(shape) == 4 and min(shape[2:]) > 0 else (224, 224)
        out = self._forward(np.zeros((1, 3, wh[1], wh[0]), np.float32))
        self.dim: int = int(out.shape[1])

    def __repr__(self) -> str:
        return (f"PaddleEmbedder({str(self.model_dir)!r}, model_id={self.model_id!r}, "
                f"dim={self.dim}, precision={self.model.precision!r})")

    def warm_up(self, max_batch: int = 16) -> None:
        """Run every batch size up to ``max_batch`` once.  oneDNN builds its kernels for each
        input shape on first use (~40 ms each on 2 cores), which a kiosk would otherwise pay
        on the first tray of each item count; afterwards batches are capped at ``max_batch``.
        Only for a fixed input size (the usual PaddleClas resize)."""
        wh = self.preprocess.output_wh
        if wh is None:
            return
        for n in range(1, max_batch + 1):
            self._forward(np.zeros((n, 3, wh[1], wh[0]), np.float32))
        self.batch_size = min(self.batch_size, max_batch)

    def _forward(self, x: np.ndarray) -> np.ndarray:
        out = self.model.run({self._input: x})[0]
        return np.asarray(out, dtype=np.float32).reshape(len(x), -1)

    def preprocess_batch(self, crops: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Crops → list of (n, 3, H, W) float32 arrays (one per distinct input size)."""
        imgs = [self.preprocess.geometry(to_bgr(c)) for c in crops]
        if self.preprocess.output_wh is not None:
            return [self.preprocess.normalize(np.stack(imgs))]
        return [self.preprocess.normalize(i[None]) for i in imgs]

    def embed(self, crops: Sequence[np.ndarray]) -> Embeddings:
        crops = list(crops)
        if not crops:
            return Embeddings(np.zeros((0, self.dim), np.float32), self.model_id)
        rows = []
        for start in range(0, len(crops), self.batch_size):
            for x in self.preprocess_batch(crops[start : start + self.batch_size]):
                rows.append(self._forward(x))
        return Embeddings(l2_normalize(np.concatenate(rows)), self.model_id)
