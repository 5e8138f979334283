"""PaddleDetector against a tiny model exported with PaddleDetection's inference signature."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kiosk.detect import Detections, Detector, make_detector
from kiosk.runtime.paddle import import_paddle

paddle = import_paddle()

TARGET = 64  # infer_cfg Resize target_size
BRIGHT = (30, 50, 90, 150)  # y1, x1, y2, x2 of the white block in the 120x200 test image


class TinyDet(paddle.nn.Layer):
    """Finds the box of bright pixels in ``image`` (a real function of the preprocessed input)
    and reports it in original coordinates via ``scale_factor``, plus fixed extra rows:
    a low-score box, a box running off the image, and a junk row past ``bbox_num``."""

    def __init__(self):
        super().__init__()
        # exported models always carry a params file, so give this one a (unit) weight
        self.gain = self.create_parameter([1], default_initializer=paddle.nn.initializer.Constant(1.0))

    def forward(self, im_shape, image, scale_factor):
        g = image.mean(axis=1)[0] * self.gain  # (H, W), normalised
        mask = (g > 0.5).astype("float32")
        h = paddle.shape(image)[2]
        w = paddle.shape(image)[3]
        cols = mask.max(axis=0)
        rows = mask.max(axis=1)
        xs = paddle.arange(w, dtype="float32")
        ys = paddle.arange(h, dtype="float32")
        x1 = (xs + (1.0 - cols) * 1e6).min()
        x2 = (xs - (1.0 - cols) * 1e6).max() + 1.0
        y1 = (ys + (1.0 - rows) * 1e6).min()
        y2 = (ys - (1.0 - rows) * 1e6).max() + 1.0
        sy = scale_factor[0, 0]
        sx = scale_factor[0, 1]
        ih = im_shape[0, 0]
        iw = im_shape[0, 1]
        one = paddle.ones([], "float32")
        bright = paddle.stack([0.0 * one, 0.9 * one, x1 / sx, y1 / sy, x2 / sx, y2 / sy])
        low = paddle.stack([1.0 * one, 0.3 * one, 0.0 * one, 0.0 * one, 10.0 * one, 10.0 * one])
        # spans -10%..120% of the (resized) image, so it must be clipped
        off = paddle.stack([2.0 * one, 0.8 * one, -0.1 * iw / sx, -0.1 * ih / sy, 1.2 * iw / sx, 0.5 * ih / sy])
        junk = paddle.stack([3.0 * one, 0.99 * one, 1.0 * one, 1.0 * one, 5.0 * one, 5.0 * one])
        out = paddle.stack([bright, low, off, junk])
        num = paddle.to_tensor([3], dtype="int32")
        return out, num


INFER_CFG = """\
mode: paddle
draw_threshold: 0.5
metric: COCO
use_dynamic_shape: false
arch: PicoDet
min_subgraph_size: 3
Preprocess:
- interp: 2
  keep_ratio: {keep_ratio}
  target_size:
  - {t}
  - {t}
  type: Resize
- is_scale: true
  mean:
  - 0.485
  - 0.456
  - 0.406
  std:
  - 0.229
  - 0.224
  - 0.225
  type: NormalizeImage
- type: Permute
label_list:
- item
- other
- edge
- junk
"""


@pytest.fixture(scope="module")
def det_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("tinydet")
    net = TinyDet()
    net.eval()
    spec = [
        paddle.static.InputSpec([None, 2], "float32", "im_shape"),
        paddle.static.InputSpec([None, 3, None, None], "float32", "image"),
        paddle.static.InputSpec([None, 2], "float32", "scale_factor"),
    ]
    paddle.jit.save(net, str(d / "model"), input_spec=spec)
    (d / "infer_cfg.yml").write_text(INFER_CFG.format(keep_ratio="false", t=TARGET))
    return d


def _image() -> np.ndarray:
    img = np.zeros((120, 200, 3), np.uint8)
    y1, x1, y2, x2 = BRIGHT
    img[y1:y2, x1:x2] = 255
    return img


def _check(dets: Detections, img: np.ndarray, tol: float) -> None:
    h, w = img.shape[:2]
    assert dets.boxes.dtype == np.int32 and dets.scores.dtype == np.float32
    # low-score row dropped by the threshold, junk row beyond bbox_num ignored
    np.testing.assert_allclose(sorted(dets.scores.tolist()), [0.8, 0.9], atol=1e-6)
    bright = dets.boxes[np.argmin(np.abs(dets.scores - 0.9))]
    y1, x1, y2, x2 = BRIGHT
    np.testing.assert_allclose(bright, [x1, y1, x2, y2], atol=tol)
    edge = dets.boxes[np.argmin(np.abs(dets.scores - 0.8))]
    assert edge[0] == 0 and edge[1] == 0 and edge[2] == w  # clipped to the image
    assert abs(edge[3] - 0.5 * h) <= 1
    assert (dets.boxes[:, [0, 2]] <= w).all() and (dets.boxes[:, [1, 3]] <= h).all()


def test_paddle_detector_maps_boxes_back(det_dir):
    from kiosk.detect.paddle import PaddleDetector

    det = PaddleDetector(det_dir, threshold=0.5)
    assert isinstance(det, Detector) and det.name == "paddle"
    img = _image()
    # resized 120x200 -> 64x64: one resized pixel is ~1.9 x 3.1 original pixels
    _check(det.detect(img), img, tol=4)


def test_threshold(det_dir):
    from kiosk.detect.paddle import PaddleDetector

    assert len(PaddleDetector(det_dir, threshold=0.2).detect(_image())) == 3
    assert len(PaddleDetector(det_dir, threshold=0.95).detect(_image())) == 0


def test_keep_ratio_resize(det_dir, tmp_path):
    from kiosk.detect.paddle import PaddleDetector

    d = tmp_path / "kr"
    d.mkdir()
    for f in det_dir.iterdir():
        (d / f.name).write_bytes(f.read_bytes())
    (d / "infer_cfg.yml").write_text(INFER_CFG.format(keep_ratio="true", t=96))
    img = _image()
    _check(PaddleDetector(d).detect(img), img, tol=3)


def test_make_detector_spec(det_dir):
    det = make_detector(f"paddle:{det_dir}")
    assert det.name == "paddle"
    img = _image()
    _check(det.detect(img), img, tol=4)
    # grayscale input is accepted too
    assert len(det.detect(img[:, :, 0])) == 2


def test_missing_files_clear_error(tmp_path):
    from kiosk.detect.paddle import PaddleDetector

    with pytest.raises(FileNotFoundError, match="no exported program"):
        PaddleDetector(tmp_path)
