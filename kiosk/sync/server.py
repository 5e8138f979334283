"""The store's PostgreSQL server: schema, migrations, and the rules for every pushed change.

Everything lives in the schema ``kiosk`` of the database named by ``[store] server``.  The
schema is versioned in ``kiosk.schema_version``; :func:`init_server` (``kiosk store init``)
applies the numbered :data:`MIGRATIONS` that are missing, in one transaction, under an advisory
lock (two kiosks starting at once do not both migrate).

**Change numbers.**  Rows that kiosks pull (products, gallery views and their vectors, calls,
cashier accounts) carry ``change_no``, stamped from the sequence ``kiosk.change_seq`` by a
trigger on every insert and update.  The trigger first takes a transaction-level advisory lock,
so numbers are handed out in commit order: a kiosk that has applied everything up to N never
later meets a committed row numbered N or less.  Each stamping transaction sends one NOTIFY on
the channel ``kiosk_store``, which wakes the kiosks' pulls.

**Idempotence.**  Every pushed change has a UUID.  Sales, corrections, audit rows, calls and
views are keyed by their own UUID (``ON CONFLICT DO NOTHING``); product and cashier edits are
recorded in ``product_changes`` / ``cashier_changes`` under the change's UUID and applied only
the first time, so a change re-sent after a crash is never applied twice.

**Conflict rules** (:func:`apply_product`).  The server's order decides: edits are applied in
the order they reach the server, field by field (a price change and a rename made at the same
moment on two kiosks both stand; two price changes: the later arrival wins).  An edit that
overwrote a value the sending kiosk had not seen is a conflict: the server appends a
``sync_conflict`` row to its audit log with both versions (the kiosks' own audit rows of both
edits arrive as well).  Deletes are tombstones (``deleted``), which travel like any change; an
edit of a deleted product is refused (audited), a new product under that sku revives it.  A
barcode moved to another product is taken off the product that had it (audited).
"""
from __future__ import annotations

import json
import logging
from typing import Any

log = logging.getLogger(__name__)

SCHEMA = "kiosk"
CHANNEL = "kiosk_store"
CHANGE_LOCK = 0x6B696F736B01  # the advisory lock that orders change numbers
MIGRATE_LOCK = 0x6B696F736B02

PRODUCT_FIELDS = ("name", "price", "currency", "barcode", "active")

_STAMPED = ("products", "views", "view_vectors", "calls", "cashiers")


