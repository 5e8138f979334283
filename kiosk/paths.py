"""Where the kiosk keeps its files.

* ``models_dir()``: converted inference models, cached in the project tree (``models/``) when
  running from a checkout, inside the bundle (read-only, converted at build time) when running
  from the PyInstaller bundle, else in the user's cache.  ``KIOSK_MODELS_DIR`` overrides.
* ``data_dir()``: catalogue database, gallery images, vector index.  ``KIOSK_DATA_DIR`` overrides.
* ``resources_dir()``: files shipped with the project (demo assets, fonts list, ...).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
# In a PyInstaller bundle the package lives in the bundle's internal folder (``sys._MEIPASS``),
# beside the ``resources/``, ``gallery/`` and ``models/`` folders the spec file puts there.
PROJECT_DIR = Path(getattr(sys, "_MEIPASS", PACKAGE_DIR.parent)).resolve()


def is_bundle() -> bool:
    """True when running from the PyInstaller bundle."""
    return bool(getattr(sys, "frozen", False)) and hasattr(sys, "_MEIPASS")


def _in_checkout() -> bool:
    return (PROJECT_DIR / "pyproject.toml").is_file() and (PROJECT_DIR / "models").is_dir()


def models_dir() -> Path:
    env = os.environ.get("KIOSK_MODELS_DIR")
    if env:
        path = Path(env)
    elif is_bundle():
        return PROJECT_DIR / "models"  # read-only: converted when the bundle was built
    elif _in_checkout():
        path = PROJECT_DIR / "models"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        path = base / "kiosk" / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_dir() -> Path:
    env = os.environ.get("KIOSK_DATA_DIR")
    if env:
        path = Path(env)
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
        path = base / "kiosk"
    if not path.is_dir():
        path.mkdir(parents=True, exist_ok=True, mode=0o700)  # store data: the kiosk user only
    return path


def resources_dir() -> Path:
    return PROJECT_DIR / "resources"


def default_db_path() -> Path:
    return data_dir() / "catalog.db"
