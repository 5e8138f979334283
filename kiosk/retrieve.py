"""Stage 4: nearest gallery images for each item embedding.

faiss HNSW32 with inner product on L2-normalised vectors (= cosine similarity), wrapped in an
``IndexIDMap2`` so that faiss ids *are* the catalogue's ``gallery_images.id`` rows.

Storage.  The index holds the only in-memory copy of the gallery's vectors (the catalogue keeps
them in SQLite and hands them out in chunks).  By default they are stored as float16
(``IndexHNSWSQ`` with ``QT_fp16``, kind ``"fp16"``): half the memory of float32 (100,000
1792-d vectors: 358 MB instead of 717 MB) for cosine scores within about 1e-4 of the exact
ones, which changed no decision on the dev photos; it needs no training, so a gallery can
grow from empty.  Kind ``"flat"`` (float32, ``IndexHNSWFlat``) is still available.

Deletes.  HNSW cannot remove vectors.  The catalogue (SQLite) is the source of truth for which
gallery rows are live; every vector in the index whose id is not live is a *tombstone* and is
filtered out inside the HNSW search with an ``IDSelector``.  So deleting or deactivating a
product takes effect at once, re-embeds nothing and rewrites no index file.  When tombstones
pile up (``needs_compaction``), :meth:`VectorIndex.compacted` rebuilds the graph from the
vectors the index already holds, which the engine does off the hot path.

Persistence.  ``save`` writes the index atomically (temp file + rename) with a small JSON
header (model id, dimension).  ``VectorIndex.sync`` reconciles a loaded index with the
catalogue: vectors missing from the index are added from the stored embeddings, ids no longer
in the catalogue become tombstones, and a model or dimension change (or an unreadable file)
rebuilds the index from the stored embeddings.
"""
from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

logging.getLogger("faiss.loader").setLevel(logging.WARNING)
import faiss  # noqa: E402

log = logging.getLogger(__name__)

HNSW_M = 32
EF_CONSTRUCTION = 40
EF_SEARCH = 64
COMPACT_RATIO = 0.2
BULK_ADD = 2000  # adds at least this big use every core; everything else runs on one
SYNC_CHUNK = 20000  # a (re)build adds (and holds in float32) this many vectors at a time
# How the index stores its vectors: "fp16" (half precision) or "flat" (float32).
KINDS = ("fp16", "flat")
DEFAULT_KIND = "fp16"

# faiss parallelises over queries with OpenMP.  Next to Paddle's own thread pool that costs
# far more than it saves: a batch of 15 queries took 17 ms with 2 threads and 0.7 ms with one.
faiss.omp_set_num_threads(1)


