"""Reading image files: one decoder for the whole kiosk (non-ASCII paths, truncated and oversized files refused with a clear reason)."""
from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np


#: Images with more pixels than this are refused before decoding (a decoded 20000x20000 photo
#: would take 1.2 GB); 64 megapixels leave room for any phone photo.
MAX_IMAGE_PIXELS = 64_000_000


_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


class ImageError(ValueError):
    """An image file that cannot be used (missing, empty, truncated, not an image)."""


def read_image_bytes(path: Path) -> np.ndarray:
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except FileNotFoundError:
        raise ImageError(f"{path}: file not found") from None
    except (IsADirectoryError, PermissionError, OSError) as e:
        raise ImageError(f"{path}: cannot read: {e.strerror or e}") from None
    if data.size == 0:
        raise ImageError(f"{path}: empty file (0 bytes)")
    return data


def _truncation(data: np.ndarray) -> str | None:
    """Why an image looks truncated, or None.  (OpenCV decodes truncated JPEGs without an error.)"""
    raw = data.tobytes()
    if raw.startswith(b"\xff\xd8"):  # JPEG: the end-of-image marker must follow the last scan
        sos = raw.rfind(b"\xff\xda")
        if sos < 0 or raw.find(b"\xff\xd9", sos) < 0:
            return "truncated JPEG (no end-of-image marker)"
    elif raw.startswith(b"\x89PNG\r\n\x1a\n"):
        if raw.rfind(b"IEND") < 0:
            return "truncated PNG (no IEND chunk)"
    return None


def _header_size(raw: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG, JPEG, BMP or WebP header without decoding, else None."""
    try:
        if raw.startswith(b"\x89PNG\r\n\x1a\n") and raw[12:16] == b"IHDR":
            return struct.unpack(">II", raw[16:24])
        if raw.startswith(b"\xff\xd8"):
            i = 2
            while i + 4 <= len(raw):
                if raw[i] != 0xFF:
                    return None
                marker = raw[i + 1]
                if marker == 0xFF:  # fill byte
                    i += 1
                    continue
                if marker in (0x01, *range(0xD0, 0xD8)):  # no length
                    i += 2
                    continue
                if marker in (0xD9, 0xDA):  # end of image / start of scan before any frame
                    return None
                length = struct.unpack(">H", raw[i + 2:i + 4])[0]
                if marker in _JPEG_SOF:
                    height, width = struct.unpack(">HH", raw[i + 5:i + 9])
                    return width, height
                i += 2 + length
            return None
        if raw.startswith(b"BM") and len(raw) >= 26:
            if struct.unpack("<I", raw[14:18])[0] == 12:  # BITMAPCOREHEADER
                return struct.unpack("<HH", raw[18:22])
            width, height = struct.unpack("<ii", raw[18:26])
            return abs(width), abs(height)
        if raw[:4] == b"RIFF" and raw[8:12] == b"WEBP":
            kind = raw[12:16]
            if kind == b"VP8 ":
                width, height = struct.unpack("<HH", raw[26:30])
                return width & 0x3FFF, height & 0x3FFF
            if kind == b"VP8L":
                bits = int.from_bytes(raw[21:25], "little")
                return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
            if kind == b"VP8X":
                return (int.from_bytes(raw[24:27], "little") + 1,
                        int.from_bytes(raw[27:30], "little") + 1)
    except struct.error:  # header cut short: the decoder will say so
        return None
    return None


def decode_image(data: np.ndarray, path: Path) -> np.ndarray:
    why = _truncation(data)
    if why:
        raise ImageError(f"{path}: {why}")
    size = _header_size(data.tobytes())
    if size is not None and size[0] * size[1] > MAX_IMAGE_PIXELS:
        raise ImageError(
            f"{path}: image is {size[0]}x{size[1]} pixels, more than the "
            f"{MAX_IMAGE_PIXELS // 1_000_000} megapixels the kiosk accepts; scale it down first"
        )
    try:
        image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    except cv2.error:
        image = None
    if image is None or image.size == 0:
        raise ImageError(f"{path}: not a readable image (corrupt or unsupported format)")
    return image


def load_image(path: str | Path) -> np.ndarray:
    """A BGR uint8 image (works with non-ASCII paths); :class:`ImageError` when unusable."""
    path = Path(path)
    return decode_image(read_image_bytes(path), path)

