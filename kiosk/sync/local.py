"""The kiosk's side of store sync, in its own SQLite catalogue (no Qt, no psycopg).

The tables and triggers it works on (the outbox written in the change's own transaction, the
UUIDs of rows and views, pending vectors, the store's calls) are catalogue migration 8, described
in :mod:`kiosk.catalog.sync_tables`.  The triggers only write while the kiosk is joined to a
store: a kiosk without a server keeps no outbox and works exactly as before.  Joining a store
(:func:`join`) gives the existing history its UUIDs and queues it once.
"""
from __future__ import annotations

import contextlib
import json
import uuid as _uuid
from typing import Any, Iterator

from kiosk.catalog.sync_tables import UUID_SQL, _NOW, _product_json


# --------------------------------------------------------------------------------- state


def state(catalog) -> dict[str, Any]:
    """The ``sync_state`` row plus ``pending`` (outbox rows) and ``oldest_pending`` (time)."""
    row = catalog._query("SELECT * FROM sync_state WHERE id = 1")[0]
    n, oldest = catalog._rows("SELECT COUNT(*), MIN(created_at) FROM sync_outbox")[0]
    row["pending"], row["oldest_pending"] = n, oldest
    return row


def enabled(catalog) -> bool:
    return bool(catalog._rows("SELECT enabled FROM sync_state WHERE id = 1")[0][0])


@contextlib.contextmanager
def applying(catalog) -> Iterator[None]:
    """One catalogue transaction whose changes come from the server: the triggers write no
    outbox rows for them.  The flag is set and cleared inside the transaction, so no other
    connection ever sees it set."""
    with catalog.transaction():
        catalog.conn.execute("UPDATE sync_state SET applying = 1 WHERE id = 1")
        yield
        catalog.conn.execute("UPDATE sync_state SET applying = 0 WHERE id = 1")


def new_uuid() -> str:
    return str(_uuid.uuid4())


def join(catalog, *, store_id: str, kiosk_name: str, server_skus: set[str]) -> dict[str, int]:
    """Join the store ``store_id``: switch the outbox on and queue what the server has not had.

    Products the server already has are the store's (its version comes with the next pull);
    this kiosk's other products are sent with their gallery views.  The kiosk's history (sales,
    corrections, audit rows, calls) is sent once, each row under its own new UUID.  Joining a
    different store (the server was replaced) starts the pull from the beginning.  Returns what
    was queued."""
    queued: dict[str, int] = {}
    with catalog.transaction():
        st = catalog._query("SELECT * FROM sync_state WHERE id = 1")[0]
        if st["enabled"] and st["store_id"] == store_id:
            catalog.conn.execute("UPDATE sync_state SET kiosk_name = ? WHERE id = 1", (kiosk_name,))
            return queued
        c = catalog.conn
        c.execute("UPDATE sync_state SET enabled = 0, store_id = ?, kiosk_name = ?, "
                  f"last_change_no = 0, joined_at = {_NOW} WHERE id = 1", (store_id, kiosk_name))
        c.execute("DELETE FROM sync_outbox")
        c.execute("DELETE FROM store_calls")
        for table in ("transactions", "corrections", "audit", "calls"):
            c.execute(f"INSERT OR IGNORE INTO sync_ids (tbl, local_id, uuid) "
                      f"SELECT '{table}', id, {UUID_SQL} FROM {table}")
        local = [r[0] for r in c.execute("SELECT sku FROM products ORDER BY sku")]
        own = [s for s in local if s not in server_skus]
        for sku in own:
            c.execute(f"INSERT INTO sync_outbox (uuid, kind, ref, payload) SELECT {UUID_SQL}, "
                      f"'product', sku, json_object('before', NULL, 'after', "
                      f"json({_product_json('products')}), 'join', 1) FROM products WHERE sku = ?",
                      (sku,))
        queued["products"] = len(own)
        c.execute(f"INSERT OR IGNORE INTO sync_views (uuid, sku, file) "
                  f"SELECT {UUID_SQL}, sku, file FROM gallery_images GROUP BY sku, file")
        c.execute("UPDATE sync_views SET pushed = 0")
        n = 0
        for sku in own:
            n += c.execute(f"INSERT INTO sync_outbox (uuid, kind, ref) SELECT {UUID_SQL}, "
                           "'vector', id FROM gallery_images WHERE sku = ? ORDER BY id",
                           (sku,)).rowcount
        queued["vectors"] = n
        for table, kind in (("calls", "call"), ("corrections", "correction"),
                            ("transactions", "sale"), ("audit", "audit")):
            queued[kind] = c.execute(
                f"INSERT INTO sync_outbox (uuid, kind, ref) SELECT {UUID_SQL}, '{kind}', id "
                f"FROM {table} ORDER BY id").rowcount
        queued["cashier"] = c.execute(
            f"INSERT INTO sync_outbox (uuid, kind, ref) SELECT {UUID_SQL}, 'cashier', id "
            "FROM cashiers ORDER BY id").rowcount
        c.execute("UPDATE sync_state SET enabled = 1 WHERE id = 1")
    return queued


def leave(catalog) -> None:
    """Stop syncing (the outbox is kept for a later join to the same store)."""
    with catalog.transaction():
        catalog.conn.execute("UPDATE sync_state SET enabled = 0 WHERE id = 1")


def outbox(catalog, limit: int = 200) -> list[dict[str, Any]]:
    rows = catalog._query("SELECT * FROM sync_outbox ORDER BY seq LIMIT ?", (int(limit),))
    for r in rows:
        r["payload"] = json.loads(r["payload"]) if r["payload"] else None
    return rows


def uuid_of(catalog, table: str, local_id: int | None) -> str | None:
    if local_id is None:
        return None
    rows = catalog._rows("SELECT uuid FROM sync_ids WHERE tbl = ? AND local_id = ?",
                         (table, int(local_id)))
    return rows[0][0] if rows else None
