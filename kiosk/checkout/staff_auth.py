"""Staff PIN for the kiosk's staff mode (catalogue, prices, settings).

The PIN (4 to 8 digits) is stored only as an scrypt hash with a random 16-byte salt; the scrypt
parameters are stored with it, so they can be raised later without breaking old PINs.  Wrong
PINs are counted in the catalogue database: after ``max_attempts`` failures in a row staff mode
is locked for ``lockout_s`` seconds, twice as long after each further lockout (back-off), until a
right PIN.  The count and the lockout survive a restart.  Times are wall-clock seconds
(``time.time()``), injectable for tests.

First run: no PIN is set (:meth:`StaffAuth.has_pin` is False); staff mode then asks to create one.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from typing import Any, Callable

from kiosk.checkout.lockout import CodeChecker

SCRYPT_PARAMS = {"n": 2 ** 14, "r": 8, "p": 1, "dklen": 32}


class PinFormatError(ValueError):
    """A PIN must be 4 to 8 digits."""


def check_pin(pin: object) -> str:
    if not isinstance(pin, str):
        raise PinFormatError("the PIN must be text of 4 to 8 digits")
    if not (pin.isascii() and pin.isdigit() and 4 <= len(pin) <= 8):
        raise PinFormatError("the PIN must be 4 to 8 digits (0-9)")
    return pin


def _hash(pin: str, salt: bytes, params: dict[str, int]) -> bytes:
    n, r, p, dklen = (int(params[k]) for k in ("n", "r", "p", "dklen"))
    return hashlib.scrypt(pin.encode("ascii"), salt=salt, n=n, r=r, p=p, dklen=dklen,
                          maxmem=2 * 128 * r * n + 1024 * 1024)


class StaffAuth(CodeChecker):
    """The staff PIN kept in ``store`` (a :class:`kiosk.catalog.Catalog`)."""

    def __init__(self, store: Any, *, max_attempts: int = 5, lockout_s: float = 30.0,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(max_attempts, lockout_s, clock)
        self.store = store

    def _row(self) -> dict[str, Any]:
        return self.store.get_staff_auth() or {"pin_hash": None, "salt": None, "params": None,
                                               "failures": 0, "lockouts": 0, "locked_until": 0}

    def has_pin(self) -> bool:
        return self._row()["pin_hash"] is not None

    @property
    def needs_setup(self) -> bool:
        """First run: no PIN yet, staff mode must ask for a new one."""
        return not self.has_pin()

    def set_pin(self, pin: str, *, role: str = "staff") -> None:
        """Set (or change) the PIN; clears failures and lockouts.  Audited as ``pin_set`` by
        ``role`` -- that it was set or changed, never the PIN or its hash."""
        pin = check_pin(pin)
        salt = os.urandom(16)
        params = dict(SCRYPT_PARAMS)
        digest = _hash(pin, salt, params)
        with self.store.transaction():
            had = self.has_pin()
            self.store.put_staff_auth(pin_hash=digest, salt=salt, params=json.dumps(params),
                                      failures=0, lockouts=0, locked_until=0)
            self.store.audit("pin_set", "staff PIN", role=role, before={"pin_set": had},
                             after={"pin_set": True})

    def locked_until(self, now: float | None = None) -> float | None:
        """When the lockout ends (clock seconds), or None when not locked at ``now``."""
        until = self.lockout.until(self._row())
        return until if until > self.lockout.now(now) else None

    def failures(self) -> int:
        return int(self._row()["failures"])

    def verify(self, pin: str, now: float | None = None) -> bool:
        """True for the right PIN.  Always False while locked out (the attempt does not
        count) or when no PIN is set.  A malformed PIN counts as a wrong one."""
        now = self.lockout.now(now)
        with self.store.transaction():
            row = self._row()
            if row["pin_hash"] is None or self.lockout.locked(row, now):
                return False
            ok = False
            try:
                pin = check_pin(pin)
            except PinFormatError:
                pass
            else:
                digest = _hash(pin, bytes(row["salt"]), json.loads(row["params"]))
                ok = hmac.compare_digest(digest, bytes(row["pin_hash"]))
            if ok:
                if self.lockout.needs_reset(row):
                    self.store.put_staff_auth(failures=0, lockouts=0, locked_until=0)
                return True
            fail = self.lockout.failure(row, now)
            if fail.locked_for_s:
                self.store.audit("pin_lockout", "staff PIN", role="system",
                                 after={"lockouts": fail.lockouts,
                                        "locked_for_s": round(fail.locked_for_s)},
                                 detail=f"{self.max_attempts} wrong PINs in a row")
            self.store.put_staff_auth(**fail.row())
            return False


class StaffSession:
    """Staff mode stays open while used: it expires ``timeout_s`` seconds after the last
    :meth:`touch` (monotonic clock, injectable)."""

    def __init__(self, timeout_s: float, *, clock: Callable[[], float] = time.monotonic,
                 now: float | None = None) -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        self.timeout_s = float(timeout_s)
        self.clock = clock
        self.last = clock() if now is None else now
        self.ended = False

    def touch(self, now: float | None = None) -> None:
        """Staff did something: the timeout starts again."""
        if not self.ended:
            self.last = self.clock() if now is None else now

    def expired(self, now: float | None = None) -> bool:
        now = self.clock() if now is None else now
        return self.ended or now - self.last >= self.timeout_s

    def remaining(self, now: float | None = None) -> float:
        now = self.clock() if now is None else now
        return 0.0 if self.ended else max(0.0, self.timeout_s - (now - self.last))

    def end(self) -> None:
        self.ended = True
