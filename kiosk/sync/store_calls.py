"""The store's calls for the cashier: every kiosk's open calls, on every kiosk (no Qt here).

This kiosk's own calls come from its ``calls`` table (they are there before any server has
heard of them); the other kiosks' from ``store_calls``, as last pulled.  Closing one closes it
everywhere: an own call is closed as the checkout closes it (:class:`kiosk.checkout.calls.CallBoard`,
which pushes the closing); another kiosk's call is marked closed here at once and the closing
is pushed (``call_resolve``): the server keeps the first closing, and the kiosk that opened the
call closes its own row when it pulls it (and publishes that on its CallBoard).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone

from kiosk.sync import local


@dataclass(frozen=True)
class StoreCall:
    uuid: str | None  # None: an own call not yet known to the server
    kiosk_id: str
    kiosk_name: str
    reason: str
    detail: str | None
    opened_at: str  # ISO 8601 UTC
    waiting_s: float
    own: bool
    local_id: int | None  # the call's id in this kiosk's ``calls`` (own calls)


def _parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def open_store_calls(catalog, now: datetime | None = None) -> list[StoreCall]:
    """Open calls of every kiosk of the store, the longest waiting first."""
    now = now or datetime.now(timezone.utc)
    st = catalog._query("SELECT kiosk_id, kiosk_name FROM sync_state WHERE id = 1")[0]
    me, my_name = st["kiosk_id"], st["kiosk_name"] or "this kiosk"
    out = []
    for r in catalog._query(
            "SELECT c.id, c.reason, c.detail, c.opened_at, i.uuid FROM calls c LEFT JOIN "
            "sync_ids i ON i.tbl = 'calls' AND i.local_id = c.id WHERE c.resolved_at IS NULL"):
        out.append(StoreCall(r["uuid"], me, my_name, r["reason"], r["detail"], r["opened_at"],
                             max(0.0, (now - _parse(r["opened_at"])).total_seconds()), True,
                             int(r["id"])))
    for r in catalog._query("SELECT * FROM store_calls WHERE resolved_at IS NULL AND "
                            "kiosk_id <> ?", (me,)):
        out.append(StoreCall(r["uuid"], r["kiosk_id"], r["kiosk_name"] or r["kiosk_id"][:8],
                             r["reason"], r["detail"], r["opened_at"],
                             max(0.0, (now - _parse(r["opened_at"])).total_seconds()), False, None))
    out.sort(key=lambda c: c.opened_at)
    return out


def close_store_call(catalog, call: StoreCall, *, by: str | None, resolution: str = "attended",
                     role: str = "cashier", board=None) -> bool:
    """Close ``call`` wherever it was opened; False when it was closed already."""
    if call.own:
        if board is not None:
            return board.resolve(call.local_id, by=by, resolution=resolution) is not None
        return catalog.resolve_call(call.local_id, by=by, resolution=resolution, role=role)
    with catalog.transaction():
        c = catalog.conn
        stamp = c.execute("SELECT strftime('%Y-%m-%dT%H:%M:%fZ', 'now')").fetchone()[0]
        if not c.execute("UPDATE store_calls SET resolved_at = ?, resolved_by = ?, resolution = ? "
                         "WHERE uuid = ? AND resolved_at IS NULL",
                         (stamp, by, resolution, call.uuid)).rowcount:
            return False
        if local.enabled(catalog):
            c.execute("INSERT INTO sync_outbox (uuid, kind, ref, payload) VALUES (?, "
                      "'call_resolve', ?, ?)",
                      (local.new_uuid(), call.uuid, json.dumps(
                          {"call_uuid": call.uuid, "resolved_at": stamp, "resolved_by": by,
                           "resolution": resolution})))
        catalog.audit("call_resolved", f"store call {call.uuid}", role=role,
                      after={"resolution": resolution, "kiosk": call.kiosk_name,
                             "reason": call.reason}, actor=by)
    return True
