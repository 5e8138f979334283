"""Garbage-collector pauses on the till's path.

Python's cyclic garbage collector now and then walks every container object the process
holds (a "generation 2" collection).  Once the kiosk has started, most of those are what
start-up made and keeps for good: the model, the catalogue's products, the window.  On the
demo catalogue (155,000 tracked objects, the engine alone) one such walk took 160 ms in the
middle of deciding a tray that usually takes 5-12 ms: one cause of the p95 spikes that
``kiosk bench`` showed in retrieve + decide (the other: numpy's BLAS threads, see
``kiosk/__init__.py``).

:func:`after_start` collects once, then moves every object alive into the collector's
permanent generation (:func:`gc.freeze`): later walks see only what was made since.  Nothing
else changes: objects are still freed by reference counting as before; only a reference cycle
among start-up's own objects would no longer be collected (they are meant to live as long as
the process).  Called where start-up ends: the kiosk once its window is up, the model process
once its model is warm, and ``kiosk bench`` once its engine is open, so that the bench times
what the shopper gets.
"""
from __future__ import annotations

import gc
import logging
import time

log = logging.getLogger(__name__)


def after_start() -> int:
    """Collect, then set every object alive now aside from the cyclic collector (see the
    module docstring); returns how many objects were set aside."""
    t0 = time.perf_counter()
    gc.collect()
    gc.freeze()
    n = gc.get_freeze_count()
    log.info("start-up over: %d objects set aside from the garbage collector (%.0f ms)", n,
             (time.perf_counter() - t0) * 1e3)
    return n
