"""Money as integer minor units (fen for CNY).  Never floats.

``parse_price("3.50") == 350`` and ``format_price(350) == "¥3.50"``.
"""
from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

#: Largest price the kiosk accepts, in minor units (1,000,000.00).
MAX_PRICE = 100_000_000

DEFAULT_CURRENCY = "CNY"

_SYMBOLS = {"CNY": "¥", "USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥"}
_CURRENCY_SIGNS = ("¥", "￥", "元")
_PLAIN = re.compile(r"\d+(?:\.\d+)?")


def parse_price(text: str | int | Decimal) -> int:
    """Decimal yuan (at most 2 decimals) -> fen.

    Accepts ``"3"``, ``"3.5"``, ``"3.50"``, ``"¥3.50"``, ``"3.50元"``; surrounding spaces are ignored.
    Raises ``ValueError`` naming the bad value for anything else: empty, negative, not a number,
    NaN/infinity, exponents, more than 2 decimals, or more than 1,000,000.00.
    """
    if isinstance(text, bool) or isinstance(text, float):
        raise ValueError(f"price {text!r}: give the price as text or Decimal, not {type(text).__name__}")
    if isinstance(text, (int, Decimal)):
        text = str(text)
    if not isinstance(text, str):
        raise ValueError(f"price {text!r}: expected text, got {type(text).__name__}")
    s = text.strip()
    if s.startswith(_CURRENCY_SIGNS[:2]):
        s = s[1:].strip()
    if s.endswith(_CURRENCY_SIGNS[2]):
        s = s[:-1].strip()
    if not s:
        raise ValueError(f"price {text!r} is empty")
    if s.startswith("-"):
        raise ValueError(f"price {text!r} is negative")
    if not _PLAIN.fullmatch(s):
        raise ValueError(f"price {text!r} is not a number like 3.50")
    try:
        value = Decimal(s)
    except InvalidOperation:  # pragma: no cover - the regex already rules this out
        raise ValueError(f"price {text!r} is not a number like 3.50") from None
    if -value.as_tuple().exponent > 2:
        raise ValueError(f"price {text!r} has more than 2 decimals")
    fen = int(value * 100)
    if fen > MAX_PRICE:
        raise ValueError(f"price {text!r} is absurd (more than {format_price(MAX_PRICE)})")
    return fen


def check_fen(fen: object, what: str = "price") -> int:
    """Validate an amount in minor units: an int (not bool), 0 <= fen <= MAX_PRICE."""
    if isinstance(fen, bool) or not isinstance(fen, int):
        raise ValueError(f"{what} {fen!r} must be an integer number of fen")
    if fen < 0:
        raise ValueError(f"{what} {fen!r} is negative")
    if fen > MAX_PRICE:
        raise ValueError(f"{what} {fen!r} fen is more than {format_price(MAX_PRICE)}")
    return fen


def format_price(fen: int, currency: str = DEFAULT_CURRENCY) -> str:
    """350 -> "¥3.50"; -350 -> "-¥3.50"; unknown currencies as "3.50 XYZ"."""
    if isinstance(fen, bool) or not isinstance(fen, int):
        raise TypeError(f"amount must be an int number of minor units, got {fen!r}")
    sign = "-" if fen < 0 else ""
    number = format_amount(abs(fen))
    symbol = _SYMBOLS.get(currency)
    if symbol is None:
        return f"{sign}{number} {currency}"
    return f"{sign}{symbol}{number}"


def format_amount(fen: int) -> str:
    """The amount alone, as staff type it: 350 -> "3.50", -5 -> "-0.05" (no currency sign)."""
    if isinstance(fen, bool) or not isinstance(fen, int):
        raise TypeError(f"amount must be an int number of minor units, got {fen!r}")
    units, cents = divmod(abs(fen), 100)
    return f"{'-' if fen < 0 else ''}{units}.{cents:02d}"
