"""What staff mode does, without Qt: the staff tabs call these as intents (off the GUI
thread where they are slow) and show the result; the tabs never run a catalogue transaction
or write a file themselves.  Every catalogue change here is audited with ``role`` (staff) as
who did it, and reaches the widgets and the engine's index as a catalogue event
(:mod:`kiosk.catalog.events`), not through these functions.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from kiosk.catalog.enrol import EnrolRefused


def enrol_new_product(engine, sku: str, name: str, price: int | None,
                      frames: Sequence[np.ndarray], *, barcode: str | None = None,
                      confirm_lookalike: bool = False, role: str = "staff"):
    """Check and store a new product from its tray photos, all or nothing
    (:meth:`kiosk.engine.Engine.enrol_product`: one transaction, audited as ``role``).
    Returns ``sku`` when stored, or the :class:`~kiosk.catalog.enrol.EnrolRefused` (a
    :class:`~kiosk.catalog.enrol.LookalikeNeedsConfirmation` when staff must confirm) to show;
    other errors raise."""
    try:
        engine.enrol_product(sku, name, price, list(frames), barcode=barcode, role=role,
                             confirm_lookalike=confirm_lookalike)
    except EnrolRefused as refused:
        return refused
    return sku


def delete_product(engine, sku: str, *, role: str = "staff") -> int:
    """Delete a product and its gallery rows (audited as ``product_delete``) and save the
    vector index with its tombstones.  Returns how many live views it had."""
    n = engine.remove_product(sku, role=role)
    engine.save()
    return n


def recalibrate_tray(detector, image: np.ndarray, path: str | Path) -> Path:
    """Teach ``detector`` the empty tray ``image`` and keep the picture at ``path`` (written
    to a temporary file first, then moved into place: a crash leaves the old one whole).
    ``OSError`` when it cannot be written."""
    import cv2

    path = Path(path)
    detector.calibrate(image)
    tmp = path.with_name(path.stem + ".tmp.png")
    if not cv2.imwrite(str(tmp), image):
        raise OSError(f"could not write {tmp}")
    os.replace(tmp, path)
    return path


def backup_folder(db_path: str | Path) -> Path:
    """DATA_DIR/backups (owner-only, made when missing): where staff backups go by default."""
    folder = Path(db_path).parent / "backups"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder
