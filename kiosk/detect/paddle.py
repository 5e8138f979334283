"""Run any PaddleDetection-exported detector on Paddle Inference.

The model folder holds ``model.json`` / ``model.pdmodel`` (or ``inference.*``), the
``.pdiparams`` file and ``infer_cfg.yml``, whose ``Preprocess`` list is applied here:

* ``Resize``: ``target_size`` [h, w], ``keep_ratio`` (fit inside, aspect kept), ``interp``.
* ``NormalizeImage``: ``mean``, ``std``, ``is_scale`` (divide by 255 first), optional
  ``norm_type`` (``none`` skips mean/std).
* ``Permute``: HWC → CHW (always done).

The network gets ``image`` (N, 3, H, W), ``scale_factor`` (N, 2) as [scale_y, scale_x] and, when
it asks for it, ``im_shape`` (N, 2) [h, w] of the resized image.  Its first output holds rows
``[class, score, x1, y1, x2, y2]`` already in original-image pixels; a second output, when
present, holds ``bbox_num`` (boxes per image).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from kiosk.detect.base import Detections
from kiosk.runtime.paddle import PaddleModel, as_float_list, find_model_files, load_yaml

log = logging.getLogger(__name__)

_SKIPPED_OPS = {"Permute", "PadStride", "Pad"}  # Permute is implicit; padding not needed at batch 1


class PaddleDetector:
    """:class:`kiosk.detect.Detector` for a PaddleDetection inference model."""

    name = "paddle"

    def __init__(self, model_dir: str | os.PathLike, threshold: float = 0.5, use_onednn: bool = True,
                 num_threads: int | None = None) -> None:
        self.model_dir = Path(model_dir)
        find_model_files(self.model_dir)
        cfg_path = self.model_dir / "infer_cfg.yml"
        if not cfg_path.is_file():
            raise FileNotFoundError(f"PaddleDetection model folder {str(self.model_dir)!r} has no infer_cfg.yml")
        cfg = load_yaml(cfg_path) or {}
        self.threshold = float(threshold)
        self.labels = list(cfg.get("label_list") or [])
        self._target: tuple[int, int] | None = None  # (h, w)
        self._keep_ratio = False
        self._interp = cv2.INTER_LINEAR
        self._mean = np.zeros(3, np.float32)
        self._std = np.ones(3, np.float32)
        self._scale = 1.0
        for op in cfg.get("Preprocess") or []:
            self._add_op(dict(op))
        self.model = PaddleModel(self.model_dir, use_onednn=use_onednn, num_threads=num_threads)
        names = self.model.input_names
        if "image" not in names:
            raise ValueError(f"{self.model_dir}: detector has no 'image' input (inputs: {names})")
        unknown = set(names) - {"image", "scale_factor", "im_shape"}
        if unknown:
            raise ValueError(f"{self.model_dir}: unsupported detector inputs {sorted(unknown)}")
        self._inputs = names

    def _add_op(self, op: dict[str, Any]) -> None:
        kind = op.pop("type", None)
        if kind == "Resize":
            ts = op.get("target_size")
            h, w = (int(ts), int(ts)) if not isinstance(ts, (list, tuple)) else (int(ts[0]), int(ts[1]))
            self._target = (h, w)
            self._keep_ratio = bool(op.get("keep_ratio", False))
            self._interp = int(op.get("interp", cv2.INTER_LINEAR))
        elif kind == "NormalizeImage":
            self._scale = 1.0 / 255.0 if op.get("is_scale", True) else 1.0
            if str(op.get("norm_type", "mean_std")).lower() == "none":
                self._mean, self._std = np.zeros(3, np.float32), np.ones(3, np.float32)
            else:
                self._mean = np.asarray(as_float_list(op.get("mean", [0.485, 0.456, 0.406]), 3), np.float32)
                self._std = np.asarray(as_float_list(op.get("std", [0.229, 0.224, 0.225]), 3), np.float32)
        elif kind in _SKIPPED_OPS:
            pass
        else:
            raise ValueError(f"unsupported PaddleDetection preprocess op {kind!r} in {self.model_dir}")

    def _preprocess(self, image: np.ndarray) -> dict[str, np.ndarray]:
        img = np.asarray(image)
        if img.ndim == 2:
            img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
        elif img.shape[2] == 4:
            img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
        h, w = img.shape[:2]
        sy = sx = 1.0
        if self._target is not None:
            th, tw = self._target
            if self._keep_ratio:  # PaddleDetection: short side to min(target), long side capped
                s = min(min(th, tw) / min(h, w), max(th, tw) / max(h, w))
                sy = sx = s
            else:
                sy, sx = th / h, tw / w
            img = cv2.resize(img, None, fx=sx, fy=sy, interpolation=self._interp)
        rgb = img[:, :, ::-1].astype(np.float32)
        x = ((rgb * self._scale - self._mean) / self._std).transpose(2, 0, 1)[None]
        feed = {
            "image": np.ascontiguousarray(x, dtype=np.float32),
            "scale_factor": np.array([[sy, sx]], np.float32),
            "im_shape": np.array([img.shape[:2]], np.float32),
        }
        return {k: v for k, v in feed.items() if k in self._inputs}

    def detect(self, image: np.ndarray) -> Detections:
        if image is None or np.asarray(image).size == 0:
            raise ValueError("cannot detect on an empty image")
        h, w = image.shape[:2]
        outs = self.model.run(self._preprocess(image))
        rows = np.asarray(outs[0], dtype=np.float32).reshape(-1, 6)
        if len(outs) > 1:
            n = int(np.asarray(outs[1]).reshape(-1)[0])
            rows = rows[:n]
        keep = rows[:, 1] >= self.threshold
        rows = rows[keep]
        if not len(rows):
            return Detections.empty()
        boxes = rows[:, 2:6].copy()
        boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, w)
        boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, h)
        boxes = np.round(boxes).astype(np.int32)
        ok = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        order = np.argsort(-rows[ok, 1], kind="stable")
        return Detections(boxes[ok][order], rows[ok, 1][order])
