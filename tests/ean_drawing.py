"""Drawing EAN-13 barcode labels onto rendered trays, for the tests that show the camera a
pack's barcode (tests/checkout/test_session.py, tests/ui/test_ui.py).  The tests' folder is on
``sys.path`` (its conftest), so ``from ean_drawing import ...`` works from every test."""
from __future__ import annotations

import numpy as np

from kiosk.demo import scenes as demo
from kiosk.ean import with_check_digit

L_CODES = ["0001101", "0011001", "0010011", "0111101", "0100011", "0110001", "0101111", "0111011",
      "0110111", "0001011"]
R_CODES = ["".join("1" if c == "0" else "0" for c in code) for code in L_CODES]
G_CODES = [code[::-1] for code in R_CODES]
PARITY = ["LLLLLL", "LLGLGG", "LLGGLG", "LLGGGL", "LGLLGG", "LGGLLG", "LGGGLL", "LGLGLG",
           "LGLGGL", "LGGLGL"]


def ean13_check(first12: str) -> str:
    return with_check_digit(first12)


def ean13_modules(code: str) -> str:
    """The 95 modules (1 = bar) of an EAN-13: guard, 6 digits in L/G by the first digit's
    parity pattern, centre guard, 6 digits in R, guard."""
    assert len(code) == 13 and code.isdigit()
    parity = PARITY[int(code[0])]
    left = "".join((L_CODES if p == "L" else G_CODES)[int(d)] for p, d in zip(parity, code[1:7]))
    right = "".join(R_CODES[int(d)] for d in code[7:])
    bits = "101" + left + "01010" + right + "101"
    assert len(bits) == 95
    return bits


def barcode_label(code: str, module: int = 3, height: int = 110, quiet: int = 12) -> np.ndarray:
    """A white paper label with the code's bars (BGR)."""
    bits = ean13_modules(code)
    margin = quiet * module // 2
    img = np.full((height + 2 * margin, (len(bits) + 2 * quiet) * module, 3), 250, np.uint8)
    for i, bit in enumerate(bits):
        if bit == "1":
            img[margin:margin + height, (quiet + i) * module:(quiet + i + 1) * module] = 20
    return img


def paste(tray: np.ndarray, label: np.ndarray, x: float, y: float, angle: float) -> np.ndarray:
    out = tray.copy()
    h, w = label.shape[:2]
    rot = demo._rotate_bgra(np.dstack([label, np.full((h, w), 255, np.uint8)]), angle)
    ph, pw = rot.shape[:2]
    x0, y0 = int(x - pw / 2), int(y - ph / 2)
    alpha = rot[..., 3:].astype(np.float32) / 255
    region = out[y0:y0 + ph, x0:x0 + pw].astype(np.float32)
    out[y0:y0 + ph, x0:x0 + pw] = (region * (1 - alpha) + rot[..., :3] * alpha).astype(np.uint8)
    return out
