"""The product catalogue: products, gallery embeddings, finished baskets, staff corrections.

One SQLite file (WAL mode, foreign keys on), opened through sqlite-utils.  The schema is
versioned with ``PRAGMA user_version`` and the numbered functions in :data:`MIGRATIONS`, applied
in order inside one transaction when the catalogue is opened.

Money is integer fen (``price`` NULL = unpriced: staff must price the product before it is sold).
Embeddings are stored as float32 little-endian BLOBs with the ``model_id`` and ``dim`` of the model
that made them; :meth:`Catalog.gallery_vectors` returns only one model's vectors, so vectors of
different models never mix.

Every multi-row change runs in one transaction (:meth:`Catalog.transaction`), so a failure leaves
nothing half-written.  A :class:`Catalog` may be used from any thread, one call at a time.
"""
from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
import sqlite_utils

from kiosk.embed import Embeddings
from kiosk.money import DEFAULT_CURRENCY, check_fen

_NOW = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"
_F32 = np.dtype("<f4")


class CatalogError(Exception):
    """The database cannot be used (for example it was made by a newer version of the kiosk)."""


class UnknownProductError(KeyError):
    def __init__(self, sku: str) -> None:
        super().__init__(sku)
        self.sku = sku

    def __str__(self) -> str:
        return f"no product with sku {self.sku!r}"


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


# --------------------------------------------------------------------------------------------
# migrations


def _m001_initial(db: sqlite_utils.Database) -> None:
    db.executescript(
        f"""
        CREATE TABLE products (
            sku TEXT PRIMARY KEY NOT NULL CHECK (length(trim(sku)) > 0),
            name TEXT NOT NULL CHECK (length(trim(name)) > 0),
            price INTEGER CHECK (price IS NULL OR (typeof(price) = 'integer' AND price >= 0)),
            currency TEXT NOT NULL DEFAULT 'CNY',
            barcode TEXT UNIQUE,
            active INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
            created_at TEXT NOT NULL DEFAULT ({_NOW}),
            updated_at TEXT NOT NULL DEFAULT ({_NOW})
        );
        CREATE TABLE gallery_images (
            -- AUTOINCREMENT: a row id is never reused, because the vector index keys its
            -- vectors (and tombstones) by it
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            sku TEXT NOT NULL REFERENCES products(sku) ON DELETE CASCADE ON UPDATE CASCADE,
            file TEXT NOT NULL,
            model_id TEXT NOT NULL,
            dim INTEGER NOT NULL CHECK (dim > 0),
            embedding BLOB NOT NULL CHECK (length(embedding) = 4 * dim),
            created_at TEXT NOT NULL DEFAULT ({_NOW}),
            UNIQUE (sku, file, model_id)
        );
        CREATE INDEX gallery_images_model ON gallery_images(model_id);
        CREATE TABLE transactions (
            id INTEGER PRIMARY KEY,
            created_at TEXT NOT NULL DEFAULT ({_NOW}),
            total INTEGER NOT NULL CHECK (total >= 0),
            currency TEXT NOT NULL
        );
        -- sku is deliberately not a foreign key: receipts outlive the products on them.
        CREATE TABLE transaction_lines (
            id INTEGER PRIMARY KEY,
            transaction_id INTEGER NOT NULL REFERENCES transactions(id) ON DELETE CASCADE,
            line_no INTEGER NOT NULL,
            sku TEXT NOT NULL,
            name TEXT NOT NULL,
            qty INTEGER NOT NULL CHECK (qty > 0),
            unit_price INTEGER NOT NULL CHECK (unit_price >= 0),
            amount INTEGER NOT NULL CHECK (amount >= 0)
        );
        CREATE INDEX transaction_lines_tx ON transaction_lines(transaction_id);
        CREATE TABLE corrections (
            id INTEGER PRIMARY KEY,
            created_at TEXT NOT NULL DEFAULT ({_NOW}),
            transaction_id INTEGER REFERENCES transactions(id) ON DELETE SET NULL,
            box TEXT,
            from_sku TEXT,
            to_sku TEXT
        );
        """
    )


def _m002_staff_auth(db: sqlite_utils.Database) -> None:
    """The staff PIN (hashed, see :mod:`kiosk.staff_auth`) and its lockout state: one row."""
    db.executescript(
        f"""
        CREATE TABLE staff_auth (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            pin_hash BLOB,
            salt BLOB,
            params TEXT,
            failures INTEGER NOT NULL DEFAULT 0 CHECK (failures >= 0),
            lockouts INTEGER NOT NULL DEFAULT 0 CHECK (lockouts >= 0),
            locked_until REAL NOT NULL DEFAULT 0,
            updated_at TEXT NOT NULL DEFAULT ({_NOW})
        );
        """
    )


def _m003_correction_actions(db: sqlite_utils.Database) -> None:
    """Corrections say what the cashier did: NULL/'override' (sku changed), 'remove' (item
    ignored), 'qty' (quantity set, in ``qty``)."""
    db.executescript(
        """
        ALTER TABLE corrections ADD COLUMN action TEXT;
        ALTER TABLE corrections ADD COLUMN qty INTEGER;
        """
    )


def _m004_audit(db: sqlite_utils.Database) -> None:
    """The audit log: who changed what, when, with the values before and after (JSON).
    Append-only in the database itself: triggers refuse every UPDATE and DELETE."""
    db.executescript(
        f"""
        CREATE TABLE audit (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            time TEXT NOT NULL DEFAULT ({_NOW}),
            role TEXT NOT NULL CHECK (length(trim(role)) > 0),
            action TEXT NOT NULL CHECK (length(trim(action)) > 0),
            subject TEXT,
            before TEXT,
            after TEXT,
            detail TEXT
        );
        CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
        BEGIN
            SELECT RAISE(ABORT, 'the audit log is append-only: rows cannot be changed');
        END;
        CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
        BEGIN
            SELECT RAISE(ABORT, 'the audit log is append-only: rows cannot be deleted');
        END;
        """
    )


