"""Backup and restore of the kiosk's data: the catalogue database and the pictures it uses.

A backup is a folder, or a ``.tar`` / ``.tar.gz`` / ``.tgz`` / ``.zip`` archive of that folder::

    manifest.json        what is inside: format, kiosk and schema version, time, row counts,
                         size and sha256 of every file
    catalog.db           a consistent copy made with SQLite's backup API (never a file copy of
                         the live database), in rollback-journal mode so it is one self-contained file
    files/gallery/...    the gallery images the catalogue references under the data folder
    files/empty_tray.png the calibrated empty tray and files/settings.toml, when present

Gallery images the catalogue references *outside* the data folder (``gallery import --no-copy``,
the demo pictures) are not copied; the manifest lists them as ``external``.

:func:`restore` checks everything first -- manifest hashes and sizes, ``PRAGMA integrity_check``,
a schema version this kiosk knows, row counts -- and only then touches the live data: pictures
are written beside the live ones, the previous database is kept as ``catalog.db.pre-restore``
and the checked copy takes its place with one ``os.replace``.  The vector index file is set aside
too (``.pre-restore``): row ids of the restored catalogue may name other pictures than the
index's, so the engine rebuilds it from the stored embeddings at its next start.

Everything written here is owner-only: files 0600, folders 0700.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sqlite3
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

log = logging.getLogger(__name__)

FORMAT = "kiosk-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DB_NAME = "catalog.db"
FILES = "files"
#: Files beside the catalogue that are backed up and restored with it.
EXTRAS = ("empty_tray.png", "settings.toml")
PRE_RESTORE = ".pre-restore"


class BackupError(Exception):
    """The backup cannot be made, or the backup is unusable (nothing was changed)."""


# ------------------------------------------------------------------------------------- helpers
def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _archive_kind(path: Path) -> str | None:
    name = path.name.lower()
    for suffix, kind in ((".tar.gz", "w:gz"), (".tgz", "w:gz"), (".tar", "w"), (".zip", "zip")):
        if name.endswith(suffix):
            return kind
    return None


def _mkdir_private(path: Path) -> None:
    """Create ``path`` (and missing parents) with mode 0700; an existing folder is left as is."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for p in reversed(missing):
        p.mkdir(mode=0o700, exist_ok=True)
        os.chmod(p, 0o700)


