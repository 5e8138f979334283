"""Progress of slow start-up work, reported without any GUI toolkit.

A progress callback is ``progress(stage, done, total)``: ``stage`` is one of :data:`STAGES`,
``done`` counts up from 0 to ``total`` (the unit depends on the stage: pictures, vectors).  The
core (engine, demo catalogue, vector index) calls it on whatever thread does the work; a GUI
marshals it to its own thread (``kiosk.ui.app.StartingScreen.report``).

:class:`Throttle` keeps a chatty loop from flooding the receiver: of each stage it passes the
first and the last report, and in between at most one every ``interval`` seconds; counts never
go backwards or repeat within a stage (a report of 0 starts the stage again).
"""
from __future__ import annotations

import threading
import time
from typing import Callable, Optional

ProgressFn = Callable[[str, int, int], None]

# The stage names (stable: the splash screen and tests rely on them).
MODEL = "model"    # starting the recognition model (converted on the very first start)
DEMO = "demo"      # building the built-in demo catalogue (first start without a catalogue)
EMBED = "embed"    # re-embedding gallery pictures made by another model
TEXT = "text"      # reading the pack text of gallery pictures
INDEX = "index"    # building (or repairing) the vector index
STAGES = (MODEL, DEMO, EMBED, TEXT, INDEX)


class Throttle:
    """Wraps ``fn(stage, done, total)`` (may be None: then reports go nowhere).  Thread-safe."""

    def __init__(self, fn: Optional[ProgressFn], interval: float = 0.1,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.fn = fn
        self.interval = float(interval)
        self._clock = clock
        self._lock = threading.Lock()
        self._stage: str | None = None
        self._done = -1
        self._total = -1
        self._last = float("-inf")

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self.fn is None:
            return
        done, total = int(done), int(total)
        with self._lock:
            now = self._clock()
            if stage != self._stage or total != self._total or (done == 0 < self._done):
                self._stage, self._total = stage, total  # a new stage (or run): passed
            elif done <= self._done:  # never backwards, never twice the same count
                return
            elif done < total and now - self._last < self.interval:
                return  # (the last report of a stage always passes)
            self._done, self._last = done, now
        self.fn(stage, done, total)

    def stage(self, stage: str) -> Callable[[int, int], None]:
        """A ``progress(done, total)`` for one stage (the form ``read_missing_text`` takes)."""
        return lambda done, total: self(stage, done, total)


def throttled(fn: Optional[ProgressFn], interval: float = 0.1) -> Throttle:
    """``fn`` throttled (a :class:`Throttle` comes back as it is: wrapping twice is harmless)."""
    return fn if isinstance(fn, Throttle) else Throttle(fn, interval)


def process_age_s() -> float:
    """Seconds since this process was started (Linux: /proc/self/stat), else since this module
    was imported.  Start-up timings (``kiosk gui --first-receipt-exit``, the self-test's first
    recognised tray) are measured from the launch."""
    import os
    from pathlib import Path

    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        start_ticks = int(fields[19])  # field 22 of stat: starttime, in clock ticks after boot
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return time.monotonic() - _IMPORTED_AT


_IMPORTED_AT = time.monotonic()
