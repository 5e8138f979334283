"""The program entry: ``kiosk`` (the console script), ``python -m kiosk`` and the bundle.

The one module above both user interfaces: the command line (:mod:`kiosk.cli`, every command
and flag) runs here with the window's commands (:mod:`kiosk.ui.commands`: the kiosk itself,
``--self-test``'s Qt checks, ``bench --gui``, ``bench --soak --gui``) handed to it, so that
neither the command line nor anything else outside :mod:`kiosk.ui` imports the window.
"""
from __future__ import annotations

import sys


def _window():
    from kiosk.ui import commands

    return commands


def main(argv: list[str] | None = None) -> int:
    """Run ``kiosk`` with ``argv`` (default: the process's); the exit status."""
    from kiosk.cli import main as cli_main

    return cli_main(argv, window=_window)


if __name__ == "__main__":
    sys.exit(main())