def _copy_private(src: Path, dst: Path) -> None:
    """Copy ``src`` to ``dst`` (mode 0600) through a temporary file and ``os.replace``."""
    _mkdir_private(dst.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as out, open(src, "rb") as inp:
            shutil.copyfileobj(inp, out, 1 << 20)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def default_backup_name() -> str:
    """``kiosk-backup-YYYYmmdd-HHMMSS`` (local time): a backup folder name that sorts by date."""
    return time.strftime("kiosk-backup-%Y%m%d-%H%M%S")


def _resolve_stored(stored: str, data_dir: Path) -> Path | None:
    """Where a gallery file named ``stored`` in the catalogue is on disk (None: nowhere)."""
    p = Path(stored)
    candidates = [p] if p.is_absolute() else [Path.cwd() / p, data_dir / p]
    for c in candidates:
        if c.is_file():
            return c.resolve()
    return None


def _under(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
    except ValueError:
        return False
    return True


def _db_facts(conn: sqlite3.Connection) -> dict[str, Any]:
    check = [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
    tables = [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
    return {
        "integrity": check,
        "schema_version": conn.execute("PRAGMA user_version").fetchone()[0],
        "counts": {t: conn.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0] for t in tables},
    }


# -------------------------------------------------------------------------------------- backup
def backup(db_path: str | Path, dest: str | Path, *, role: str = "system",
           catalog: Any = None) -> dict[str, Any]:
    """Back up the catalogue at ``db_path`` and its pictures to ``dest`` (a new folder, or a
    ``.tar``/``.tar.gz``/``.tgz``/``.zip`` file); returns the manifest.

    Safe while the kiosk runs: the database is copied with SQLite's backup API, which sees one
    consistent state even while another connection writes.  The backup is recorded in the
    audit log (by ``role``; through ``catalog`` when given, e.g. the GUI's own catalogue).
    """
    from kiosk.catalog import restrict_db_files

    db_path, dest = Path(db_path), Path(dest)
    if not db_path.is_file():
        raise BackupError(f"{db_path}: no catalogue to back up")
    kind = _archive_kind(dest)
    if dest.exists() and (kind is not None or not dest.is_dir() or any(dest.iterdir())):
        raise BackupError(f"{dest} already exists: choose a new name for the backup")
    _mkdir_private(dest.parent)
    stage = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    try:
        os.chmod(stage, 0o700)
        manifest = _stage(db_path, stage)
        (stage / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n",
                                      encoding="utf-8")
        os.chmod(stage / MANIFEST, 0o600)
        if kind is None:
            os.replace(stage, dest)  # a folder appears complete or not at all
        else:
            _write_archive(stage, dest, kind)
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)
    restrict_db_files(db_path)
    _audit(db_path, catalog, "backup", role, detail=str(dest.resolve()),
           after={"schema_version": manifest["schema_version"], "files": len(manifest["files"]),
                  "products": manifest["counts"].get("products", 0)})
    return manifest


def _stage(db_path: Path, stage: Path) -> dict[str, Any]:
    import kiosk

    data_dir = db_path.parent.resolve()
    copy = stage / DB_NAME
    src = sqlite3.connect(str(db_path), timeout=30)
    try:
        fd = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        dst = sqlite3.connect(str(copy))
        try:
            src.backup(dst)  # all pages in one step: one consistent snapshot
            dst.execute("PRAGMA journal_mode = DELETE")  # one self-contained file
            facts = _db_facts(dst)
            stored = [r[0] for r in dst.execute("SELECT DISTINCT file FROM gallery_images ORDER BY file")]
            if dst.execute("SELECT 1 FROM sqlite_master WHERE name = 'learned_views'").fetchone():
                # the learned views' own pictures (kiosk.checkout.learn): also those not in the gallery
                stored += [r[0] for r in dst.execute(
                    "SELECT DISTINCT picture FROM learned_views WHERE status IN "
                    "('pending', 'approved', 'undone') ORDER BY picture")]
        finally:
            dst.close()
    finally:
        src.close()
    if facts["integrity"] != ["ok"]:
        raise BackupError(f"{db_path} fails the integrity check: {'; '.join(facts['integrity'][:5])}")
    files, external, missing = [], [], []
    seen: set[str] = set()

    def add(path: Path, rel: str, stored_as: str | None) -> None:
        target = stage / FILES / rel
        _copy_private(path, target)
        files.append({"path": f"{FILES}/{rel}", "rel": rel, "stored": stored_as,
                      "size": target.stat().st_size, "sha256": _sha256(target)})

    for name in stored:
        found = _resolve_stored(name, data_dir)
        if found is None:
            missing.append(name)
        elif not _under(found, data_dir):
            external.append(name)
        else:
            rel = found.relative_to(data_dir).as_posix()
            if rel in seen:
                continue
            seen.add(rel)
            add(found, rel, name)
    for extra in EXTRAS:
        if (data_dir / extra).is_file():
            add(data_dir / extra, extra, None)
    if missing:
        log.warning("backup: %d gallery file(s) not found: %s", len(missing), missing[:5])
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kiosk_version": kiosk.__version__,
        "created_at": _now(),
        "schema_version": facts["schema_version"],
        "source": {"db": str(db_path.resolve()), "data_dir": str(data_dir)},
        "db": {"path": DB_NAME, "size": copy.stat().st_size, "sha256": _sha256(copy)},
        "counts": facts["counts"],
        "files": files,
        "external": external,
        "missing": missing,
    }


def _write_archive(stage: Path, dest: Path, kind: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.fchmod(fd, 0o600)
    os.close(fd)
    try:
        members = sorted(p for p in stage.rglob("*") if p.is_file())
        if kind == "zip":
            with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
                for p in members:
                    z.write(p, p.relative_to(stage).as_posix())
        else:
            with tarfile.open(tmp, kind) as t:
                for p in members:
                    t.add(p, p.relative_to(stage).as_posix(), recursive=False)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _audit(db_path: Path, catalog: Any, action: str, role: str, **fields: Any) -> None:
    from kiosk.catalog import Catalog, CatalogError

    try:
        if catalog is not None:
            catalog.audit(action, "catalogue", role=role, **fields)
            return
        with Catalog(db_path) as cat:
            cat.audit(action, "catalogue", role=role, **fields)
    except CatalogError as exc:  # e.g. a newer kiosk's database: backed up all the same
        log.warning("%s not recorded in the audit log: %s", action, exc)


# ------------------------------------------------------------------------------------- restore
def _safe_rel(name: str) -> str:
    p = PurePosixPath(name)
    if p.is_absolute() or not p.parts or any(part in ("", ".", "..") for part in p.parts) or "\\" in name:
        raise BackupError(f"backup names an unsafe path: {name!r}")
    return p.as_posix()


def _unpack(src: Path, into: Path) -> Path:
    into.mkdir(mode=0o700)
    try:
        if zipfile.is_zipfile(src):
            with zipfile.ZipFile(src) as z:
                for info in z.infolist():
                    _safe_rel(info.filename.rstrip("/"))
                z.extractall(into)
        elif tarfile.is_tarfile(src):
            with tarfile.open(src) as t:
                for m in t.getmembers():
                    _safe_rel(m.name)
                    if not (m.isfile() or m.isdir()):
                        raise BackupError(f"backup archive holds a link or device: {m.name!r}")
                t.extractall(into, filter="data")
        else:
            raise BackupError(f"{src} is not a backup folder, .tar or .zip archive")
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
        raise BackupError(f"{src}: the archive cannot be read ({exc})") from exc
    return into


def _load_manifest(root: Path) -> dict[str, Any]:
    path = root / MANIFEST
    if not path.is_file():
        raise BackupError(f"{root}: no {MANIFEST}: not a kiosk backup")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise BackupError(f"{path} is not valid JSON ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{path}: not a kiosk backup manifest")
    if not isinstance(manifest.get("format_version"), int) or manifest["format_version"] > FORMAT_VERSION:
        raise BackupError(f"{path}: backup format {manifest.get('format_version')!r} is newer than this "
                          f"kiosk reads ({FORMAT_VERSION}): update the kiosk software")
    for key in ("db", "files", "counts", "schema_version"):
        if key not in manifest:
            raise BackupError(f"{path}: manifest has no {key!r}")
    return manifest


def _check_file(root: Path, entry: dict[str, Any]) -> Path:
    rel = _safe_rel(str(entry.get("path", "")))
    path = root / rel
    if not path.is_file() or path.is_symlink():
        raise BackupError(f"backup is missing {rel}")
    if path.stat().st_size != entry.get("size") or _sha256(path) != entry.get("sha256"):
        raise BackupError(f"backup file {rel} does not match its manifest (damaged or changed)")
    return path


def verify_backup(src: str | Path) -> dict[str, Any]:
    """Check a backup without restoring it; returns its manifest or raises :class:`BackupError`."""
    src = Path(src)
    with tempfile.TemporaryDirectory(prefix=".kiosk-verify-") as tmp:
        root = src if src.is_dir() else _unpack(src, Path(tmp) / "backup")
        manifest = _load_manifest(root)
        db = _check_file(root, manifest["db"])
        for entry in manifest["files"]:
            _check_file(root, entry)
        staged = Path(tmp) / "check.db"
        shutil.copyfile(db, staged)
        _check_db(staged, manifest)
    return manifest


def _check_db(path: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    from kiosk.catalog import SCHEMA_VERSION

    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            facts = _db_facts(conn)
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"the backup's database cannot be read ({exc})") from exc
    if facts["integrity"] != ["ok"]:
        raise BackupError("the backup's database fails the integrity check: "
                          + "; ".join(facts["integrity"][:5]))
    version = facts["schema_version"]
    if version > SCHEMA_VERSION:
        raise BackupError(f"the backup has schema version {version}, this kiosk knows up to "
                          f"{SCHEMA_VERSION}: restore it with a newer kiosk")
    if version != manifest["schema_version"] or facts["counts"] != manifest["counts"]:
        raise BackupError("the backup's database does not match its manifest (schema version or "
                          "row counts differ)")
    if "products" not in facts["counts"] or "gallery_images" not in facts["counts"]:
        raise BackupError("the backup's database is not a kiosk catalogue")
    return facts


def _set_aside(path: Path) -> Path | None:
    """Rename ``path`` to ``path.pre-restore`` (replacing an older one); None if missing."""
    if not path.exists():
        return None
    aside = path.with_name(path.name + PRE_RESTORE)
    os.replace(path, aside)
    return aside


def restore(src: str | Path, db_path: str | Path, *, role: str = "system") -> dict[str, Any]:
    """Replace the catalogue at ``db_path`` (and its pictures) with the backup ``src``.

    Everything is checked before anything changes; a bad backup raises :class:`BackupError`
    and the live data stays as it was.  Refused while the catalogue is open elsewhere (the
    kiosk running).  The previous database is kept as ``<db>.pre-restore``.  Returns a summary.
    """
    from kiosk.catalog import Catalog, restrict_db_files

    src, db_path = Path(src), Path(db_path)
    if not src.exists():
        raise BackupError(f"{src}: no such backup")
    data_dir = db_path.parent
    _mkdir_private(data_dir)
    # the work folder sits beside the database: the final os.replace stays on one file system
    work = Path(tempfile.mkdtemp(prefix=".kiosk-restore-", dir=data_dir))
    try:
        # ---- 1. check everything; nothing live is touched
        root = src if src.is_dir() else _unpack(src, work / "backup")
        manifest = _load_manifest(root)
        staged = work / DB_NAME
        _copy_private(_check_file(root, manifest["db"]), staged)
        if _sha256(staged) != manifest["db"]["sha256"]:
            raise BackupError("the backup's database changed while it was read")
        files = [(entry, _check_file(root, entry), _safe_rel(str(entry.get("rel", ""))))
                 for entry in manifest["files"]]
        _check_db(staged, manifest)
        # the pictures go under this data folder: point the catalogue rows at them
        dest_dir = data_dir.resolve()
        conn = sqlite3.connect(str(staged))
        try:
            with conn:
                for entry, _, rel in files:
                    if entry.get("stored") is not None:
                        conn.execute("UPDATE gallery_images SET file = ? WHERE file = ?",
                                     (str(dest_dir / rel), entry["stored"]))
        finally:
            conn.close()

        # ---- 2. is the live catalogue free?  Leaving WAL mode needs the only connection.
        live = None
        if db_path.exists():
            live = sqlite3.connect(str(db_path), timeout=5)
            try:
                mode = live.execute("PRAGMA journal_mode = DELETE").fetchone()[0]
            except sqlite3.DatabaseError as exc:
                live.close()
                live = None
                if "locked" in str(exc) or "busy" in str(exc):
                    raise BackupError(f"{db_path} is in use: close the kiosk, then restore") from exc
                log.warning("restore: the live catalogue cannot be read (%s); it is replaced", exc)
            else:
                if str(mode).lower() != "delete":
                    live.close()
                    raise BackupError(f"{db_path} is in use: close the kiosk, then restore")

        # ---- 3. swap in: pictures first (the new rows never name a missing file), then the db
        try:
            for entry, path, rel in files:
                target = data_dir / rel
                if target.is_file() and _sha256(target) == entry["sha256"]:
                    continue
                if target.exists():
                    _set_aside(target)
                _copy_private(path, target)
            previous = None
            if live is not None:
                previous = db_path.with_name(db_path.name + PRE_RESTORE)
                tmp = work / "previous.db"
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                os.close(fd)
                keep = sqlite3.connect(str(tmp))
                try:
                    live.backup(keep)
                finally:
                    keep.close()
                os.replace(tmp, previous)
            elif db_path.exists():  # unreadable: kept as it is
                previous = _set_aside(db_path)
            for suffix in ("-wal", "-shm", "-journal"):  # none belongs to the restored file
                _set_aside(db_path.with_name(db_path.name + suffix))
            os.replace(staged, db_path)
        finally:
            if live is not None:
                live.close()
        index = db_path.with_suffix(".faiss")  # kiosk.engine.index_path_for
        for p in (index, index.with_name(index.name + ".json")):
            _set_aside(p)
        restrict_db_files(db_path)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    # ---- 4. record it in the restored catalogue (this also migrates an older schema)
    with Catalog(db_path) as cat:
        cat.audit("restore", "catalogue", role=role, detail=str(src.resolve()),
                  before={"previous": str(previous) if previous else None},
                  after={"backup_created_at": manifest.get("created_at"),
                         "schema_version": manifest["schema_version"],
                         "files": len(files)})
        counts = cat.table_counts()
    return {"source": str(src), "db": str(db_path), "previous": str(previous) if previous else None,
            "created_at": manifest.get("created_at"), "schema_version": manifest["schema_version"],
            "files": len(files), "external": len(manifest.get("external", [])),
            "missing": len(manifest.get("missing", [])), "counts": counts}
