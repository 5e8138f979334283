"""Gallery views and their vectors: the images each product is recognised by, their
embeddings (per model), the words read on their packs, and the views learned at the till.
"""
from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, Iterable, Sequence
import numpy as np
from kiosk.embed import Embeddings
from kiosk.catalog import events
from kiosk.catalog.common import CatalogError, _F32, _NOW, _check_text


class Gallery:
    """Part of :class:`kiosk.catalog.Catalog`: gallery views and their vectors."""

    def model_dim(self, model_id: str) -> int | None:
        """The embedding size stored for ``model_id``, or None when it has no rows."""
        rows = self._rows("SELECT dim FROM gallery_images WHERE model_id = ? LIMIT 1", (model_id,))
        return rows[0][0] if rows else None

    def add_gallery_images(
        self,
        sku: str,
        files: Sequence[str | Path],
        embeddings: Embeddings,
        *,
        role: str = "system",
        audit_action: str | None = "gallery_add",
    ) -> list[int]:
        """Store one embedding per file for ``sku``; returns the new row ids, in order.

        Audited as ``audit_action`` (e.g. ``enrol``; None: not audited, for a caller that
        writes its own summary row) by ``role``, with the number of images."""
        files = [str(f) for f in files]
        if len(files) != len(embeddings):
            raise ValueError(f"{len(files)} files but {len(embeddings)} embeddings")
        if not files:
            return []
        if any(not f.strip() for f in files):
            raise ValueError("gallery file names must be non-empty")
        _check_text(embeddings.model_id, "model_id")
        vectors = embeddings.vectors
        dim = embeddings.dim
        if dim <= 0:
            raise ValueError("embeddings have no columns")
        if not np.isfinite(vectors).all():
            raise ValueError("embeddings contain NaN or infinity")
        blobs = [row.tobytes() for row in vectors.astype(_F32, copy=False)]
        with self.transaction():
            self._require(sku)
            stored = self.model_dim(embeddings.model_id)
            if stored is not None and stored != dim:
                raise ValueError(
                    f"model {embeddings.model_id!r} has {stored}-d embeddings in the catalogue, got {dim}-d"
                )
            ids = []
            for file, blob in zip(files, blobs):
                try:
                    cur = self.conn.execute(
                        "INSERT INTO gallery_images (sku, file, model_id, dim, embedding) VALUES (?, ?, ?, ?, ?)",
                        (sku, file, embeddings.model_id, dim, blob),
                    )
                except sqlite3.IntegrityError as e:
                    raise ValueError(
                        f"{file} is already in the gallery of {sku!r} for model {embeddings.model_id!r}"
                    ) from e
                ids.append(cur.lastrowid)
            if audit_action is not None:
                self.audit(audit_action, sku, role=role, after={"images": len(ids)},
                           detail=embeddings.model_id)
            self._publish(events.VIEWS_ADDED, [sku], ids, embeddings.model_id)
        return ids

    def remove_gallery_images(self, ids: Iterable[int]) -> int:
        """Delete gallery rows by id; returns how many existed."""
        ids = [int(i) for i in ids]
        removed, gone, skus = 0, [], set()
        with self.transaction():
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = self._rows(f"SELECT id, sku FROM gallery_images WHERE id IN ({marks})", chunk)
                gone += [r[0] for r in rows]
                skus.update(r[1] for r in rows)
                removed += self.conn.execute(f"DELETE FROM gallery_images WHERE id IN ({marks})", chunk).rowcount
            if gone:
                self._publish(events.VIEWS_REMOVED, sorted(skus), sorted(gone))
        return removed

    def remove_model(self, model_id: str) -> int:
        """Delete every gallery row made by ``model_id`` (after re-embedding with a new model)."""
        with self.transaction():
            rows = self._rows("SELECT id, sku FROM gallery_images WHERE model_id = ? ORDER BY id",
                              (model_id,))
            n = self.conn.execute("DELETE FROM gallery_images WHERE model_id = ?", (model_id,)).rowcount
            if rows:
                self._publish(events.VIEWS_REMOVED, sorted({r[1] for r in rows}),
                              [r[0] for r in rows], model_id)
            return n

    def gallery_vectors(self, model_id: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """(ids int64 (N,), vectors float32 (N, D), skus) of ``model_id``'s rows for active products.

        The whole gallery as one matrix: for tools and tests.  The engine never holds it (its
        vector index does, filled by ``gallery_vectors_for`` a chunk at a time)."""
        sql = ("FROM gallery_images g JOIN products p ON p.sku = g.sku "
               "WHERE g.model_id = ? AND p.active = 1")
        n = self._rows(f"SELECT COUNT(*) {sql}", (model_id,))[0][0]
        dim = self.model_dim(model_id) or 0
        ids = np.empty(n, np.int64)
        out = np.empty((n, dim), np.float32)
        skus: list[str] = []
        with self._lock:
            cur = self.conn.execute(f"SELECT g.id, g.sku, g.dim, g.embedding {sql} ORDER BY g.id",
                                    (model_id,))
            while True:
                rows = cur.fetchmany(4096)
                if not rows:
                    break
                at = len(skus)
                if at + len(rows) > n:  # pragma: no cover - the count is read under the lock
                    raise CatalogError("the gallery changed while it was read")
                part_ids, part_skus, dims, blobs = zip(*rows)
                self._fill(out, range(at, at + len(rows)), part_ids, dims, blobs)
                ids[at:at + len(rows)] = part_ids
                skus.extend(part_skus)
        return ids[:len(skus)], out[:len(skus)], skus

    @staticmethod
    def _fill(out: np.ndarray, rows, ids, dims, blobs) -> None:
        """Copy stored embeddings ``blobs`` into ``out[rows]`` (one copy: no matrix of them
        all beside the result)."""
        dim = out.shape[1]
        if any(d != dim for d in dims):
            raise CatalogError(f"gallery rows {list(ids)[:10]} mix embedding sizes "
                               f"{sorted(set(dims) | {dim})}")
        if any(len(b) != 4 * dim for b in blobs):
            bad = next(i for i, b in zip(ids, blobs) if len(b) != 4 * dim)
            raise CatalogError(f"gallery row {bad}: its stored embedding is not {dim} float32 "
                               "values")
        out[rows] = np.frombuffer(b"".join(blobs), dtype=_F32).reshape(len(blobs), dim)

    def gallery_ids(self, model_id: str) -> tuple[np.ndarray, list[str]]:
        """(ids int64, skus) of ``model_id``'s rows for active products, without the vectors
        (what the vector index needs at start-up to know which rows are live)."""
        rows = self._rows(
            "SELECT g.id, g.sku FROM gallery_images g JOIN products p ON p.sku = g.sku "
            "WHERE g.model_id = ? AND p.active = 1 ORDER BY g.id",
            (model_id,),
        )
        if not rows:
            return np.zeros(0, np.int64), []
        ids, skus = zip(*rows)
        return np.asarray(ids, dtype=np.int64), list(skus)

    def gallery_vectors_for(self, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """The stored embeddings of gallery rows ``ids``, in that order (float32 (N, D)).

        Rows are read a block at a time (sorted ids: one scan of their id range when they are
        dense, as a rebuild's chunks are) and copied straight into the result, so a
        20,000-row chunk of 1792-d vectors costs its 143 MB and little more."""
        ids = [int(i) for i in np.asarray(ids).reshape(-1)]
        if not ids:
            return np.zeros((0, 0), np.float32)
        first: dict[int, int] = {}
        for n, i in enumerate(ids):
            first.setdefault(i, n)
        out: np.ndarray | None = None
        unique = sorted(first)
        block = 1024  # (7 MB of 1792-d blobs at a time: little for the heap to keep)
        seen: set[int] = set()
        for start in range(0, len(unique), block):
            part = unique[start : start + block]
            lo, hi = part[0], part[-1]
            if hi - lo < 2 * len(part) + 64:  # mostly wanted rows: one scan of the id range
                queries = [("id BETWEEN ? AND ?", (lo, hi))]
            else:
                queries = [(f"id IN ({','.join('?' * len(part[k:k + 500]))})", part[k:k + 500])
                           for k in range(0, len(part), 500)]
            for where, params in queries:
                rows = [r for r in self._rows(
                    f"SELECT id, dim, embedding FROM gallery_images WHERE {where}", params)
                    if r[0] in first]
                if not rows:
                    continue
                got, dims, blobs = zip(*rows)
                if out is None:
                    out = np.empty((len(ids), dims[0]), np.float32)
                self._fill(out, [first[i] for i in got], got, dims, blobs)
                seen.update(got)
        if len(seen) < len(unique):
            missing = [i for i in ids if i not in seen]
            raise KeyError(f"gallery rows not found: {missing[:10]}")
        assert out is not None
        for n, i in enumerate(ids):  # an id asked for twice
            if first[i] != n:
                out[n] = out[first[i]]
        return out

    def gallery_counts(self) -> dict[str, int]:
        """Gallery images per sku (all models)."""
        return dict(self._rows("SELECT sku, COUNT(*) FROM gallery_images GROUP BY sku"))

    def gallery_files(self, sku: str | None = None) -> list[tuple[str, str]]:
        """Distinct (sku, file) pairs in the gallery, oldest first, e.g. to re-embed them."""
        where, params = ("WHERE sku = ?", (sku,)) if sku is not None else ("", ())
        rows = self._rows(
            f"SELECT sku, file, MIN(id) AS first FROM gallery_images {where} GROUP BY sku, file ORDER BY first",
            params,
        )
        return [(r[0], r[1]) for r in rows]

    def gallery_rows(self, sku: str | None = None, model_id: str | None = None) -> list[dict[str, Any]]:
        """Gallery rows without the embedding: id, sku, file, model_id, dim, created_at."""
        clauses, params = [], []
        if sku is not None:
            clauses.append("sku = ?")
            params.append(sku)
        if model_id is not None:
            clauses.append("model_id = ?")
            params.append(model_id)
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        return self._query(
            f"SELECT id, sku, file, model_id, dim, created_at FROM gallery_images {where} ORDER BY id", params
        )

    def count_gallery(self, model_id: str | None = None) -> int:
        if model_id is None:
            return self._rows("SELECT COUNT(*) FROM gallery_images")[0][0]
        return self._rows("SELECT COUNT(*) FROM gallery_images WHERE model_id = ?", (model_id,))[0][0]

    def stale_models(self, model_id: str) -> dict[str, int]:
        """Row counts of gallery embeddings made by models other than ``model_id``."""
        rows = self._rows(
            "SELECT model_id, COUNT(*) FROM gallery_images WHERE model_id != ? GROUP BY model_id ORDER BY model_id",
            (model_id,),
        )
        return {m: n for m, n in rows}

    def set_gallery_words(self, sku: str, rows: Sequence[tuple[str, str, Sequence[str]]],
                          reader: str) -> None:
        """Store the words ``reader`` read on gallery files of ``sku``: rows of (file, source,
        words); ``source`` is the file actually read (a half-turned copy names its original).
        Replaces what that reader stored before for those files."""
        from kiosk.catalog.common import dumps_words

        _check_text(reader, "reader")
        checked = []
        for file, source, words in rows:
            if not str(file).strip() or not str(source).strip():
                raise ValueError("gallery file names must be non-empty")
            words = list(words)
            if not all(isinstance(w, str) and w for w in words):
                raise ValueError(f"words of {file} must be non-empty strings")
            checked.append((sku, str(file), str(source), reader, dumps_words(words)))
        with self.transaction():
            self._require(sku)
            self.conn.executemany(
                "INSERT OR REPLACE INTO gallery_text (sku, file, source, reader, words) "
                "VALUES (?, ?, ?, ?, ?)", checked)

    def gallery_words(self, reader: str) -> dict[str, list[tuple[str, ...]]]:
        """Active products' words as read by ``reader``: one word list per view actually read
        (copies folded into their source), only for files still in the gallery."""
        from kiosk.catalog.common import loads_words

        rows = self._rows(
            "SELECT t.sku, t.source, MIN(t.words) FROM gallery_text t "
            "JOIN products p ON p.sku = t.sku AND p.active = 1 "
            "WHERE t.reader = ? AND EXISTS (SELECT 1 FROM gallery_images g "
            "WHERE g.sku = t.sku AND g.file = t.file) "
            "GROUP BY t.sku, t.source ORDER BY t.sku, t.source", (reader,))
        out: dict[str, list[tuple[str, ...]]] = {}
        for sku, _source, words in rows:
            out.setdefault(sku, []).append(loads_words(words))
        return out

    def files_without_words(self, reader: str) -> list[tuple[str, str]]:
        """Distinct (sku, file) gallery pairs that ``reader`` has not read yet."""
        rows = self._rows(
            "SELECT g.sku, g.file, MIN(g.id) AS first FROM gallery_images g "
            "WHERE NOT EXISTS (SELECT 1 FROM gallery_text t WHERE t.sku = g.sku "
            "AND t.file = g.file AND t.reader = ?) GROUP BY g.sku, g.file ORDER BY first",
            (reader,))
        return [(r[0], r[1]) for r in rows]

    def set_gallery_views(self, sku: str, rows: Sequence[tuple[str, str]]) -> None:
        """Record which view each gallery file of ``sku`` is: rows of (file, view file)."""
        rows = [(sku, str(f), str(v)) for f, v in rows]
        with self.transaction():
            self.conn.executemany(
                "INSERT OR REPLACE INTO gallery_views (sku, file, view) VALUES (?, ?, ?)", rows)

    def gallery_view_of(self, model_id: str, ids: Iterable[int] | None = None
                        ) -> dict[int, str]:
        """Gallery row id -> its view (the view's file; a file with no recorded view is its
        own), for ``model_id``'s rows of active products (only rows ``ids`` when given)."""
        sql = ("SELECT g.id, COALESCE(v.view, g.file) FROM gallery_images g "
               "JOIN products p ON p.sku = g.sku AND p.active = 1 "
               "LEFT JOIN gallery_views v ON v.sku = g.sku AND v.file = g.file "
               "WHERE g.model_id = ?")
        if ids is None:
            return {int(i): str(v) for i, v in self._rows(sql, (model_id,))}
        ids = [int(i) for i in ids]
        out: dict[int, str] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            out.update((int(i), str(v)) for i, v in self._rows(
                sql + f" AND g.id IN ({','.join('?' * len(chunk))})", (model_id, *chunk)))
        return out

    def gallery_ids_for_files(self, sku: str, files: Iterable[str]) -> list[int]:
        """Gallery row ids (every model) of ``sku`` stored under ``files``."""
        files = [str(f) for f in files if f]
        if not files:
            return []
        marks = ",".join("?" * len(files))
        return [r[0] for r in self._rows(
            f"SELECT id FROM gallery_images WHERE sku = ? AND file IN ({marks}) ORDER BY id",
            (sku, *files))]

    def add_learned_view(self, sku: str, picture: str, *, source: str, status: str,
                         created_t: float, file: str | None = None,
                         turned_file: str | None = None,
                         actor: str | None = None, decided_sku: str | None = None,
                         score: float | None = None, margin: float | None = None) -> int:
        with self.transaction():
            self._require(sku)
            view_id = self.conn.execute(
                "INSERT INTO learned_views (sku, picture, file, turned_file, source, actor, "
                "status, decided_sku, score, margin, created_t) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (sku, str(picture), file, turned_file, source, actor, status, decided_sku,
                 None if score is None else float(score),
                 None if margin is None or not np.isfinite(margin) else float(margin),
                 float(created_t))).lastrowid
            self._publish(events.VIEWS_LEARNED, [sku], [view_id])
            return view_id

    def update_learned_view(self, view_id: int, **fields: Any) -> None:
        allowed = {"status", "file", "turned_file", "reviewed_by"}
        bad = set(fields) - allowed
        if bad:
            raise ValueError(f"cannot change {', '.join(sorted(bad))} of a learned view")
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self.transaction():
            rows = self._rows("SELECT sku FROM learned_views WHERE id = ?", (int(view_id),))
            self.conn.execute(f"UPDATE learned_views SET {sets}, reviewed_at = {_NOW} "
                              "WHERE id = ?", (*fields.values(), int(view_id)))
            if rows:
                self._publish(events.VIEWS_LEARNED, [rows[0][0]], [int(view_id)])

    def get_learned_view(self, view_id: int) -> dict[str, Any] | None:
        rows = self._query("SELECT * FROM learned_views WHERE id = ?", (int(view_id),))
        return rows[0] if rows else None

    def learned_views(self, sku: str | None = None, status: str | Sequence[str] | None = None,
                      limit: int | None = None) -> list[dict[str, Any]]:
        """Learned views, newest first (``status``: one or several)."""
        clauses, params = [], []
        if sku is not None:
            clauses.append("sku = ?")
            params.append(sku)
        if status is not None:
            status = [status] if isinstance(status, str) else list(status)
            clauses.append(f"status IN ({','.join('?' * len(status))})")
            params.extend(status)
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        sql = f"SELECT * FROM learned_views {where} ORDER BY id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        return self._query(sql, params)

    def count_learned_since(self, sku: str, actor: str | None, since_t: float) -> int:
        """Views of ``sku`` learned (or queued) from ``actor``'s answers since ``since_t``."""
        return self._rows(
            "SELECT COUNT(*) FROM learned_views WHERE sku = ? AND actor IS ? AND created_t >= ?",
            (sku, actor, float(since_t)))[0][0]
