"""The catalogue's store-sync tables and triggers (catalogue migration 8, :func:`migrate_local`).

The kiosk's side of store sync (:mod:`kiosk.sync.local`) works on these tables; they are part
of the catalogue's schema, so the catalogue's migrations (:mod:`kiosk.catalog.migrations`) make
them without importing the sync package.  Migration 8 adds:
``sync_state``
    one row: this kiosk's id (a UUID made when the catalogue was migrated), its name, whether
    it is joined to a store server (``enabled``), the server's store id, the last server change
    number applied here (``last_change_no``), and ``applying`` (1 only inside the transaction
    that applies pulled changes, so that they are not sent back).
``sync_outbox``
    what the server has not had yet, in the order it happened: one row per change, each with
    its own UUID (the server applies a UUID once).  Rows are written by triggers in the same
    SQLite transaction as the change itself, so a change and its outbox row land together or
    not at all, whichever code path made the change.  Product edits carry the values before and
    after (``payload``); sales, corrections, audit rows, calls and gallery vectors refer to the
    row, which is read when it is pushed (those rows do not change, or only forwards).
``sync_ids``
    the UUID of each local sale, correction, audit row and call (so a row re-sent after a crash
    is recognised by the server).
``sync_views``
    the UUID of each gallery view (a gallery file of a product; one view may have vectors of
    several models), ``pushed`` once the server has its picture; ``pending`` views were pulled
    without a vector of this kiosk's model (embedded here when the engine can).
``sync_pending_vectors``
    for pending views: the vector when one of this kiosk's model arrives later.
``store_calls``
    the store's calls for the cashier as last pulled (every kiosk's).

The triggers only write while ``enabled = 1``: a kiosk without a server keeps no outbox and
works exactly as before.  Joining a store (:func:`kiosk.sync.local.join`) gives the existing history its UUIDs
and queues it once.
"""
from __future__ import annotations

_NOW = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"
# a random (version 4) UUID in SQL
UUID_SQL = ("(lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4' || "
            "substr(lower(hex(randomblob(2))), 2) || '-' || "
            "substr('89ab', 1 + (abs(random()) % 4), 1) || substr(lower(hex(randomblob(2))), 2) "
            "|| '-' || lower(hex(randomblob(6))))")
_ON = "(SELECT enabled = 1 AND applying = 0 FROM sync_state WHERE id = 1)"


def _product_json(row: str) -> str:
    return (f"json_object('sku', {row}.sku, 'name', {row}.name, 'price', {row}.price, "
            f"'currency', {row}.currency, 'barcode', {row}.barcode, 'active', {row}.active)")


def _outbox(kind: str, ref: str, payload: str = "NULL") -> str:
    return (f"INSERT INTO sync_outbox (uuid, kind, ref, payload) VALUES ({UUID_SQL}, '{kind}', "
            f"{ref}, {payload});")


def _ids(table: str) -> str:
    return (f"INSERT OR IGNORE INTO sync_ids (tbl, local_id, uuid) VALUES ('{table}', NEW.id, "
            f"{UUID_SQL});")


# Rows the store keeps a copy of: (trigger, event, table, extra condition, kind, with a UUID).
# Sales, corrections, audit rows and calls get a UUID of their own (``sync_ids``) the first
# time they are queued; cashiers are known by their id.
_ROW_TRIGGER_TABLE = (
    ("sync_transactions_ai", "INSERT", "transactions", "", "sale", True),
    ("sync_corrections_ai", "INSERT", "corrections", "", "correction", True),
    ("sync_corrections_au", "UPDATE OF transaction_id", "corrections",
     "NEW.transaction_id IS NOT OLD.transaction_id", "correction", True),
    ("sync_audit_ai", "INSERT", "audit", "", "audit", True),
    ("sync_calls_ai", "INSERT", "calls", "", "call", True),
    ("sync_calls_au", "UPDATE OF resolved_at", "calls",
     "NEW.resolved_at IS NOT NULL AND OLD.resolved_at IS NULL", "call", True),
    ("sync_cashiers_ai", "INSERT", "cashiers", "", "cashier", False),
    ("sync_cashiers_au", "UPDATE", "cashiers", "", "cashier", False),
)


def _row_triggers() -> str:
    out = []
    for name, event, table, cond, kind, with_id in _ROW_TRIGGER_TABLE:
        when = f"{_ON} AND {cond}" if cond else _ON
        ids = f"{_ids(table)}\n    " if with_id else ""
        out.append(f"CREATE TRIGGER {name} AFTER {event} ON {table} WHEN {when}\n"
                   f"BEGIN\n    {ids}{_outbox(kind, 'NEW.id')}\nEND;")
    return "\n".join(out)