def _m001_initial() -> str:
    stamp = "\n".join(
        f"CREATE TRIGGER {t}_stamp BEFORE INSERT OR UPDATE ON {t} "
        f"FOR EACH ROW EXECUTE FUNCTION stamp_change();\n"
        f"CREATE INDEX {t}_change_no ON {t} (change_no);" for t in _STAMPED)
    return f"""
    CREATE TABLE store_meta (key text PRIMARY KEY, value text NOT NULL);
    INSERT INTO store_meta (key, value) VALUES ('store_id', gen_random_uuid()::text);
    CREATE SEQUENCE change_seq;
    CREATE FUNCTION stamp_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_advisory_xact_lock({CHANGE_LOCK});
        NEW.change_no := nextval('change_seq');
        NEW.changed_at := clock_timestamp();
        PERFORM pg_notify('{CHANNEL}', '');
        RETURN NEW;
    END $$;
    CREATE FUNCTION refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'the audit log is append-only: rows cannot be changed or deleted';
    END $$;

    CREATE TABLE kiosks (
        id uuid PRIMARY KEY,
        name text NOT NULL,
        first_contact timestamptz NOT NULL DEFAULT now(),
        last_contact timestamptz NOT NULL DEFAULT now(),
        last_change_no bigint NOT NULL DEFAULT 0,
        pending_outbox integer NOT NULL DEFAULT 0,
        oldest_pending timestamptz,
        model_id text,
        software text
    );
    CREATE TABLE products (
        sku text PRIMARY KEY,
        name text NOT NULL,
        price bigint CHECK (price IS NULL OR price >= 0),
        currency text NOT NULL DEFAULT 'CNY',
        barcode text,
        active boolean NOT NULL DEFAULT true,
        deleted boolean NOT NULL DEFAULT false,
        updated_by uuid,
        change_no bigint NOT NULL DEFAULT 0,
        changed_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX products_barcode ON products (barcode) WHERE NOT deleted;
    CREATE TABLE product_changes (
        uuid uuid PRIMARY KEY,
        seq bigint GENERATED ALWAYS AS IDENTITY,
        kiosk_id uuid NOT NULL,
        sku text NOT NULL,
        op text NOT NULL CHECK (op IN ('insert', 'update', 'delete')),
        before jsonb,
        after jsonb,
        made_at timestamptz,
        received_at timestamptz NOT NULL DEFAULT now(),
        outcome text,
        overwritten jsonb
    );
    CREATE INDEX product_changes_sku ON product_changes (sku, seq);
    CREATE TABLE views (
        uuid uuid PRIMARY KEY,
        sku text NOT NULL,
        kind text NOT NULL DEFAULT 'enrol',
        name text NOT NULL,
        image bytea,
        image_sha256 text,
        copy_of uuid,
        meta jsonb,
        kiosk_id uuid,
        created_at timestamptz NOT NULL DEFAULT now(),
        deleted boolean NOT NULL DEFAULT false,
        change_no bigint NOT NULL DEFAULT 0,
        changed_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX views_sku ON views (sku);
    CREATE TABLE view_vectors (
        view_uuid uuid NOT NULL REFERENCES views (uuid) ON DELETE CASCADE,
        model_id text NOT NULL,
        dim integer NOT NULL CHECK (dim > 0),
        vector bytea NOT NULL CHECK (length(vector) = 4 * dim),
        kiosk_id uuid,
        change_no bigint NOT NULL DEFAULT 0,
        changed_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (view_uuid, model_id)
    );
    CREATE TABLE sales (
        uuid uuid PRIMARY KEY,
        kiosk_id uuid NOT NULL,
        local_id bigint,
        created_at timestamptz NOT NULL,
        total bigint NOT NULL CHECK (total >= 0),
        currency text NOT NULL,
        received_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX sales_kiosk ON sales (kiosk_id, created_at);
    CREATE TABLE sale_lines (
        sale_uuid uuid NOT NULL REFERENCES sales (uuid) ON DELETE CASCADE,
        line_no integer NOT NULL,
        sku text NOT NULL,
        name text NOT NULL,
        qty integer NOT NULL CHECK (qty > 0),
        unit_price bigint NOT NULL CHECK (unit_price >= 0),
        amount bigint NOT NULL CHECK (amount >= 0),
        PRIMARY KEY (sale_uuid, line_no)
    );
    CREATE TABLE corrections (
        uuid uuid PRIMARY KEY,
        kiosk_id uuid NOT NULL,
        local_id bigint,
        sale_uuid uuid,
        created_at timestamptz,
        box jsonb,
        from_sku text,
        to_sku text,
        action text,
        qty integer,
        received_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE audit (
        uuid uuid PRIMARY KEY,
        seq bigint GENERATED ALWAYS AS IDENTITY,
        kiosk_id uuid,
        local_id bigint,
        time timestamptz NOT NULL,
        role text NOT NULL,
        action text NOT NULL,
        subject text,
        before jsonb,
        after jsonb,
        detail text,
        actor text,
        received_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX audit_subject ON audit (subject, seq);
    CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit
        FOR EACH ROW EXECUTE FUNCTION refuse_change();
    CREATE TABLE cashiers (
        id text PRIMARY KEY,
        name text NOT NULL,
        code_hash bytea NOT NULL,
        badge_hash bytea,
        active boolean NOT NULL DEFAULT true,
        updated_by uuid,
        change_no bigint NOT NULL DEFAULT 0,
        changed_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE cashier_changes (
        uuid uuid PRIMARY KEY,
        kiosk_id uuid NOT NULL,
        cashier_id text NOT NULL,
        received_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE calls (
        uuid uuid PRIMARY KEY,
        kiosk_id uuid NOT NULL,
        local_id bigint,
        reason text NOT NULL,
        detail text,
        opened_at timestamptz NOT NULL,
        resolved_at timestamptz,
        resolved_by text,
        resolution text,
        resolved_on uuid,
        change_no bigint NOT NULL DEFAULT 0,
        changed_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX calls_open ON calls (opened_at) WHERE resolved_at IS NULL;
    CREATE TABLE rejects (
        uuid uuid PRIMARY KEY,
        kiosk_id uuid NOT NULL,
        kind text NOT NULL,
        payload jsonb,
        error text NOT NULL,
        received_at timestamptz NOT NULL DEFAULT now()
    );
    {stamp}
    """


