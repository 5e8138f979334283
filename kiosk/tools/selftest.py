"""``kiosk --self-test``: what a store technician runs after installing or upgrading the kiosk.

Headless (Qt runs offscreen).  It checks, in order:

* the runtime (Python, Paddle, faiss, threads) and that the data folder is writable;
* the recognition model loads and gives unit-length embeddings;
* the built-in demo catalogue, built from scratch in a temporary folder, recognises every
  demo tray with the right products and total (enrolled as staff enrol, each tray through the
  checkout's own frame pipeline, :mod:`kiosk.pipeline`: segment → track → embed → search →
  decide → barcodes, pack text → receipt);
* the store's catalogue, when there is one: migrated to this version's schema, SQLite
  ``integrity_check`` and ``foreign_key_check``, gallery image files present, and the vector
  index agreeing with the catalogue (rebuilt from stored embeddings when it does not);
* the Qt side: the offscreen platform plugin, the CJK font, the Chinese translation, image
  format plugins, and a receipt rendered to PDF;
* the printed receipt: the PDF's text (``pdftotext``; a warning when it is not installed) and
  the ESC/POS bytes for 58 and 80 mm paper hold every item on its line and the total;
* which camera the kiosk would use.

It prints one line per check and exits 0 when everything passed, 1 otherwise.  The time from
process launch to the first recognised demo tray is reported too.
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from kiosk.progress import process_age_s  # (also the kiosk's start-up timing)

OK, WARN, FAIL = "ok", "warn", "FAIL"


@dataclass
class Check:
    name: str
    status: str
    detail: str
    ms: float = 0.0


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)
    first_recognition_s: float | None = None
    total_s: float = 0.0

    @property
    def passed(self) -> bool:
        return all(c.status != FAIL for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "first_recognition_s": self.first_recognition_s,
                "total_s": round(self.total_s, 2), "checks": [asdict(c) for c in self.checks]}


class CheckFailed(Exception):
    """A check found a problem (its message is the report line)."""


class CheckWarning(Exception):
    """A check found something worth a look that does not stop the kiosk."""




# ------------------------------------------------------------------------------ the checks
class SelfTest:
    """The checks.  ``window``: the window toolkit's part (:class:`kiosk.ui.selftest.
    WindowChecks`, given by the program entry :mod:`kiosk.__main__`; this module never imports
    Qt): ``check(settings, transaction, pdf_path) -> detail`` (a ``ValueError`` is the problem)
    and ``pdf_text(path) -> str | None``.  Without it the Qt check fails as not run."""

    def __init__(self, db_path: Path | None = None, settings=None, window=None) -> None:
        self.db_path = db_path
        self.settings = settings
        self.window = window
        self.report = Report()
        self.embedder = None
        self.tmp = Path(tempfile.mkdtemp(prefix="kiosk-selftest-"))
        self.demo_engine = None
        self.text_reader = None

    # -- running
    def run(self, progress: Callable[[Check], None] = lambda c: None) -> Report:
        t_start = time.perf_counter()
        steps = [
            ("runtime", self.check_runtime),
            ("data folder", self.check_data_dir),
            ("model", self.check_model),
            ("pack text", self.check_text),
            ("demo trays", self.check_demo_trays),
            ("store catalogue", self.check_store_catalogue),
            ("qt", self.check_qt),
            ("receipt", self.check_receipt),
            ("camera", self.check_camera),
            ("libraries", self.check_libraries),
        ]
        try:
            for name, fn in steps:
                t0 = time.perf_counter()
                try:
                    status, detail = OK, fn()
                except CheckWarning as exc:
                    status, detail = WARN, str(exc)
                except CheckFailed as exc:
                    status, detail = FAIL, str(exc)
                except Exception as exc:  # noqa: BLE001 - any failure is a report line
                    status, detail = FAIL, f"{type(exc).__name__}: {exc}"
                check = Check(name, status, detail, round((time.perf_counter() - t0) * 1000, 1))
                self.report.checks.append(check)
                progress(check)
        finally:
            if self.demo_engine is not None:
                self.demo_engine.close()
            shutil.rmtree(self.tmp, ignore_errors=True)
        self.report.total_s = time.perf_counter() - t_start
        return self.report

    # -- runtime
    def check_runtime(self) -> str:
        from kiosk import __version__
        from kiosk.runtime.paddle import import_paddle, num_cpu_threads
        from kiosk.paths import is_bundle, PROJECT_DIR

        paddle = import_paddle()
        import faiss
        import cv2
        import numpy

        where = f"bundle {PROJECT_DIR}" if is_bundle() else f"source {PROJECT_DIR}"
        return (f"kiosk {__version__} ({where}); Python {platform.python_version()}, "
                f"Paddle {paddle.__version__}, faiss {faiss.__version__}, OpenCV {cv2.__version__}, "
                f"NumPy {numpy.__version__}; {num_cpu_threads()} CPU threads")

    def check_data_dir(self) -> str:
        from kiosk.paths import data_dir

        folder = data_dir()
        probe = folder / f".selftest-{os.getpid()}"
        try:
            probe.write_bytes(b"ok")
            probe.unlink()
        except OSError as exc:
            raise CheckFailed(f"{folder} is not writable: {exc}") from exc
        free_gb = shutil.disk_usage(folder).free / 1e9
        detail = f"{folder} (writable, {free_gb:.1f} GB free)"
        if free_gb < 1.0:
            raise CheckWarning(detail + ": less than 1 GB free")
        return detail

    # -- model
    def check_model(self) -> str:
        import numpy as np

        from kiosk.embed import load_embedder
        from kiosk.demo.catalog import DEMO_LIST
        from kiosk.catalog.gallery_io import parse_gallery_list
        from kiosk.images import load_image

        t0 = time.perf_counter()
        self.embedder = load_embedder()
        load_s = time.perf_counter() - t0
        first = next(iter(parse_gallery_list(DEMO_LIST)))
        vec = self.embedder.embed([load_image(first.path)]).vectors
        norm = float(np.linalg.norm(vec[0]))
        if vec.shape != (1, self.embedder.dim) or not np.isfinite(vec).all() or abs(norm - 1) > 1e-3:
            raise CheckFailed(f"model {self.embedder.model_id} gave a bad embedding "
                              f"(shape {vec.shape}, norm {norm:.3f})")
        model = getattr(self.embedder, "model", None)
        onednn = getattr(model, "use_onednn", None)
        extra = "" if onednn is None else (
            f", oneDNN {getattr(model, 'precision', 'fp32')}" if onednn else ", plain CPU kernels")
        return (f"{self.embedder.model_id} ({self.embedder.dim}-d{extra}), loaded in "
                f"{load_s:.1f} s")

    # -- pack text
    def check_text(self) -> str:
        from kiosk.demo.catalog import DEMO_LIST
        from kiosk.catalog.gallery_io import parse_gallery_list
        from kiosk.images import load_image
        from kiosk.text import TextReader, ensure_models

        try:
            folder = ensure_models()
        except Exception as exc:  # noqa: BLE001 - the kiosk works without, less well
            raise CheckWarning(f"PP-OCRv4 models not available, look-alike packs are told "
                               f"apart by their pictures only: {exc}") from exc
        t0 = time.perf_counter()
        self.text_reader = TextReader(folder)
        load_s = time.perf_counter() - t0
        crisps = next(e for e in parse_gallery_list(DEMO_LIST) if e.label == "DEMO-005")
        t0 = time.perf_counter()
        words = self.text_reader.read(load_image(crisps.path)).words
        read_ms = (time.perf_counter() - t0) * 1000
        if "黄瓜味" not in words:
            raise CheckFailed(f"read {list(words)} on the demo cucumber crisps, not 黄瓜味")
        return (f"PP-OCRv4 from {folder}, loaded in {load_s:.1f} s; read "
                f"{' '.join(words)} on a demo pack in {read_ms:.0f} ms")

    # -- demo
    def check_demo_trays(self) -> str:
        from kiosk.assemble import open_engine
        from kiosk.demo.catalog import build_demo_catalog
        from kiosk.demo.scenes import DEMO_RESOURCES_DIR
        from kiosk.images import load_image

        if self.embedder is None:
            raise CheckFailed("skipped: the model did not load")
        db = build_demo_catalog(self.tmp / "demo" / "catalog.db", embedder=self.embedder,
                                text_reader=self.text_reader)
        # (the demo catalogue as built for the built-in model: the default settings)
        self.demo_engine = engine = open_engine(db, None, embedder=self.embedder,
                                                text_reader=self.text_reader)
        meta = json.loads((DEMO_RESOURCES_DIR / "trays.json").read_text(encoding="utf-8"))
        wrong, items, times = [], 0, []
        for tray in meta["trays"]:
            image = load_image(DEMO_RESOURCES_DIR / tray["image"])
            t0 = time.perf_counter()
            result = engine.recognize(image)
            times.append((time.perf_counter() - t0) * 1000)
            if self.report.first_recognition_s is None:
                self.report.first_recognition_s = round(process_age_s(), 2)
            want = Counter(i["sku"] for i in tray["items"])
            got = Counter(i.sku for i in result.items if not i.unknown)
            items += len(tray["items"])
            if got != want or result.receipt.total != tray["total_fen"]:
                wrong.append(f"{tray['image']}: expected {dict(want)} total "
                             f"{tray['total_fen']}, got {dict(got)} total {result.receipt.total}")
        n = len(meta["trays"])
        if wrong:
            raise CheckFailed(f"{n - len(wrong)}/{n} demo trays right; " + "; ".join(wrong))
        self._demo_receipt = result.receipt
        return (f"{n}/{n} demo trays right ({items} items), "
                f"{sum(times) / len(times):.0f} ms per tray")

    # -- the store's catalogue
    def check_store_catalogue(self) -> str:
        from kiosk.assemble import open_engine
        from kiosk.catalog import SCHEMA_VERSION, Catalog

        db = self.db_path
        if db is None:
            from kiosk.paths import default_db_path

            db = default_db_path()
        db = Path(db)
        if not db.exists():
            return (f"no store catalogue at {db} yet (the kiosk runs on the demo catalogue "
                    "until staff enrol or import products)")
        if self.embedder is None:
            raise CheckFailed("skipped: the model did not load")
        before = _user_version(db)
        if before > SCHEMA_VERSION:
            raise CheckFailed(f"{db} has schema version {before}, newer than this kiosk "
                              f"({SCHEMA_VERSION}): install the newer bundle again")
        with Catalog(db) as catalog:  # opening applies the migrations
            integrity = catalog.conn.execute("PRAGMA integrity_check").fetchall()
            if [tuple(r) for r in integrity] != [("ok",)]:
                raise CheckFailed(f"{db}: integrity_check: "
                                  + "; ".join(str(r[0]) for r in integrity[:5]))
            fk = catalog.conn.execute("PRAGMA foreign_key_check").fetchall()
            if fk:
                raise CheckFailed(f"{db}: {len(fk)} rows break foreign keys")
            counts = catalog.table_counts()
            missing = [f for _, f in catalog.gallery_files() if not Path(f).is_file()]
            unpriced = len(catalog.unpriced_products())
        engine = open_engine(db, self.settings, embedder=self.embedder)
        try:
            live = engine.catalog.count_gallery(self.embedder.model_id)
            in_index = engine.index.n_live
            action, reembedded = engine.index_action, engine.reembedded
        finally:
            engine.close()
        if in_index != live:
            raise CheckFailed(f"vector index holds {in_index} vectors, catalogue {live}")
        migrated = (f"migrated schema {before}→{SCHEMA_VERSION}, " if before != SCHEMA_VERSION
                    else f"schema {SCHEMA_VERSION}, ")
        detail = (f"{db}: {migrated}integrity ok, {counts.get('products', 0)} products, "
                  f"{live} gallery vectors (index {action}"
                  + (f", {reembedded} re-embedded for this model" if reembedded else "")
                  + f"), {counts.get('transactions', 0)} transactions")
        notes = []
        if missing:
            notes.append(f"{len(missing)} gallery image files are missing (a model change "
                         f"could not re-embed them), e.g. {missing[0]}")
        if unpriced:
            notes.append(f"{unpriced} products have no price yet")
        if notes:
            raise CheckWarning(detail + "; " + "; ".join(notes))
        return detail

    # -- Qt
    def check_qt(self) -> str:
        """The window toolkit (:attr:`window`): the offscreen platform, the CJK font, the
        Chinese translation, image formats, and the demo tray's sale, stored and read back like
        a Finish does, printed to PDF."""
        if self.window is None:
            raise CheckFailed("not run: the window's checks were not given (`kiosk "
                              "--self-test` runs them)")
        tx = None
        receipt = getattr(self, "_demo_receipt", None)
        if receipt is not None and self.demo_engine is not None:
            catalog = self.demo_engine.catalog
            tx = catalog.get_transaction(catalog.record_transaction(receipt))
        pdf = self.tmp / "receipt.pdf"
        try:
            detail = self.window.check(self.settings, tx, pdf)
        except ValueError as exc:
            raise CheckFailed(str(exc)) from None
        self._receipt_pdf, self._receipt_tx = pdf, tx
        return detail

    # -- the printed receipt
    def check_receipt(self) -> str:
        """The receipt's printed text matches the sale: the PDF read back with pdftotext, and
        the ESC/POS bytes for both paper widths (GB18030 names, the total, the QR code)."""
        from kiosk.checkout import printer
        from kiosk.money import format_price

        tx = getattr(self, "_receipt_tx", None)
        if tx is None:
            raise CheckFailed("skipped: no receipt was printed to PDF (see the qt check)")
        kind = getattr(getattr(self.settings, "printer", None), "kind", "none") or "none"
        problems, done = [], []
        text = self.window.pdf_text(self._receipt_pdf) if self.window is not None else None
        if text is not None:
            problems += [f"PDF: {p}" for p in printer.receipt_text_problems(text, tx)]
            done.append(f"PDF text matches the sale ({len(tx['lines'])} items)")
        try:
            for columns in sorted(set(printer.COLUMNS.values())):
                data = printer.escpos_bytes(tx, columns, "self-test", "zh_CN")
                where = f"ESC/POS {columns} columns"
                problems += [f"{where}: {p}" for p in printer.receipt_text_problems(
                    data.decode(printer.ENCODING, "replace"), tx)]
                lines = printer.receipt_lines(tx, columns, "self-test", "zh_CN")
                missing = [ln for ln in lines if ln.encode(printer.ENCODING) not in data]
                if missing:
                    problems.append(f"{where}: line {missing[0]!r} is not in the GB18030 bytes")
                total = printer.clean(format_price(tx["total"], tx.get("currency", "CNY")))
                if total.encode(printer.ENCODING) not in data:
                    problems.append(f"{where}: the total {total} is not in the bytes")
                if printer.CHINESE_ON not in data or printer.QR_COMMAND not in data:
                    problems.append(f"{where}: no Chinese mode (FS &) or no QR code")
            done.append("ESC/POS 32/48 columns (GB18030, QR)")
        except Exception as exc:  # noqa: BLE001 - python-escpos missing or broken
            msg = f"ESC/POS receipts cannot be made: {type(exc).__name__}: {exc}"
            if kind != "none":
                problems.append(msg)
            else:
                done.append(msg + " (no printer configured)")
        if problems:
            raise CheckFailed("; ".join(problems[:6]))
        detail = ", ".join(done) + f"; printer: {kind}"
        if text is None:
            raise CheckWarning(detail + "; PDF text skipped: pdftotext missing (Debian "
                               "package poppler-utils)")
        if any("cannot be made" in d for d in done):
            raise CheckWarning(detail)
        return detail

    # -- camera
    def check_camera(self) -> str:
        from kiosk.camera import _video_nodes

        source = None
        if self.settings is not None:
            source = getattr(getattr(self.settings, "camera", None), "source", None)
        nodes = _video_nodes()
        found = ", ".join(nodes) if nodes else "no USB camera found"
        if source in (None, "auto"):
            plan = ("the first camera that delivers frames" if nodes
                    else "the built-in demo camera")
            return f"{found}; camera.source = auto → {plan}"
        return f"{found}; camera.source = {source!r}"


    # -- shared libraries
    def check_libraries(self) -> str:
        """Which shared libraries this process loaded, by origin.  A bundle must not pick up
        anything from a Python installation on the host (site-packages, a virtualenv, pyenv)."""
        from kiosk.paths import PROJECT_DIR, is_bundle

        try:
            maps = Path("/proc/self/maps").read_text().splitlines()
        except OSError:
            return "not checked (no /proc/self/maps)"
        libs = {line.split()[-1] for line in maps
                if line.split()[-1].startswith("/") and ".so" in line.split()[-1]}
        bundle_root = str(PROJECT_DIR)
        system_dirs = ("/lib/", "/lib64/", "/usr/lib/", "/usr/lib64/", "/usr/local/lib/",
                       "/usr/share/", "/etc/")
        inside = [p for p in libs if p.startswith(bundle_root + "/")]
        system = [p for p in libs if p not in inside and p.startswith(system_dirs)
                  and "site-packages" not in p and "dist-packages" not in p]
        other = sorted(set(libs) - set(inside) - set(system))
        detail = (f"{len(inside)} from {'the bundle' if is_bundle() else 'the project'}, "
                  f"{len(system)} from the system")
        if other:
            detail += f", {len(other)} from elsewhere (e.g. {other[0]})"
            if is_bundle():
                raise CheckFailed(detail + ": the bundle must be self-contained")
        return detail