def migrate_local(db) -> None:
    """Catalogue migration 8 (never change it once released: add a new migration instead)."""
    _ROW_TRIGGERS = _row_triggers()  # noqa: N806 (used in the script below)
    db.executescript(
        f"""
        CREATE TABLE sync_state (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            kiosk_id TEXT NOT NULL,
            kiosk_name TEXT,
            enabled INTEGER NOT NULL DEFAULT 0 CHECK (enabled IN (0, 1)),
            applying INTEGER NOT NULL DEFAULT 0 CHECK (applying IN (0, 1)),
            store_id TEXT,
            last_change_no INTEGER NOT NULL DEFAULT 0,
            joined_at TEXT,
            last_push_at TEXT,
            last_pull_at TEXT,
            last_error TEXT
        );
        INSERT INTO sync_state (id, kiosk_id) VALUES (1, {UUID_SQL});
        CREATE TABLE sync_outbox (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            uuid TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL,
            ref TEXT,
            payload TEXT,
            created_at TEXT NOT NULL DEFAULT ({_NOW})
        );
        CREATE TABLE sync_ids (
            tbl TEXT NOT NULL,
            local_id INTEGER NOT NULL,
            uuid TEXT NOT NULL UNIQUE,
            PRIMARY KEY (tbl, local_id)
        );
        CREATE TABLE sync_views (
            uuid TEXT PRIMARY KEY,
            sku TEXT NOT NULL,
            file TEXT NOT NULL,
            pushed INTEGER NOT NULL DEFAULT 0,
            pending INTEGER NOT NULL DEFAULT 0,
            kind TEXT NOT NULL DEFAULT 'enrol',
            copy_of TEXT,
            UNIQUE (sku, file)
        );
        CREATE TABLE sync_pending_vectors (
            uuid TEXT PRIMARY KEY REFERENCES sync_views(uuid) ON DELETE CASCADE,
            model_id TEXT NOT NULL,
            dim INTEGER NOT NULL,
            vector BLOB NOT NULL
        );
        CREATE TABLE store_calls (
            uuid TEXT PRIMARY KEY,
            kiosk_id TEXT NOT NULL,
            kiosk_name TEXT,
            local_id INTEGER,
            reason TEXT NOT NULL,
            detail TEXT,
            opened_at TEXT NOT NULL,
            resolved_at TEXT,
            resolved_by TEXT,
            resolution TEXT,
            change_no INTEGER
        );
        CREATE INDEX store_calls_open ON store_calls(resolved_at);

        CREATE TRIGGER sync_products_ai AFTER INSERT ON products WHEN {_ON}
        BEGIN
            {_outbox('product', 'NEW.sku', f"json_object('before', NULL, 'after', json({_product_json('NEW')}))")}
        END;
        CREATE TRIGGER sync_products_au AFTER UPDATE ON products WHEN {_ON} AND (
            OLD.name IS NOT NEW.name OR OLD.price IS NOT NEW.price OR
            OLD.currency IS NOT NEW.currency OR OLD.barcode IS NOT NEW.barcode OR
            OLD.active IS NOT NEW.active)
        BEGIN
            {_outbox('product', 'NEW.sku', f"json_object('before', json({_product_json('OLD')}), 'after', json({_product_json('NEW')}))")}
        END;
        CREATE TRIGGER sync_products_ad AFTER DELETE ON products WHEN {_ON}
        BEGIN
            {_outbox('product', 'OLD.sku', f"json_object('before', json({_product_json('OLD')}), 'after', NULL)")}
        END;

        {_ROW_TRIGGERS}

        -- a gallery row is one model's vector of a view (sku, file): a new view gets its UUID
        CREATE TRIGGER sync_gallery_ai AFTER INSERT ON gallery_images WHEN {_ON}
        BEGIN
            INSERT OR IGNORE INTO sync_views (uuid, sku, file) VALUES ({UUID_SQL}, NEW.sku, NEW.file);
            {_outbox('vector', 'NEW.id')}
        END;
        -- the last row of a view gone: the view is gone (a tombstone for the store)
        CREATE TRIGGER sync_gallery_ad AFTER DELETE ON gallery_images
        WHEN NOT EXISTS (SELECT 1 FROM gallery_images WHERE sku = OLD.sku AND file = OLD.file)
        BEGIN
            INSERT INTO sync_outbox (uuid, kind, ref)
                SELECT {UUID_SQL}, 'view_delete', v.uuid FROM sync_views v
                WHERE v.sku = OLD.sku AND v.file = OLD.file AND v.pending = 0 AND {_ON};
            DELETE FROM sync_views WHERE sku = OLD.sku AND file = OLD.file AND pending = 0;
        END;
        -- a product gone: its views waiting for a vector go with it
        CREATE TRIGGER sync_products_ad_views AFTER DELETE ON products
        BEGIN
            DELETE FROM sync_views WHERE sku = OLD.sku AND pending = 1;
        END;
        """
    )