#: Migration i (1-based) brings the schema from version i-1 to version i.  Only ever append.
def _m005_gallery_text(db: sqlite_utils.Database) -> None:
    # The words read on each gallery image (kiosk.text), per text reader.  ``source`` is the
    # view that was actually read: a half-turned copy of a view names the view it copies, so
    # a product's words are counted once per view.  Keyed by file, not by the embedding row,
    # because text does not depend on the embedding model.
    db.executescript(
        """
        CREATE TABLE gallery_text (
            sku TEXT NOT NULL REFERENCES products(sku) ON DELETE CASCADE ON UPDATE CASCADE,
            file TEXT NOT NULL,
            source TEXT NOT NULL,
            reader TEXT NOT NULL,
            words TEXT NOT NULL CHECK (json_valid(words) AND json_type(words) = 'array'),
            PRIMARY KEY (sku, file, reader)
        );
        """
    )


def _m006_cashiers_and_calls(db: sqlite_utils.Database) -> None:
    """Cashier accounts (see :mod:`kiosk.cashier_auth`), the kiosk-wide lockout of cashier
    codes, calls for the cashier, and who exactly did each audited change (``actor``: a
    cashier's id; NULL where the role says enough)."""
    db.executescript(
        f"""
        CREATE TABLE cashiers (
            id TEXT PRIMARY KEY CHECK (length(trim(id)) > 0),
            name TEXT NOT NULL CHECK (length(trim(name)) > 0),
            code_hash BLOB NOT NULL UNIQUE,
            badge_hash BLOB UNIQUE,
            active INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
            created_at TEXT NOT NULL DEFAULT ({_NOW}),
            updated_at TEXT NOT NULL DEFAULT ({_NOW})
        );
        CREATE TABLE cashier_auth (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            salt BLOB NOT NULL,
            params TEXT NOT NULL,
            failures INTEGER NOT NULL DEFAULT 0 CHECK (failures >= 0),
            lockouts INTEGER NOT NULL DEFAULT 0 CHECK (lockouts >= 0),
            locked_until REAL NOT NULL DEFAULT 0
        );
        CREATE TABLE calls (
            id INTEGER PRIMARY KEY,
            opened_at TEXT NOT NULL DEFAULT ({_NOW}),
            reason TEXT NOT NULL CHECK (reason IN ('shopper', 'unknown', 'unsure', 'unpriced',
                                                   'camera', 'printer')),
            detail TEXT,
            resolved_at TEXT,
            resolved_by TEXT,
            resolution TEXT
        );
        CREATE INDEX calls_open ON calls(resolved_at);
        ALTER TABLE audit ADD COLUMN actor TEXT;
        """
    )


def _m007_learned_views(db: sqlite_utils.Database) -> None:
    """Views the kiosk learned from its own camera (see :mod:`kiosk.learn`), and which gallery
    files are one view (an item stored as cut and half-turned is one view).

    ``gallery_views`` maps a gallery file to the file of its view (itself, or the view it is a
    half-turned copy of); files without a row are a view of their own.  Filled from the pack
    text's ``source`` where that was read.  ``learned_views``: one row per cut-out learned (or
    waiting for approval): ``picture`` the cut-out as seen (lossless), ``file`` and
    ``turned_file`` its gallery files (as cut and half-turned) while it is in the gallery; where
    it came from (a cashier's answer, a shopper's choice, a barcode read on the item, a paid
    item), who (``actor``: the cashier's id), and its status:
    ``pending`` (waiting in the staff queue, not searchable), ``approved`` (in the gallery),
    ``undone`` (taken out by staff, the picture kept), ``evicted`` (taken out to keep the
    product's view budget, the picture deleted), ``purged`` (taken out and the picture deleted
    by staff)."""
    db.executescript(
        f"""
        CREATE TABLE gallery_views (
            sku TEXT NOT NULL REFERENCES products(sku) ON DELETE CASCADE ON UPDATE CASCADE,
            file TEXT NOT NULL,
            view TEXT NOT NULL,
            PRIMARY KEY (sku, file)
        );
        INSERT OR IGNORE INTO gallery_views (sku, file, view)
            SELECT sku, file, MIN(source) FROM gallery_text GROUP BY sku, file;
        CREATE TABLE learned_views (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            sku TEXT NOT NULL REFERENCES products(sku) ON DELETE CASCADE ON UPDATE CASCADE,
            picture TEXT NOT NULL,
            file TEXT,
            turned_file TEXT,
            source TEXT NOT NULL CHECK (source IN ('cashier', 'shopper', 'barcode', 'paid')),
            actor TEXT,
            status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'undone', 'evicted',
                                                   'purged')),
            decided_sku TEXT,
            score REAL,
            margin REAL,
            created_at TEXT NOT NULL DEFAULT ({_NOW}),
            created_t REAL NOT NULL,
            reviewed_at TEXT,
            reviewed_by TEXT
        );
        CREATE INDEX learned_views_sku ON learned_views(sku, status);
        CREATE INDEX learned_views_actor ON learned_views(actor, sku, created_t);
        """
    )


def _m008_sync(db: sqlite_utils.Database) -> None:
    """Store sync (:mod:`kiosk.sync.local`): this kiosk's id, the outbox (written by triggers in
    the transaction of each change, only once the kiosk has joined a store server), UUIDs of
    sales, corrections, audit rows, calls and gallery views, the store's calls."""
    from kiosk.sync.local import migrate_local

    migrate_local(db)


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [
    _m001_initial,
    _m002_staff_auth,
    _m003_correction_actions,
    _m004_audit,
    _m005_gallery_text,
    _m006_cashiers_and_calls,
    _m007_learned_views,
    _m008_sync,
]
SCHEMA_VERSION = len(MIGRATIONS)


