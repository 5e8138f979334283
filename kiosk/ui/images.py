"""Image conversions and thumbnails for the UI (numpy BGR -> QImage/QPixmap)."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPixmap


def bgr_to_qimage(image: np.ndarray) -> QImage:
    """A QImage that owns a copy of the BGR uint8 ``image`` (cheap: one memcpy)."""
    image = np.ascontiguousarray(image)
    if image.ndim == 2:
        h, w = image.shape
        return QImage(image.data, w, h, image.strides[0], QImage.Format.Format_Grayscale8).copy()
    h, w = image.shape[:2]
    if image.shape[2] == 4:
        return QImage(image.data, w, h, image.strides[0], QImage.Format.Format_ARGB32).copy()
    return QImage(image.data, w, h, image.strides[0], QImage.Format.Format_BGR888).copy()


def bgr_to_pixmap(image: np.ndarray, size: int | None = None, square: bool = False) -> QPixmap:
    """``image`` as a pixmap, scaled to fit ``size``×``size``; ``square``: centred on a
    transparent square of that size (thumbnails of a row line up)."""
    pix = QPixmap.fromImage(bgr_to_qimage(image))
    if size:
        pix = pix.scaled(size, size, Qt.AspectRatioMode.KeepAspectRatio,
                         Qt.TransformationMode.SmoothTransformation)
        if square:
            from PySide6.QtGui import QPainter

            canvas = QPixmap(size, size)
            canvas.fill(Qt.GlobalColor.transparent)
            p = QPainter(canvas)
            p.drawPixmap((size - pix.width()) // 2, (size - pix.height()) // 2, pix)
            p.end()
            pix = canvas
    return pix


@lru_cache(maxsize=512)
def _thumb_image(path: str, size: int) -> QImage | None:
    img = QImage(path)
    if img.isNull():
        return None
    return img.scaled(size, size, Qt.AspectRatioMode.KeepAspectRatio,
                      Qt.TransformationMode.SmoothTransformation)


def file_thumbnail(path: str | Path | None, size: int = 96) -> QPixmap | None:
    """A thumbnail of an image file (cached), or None when it cannot be read."""
    if not path:
        return None
    img = _thumb_image(str(path), int(size))
    return QPixmap.fromImage(img) if img is not None else None


def product_thumbnail(catalog, sku: str, size: int = 96) -> QPixmap | None:
    """The product's first gallery image, as a thumbnail."""
    try:
        rows = catalog.gallery_rows(sku=sku)
    except Exception:  # noqa: BLE001 - a thumbnail is never worth an error dialog
        return None
    for row in rows[:3]:
        pix = file_thumbnail(row.get("file"), size)
        if pix is not None:
            return pix
    return None
