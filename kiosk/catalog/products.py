"""Products and prices: adding, editing, pricing, activating and finding products (by sku,
barcode or name).  Money is integer fen; ``price`` NULL means staff must price it first.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping
from kiosk.money import DEFAULT_CURRENCY
from kiosk.catalog import events
from kiosk.catalog.common import UnknownProductError, _NOW, _check_barcode, _check_currency, _check_price, _check_role, _check_text, check_sku

_KEEP: Any = object()



@dataclass(frozen=True)
class Product:
    sku: str
    name: str
    price: int | None  # fen; None = unpriced
    currency: str = DEFAULT_CURRENCY
    barcode: str | None = None
    active: bool = True

    @property
    def priced(self) -> bool:
        return self.price is not None


def _row_to_product(row: Mapping[str, Any]) -> Product:
    return Product(
        sku=row["sku"],
        name=row["name"],
        price=row["price"],
        currency=row["currency"],
        barcode=row["barcode"],
        active=bool(row["active"]),
    )


def product_dict(p: Product) -> dict[str, Any]:
    """A product as plain JSON-able data (as the audit log stores it)."""
    return {"sku": p.sku, "name": p.name, "price": p.price, "currency": p.currency,
            "barcode": p.barcode, "active": p.active}


class Products:
    """Part of :class:`kiosk.catalog.Catalog`: products and prices."""

    def add_product(
        self,
        sku: str,
        name: str,
        price: int | None = None,
        *,
        currency: str = DEFAULT_CURRENCY,
        barcode: str | None = None,
        active: bool = True,
        role: str = "system",
    ) -> Product:
        """Insert a new product; ``ValueError`` if the sku or barcode is already taken.
        Audited as ``product_add`` by ``role``."""
        product = Product(
            sku=check_sku(sku),
            name=_check_text(name, "name"),
            price=_check_price(price),
            currency=_check_currency(currency),
            barcode=_check_barcode(barcode),
            active=bool(active),
        )
        with self.transaction():
            if self.get_product(product.sku) is not None:
                raise ValueError(f"a product with sku {product.sku!r} already exists")
            self._check_barcode_free(product.barcode, product.sku)
            self.conn.execute(
                "INSERT INTO products (sku, name, price, currency, barcode, active) VALUES (?, ?, ?, ?, ?, ?)",
                (product.sku, product.name, product.price, product.currency, product.barcode, int(product.active)),
            )
            self.audit("product_add", product.sku, role=role, after=product_dict(product))
            self._publish(events.PRODUCT_ADDED, [product.sku])
        return product

    def upsert_product(
        self,
        sku: str,
        name: str = _KEEP,
        price: int | None = _KEEP,
        *,
        currency: str = _KEEP,
        barcode: str | None = _KEEP,
        active: bool = _KEEP,
        role: str = "system",
    ) -> Product:
        """Create the product, or update the fields given (fields left out keep their values).

        Creating needs at least ``name``; a new product without a price is unpriced.  Audited
        by ``role``: ``product_add``, or ``price`` / ``product_update`` with the changed fields.
        """
        sku = check_sku(sku)
        with self.transaction():
            old = self.get_product(sku)
            if old is None:
                if name is _KEEP:
                    raise ValueError(f"new product {sku!r} needs a name")
                return self.add_product(
                    sku,
                    name,
                    None if price is _KEEP else price,
                    currency=DEFAULT_CURRENCY if currency is _KEEP else currency,
                    barcode=None if barcode is _KEEP else barcode,
                    active=True if active is _KEEP else active,
                    role=role,
                )
            new = Product(
                sku=sku,
                name=old.name if name is _KEEP else _check_text(name, "name"),
                price=old.price if price is _KEEP else _check_price(price),
                currency=old.currency if currency is _KEEP else _check_currency(currency),
                barcode=old.barcode if barcode is _KEEP else _check_barcode(barcode),
                active=old.active if active is _KEEP else bool(active),
            )
            if new != old:
                self._check_barcode_free(new.barcode, sku)
                self.conn.execute(
                    f"UPDATE products SET name = ?, price = ?, currency = ?, barcode = ?, active = ?, "
                    f"updated_at = {_NOW} WHERE sku = ?",
                    (new.name, new.price, new.currency, new.barcode, int(new.active), sku),
                )
                before, after = product_dict(old), product_dict(new)
                changed = sorted(k for k in before if before[k] != after[k])
                self.audit("price" if changed == ["price"] else "product_update", sku, role=role,
                           before={k: before[k] for k in changed},
                           after={k: after[k] for k in changed})
                # one event per kind of change, so each listener hears what it cares about
                if set(changed) - {"price", "active"}:
                    self._publish(events.PRODUCT_EDITED, [sku])
                if "price" in changed:
                    self._publish(events.PRICE, [sku])
                if "active" in changed:
                    self._publish(events.ACTIVATION, [sku])
            return new

    def _check_barcode_free(self, barcode: str | None, sku: str) -> None:
        if barcode is None:
            return
        owner = self._rows("SELECT sku FROM products WHERE barcode = ?", (barcode,))
        if owner and owner[0][0] != sku:
            raise ValueError(f"barcode {barcode} already belongs to product {owner[0][0]!r}")

    def get_product(self, sku: str) -> Product | None:
        rows = self._query("SELECT * FROM products WHERE sku = ?", (sku,))
        return _row_to_product(rows[0]) if rows else None

    def get_products(self, skus: Iterable[str] | None = None) -> dict[str, Product]:
        """Products by sku (all when ``skus`` is None; unknown skus are left out)."""
        if skus is None:
            rows = self._query("SELECT * FROM products ORDER BY sku")
        else:
            wanted = sorted(set(skus))
            rows = []
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows += self._query(f"SELECT * FROM products WHERE sku IN ({marks})", chunk)
        return {r["sku"]: _row_to_product(r) for r in rows}

    def find_by_barcode(self, barcode: str) -> Product | None:
        rows = self._query("SELECT * FROM products WHERE barcode = ?", (str(barcode).strip(),))
        return _row_to_product(rows[0]) if rows else None

    def search_products(self, text: str, *, active_only: bool = False, limit: int = 50) -> list[Product]:
        """Products whose name, sku or barcode contains ``text`` (case-insensitive for ASCII)."""
        needle = text.strip()
        if not needle:
            return []
        pattern = "%" + needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        sql = (
            "SELECT * FROM products WHERE (name LIKE :p ESCAPE '\\' OR sku LIKE :p ESCAPE '\\' "
            "OR barcode LIKE :p ESCAPE '\\')"
            + (" AND active = 1" if active_only else "")
            + " ORDER BY (sku = :t OR coalesce(barcode = :t, 0)) DESC, name, sku LIMIT :limit"
        )
        return [_row_to_product(r) for r in self._query(sql, {"p": pattern, "t": needle, "limit": limit})]

    def list_products(self, active_only: bool = True) -> list[Product]:
        sql = "SELECT * FROM products" + (" WHERE active = 1" if active_only else "") + " ORDER BY sku"
        return [_row_to_product(r) for r in self._query(sql)]

    def unpriced_products(self, active_only: bool = True) -> list[Product]:
        return [p for p in self.list_products(active_only) if p.price is None]

    def set_price(self, sku: str, fen: int | None, *, role: str = "system") -> None:
        """Set the price in fen (None = unpriced); audited as ``price`` (before/after) by ``role``."""
        fen = _check_price(fen)
        _check_role(role)
        with self.transaction():
            old = self.get_product(sku)
            if old is None:
                raise UnknownProductError(sku)
            self.conn.execute(f"UPDATE products SET price = ?, updated_at = {_NOW} WHERE sku = ?", (fen, sku))
            if old.price != fen:
                self.audit("price", sku, role=role, before={"price": old.price, "currency": old.currency},
                           after={"price": fen, "currency": old.currency})
                self._publish(events.PRICE, [sku])

    def set_active(self, sku: str, active: bool, *, role: str = "system") -> None:
        """Put on sale / take off sale; audited as ``activate`` / ``deactivate`` by ``role``."""
        active = bool(active)
        _check_role(role)
        with self.transaction():
            old = self.get_product(sku)
            if old is None:
                raise UnknownProductError(sku)
            self.conn.execute(
                f"UPDATE products SET active = ?, updated_at = {_NOW} WHERE sku = ?", (int(active), sku)
            )
            if old.active != active:
                self.audit("activate" if active else "deactivate", sku, role=role,
                           before={"active": old.active}, after={"active": active})
                self._publish(events.ACTIVATION, [sku])

    def delete_product(self, sku: str, *, role: str = "system") -> None:
        """Delete the product and (by cascade) its gallery images.  Past receipts are kept.
        Audited as ``product_delete`` with the product row (and its image count) as before."""
        _check_role(role)
        with self.transaction():
            old = self.get_product(sku)
            if old is None:
                raise UnknownProductError(sku)
            ids = [r[0] for r in self._rows("SELECT id FROM gallery_images WHERE sku = ? ORDER BY id",
                                            (sku,))]
            self.conn.execute("DELETE FROM products WHERE sku = ?", (sku,))
            self.audit("product_delete", sku, role=role, before={**product_dict(old), "images": len(ids)})
            self._publish(events.PRODUCT_DELETED, [sku], ids)
