"""Cashier (store attendant) accounts: who may relabel an item, change a quantity, remove a line
or accept an unknown item.

A cashier proves who they are with a code of 4 to 8 digits typed on the on-screen keypad, or
with a badge: the content of a barcode or QR code printed on a card, shown to the camera.

Codes are typed without a user id, so one lookup must find the cashier: every code is hashed
with scrypt under one kiosk-wide random salt (table ``cashier_auth``), and the hash is unique
among cashiers (the catalogue refuses a second cashier with the same code).  Wrong codes are
counted kiosk-wide in the catalogue; after ``max_attempts`` in a row every code is refused for
``lockout_s`` seconds, twice as long after each further lockout, until a right code (as the
staff PIN, :mod:`kiosk.checkout.staff_auth`).  The count survives a restart.

A badge is a token chosen by staff (any printable text of 6 to 256 characters, the card's
barcode or QR content); only its SHA-256 is stored.  Badge reads are not counted towards the
lockout, but the badge of a disabled cashier is refused.

Every change to an account is audited (who added or changed which cashier), never a code, a
badge or their hashes.  No Qt here.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from typing import Any, Callable

from kiosk.checkout.lockout import CodeChecker
from kiosk.checkout.staff_auth import SCRYPT_PARAMS, _hash

MIN_CODE = 4
MAX_CODE = 8
MAX_ID = 32
MAX_NAME = 64
MIN_BADGE = 6
MAX_BADGE = 256
SESSION_HOWS = ("code", "badge")


class CodeFormatError(ValueError):
    """A cashier code must be 4 to 8 digits."""


class UnknownCashierError(ValueError):
    """No cashier with that id."""


def check_code(code: object) -> str:
    """``code`` if it is 4 to 8 ASCII digits, else :class:`CodeFormatError`."""
    if not isinstance(code, str):
        raise CodeFormatError("the cashier code must be text of 4 to 8 digits")
    if not (code.isascii() and code.isdigit() and MIN_CODE <= len(code) <= MAX_CODE):
        raise CodeFormatError("the cashier code must be 4 to 8 digits (0-9)")
    return code


def check_cashier_id(cashier_id: object) -> str:
    """An id such as ``C001``: 1 to 32 ASCII letters, digits, ``-``, ``_`` or ``.``."""
    if not isinstance(cashier_id, str) or not cashier_id.strip():
        raise ValueError("the cashier id must be non-empty text, such as C001")
    cid = cashier_id.strip()
    if not (len(cid) <= MAX_ID and cid.isascii()
            and all(c.isalnum() or c in "-_." for c in cid)):
        raise ValueError(f"the cashier id {cid!r} may only hold up to {MAX_ID} letters, digits, "
                         "'-', '_' or '.' (such as C001)")
    return cid


def check_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ValueError("the cashier's name must be non-empty text")
    name = name.strip()
    if not name.isprintable():
        raise ValueError("the cashier's name contains control characters")
    if len(name) > MAX_NAME:
        raise ValueError(f"the cashier's name is longer than {MAX_NAME} characters")
    return name


def check_badge(badge: object) -> str:
    """A badge: printable text of 6 to 256 characters (surrounding spaces dropped)."""
    if not isinstance(badge, str) or not badge.strip():
        raise ValueError("the badge must be non-empty text (the card's barcode or QR content)")
    badge = badge.strip()
    if not badge.isprintable():
        raise ValueError("the badge contains control characters")
    if not MIN_BADGE <= len(badge) <= MAX_BADGE:
        raise ValueError(f"the badge must be {MIN_BADGE} to {MAX_BADGE} characters long "
                         "(a short badge is easy to guess)")
    return badge


def badge_hash(badge: str) -> bytes:
    return hashlib.sha256(badge.strip().encode("utf-8")).digest()


@dataclass(frozen=True)
class Cashier:
    id: str
    name: str
    active: bool
    has_badge: bool

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> "Cashier":
        return cls(id=row["id"], name=row["name"], active=bool(row["active"]),
                   has_badge=bool(row["has_badge"]))


class CashierAuth(CodeChecker):
    """Cashier accounts and their codes and badges, kept in ``catalog`` (a
    :class:`kiosk.catalog.Catalog`).  Times are wall-clock seconds (``clock``, injectable)."""

    def __init__(self, catalog: Any, *, max_attempts: int = 5, lockout_s: float = 30.0,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(max_attempts, lockout_s, clock)
        self.catalog = catalog

    # ------------------------------------------------------------------ hashing
    def _salt_row(self) -> dict[str, Any]:
        """The kiosk-wide salt row, created on first use (call inside a transaction)."""
        row = self.catalog.get_cashier_auth()
        if row is None:
            self.catalog.put_cashier_auth(salt=os.urandom(16), params=json.dumps(SCRYPT_PARAMS))
            row = self.catalog.get_cashier_auth()
        return row

    @staticmethod
    def _digest(code: str, row: dict[str, Any]) -> bytes:
        return _hash(code, bytes(row["salt"]), json.loads(row["params"]))

    # ------------------------------------------------------------------ accounts
    def list(self) -> list[Cashier]:
        """All cashiers, by id."""
        return [Cashier.from_row(r) for r in self.catalog.list_cashiers()]

    def get(self, cashier_id: str) -> Cashier | None:
        row = self.catalog.get_cashier(cashier_id.strip()) if isinstance(cashier_id, str) else None
        return Cashier.from_row(row) if row else None

    def _require(self, cashier_id: str) -> Cashier:
        cashier = self.get(cashier_id)
        if cashier is None:
            raise UnknownCashierError(f"no cashier {cashier_id!r}")
        return cashier

    def add(self, cashier_id: str, name: str, code: str, badge: str | None = None, *,
            role: str = "staff") -> Cashier:
        """A new active cashier.  Refused (ValueError, nothing written) for a bad or taken id,
        a bad code or one another cashier already uses, a bad or taken badge.  Audited as
        ``cashier_added`` by ``role`` with the id and name."""
        cid = check_cashier_id(cashier_id)
        name = check_name(name)
        code = check_code(code)
        bhash = badge_hash(check_badge(badge)) if badge is not None else None
        with self.catalog.transaction():
            if self.catalog.get_cashier(cid) is not None:
                raise ValueError(f"cashier {cid} already exists")
            digest = self._digest(code, self._salt_row())
            if self.catalog.cashier_by_code_hash(digest) is not None:
                raise ValueError("this code is already used by another cashier: choose another")
            if bhash is not None and self.catalog.cashier_by_badge_hash(bhash) is not None:
                raise ValueError("this badge is already used by another cashier")
            self.catalog.insert_cashier(cid, name, digest, bhash)
            self.catalog.audit("cashier_added", cid, role=role,
                               after={"id": cid, "name": name, "badge": bhash is not None})
        return self._require(cid)

    def set_active(self, cashier_id: str, active: bool, *, role: str = "staff") -> bool:
        """Enable or disable a cashier; False when it already was so.  Audited as
        ``cashier_enabled`` / ``cashier_disabled``."""
        with self.catalog.transaction():
            cashier = self._require(cashier_id)
            if cashier.active == bool(active):
                return False
            self.catalog.update_cashier(cashier.id, active=bool(active))
            self.catalog.audit("cashier_enabled" if active else "cashier_disabled", cashier.id,
                               role=role, before={"enabled": cashier.active},
                               after={"enabled": bool(active)})
            return True

    def set_code(self, cashier_id: str, code: str, *, role: str = "staff") -> None:
        """Give a cashier a new code (not one another cashier uses).  Audited as
        ``cashier_code_set`` -- that it changed, never the code."""
        code = check_code(code)
        with self.catalog.transaction():
            cashier = self._require(cashier_id)
            digest = self._digest(code, self._salt_row())
            other = self.catalog.cashier_by_code_hash(digest)
            if other is not None and other["id"] != cashier.id:
                raise ValueError("this code is already used by another cashier: choose another")
            self.catalog.update_cashier(cashier.id, code_hash=digest)
            self.catalog.audit("cashier_code_set", cashier.id, role=role,
                               after={"code_set": True})

    def set_badge(self, cashier_id: str, badge: str | None, *, role: str = "staff") -> None:
        """Give a cashier a (new) badge, or none (``None``).  Audited as ``cashier_badge_set``
        -- whether there is one, never its content."""
        bhash = badge_hash(check_badge(badge)) if badge is not None else None
        with self.catalog.transaction():
            cashier = self._require(cashier_id)
            if bhash is not None:
                other = self.catalog.cashier_by_badge_hash(bhash)
                if other is not None and other["id"] != cashier.id:
                    raise ValueError("this badge is already used by another cashier")
            self.catalog.update_cashier(cashier.id, badge_hash=bhash)
            self.catalog.audit("cashier_badge_set", cashier.id, role=role,
                               before={"badge": cashier.has_badge},
                               after={"badge": bhash is not None})

    # ------------------------------------------------------------------ proving who
    def _state(self) -> dict[str, Any]:
        return self.catalog.get_cashier_auth() or {"salt": None, "params": None, "failures": 0,
                                                   "lockouts": 0, "locked_until": 0}

    def locked_until(self, now: float | None = None) -> float | None:
        """When the code lockout ends (clock seconds), or None when not locked at ``now``."""
        until = self.lockout.until(self._state())
        return until if until > self.lockout.now(now) else None

    def failures(self) -> int:
        """Wrong codes in a row since the last right code or lockout."""
        return int(self._state()["failures"])

    def verify_code(self, code: str, now: float | None = None) -> Cashier | None:
        """The active cashier whose code this is, else None.  Always None while locked out
        (the attempt does not count) or before the first cashier.  A malformed code, an unknown
        one and a disabled cashier's count as wrong codes."""
        now = self.lockout.now(now)
        row = self.catalog.get_cashier_auth()
        if row is None or self.lockout.locked(row, now):
            return None
        digest = None
        try:
            code = check_code(code)
        except CodeFormatError:
            pass
        else:  # the one scrypt, outside the write lock (the salt never changes)
            digest = self._digest(code, row)
        with self.catalog.transaction():
            row = self.catalog.get_cashier_auth()
            if self.lockout.locked(row, now):
                return None
            found = self.catalog.cashier_by_code_hash(digest) if digest is not None else None
            if found is not None and found["active"]:
                if self.lockout.needs_reset(row):
                    self.catalog.put_cashier_auth(failures=0, lockouts=0, locked_until=0)
                return Cashier.from_row(found)
            fail = self.lockout.failure(row, now)
            if fail.locked_for_s:
                self.catalog.audit("cashier_code_lockout", "cashier codes", role="system",
                                   after={"lockouts": fail.lockouts,
                                          "locked_for_s": round(fail.locked_for_s)},
                                   detail=f"{self.max_attempts} wrong cashier codes in a row")
            self.catalog.put_cashier_auth(**fail.row())
            return None

    def verify_badge(self, text: str) -> Cashier | None:
        """The active cashier with this badge, else None (not counted towards the lockout)."""
        if not isinstance(text, str) or not text.strip():
            return None
        found = self.catalog.cashier_by_badge_hash(badge_hash(text))
        return Cashier.from_row(found) if found is not None and found["active"] else None
