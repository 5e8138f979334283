"""The commands of the ``kiosk`` command line that need the window toolkit.

:mod:`kiosk.cli` owns every command, its flags and its output, and never imports the window:
the program entry (:mod:`kiosk.__main__`) hands it these.  Nothing here imports Qt until a
command runs (``kiosk recognize`` stays free of it).
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path


def run_kiosk(settings_path: str | Path | None = None, fullscreen: bool = False,
              first_receipt_exit: float | None = None) -> int:
    """``kiosk`` / ``kiosk gui``: the self-checkout kiosk (:func:`kiosk.ui.app.main`)."""
    import sys

    from kiosk.ui.app import main

    return main(sys.argv[:1], settings_path=settings_path, fullscreen=fullscreen,
                first_receipt_exit=first_receipt_exit)


def self_test_checks():
    """The window's checks of ``kiosk --self-test`` (:class:`kiosk.ui.selftest.WindowChecks`)."""
    from kiosk.ui.selftest import WindowChecks

    return WindowChecks()


def bench(progress: Callable[[str], None] | None = None, model_process: bool = True) -> dict:
    """``kiosk bench --gui`` (:func:`kiosk.ui.bench_gui.run_gui_bench`)."""
    from kiosk.ui.bench_gui import run_gui_bench

    return run_gui_bench(progress=progress, model_process=model_process)


def soak(minutes: float, progress: Callable[[str], None] = lambda m: None) -> dict:
    """``kiosk bench --soak MINUTES --gui`` (:func:`kiosk.ui.soak.run_gui_soak`)."""
    from kiosk.ui.soak import run_gui_soak

    return run_gui_soak(minutes, progress=progress)