# --------------------------------------------------------------------------------------------
# validation helpers


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


def check_barcode(code: str) -> str:
    """EAN-13, EAN-8 or UPC-A digits with a valid check digit; returns the digits."""
    if not isinstance(code, str):
        raise ValueError(f"barcode must be text, got {code!r}")
    code = code.strip()
    if not (code.isascii() and code.isdigit()):
        raise ValueError(f"barcode {code!r} must be digits only")
    if len(code) not in (8, 12, 13):
        raise ValueError(f"barcode {code!r} has {len(code)} digits; expected EAN-13, EAN-8 or UPC-A (13, 8, 12)")
    digits = [int(c) for c in code]
    weighted = sum(d * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(digits[:-1])))
    expected = (10 - weighted % 10) % 10
    if digits[-1] != expected:
        raise ValueError(f"barcode {code!r} has a wrong check digit (expected {expected})")
    return code


def _check_barcode(barcode: object) -> str | None:
    return None if barcode is None else check_barcode(barcode)  # type: ignore[arg-type]


def _row_to_product(row: Mapping[str, Any]) -> Product:
    return Product(
        sku=row["sku"],
        name=row["name"],
        price=row["price"],
        currency=row["currency"],
        barcode=row["barcode"],
        active=bool(row["active"]),
    )


_KEEP: Any = object()


def restrict_db_files(path: str | Path) -> None:
    """Owner-only access (0600) to the database at ``path`` and its -wal/-shm/-journal files.

    A missing database is created empty with mode 0600 first: SQLite gives the -wal and -shm
    files it creates later the mode of the database file.  Files of another owner are left alone.
    """
    path = Path(path)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
    for f in (path, *(path.with_name(path.name + s) for s in ("-wal", "-shm", "-journal"))):
        try:
            if f.stat().st_mode & 0o077:
                os.chmod(f, 0o600)
        except (FileNotFoundError, PermissionError):
            pass

#: Who made a change, as written in the audit log: the cashier's correction panel, staff mode,
#: the command line, or the kiosk itself (migrations, re-embedding, demo set-up).
AUDIT_ROLES = ("cashier", "staff", "cli", "system", "shopper")


def _check_role(role: object) -> str:
    if role not in AUDIT_ROLES:
        raise ValueError(f"audit role must be one of {', '.join(AUDIT_ROLES)}; got {role!r}")
    return role  # type: ignore[return-value]


def product_dict(p: Product) -> dict[str, Any]:
    """A product as plain JSON-able data (as the audit log stores it)."""
    return {"sku": p.sku, "name": p.name, "price": p.price, "currency": p.currency,
            "barcode": p.barcode, "active": p.active}


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)


# --------------------------------------------------------------------------------------------


