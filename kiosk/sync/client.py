"""A kiosk talking to the store server: push the outbox, pull what changed, tell who it is.

:class:`StoreClient` does one step at a time (used by the tests, the bench and the worker);
:class:`SyncWorker` runs it on a thread of its own for as long as the kiosk runs.

**Push.**  The oldest outbox rows (up to ``batch`` rows, or about 8 MB of pictures) are turned
into changes (a sale with its lines, a correction, an audit row, a call, a product edit, a
gallery view with its picture and vector, ...) and applied on the server in *one* transaction
(:mod:`kiosk.sync.server`), then deleted from the outbox.  Killed between the server's commit
and the outbox delete, the kiosk sends the same rows again after its restart; the server knows
their UUIDs and applies nothing twice.  A change the server refuses as bad data is set aside
there (``rejects``) so the outbox never jams.

**Pull.**  Everything the server stamped with a change number above this kiosk's
``last_change_no``: products (tombstones delete), gallery views (with the picture; with this
kiosk's model's vector when the server has one, else embedded here, or waiting until the model
can), calls, cashier accounts.  Each chunk of change numbers is applied in one catalogue
transaction together with the new ``last_change_no``, so a kill mid-pull only repeats it.

**Worker.**  Pushes within a quarter of a second of a local change, pulls as soon as the
server NOTIFYs (and every few seconds anyway), reports to the server every few seconds (kiosk
name, last change number, outbox size), and retries with back-off (0.5 s doubling to 10 s,
cut short by a new local change) while the server is away; the kiosk sells on meanwhile.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np

from kiosk.sync import local, server
from kiosk.sync.config import connect, redact

log = logging.getLogger(__name__)

MAX_PUSH_BYTES = 8 << 20
PULL_CHUNK = 1000


_FAULTS_HIT: set[str] = set()


def _fault(point: str) -> None:
    """Test hook: with ``KIOSK_SYNC_FAULT=<point>`` the process says so and stops there for an
    hour (the crash tests kill it at that moment); ``<point>:<seconds>`` stops that long, once
    (the server tests stop the server meanwhile)."""
    want = os.environ.get("KIOSK_SYNC_FAULT")
    if not want:
        return
    name, _, seconds = want.partition(":")
    if name != point or (seconds and point in _FAULTS_HIT):
        return
    _FAULTS_HIT.add(point)
    print(f"FAULT {point}", flush=True)
    time.sleep(float(seconds) if seconds else 3600)


def _iso(v: Any) -> str | None:
    """A server timestamp as the catalogue writes times (UTC, milliseconds, Z)."""
    if v is None:
        return None
    if isinstance(v, datetime):
        v = v.astimezone(timezone.utc)
        return v.strftime("%Y-%m-%dT%H:%M:%S.") + f"{v.microsecond // 1000:03d}Z"
    return str(v)


_SAFE = re.compile(r"^[\w.\-]+$")


def safe_name(name: str, prefix: str) -> str:
    """``name`` if it is a plain file name, else a name made from its hash."""
    if _SAFE.match(name) and name not in (".", "..") and len(name) <= 120:
        return name
    return f"{prefix}-{hashlib.sha256(name.encode()).hexdigest()[:16]}"


@dataclass
class PullResult:
    products: list[tuple[str, Any, Any]] = field(default_factory=list)  # (sku, old, new|None)
    views_added: int = 0
    views_removed: int = 0
    views_pending: int = 0
    embedded: int = 0
    calls: int = 0
    resolved_here: list[int] = field(default_factory=list)  # own calls closed elsewhere
    cashiers: int = 0
    last_change_no: int = 0
    applied_at: float = 0.0

    @property
    def changed(self) -> bool:
        return bool(self.products or self.views_added or self.views_removed or self.embedded
                    or self.calls or self.cashiers)

    def merge(self, other: "PullResult") -> None:
        self.products += other.products
        self.views_added += other.views_added
        self.views_removed += other.views_removed
        self.views_pending = other.views_pending
        self.embedded += other.embedded
        self.calls += other.calls
        self.resolved_here += other.resolved_here
        self.cashiers += other.cashiers
        self.last_change_no = other.last_change_no
        self.applied_at = other.applied_at


class StoreClient:
    """One kiosk's catalogue (its own connection to the file) and the store server.

    ``embedder``: this kiosk's model (``model_id``, ``embed``), for views pulled without a
    vector of that model; without one they wait.  ``gallery_dir``: where pulled pictures go
    (default: ``gallery/`` beside the catalogue)."""

    def __init__(self, db_path: str | Path, url: str, *, password: str | None = None,
                 kiosk_name: str | None = None, model_id: str | None = None, embedder=None,
                 gallery_dir: str | Path | None = None, batch: int = 200,
                 software: str | None = None) -> None:
        from kiosk.catalog import Catalog

        self.catalog = Catalog(db_path)
        self.url = url
        self._password = password
        self.embedder = embedder
        self.model_id = model_id or getattr(embedder, "model_id", None)
        self.gallery_dir = Path(gallery_dir) if gallery_dir else self.catalog.path.parent / "gallery"
        self.batch = int(batch)
        st = local.state(self.catalog)
        self.kiosk_id: str = st["kiosk_id"]
        self.kiosk_name = kiosk_name or st["kiosk_name"] or self.kiosk_id[:8]
        self.software = software
        self.conn = None
        self.store_id: str | None = None
        self.cashiers_shared = False

    def __repr__(self) -> str:
        return f"StoreClient({self.kiosk_name!r}, {redact(self.url)})"

    # ------------------------------------------------------------ connection
    def connect(self):
        """Connect (again) and join the store; returns the connection."""
        if self.conn is not None and not self.conn.closed:
            return self.conn
        self.conn = connect(self.url, self._password)
        try:
            self.join()
        except BaseException:
            self.disconnect()
            raise
        return self.conn

    def disconnect(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:  # noqa: BLE001
                pass
        self.conn = None

    def close(self) -> None:
        self.disconnect()
        self.catalog.close()

    def join(self) -> None:
        conn = self.conn
        st = local.state(self.catalog)
        with conn.transaction():
            store_id = server.check_schema(conn)
            joined = bool(st["enabled"]) and st["store_id"] == store_id
            skus = set() if joined else {r[0] for r in conn.execute(
                "SELECT sku FROM products")}
        queued = local.join(self.catalog, store_id=store_id, kiosk_name=self.kiosk_name,
                            server_skus=skus)
        if queued:
            log.info("joined store %s as %s (%s): queued %s", store_id, self.kiosk_name,
                     self.kiosk_id, queued)
        self.store_id = store_id
        self._share_cashier_salt()
        self.heartbeat()

    def _share_cashier_salt(self) -> None:
        """Cashier codes are hashed under one salt: the store's.  The first kiosk's salt
        becomes the store's; a kiosk without cashiers of its own takes the store's.  A kiosk
        that has its own cashiers under another salt keeps them to itself."""
        conn = self.conn
        auth = self.catalog.get_cashier_auth()
        with conn.transaction():
            if auth is not None:
                conn.execute("INSERT INTO store_meta (key, value) VALUES ('cashier_salt', %s), "
                             "('cashier_params', %s) ON CONFLICT (key) DO NOTHING",
                             (bytes(auth["salt"]).hex(), auth["params"]))
            rows = dict(conn.execute("SELECT key, value FROM store_meta WHERE key IN "
                                     "('cashier_salt', 'cashier_params')").fetchall())
        if "cashier_salt" not in rows:
            self.cashiers_shared = False
            return
        salt = bytes.fromhex(rows["cashier_salt"])
        if auth is None or (bytes(auth["salt"]) != salt and not self.catalog.list_cashiers()):
            self.catalog.put_cashier_auth(salt=salt, params=rows["cashier_params"])
            auth = self.catalog.get_cashier_auth()
        self.cashiers_shared = bytes(auth["salt"]) == salt
        if not self.cashiers_shared:
            log.warning("this kiosk's cashier accounts use another salt than the store's: they "
                        "stay on this kiosk")

    def heartbeat(self) -> None:
        st = local.state(self.catalog)
        with self.conn.transaction():
            self.conn.execute(
                "INSERT INTO kiosks (id, name, last_contact, last_change_no, pending_outbox, "
                "oldest_pending, model_id, software) VALUES (%s, %s, now(), %s, %s, %s, %s, %s) "
                "ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, last_contact = now(), "
                "last_change_no = EXCLUDED.last_change_no, pending_outbox = "
                "EXCLUDED.pending_outbox, oldest_pending = EXCLUDED.oldest_pending, "
                "model_id = EXCLUDED.model_id, software = EXCLUDED.software",
                (self.kiosk_id, self.kiosk_name, st["last_change_no"], st["pending"],
                 st["oldest_pending"], self.model_id, self.software))

    # ------------------------------------------------------------------ push
    def pending(self) -> int:
        return self.catalog._rows("SELECT COUNT(*) FROM sync_outbox")[0][0]

    def push(self, max_batches: int | None = None) -> int:
        """Push the outbox until it is empty; returns the number of rows sent."""
        total, n = 0, 0
        while max_batches is None or n < max_batches:
            sent = self.push_batch()
            if not sent:
                break
            total += sent
            n += 1
        return total

    def push_batch(self) -> int:
        import psycopg

        rows = local.outbox(self.catalog, self.batch)
        if not rows:
            return 0
        conn = self.connect()
        if not self.cashiers_shared and any(r["kind"] == "cashier" for r in rows):
            self._share_cashier_salt()  # the first cashier here may make this kiosk's salt the store's
        items, size = [], 0
        for row in rows:
            item = self._item(row)
            items.append((row, item))
            if item is not None:
                size += len(item.get("image") or b"") + len(item.get("vector") or b"")
            if size > MAX_PUSH_BYTES:
                break
        todo = [(r, it) for r, it in items if it is not None]
        try:
            self._send(conn, todo, careful=False)
        except (psycopg.OperationalError, psycopg.InterfaceError):
            raise
        except psycopg.Error as exc:  # bad data somewhere in the batch: one by one
            log.warning("store server refused a batch (%s): sending it change by change",
                        exc.__class__.__name__)
            self._send(conn, todo, careful=True)
        _fault("push_after_commit")
        seqs = [r["seq"] for r, _ in items]
        views = [it["view_uuid"] for _, it in todo if it["kind"] == "vector" and it.get("image") is not None]
        with self.catalog.transaction():
            c = self.catalog.conn
            for start in range(0, len(seqs), 500):
                chunk = seqs[start:start + 500]
                c.execute(f"DELETE FROM sync_outbox WHERE seq IN ({','.join('?' * len(chunk))})", chunk)
            for start in range(0, len(views), 500):
                chunk = views[start:start + 500]
                c.execute(f"UPDATE sync_views SET pushed = 1 WHERE uuid IN ({','.join('?' * len(chunk))})",
                          chunk)
            c.execute("UPDATE sync_state SET last_push_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), "
                      "last_error = NULL WHERE id = 1")
        return len(items)

    def _send(self, conn, todo, *, careful: bool) -> None:
        import psycopg

        with conn.transaction():
            cur = conn.cursor()
            if any(it["kind"] in server.STAMPING for _, it in todo):
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (server.CHANGE_LOCK,))
            for _, it in todo:
                apply = server.APPLY[it["kind"]]
                if not careful:
                    apply(cur, self.kiosk_id, it)
                    continue
                try:
                    with conn.transaction():
                        apply(cur, self.kiosk_id, it)
                except (psycopg.OperationalError, psycopg.InterfaceError):
                    raise
                except psycopg.Error as exc:
                    log.error("store server refused %s %s: %s", it["kind"], it["outbox_uuid"], exc)
                    server.reject(cur, self.kiosk_id, it, str(exc))
            _fault("push_before_commit")

    def _item(self, row: dict) -> dict | None:
        """The change an outbox row stands for, as the server applies it (None: nothing left
        to send, e.g. a gallery row deleted before it was pushed)."""
        kind, ref, cat = row["kind"], row["ref"], self.catalog
        base = {"kind": kind, "outbox_uuid": row["uuid"], "made_at": row["created_at"]}
        if kind == "product":
            p = row["payload"]
            return {**base, "uuid": row["uuid"], "sku": ref, "before": p["before"],
                    "after": p["after"], "join": bool(p.get("join"))}
        if kind == "sale":
            tx = cat.get_transaction(int(ref))
            if tx is None:
                return None
            lines = [{"line_no": n, **l} for n, l in enumerate(tx["lines"], 1)]
            return {**base, "uuid": local.uuid_of(cat, "transactions", int(ref)),
                    "local_id": tx["id"], "created_at": tx["created_at"], "total": tx["total"],
                    "currency": tx["currency"], "lines": lines}
        if kind == "correction":
            rows = cat._query("SELECT * FROM corrections WHERE id = ?", (int(ref),))
            if not rows:
                return None
            r = rows[0]
            return {**base, "uuid": local.uuid_of(cat, "corrections", r["id"]),
                    "local_id": r["id"], "created_at": r["created_at"],
                    "sale_uuid": local.uuid_of(cat, "transactions", r["transaction_id"]),
                    "box": json.loads(r["box"]) if r["box"] else None,
                    "from_sku": r["from_sku"], "to_sku": r["to_sku"], "action": r["action"],
                    "qty": r["qty"]}
        if kind == "audit":
            rows = cat._query("SELECT * FROM audit WHERE id = ?", (int(ref),))
            if not rows:
                return None
            r = rows[0]
            return {**base, "uuid": local.uuid_of(cat, "audit", r["id"]), "local_id": r["id"],
                    "time": r["time"], "role": r["role"], "action": r["action"],
                    "subject": r["subject"],
                    "before": json.loads(r["before"]) if r["before"] else None,
                    "after": json.loads(r["after"]) if r["after"] else None,
                    "detail": r["detail"], "actor": r["actor"]}
        if kind == "call":
            r = cat.get_call(int(ref))
            if r is None:
                return None
            return {**base, "uuid": local.uuid_of(cat, "calls", r["id"]), "local_id": r["id"],
                    "reason": r["reason"], "detail": r["detail"], "opened_at": r["opened_at"],
                    "resolved_at": r["resolved_at"], "resolved_by": r["resolved_by"],
                    "resolution": r["resolution"]}
        if kind == "call_resolve":
            return {**base, **row["payload"]}
        if kind == "view_delete":
            return {**base, "view_uuid": ref}
        if kind == "cashier":
            if not self.cashiers_shared:
                return None
            rows = cat._query("SELECT * FROM cashiers WHERE id = ?", (ref,))
            if not rows:
                return None
            r = rows[0]
            return {**base, "uuid": row["uuid"], "id": r["id"], "name": r["name"],
                    "code_hash": bytes(r["code_hash"]),
                    "badge_hash": None if r["badge_hash"] is None else bytes(r["badge_hash"]),
                    "active": bool(r["active"])}
        if kind == "vector":
            return self._view_item(base, int(ref))
        log.warning("unknown outbox row kind %r dropped", kind)
        return None

    def _view_item(self, base: dict, gallery_id: int) -> dict | None:
        cat = self.catalog
        rows = cat._query("SELECT g.sku, g.file, g.model_id, g.dim, g.embedding, g.created_at, "
                          "v.uuid, v.pushed, v.kind FROM gallery_images g JOIN sync_views v "
                          "ON v.sku = g.sku AND v.file = g.file WHERE g.id = ?", (gallery_id,))
        if not rows:
            return None
        r = rows[0]
        image = None
        if not r["pushed"]:
            try:
                image = Path(r["file"]).read_bytes()
            except OSError:
                log.warning("gallery picture %s is missing: its vector goes without it", r["file"])
        kind, meta = "enrol", None
        learned = cat._query("SELECT source, actor, status FROM learned_views WHERE sku = ? "
                             "AND (file = ? OR turned_file = ?) LIMIT 1",
                             (r["sku"], r["file"], r["file"]))
        if learned:
            kind, meta = "learned", learned[0]
        copy_of = None
        try:
            of = cat._rows("SELECT s.uuid FROM gallery_views gv JOIN sync_views s ON s.sku = "
                           "gv.sku AND s.file = gv.view WHERE gv.sku = ? AND gv.file = ? AND "
                           "gv.view <> gv.file", (r["sku"], r["file"]))
            copy_of = of[0][0] if of else None
        except Exception:  # noqa: BLE001 - a catalogue without gallery_views
            pass
        return {**base, "view_uuid": r["uuid"], "sku": r["sku"], "name": Path(r["file"]).name,
                "image": image,
                "image_sha256": hashlib.sha256(image).hexdigest() if image is not None else None,
                "copy_of": copy_of, "view_kind": kind, "meta": meta, "created_at": r["created_at"],
                "model_id": r["model_id"], "dim": r["dim"], "vector": bytes(r["embedding"])}

    # ------------------------------------------------------------------ pull
    def server_high(self) -> int:
        conn = self.connect()
        with conn.transaction():
            return conn.execute(
                "SELECT greatest((SELECT max(change_no) FROM products), (SELECT max(change_no) "
                "FROM views), (SELECT max(change_no) FROM view_vectors), (SELECT max(change_no) "
                "FROM calls), (SELECT max(change_no) FROM cashiers), 0)").fetchone()[0]

    def pull(self) -> PullResult:
        """Apply every server change not applied here yet; returns what changed."""
        high = self.server_high()
        if not self.cashiers_shared:
            self._share_cashier_salt()
        result = PullResult()
        last = local.state(self.catalog)["last_change_no"]
        while last < high:
            hi = min(high, last + PULL_CHUNK)
            result.merge(self._pull_chunk(last, hi))
            last = hi
        result.merge(self.resolve_pending())
        result.last_change_no = last
        result.applied_at = time.time()
        return result

    def _pull_chunk(self, lo: int, hi: int) -> PullResult:
        conn = self.connect()
        rng = {"lo": lo, "hi": hi, "me": self.kiosk_id, "model": self.model_id or ""}
        with conn.transaction():
            products = conn.execute(
                "SELECT sku, name, price, currency, barcode, active, deleted FROM products "
                "WHERE change_no > %(lo)s AND change_no <= %(hi)s ORDER BY change_no", rng).fetchall()
            views = conn.execute(
                "SELECT v.uuid::text, v.sku, v.kind, v.name, v.deleted, v.copy_of::text, "
                "CASE WHEN v.deleted OR v.kiosk_id = %(me)s THEN NULL ELSE v.image END, "
                "vv.dim, vv.vector FROM views v LEFT JOIN view_vectors vv ON vv.view_uuid = "
                "v.uuid AND vv.model_id = %(model)s WHERE v.change_no > %(lo)s AND "
                "v.change_no <= %(hi)s ORDER BY v.change_no", rng).fetchall()
            vectors = conn.execute(
                "SELECT view_uuid::text, dim, vector FROM view_vectors WHERE change_no > %(lo)s "
                "AND change_no <= %(hi)s AND model_id = %(model)s ORDER BY change_no", rng).fetchall()
            calls = conn.execute(
                "SELECT c.uuid::text, c.kiosk_id::text, k.name, c.local_id, c.reason, c.detail, "
                "c.opened_at, c.resolved_at, c.resolved_by, c.resolution, c.change_no FROM calls c "
                "LEFT JOIN kiosks k ON k.id = c.kiosk_id WHERE c.change_no > %(lo)s AND "
                "c.change_no <= %(hi)s ORDER BY c.change_no", rng).fetchall()
            cashiers = conn.execute(
                "SELECT id, name, code_hash, badge_hash, active FROM cashiers WHERE change_no > "
                "%(lo)s AND change_no <= %(hi)s ORDER BY change_no", rng).fetchall() \
                if self.cashiers_shared else []
        # pictures first (content-named files; one left behind by a crash is harmless)
        files: dict[str, str] = {}
        known = self._known_views([v[0] for v in views])
        for uuid, sku, _kind, name, deleted, _copy, image, _dim, _vec in views:
            if deleted or uuid in known or image is None:
                continue
            folder = self.gallery_dir / safe_name(sku, "sku")
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / safe_name(name, "view")
            if path.exists() and path.read_bytes() != bytes(image):
                # another picture under that name here (names are content hashes as the
                # kiosk writes them, so only a foreign naming scheme gets here)
                path = folder / f"{uuid[:8]}-{safe_name(name, 'view')}"
            if not path.exists() or path.read_bytes() != bytes(image):
                tmp = path.with_name(path.name + ".part")
                tmp.write_bytes(bytes(image))
                os.replace(tmp, path)
            files[uuid] = str(path)
        _fault("pull_before_apply")
        res = PullResult()
        with local.applying(self.catalog):
            c = self.catalog.conn
            for sku, name, price, currency, barcode, active, deleted in products:
                old = self.catalog.get_product(sku)
                if deleted:
                    if old is not None:
                        c.execute("DELETE FROM products WHERE sku = ?", (sku,))
                        res.products.append((sku, old, None))
                    continue
                try:
                    with self.catalog.transaction():  # a savepoint: one bad row does not jam
                        if barcode is not None:
                            c.execute("UPDATE products SET barcode = NULL WHERE barcode = ? "
                                      "AND sku <> ?", (barcode, sku))
                        c.execute(
                            "INSERT INTO products (sku, name, price, currency, barcode, active) "
                            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (sku) DO UPDATE SET name = "
                            "excluded.name, price = excluded.price, currency = excluded.currency, "
                            "barcode = excluded.barcode, active = excluded.active, updated_at = "
                            "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
                            (sku, name, price, currency, barcode, int(active)))
                except sqlite3.Error as exc:
                    log.error("product %s from the store not taken: %s", sku, exc)
                    continue
                new = self.catalog.get_product(sku)
                if new != old:
                    res.products.append((sku, old, new))
            self._apply_views(views, files, res)
            for uuid, dim, vec in vectors:
                c.execute("INSERT OR REPLACE INTO sync_pending_vectors (uuid, model_id, dim, vector) "
                          "SELECT uuid, ?, ?, ? FROM sync_views WHERE uuid = ? AND pending = 1",
                          (self.model_id, dim, bytes(vec), uuid))
            own_calls = []
            for (uuid, kiosk, kname, local_id, reason, detail, opened, resolved, by, resolution,
                 change_no) in calls:
                c.execute(
                    "INSERT INTO store_calls (uuid, kiosk_id, kiosk_name, local_id, reason, detail, "
                    "opened_at, resolved_at, resolved_by, resolution, change_no) VALUES "
                    "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (uuid) DO UPDATE SET "
                    "kiosk_name = excluded.kiosk_name, resolved_at = excluded.resolved_at, "
                    "resolved_by = excluded.resolved_by, resolution = excluded.resolution, "
                    "change_no = excluded.change_no",
                    (uuid, kiosk, kname, local_id, reason, detail, _iso(opened), _iso(resolved),
                     by, resolution, change_no))
                res.calls += 1
                if kiosk == self.kiosk_id and resolved is not None:
                    mine = c.execute("SELECT local_id FROM sync_ids WHERE tbl = 'calls' AND uuid = ?",
                                     (uuid,)).fetchone()
                    if mine and c.execute(
                            "UPDATE calls SET resolved_at = ?, resolved_by = ?, resolution = ? "
                            "WHERE id = ? AND resolved_at IS NULL",
                            (_iso(resolved), by, resolution or "attended", mine[0])).rowcount:
                        own_calls.append(int(mine[0]))
                        self.catalog.audit("call_resolved", f"call {mine[0]}", role="system",
                                           after={"resolution": resolution}, actor=by,
                                           detail="closed on another kiosk")
            res.resolved_here = own_calls
            for cid, name, code_hash, badge_hash, active in cashiers:
                try:
                    with self.catalog.transaction():
                        c.execute("INSERT INTO cashiers (id, name, code_hash, badge_hash, active) "
                                  "VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET name = "
                                  "excluded.name, code_hash = excluded.code_hash, badge_hash = "
                                  "excluded.badge_hash, active = excluded.active",
                                  (cid, name, bytes(code_hash),
                                   None if badge_hash is None else bytes(badge_hash), int(active)))
                    res.cashiers += 1
                except Exception as exc:  # noqa: BLE001 - e.g. the same code as a local cashier
                    log.warning("cashier %s from the store not taken: %s", cid, exc)
            c.execute("UPDATE sync_state SET last_change_no = ?, last_pull_at = "
                      "strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = 1", (hi,))
        res.last_change_no = hi
        return res

    def _known_views(self, uuids: list[str]) -> set[str]:
        out: set[str] = set()
        for start in range(0, len(uuids), 500):
            chunk = uuids[start:start + 500]
            out.update(r[0] for r in self.catalog._rows(
                f"SELECT uuid FROM sync_views WHERE uuid IN ({','.join('?' * len(chunk))})", chunk))
        return out

    def _apply_views(self, views, files: dict[str, str], res: PullResult) -> None:
        c = self.catalog.conn
        for uuid, sku, kind, name, deleted, copy_of, _image, dim, vec in views:
            m = c.execute("SELECT sku, file, pending FROM sync_views WHERE uuid = ?", (uuid,)).fetchone()
            if deleted:
                if m is not None:
                    res.views_removed += c.execute("DELETE FROM gallery_images WHERE sku = ? AND file = ?",
                                                   (m[0], m[1])).rowcount
                    c.execute("DELETE FROM sync_views WHERE uuid = ?", (uuid,))
                continue
            if m is not None or uuid not in files:
                continue  # known here (this kiosk's own, or applied before), or no picture
            path = files[uuid]
            if c.execute("SELECT 1 FROM sync_views WHERE sku = ? AND file = ?",
                         (sku, path)).fetchone():
                continue  # the very same picture is a view here already
            c.execute("INSERT OR IGNORE INTO sync_views (uuid, sku, file, pushed, pending, kind, "
                      "copy_of) VALUES (?, ?, ?, 1, 1, ?, ?)", (uuid, sku, path, kind, copy_of))
            if vec is not None:
                c.execute("INSERT OR REPLACE INTO sync_pending_vectors (uuid, model_id, dim, vector) "
                          "VALUES (?, ?, ?, ?)", (uuid, self.model_id, dim, bytes(vec)))
        self._place_pending(res)

    def _place_pending(self, res: PullResult) -> None:
        """Pending views whose product is here and that have this model's vector join the
        gallery (inside the caller's applying transaction)."""
        c = self.catalog.conn
        rows = c.execute(
            "SELECT v.uuid, v.sku, v.file, v.copy_of, p.model_id, p.dim, p.vector FROM sync_views v "
            "JOIN sync_pending_vectors p ON p.uuid = v.uuid JOIN products pr ON pr.sku = v.sku "
            "WHERE v.pending = 1 AND p.model_id = ?", (self.model_id or "",)).fetchall()
        for uuid, sku, file, copy_of, model_id, dim, vec in rows:
            c.execute("INSERT OR IGNORE INTO gallery_images (sku, file, model_id, dim, embedding) "
                      "VALUES (?, ?, ?, ?, ?)", (sku, file, model_id, dim, vec))
            c.execute("UPDATE sync_views SET pending = 0 WHERE uuid = ?", (uuid,))
            c.execute("DELETE FROM sync_pending_vectors WHERE uuid = ?", (uuid,))
            self._link_copy(sku, file, copy_of)
            res.views_added += 1

    def _link_copy(self, sku: str, file: str, copy_of: str | None) -> None:
        if not copy_of:
            return
        of = self.catalog.conn.execute("SELECT file FROM sync_views WHERE uuid = ? AND sku = ?",
                                       (copy_of, sku)).fetchone()
        if of:
            try:
                self.catalog.conn.execute("INSERT OR REPLACE INTO gallery_views (sku, file, view) "
                                          "VALUES (?, ?, ?)", (sku, file, of[0]))
            except Exception:  # noqa: BLE001 - a catalogue without gallery_views
                pass

    def resolve_pending(self, limit: int = 64) -> PullResult:
        """Views waiting for a vector of this kiosk's model: placed once one has arrived, or
        embedded here (and the vector sent to the store, so no other kiosk of this model has
        to) when this client has an embedder."""
        res = PullResult()
        with local.applying(self.catalog):
            self._place_pending(res)
        if self.embedder is None:
            res.views_pending = self.catalog._rows("SELECT COUNT(*) FROM sync_views WHERE pending = 1")[0][0]
            return res
        from kiosk.embed import Embeddings
        from kiosk.images import load_image

        while True:
            todo = self.catalog._rows(
                "SELECT v.uuid, v.sku, v.file, v.copy_of FROM sync_views v JOIN products p ON "
                "p.sku = v.sku WHERE v.pending = 1 AND NOT EXISTS (SELECT 1 FROM "
                "sync_pending_vectors x WHERE x.uuid = v.uuid AND x.model_id = ?) LIMIT ?",
                (self.model_id or "", limit))
            if not todo:
                break
            images, ok = [], []
            for row in todo:
                try:
                    images.append(load_image(Path(row[2])))
                    ok.append(row)
                except Exception as exc:  # noqa: BLE001 - a picture that cannot be read
                    log.warning("pulled view %s of %s unreadable (%s): dropped", row[0], row[1], exc)
                    with local.applying(self.catalog):
                        self.catalog.conn.execute("DELETE FROM sync_views WHERE uuid = ?", (row[0],))
            if not ok:
                continue
            emb = self.embedder.embed(images)
            with local.applying(self.catalog):
                c = self.catalog.conn
                for (uuid, sku, file, copy_of), vec in zip(ok, emb.vectors):
                    gid = c.execute("INSERT OR IGNORE INTO gallery_images (sku, file, model_id, dim, "
                                    "embedding) VALUES (?, ?, ?, ?, ?)",
                                    (sku, file, emb.model_id, emb.dim,
                                     np.asarray(vec, "<f4").tobytes())).lastrowid
                    c.execute("UPDATE sync_views SET pending = 0 WHERE uuid = ?", (uuid,))
                    self._link_copy(sku, file, copy_of)
                    if gid:  # this model's vector, for the store
                        c.execute("INSERT INTO sync_outbox (uuid, kind, ref) VALUES (?, 'vector', ?)",
                                  (local.new_uuid(), gid))
                    res.embedded += 1
            if isinstance(emb, Embeddings) and len(ok) < limit:
                break
        res.views_pending = self.catalog._rows("SELECT COUNT(*) FROM sync_views WHERE pending = 1")[0][0]
        return res

    # ------------------------------------------------------------------ both
    def sync_once(self) -> PullResult:
        """Push everything, pull everything, report in."""
        self.connect()
        self.push()
        res = self.pull()
        self.heartbeat()
        return res


# --------------------------------------------------------------------------------- engine


def refresh_engine(engine, keep: dict | None = None) -> None:
    """Make a running :class:`kiosk.engine.Engine` see what a pull changed in its catalogue:
    new gallery rows become searchable, removed ones tombstones, names and prices current.
    Nothing is re-embedded; the vector index file is brought up to date when the engine saves.

    ``keep``: sku -> product the engine goes on charging for now (a basket that keeps its
    prices).  The catalogue is read without the engine's lock and the engine's state is then
    changed under it alone (never both at once: staff enrolments take the two the other way
    round), merging what the engine itself did meanwhile (rows and products it added, changed
    or removed since the catalogue was read)."""
    lock = getattr(engine, "_lock", None) or threading.RLock()
    with lock:
        before_rows = dict(engine._sku_of)
        before_products = dict(engine._products)
        have = engine.index.ids()
    cat = engine.catalog
    ids, skus = cat.gallery_ids(engine.embedder.model_id)
    products = {p.sku: p for p in cat.list_products(active_only=False)}
    missing = ids[~np.isin(ids, have)]
    vectors = cat.gallery_vectors_for(missing) if len(missing) else None
    with lock:
        rows = dict(zip(ids.tolist(), skus))
        now_rows = engine._sku_of
        for i in set(before_rows) - set(now_rows):  # removed by the engine meanwhile
            rows.pop(i, None)
        for i in set(now_rows) - set(before_rows):  # added by the engine meanwhile
            rows[i] = now_rows[i]
        if vectors is not None:
            fresh = ~np.isin(missing, engine.index.ids())
            keep_rows = np.array([int(i) in rows for i in missing], bool)
            add = fresh & keep_rows
            if add.any():
                engine.index.add(missing[add], vectors[add])
        live = np.fromiter(rows.keys(), np.int64, len(rows))
        engine.index.set_live(live)
        engine._sku_of = rows
        ids_of: dict[str, list[int]] = {}
        for i, sku in rows.items():
            ids_of.setdefault(sku, []).append(i)
        engine._ids_of = ids_of
        now_products = engine._products
        for sku in set(before_products) - set(now_products):
            products.pop(sku, None)
        for sku, p in now_products.items():
            if before_products.get(sku) is not p:  # the engine changed it meanwhile
                products[sku] = p
        for sku, p in (keep or {}).items():
            if p is not None and sku in products:
                products[sku] = p
        engine._products = products
    try:
        engine._refresh_text()
    except Exception:  # noqa: BLE001 - pack text is a refinement only
        log.exception("refreshing the pack-text profiles")
    if getattr(engine, "text_reader", None) is not None:
        try:
            engine.read_missing_text(32)
        except Exception:  # noqa: BLE001
            log.exception("reading the text of pulled views")


# --------------------------------------------------------------------------------- worker


class SyncWorker:
    """Runs a :class:`StoreClient` on its own thread until :meth:`stop`.

    ``on_pulled(result)`` is called on the worker thread after every pull that changed
    something (e.g. to refresh the engine, the basket and the attendant screen)."""

    def __init__(self, client: StoreClient, *, on_pulled: Callable[[PullResult], None] | None = None,
                 poll_s: float = 0.25, pull_every_s: float = 5.0, heartbeat_s: float = 5.0,
                 max_backoff_s: float = 10.0) -> None:
        self.client = client
        self.on_pulled = on_pulled
        self.poll_s = poll_s
        self.pull_every_s = pull_every_s
        self.heartbeat_s = heartbeat_s
        self.max_backoff_s = max_backoff_s
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._listen = None
        self.connected = False
        self.last_error: str | None = None
        self.last_sync: float | None = None
        self.last_pull: PullResult | None = None

    def start(self) -> "SyncWorker":
        self._thread = threading.Thread(target=self._run, name="store-sync", daemon=True)
        self._thread.start()
        return self

    def poke(self) -> None:
        """Something changed here: push now."""
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._close_listen()
        self.client.disconnect()

    def status(self) -> dict[str, Any]:
        st = local.state(self.client.catalog)
        return {"connected": self.connected, "last_error": self.last_error,
                "last_sync": self.last_sync, "pending": st["pending"],
                "last_change_no": st["last_change_no"], "kiosk_id": st["kiosk_id"],
                "kiosk_name": self.client.kiosk_name, "server": redact(self.client.url)}

    def _backoff(self, seconds: float) -> None:
        """Wait before trying the server again; a new local change (:meth:`poke`) or
        :meth:`stop` ends the wait early (a refused connection costs next to nothing)."""
        self._wake.wait(seconds)
        self._wake.clear()

    def _close_listen(self) -> None:
        if self._listen is not None:
            try:
                self._listen.close()
            except Exception:  # noqa: BLE001
                pass
        self._listen = None

    def _run(self) -> None:
        import psycopg

        backoff = 0.5
        last_pull = last_beat = 0.0
        while not self._stop.is_set():
            try:
                if self._listen is None:
                    self.client.connect()
                    self._listen = connect(self.client.url, self.client._password, autocommit=True)
                    self._listen.execute(f"LISTEN {server.CHANNEL}")
                    notified = True  # whatever happened while away
                    if not self.connected:
                        log.info("store server %s: connected", redact(self.client.url))
                    self.connected = True
                else:
                    notified = False
                    for _ in self._listen.notifies(timeout=self.poll_s, stop_after=1):
                        notified = True
                    if self._wake.is_set():
                        self._wake.clear()
                now = time.monotonic()
                if self.client.pending():
                    self.client.push()
                if notified or now - last_pull >= self.pull_every_s:
                    res = self.client.pull()
                    last_pull = now
                    self.last_pull = res
                    if res.changed and self.on_pulled is not None:
                        try:
                            self.on_pulled(res)
                        except Exception:  # noqa: BLE001 - the sync goes on
                            log.exception("after applying pulled changes")
                if now - last_beat >= self.heartbeat_s:
                    self.client.heartbeat()
                    last_beat = now
                self.last_sync = time.time()
                self.last_error = None
                backoff = 0.5
            except (psycopg.Error, OSError, server.ServerSchemaError) as exc:
                msg = f"{exc.__class__.__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
                if self.connected or self.last_error != msg:
                    log.warning("store server %s unavailable (%s): retrying in %.1f s; selling "
                                "goes on", redact(self.client.url), msg, backoff)
                self.connected = False
                self.last_error = msg
                try:
                    with self.client.catalog.transaction():
                        self.client.catalog.conn.execute(
                            "UPDATE sync_state SET last_error = ? WHERE id = 1", (msg[:500],))
                except Exception:  # noqa: BLE001
                    pass
                self._close_listen()
                self.client.disconnect()
                self._backoff(backoff)
                backoff = min(backoff * 2, self.max_backoff_s)
            except Exception:  # noqa: BLE001 - never let the thread die silently
                log.exception("store sync failed; retrying")
                self._close_listen()
                self.client.disconnect()
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.max_backoff_s)
