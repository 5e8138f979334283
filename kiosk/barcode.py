"""Barcode fallback: read EAN-13 / EAN-8 / UPC-A codes off an item crop.

:func:`read_barcodes` uses OpenCV's ``cv2.barcode.BarcodeDetector`` for decoding.  Its built-in
localiser only finds bars within a narrow range of sizes relative to the image, so the candidate
regions also come from a small localiser of our own (strong, consistently oriented gradients:
the structure tensor's coherence; any rotation) and from the whole image.  Every decoded code is
checked with its check digit (:func:`kiosk.catalog.check_barcode`); only valid codes are returned.
"""
from __future__ import annotations

import cv2
import numpy as np

from kiosk.catalog import check_barcode

_MIN_SIDE = 240  # smaller images are upscaled before decoding
_MAX_SIDE = 1600  # larger images are downscaled

_detector: cv2.barcode.BarcodeDetector | None = None


def _get_detector() -> cv2.barcode.BarcodeDetector:
    global _detector
    if _detector is None:
        _detector = cv2.barcode.BarcodeDetector()
    return _detector


def _grey(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
    if image.ndim == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    return image.astype(np.uint8, copy=False)


def _rescale(grey: np.ndarray) -> np.ndarray:
    h, w = grey.shape[:2]
    side = max(h, w)
    if side < _MIN_SIDE:
        f = _MIN_SIDE / side
        return cv2.resize(grey, None, fx=f, fy=f, interpolation=cv2.INTER_CUBIC)
    if side > _MAX_SIDE:
        f = _MAX_SIDE / side
        return cv2.resize(grey, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
    return grey


def barcode_regions(grey: np.ndarray, max_regions: int = 6) -> list[np.ndarray]:
    """Patches of ``grey`` that look like 1-D barcodes, each turned so that its bars are
    vertical (with a margin for the quiet zone).

    Bars make strong gradients that all point the same way; text and pictures have gradients
    in every direction.  The coherence of the smoothed structure tensor picks out the former,
    and its orientation says how to turn the patch.
    """
    g = grey.astype(np.float32)
    ix = cv2.Scharr(g, cv2.CV_32F, 1, 0)
    iy = cv2.Scharr(g, cv2.CV_32F, 0, 1)
    side = max(grey.shape[:2])
    sigma = max(2.0, side / 120.0)
    jxx = cv2.GaussianBlur(ix * ix, (0, 0), sigma)
    jyy = cv2.GaussianBlur(iy * iy, (0, 0), sigma)
    jxy = cv2.GaussianBlur(ix * iy, (0, 0), sigma)
    energy = jxx + jyy
    coherence = np.sqrt((jxx - jyy) ** 2 + 4 * jxy ** 2) / (energy + 1e-6)
    strong = energy > max(float(np.percentile(energy, 50)) * 2.0, 1e3)
    mask = ((coherence > 0.75) & strong).astype(np.uint8)
    k = max(3, int(round(sigma * 2)) | 1)
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((k, k), np.uint8))
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((k, k), np.uint8))
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    min_area = max(200.0, 0.002 * grey.shape[0] * grey.shape[1])
    found = []
    for c in contours:
        area = cv2.contourArea(c)
        if area < min_area:
            continue
        region = np.zeros(mask.shape, np.uint8)
        cv2.drawContours(region, [c], -1, 1, thickness=-1)
        sel = region.astype(bool)
        a, b, d = float(jxx[sel].sum()), float(jyy[sel].sum()), float(jxy[sel].sum())
        theta = 0.5 * np.arctan2(2 * d, a - b)  # gradient direction = across the bars
        u = np.array([np.cos(theta), np.sin(theta)])  # across the bars
        v = np.array([-u[1], u[0]])  # along the bars
        pts = c.reshape(-1, 2).astype(np.float64)
        pu, pv = pts @ u, pts @ v
        length, height = pu.max() - pu.min(), pv.max() - pv.min()
        if length < 16 or height < 8:
            continue
        pad_u, pad_v = 0.12 * length + k, 0.05 * height + k
        out_w = int(round(length + 2 * pad_u))
        out_h = int(round(height + 2 * pad_v))
        # affine map: output (x, y) -> image point origin + x*u + y*v
        origin = (pu.min() - pad_u) * u + (pv.min() - pad_v) * v
        src = np.float32([origin, origin + out_w * u, origin + out_h * v])
        dst = np.float32([[0, 0], [out_w, 0], [0, out_h]])
        m = cv2.getAffineTransform(src, dst)
        patch = cv2.warpAffine(grey, m, (out_w, out_h), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)
        found.append((area, patch))
    found.sort(key=lambda r: -r[0])
    return [p for _, p in found[:max_regions]]


def _decode_whole(det: cv2.barcode.BarcodeDetector, patch: np.ndarray) -> list[str]:
    """Decode ``patch`` taken as one barcode with vertical bars (either way round)."""
    h, w = patch.shape[:2]
    if w > 4 * h:  # the decoder samples a few scan lines; give it some height
        patch = cv2.resize(patch, (w, w // 4), interpolation=cv2.INTER_LINEAR)
        h = patch.shape[0]
    quad = np.float32([[[0, h - 1], [0, 0], [w - 1, 0], [w - 1, h - 1]]])
    try:
        ok, codes, _ = det.decodeMulti(patch, quad)
    except cv2.error:
        return []
    return list(codes) if ok else []


def _valid(code: str) -> str | None:
    try:
        return check_barcode(code)
    except ValueError:
        return None


def read_barcodes(image: np.ndarray) -> list[str]:
    """Valid EAN-13 / EAN-8 / UPC-A codes visible in ``image`` (BGR, BGRA or grey), in the
    order found, without repeats.  Never raises on odd images: no code -> ``[]``."""
    image = np.asarray(image)
    if image.size == 0 or image.ndim not in (2, 3) or min(image.shape[:2]) < 8:
        return []
    grey = _rescale(_grey(image))
    det = _get_detector()
    found: list[str] = []

    def keep(codes) -> None:
        for code in codes or ():
            code = _valid(str(code))
            if code and code not in found:
                found.append(code)

    # 1. OpenCV's own localiser, at a few scales (it only likes a band of bar sizes)
    for f in (1.0, 0.5, 2.0):
        img = grey if f == 1.0 else cv2.resize(
            grey, None, fx=f, fy=f, interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_CUBIC)
        if min(img.shape[:2]) < 16 or max(img.shape[:2]) > 2 * _MAX_SIDE:
            continue
        try:
            ok, codes, _, _ = det.detectAndDecodeMulti(img)
        except cv2.error:
            continue
        if ok:
            keep(codes)
        if found:
            return found
    # 2. our regions, then the whole image
    for patch in [*barcode_regions(grey), grey]:
        keep(_decode_whole(det, patch))
        if found:
            break
    return found