class Catalog:
    """The catalogue database at ``path`` (created if missing).  Close it with :meth:`close`."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        restrict_db_files(self.path)
        conn = sqlite3.connect(str(self.path), timeout=30, check_same_thread=False)
        self._lock = threading.RLock()
        self._after_commit: list[Callable[[], None]] = []
        try:
            self.db = sqlite_utils.Database(conn)
            conn.execute("PRAGMA foreign_keys = ON")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":  # pragma: no cover - e.g. a read-only medium
                raise CatalogError(f"{self.path}: could not switch the database to WAL mode ({mode})")
            self._migrate()
        except BaseException:
            conn.close()
            raise

    # -- plumbing -----------------------------------------------------------------------------

    @property
    def conn(self) -> sqlite3.Connection:
        return self.db.conn

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "Catalog":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        return self._rows("PRAGMA user_version")[0][0]

    @contextlib.contextmanager
    def transaction(self) -> Iterator["Catalog"]:
        """All writes inside commit together or not at all.  Nests (inner blocks are savepoints)."""
        with self._lock:
            conn = self.conn
            if conn.in_transaction:
                pending = len(self._after_commit)
                try:
                    with self.db.atomic():
                        yield self
                except BaseException:  # this savepoint rolled back: so do its callbacks
                    del self._after_commit[pending:]
                    raise
                return
            conn.execute("BEGIN IMMEDIATE")
            self._after_commit = []
            try:
                yield self
            except BaseException:
                self._after_commit = []
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            else:
                try:
                    conn.execute("COMMIT")
                except BaseException:
                    self._after_commit = []
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
                callbacks, self._after_commit = self._after_commit, []
                for fn in callbacks:
                    fn()

    def after_commit(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` once the current transaction has committed (at once outside one); never
        if it rolls back.  For state kept beside the database, such as the vector index: it
        must not hold rows that were never committed (SQLite would hand their ids out again)."""
        with self._lock:
            if self.conn.in_transaction:
                self._after_commit.append(fn)
            else:
                fn()

    def _migrate(self) -> None:
        version = self.schema_version
        if version > SCHEMA_VERSION:
            raise CatalogError(
                f"{self.path} has schema version {version}, but this kiosk only knows up to "
                f"version {SCHEMA_VERSION}: it was written by a newer kiosk; update the kiosk software"
            )
        if version == SCHEMA_VERSION:
            return
        with self.transaction():
            # re-read under the write lock: another process may have migrated meanwhile
            version = self.schema_version
            for number in range(version + 1, SCHEMA_VERSION + 1):
                MIGRATIONS[number - 1](self.db)
                self.conn.execute(f"PRAGMA user_version = {number:d}")

    def _query(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> list[dict[str, Any]]:
        with self._lock:
            cur = self.conn.execute(sql, params)
            keys = [d[0] for d in cur.description]
            return [dict(zip(keys, row)) for row in cur.fetchall()]

    def _rows(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> list[tuple]:
        with self._lock:
            return self.conn.execute(sql, params).fetchall()

    def _require(self, sku: str) -> None:
        if not self._rows("SELECT 1 FROM products WHERE sku = ?", (sku,)):
            raise UnknownProductError(sku)

    # -- products -----------------------------------------------------------------------------

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

    def delete_product(self, sku: str, *, role: str = "system") -> None:
        """Delete the product and (by cascade) its gallery images.  Past receipts are kept.
        Audited as ``product_delete`` with the product row (and its image count) as before."""
        _check_role(role)
        with self.transaction():
            old = self.get_product(sku)
            if old is None:
                raise UnknownProductError(sku)
            images = self._rows("SELECT COUNT(*) FROM gallery_images WHERE sku = ?", (sku,))[0][0]
            self.conn.execute("DELETE FROM products WHERE sku = ?", (sku,))
            self.audit("product_delete", sku, role=role, before={**product_dict(old), "images": images})

    # -- gallery ------------------------------------------------------------------------------

    def model_dim(self, model_id: str) -> int | None:
        """The embedding size stored for ``model_id``, or None when it has no rows."""
        rows = self._rows("SELECT dim FROM gallery_images WHERE model_id = ? LIMIT 1", (model_id,))
        return rows[0][0] if rows else None

    def add_gallery_images(
        self,
        sku: str,
        files: Sequence[str | Path],
        embeddings: Embeddings,
        *,
        role: str = "system",
        audit_action: str | None = "gallery_add",
    ) -> list[int]:
        """Store one embedding per file for ``sku``; returns the new row ids, in order.

        Audited as ``audit_action`` (e.g. ``enrol``; None: not audited, for a caller that
        writes its own summary row) by ``role``, with the number of images."""
        files = [str(f) for f in files]
        if len(files) != len(embeddings):
            raise ValueError(f"{len(files)} files but {len(embeddings)} embeddings")
        if not files:
            return []
        if any(not f.strip() for f in files):
            raise ValueError("gallery file names must be non-empty")
        _check_text(embeddings.model_id, "model_id")
        vectors = embeddings.vectors
        dim = embeddings.dim
        if dim <= 0:
            raise ValueError("embeddings have no columns")
        if not np.isfinite(vectors).all():
            raise ValueError("embeddings contain NaN or infinity")
        blobs = [row.tobytes() for row in vectors.astype(_F32, copy=False)]
        with self.transaction():
            self._require(sku)
            stored = self.model_dim(embeddings.model_id)
            if stored is not None and stored != dim:
                raise ValueError(
                    f"model {embeddings.model_id!r} has {stored}-d embeddings in the catalogue, got {dim}-d"
                )
            ids = []
            for file, blob in zip(files, blobs):
                try:
                    cur = self.conn.execute(
                        "INSERT INTO gallery_images (sku, file, model_id, dim, embedding) VALUES (?, ?, ?, ?, ?)",
                        (sku, file, embeddings.model_id, dim, blob),
                    )
                except sqlite3.IntegrityError as e:
                    raise ValueError(
                        f"{file} is already in the gallery of {sku!r} for model {embeddings.model_id!r}"
                    ) from e
                ids.append(cur.lastrowid)
            if audit_action is not None:
                self.audit(audit_action, sku, role=role, after={"images": len(ids)},
                           detail=embeddings.model_id)
        return ids

    def remove_gallery_images(self, ids: Iterable[int]) -> int:
        """Delete gallery rows by id; returns how many existed."""
        ids = [int(i) for i in ids]
        removed = 0
        with self.transaction():
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                removed += self.conn.execute(f"DELETE FROM gallery_images WHERE id IN ({marks})", chunk).rowcount
        return removed

    def remove_model(self, model_id: str) -> int:
        """Delete every gallery row made by ``model_id`` (after re-embedding with a new model)."""
        with self.transaction():
            return self.conn.execute("DELETE FROM gallery_images WHERE model_id = ?", (model_id,)).rowcount

    def gallery_vectors(self, model_id: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """(ids int64 (N,), vectors float32 (N, D), skus) of ``model_id``'s rows for active products."""
        rows = self._rows(
            "SELECT g.id, g.sku, g.dim, g.embedding FROM gallery_images g "
            "JOIN products p ON p.sku = g.sku WHERE g.model_id = ? AND p.active = 1 ORDER BY g.id",
            (model_id,),
        )
        if not rows:
            return np.zeros(0, np.int64), np.zeros((0, self.model_dim(model_id) or 0), np.float32), []
        ids, skus, dims, blobs = zip(*rows)
        dim = dims[0]
        if any(d != dim for d in dims):  # pragma: no cover - add_gallery_images prevents this
            raise CatalogError(f"model {model_id!r} has embeddings of several sizes: {sorted(set(dims))}")
        buf = bytearray().join(blobs)
        vectors = np.frombuffer(buf, dtype=_F32).reshape(len(rows), dim)
        return np.asarray(ids, dtype=np.int64), vectors.astype(np.float32, copy=False), list(skus)

    def gallery_ids(self, model_id: str) -> tuple[np.ndarray, list[str]]:
        """(ids int64, skus) of ``model_id``'s rows for active products, without the vectors
        (what the vector index needs at start-up to know which rows are live)."""
        rows = self._rows(
            "SELECT g.id, g.sku FROM gallery_images g JOIN products p ON p.sku = g.sku "
            "WHERE g.model_id = ? AND p.active = 1 ORDER BY g.id",
            (model_id,),
        )
        if not rows:
            return np.zeros(0, np.int64), []
        ids, skus = zip(*rows)
        return np.asarray(ids, dtype=np.int64), list(skus)

    def gallery_vectors_for(self, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """The stored embeddings of gallery rows ``ids``, in that order (float32 (N, D))."""
        ids = [int(i) for i in np.asarray(ids).reshape(-1)]
        found: dict[int, bytes] = {}
        dims = set()
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for i, dim, blob in self._rows(
                f"SELECT id, dim, embedding FROM gallery_images WHERE id IN ({marks})", chunk
            ):
                found[i] = blob
                dims.add(dim)
        missing = [i for i in ids if i not in found]
        if missing:
            raise KeyError(f"gallery rows not found: {missing[:10]}")
        if len(dims) > 1:
            raise CatalogError(f"gallery rows {ids[:10]} mix embedding sizes {sorted(dims)}")
        if not ids:
            return np.zeros((0, 0), np.float32)
        buf = bytearray().join(found[i] for i in ids)
        return np.frombuffer(buf, dtype=_F32).reshape(len(ids), dims.pop()).astype(np.float32)

    def gallery_counts(self) -> dict[str, int]:
        """Gallery images per sku (all models)."""
        return dict(self._rows("SELECT sku, COUNT(*) FROM gallery_images GROUP BY sku"))

    def gallery_files(self, sku: str | None = None) -> list[tuple[str, str]]:
        """Distinct (sku, file) pairs in the gallery, oldest first, e.g. to re-embed them."""
        where, params = ("WHERE sku = ?", (sku,)) if sku is not None else ("", ())
        rows = self._rows(
            f"SELECT sku, file, MIN(id) AS first FROM gallery_images {where} GROUP BY sku, file ORDER BY first",
            params,
        )
        return [(r[0], r[1]) for r in rows]

    def gallery_rows(self, sku: str | None = None, model_id: str | None = None) -> list[dict[str, Any]]:
        """Gallery rows without the embedding: id, sku, file, model_id, dim, created_at."""
        clauses, params = [], []
        if sku is not None:
            clauses.append("sku = ?")
            params.append(sku)
        if model_id is not None:
            clauses.append("model_id = ?")
            params.append(model_id)
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        return self._query(
            f"SELECT id, sku, file, model_id, dim, created_at FROM gallery_images {where} ORDER BY id", params
        )

    def count_gallery(self, model_id: str | None = None) -> int:
        if model_id is None:
            return self._rows("SELECT COUNT(*) FROM gallery_images")[0][0]
        return self._rows("SELECT COUNT(*) FROM gallery_images WHERE model_id = ?", (model_id,))[0][0]

    def stale_models(self, model_id: str) -> dict[str, int]:
        """Row counts of gallery embeddings made by models other than ``model_id``."""
        rows = self._rows(
            "SELECT model_id, COUNT(*) FROM gallery_images WHERE model_id != ? GROUP BY model_id ORDER BY model_id",
            (model_id,),
        )
        return {m: n for m, n in rows}

    # -- pack text of gallery images ---------------------------------------------------------

    def set_gallery_words(self, sku: str, rows: Sequence[tuple[str, str, Sequence[str]]],
                          reader: str) -> None:
        """Store the words ``reader`` read on gallery files of ``sku``: rows of (file, source,
        words); ``source`` is the file actually read (a half-turned copy names its original).
        Replaces what that reader stored before for those files."""
        from kiosk.text import dumps_words

        _check_text(reader, "reader")
        checked = []
        for file, source, words in rows:
            if not str(file).strip() or not str(source).strip():
                raise ValueError("gallery file names must be non-empty")
            words = list(words)
            if not all(isinstance(w, str) and w for w in words):
                raise ValueError(f"words of {file} must be non-empty strings")
            checked.append((sku, str(file), str(source), reader, dumps_words(words)))
        with self.transaction():
            self._require(sku)
            self.conn.executemany(
                "INSERT OR REPLACE INTO gallery_text (sku, file, source, reader, words) "
                "VALUES (?, ?, ?, ?, ?)", checked)

    def gallery_words(self, reader: str) -> dict[str, list[tuple[str, ...]]]:
        """Active products' words as read by ``reader``: one word list per view actually read
        (copies folded into their source), only for files still in the gallery."""
        from kiosk.text import loads_words

        rows = self._rows(
            "SELECT t.sku, t.source, MIN(t.words) FROM gallery_text t "
            "JOIN products p ON p.sku = t.sku AND p.active = 1 "
            "WHERE t.reader = ? AND EXISTS (SELECT 1 FROM gallery_images g "
            "WHERE g.sku = t.sku AND g.file = t.file) "
            "GROUP BY t.sku, t.source ORDER BY t.sku, t.source", (reader,))
        out: dict[str, list[tuple[str, ...]]] = {}
        for sku, _source, words in rows:
            out.setdefault(sku, []).append(loads_words(words))
        return out

    def files_without_words(self, reader: str) -> list[tuple[str, str]]:
        """Distinct (sku, file) gallery pairs that ``reader`` has not read yet."""
        rows = self._rows(
            "SELECT g.sku, g.file, MIN(g.id) AS first FROM gallery_images g "
            "WHERE NOT EXISTS (SELECT 1 FROM gallery_text t WHERE t.sku = g.sku "
            "AND t.file = g.file AND t.reader = ?) GROUP BY g.sku, g.file ORDER BY first",
            (reader,))
        return [(r[0], r[1]) for r in rows]

    # -- sales and corrections ----------------------------------------------------------------

    def record_transaction(self, receipt: Any) -> int:
        """Store a finished basket (a :class:`kiosk.basket.Receipt` or its ``to_dict()``); returns its id.

        Refuses empty receipts, unpriced lines and totals that do not add up.
        """
        data = receipt.to_dict() if hasattr(receipt, "to_dict") else dict(receipt)
        lines = list(data.get("lines") or [])
        if not lines:
            raise ValueError("cannot record an empty receipt")
        currency = _check_currency(data.get("currency", DEFAULT_CURRENCY))
        total = 0
        clean = []
        for n, line in enumerate(lines, 1):
            sku = check_sku(line.get("sku"))
            name = _check_text(line.get("name"), f"line {n} name")
            qty = line.get("qty")
            if isinstance(qty, bool) or not isinstance(qty, int) or qty <= 0:
                raise ValueError(f"line {n} ({sku}): qty {qty!r} must be a positive integer")
            if line.get("unit_price") is None:
                raise ValueError(f"line {n} ({sku}) is unpriced: set a price before selling it")
            unit = check_fen(line["unit_price"], f"line {n} ({sku}) unit_price")
            amount = line.get("amount")
            if amount != unit * qty:
                raise ValueError(f"line {n} ({sku}): amount {amount!r} != {qty} x {unit}")
            total += amount
            clean.append((n, sku, name, qty, unit, amount))
        if data.get("total") != total:
            raise ValueError(f"receipt total {data.get('total')!r} != sum of its lines {total}")
        with self.transaction():
            tx = self.conn.execute(
                "INSERT INTO transactions (total, currency) VALUES (?, ?)", (total, currency)
            ).lastrowid
            self.conn.executemany(
                "INSERT INTO transaction_lines (transaction_id, line_no, sku, name, qty, unit_price, amount) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(tx, *row) for row in clean],
            )
        return tx

    def get_transaction(self, transaction_id: int) -> dict[str, Any] | None:
        """A recorded receipt in the ``Receipt.to_dict()`` shape, plus ``id`` and ``created_at``."""
        rows = self._query("SELECT * FROM transactions WHERE id = ?", (transaction_id,))
        if not rows:
            return None
        lines = self._query(
            "SELECT sku, name, qty, unit_price, amount FROM transaction_lines WHERE transaction_id = ? "
            "ORDER BY line_no",
            (transaction_id,),
        )
        tx = rows[0]
        return {"id": tx["id"], "created_at": tx["created_at"], "lines": lines, "total": tx["total"],
                "currency": tx["currency"]}

    def log_correction(
        self,
        box: Any,
        from_sku: str | None,
        to_sku: str | None,
        transaction_id: int | None = None,
        *,
        role: str = "cashier",
        actor: str | None = None,
    ) -> int:
        """Log a staff/customer correction of a recognised item (``box`` is stored as JSON);
        audited as ``override`` by ``role`` (``actor``: the cashier's id)."""
        _check_role(role)
        with self.transaction():
            row = self.conn.execute(
                "INSERT INTO corrections (transaction_id, box, from_sku, to_sku) VALUES (?, ?, ?, ?)",
                (transaction_id, json.dumps(box), from_sku, to_sku),
            ).lastrowid
            self.audit("override", to_sku or from_sku, role=role, before={"sku": from_sku},
                       after={"sku": to_sku}, detail=json.dumps({"box": box, "correction": row}),
                       actor=actor)
            return row

    def log_action(
        self,
        action: str,
        box: Any,
        from_sku: str | None,
        to_sku: str | None,
        qty: int | None = None,
        transaction_id: int | None = None,
        *,
        role: str = "cashier",
        prev_qty: int | None = None,
        actor: str | None = None,
    ) -> int:
        """Log a cashier action other than a plain sku correction ('remove', 'qty', ...);
        audited as ``action`` by ``role`` (``prev_qty``: the quantity before, for the log)."""
        _check_text(action, "action")
        _check_role(role)
        with self.transaction():
            row = self.conn.execute(
                "INSERT INTO corrections (transaction_id, box, from_sku, to_sku, action, qty) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (transaction_id, json.dumps(box), from_sku, to_sku, action, qty),
            ).lastrowid
            before = {"sku": from_sku} if prev_qty is None else {"sku": from_sku, "qty": prev_qty}
            after = None if to_sku is None and qty is None else {"sku": to_sku, "qty": qty}
            self.audit(action, from_sku or to_sku, role=role, before=before, after=after,
                       detail=json.dumps({"box": box, "correction": row}), actor=actor)
            return row

    def link_corrections(self, ids: Iterable[int], transaction_id: int) -> None:
        """Attach logged corrections to the transaction they belong to."""
        ids = [int(i) for i in ids]
        with self.transaction():
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                self.conn.execute(
                    f"UPDATE corrections SET transaction_id = ? WHERE id IN ({marks})",
                    [transaction_id, *chunk],
                )

    def get_staff_auth(self) -> dict[str, Any] | None:
        """The staff PIN row (hash, salt, parameters, lockout state), or None before first use."""
        rows = self._query("SELECT * FROM staff_auth WHERE id = 1")
        return rows[0] if rows else None

    def put_staff_auth(self, **fields: Any) -> None:
        """Create or update the staff PIN row (columns of ``staff_auth`` as keywords)."""
        allowed = {"pin_hash", "salt", "params", "failures", "lockouts", "locked_until"}
        bad = set(fields) - allowed
        if bad:
            raise ValueError(f"unknown staff_auth columns: {sorted(bad)}")
        with self.transaction():
            self.conn.execute("INSERT OR IGNORE INTO staff_auth (id) VALUES (1)")
            if fields:
                sets = ", ".join(f"{k} = ?" for k in fields)
                self.conn.execute(
                    f"UPDATE staff_auth SET {sets}, updated_at = {_NOW} WHERE id = 1", list(fields.values())
                )

    # -- cashiers -----------------------------------------------------------------------------
    # Rows only; hashing, rules and auditing live in kiosk.cashier_auth.  The public shape of a
    # cashier never carries its hashes: id, name, active, has_badge, created_at, updated_at.

    _CASHIER_COLS = ("id, name, active, badge_hash IS NOT NULL AS has_badge, created_at, "
                     "updated_at")

    def get_cashier_auth(self) -> dict[str, Any] | None:
        """The kiosk-wide cashier-code row (salt, scrypt parameters, lockout state), or None
        before the first cashier."""
        rows = self._query("SELECT * FROM cashier_auth WHERE id = 1")
        return rows[0] if rows else None

    def put_cashier_auth(self, **fields: Any) -> None:
        """Create (``salt`` and ``params`` needed) or update the cashier-code row."""
        allowed = {"salt", "params", "failures", "lockouts", "locked_until"}
        bad = set(fields) - allowed
        if bad:
            raise ValueError(f"unknown cashier_auth columns: {sorted(bad)}")
        with self.transaction():
            if not self._rows("SELECT 1 FROM cashier_auth WHERE id = 1"):
                if "salt" not in fields or "params" not in fields:
                    raise ValueError("the first cashier_auth row needs salt and params")
                cols = ", ".join(fields)
                self.conn.execute(f"INSERT INTO cashier_auth (id, {cols}) VALUES "
                                  f"(1, {', '.join('?' * len(fields))})", list(fields.values()))
            elif fields:
                sets = ", ".join(f"{k} = ?" for k in fields)
                self.conn.execute(f"UPDATE cashier_auth SET {sets} WHERE id = 1",
                                  list(fields.values()))

    def insert_cashier(self, cashier_id: str, name: str, code_hash: bytes,
                       badge_hash: bytes | None = None, *, active: bool = True) -> None:
        """Store a new cashier (the caller checks ids, codes and badges are free)."""
        with self.transaction():
            self.conn.execute(
                "INSERT INTO cashiers (id, name, code_hash, badge_hash, active) "
                "VALUES (?, ?, ?, ?, ?)",
                (cashier_id, name, code_hash, badge_hash, int(bool(active))))

    def _cashier_where(self, where: str, params: Sequence[Any]) -> dict[str, Any] | None:
        rows = self._query(f"SELECT {self._CASHIER_COLS} FROM cashiers WHERE {where}", params)
        if not rows:
            return None
        row = rows[0]
        row["active"], row["has_badge"] = bool(row["active"]), bool(row["has_badge"])
        return row

    def get_cashier(self, cashier_id: str) -> dict[str, Any] | None:
        return self._cashier_where("id = ?", (cashier_id,))

    def cashier_by_code_hash(self, code_hash: bytes) -> dict[str, Any] | None:
        return self._cashier_where("code_hash = ?", (code_hash,))

    def cashier_by_badge_hash(self, badge_hash: bytes) -> dict[str, Any] | None:
        return self._cashier_where("badge_hash = ?", (badge_hash,))

    def list_cashiers(self) -> list[dict[str, Any]]:
        """All cashiers, by id (no hashes)."""
        rows = self._query(f"SELECT {self._CASHIER_COLS} FROM cashiers ORDER BY id")
        for row in rows:
            row["active"], row["has_badge"] = bool(row["active"]), bool(row["has_badge"])
        return rows

    def update_cashier(self, cashier_id: str, **fields: Any) -> bool:
        """Change ``name``, ``code_hash``, ``badge_hash`` or ``active``; False when no such
        cashier."""
        allowed = {"name", "code_hash", "badge_hash", "active"}
        bad = set(fields) - allowed
        if bad:
            raise ValueError(f"unknown cashiers columns: {sorted(bad)}")
        if "active" in fields:
            fields["active"] = int(bool(fields["active"]))
        sets = "".join(f"{k} = ?, " for k in fields)
        with self.transaction():
            return bool(self.conn.execute(
                f"UPDATE cashiers SET {sets}updated_at = {_NOW} WHERE id = ?",
                [*fields.values(), cashier_id]).rowcount)

    # -- calls for the cashier ----------------------------------------------------------------

    CALL_REASONS = ("shopper", "unknown", "unsure", "unpriced", "camera", "printer")

    def open_call(self, reason: str, detail: str | None = None) -> int:
        """Store a new call for the cashier; returns its id (audited by the system)."""
        if reason not in self.CALL_REASONS:
            raise ValueError(f"call reason must be one of {', '.join(self.CALL_REASONS)}; "
                             f"got {reason!r}")
        with self.transaction():
            row = self.conn.execute("INSERT INTO calls (reason, detail) VALUES (?, ?)",
                                    (reason, detail)).lastrowid
            self.audit("call_opened", f"call {row}", role="system", after={"reason": reason},
                       detail=detail)
            return row

    def resolve_call(self, call_id: int, *, by: str | None, resolution: str,
                     role: str = "cashier") -> bool:
        """Close an open call (``by``: the cashier's id, None for the system); False when it
        was already closed or does not exist."""
        _check_text(resolution, "resolution")
        _check_role(role)
        with self.transaction():
            n = self.conn.execute(
                f"UPDATE calls SET resolved_at = {_NOW}, resolved_by = ?, resolution = ? "
                "WHERE id = ? AND resolved_at IS NULL", (by, resolution, int(call_id))).rowcount
            if n:
                self.audit("call_resolved", f"call {int(call_id)}", role=role,
                           after={"resolution": resolution}, actor=by)
            return bool(n)

    def get_call(self, call_id: int) -> dict[str, Any] | None:
        rows = self._query("SELECT * FROM calls WHERE id = ?", (int(call_id),))
        return rows[0] if rows else None

    def calls(self, *, open_only: bool = False, limit: int = 200) -> list[dict[str, Any]]:
        """Calls for the cashier, newest first."""
        where = "WHERE resolved_at IS NULL" if open_only else ""
        return self._query(f"SELECT * FROM calls {where} ORDER BY id DESC LIMIT ?", (int(limit),))

    # -- views of a gallery image, learned views (kiosk.learn) --------------------------------

    def set_gallery_views(self, sku: str, rows: Sequence[tuple[str, str]]) -> None:
        """Record which view each gallery file of ``sku`` is: rows of (file, view file)."""
        rows = [(sku, str(f), str(v)) for f, v in rows]
        with self.transaction():
            self.conn.executemany(
                "INSERT OR REPLACE INTO gallery_views (sku, file, view) VALUES (?, ?, ?)", rows)

    def gallery_view_of(self, model_id: str, ids: Iterable[int] | None = None
                        ) -> dict[int, str]:
        """Gallery row id -> its view (the view's file; a file with no recorded view is its
        own), for ``model_id``'s rows of active products (only rows ``ids`` when given)."""
        sql = ("SELECT g.id, COALESCE(v.view, g.file) FROM gallery_images g "
               "JOIN products p ON p.sku = g.sku AND p.active = 1 "
               "LEFT JOIN gallery_views v ON v.sku = g.sku AND v.file = g.file "
               "WHERE g.model_id = ?")
        if ids is None:
            return {int(i): str(v) for i, v in self._rows(sql, (model_id,))}
        ids = [int(i) for i in ids]
        out: dict[int, str] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            out.update((int(i), str(v)) for i, v in self._rows(
                sql + f" AND g.id IN ({','.join('?' * len(chunk))})", (model_id, *chunk)))
        return out

    def gallery_ids_for_files(self, sku: str, files: Iterable[str]) -> list[int]:
        """Gallery row ids (every model) of ``sku`` stored under ``files``."""
        files = [str(f) for f in files if f]
        if not files:
            return []
        marks = ",".join("?" * len(files))
        return [r[0] for r in self._rows(
            f"SELECT id FROM gallery_images WHERE sku = ? AND file IN ({marks}) ORDER BY id",
            (sku, *files))]

    def add_learned_view(self, sku: str, picture: str, *, source: str, status: str,
                         created_t: float, file: str | None = None,
                         turned_file: str | None = None,
                         actor: str | None = None, decided_sku: str | None = None,
                         score: float | None = None, margin: float | None = None) -> int:
        with self.transaction():
            self._require(sku)
            return self.conn.execute(
                "INSERT INTO learned_views (sku, picture, file, turned_file, source, actor, "
                "status, decided_sku, score, margin, created_t) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (sku, str(picture), file, turned_file, source, actor, status, decided_sku,
                 None if score is None else float(score),
                 None if margin is None or not np.isfinite(margin) else float(margin),
                 float(created_t))).lastrowid

    def update_learned_view(self, view_id: int, **fields: Any) -> None:
        allowed = {"status", "file", "turned_file", "reviewed_by"}
        bad = set(fields) - allowed
        if bad:
            raise ValueError(f"cannot change {', '.join(sorted(bad))} of a learned view")
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self.transaction():
            self.conn.execute(f"UPDATE learned_views SET {sets}, reviewed_at = {_NOW} "
                              "WHERE id = ?", (*fields.values(), int(view_id)))

    def get_learned_view(self, view_id: int) -> dict[str, Any] | None:
        rows = self._query("SELECT * FROM learned_views WHERE id = ?", (int(view_id),))
        return rows[0] if rows else None

    def learned_views(self, sku: str | None = None, status: str | Sequence[str] | None = None,
                      limit: int | None = None) -> list[dict[str, Any]]:
        """Learned views, newest first (``status``: one or several)."""
        clauses, params = [], []
        if sku is not None:
            clauses.append("sku = ?")
            params.append(sku)
        if status is not None:
            status = [status] if isinstance(status, str) else list(status)
            clauses.append(f"status IN ({','.join('?' * len(status))})")
            params.extend(status)
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        sql = f"SELECT * FROM learned_views {where} ORDER BY id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        return self._query(sql, params)

    def count_learned_since(self, sku: str, actor: str | None, since_t: float) -> int:
        """Views of ``sku`` learned (or queued) from ``actor``'s answers since ``since_t``."""
        return self._rows(
            "SELECT COUNT(*) FROM learned_views WHERE sku = ? AND actor IS ? AND created_t >= ?",
            (sku, actor, float(since_t)))[0][0]

    # -- audit log ----------------------------------------------------------------------------

    def audit(
        self,
        action: str,
        subject: str | None = None,
        *,
        role: str,
        before: Any = None,
        after: Any = None,
        detail: str | None = None,
        actor: str | None = None,
    ) -> int:
        """Append one row to the audit log (``before``/``after`` stored as JSON); returns its id.
        ``actor``: who exactly (a cashier's id) where the role alone does not say.

        Called inside the transaction of the change it records, so both land or neither does.
        Never pass secrets: the log is shown in staff mode and copied into backups."""
        _check_text(action, "action")
        _check_role(role)
        if actor is not None:
            actor = _check_text(actor, "actor")
        with self.transaction():
            return self.conn.execute(
                "INSERT INTO audit (role, action, subject, before, after, detail, actor) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (role, action, subject, _json(before), _json(after), detail, actor),
            ).lastrowid

    def audit_log(self, limit: int | None = 500, *, action: str | None = None) -> list[dict[str, Any]]:
        """Audit rows, newest first (``before``/``after`` decoded from JSON)."""
        where, params = ("WHERE action = ?", [action]) if action is not None else ("", [])
        sql = f"SELECT * FROM audit {where} ORDER BY id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        rows = self._query(sql, params)
        for r in rows:
            for key in ("before", "after"):
                r[key] = json.loads(r[key]) if r[key] is not None else None
        return rows

    def corrections(self) -> list[dict[str, Any]]:
        rows = self._query("SELECT * FROM corrections ORDER BY id")
        for r in rows:
            r["box"] = json.loads(r["box"]) if r["box"] is not None else None
        return rows

    def table_counts(self) -> dict[str, int]:
        """Row count of every table (handy for checks and diagnostics)."""
        with self._lock:
            return {name: self.db[name].count for name in self.db.table_names()}
