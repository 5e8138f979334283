"""What every part of the catalogue shares: its errors, SQL time stamps, and the checks on
what may be stored (sku, name, price, currency, barcode, who did it)."""
from __future__ import annotations

import json
from typing import Any, Sequence

import numpy as np

from kiosk.ean import check_barcode
from kiosk.money import check_fen


_NOW = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"


_F32 = np.dtype("<f4")


class CatalogError(Exception):
    """The database cannot be used (for example it was made by a newer version of the kiosk)."""


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)


class UnknownProductError(KeyError):
    def __init__(self, sku: str) -> None:
        super().__init__(sku)
        self.sku = sku

    def __str__(self) -> str:
        return f"no product with sku {self.sku!r}"


def _check_text(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} must be non-empty text, got {value!r}")
    if any(ord(c) < 32 for c in value):
        raise ValueError(f"{what} {value!r} contains control characters")
    return value.strip()


def check_sku(sku: object) -> str:
    """A sku is non-empty text without control characters; surrounding spaces are dropped."""
    return _check_text(sku, "sku")


def _check_price(price: object) -> int | None:
    return None if price is None else check_fen(price, "price")


def _check_currency(currency: object) -> str:
    if not (isinstance(currency, str) and len(currency) == 3 and currency.isascii() and currency.isupper()):
        raise ValueError(f"currency must be a 3-letter code like 'CNY', got {currency!r}")
    return currency


def _check_barcode(barcode: object) -> str | None:
    return None if barcode is None else check_barcode(barcode)  # type: ignore[arg-type]


#: Who made a change, as written in the audit log: the cashier's correction panel, staff mode,
#: the command line, or the kiosk itself (migrations, re-embedding, demo set-up).
AUDIT_ROLES = ("cashier", "staff", "cli", "system", "shopper")


def _check_role(role: object) -> str:
    if role not in AUDIT_ROLES:
        raise ValueError(f"audit role must be one of {', '.join(AUDIT_ROLES)}; got {role!r}")
    return role  # type: ignore[return-value]


# the words read on a pack (kiosk.text), as the catalogue stores them
def dumps_words(words: Sequence[str]) -> str:
    return json.dumps(list(words), ensure_ascii=False)


def loads_words(text: str | None) -> tuple[str, ...]:
    if not text:
        return ()
    value = json.loads(text)
    if not isinstance(value, list) or not all(isinstance(w, str) for w in value):
        raise ValueError("stored words must be a JSON list of strings")
    return tuple(value)
