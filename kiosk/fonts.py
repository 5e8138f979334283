"""Fonts for drawing Chinese text (demo renders, receipts, the Qt UI).

The kiosk draws product names in Chinese, which needs a CJK font.  The preferred one ships as
the PyPI package ``cvttf-notosanscjk-regular`` (a project dependency); the Debian package
``fonts-noto-cjk`` is the fallback.  ``KIOSK_CJK_FONT`` overrides both.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

_PACKAGE_FONT = "NotoSansCJKtc-Regular.otf"

# Debian/Ubuntu ``fonts-noto-cjk`` (and the -extra package) install locations.
_SYSTEM_FONTS = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJKsc-Regular.otf",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Medium.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",
    "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc",
    "/usr/share/fonts/truetype/noto/NotoSansCJK-Regular.ttc",
)


class FontNotFoundError(FileNotFoundError):
    """No CJK font is installed."""


def _package_font() -> Path | None:
    try:
        import cvttf_NotoSansCJK_Regular as pkg  # type: ignore[import-not-found]
    except ImportError:
        return None
    path = Path(pkg.__file__).resolve().parent / _PACKAGE_FONT
    return path if path.is_file() else None


@functools.cache
def cjk_font_path() -> Path:
    """Path of a font that covers simplified Chinese.

    Raises :class:`FontNotFoundError` naming what to install when none is found.
    """
    env = os.environ.get("KIOSK_CJK_FONT")
    if env:
        path = Path(env)
        if not path.is_file():
            raise FontNotFoundError(f"KIOSK_CJK_FONT={env!r} is not a file")
        return path
    path = _package_font()
    if path is not None:
        return path
    for candidate in _SYSTEM_FONTS:
        if Path(candidate).is_file():
            return Path(candidate)
    raise FontNotFoundError(
        "no CJK font found: install the PyPI package 'cvttf-notosanscjk-regular' "
        "(pip install cvttf-notosanscjk-regular) or the Debian package 'fonts-noto-cjk', "
        "or set KIOSK_CJK_FONT to a .otf/.ttc/.ttf file"
    )


@functools.lru_cache(maxsize=64)
def cjk_font(size: int):
    """A PIL ``FreeTypeFont`` of the CJK font at ``size`` pixels (cached)."""
    from PIL import ImageFont

    return ImageFont.truetype(str(cjk_font_path()), int(size))
