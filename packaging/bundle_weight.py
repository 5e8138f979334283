"""What the one-folder bundle weighs, part by part, and which of its files the kiosk opens.

    python packaging/bundle_weight.py sizes dist/kiosk [--before OLD/kiosk] [--files N]
        the size table (MB per part and the total); with --before, both bundles side by side;
        with --files, the N biggest files of each part as well

    python packaging/bundle_weight.py opened dist/kiosk [--out LIST] -- ARGS...
        runs ``dist/kiosk/kiosk ARGS`` in a clean environment (an empty HOME, offscreen Qt)
        and prints the bundle's files it opened (libraries and data), one relative path a
        line; with --out, adds them to LIST (kept sorted).  Uses strace when it is installed
        (data files) and the dynamic loader's own log (LD_DEBUG=files: every native library
        it mapped, including those unloaded again).

packaging/opened-files.txt is such a list, made from the full bundle (before anything was cut)
by the self-test, the offscreen window's first receipt, ``recognize``, ``gallery add`` (pack
text) and a store sync attempt; tests/tools/test_bundle.py checks every file on it is still
in the bundle.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

MB = 1024 * 1024

# (part, pattern on the path inside _internal); the first match wins.  The executable itself
# holds the PYZ archive (the pure-Python modules), so it counts as Python code.
PARTS: list[tuple[str, str]] = [
    ("Paddle: libpaddle.so", r"^paddle/base/libpaddle\.so$"),
    ("Paddle: libphi*.so", r"^paddle/libs/libphi"),
    ("Paddle: libmklml_intel.so", r"^paddle/libs/libmklml"),
    ("Paddle: libdnnl.so (oneDNN)", r"^paddle/libs/libdnnl"),
    ("Paddle: OpenVINO + TBB", r"^paddle/libs/lib(openvino|tbb)"),
    ("Paddle: libcommon, libiomp5", r"^paddle/libs/"),
    ("Paddle: Python files", r"^paddle/"),
    ("Qt: libraries", r"^PySide6/Qt/lib/"),
    ("Qt: plugins", r"^PySide6/Qt/plugins/"),
    ("Qt: translations", r"^PySide6/Qt/translations/"),
    ("Qt: PySide6 modules, shiboken6", r"^(PySide6|shiboken6)/"),
    ("OpenCV", r"^(cv2|opencv_python_headless\.libs)/"),
    ("faiss", r"^faiss"),
    ("NumPy", r"^numpy"),
    ("Pillow", r"^(PIL|pillow\.libs)/"),
    ("psycopg + libpq", r"^psycopg"),
    ("font (Noto Sans CJK)", r"^cvttf_NotoSansCJK"),
    ("models (recognition, PP-OCRv4)", r"^(models|resources/models)/"),
    ("demo (trays, gallery), translations", r"^(resources|gallery)/"),
    ("Python: libpython, stdlib", r"^(libpython|python3\.\d+/|base_library\.zip)"),
    ("system libraries copied in", r"^[^/]+\.so[.\d]*$"),
    ("other", r""),
]


def part_of(rel: str) -> str:
    for name, pattern in PARTS:
        if re.search(pattern, rel):
            return name
    return "other"


def files_of(bundle: Path) -> dict[str, int]:
    """Every file of the bundle (paths relative to _internal; the executable and the install
    files beside it as ``../NAME``) with its size.  Links are not counted twice."""
    internal = bundle / "_internal"
    out: dict[str, int] = {}
    for root, _dirs, names in os.walk(bundle):
        for name in names:
            p = Path(root) / name
            if p.is_symlink():
                continue
            rel = os.path.relpath(p, internal)
            out[rel] = p.stat().st_size
    return out


def sizes(bundle: Path) -> tuple[dict[str, int], dict[str, list[tuple[int, str]]]]:
    by_part: dict[str, int] = defaultdict(int)
    biggest: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for rel, size in files_of(bundle).items():
        part = "executable (Python code, PYZ)" if rel == "../kiosk" else (
            "install files" if rel.startswith("../") else part_of(rel))
        by_part[part] += size
        biggest[part].append((size, rel))
    return dict(by_part), {k: sorted(v, reverse=True) for k, v in biggest.items()}


def total_mb(bundle: Path) -> float:
    return sum(files_of(bundle).values()) / MB


def table(bundle: Path, before: Path | None = None, n_files: int = 0) -> str:
    now, biggest = sizes(bundle)
    old = sizes(before)[0] if before else {}
    order = [name for name, _ in PARTS] + ["executable (Python code, PYZ)", "install files"]
    rows = [p for p in order if p in now or p in old]
    lines = []
    if before:
        lines.append(f"| part | before MB | after MB | saved MB |")
        lines.append("|---|---:|---:|---:|")
    else:
        lines.append("| part | MB |")
        lines.append("|---|---:|")
    for p in rows:
        a, b = old.get(p, 0) / MB, now.get(p, 0) / MB
        lines.append(f"| {p} | {a:.1f} | {b:.1f} | {a - b:.1f} |" if before
                     else f"| {p} | {b:.1f} |")
        for size, rel in biggest.get(p, [])[:n_files]:
            lines.append(f"|   {rel} | | {size / MB:.1f} | |" if before
                         else f"|   {rel} | {size / MB:.1f} |")
    ta, tb = sum(old.values()) / MB, sum(now.values()) / MB
    lines.append(f"| **total** | **{ta:.0f}** | **{tb:.0f}** | **{ta - tb:.0f}** |" if before
                 else f"| **total** | **{tb:.0f}** |")
    return "\n".join(lines)


# ------------------------------------------------------------------ what the kiosk opens
def clean_env(home: Path) -> dict[str, str]:
    """What a kiosk PC's session gives the bundle (no virtualenv, no PYTHONPATH), headless."""
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(home),
            "QT_QPA_PLATFORM": "offscreen"}


