"""What packaging/kiosk.spec leaves out of the bundle after PyInstaller has collected it.

Everything cut here is something the kiosk never loads: checked with the libraries and files
the full bundle used (packaging/opened-files.txt, made with packaging/bundle_weight.py) and by
tests/tools/test_bundle.py on every build.  Loaded by the spec with importlib (the folder is
not a Python package: ``packaging`` is PyInstaller's own dependency).
"""
from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

#: Qt plugins that no kiosk PC uses: it shows its window through X11 (xcb) or Wayland, and
#: offscreen for the self-test.  Framebuffer, EGLFS, VNC, Vulkan-display and "minimal"
#: platforms, the EGLFS device integrations, and the evdev/TUIO input plugins (those are
#: for the framebuffer platforms; on X11 and Wayland touch comes through the display server).
QT_PLUGINS_CUT = (
    "platforms/libqeglfs.so", "platforms/libqlinuxfb.so", "platforms/libqminimal.so",
    "platforms/libqminimalegl.so", "platforms/libqvkkhrdisplay.so", "platforms/libqvnc.so",
    "egldeviceintegrations/", "generic/",
    "platformthemes/libqgtk3",  # pulls in GTK; the kiosk draws its own style
)

#: Qt's translations the kiosk loads: qtbase (and the qt_ meta file) for its two languages.
QT_TRANSLATIONS_KEPT = re.compile(r"^qt(base)?_(zh_CN|en)\.qm$")

_QT_PLUGIN_DIR = "PySide6/Qt/plugins/"


def cut_qt_plugin(dest: str) -> bool:
    dest = dest.replace("\\", "/")
    return dest.startswith(_QT_PLUGIN_DIR) and dest[len(_QT_PLUGIN_DIR):].startswith(
        QT_PLUGINS_CUT)


def cut_data(dest: str) -> bool:
    dest = dest.replace("\\", "/")
    if dest.startswith("PySide6/Qt/translations/"):
        return not QT_TRANSLATIONS_KEPT.match(os.path.basename(dest))
    return False


# ------------------------------------------------------------------ ELF: DT_NEEDED entries
def needed_libraries(path: str | os.PathLike) -> list[str]:
    """The DT_NEEDED names of an ELF64 little-endian shared object or executable ([] for
    anything else)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return []
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return []
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize)
                for i in range(shnum)]
    out = []
    for _name, sh_type, _fl, _addr, off, size, link, _info, _al, entsize in sections:
        if sh_type != 6:  # SHT_DYNAMIC
            continue
        str_off = sections[link][4]
        for pos in range(off, off + size, entsize or 16):
            tag, val = struct.unpack_from("<qQ", data, pos)
            if tag == 0:
                break
            if tag == 1:  # DT_NEEDED
                end = data.index(b"\0", str_off + val)
                out.append(data[str_off + val:end].decode())
    return out


def _dependency_only(dest: str) -> bool:
    """Libraries that are in the bundle only because something else links to them: the
    system libraries PyInstaller copies to the top level, and Qt's own libraries."""
    dest = dest.replace("\\", "/")
    if "/" not in dest:
        return not dest.startswith(("libpython", "base_library"))
    return dest.startswith("PySide6/Qt/lib/")


def may_cut(dest: str) -> bool:
    """Whether ``dest`` is of a kind that :func:`trim` may leave out."""
    return cut_qt_plugin(dest) or cut_data(dest) or _dependency_only(dest)


def orphans(binaries) -> set[str]:
    """Destinations of the dependency-only libraries (see above) that nothing else left in
    ``binaries`` (a PyInstaller TOC: dest, src, typecode) links to, directly or through
    other libraries: e.g. GTK's libraries once the GTK platform theme is cut."""
    by_name: dict[str, list[str]] = {}
    src_of: dict[str, str] = {}
    for dest, src, typecode in binaries:
        if typecode == "SYMLINK":
            continue
        src_of[dest] = src
        by_name.setdefault(os.path.basename(dest), []).append(dest)
        by_name.setdefault(os.path.basename(src), []).append(dest)
    for dest, src, typecode in binaries:  # a link's name finds its target
        if typecode == "SYMLINK":
            target = os.path.normpath(os.path.join(os.path.dirname(dest), src))
            if target in src_of:
                by_name.setdefault(os.path.basename(dest), []).append(target)
    roots = [d for d in src_of if not _dependency_only(d)]
    reached, todo = set(roots), list(roots)
    while todo:
        for name in needed_libraries(src_of[todo.pop()]):
            for dest in by_name.get(name, []):
                if dest not in reached:
                    reached.add(dest)
                    todo.append(dest)
    return {d for d in src_of if _dependency_only(d) and d not in reached}


def trim(binaries, datas, keep=frozenset()):
    """The bundle's (binaries, datas) without what the kiosk never loads, and the list of
    what was cut (destinations).  Nothing in ``keep`` is cut (the files the full bundle was
    seen using: a library that the loader found by name counts even when the system has it
    too, so that the bundle keeps loading the same libraries)."""
    cut = {dest for dest, _src, _t in binaries if cut_qt_plugin(dest)} - set(keep)
    kept = [b for b in binaries if b[0] not in cut]
    cut |= orphans(kept) - set(keep)
    kept = [b for b in kept if b[0] not in cut]
    # links whose target went
    targets = {b[0] for b in kept if b[2] != "SYMLINK"}
    dangling = {dest for dest, src, t in kept if t == "SYMLINK"
                and os.path.normpath(os.path.join(os.path.dirname(dest), src)) not in targets}
    cut |= dangling
    kept = [b for b in kept if b[0] not in dangling]
    cut_datas = {d[0] for d in datas if cut_data(d[0]) or cut_qt_plugin(d[0])} - set(keep)
    return kept, [d for d in datas if d[0] not in cut_datas], sorted(cut | cut_datas)


#: Libraries shipped with their symbol tables and debug information: neither is ever loaded
#: (they lie outside the segments the loader maps), so they are stripped from the bundle's
#: copies, the way distributions ship libraries.  Only these two, built by their projects
#: (Python, oneDNN), not the wheels' libraries that auditwheel rewrote with patchelf.
STRIP_SYMBOLS = ("libpython3.*.so.1.0", "paddle/libs/libdnnl.so.*")


def strip_symbols(internal: Path, names=STRIP_SYMBOLS) -> dict[str, int]:
    """``strip --strip-unneeded`` the bundle's copies of ``names`` (patterns inside _internal);
    a copy is replaced only when strip worked and the result still links to the same
    libraries.  Returns the bytes saved per file (nothing when strip is not installed)."""
    saved: dict[str, int] = {}
    strip = shutil.which("strip")
    for path in sorted(p for pattern in names for p in internal.glob(pattern)):
        name = path.relative_to(internal).as_posix()
        if strip is None or path.is_symlink() or not path.is_file():
            continue
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / path.name
            proc = subprocess.run([strip, "--strip-unneeded", "-o", str(out), str(path)],
                                  capture_output=True, text=True)
            before = path.stat().st_size
            if (proc.returncode != 0 or not out.is_file() or out.stat().st_size >= before
                    or needed_libraries(out) != needed_libraries(path)):
                continue
            shutil.copymode(path, out)
            shutil.move(str(out), str(path))
            saved[name] = before - path.stat().st_size
    return saved


def load_opened(path: Path) -> list[str]:
    return [ln.strip() for ln in path.read_text().splitlines() if ln.strip()
            and not ln.startswith("#")]
