"""Wrong-code lockout with back-off, shared by the staff PIN and the cashier codes.

A code entry counts its wrong attempts in a row.  After ``max_attempts`` of them it is locked for
``lockout_s`` seconds, twice as long after each further lockout (at most a day), until a right
code clears the count.  The state lives in the caller's catalogue row (``failures``,
``lockouts``, ``locked_until``), so it survives a restart; this class only does the arithmetic.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

MAX_LOCKOUT_S = 24 * 3600.0


@dataclass(frozen=True)
class Failure:
    """The state to store after one wrong attempt; ``locked_for_s`` > 0 when it locked now."""
    failures: int
    lockouts: int
    locked_until: float
    locked_for_s: float

    def row(self) -> dict[str, Any]:
        return {"failures": self.failures, "lockouts": self.lockouts,
                "locked_until": self.locked_until}


class Lockout:
    def __init__(self, max_attempts: int = 5, lockout_s: float = 30.0,
                 clock: Callable[[], float] = time.time) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if lockout_s <= 0:
            raise ValueError("lockout_s must be positive")
        self.max_attempts = int(max_attempts)
        self.lockout_s = float(lockout_s)
        self.clock = clock

    def now(self, now: float | None = None) -> float:
        return self.clock() if now is None else now

    @staticmethod
    def until(row: Mapping[str, Any] | None) -> float:
        return float((row or {}).get("locked_until") or 0)

    def locked(self, row: Mapping[str, Any] | None, now: float) -> bool:
        return self.until(row) > now

    def failure(self, row: Mapping[str, Any], now: float) -> Failure:
        """One more wrong attempt on top of ``row``."""
        failures = int(row["failures"]) + 1
        lockouts = int(row["lockouts"])
        until = self.until(row)
        locked_for = 0.0
        if failures >= self.max_attempts:
            lockouts += 1
            locked_for = min(self.lockout_s * 2 ** (lockouts - 1), MAX_LOCKOUT_S)
            until = now + locked_for
            failures = 0
        return Failure(failures, lockouts, until, locked_for)

    @staticmethod
    def needs_reset(row: Mapping[str, Any]) -> bool:
        """After a right code: whether there is a count or lockout history to clear."""
        return bool(row["failures"] or row["lockouts"])


class CodeChecker:
    """Base of a code entry guarded by a :class:`Lockout` (the staff PIN, the cashier codes):
    ``lockout``, and its ``clock`` and ``max_attempts`` for the messages and the tests."""

    def __init__(self, max_attempts: int = 5, lockout_s: float = 30.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.lockout = Lockout(max_attempts, lockout_s, clock)

    @property
    def clock(self) -> Callable[[], float]:
        return self.lockout.clock

    @property
    def max_attempts(self) -> int:
        return self.lockout.max_attempts
