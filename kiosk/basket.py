"""The receipt a basket produces.

:func:`build_receipt` groups the basket's items (skus, or (sku, quantity) pairs) by product, in
order of first appearance, with exact integer arithmetic in fen.  Products without a price are kept on the
receipt with ``unit_price`` None and ``amount`` 0 and listed in :attr:`Receipt.unpriced`; such a
receipt is not complete and cannot be recorded as a sale.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from kiosk.catalog import Product
from kiosk.money import DEFAULT_CURRENCY, format_price


@dataclass(frozen=True)
class ReceiptLine:
    sku: str
    name: str
    qty: int
    unit_price: int | None  # fen; None = unpriced
    amount: int  # fen; 0 when unpriced

    @property
    def priced(self) -> bool:
        return self.unit_price is not None

    def to_dict(self) -> dict[str, Any]:
        return {"sku": self.sku, "name": self.name, "qty": self.qty, "unit_price": self.unit_price,
                "amount": self.amount}


@dataclass(frozen=True)
class Receipt:
    lines: tuple[ReceiptLine, ...]
    currency: str = DEFAULT_CURRENCY

    @property
    def total(self) -> int:
        return sum(line.amount for line in self.lines)

    @property
    def unpriced(self) -> list[str]:
        """Skus on the receipt without a price (staff must price them before the sale)."""
        return [line.sku for line in self.lines if not line.priced]

    @property
    def complete(self) -> bool:
        """True when there is something to pay for and every line has a price."""
        return bool(self.lines) and not self.unpriced

    @property
    def item_count(self) -> int:
        return sum(line.qty for line in self.lines)

    def to_dict(self) -> dict[str, Any]:
        return {"lines": [line.to_dict() for line in self.lines], "total": self.total, "currency": self.currency}

    def format_total(self) -> str:
        return format_price(self.total, self.currency)


def _check_qty(qty: object) -> int:
    if isinstance(qty, bool) or not isinstance(qty, int) or qty < 1:
        raise ValueError(f"quantity must be a positive integer, got {qty!r}")
    return qty


def build_receipt(
    items: Iterable[str | tuple[str, int]],
    products: Mapping[str, Product],
    currency: str | None = None,
) -> Receipt:
    """A receipt for ``items`` (skus, or (sku, qty) pairs), grouped by sku in order of first appearance.

    ``products`` maps sku -> :class:`~kiosk.catalog.Product` (e.g. ``Catalog.get_products(skus)``).
    Unknown skus and products in another currency are ``ValueError``.
    """
    qty_by_sku: dict[str, int] = {}
    for item in items:
        sku, qty = (item, 1) if isinstance(item, str) else item
        qty_by_sku[sku] = qty_by_sku.get(sku, 0) + _check_qty(qty)
    missing = [s for s in qty_by_sku if s not in products]
    if missing:
        raise ValueError(f"not in the catalogue: {', '.join(map(repr, missing))}")
    currencies = {products[s].currency for s in qty_by_sku}
    if currency is not None:
        currencies.add(currency)
    if len(currencies) > 1:
        raise ValueError(f"a receipt needs one currency, got {sorted(currencies)}")
    lines = []
    for sku, qty in qty_by_sku.items():
        p = products[sku]
        amount = 0 if p.price is None else p.price * qty
        lines.append(ReceiptLine(sku=sku, name=p.name, qty=qty, unit_price=p.price, amount=amount))
    cur = currencies.pop() if currencies else DEFAULT_CURRENCY
    return Receipt(lines=tuple(lines), currency=cur)
