"""The catalogue's database: one SQLite file in WAL mode, its connection, transactions
(with hooks run after commit) and its schema migrations.
"""
from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Self, Sequence
import sqlite_utils
from kiosk.catalog.common import CatalogError, UnknownProductError
from kiosk.catalog.migrations import MIGRATIONS, SCHEMA_VERSION


def restrict_db_files(path: str | Path) -> None:
    """Owner-only access (0600) to the database at ``path`` and its -wal/-shm/-journal files.

    A missing database is created empty with mode 0600 first: SQLite gives the -wal and -shm
    files it creates later the mode of the database file.  Files of another owner are left alone.
    """
    path = Path(path)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
    for f in (path, *(path.with_name(path.name + s) for s in ("-wal", "-shm", "-journal"))):
        try:
            if f.stat().st_mode & 0o077:
                os.chmod(f, 0o600)
        except (FileNotFoundError, PermissionError):
            pass


class Database:
    """Part of :class:`kiosk.catalog.Catalog`: the catalogue's database."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        restrict_db_files(self.path)
        conn = sqlite3.connect(str(self.path), timeout=30, check_same_thread=False)
        self._lock = threading.RLock()
        self._after_commit: list[Callable[[], None]] = []
        self._event_subscribers: list[Callable] = []  # kiosk.catalog.events
        self._event_lock = threading.Lock()
        try:
            self.db = sqlite_utils.Database(conn)
            conn.execute("PRAGMA foreign_keys = ON")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":  # pragma: no cover - e.g. a read-only medium
                raise CatalogError(f"{self.path}: could not switch the database to WAL mode ({mode})")
            self._migrate()
        except BaseException:
            conn.close()
            raise

    @property
    def conn(self) -> sqlite3.Connection:
        return self.db.conn

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        return self._rows("PRAGMA user_version")[0][0]

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Self]:
        """All writes inside commit together or not at all.  Nests (inner blocks are savepoints).

        The :meth:`after_commit` callbacks run once the outermost block has committed, after
        the catalogue's lock is let go (a listener may take its own lock and read the
        catalogue without a lock-order deadlock against a thread that holds the listener's
        lock and waits for the catalogue's)."""
        with self._lock:
            conn = self.conn
            if conn.in_transaction:
                pending = len(self._after_commit)
                try:
                    with self.db.atomic():
                        yield self
                except BaseException:  # this savepoint rolled back: so do its callbacks
                    del self._after_commit[pending:]
                    raise
                return
            conn.execute("BEGIN IMMEDIATE")
            self._after_commit = []
            try:
                yield self
            except BaseException:
                self._after_commit = []
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            else:
                try:
                    conn.execute("COMMIT")
                except BaseException:
                    self._after_commit = []
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
                callbacks, self._after_commit = self._after_commit, []
        for fn in callbacks:
            fn()

    def after_commit(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` once the current transaction has committed (at once outside one); never
        if it rolls back.  For state kept beside the database, such as the vector index: it
        must not hold rows that were never committed (SQLite would hand their ids out again)."""
        with self._lock:
            if self.conn.in_transaction:
                self._after_commit.append(fn)
            else:
                fn()

    def _migrate(self) -> None:
        version = self.schema_version
        if version > SCHEMA_VERSION:
            raise CatalogError(
                f"{self.path} has schema version {version}, but this kiosk only knows up to "
                f"version {SCHEMA_VERSION}: it was written by a newer kiosk; update the kiosk software"
            )
        if version == SCHEMA_VERSION:
            return
        with self.transaction():
            # re-read under the write lock: another process may have migrated meanwhile
            version = self.schema_version
            for number in range(version + 1, SCHEMA_VERSION + 1):
                MIGRATIONS[number - 1](self.db)
                self.conn.execute(f"PRAGMA user_version = {number:d}")

    def _query(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> list[dict[str, Any]]:
        with self._lock:
            cur = self.conn.execute(sql, params)
            keys = [d[0] for d in cur.description]
            return [dict(zip(keys, row)) for row in cur.fetchall()]

    def _rows(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> list[tuple]:
        with self._lock:
            return self.conn.execute(sql, params).fetchall()

    def _require(self, sku: str) -> None:
        if not self._rows("SELECT 1 FROM products WHERE sku = ?", (sku,)):
            raise UnknownProductError(sku)
