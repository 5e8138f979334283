"""GS1 check digits (EAN-13, EAN-8, UPC-A): the one place the kiosk computes them.

Tiny and import-free on purpose: the catalogue checks barcodes with it, the demo makes its
barcodes with it, and :mod:`kiosk.barcode` (which imports the catalogue) reads them.
"""
from __future__ import annotations

#: Code lengths the kiosk accepts: EAN-8, UPC-A, EAN-13.
LENGTHS = (8, 12, 13)


def check_digit(body: str) -> int:
    """The GS1 check digit of the digits ``body`` (a code without its last digit): weights
    3, 1, 3, ... from the right, so one rule serves EAN-13, EAN-8 and UPC-A."""
    if not (isinstance(body, str) and body.isascii() and body.isdigit()):
        raise ValueError(f"need digits, got {body!r}")
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - total % 10) % 10


def with_check_digit(body: str) -> str:
    """``body`` with its check digit appended (12 digits -> an EAN-13)."""
    return body + str(check_digit(body))


def check_barcode(code: str) -> str:
    """EAN-13, EAN-8 or UPC-A digits with a valid check digit; returns the digits (spaces
    around them dropped).  ``ValueError`` saying what is wrong otherwise."""
    if not isinstance(code, str):
        raise ValueError(f"barcode must be text, got {code!r}")
    code = code.strip()
    if not (code.isascii() and code.isdigit()):
        raise ValueError(f"barcode {code!r} must be digits only")
    if len(code) not in LENGTHS:
        raise ValueError(f"barcode {code!r} has {len(code)} digits; expected EAN-13, EAN-8 or UPC-A (13, 8, 12)")
    expected = check_digit(code[:-1])
    if int(code[-1]) != expected:
        raise ValueError(f"barcode {code!r} has a wrong check digit (expected {expected})")
    return code


def is_ean13(code: str) -> bool:
    """True for 13 digits whose last is their check digit."""
    try:
        return len(code) == 13 and check_barcode(code) == code
    except ValueError:
        return False
