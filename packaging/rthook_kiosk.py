"""PyInstaller runtime hook: runs inside the bundle before any of the kiosk's modules.

Paddle loads Intel's MKL-ML (``libmklml_intel.so``) with dlopen from the folder that
``FLAGS_mklml_dir`` names; outside a wheel install it cannot find it by itself.
"""
import os
import sys

_base = getattr(sys, "_MEIPASS", os.path.dirname(sys.executable))
os.environ.setdefault("FLAGS_mklml_dir", os.path.join(_base, "paddle", "libs"))
os.environ.setdefault("GLOG_minloglevel", "2")
# Started by systemd or from a bare environment there may be no locale at all; Qt wants UTF-8.
if not any(os.environ.get(v) for v in ("LC_ALL", "LC_CTYPE", "LANG")):
    os.environ["LC_CTYPE"] = "C.UTF-8"
# Qt finds its plugins (platforms, image formats, print support) inside the bundle through
# PyInstaller's own PySide6 hook; fonts come from the bundled Noto Sans CJK.