#: Migration i (1-based) brings the server schema from version i-1 to i.  Only ever append.
MIGRATIONS = [_m001_initial]
SCHEMA_VERSION = len(MIGRATIONS)


class ServerSchemaError(RuntimeError):
    """The server's schema is missing, or newer than this kiosk knows."""


def schema_version(conn) -> int:
    """The server schema's version (0: none yet)."""
    row = conn.execute(
        "SELECT to_regclass(%s) IS NOT NULL", (f"{SCHEMA}.schema_version",)).fetchone()
    if not row[0]:
        return 0
    return conn.execute(f"SELECT coalesce(max(version), 0) FROM {SCHEMA}.schema_version").fetchone()[0]


def init_server(conn) -> tuple[int, int]:
    """Create or migrate the server schema (one transaction); returns (version before, after)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATE_LOCK,))
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
        conn.execute(f"SET LOCAL search_path TO {SCHEMA}, public")
        conn.execute(f"CREATE TABLE IF NOT EXISTS {SCHEMA}.schema_version ("
                     "version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())")
        before = schema_version(conn)
        if before > SCHEMA_VERSION:
            raise ServerSchemaError(
                f"the store server has schema version {before}, this kiosk knows up to "
                f"{SCHEMA_VERSION}: update the kiosk software")
        for number in range(before + 1, SCHEMA_VERSION + 1):
            conn.execute(MIGRATIONS[number - 1]())
            conn.execute(f"INSERT INTO {SCHEMA}.schema_version (version) VALUES (%s)", (number,))
    return before, SCHEMA_VERSION


def check_schema(conn) -> str:
    """The store id, after checking the schema is there and current; else ServerSchemaError."""
    version = schema_version(conn)
    if version == 0:
        raise ServerSchemaError("the store server has no kiosk schema yet: run `kiosk store init`")
    if version != SCHEMA_VERSION:
        raise ServerSchemaError(
            f"the store server has schema version {version}, this kiosk expects "
            f"{SCHEMA_VERSION}: " + ("run `kiosk store init`" if version < SCHEMA_VERSION
                                     else "update the kiosk software"))
    return conn.execute(f"SELECT value FROM {SCHEMA}.store_meta WHERE key = 'store_id'").fetchone()[0]


# ------------------------------------------------------------------------------ apply pushes
# Each function applies one pushed change inside the caller's transaction (cursor ``cur``,
# search_path kiosk).  ``item`` is what kiosk.sync.client built from the outbox row.


def _j(v: Any):
    from psycopg.types.json import Jsonb

    return None if v is None else Jsonb(v)


def server_audit(cur, action: str, subject: str | None, *, before=None, after=None,
                 detail: Any = None) -> None:
    """An audit row written by the server itself (kiosk_id NULL, role system)."""
    cur.execute(
        "INSERT INTO audit (uuid, kiosk_id, time, role, action, subject, before, after, detail) "
        "VALUES (gen_random_uuid(), NULL, now(), 'system', %s, %s, %s, %s, %s)",
        (action, subject, _j(before), _j(after),
         None if detail is None else json.dumps(detail, ensure_ascii=False, sort_keys=True)))


def apply_sale(cur, kiosk: str, item: dict) -> None:
    cur.execute("INSERT INTO sales (uuid, kiosk_id, local_id, created_at, total, currency) "
                "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (uuid) DO NOTHING RETURNING 1",
                (item["uuid"], kiosk, item["local_id"], item["created_at"], item["total"],
                 item["currency"]))
    if cur.fetchone() is None:
        return
    cur.executemany(
        "INSERT INTO sale_lines (sale_uuid, line_no, sku, name, qty, unit_price, amount) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s)",
        [(item["uuid"], l["line_no"], l["sku"], l["name"], l["qty"], l["unit_price"],
          l["amount"]) for l in item["lines"]])


def apply_correction(cur, kiosk: str, item: dict) -> None:
    cur.execute(
        "INSERT INTO corrections (uuid, kiosk_id, local_id, sale_uuid, created_at, box, "
        "from_sku, to_sku, action, qty) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (uuid) DO UPDATE SET sale_uuid = coalesce(corrections.sale_uuid, "
        "EXCLUDED.sale_uuid) WHERE corrections.sale_uuid IS NULL AND EXCLUDED.sale_uuid IS NOT NULL",
        (item["uuid"], kiosk, item["local_id"], item["sale_uuid"], item["created_at"],
         _j(item["box"]), item["from_sku"], item["to_sku"], item["action"], item["qty"]))


def apply_audit(cur, kiosk: str, item: dict) -> None:
    cur.execute(
        "INSERT INTO audit (uuid, kiosk_id, local_id, time, role, action, subject, before, "
        "after, detail, actor) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (uuid) DO NOTHING",
        (item["uuid"], kiosk, item["local_id"], item["time"], item["role"], item["action"],
         item["subject"], _j(item["before"]), _j(item["after"]), item["detail"], item["actor"]))


def apply_call(cur, kiosk: str, item: dict) -> None:
    """A call opened here, or its closing (the first closing wins, wherever it was made)."""
    cur.execute(
        "INSERT INTO calls (uuid, kiosk_id, local_id, reason, detail, opened_at, resolved_at, "
        "resolved_by, resolution, resolved_on) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (uuid) DO UPDATE SET resolved_at = EXCLUDED.resolved_at, "
        "resolved_by = EXCLUDED.resolved_by, resolution = EXCLUDED.resolution, "
        "resolved_on = EXCLUDED.resolved_on "
        "WHERE calls.resolved_at IS NULL AND EXCLUDED.resolved_at IS NOT NULL",
        (item["uuid"], kiosk, item["local_id"], item["reason"], item["detail"],
         item["opened_at"], item["resolved_at"], item["resolved_by"], item["resolution"],
         kiosk if item["resolved_at"] else None))


def apply_call_resolve(cur, kiosk: str, item: dict) -> None:
    """Another kiosk's call closed from this kiosk's attendant screen."""
    cur.execute("UPDATE calls SET resolved_at = %s, resolved_by = %s, resolution = %s, "
                "resolved_on = %s WHERE uuid = %s AND resolved_at IS NULL",
                (item["resolved_at"], item["resolved_by"], item["resolution"], kiosk,
                 item["call_uuid"]))


def apply_view(cur, kiosk: str, item: dict) -> None:
    """A gallery view (picture, once) and one model's vector of it."""
    cur.execute(
        "INSERT INTO views (uuid, sku, kind, name, image, image_sha256, copy_of, meta, "
        "kiosk_id, created_at, deleted) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, "
        "coalesce((SELECT deleted FROM products WHERE sku = %s), true)) "
        "ON CONFLICT (uuid) DO UPDATE SET image = EXCLUDED.image, "
        "image_sha256 = EXCLUDED.image_sha256 WHERE views.image IS NULL AND EXCLUDED.image IS NOT NULL",
        (item["view_uuid"], item["sku"], item["view_kind"], item["name"], item["image"],
         item["image_sha256"], item["copy_of"], _j(item["meta"]), kiosk, item["created_at"],
         item["sku"]))
    if item.get("vector") is not None:
        cur.execute(
            "INSERT INTO view_vectors (view_uuid, model_id, dim, vector, kiosk_id) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (view_uuid, model_id) DO NOTHING",
            (item["view_uuid"], item["model_id"], item["dim"], item["vector"], kiosk))


