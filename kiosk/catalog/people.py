"""People and their codes: the staff PIN record and the cashier accounts (codes and badges
are stored hashed).
"""
from __future__ import annotations

from typing import Any, Sequence
from kiosk.catalog.common import _NOW


class People:
    """Part of :class:`kiosk.catalog.Catalog`: people and their codes."""

    # Rows only; hashing, rules and auditing live in kiosk.checkout.cashier_auth.  The public
    # shape of a cashier never carries its hashes: id, name, active, has_badge, created_at,
    # updated_at.
    _CASHIER_COLS = ("id, name, active, badge_hash IS NOT NULL AS has_badge, created_at, "
                     "updated_at")

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
