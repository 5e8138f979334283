"""Built-in demo catalogue: products, rendered package images and demo trays.

Everything here is drawn by this module (PIL + OpenCV), so the demo needs no downloaded data:

* :data:`PRODUCTS`: a dozen products with Chinese names, prices in fen and EAN-13 barcodes,
  including a deliberate look-alike pair (乐事原味 / 乐事黄瓜味: same bag, different flavour band).
* :func:`render_product`: one view of a package (BGRA, transparent background), varied in
  rotation, scale, perspective, lighting, blur and noise by ``view`` and ``rng``.
* :func:`render_tray` / :func:`empty_tray`: products composited on a textured tray with drop
  shadows, plus their ground-truth boxes.
* :func:`build_demo_assets` (``python -m kiosk.demo.scenes``): the gallery under ``gallery/demo`` and the
  catalogue, calibration image and demo trays under ``resources/demo``, all from fixed seeds.
"""
from __future__ import annotations

import argparse
import csv
import functools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, Sequence

import cv2
import numpy as np
from PIL import Image, ImageDraw

from kiosk.ean import is_ean13 as ean13_is_valid, with_check_digit
from kiosk.fonts import cjk_font
from kiosk.money import format_amount
from kiosk.paths import PROJECT_DIR

TRAY_SIZE = (1280, 720)  # width, height
_SS = 3  # supersampling factor for package drawing

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class Style:
    """How a package is drawn.  Sizes are in tray pixels (1280×720 tray)."""

    shape: str  # can | bottle | cup | box | carton | bag | bar
    size: tuple[int, int]  # width, height of the canonical (upright) package
    body: RGB
    accent: RGB
    text: RGB
    title: str  # the big brand text
    subtitle: str = ""  # flavour / size line
    band: RGB | None = None  # flavour colour band
    motif: str = ""  # wave | ring | face | bull | cookie | chips | grass | stripes | swirl | heart


@dataclass(frozen=True)
class DemoProduct:
    sku: str
    name: str
    price: int  # fen
    barcode: str
    style: Style = field(compare=False)

    @property
    def price_yuan(self) -> str:
        return format_amount(self.price)


def _p(i: int, name: str, price: int, style: Style) -> DemoProduct:
    return DemoProduct(f"DEMO-{i:03d}", name, price, with_check_digit(f"69{i:03d}2024{i:03d}"), style)


PRODUCTS: tuple[DemoProduct, ...] = (
    _p(1, "可口可乐 330ml", 350, Style("can", (172, 92), (228, 30, 43), (255, 255, 255),
                                      (255, 255, 255), "可口可乐", "330ml", motif="wave")),
    _p(2, "农夫山泉 550ml", 200, Style("bottle", (236, 78), (205, 228, 240), (214, 32, 40),
                                      (255, 255, 255), "农夫山泉", "550ml", band=(214, 32, 40),
                                      motif="stripes")),
    _p(3, "康师傅红烧牛肉面", 450, Style("cup", (150, 150), (200, 30, 30), (250, 200, 40),
                                     (200, 20, 20), "康师傅", "红烧牛肉面", motif="ring")),
    _p(4, "乐事原味薯片", 750, Style("bag", (176, 222), (250, 205, 20), (220, 25, 30),
                                  (255, 255, 255), "乐事", "原味", band=(255, 236, 150),
                                  motif="chips")),
    _p(5, "乐事黄瓜味薯片", 750, Style("bag", (176, 222), (250, 205, 20), (220, 25, 30),
                                   (255, 255, 255), "乐事", "黄瓜味", band=(60, 170, 70),
                                   motif="chips")),
    _p(6, "奥利奥饼干", 600, Style("box", (204, 100), (0, 80, 170), (25, 25, 30),
                                (255, 255, 255), "奥利奥", "夹心饼干", motif="cookie")),
    _p(7, "伊利纯牛奶 250ml", 300, Style("carton", (102, 152), (245, 245, 240), (40, 150, 60),
                                      (20, 70, 160), "伊利", "纯牛奶", band=(40, 150, 60),
                                      motif="grass")),
    _p(8, "蒙牛酸奶", 580, Style("carton", (112, 140), (120, 190, 235), (30, 120, 60),
                               (255, 255, 255), "蒙牛", "酸奶", band=(255, 255, 255),
                               motif="swirl")),
    _p(9, "旺仔牛奶", 550, Style("can", (150, 98), (220, 20, 30), (255, 220, 60),
                               (255, 230, 80), "旺仔牛奶", "", motif="face")),
    _p(10, "德芙巧克力", 1290, Style("bar", (214, 66), (95, 45, 25), (220, 170, 80),
                                  (240, 200, 120), "德芙", "丝滑牛奶巧克力", motif="heart")),
    _p(11, "红牛", 600, Style("can", (160, 80), (235, 190, 40), (200, 20, 30),
                            (200, 20, 30), "红牛", "维生素功能饮料", band=(30, 50, 140),
                            motif="bull")),
    _p(12, "卫龙辣条", 500, Style("bag", (200, 120), (255, 255, 255), (225, 30, 35),
                              (225, 30, 35), "卫龙", "辣条", band=(225, 30, 35),
                              motif="stripes")),
    _p(13, "士力架", 350, Style("bar", (196, 62), (70, 40, 25), (30, 90, 200),
                             (255, 255, 255), "士力架", "花生夹心", motif="stripes")),
)