def apply_view_delete(cur, kiosk: str, item: dict) -> None:
    cur.execute("UPDATE views SET deleted = true WHERE uuid = %s AND NOT deleted",
                (item["view_uuid"],))


def apply_cashier(cur, kiosk: str, item: dict) -> None:
    cur.execute("INSERT INTO cashier_changes (uuid, kiosk_id, cashier_id) VALUES (%s, %s, %s) "
                "ON CONFLICT (uuid) DO NOTHING RETURNING 1", (item["uuid"], kiosk, item["id"]))
    if cur.fetchone() is None:
        return
    cur.execute(
        "INSERT INTO cashiers (id, name, code_hash, badge_hash, active, updated_by) "
        "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, "
        "code_hash = EXCLUDED.code_hash, badge_hash = EXCLUDED.badge_hash, "
        "active = EXCLUDED.active, updated_by = EXCLUDED.updated_by",
        (item["id"], item["name"], item["code_hash"], item["badge_hash"], item["active"], kiosk))


def _clean(p: dict | None) -> dict | None:
    if p is None:
        return None
    out = {k: p.get(k) for k in PRODUCT_FIELDS}
    out["active"] = bool(out["active"]) if out["active"] is not None else True
    return out


def _free_barcode(cur, barcode: str | None, sku: str, kiosk: str) -> None:
    """A barcode belongs to one live product: the last product given it keeps it."""
    if barcode is None:
        return
    cur.execute("SELECT sku FROM products WHERE barcode = %s AND sku <> %s AND NOT deleted "
                "FOR UPDATE", (barcode, sku))
    for (other,) in cur.fetchall():
        cur.execute("UPDATE products SET barcode = NULL, updated_by = %s WHERE sku = %s",
                    (kiosk, other))
        server_audit(cur, "sync_conflict", other, before={"barcode": barcode},
                     after={"barcode": None},
                     detail={"rule": "barcode moved to another product", "to": sku})