def is_elf(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


@dataclass
class Used:
    """What one run of the bundle used."""
    files: set[str]  # files inside _internal (relative paths): libraries mapped, files opened
    names: set[str]  # every library the loader mapped, by file name (wherever it came from)
    proc: subprocess.CompletedProcess


def opened(bundle: Path, args: list[str], home: Path | None = None, timeout: float = 900,
           env_extra: dict[str, str] | None = None, use_strace: bool = True) -> Used:
    """Run the bundle's executable with ARGS in a clean environment and see what it used.

    Native libraries count when the dynamic loader mapped them (its LD_DEBUG=files log: a
    library's name, or its path when it was opened by path; a name found in several places of
    the bundle counts for all of them), in the kiosk's own processes (not in programs it runs,
    such as pdftotext).  Other files count when they were opened (strace, when it is installed
    and ``use_strace``).  Qt opens every plugin file to read its metadata; only the plugins it
    then loads count."""
    bundle = bundle.resolve()
    internal = bundle / "_internal"
    with tempfile.TemporaryDirectory(prefix="kiosk-opened-") as tmp:
        tmp = Path(tmp)
        if home is None:
            home = tmp / "home"
            home.mkdir()
        env = clean_env(home) | (env_extra or {}) | {
            "LD_DEBUG": "files", "LD_DEBUG_OUTPUT": str(tmp / "ld")}
        cmd = [str(bundle / "kiosk"), *args]
        if use_strace and shutil.which("strace"):
            cmd = ["strace", "-f", "-qq", "-s", "4096", "-e", "trace=open,openat",
                   "-o", str(tmp / "strace"), *cmd]
        proc = subprocess.run(cmd, env=env, cwd=home, capture_output=True, text=True,
                              timeout=timeout)
        exe = f"needed by {bundle / 'kiosk'} ["
        ld = "\n".join(t for t in (p.read_text(errors="replace") for p in tmp.glob("ld.*"))
                       if exe in t)
        st = "\n".join(p.read_text(errors="replace") for p in tmp.glob("strace*"))
    by_name: dict[str, list[str]] = defaultdict(list)
    for rel in files_of(bundle):
        if not rel.startswith("../"):
            by_name[os.path.basename(rel)].append(rel)
    prefix = str(internal) + "/"

    def inside(path: str) -> str | None:
        if not path.startswith(prefix):
            return None
        rel = os.path.normpath(path[len(prefix):])
        real = os.path.relpath(os.path.realpath(internal / rel), internal)
        return real if (internal / real).is_file() else None

    found: set[str] = set()
    names: set[str] = set()
    for m in re.finditer(r"file=(\S+) \[\d+\];\s+generating link map", ld):
        name = m.group(1)
        names.add(os.path.basename(name))
        if "/" in name:
            rel = inside(name)
            found |= {rel} if rel else set()
        else:  # a needed library, by name: wherever the bundle has it
            found |= set(by_name.get(name, []))
    # strace: open("PATH", ...) of an existing file of the bundle (a thread's call may be
    # split in two lines by strace, so the result is not read)
    for m in re.finditer(r'open(?:at)?\((?:AT_FDCWD, )?"([^"]+)"', st):
        rel = inside(m.group(1))
        if rel and not is_elf(internal / rel):
            found.add(rel)
    return Used(found, names, proc)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sizes")
    s.add_argument("bundle", type=Path)
    s.add_argument("--before", type=Path)
    s.add_argument("--files", type=int, default=0)
    o = sub.add_parser("opened")
    o.add_argument("bundle", type=Path)
    o.add_argument("--out", type=Path)
    argv = sys.argv[1:] if argv is None else argv
    run_args = argv[argv.index("--") + 1:] if "--" in argv else []
    a = p.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    if a.cmd == "sizes":
        print(table(a.bundle, a.before, a.files))
        return 0
    used = opened(a.bundle, run_args)
    files, proc = used.files, used.proc
    # Paddle's Python sources (read by inspect) are not cut, so they stay off the list
    files = {f for f in files if not f.endswith(".py")}
    sys.stderr.write(proc.stdout[-2000:] + proc.stderr[-2000:])
    if a.out:
        old = set(a.out.read_text().split()) if a.out.exists() else set()
        a.out.write_text("".join(f"{f}\n" for f in sorted(old | files)))
    else:
        print("\n".join(sorted(files)))
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
