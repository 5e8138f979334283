"""Where the kiosk keeps its files.

* ``models_dir()``: converted inference models, cached in the project tree (``models/``) when
  running from a checkout, else in the user's cache.  ``KIOSK_MODELS_DIR`` overrides.
* ``data_dir()``: catalogue database, gallery images, vector index.  ``KIOSK_DATA_DIR`` overrides.
* ``resources_dir()``: files shipped with the project (demo assets, fonts list, ...).
"""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_DIR = PACKAGE_DIR.parent


def _in_checkout() -> bool:
    return (PROJECT_DIR / "pyproject.toml").is_file() and (PROJECT_DIR / "models").is_dir()


def models_dir() -> Path:
    env = os.environ.get("KIOSK_MODELS_DIR")
    if env:
        path = Path(env)
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
    path.mkdir(parents=True, exist_ok=True)
    return path


def resources_dir() -> Path:
    return PROJECT_DIR / "resources"


def default_db_path() -> Path:
    return data_dir() / "catalog.db"
