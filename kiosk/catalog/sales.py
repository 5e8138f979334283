"""Finished sales, the corrections made on them, and the calls for a cashier.
"""
from __future__ import annotations

import json
from typing import Any, Iterable
from kiosk.money import DEFAULT_CURRENCY, check_fen
from kiosk.catalog.common import _NOW, _check_currency, _check_role, _check_text, check_sku


class Sales:
    """Part of :class:`kiosk.catalog.Catalog`: finished sales, the corrections made on them, and the calls for a cashier."""

    CALL_REASONS = ("shopper", "unknown", "unsure", "unpriced", "camera", "printer")

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

    def corrections(self) -> list[dict[str, Any]]:
        rows = self._query("SELECT * FROM corrections ORDER BY id")
        for r in rows:
            r["box"] = json.loads(r["box"]) if r["box"] is not None else None
        return rows

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