def apply_product(cur, kiosk: str, item: dict) -> str:
    """One product edit (insert / update / delete) under the server-order rules; returns the
    outcome recorded in ``product_changes``."""
    before, after = _clean(item.get("before")), _clean(item.get("after"))
    sku = item["sku"]
    op = "insert" if before is None else "delete" if after is None else "update"
    cur.execute("INSERT INTO product_changes (uuid, kiosk_id, sku, op, before, after, made_at) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (uuid) DO NOTHING RETURNING seq",
                (item["uuid"], kiosk, sku, op, _j(before), _j(after), item.get("made_at")))
    if cur.fetchone() is None:
        return "duplicate"  # re-sent after a crash: applied the first time
    cur.execute(f"SELECT {', '.join(PRODUCT_FIELDS)}, deleted FROM products WHERE sku = %s "
                "FOR UPDATE", (sku,))
    row = cur.fetchone()
    current = None if row is None else dict(zip((*PRODUCT_FIELDS, "deleted"), row))
    live = current is not None and not current["deleted"]
    overwritten = None
    if op == "insert":
        if item.get("join") and current is not None:
            outcome = "kept-server"  # a kiosk joining the store: the store's product stands
        elif not live:
            _free_barcode(cur, after["barcode"], sku, kiosk)
            cur.execute(
                "INSERT INTO products (sku, name, price, currency, barcode, active, deleted, "
                "updated_by) VALUES (%s, %s, %s, %s, %s, %s, false, %s) ON CONFLICT (sku) DO "
                "UPDATE SET name = EXCLUDED.name, price = EXCLUDED.price, currency = "
                "EXCLUDED.currency, barcode = EXCLUDED.barcode, active = EXCLUDED.active, "
                "deleted = false, updated_by = EXCLUDED.updated_by",
                (sku, after["name"], after["price"], after["currency"], after["barcode"],
                 after["active"], kiosk))
            outcome = "revived" if current is not None else "applied"
        else:  # created on two kiosks: the later arrival's values stand
            changed = {f: after[f] for f in PRODUCT_FIELDS if after[f] != current[f]}
            if changed:
                overwritten = {f: current[f] for f in changed}
                _update(cur, sku, changed, kiosk)
                outcome = "conflict-applied"
            else:
                outcome = "same"
    elif op == "update":
        if not live:
            outcome = "refused-deleted"
            server_audit(cur, "sync_conflict", sku, before=None, after=after,
                         detail={"rule": "edit of a deleted product refused", "kiosk": kiosk,
                                 "change": item["uuid"]})
        else:
            changed = {f: after[f] for f in PRODUCT_FIELDS if after[f] != before[f]}
            clash = {f for f in changed if current[f] != before[f] and current[f] != after[f]}
            if changed:
                _update(cur, sku, changed, kiosk)
            if clash:
                overwritten = {f: current[f] for f in clash}
                outcome = "conflict-applied"
            else:
                outcome = "applied" if changed else "same"
    else:  # delete: a tombstone, its views with it
        if live:
            cur.execute("UPDATE products SET deleted = true, updated_by = %s WHERE sku = %s",
                        (kiosk, sku))
            cur.execute("UPDATE views SET deleted = true WHERE sku = %s AND NOT deleted", (sku,))
            outcome = "applied"
        else:
            outcome = "same"
    if overwritten:
        server_audit(cur, "sync_conflict", sku,
                     before={**{k: current[k] for k in PRODUCT_FIELDS}},
                     after=after,
                     detail={"rule": "server order: the later edit stands", "kiosk": kiosk,
                             "change": item["uuid"], "overwritten": overwritten})
    cur.execute("UPDATE product_changes SET outcome = %s, overwritten = %s WHERE uuid = %s",
                (outcome, _j(overwritten), item["uuid"]))
    return outcome


