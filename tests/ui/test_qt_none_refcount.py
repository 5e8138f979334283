"""PySide6 6.12 on CPython 3.11 drops a reference to None on every call of a void Qt method;
importing kiosk.ui makes sure that can never free None (the kiosk aborted after about a minute
of painting without it)."""
from __future__ import annotations

import sys

import kiosk.ui  # noqa: F401  (the fix runs on import)
from PySide6.QtCore import QRectF
from PySide6.QtGui import QColor, QImage, QPainter, QPen


def test_a_million_void_qt_calls_do_not_free_none():
    img = QImage(32, 32, QImage.Format.Format_RGB32)
    painter = QPainter(img)
    pen = QPen(QColor(10, 20, 30), 4)
    rect = QRectF(0, 0, 1, 1)
    for _ in range(200_000):  # each drops None's count by one where PySide6 has the bug
        rect.adjust(0, 0, 0, 0)
        pen.setWidth(3)
        painter.setPen(pen)
        painter.setOpacity(1.0)
        painter.fillRect(rect, QColor(1, 2, 3))
    painter.end()
    assert sys.getrefcount(None) > 1_000_000  # still alive, and far from running out
