"""The audit log: every change to the bill or the catalogue, with who made it.
"""
from __future__ import annotations

import json
from typing import Any
from kiosk.catalog.common import _check_role, _check_text, _json


class Audit:
    """Part of :class:`kiosk.catalog.Catalog`: the audit log."""

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