def _update(cur, sku: str, fields: dict, kiosk: str) -> None:
    if "barcode" in fields:
        _free_barcode(cur, fields["barcode"], sku, kiosk)
    sets = ", ".join(f"{f} = %s" for f in fields)
    cur.execute(f"UPDATE products SET {sets}, updated_by = %s WHERE sku = %s",
                (*fields.values(), kiosk, sku))


APPLY = {
    "sale": apply_sale,
    "correction": apply_correction,
    "audit": apply_audit,
    "call": apply_call,
    "call_resolve": apply_call_resolve,
    "vector": apply_view,
    "view_delete": apply_view_delete,
    "cashier": apply_cashier,
    "product": apply_product,
}
#: kinds whose rows carry change numbers: their pushes take the change lock first
STAMPING = {"call", "call_resolve", "vector", "view_delete", "cashier", "product"}


def reject(cur, kiosk: str, item: dict, error: str) -> None:
    """A change the server cannot apply (bad data): kept for a person to look at, so that the
    kiosk's outbox moves on."""
    def plain(v):
        if isinstance(v, (bytes, bytearray, memoryview)):
            return f"<{len(v)} bytes>"
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, list):
            return [plain(x) for x in v]
        return v

    cur.execute("INSERT INTO rejects (uuid, kiosk_id, kind, payload, error) VALUES "
                "(%s, %s, %s, %s, %s) ON CONFLICT (uuid) DO NOTHING",
                (item["outbox_uuid"], kiosk, item["kind"], _j(plain(item)), error[:2000]))
