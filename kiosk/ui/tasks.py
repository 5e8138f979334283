"""Run a blocking function off the GUI thread and get its result back on the GUI thread."""
from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

log = logging.getLogger(__name__)

_live: set[Task] = set()  # keep relays alive until they report


class Task(QObject):
    """``Task(fn, *args).start()``; ``done(result)`` or ``failed(message)`` arrive on the GUI
    thread (the task object lives there)."""

    done = Signal(object)
    failed = Signal(str)
    finished = Signal()

    def __init__(self, fn: Callable[..., Any], *args, **kwargs) -> None:
        super().__init__()
        self._fn, self._args, self._kwargs = fn, args, kwargs
        self.finished.connect(self._release)

    def start(self, pool: QThreadPool | None = None) -> Task:
        _live.add(self)
        task = self

        class _Run(QRunnable):
            def run(self) -> None:  # worker thread
                try:
                    result = task._fn(*task._args, **task._kwargs)
                except Exception as exc:  # noqa: BLE001 - reported to the UI
                    log.debug("task failed:\n%s", traceback.format_exc())
                    msg = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
                    task.failed.emit(msg or type(exc).__name__)
                else:
                    task.done.emit(result)
                task.finished.emit()

        (pool or QThreadPool.globalInstance()).start(_Run())
        return self

    def _release(self) -> None:
        _live.discard(self)


def run_task(fn: Callable[..., Any], *args, on_done: Callable[[Any], None] | None = None,
             on_error: Callable[[str], None] | None = None, **kwargs) -> Task:
    task = Task(fn, *args, **kwargs)
    if on_done:
        task.done.connect(on_done)
    if on_error:
        task.failed.connect(on_error)
    return task.start()
