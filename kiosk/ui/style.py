"""Look and feel: colours, the application font (Noto Sans CJK) and the style sheet."""
from __future__ import annotations

import logging

from PySide6.QtGui import QColor, QFont, QFontDatabase
from PySide6.QtWidgets import QApplication

log = logging.getLogger(__name__)

# item box colours by state
RECOGNISED = QColor(46, 160, 67)
UNKNOWN = QColor(230, 126, 0)
UNPRICED = QColor(200, 40, 40)
MANUAL = QColor(40, 110, 220)  # set by barcode or by the cashier
ACCENT = "#e4572e"
TOUCH_MIN = 56  # px: smallest touch target
TOUCH_MM = 10.0  # mm: smallest touch target on the configured screen

BASE_POINT_SIZE = 13

STYLE_SHEET = """
QWidget { color: #1d2327; }
QMainWindow, QDialog, #ShopperPage, #StaffPage { background: #f4f5f7; }
QPushButton {
    min-height: %(touch)dpx; padding: 4px 18px; border-radius: 10px;
    background: #ffffff; border: 1px solid #c9ced6; font-size: %(btn)dpt;
}
QPushButton:pressed { background: #e3e7ee; }
QPushButton:disabled { color: #9aa0a6; background: #eceef1; }
QPushButton#FinishButton {
    background: %(accent)s; color: white; border: none; font-size: %(big)dpt; font-weight: bold;
    min-height: 84px;
}
QPushButton#FinishButton:disabled { background: #f0b4a4; }
QPushButton#PrimaryButton { background: #1f6feb; color: white; border: none; font-weight: bold; }
QPushButton#PrimaryButton:disabled { background: #a9c4f5; }
QPushButton#DangerButton { background: #ffffff; color: #c62828; border: 1px solid #c62828; }
QPushButton#SmallButton {
    min-height: %(touch)dpx; min-width: %(touch)dpx; padding: 2px 14px; font-size: %(btn)dpt;
}
QPushButton#KeyboardKey {
    min-width: 0; padding: 0; font-size: %(btn)dpt; border-radius: 8px; background: #ffffff;
}
QWidget#TouchKeyboard { background: #d5d9e0; border-top: 1px solid #aab0ba; }
QPushButton#QtyButton { min-width: %(touch)dpx; min-height: %(touch)dpx; font-size: %(big)dpt;
    padding: 0; }
QPushButton#KeypadButton, QPushButton#KeypadOk {
    min-height: 72px; min-width: 96px; font-size: %(big)dpt;
}
QPushButton#KeypadOk { background: #1f6feb; color: white; border: none; font-weight: bold; }
QPushButton#KeypadOk:disabled { background: #a9c4ee; color: #eef3fb; }
QLabel#TotalLabel { font-size: %(huge)dpt; font-weight: bold; color: #111; }
QLabel#TotalCaption { font-size: %(btn)dpt; color: #555; }
QLabel#Title { font-size: %(big)dpt; font-weight: bold; }
QLabel#ItemName { font-size: %(big)dpt; color: #0b3d91; }
QLabel#Hint { font-size: %(btn)dpt; color: #444; }
QLabel#CashierNotice {
    background: #fff3cd; color: #7a4b00; border-radius: 8px; padding: 8px; font-size: %(btn)dpt;
}
QLabel#Banner {
    background: #c62828; color: white; font-size: %(btn)dpt; font-weight: bold; padding: 10px;
}
QLabel#Banner[level="warn"] { background: #e08e0b; }
QWidget#AttendantBar { background: #1f6feb; }
QLabel#AttendantLabel { color: white; font-size: %(btn)dpt; font-weight: bold; }
QLabel#Hint[level="call"] {
    background: #e3f0ff; color: #0b3d91; border-radius: 8px; padding: 6px; font-weight: bold;
}
QPushButton#CallButton { font-size: %(btn)dpt; padding: 0 18px; }
QLineEdit, QSpinBox, QComboBox {
    min-height: %(field)dpx; font-size: %(btn)dpt; padding: 0 8px; border: 1px solid #c9ced6;
    border-radius: 8px; background: white;
}
QSpinBox::up-button, QSpinBox::down-button { width: %(touch)dpx; }
QSpinBox#QtySpin::up-button, QSpinBox#QtySpin::down-button {
    width: 0px; border: none; image: none;
}
QSpinBox { min-width: 120px; }
QRadioButton, QCheckBox { font-size: %(btn)dpt; spacing: 12px; }
QRadioButton::indicator, QCheckBox::indicator { width: 26px; height: 26px; }
QTableWidget, QListWidget {
    background: white; border: 1px solid #d8dce2; border-radius: 8px; font-size: %(btn)dpt;
    gridline-color: #eceef1;
}
QTableWidget::item { padding: 0 6px; }
QHeaderView::section { background: #eceef1; border: none; padding: 6px; font-size: %(small)dpt; }
QTabBar::tab { min-height: %(touch)dpx; padding: 4px 22px; font-size: %(btn)dpt; }
QTabBar::tab:selected { background: white; font-weight: bold; }
"""


def install_font(app: QApplication, scale: float = 1.0) -> str | None:
    """Register Noto Sans CJK and make it the application font; returns its family."""
    family = None
    try:
        from kiosk.fonts import cjk_font_path

        fid = QFontDatabase.addApplicationFont(str(cjk_font_path()))
        fams = QFontDatabase.applicationFontFamilies(fid) if fid >= 0 else []
        family = fams[0] if fams else None
    except Exception as exc:  # noqa: BLE001 - the UI still works with the default font
        log.warning("no CJK font: %s", exc)
    font = QFont(family) if family else QFont(app.font())
    font.setPointSizeF(BASE_POINT_SIZE * scale)
    app.setFont(font)
    return family


def touch_px(width: int, height: int, screen_inches: float = 15.6, mm: float = TOUCH_MM) -> int:
    """``mm`` millimetres in pixels on a screen of ``width`` x ``height`` pixels and
    ``screen_inches`` diagonal (the kiosk's window is its screen), never below TOUCH_MIN."""
    import math

    per_mm = math.hypot(width, height) / (float(screen_inches) * 25.4)
    return max(TOUCH_MIN, math.ceil(mm * per_mm))


def screen_scale(width: int, height: int) -> float:
    """Text and controls grow with the screen: 1.0 on the 1280x800 design size (either way
    round), up to 2.2 on large screens, never below 0.9."""
    long, short = max(width, height), min(width, height)
    return max(0.9, min(2.2, min(long / 1280.0, short / 800.0)))


def apply_style(app: QApplication, scale: float = 1.0, touch: int | None = None) -> None:
    """The style sheet for text ``scale`` and a smallest touch target of ``touch`` px."""
    s = max(0.5, float(scale or 1.0))
    t = int(touch) if touch else round(TOUCH_MIN * min(s, 1.5))
    app.setStyle("Fusion")
    app.setStyleSheet(STYLE_SHEET % {
        "touch": t, "field": t, "accent": ACCENT,
        "small": round(12 * s), "btn": round(15 * s), "big": round(22 * s),
        "huge": round(34 * s)})
    app.setProperty("kioskTouchPx", t)
    app.setProperty("kioskScale", s)