LOOKALIKES: tuple[str, str] = ("DEMO-004", "DEMO-005")

PRODUCTS_BY_SKU: dict[str, DemoProduct] = {p.sku: p for p in PRODUCTS}


def product(sku: str) -> DemoProduct:
    return PRODUCTS_BY_SKU[sku]


# --------------------------------------------------------------------------------------------
# Package drawing


def _fit_font(draw: ImageDraw.ImageDraw, text: str, box_w: float, box_h: float, max_size: int):
    size = max(6, int(max_size))
    while size > 6:
        font = cjk_font(size)
        x0, y0, x1, y1 = draw.textbbox((0, 0), text, font=font)
        if x1 - x0 <= box_w and y1 - y0 <= box_h:
            return font
        size = int(size * 0.9)
    return cjk_font(6)


def _text(draw: ImageDraw.ImageDraw, text: str, cx: float, cy: float, box_w: float,
          box_h: float, fill: RGB, max_size: int | None = None, stroke: RGB | None = None):
    if not text:
        return
    font = _fit_font(draw, text, box_w, box_h, max_size or int(box_h))
    sw = max(1, font.size // 14) if stroke else 0
    draw.text((cx, cy), text, font=font, fill=fill, anchor="mm",
              stroke_width=sw, stroke_fill=stroke)


def _crimp(draw, x0, x1, y, depth, teeth, fill, up: bool):
    """Zig-zag heat-seal edge along a horizontal line (bags, bars)."""
    pts = []
    step = (x1 - x0) / teeth
    for i in range(teeth + 1):
        pts.append((x0 + i * step, y))
        if i < teeth:
            pts.append((x0 + (i + 0.5) * step, y - depth if up else y + depth))
    draw.polygon(pts, fill=fill)


def _draw_motif(draw: ImageDraw.ImageDraw, st: Style, x0, y0, x1, y1, s: float) -> None:
    """Decorations inside the rectangle (x0, y0, x1, y1); s = pixels per tray pixel."""
    w, h = x1 - x0, y1 - y0
    a = st.accent
    if st.motif == "wave":
        pts = [(x0 + w * t / 40, y0 + h * (0.72 + 0.12 * math.sin(t / 40 * 2 * math.pi)))
               for t in range(41)]
        draw.line(pts, fill=a, width=max(2, int(5 * s)))
        pts2 = [(x, y + 7 * s) for x, y in pts]
        draw.line(pts2, fill=a, width=max(1, int(2 * s)))
    elif st.motif == "stripes":
        for k in range(3):
            yy = y0 + h * (0.08 + 0.05 * k)
            draw.rectangle([x0, yy, x1, yy + 2.2 * s], fill=a)
            yy = y1 - h * (0.08 + 0.05 * k)
            draw.rectangle([x0, yy - 2.2 * s, x1, yy], fill=a)
    elif st.motif == "face":
        r = h * 0.32
        cx, cy = x0 + w * 0.2, y0 + h * 0.5
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=(255, 225, 190), outline=a,
                     width=int(2 * s))
        for dx in (-0.35, 0.35):
            draw.ellipse([cx + dx * r - 0.1 * r, cy - 0.25 * r, cx + dx * r + 0.1 * r,
                          cy - 0.05 * r], fill=(20, 20, 20))
        draw.arc([cx - 0.5 * r, cy - 0.3 * r, cx + 0.5 * r, cy + 0.55 * r], 20, 160,
                 fill=(200, 20, 30), width=int(2.5 * s))
    elif st.motif == "bull":
        r = h * 0.22
        cx, cy = x0 + w * 0.5, y0 + h * 0.5
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=(230, 60, 40))
        for side in (-1, 1):
            bx = cx + side * r * 1.9
            draw.polygon([(bx - side * r * 0.9, cy + r * 0.8), (bx + side * r * 0.6, cy - r * 0.2),
                          (bx + side * r * 0.2, cy + r * 0.9)], fill=st.accent)
    elif st.motif == "cookie":
        r = h * 0.34
        cx, cy = x1 - w * 0.2, y0 + h * 0.52
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=a)
        for k in (0.75, 0.5):
            draw.ellipse([cx - r * k, cy - r * k, cx + r * k, cy + r * k],
                         outline=(70, 70, 80), width=int(2 * s))
        draw.rectangle([x0, y1 - h * 0.12, x1, y1], fill=(255, 255, 255))
    elif st.motif == "chips":
        for k, (fx, fy) in enumerate(((0.3, 0.7), (0.55, 0.76), (0.72, 0.66))):
            cx, cy, r = x0 + w * fx, y0 + h * fy, w * 0.14
            draw.ellipse([cx - r, cy - r * 0.7, cx + r, cy + r * 0.7], fill=(240, 180, 60),
                         outline=(200, 130, 30), width=int(2 * s))
    elif st.motif == "grass":
        base = y1 - h * 0.12
        pts = [(x0, y1)] + [(x0 + w * t / 12, base - (h * 0.1 if t % 2 else 0))
                            for t in range(13)] + [(x1, y1)]
        draw.polygon(pts, fill=a)
    elif st.motif == "swirl":
        cx, cy, r = x0 + w * 0.5, y0 + h * 0.68, w * 0.3
        for k in range(3):
            rr = r * (1 - 0.28 * k)
            draw.arc([cx - rr, cy - rr * 0.6, cx + rr, cy + rr * 0.6], 180 + 30 * k, 360 + 30 * k,
                     fill=(255, 255, 255), width=int(3 * s))
    elif st.motif == "heart":
        cx, cy, r = x0 + w * 0.12, y0 + h * 0.5, h * 0.22
        draw.ellipse([cx - r, cy - r, cx, cy], fill=a)
        draw.ellipse([cx, cy - r, cx + r, cy], fill=a)
        draw.polygon([(cx - r, cy - r * 0.4), (cx + r, cy - r * 0.4), (cx, cy + r)], fill=a)
        draw.line([(x0 + w * 0.25, y0 + h * 0.1), (x1 - w * 0.05, y0 + h * 0.1)], fill=a,
                  width=int(2 * s))


