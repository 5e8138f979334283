"""The catalogue's schema, versioned with ``PRAGMA user_version``: the numbered migrations,
applied in order inside one transaction when a catalogue is opened.
"""
from __future__ import annotations

from typing import Callable
import sqlite_utils
from kiosk.catalog.common import _NOW


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
    """The staff PIN (hashed, see :mod:`kiosk.checkout.staff_auth`) and its lockout state: one row."""
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
    """Cashier accounts (see :mod:`kiosk.checkout.cashier_auth`), the kiosk-wide lockout of cashier
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
    """Views the kiosk learned from its own camera (see :mod:`kiosk.checkout.learn`), and which gallery
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
    """Store sync (:mod:`kiosk.catalog.sync_tables`, used by :mod:`kiosk.sync.local`): this kiosk's id, the outbox (written by triggers in
    the transaction of each change, only once the kiosk has joined a store server), UUIDs of
    sales, corrections, audit rows, calls and gallery views, the store's calls."""
    from kiosk.catalog.sync_tables import migrate_local

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
