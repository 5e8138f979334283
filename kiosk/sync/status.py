"""``kiosk store status``: the store's kiosks as the server sees them.

For each kiosk: its name, when it was last in contact, how far behind the server it is (change
numbers not yet applied there, and how long the oldest of them has waited: the sync lag), and
how many changes wait in its outbox.  Plus the store's totals (products, views, sales, audit
rows, open calls, refused changes).
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

_CHANGES = " UNION ALL ".join(
    f"SELECT change_no, changed_at FROM {t}" for t in
    ("products", "views", "view_vectors", "calls", "cashiers"))


def store_status(conn) -> dict[str, Any]:
    """The store's state (plain JSON-able data)."""
    with conn.transaction():
        now, high = conn.execute(
            "SELECT now(), greatest((SELECT max(change_no) FROM products), (SELECT max(change_no) "
            "FROM views), (SELECT max(change_no) FROM view_vectors), (SELECT max(change_no) FROM "
            "calls), (SELECT max(change_no) FROM cashiers), 0)").fetchone()
        kiosks = []
        for (kid, name, first, last, last_no, pending, oldest, model, software) in conn.execute(
                "SELECT id::text, name, first_contact, last_contact, last_change_no, "
                "pending_outbox, oldest_pending, model_id, software FROM kiosks ORDER BY name, id"):
            waiting = conn.execute(f"SELECT min(changed_at) FROM ({_CHANGES}) c WHERE change_no > %s",
                                   (last_no,)).fetchone()[0]
            kiosks.append({
                "id": kid, "name": name, "first_contact": _iso(first), "last_contact": _iso(last),
                "seconds_since_contact": round((now - last).total_seconds(), 1),
                "last_change_no": last_no, "changes_behind": max(0, high - last_no),
                "lag_s": round((now - waiting).total_seconds(), 1) if waiting else 0.0,
                "pending_outbox": pending,
                "oldest_pending_s": round((now - oldest).total_seconds(), 1) if oldest else 0.0,
                "model_id": model, "software": software,
            })
        totals = dict(zip(
            ("products", "deleted_products", "views", "sales", "sale_lines", "corrections",
             "audit", "open_calls", "rejects", "conflicts"),
            conn.execute(
                "SELECT (SELECT count(*) FROM products WHERE NOT deleted), (SELECT count(*) FROM "
                "products WHERE deleted), (SELECT count(*) FROM views WHERE NOT deleted), "
                "(SELECT count(*) FROM sales), (SELECT count(*) FROM sale_lines), (SELECT count(*) "
                "FROM corrections), (SELECT count(*) FROM audit), (SELECT count(*) FROM calls "
                "WHERE resolved_at IS NULL), (SELECT count(*) FROM rejects), (SELECT count(*) FROM "
                "audit WHERE action = 'sync_conflict')").fetchone()))
        store_id = conn.execute("SELECT value FROM store_meta WHERE key = 'store_id'").fetchone()[0]
    return {"store_id": store_id, "server_time": _iso(now), "change_no": high, "kiosks": kiosks,
            "totals": totals}


def _iso(v) -> str | None:
    if v is None:
        return None
    if isinstance(v, datetime):
        return v.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
    return str(v)


def _ago(seconds: float) -> str:
    s = float(seconds)
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.0f} min"
    if s < 172800:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} d"


def format_status(st: dict[str, Any]) -> str:
    lines = [f"store {st['store_id']}  change {st['change_no']}  (server time {st['server_time']})",
             ""]
    head = ("kiosk", "last contact", "behind", "lag", "outbox", "oldest", "model")
    rows = [head]
    for k in st["kiosks"]:
        rows.append((k["name"], _ago(k["seconds_since_contact"]) + " ago",
                     str(k["changes_behind"]), _ago(k["lag_s"]) if k["changes_behind"] else "-",
                     str(k["pending_outbox"]),
                     _ago(k["oldest_pending_s"]) if k["pending_outbox"] else "-",
                     k["model_id"] or "?"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    for r in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    if not st["kiosks"]:
        lines.append("(no kiosk has been in contact yet)")
    t = st["totals"]
    lines += ["", "products {products} (+{deleted_products} deleted), views {views}, sales {sales} "
              "({sale_lines} lines), corrections {corrections}, audit rows {audit}, open calls "
              "{open_calls}, conflicts {conflicts}, refused changes {rejects}".format(**t)]
    return "\n".join(lines)