def _shade_cylinder(img: np.ndarray, axis: int, strength: float = 0.35) -> None:
    """Darken towards the long edges as a lying cylinder (can, bottle) would be lit."""
    n = img.shape[axis]
    t = np.linspace(-1.0, 1.0, n, dtype=np.float32)
    prof = 1.0 - strength * t**4 + 0.12 * np.exp(-((t + 0.35) ** 2) / 0.02)  # specular streak
    shape = [1, 1]
    shape[axis] = n
    rgb = img[..., :3].astype(np.float32) * prof.reshape(shape)[..., None]
    img[..., :3] = np.clip(rgb, 0, 255).astype(np.uint8)


@functools.lru_cache(maxsize=None)
def _package(sku: str) -> np.ndarray:
    """The canonical, upright package drawing of ``sku`` as RGBA (tray scale)."""
    return draw_package(product(sku).style)


@functools.lru_cache(maxsize=64)
def draw_package(st: Style) -> np.ndarray:
    """Draw a package of style ``st``, upright, as RGBA at tray scale (cached; do not modify)."""
    s = _SS
    W, H = st.size[0] * s, st.size[1] * s
    im = Image.new("RGBA", (W, H), (0, 0, 0, 0))
    d = ImageDraw.Draw(im)
    edge = tuple(int(c * 0.7) for c in st.body)
    cyl_axis = None
    if st.shape == "can":
        rim = int(0.09 * W)
        d.rounded_rectangle([0, 0, W - 1, H - 1], radius=int(0.14 * H), fill=(185, 188, 195))
        d.rectangle([rim, 0, W - 1 - rim // 2, H - 1], fill=st.body)
        d.rectangle([rim - 3 * s, 0, rim, H - 1], fill=(150, 152, 160))
        if st.band:
            d.rectangle([rim, H * 0.78, W - rim // 2, H], fill=st.band)
        _draw_motif(d, st, rim, 0, W - rim // 2, H, s)
        tx0 = rim + (0.32 * W if st.motif == "face" else 0)
        _text(d, st.title, (tx0 + W - rim // 2) / 2, H * 0.42, (W - rim // 2 - tx0) * 0.88,
              H * 0.42, st.text, stroke=(40, 20, 20) if st.motif == "bull" else None)
        if st.band:  # the size / flavour line sits in the band
            _text(d, st.subtitle, (rim + W - rim // 2) / 2, H * 0.89, (W - rim) * 0.8, H * 0.16,
                  (255, 255, 255))
        else:
            _text(d, st.subtitle, (tx0 + W - rim // 2) / 2, H * 0.12, (W - tx0) * 0.4,
                  H * 0.14, st.text)
        cyl_axis = 0
    elif st.shape == "bottle":
        body_w = int(W * 0.72)
        d.rounded_rectangle([0, 0, body_w, H - 1], radius=int(0.22 * H), fill=st.body)
        neck = H * 0.46
        d.polygon([(body_w - 2 * s, 0), (body_w + 0.12 * W, (H - neck) / 2),
                   (body_w + 0.12 * W, (H + neck) / 2), (body_w - 2 * s, H - 1)], fill=st.body)
        d.rectangle([body_w + 0.12 * W, (H - neck) / 2, W * 0.92, (H + neck) / 2], fill=st.body)
        d.rounded_rectangle([W * 0.9, (H - neck * 1.15) / 2, W - 1, (H + neck * 1.15) / 2],
                            radius=int(3 * s), fill=st.accent)
        for k in range(1, 4):  # moulded rings
            xx = body_w * k / 9
            d.line([(xx, 0.1 * H), (xx, 0.9 * H)], fill=(170, 200, 220), width=int(1.5 * s))
        lx0, lx1 = body_w * 0.38, body_w * 0.98
        d.rectangle([lx0, 0, lx1, H - 1], fill=st.band)
        _draw_motif(d, st, lx0, 0, lx1, H, s)
        _text(d, st.title, (lx0 + lx1) / 2, H * 0.45, (lx1 - lx0) * 0.9, H * 0.42, st.text)
        _text(d, st.subtitle, (lx0 + lx1) / 2, H * 0.74, (lx1 - lx0) * 0.5, H * 0.14, st.text)
        cyl_axis = 0
    elif st.shape == "cup":
        d.ellipse([0, 0, W - 1, H - 1], fill=st.body)
        m = 0.1 * W
        d.ellipse([m, m, W - 1 - m, H - 1 - m], fill=st.accent)
        d.pieslice([m, m, W - 1 - m, H - 1 - m], 200, 340, fill=(250, 245, 230))
        d.ellipse([W * 0.44, H * 0.17, W * 0.56, H * 0.29], fill=(140, 60, 20))  # beef
        _text(d, st.title, W / 2, H * 0.47, W * 0.62, H * 0.2, st.text, stroke=(255, 255, 255))
        _text(d, st.subtitle, W / 2, H * 0.66, W * 0.5, H * 0.1, (60, 20, 10))
        d.polygon([(W * 0.85, H * 0.12), (W * 0.99, H * 0.3), (W * 0.9, H * 0.33)],
                  fill=(240, 240, 240))  # lid tab
    elif st.shape in ("box", "carton"):
        d.rectangle([0, 0, W - 1, H - 1], fill=st.body)
        if st.shape == "carton":
            d.rectangle([0, 0, W - 1, H * 0.08], fill=tuple(int(c * 0.85) for c in st.body))
            d.ellipse([W * 0.72, H * 0.015, W * 0.86, H * 0.065], fill=(230, 230, 230))
            if st.band:
                d.rectangle([0, H * 0.58, W - 1, H * 0.66], fill=st.band)
            _draw_motif(d, st, 0, H * 0.08, W, H, s)
            _text(d, st.title, W / 2, H * 0.27, W * 0.8, H * 0.22, st.text)
            sub_fill = st.text if st.band != st.text else (255, 255, 255)
            _text(d, st.subtitle, W / 2, H * 0.47, W * 0.8, H * 0.12, sub_fill)
        else:
            _draw_motif(d, st, 0, 0, W, H, s)
            _text(d, st.title, W * 0.38, H * 0.4, W * 0.6, H * 0.42, st.text)
            _text(d, st.subtitle, W * 0.38, H * 0.72, W * 0.5, H * 0.16, st.text)
        d.rectangle([0, 0, W - 1, H - 1], outline=edge, width=int(1.5 * s))
    elif st.shape == "bag":
        crimp = int(0.06 * H)
        d.rounded_rectangle([0, crimp, W - 1, H - 1 - crimp], radius=int(0.05 * W), fill=st.body)
        seal = tuple(int(c * 0.9) for c in st.body)
        d.rectangle([W * 0.01, crimp, W * 0.99, crimp * 2], fill=seal)
        d.rectangle([W * 0.01, H - 2 * crimp, W * 0.99, H - crimp], fill=seal)
        _crimp(d, W * 0.01, W * 0.99, crimp, crimp, 14, seal, up=True)
        _crimp(d, W * 0.01, W * 0.99, H - crimp, crimp, 14, seal, up=False)
        if st.motif == "chips":
            cy = H * 0.3
            d.ellipse([W * 0.12, cy - H * 0.14, W * 0.88, cy + H * 0.14], fill=st.accent,
                      outline=(255, 255, 255), width=int(2 * s))
            _text(d, st.title, W / 2, cy, W * 0.5, H * 0.2, st.text)
            d.rectangle([0, H * 0.46, W - 1, H * 0.58], fill=st.band)
            dark = sum(st.band) < 450
            _text(d, st.subtitle, W / 2, H * 0.52, W * 0.6, H * 0.1,
                  (255, 255, 255) if dark else (150, 30, 20))
            _draw_motif(d, st, 0, H * 0.55, W, H * 0.92, s)
        else:
            d.rectangle([0, H * 0.22, W - 1, H * 0.78], fill=st.band)
            _draw_motif(d, st, 0, crimp, W, H - crimp, s)
            _text(d, st.title, W * 0.36, H * 0.5, W * 0.5, H * 0.42, (255, 255, 255))
            d.ellipse([W * 0.66, H * 0.3, W * 0.94, H * 0.7], fill=(255, 255, 255))
            _text(d, st.subtitle, W * 0.8, H * 0.5, W * 0.24, H * 0.24, st.accent)
    elif st.shape == "bar":
        crimp = int(0.05 * W)
        seal = tuple(int(c * 0.8) for c in st.body)
        d.rectangle([crimp, 0, W - 1 - crimp, H - 1], fill=st.body)
        # crimped ends: zig-zag along the short sides
        for x_edge, sign in ((crimp, -1), (W - 1 - crimp, 1)):
            pts = []
            teeth = 8
            for i in range(teeth + 1):
                pts.append((x_edge, H * i / teeth))
                if i < teeth:
                    pts.append((x_edge + sign * crimp, H * (i + 0.5) / teeth))
            d.polygon(pts, fill=seal)
        _draw_motif(d, st, crimp, 0, W - crimp, H, s)
        if st.shape == "bar" and st.motif == "stripes":
            d.rounded_rectangle([W * 0.22, H * 0.18, W * 0.78, H * 0.62], radius=int(4 * s),
                                fill=(245, 245, 245))
            _text(d, st.title, W / 2, H * 0.4, W * 0.5, H * 0.38, st.accent)
            _text(d, st.subtitle, W / 2, H * 0.8, W * 0.4, H * 0.17, st.text)
        else:
            _text(d, st.title, W * 0.5, H * 0.42, W * 0.42, H * 0.5, st.text)
            _text(d, st.subtitle, W * 0.55, H * 0.86 - H * 0.06, W * 0.5, H * 0.15, st.text)
    else:  # pragma: no cover - guarded by the product table
        raise ValueError(st.shape)
    rgba = np.asarray(im).copy()
    if cyl_axis is not None:
        _shade_cylinder(rgba, cyl_axis)
    small = cv2.resize(rgba, st.size, interpolation=cv2.INTER_AREA)
    # premultiplied-alpha style cleanup: transparent pixels carry no colour
    small[small[..., 3] == 0, :3] = 0
    return small


def package_bgra(sku: str) -> np.ndarray:
    """The canonical package of ``sku`` as BGRA (a copy)."""
    return cv2.cvtColor(_package(sku), cv2.COLOR_RGBA2BGRA)


def _rotate_bgra(img: np.ndarray, angle: float, scale: float = 1.0) -> np.ndarray:
    """Rotate (degrees, counter-clockwise) and scale, growing the canvas to fit."""
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
    c, s_ = abs(m[0, 0]), abs(m[0, 1])
    nw, nh = int(math.ceil(h * s_ + w * c)) + 2, int(math.ceil(h * c + w * s_)) + 2
    m[0, 2] += nw / 2 - w / 2
    m[1, 2] += nh / 2 - h / 2
    return cv2.warpAffine(img, m, (nw, nh), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0))


def _lighting(bgr: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """Global gain, a colour cast and a linear light gradient."""
    h, w = bgr.shape[:2]
    gain = 1.0 + strength * rng.uniform(-0.2, 0.12)
    cast = 1.0 + strength * rng.uniform(-0.04, 0.04, size=3)
    ang = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    grad = ((xx / max(w, 1) - 0.5) * math.cos(ang) + (yy / max(h, 1) - 0.5) * math.sin(ang))
    field_ = gain * (1.0 + strength * 0.18 * grad)
    out = bgr.astype(np.float32) * field_[..., None] * cast.astype(np.float32)
    return np.clip(out, 0, 255).astype(np.uint8)


def render_product(product: DemoProduct | str, view: int = 0,
                   rng: np.random.Generator | None = None) -> np.ndarray:
    """One view of a package as BGRA (alpha 0 outside the package).

    ``view == 0`` is the canonical, upright package.  Other views are rotated, scaled,
    perspective-warped, lit, blurred and noised by ``rng`` (default: seeded by sku and view).
    """
    p = product if isinstance(product, DemoProduct) else PRODUCTS_BY_SKU[product]
    if rng is None:
        rng = np.random.default_rng([int(p.sku.split("-")[-1]), view])
    img = package_bgra(p.sku)
    if view == 0:
        return img
    h, w = img.shape[:2]
    # perspective: move each corner a little (camera not exactly overhead)
    pad = int(0.1 * max(h, w))
    img = cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(0, 0, 0, 0))
    src = np.float32([[pad, pad], [pad + w, pad], [pad + w, pad + h], [pad, pad + h]])
    jit = rng.uniform(-0.06, 0.06, size=(4, 2)) * np.float32([w, h])
    dst = (src + jit).astype(np.float32)
    m = cv2.getPerspectiveTransform(src, dst)
    img = cv2.warpPerspective(img, m, (w + 2 * pad, h + 2 * pad), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0))
    img = _rotate_bgra(img, float(rng.uniform(-180, 180)), float(rng.uniform(0.85, 1.15)))
    ys, xs = np.nonzero(img[..., 3] > 0)
    img = img[ys.min():ys.max() + 1, xs.min():xs.max() + 1].copy()
    bgr = _lighting(img[..., :3], rng, 1.0)
    sigma = float(rng.uniform(0.0, 1.2))
    if sigma > 0.3:
        bgr = cv2.GaussianBlur(bgr, (0, 0), sigma)
    noise = rng.normal(0, rng.uniform(0.5, 4.0), size=bgr.shape).astype(np.float32)
    bgr = np.clip(bgr.astype(np.float32) + noise, 0, 255).astype(np.uint8)
    out = np.dstack([bgr, img[..., 3]])
    out[out[..., 3] == 0, :3] = 0
    return out


# --------------------------------------------------------------------------------------------
# Trays


class RenderedTray(NamedTuple):
    image: np.ndarray  # BGR uint8
    boxes: np.ndarray  # (N, 4) int32 x1, y1, x2, y2 (exclusive), clipped to the image
    skus: list[str]


TRAY_COLOR_BGR = (196, 208, 214)  # light beige-grey


@functools.lru_cache(maxsize=8)
def _tray_background(width: int, height: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = np.empty((height, width, 3), np.float32)
    base[:] = TRAY_COLOR_BGR
    # low-frequency texture (moulded plastic), ±3 %
    lo = rng.normal(0, 1, size=(height // 40 + 2, width // 40 + 2)).astype(np.float32)
    lo = cv2.resize(lo, (width, height), interpolation=cv2.INTER_CUBIC)
    lo = cv2.GaussianBlur(lo, (0, 0), 12)
    lo /= max(float(np.abs(lo).max()), 1e-6)
    # fine grain, ±1 %
    fine = cv2.GaussianBlur(rng.normal(0, 1, size=(height, width)).astype(np.float32), (0, 0), 1.2)
    fine /= max(float(np.abs(fine).max()), 1e-6)
    # vignetting: up to ~15 % darker in the corners, light from slightly top-left
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    r2 = ((xx - width * 0.47) / (width / 2)) ** 2 + ((yy - height * 0.45) / (height / 2)) ** 2
    vig = 1.0 - 0.075 * r2
    gain = vig * (1.0 + 0.03 * lo + 0.01 * fine)
    tray = base * gain[..., None]
    # a faint rim around the tray edge
    cv2.rectangle(tray, (6, 6), (width - 7, height - 7), (180, 192, 198), 2, cv2.LINE_AA)
    return tray  # float32


def empty_tray(size: tuple[int, int] = TRAY_SIZE, *, seed: int = 7, noise: float = 0.0,
               rng: np.random.Generator | None = None) -> np.ndarray:
    """The tray with nothing on it (the calibration image), BGR uint8."""
    return render_tray([], size=size, seed=seed, noise=noise, rng=rng).image


def _soft_shadow(alpha: np.ndarray, strength: float, blur: float) -> np.ndarray:
    a = alpha.astype(np.float32) / 255.0
    return strength * cv2.GaussianBlur(a, (0, 0), blur)


def render_tray(items: Sequence[tuple], background: np.ndarray | None = None,
                rng: np.random.Generator | None = None, *, size: tuple[int, int] = TRAY_SIZE,
                seed: int = 7, noise: float = 0.0, shadow: float = 0.28) -> RenderedTray:
    """Composite products onto the tray.

    ``items``: ``(sku, x, y, angle_degrees)`` with (x, y) the package centre in pixels; an
    optional fifth element scales the package.  Later items are drawn over earlier ones.
    ``background``: a BGR tray image to draw on (default: the built-in tray of ``size``).
    ``rng`` adds per-item lighting jitter and, with ``noise`` > 0, sensor noise of that sigma.
    Returns the image and each item's ground-truth box (of its visible package pixels).
    """
    if background is None:
        canvas = _tray_background(size[0], size[1], seed).copy()
    else:
        canvas = background.astype(np.float32).copy()
    height, width = canvas.shape[:2]
    boxes, skus = [], []
    shadow_dx, shadow_dy = 5, 7
    for it in items:
        sku, x, y, angle = it[0], float(it[1]), float(it[2]), float(it[3])
        scale = float(it[4]) if len(it) > 4 else 1.0
        pkg = package_bgra(sku)
        if rng is not None:
            bgr = _lighting(pkg[..., :3], rng, 0.3)
            pkg = np.dstack([bgr, pkg[..., 3]])
        pkg = _rotate_bgra(pkg, angle, scale)
        ph, pw = pkg.shape[:2]
        x0, y0 = int(round(x - pw / 2)), int(round(y - ph / 2))
        # drop shadow, then the package, both clipped to the canvas
        sh = _soft_shadow(pkg[..., 3], shadow, 6.0)
        _blend_dark(canvas, sh, x0 + shadow_dx, y0 + shadow_dy)
        a = pkg[..., 3].astype(np.float32) / 255.0
        cx0, cy0 = max(0, x0), max(0, y0)
        cx1, cy1 = min(width, x0 + pw), min(height, y0 + ph)
        if cx0 >= cx1 or cy0 >= cy1:
            continue
        sub_a = a[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0, None]
        sub = pkg[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0, :3].astype(np.float32)
        region = canvas[cy0:cy1, cx0:cx1]
        canvas[cy0:cy1, cx0:cx1] = region * (1 - sub_a) + sub * sub_a
        ys, xs = np.nonzero(sub_a[..., 0] > 0.5)
        if len(xs) == 0:
            continue
        boxes.append([cx0 + xs.min(), cy0 + ys.min(), cx0 + xs.max() + 1, cy0 + ys.max() + 1])
        skus.append(sku)
    if noise > 0:
        nrng = rng if rng is not None else np.random.default_rng(seed + 1)
        canvas += nrng.normal(0, noise, size=canvas.shape).astype(np.float32)
    image = np.clip(canvas + 0.5, 0, 255).astype(np.uint8)
    return RenderedTray(image, np.asarray(boxes, np.int32).reshape(-1, 4), skus)


def _blend_dark(canvas: np.ndarray, dark: np.ndarray, x0: int, y0: int) -> None:
    h, w = dark.shape
    H, W = canvas.shape[:2]
    cx0, cy0, cx1, cy1 = max(0, x0), max(0, y0), min(W, x0 + w), min(H, y0 + h)
    if cx0 >= cx1 or cy0 >= cy1:
        return
    d = dark[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0, None]
    canvas[cy0:cy1, cx0:cx1] *= 1.0 - d


def _item_mask(sku: str, angle: float, scale: float = 1.0) -> np.ndarray:
    return _rotate_bgra(package_bgra(sku), angle, scale)[..., 3] > 127


def touching_position(anchor: Sequence, sku: str, angle: float, direction: float,
                      scale: float = 1.0) -> tuple[float, float]:
    """Centre for ``sku`` (at ``angle``) so that its package touches ``anchor``'s package.

    ``anchor`` is a placed item ``(sku, x, y, angle[, scale])``; the new package approaches it
    from ``direction`` (degrees, 0 = from the right, 90 = from below) until the two would
    overlap, and stops one pixel before: edge to edge, with no tray between them.
    """
    a_mask = _item_mask(anchor[0], float(anchor[3]), float(anchor[4]) if len(anchor) > 4 else 1.0)
    b_mask = _item_mask(sku, angle, scale)
    ah, aw = a_mask.shape
    bh, bw = b_mask.shape
    pad = int(math.hypot(aw, ah) + math.hypot(bw, bh)) + 4  # room for b anywhere around a
    canvas = np.zeros((ah + 2 * pad, aw + 2 * pad), bool)
    canvas[pad:pad + ah, pad:pad + aw] = a_mask
    cx, cy = pad + aw / 2, pad + ah / 2
    dx, dy = math.cos(math.radians(direction)), math.sin(math.radians(direction))
    last = None
    for dist in range(int(math.hypot(aw, ah) / 2 + math.hypot(bw, bh) / 2) + 2, -1, -1):
        x0 = int(round(cx + dx * dist - bw / 2))
        y0 = int(round(cy + dy * dist - bh / 2))
        if canvas[y0:y0 + bh, x0:x0 + bw][b_mask].any():
            break
        last = (x0, y0)
    if last is None:
        raise ValueError("packages overlap even at the start distance")
    x0, y0 = last
    return (float(anchor[1]) + (x0 + bw / 2 - cx), float(anchor[2]) + (y0 + bh / 2 - cy))


def random_layout(skus: Sequence[str], rng: np.random.Generator, *,
                  size: tuple[int, int] = TRAY_SIZE, touching: int = 0, gap: int = 14,
                  margin: int = 24, scale: float = 1.0,
                  tries: int = 400) -> list[tuple[str, float, float, float, float]]:
    """Place ``skus`` at random positions and angles without overlap.

    The last ``touching`` items are each pushed against an already placed item (their
    packages touch, at a different angle, so the pair forms one blob with a waist).  Other items
    keep at least ``gap`` pixels apart.  Raises ``RuntimeError`` when they do not fit.
    """
    width, height = size
    occ = np.zeros((height, width), np.int32)  # 0 = free, k = item k-1
    placed: list[tuple[str, float, float, float, float]] = []
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * gap + 1, 2 * gap + 1))
    n_free = len(skus) - touching

    def fits(mask, x0, y0):
        h, w = mask.shape
        if x0 < margin or y0 < margin or x0 + w > width - margin or y0 + h > height - margin:
            return False
        m = cv2.dilate(mask.astype(np.uint8), kernel) > 0
        return not occ[y0:y0 + h, x0:x0 + w][m].any()

    for i, sku in enumerate(skus):
        for _ in range(tries):
            angle = float(rng.uniform(-180, 180))
            mask = _item_mask(sku, angle, scale)
            h, w = mask.shape
            if i < n_free or not placed:
                x0 = int(rng.integers(margin, max(margin + 1, width - margin - w)))
                y0 = int(rng.integers(margin, max(margin + 1, height - margin - h)))
                if not fits(mask, x0, y0):
                    continue
            else:
                # slide towards a partner, 1 px at a time, until the masks would overlap:
                # the last free position leaves the packages edge to edge
                k = int(rng.integers(0, len(placed)))
                _, px, py, _, _ = placed[k]
                theta = rng.uniform(0, 2 * math.pi)
                dx, dy = math.cos(theta), math.sin(theta)
                last_free, found = None, None
                for dist in range(int(max(width, height) * 0.5), 0, -1):
                    x0 = int(round(px + dx * dist - w / 2))
                    y0 = int(round(py + dy * dist - h / 2))
                    if not (margin <= x0 and margin <= y0 and x0 + w <= width - margin
                            and y0 + h <= height - margin):
                        last_free = None
                        continue
                    region = occ[y0:y0 + h, x0:x0 + w][mask]
                    if region.any():
                        if last_free is not None and set(np.unique(region)) <= {0, k + 1}:
                            found = last_free
                        break
                    last_free = (x0, y0)
                if found is None:
                    continue
                x0, y0 = found
                # the partner must be the only neighbour closer than the gap
                m = cv2.dilate(mask.astype(np.uint8), kernel) > 0
                near = np.unique(occ[y0:y0 + h, x0:x0 + w][m])
                if any(v not in (0, k + 1) for v in near):
                    continue
            sub = occ[y0:y0 + h, x0:x0 + w]
            sub[mask & (sub == 0)] = len(placed) + 1
            placed.append((sku, x0 + w / 2, y0 + h / 2, angle, scale))
            break
        else:
            raise RuntimeError(f"could not place item {i} ({sku}) on the tray")
    return placed



# --------------------------------------------------------------------------------------------
# Assets

DEMO_GALLERY_DIR = PROJECT_DIR / "gallery" / "demo"
DEMO_RESOURCES_DIR = PROJECT_DIR / "resources" / "demo"
VIEWS_PER_PRODUCT = 5

# (name, seed, skus, number of touching items at the end of the list)
DEMO_TRAYS: tuple[tuple[str, int, tuple[str, ...], int], ...] = (
    ("tray_01", 101, ("DEMO-001", "DEMO-004", "DEMO-005"), 0),
    ("tray_02", 102, ("DEMO-002", "DEMO-006", "DEMO-007", "DEMO-010", "DEMO-003"), 1),
    ("tray_03", 103, ("DEMO-004", "DEMO-005", "DEMO-009", "DEMO-011", "DEMO-013", "DEMO-012",
                      "DEMO-008"), 2),
    ("tray_04", 104, ("DEMO-001", "DEMO-001", "DEMO-002", "DEMO-003", "DEMO-005", "DEMO-006",
                      "DEMO-007", "DEMO-009", "DEMO-010", "DEMO-011", "DEMO-013"), 2),
    ("tray_05", 105, ("DEMO-002", "DEMO-004", "DEMO-005", "DEMO-008", "DEMO-010", "DEMO-011",
                      "DEMO-012", "DEMO-013", "DEMO-001", "DEMO-006", "DEMO-007", "DEMO-009",
                      "DEMO-003", "DEMO-004"), 3),
)


def demo_tray(name: str) -> tuple[RenderedTray, list[tuple]]:
    """Render one of :data:`DEMO_TRAYS` (deterministic); returns the tray and its layout."""
    for tname, seed, skus, touching in DEMO_TRAYS:
        if tname == name:
            rng = np.random.default_rng(seed)
            layout = random_layout(list(skus), rng, touching=touching)
            return render_tray(layout, rng=np.random.default_rng(seed + 1000)), layout
    raise KeyError(name)


def gallery_frame(product: DemoProduct | str, view: int) -> RenderedTray:
    """A staff enrolment photo: the product alone on the tray, at a random place and angle."""
    p = product if isinstance(product, DemoProduct) else PRODUCTS_BY_SKU[product]
    rng = np.random.default_rng([int(p.sku.split("-")[-1]), view, 12345])
    w, h = TRAY_SIZE
    item = (p.sku, float(w / 2 + rng.uniform(-0.2, 0.2) * w),
            float(h / 2 + rng.uniform(-0.15, 0.15) * h), float(rng.uniform(-180, 180)),
            float(rng.uniform(0.9, 1.1)))
    return render_tray([item], rng=rng)


def gallery_view(product: DemoProduct | str, view: int) -> np.ndarray:
    """A gallery image as enrolment stores it: the item cut out of :func:`gallery_frame` by the
    tray segmenter and turned upright (:func:`kiosk.detect.item_crop`)."""
    from kiosk.detect import item_crop
    from kiosk.detect.tray import TraySegmenter

    frame = gallery_frame(product, view).image
    dets = TraySegmenter(background=empty_tray()).detect(frame)
    i = dets.largest()
    return item_crop(frame, dets.boxes[i], dets.masks[i])


def build_demo_assets(out_dir_gallery: Path | str = DEMO_GALLERY_DIR,
                      out_dir_resources: Path | str = DEMO_RESOURCES_DIR, *,
                      views: int = VIEWS_PER_PRODUCT,
                      trays: Sequence[str] | None = None) -> dict[str, list[Path]]:
    """Write the demo gallery, catalogue and trays (deterministic).  Returns the files written."""
    gdir, rdir = Path(out_dir_gallery), Path(out_dir_resources)
    gdir.mkdir(parents=True, exist_ok=True)
    rdir.mkdir(parents=True, exist_ok=True)
    written: dict[str, list[Path]] = {"gallery": [], "resources": []}
    lines = []
    for p in PRODUCTS:
        (gdir / p.sku).mkdir(exist_ok=True)
        for v in range(views):
            rel = f"{p.sku}/{p.sku}_v{v}.jpg"
            img = gallery_view(p, v)
            cv2.imwrite(str(gdir / rel), img, [cv2.IMWRITE_JPEG_QUALITY, 88])
            lines.append(f"{rel}\t{p.sku}")
            written["gallery"].append(gdir / rel)
    (gdir / "gallery_list.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    written["gallery"].append(gdir / "gallery_list.txt")

    with open(rdir / "products.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["sku", "name", "price", "barcode"])
        for p in PRODUCTS:
            w.writerow([p.sku, p.name, p.price_yuan, p.barcode])
    written["resources"].append(rdir / "products.csv")

    cv2.imwrite(str(rdir / "empty_tray.png"), empty_tray(), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    written["resources"].append(rdir / "empty_tray.png")
    meta_trays = []
    for name in (trays if trays is not None else [t[0] for t in DEMO_TRAYS]):
        tray, layout = demo_tray(name)
        cv2.imwrite(str(rdir / f"{name}.png"), tray.image, [cv2.IMWRITE_PNG_COMPRESSION, 9])
        written["resources"].append(rdir / f"{name}.png")
        meta_trays.append({
            "image": f"{name}.png",
            "items": [{"sku": s, "box": [int(v) for v in b],
                       "center": [round(it[1], 1), round(it[2], 1)], "angle": round(it[3], 2)}
                      for s, b, it in zip(tray.skus, tray.boxes, layout)],
            "total_fen": int(sum(PRODUCTS_BY_SKU[s].price for s in tray.skus)),
        })
    meta = {"size": list(TRAY_SIZE), "empty": "empty_tray.png", "trays": meta_trays}
    (rdir / "trays.json").write_text(_json_compact(meta) + "\n", encoding="utf-8")
    written["resources"].append(rdir / "trays.json")
    return written


def _json_compact(meta: dict) -> str:
    """JSON with one tray item per line (small, still diff-friendly)."""
    head = {k: v for k, v in meta.items() if k != "trays"}
    lines = [json.dumps(head, ensure_ascii=False)[:-1] + ', "trays": [']
    for i, t in enumerate(meta["trays"]):
        items = ",\n".join("    " + json.dumps(it, ensure_ascii=False) for it in t["items"])
        end = "," if i < len(meta["trays"]) - 1 else ""
        lines.append(f'  {{"image": {json.dumps(t["image"])}, "total_fen": {t["total_fen"]}, '
                     f'"items": [\n{items}\n  ]}}{end}')
    lines.append("]}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m kiosk.demo.scenes", description=__doc__.splitlines()[0])
    ap.add_argument("--gallery", default=str(DEMO_GALLERY_DIR))
    ap.add_argument("--resources", default=str(DEMO_RESOURCES_DIR))
    args = ap.parse_args(argv)
    written = build_demo_assets(args.gallery, args.resources)
    for kind, files in written.items():
        total = sum(f.stat().st_size for f in files)
        print(f"{kind}: {len(files)} files, {total / 1024:.0f} KiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
