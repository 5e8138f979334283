"""Staff-mode intents without Qt (kiosk/checkout/staff_actions.py): what the staff tabs call
instead of writing the catalogue or files themselves."""
from __future__ import annotations

import stat

import cv2
import numpy as np
import pytest

from kiosk.checkout.staff_actions import backup_folder, recalibrate_tray
from kiosk.demo import scenes as demo
from kiosk.detect.tray import TraySegmenter


def test_recalibrate_tray_teaches_the_detector_and_replaces_the_picture(tmp_path):
    path = tmp_path / "empty_tray.png"
    path.write_bytes(b"old picture")
    empty = demo.empty_tray()
    detector = TraySegmenter()
    assert recalibrate_tray(detector, empty, path) == path
    assert detector.calibrated
    assert np.array_equal(cv2.imread(str(path)), empty)
    assert [p.name for p in tmp_path.iterdir()] == ["empty_tray.png"]  # no temporary left


def test_recalibrate_tray_that_cannot_write_keeps_the_old_picture(tmp_path):
    path = tmp_path / "missing-folder" / "empty_tray.png"
    with pytest.raises(OSError):
        recalibrate_tray(TraySegmenter(), demo.empty_tray(), path)
    assert not path.exists()


def test_backup_folder_is_owner_only(tmp_path):
    folder = backup_folder(tmp_path / "catalog.db")
    assert folder == tmp_path / "backups" and folder.is_dir()
    assert stat.S_IMODE(folder.stat().st_mode) & 0o077 == 0
    assert backup_folder(tmp_path / "catalog.db") == folder  # already there: fine