@dataclass(frozen=True)
class Neighbours:
    """Search result for Q queries: gallery row ids (-1 = no result) and cosine scores."""

    ids: np.ndarray  # (Q, k) int64
    scores: np.ndarray  # (Q, k) float32
    # the model's own cosine scores when ``scores`` were re-scored (kiosk.adapt), else None
    model_scores: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def row(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        keep = self.ids[i] >= 0
        return self.ids[i][keep], self.scores[i][keep]

    def model_row(self, i: int) -> np.ndarray | None:
        """The model's own scores of :meth:`row` ``i`` (None when not re-scored)."""
        if self.model_scores is None:
            return None
        return self.model_scores[i][self.ids[i] >= 0]


def _give_back_freed_memory() -> None:
    """After a bulk add: return the heap the stored rows passed through to the system (glibc
    keeps freed small blocks; at 100k vectors, ~100 MB otherwise held for nothing)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass


class IndexMismatch(RuntimeError):
    """The index file belongs to another model, dimension or storage kind."""


def _hnsw(dim: int, kind: str):
    if kind == "fp16":
        return faiss.IndexHNSWSQ(dim, faiss.ScalarQuantizer.QT_fp16, HNSW_M,
                                 faiss.METRIC_INNER_PRODUCT)
    if kind == "flat":
        return faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
    raise ValueError(f"index kind must be one of {', '.join(KINDS)}; got {kind!r}")


def _kind_of(index) -> str:
    """The storage kind of a loaded ``IndexIDMap2`` (ValueError for anything else)."""
    inner = faiss.downcast_index(index.index)
    if isinstance(inner, faiss.IndexHNSWFlat):
        return "flat"
    if isinstance(inner, faiss.IndexHNSWSQ):
        sq = faiss.downcast_index(inner.storage).sq
        if sq.qtype == faiss.ScalarQuantizer.QT_fp16:
            return "fp16"
    raise ValueError(f"unexpected index type {type(inner).__name__}")


class VectorIndex:
    """HNSW32 inner-product index keyed by gallery row id, with tombstone deletes.

    ``kind``: how the vectors are stored, one of :data:`KINDS`."""

    def __init__(self, dim: int, model_id: str, *, ef_search: int = EF_SEARCH,
                 kind: str = DEFAULT_KIND) -> None:
        if dim <= 0:
            raise ValueError("dimension must be positive")
        self.dim = int(dim)
        self.model_id = model_id
        self.kind = kind
        hnsw = _hnsw(self.dim, kind)
        hnsw.hnsw.efConstruction = EF_CONSTRUCTION
        self._index = faiss.IndexIDMap2(hnsw)
        self.ef_search = ef_search
        self._dead: set[int] = set()
        self._selector = None  # rebuilt lazily when tombstones change
        self._positions: tuple[np.ndarray, np.ndarray] | None = None  # see vectors_for
        self._lock = threading.RLock()
        self.dirty = False  # changed since the last save

    # ----------------------------------------------------------------- queries
    @property
    def ntotal(self) -> int:
        return int(self._index.ntotal)

    @property
    def n_live(self) -> int:
        return self.ntotal - len(self._dead)

    @property
    def n_dead(self) -> int:
        return len(self._dead)

    def ids(self) -> np.ndarray:
        """Every id stored in the index, tombstones included."""
        return faiss.vector_to_array(self._index.id_map).astype(np.int64)

    def live_ids(self) -> np.ndarray:
        ids = self.ids()
        if not self._dead:
            return ids
        return ids[~np.isin(ids, np.fromiter(self._dead, np.int64, len(self._dead)))]

    def search(self, vectors: np.ndarray, k: int = 5) -> Neighbours:
        q = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        with self._lock:
            if self.n_live == 0 or len(q) == 0:
                return Neighbours(
                    np.full((len(q), k), -1, np.int64), np.zeros((len(q), k), np.float32)
                )
            params = faiss.SearchParametersHNSW()
            params.efSearch = max(self.ef_search, k)
            if self._dead:
                if self._selector is None:
                    dead = np.fromiter(self._dead, np.int64, len(self._dead))
                    batch = faiss.IDSelectorBatch(dead)
                    self._selector = (faiss.IDSelectorNot(batch), batch)  # keep both alive
                params.sel = self._selector[0]
            scores, ids = self._index.search(q, k, params=params)
        return Neighbours(ids.astype(np.int64), scores.astype(np.float32))

    # ----------------------------------------------------------------- changes
    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        ids = np.ascontiguousarray(ids, dtype=np.int64).reshape(-1)
        vecs = np.ascontiguousarray(vectors, dtype=np.float32)
        if vecs.ndim != 2 or vecs.shape[1] != self.dim:
            raise ValueError(f"expected vectors of dimension {self.dim}, got {vecs.shape}")
        if len(ids) != len(vecs):
            raise ValueError("ids and vectors differ in length")
        if len(ids) == 0:
            return
        with self._lock:
            revived = [i for i in ids.tolist() if i in self._dead]
            # the catalogue never reuses a row id (AUTOINCREMENT), so a tombstoned id coming
            # back is the same image (e.g. a product reactivated): its stored vector stays
            if revived:
                self._dead.difference_update(revived)
                self._selector = None
                keep = ~np.isin(ids, np.array(revived, np.int64))
                ids, vecs = ids[keep], vecs[keep]
            if len(ids) >= BULK_ADD:  # index (re)builds: use every core while building
                faiss.omp_set_num_threads(os.cpu_count() or 1)
                try:
                    self._index.add_with_ids(vecs, ids)
                finally:
                    faiss.omp_set_num_threads(1)
            elif len(ids):
                self._index.add_with_ids(vecs, ids)
            self._positions = None
            self.dirty = True

    def remove(self, ids) -> None:
        """Tombstone ``ids``: they stop being returned at once."""
        ids = [int(i) for i in np.asarray(ids, dtype=np.int64).reshape(-1)]
        if not ids:
            return
        with self._lock:
            self._dead.update(ids)
            self._selector = None

    def set_live(self, live_ids: np.ndarray) -> None:
        """Make exactly ``live_ids`` searchable (every other stored id is a tombstone)."""
        stored = self.ids()
        dead = stored[~np.isin(stored, np.asarray(live_ids, np.int64))]
        with self._lock:
            self._dead = set(dead.tolist())
            self._selector = None

    @property
    def needs_compaction(self) -> bool:
        return self.ntotal > 0 and self.n_dead / self.ntotal > COMPACT_RATIO

    def compacted(self) -> "VectorIndex":
        """A new index holding only the live vectors (a full HNSW rebuild, seconds at 100k).
        The vectors move over ``SYNC_CHUNK`` at a time (no float32 copy of them all)."""
        fresh = VectorIndex(self.dim, self.model_id, ef_search=self.ef_search, kind=self.kind)
        with self._lock:
            ids = self.live_ids()
            fresh.reserve(len(ids))
            for start in range(0, len(ids), SYNC_CHUNK):
                chunk = ids[start:start + SYNC_CHUNK]
                fresh.add(chunk, self.vectors_for(chunk))
        return fresh

    def vectors_for(self, ids: np.ndarray) -> np.ndarray:
        """The stored vectors of ``ids`` as float32 (decoded: within ~1e-4 of the added ones
        for kind "fp16"); KeyError for an id the index does not hold.  Read straight from
        the stored codes (both kinds store plain float16 / float32 values) through an id ->
        position map: 900 rows of 1,792 in 6-8 ms against 8-10 ms by faiss's reconstruct row
        by row, the same ~0.5 ms for 60 (the loaded 2-core host; float16 decoding costs as
        much in numpy as in faiss)."""
        ids = np.asarray(ids, np.int64).reshape(-1)
        with self._lock:
            if self._positions is None:  # (the row of each id, rebuilt after additions)
                id_map = faiss.vector_to_array(self._index.id_map).astype(np.int64)
                order = np.argsort(id_map, kind="stable")
                self._positions = (id_map[order], order)
            stored, order = self._positions
            at = np.minimum(np.searchsorted(stored, ids), max(len(stored) - 1, 0))
            if len(ids) and (not len(stored) or not np.array_equal(stored[at], ids)):
                missing = ids[stored[at] != ids] if len(stored) else ids
                raise KeyError(f"the index holds no vector with id {int(missing[0])}")
            storage = faiss.downcast_index(faiss.downcast_index(self._index.index).storage)
            n = int(storage.ntotal)
            if n == 0:
                return np.empty((0, self.dim), np.float32)
            codes = faiss.rev_swig_ptr(storage.codes.data(), n * int(storage.code_size))
            dtype = np.float16 if self.kind == "fp16" else np.float32
            # (a view of the index's own memory: only read under the lock, copied out)
            return codes.view(dtype).reshape(n, self.dim)[order[at]].astype(np.float32,
                                                                              copy=False)

    def reserve(self, n: int) -> None:
        """Make room for ``n`` more vectors at once.  The stored codes are one array that
        would otherwise grow by reallocation, holding old and new copies together for a
        moment (at 100k vectors, hundreds of MB over the index's own size)."""
        with self._lock:
            storage = faiss.downcast_index(faiss.downcast_index(self._index.index).storage)
            codes, size = storage.codes, int(storage.ntotal) * int(storage.code_size)
            want = size + max(0, int(n)) * int(storage.code_size)
            if want > codes.size():
                codes.resize(want)  # (a shrinking resize keeps the room: capacity stays)
                codes.resize(size)

    def memory_bytes(self) -> int:
        """About how much memory the index holds: the stored vectors, the HNSW graph and the
        id maps (what :func:`faiss.write_index` writes, less its few headers)."""
        with self._lock:
            hnsw_index = faiss.downcast_index(self._index.index)
            hnsw = hnsw_index.hnsw
            storage = faiss.downcast_index(hnsw_index.storage)
            codes = int(storage.ntotal) * int(storage.code_size)
            graph = (hnsw.neighbors.size() * 4 + hnsw.offsets.size() * 8
                     + hnsw.levels.size() * 4)
            ids = self.ntotal * 8 * 3  # id_map and the reverse map (an unordered_map)
        return codes + graph + ids

    # ------------------------------------------------------------- persistence
    def save(self, path: str | os.PathLike) -> None:
        """Write atomically: ``path`` and ``path.json`` are replaced only when complete."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with self._lock:
            faiss.write_index(self._index, str(tmp))
            meta = {"model_id": self.model_id, "dim": self.dim, "ntotal": self.ntotal,
                    "kind": self.kind, "format": 2}
            self.dirty = False
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        meta_tmp = path.with_name(path.name + ".json.tmp")
        meta_tmp.write_text(json.dumps(meta))
        # the header is written last: a crash between the two renames leaves a header that
        # disagrees with the file's ntotal, which ``load`` treats as a stale index.
        os.replace(tmp, path)
        os.replace(meta_tmp, path.with_name(path.name + ".json"))

    @classmethod
    def load(cls, path: str | os.PathLike, *, ef_search: int = EF_SEARCH) -> "VectorIndex":
        path = Path(path)
        meta = json.loads(path.with_name(path.name + ".json").read_text())
        index = faiss.read_index(str(path))  # already the concrete (owning) type
        if not isinstance(index, faiss.IndexIDMap2):
            raise IndexMismatch(f"{path} is not an id-mapped index")
        if int(index.ntotal) != int(meta["ntotal"]) or int(index.d) != int(meta["dim"]):
            raise IndexMismatch(f"{path} disagrees with its header")
        try:
            kind = _kind_of(index)
        except ValueError as exc:
            raise IndexMismatch(f"{path}: {exc}") from None
        if kind != meta.get("kind", "flat"):  # (format 1 headers had no kind: all flat)
            raise IndexMismatch(f"{path} disagrees with its header")
        self = cls(int(meta["dim"]), str(meta["model_id"]), ef_search=ef_search, kind=kind)
        self._index = index
        return self

    @classmethod
    def sync(
        cls,
        path: str | os.PathLike,
        model_id: str,
        dim: int,
        live_ids: np.ndarray,
        fetch_vectors: Callable[[np.ndarray], np.ndarray],
        *,
        ef_search: int = EF_SEARCH,
        progress: Callable[[str, int, int], None] | None = None,
        kind: str = DEFAULT_KIND,
    ) -> tuple["VectorIndex", str]:
        """Load the index at ``path`` and make it agree with the catalogue.

        ``live_ids``: the catalogue's live gallery rows for ``model_id``.
        ``fetch_vectors(ids)``: their stored embeddings (asked for ``SYNC_CHUNK`` at a time,
        so a rebuild never holds every vector twice).
        ``progress("index", done, total)``: vectors added so far, when any are.
        ``kind``: the storage wanted; an index file of another kind is rebuilt.
        Returns the index and what was done: "loaded", "repaired" or "rebuilt (<why>)".
        """

        def add(index: "VectorIndex", ids: np.ndarray) -> None:
            index.reserve(len(ids))
            if progress is not None:
                progress("index", 0, len(ids))
            for start in range(0, len(ids), SYNC_CHUNK):
                chunk = ids[start:start + SYNC_CHUNK]
                index.add(chunk, fetch_vectors(chunk))
                if progress is not None:
                    progress("index", start + len(chunk), len(ids))

        live_ids = np.asarray(live_ids, np.int64)
        action = "loaded"
        try:
            index = cls.load(path, ef_search=ef_search)
            if index.model_id != model_id or index.dim != dim:
                raise IndexMismatch(
                    f"index made by {index.model_id} ({index.dim}-d), catalogue uses "
                    f"{model_id} ({dim}-d)"
                )
            if index.kind != kind:
                raise IndexMismatch(f"index stores {index.kind} vectors, {kind} wanted")
        except FileNotFoundError:
            index, action = None, "rebuilt (no index file)"
        except Exception as exc:  # unreadable, truncated, other model: rebuild
            log.warning("rebuilding vector index %s: %s", path, exc)
            index, action = None, f"rebuilt ({exc})"
        if index is None:
            index = cls(dim, model_id, ef_search=ef_search, kind=kind)
            if len(live_ids):
                add(index, live_ids)
                _give_back_freed_memory()
            return index, action
        stored = index.ids()
        missing = live_ids[~np.isin(live_ids, stored)]
        if len(missing):
            add(index, missing)
            _give_back_freed_memory()
            action = "repaired"
        index.set_live(live_ids)  # ids the catalogue no longer has become tombstones
        return index, action
