"""Logging: the console for people, rotating files in the data folder for the store technician.

``setup_logging`` is called once by the ``kiosk`` command.  The file log
(``DATA_DIR/logs/kiosk.log``, 2 MB × 5 files) records INFO and above from every part of the
kiosk plus uncaught exceptions of any thread, so a kiosk that restarted itself overnight leaves
a trace.  The files are readable by the kiosk's user only.  Nothing secret is logged: staff PINs
never reach a logger.
"""
from __future__ import annotations

import logging
import logging.handlers
import os
import sys
import threading
from pathlib import Path

LOG_NAME = "kiosk.log"
MAX_BYTES = 2 * 1024 * 1024
BACKUPS = 5
FILE_FORMAT = "%(asctime)s %(process)d %(threadName)s %(levelname)s %(name)s: %(message)s"
CONSOLE_FORMAT = "%(levelname)s %(name)s: %(message)s"

_installed: list[logging.Handler] = []


class _PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A rotating file handler whose files are created mode 0600."""

    def _open(self):  # noqa: D401 - logging API
        old = os.umask(0o077)
        try:
            return super()._open()
        finally:
            os.umask(old)


def log_dir() -> Path:
    from kiosk.paths import data_dir

    return data_dir() / "logs"


def setup_logging(verbose: bool = False, *, to_file: bool = True) -> Path | None:
    """Console (WARNING, or INFO with ``verbose``) plus the rotating file log.

    Safe to call again (tests run the CLI many times in one process): handlers installed by an
    earlier call are replaced, not added to.  Returns the log file, or None when the data
    folder cannot be written (the console still works; the reason is printed once).
    """
    root = logging.getLogger()
    for handler in _installed:
        root.removeHandler(handler)
        handler.close()
    _installed.clear()
    root.setLevel(logging.INFO)
    console = logging.StreamHandler()
    console.setLevel(logging.INFO if verbose else logging.WARNING)
    console.setFormatter(logging.Formatter(CONSOLE_FORMAT))
    root.addHandler(console)
    _installed.append(console)
    path: Path | None = None
    if to_file:
        try:
            folder = log_dir()
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / LOG_NAME
            handler = _PrivateRotatingFileHandler(path, maxBytes=MAX_BYTES, backupCount=BACKUPS,
                                                  encoding="utf-8", delay=True)
            handler.setLevel(logging.INFO)
            handler.setFormatter(logging.Formatter(FILE_FORMAT))
            root.addHandler(handler)
            _installed.append(handler)
        except OSError as exc:
            print(f"kiosk: warning: cannot write the log file ({exc}); logging to the console "
                  "only", file=sys.stderr)
            path = None
    # faiss logs at INFO which of its SIMD builds it tried: noise for a store technician
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)
    _install_excepthooks()
    return path


def _install_excepthooks() -> None:
    """Uncaught exceptions (main thread and worker threads) go to the log, not only stderr."""
    log = logging.getLogger("kiosk.crash")
    if getattr(sys.excepthook, "_kiosk", False):
        return
    previous_hook = sys.excepthook
    previous_thread_hook = threading.excepthook

    def hook(exc_type, exc, tb):
        if not issubclass(exc_type, KeyboardInterrupt):
            log.critical("uncaught exception", exc_info=(exc_type, exc, tb))
        previous_hook(exc_type, exc, tb)

    def thread_hook(args):
        if args.exc_type is not SystemExit:
            log.critical("uncaught exception in thread %s",
                         getattr(args.thread, "name", "?"),
                         exc_info=(args.exc_type, args.exc_value, args.exc_traceback))
        previous_thread_hook(args)

    hook._kiosk = True  # type: ignore[attr-defined]
    sys.excepthook = hook
    threading.excepthook = thread_hook
