"""Tray segmentation (kiosk.detect.tray) on trays rendered by kiosk.demo.scenes and on plain shapes."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from kiosk.demo import scenes as demo
from kiosk.detect import Detections, Detector, make_detector
from kiosk.detect.tray import TraySegmenter


def _iou(a, b) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


def assert_matches(gt_boxes: np.ndarray, det: Detections, what: str = "") -> None:
    """Every ground-truth box has exactly one detection with IoU >= 0.5, and no extras."""
    iou = np.array([[_iou(g, d) for d in det.boxes] for g in gt_boxes]).reshape(
        len(gt_boxes), len(det))
    hits = iou >= 0.5
    assert (hits.sum(axis=1) == 1).all(), (
        f"{what}: items not found exactly once: {np.nonzero(hits.sum(axis=1) != 1)[0].tolist()} "
        f"(gt {len(gt_boxes)}, detections {len(det)})")
    assert (hits.sum(axis=0) >= 1).all(), f"{what}: extra detections {det.boxes[~hits.any(0)]}"


def assert_well_formed(det: Detections, shape) -> None:
    h, w = shape[:2]
    assert det.boxes.dtype == np.int32 and det.scores.dtype == np.float32
    assert det.masks is not None and len(det.masks) == len(det)
    for (x1, y1, x2, y2), m, s in zip(det.boxes, det.masks, det.scores):
        assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
        assert m.dtype == bool and m.shape == (y2 - y1, x2 - x1)
        assert m.mean() > 0.3
        assert 0.0 <= s <= 1.0


def _noisy(img: np.ndarray, seed: int, sigma: float = 1.5) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0, sigma, img.shape)
    return np.clip(img.astype(np.float32) + noise, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def background() -> np.ndarray:
    return _noisy(demo.empty_tray(), 99)


@pytest.fixture(scope="module", params=["calibrated", "uncalibrated"])
def segmenter(request, background) -> TraySegmenter:
    return TraySegmenter(background if request.param == "calibrated" else None)


@pytest.mark.parametrize("name", [t[0] for t in demo.DEMO_TRAYS])
def test_demo_trays_every_item_found(segmenter, name):
    tray, _ = demo.demo_tray(name)
    image = _noisy(tray.image, 1)
    det = segmenter.detect(image)
    assert_matches(tray.boxes, det, name)
    assert_well_formed(det, image.shape)


@pytest.mark.parametrize("seed", [3, 4, 5, 6])
def test_random_trays(segmenter, seed):
    rng = np.random.default_rng(seed)
    skus = [p.sku for p in rng.choice(demo.PRODUCTS, size=int(rng.integers(3, 12)))]
    tray = demo.render_tray(demo.random_layout(skus, rng), rng=rng, noise=1.5)
    assert_matches(tray.boxes, segmenter.detect(tray.image), f"seed {seed}")


def test_empty_tray_gives_nothing(segmenter):
    assert len(segmenter.detect(_noisy(demo.empty_tray(), 5))) == 0
    assert len(segmenter.detect(demo.empty_tray())) == 0


def _shadowed(img: np.ndarray) -> np.ndarray:
    """A soft blob shadow (×0.7) and a hard-edged band shadow (×0.8) across the tray."""
    h, w = img.shape[:2]
    dark = np.zeros((h, w), np.float32)
    cv2.ellipse(dark, (int(w * 0.35), int(h * 0.5)), (int(w * 0.2), int(h * 0.3)), 20, 0, 360,
                0.3, -1)
    dark = cv2.GaussianBlur(dark, (0, 0), 25)
    band = np.zeros((h, w), np.float32)
    cv2.rectangle(band, (int(w * 0.6), 0), (int(w * 0.75), h), 0.2, -1)
    dark = np.maximum(dark, cv2.GaussianBlur(band, (0, 0), 2))
    return np.clip(img * (1.0 - dark[..., None]), 0, 255).astype(np.uint8)


def _relit(img: np.ndarray, gain: float = 0.85, offset: float = 15.0) -> np.ndarray:
    return np.clip(img.astype(np.float32) * gain + offset, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("change", ["shadow", "relight", "relight_bright"])
def test_shadows_and_lighting_create_no_items(segmenter, change):
    fn = {"shadow": _shadowed, "relight": _relit,
          "relight_bright": lambda im: _relit(im, 1.12, -5)}[change]
    assert len(segmenter.detect(fn(_noisy(demo.empty_tray(), 6)))) == 0
    tray, _ = demo.demo_tray("tray_03")
    assert_matches(tray.boxes, segmenter.detect(fn(_noisy(tray.image, 7))), change)


# (anchor sku, anchor angle, other sku, other angle, approach direction)
TOUCHING = [
    ("DEMO-001", 0, "DEMO-009", 90, 0),      # T: can end against a can side
    ("DEMO-012", 0, "DEMO-001", 90, -60),    # L: can standing on a bag's end
    ("DEMO-002", 30, "DEMO-011", -40, 200),  # V: bottle and can at an angle
    ("DEMO-004", 0, "DEMO-005", 45, 10),     # the look-alike bags, side by side at 45°
    ("DEMO-001", 20, "DEMO-001", 110, 90),   # same product, same colour, touching
    ("DEMO-010", 0, "DEMO-013", 60, 90),     # two dark brown bars
]


@pytest.mark.parametrize("a, a_angle, b, b_angle, direction", TOUCHING)
def test_touching_pairs_are_split(segmenter, a, a_angle, b, b_angle, direction):
    anchor = (a, 620, 360, a_angle)
    x, y = demo.touching_position(anchor, b, b_angle, direction)
    tray = demo.render_tray([anchor, (b, x, y, b_angle)], rng=np.random.default_rng(1), noise=1.5)
    # they really touch: one blob in the ground-truth alpha
    det = segmenter.detect(tray.image)
    assert len(det) == 2, det.boxes
    assert_matches(tray.boxes, det, f"{a}+{b}")


@pytest.mark.parametrize("sku", ["DEMO-002", "DEMO-010", "DEMO-013", "DEMO-001"])
@pytest.mark.parametrize("angle", [0, 37, 90, 145])
def test_elongated_item_not_split(segmenter, sku, angle):
    tray = demo.render_tray([(sku, 640, 360, angle)], noise=1.5, rng=np.random.default_rng(2))
    det = segmenter.detect(tray.image)
    assert len(det) == 1
    assert_matches(tray.boxes, det, sku)


def test_many_small_items_all_returned(segmenter):
    rng = np.random.default_rng(11)
    skus = [demo.PRODUCTS[i % len(demo.PRODUCTS)].sku for i in range(20)]
    layout = demo.random_layout(skus, rng, scale=0.5, gap=10)
    tray = demo.render_tray(layout, rng=rng, noise=1.5)
    det = segmenter.detect(tray.image)
    assert len(det) == 20
    assert_matches(tray.boxes, det, "20 small")


def test_make_detector_tray(background):
    det = make_detector("tray", background=background)
    assert isinstance(det, TraySegmenter) and isinstance(det, Detector)
    assert det.name == "tray" and det.calibrated
    tray, _ = demo.demo_tray("tray_02")
    assert_matches(tray.boxes, det.detect(tray.image))
    assert not make_detector(None).calibrated


def test_calibrate_and_forget(background):
    seg = TraySegmenter()
    seg.calibrate(background)
    assert seg.calibrated
    seg.calibrate(None)
    assert not seg.calibrated
    with pytest.raises(ValueError):
        seg.calibrate(np.zeros((10, 10), np.uint8))


@pytest.mark.parametrize("tray_bgr", [(180, 190, 200), (90, 140, 60), (235, 235, 235)])
def test_plain_tray_with_shapes(tray_bgr):
    """Uncalibrated, on a flat tray of any colour: simple coloured shapes are found."""
    img = np.empty((480, 640, 3), np.uint8)
    img[:] = tray_bgr
    shapes = [
        ((60, 60, 180, 160), lambda im, c: cv2.rectangle(im, (60, 60), (179, 159), c, -1),
         (30, 30, 200)),
        ((300, 80, 420, 200), lambda im, c: cv2.circle(im, (360, 140), 60, c, -1), (200, 60, 30)),
        ((460, 300, 600, 400),
         lambda im, c: cv2.ellipse(im, (530, 350), (70, 50), 0, 0, 360, c, -1), (40, 200, 240)),
        ((100, 300, 300, 340), lambda im, c: cv2.rectangle(im, (100, 300), (299, 339), c, -1),
         (25, 25, 25)),
    ]
    gt = []
    for box, draw, colour in shapes:
        draw(img, colour)
        gt.append(box)
    img = _noisy(img, 3, 2.0)
    det = TraySegmenter().detect(img)
    assert_matches(np.array(gt), det, f"plain {tray_bgr}")
    assert_well_formed(det, img.shape)


def test_no_whole_image_box_on_garbage():
    """A frame that is nothing like the tray must not become one whole-image 'item'."""
    seg = TraySegmenter(demo.empty_tray())
    noise = np.random.default_rng(0).integers(0, 255, (720, 1280, 3), dtype=np.uint8)
    det = seg.detect(noise)
    h, w = noise.shape[:2]
    assert all((x2 - x1) * (y2 - y1) < 0.9 * h * w for x1, y1, x2, y2 in det.boxes)


def test_other_frame_sizes(background):
    seg = TraySegmenter(background)
    tray, _ = demo.demo_tray("tray_01")
    small = cv2.resize(tray.image, (640, 360), interpolation=cv2.INTER_AREA)
    det = seg.detect(small)  # the calibration image is rescaled to the frame
    assert_matches(tray.boxes // 2, det, "half size")