def _user_version(db: Path) -> int:
    import sqlite3

    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()


# ------------------------------------------------------------------------------ entry point
def main(db_path: str | Path | None = None, as_json: bool = False, settings=None,
         window=None) -> int:
    """Run the self-test, print the report, return the exit status (0 = passed).
    ``window``: the window toolkit's checks (see :class:`SelfTest`)."""
    width = 16

    import logging

    log = logging.getLogger("kiosk.tools.selftest")

    def show(check: Check) -> None:
        log.info("self-test %s %s: %s", check.status, check.name, check.detail)
        if not as_json:
            print(f"  {check.status:<5} {check.name:<{width}} {check.detail}", flush=True)

    if not as_json:
        print("kiosk self-test", flush=True)
    report = SelfTest(Path(db_path) if db_path else None, settings, window).run(show)
    if as_json:
        print(json.dumps(report.to_dict(), ensure_ascii=False))
    else:
        first = (f"; first demo tray recognised {report.first_recognition_s:.1f} s after launch"
                 if report.first_recognition_s is not None else "")
        failed = [c.name for c in report.checks if c.status == FAIL]
        if failed:
            print(f"self-test FAILED: {', '.join(failed)} ({report.total_s:.1f} s)")
        else:
            print(f"self-test passed: {len(report.checks)} checks in {report.total_s:.1f} s{first}")
    log.info("self-test %s in %.1f s", "passed" if report.passed else "FAILED", report.total_s)
    return 0 if report.passed else 1
