"""The recognition engine: detect -> track -> embed -> retrieve -> decide -> receipt.

One :class:`Engine` owns the catalogue, the models and the vector index (and, optionally, a
pack-text reader that splits look-alike products whose similarities are close).  It is the only object
the command line and the GUI talk to; it never imports Qt.  Its methods are thread-safe (one
lock), so a GUI worker thread can recognise while staff enrol a product.
"""
from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from kiosk.basket import Receipt, build_receipt
from kiosk.catalog import Catalog, Product
from kiosk.decide import Decider, Decision
from kiosk.detect import Detector, make_detector
from kiosk.embed import Embedder, Embeddings, load_embedder
from kiosk.pipeline import TrayResult
from kiosk.retrieve import VectorIndex

log = logging.getLogger(__name__)

# Gallery images whose pack text an engine reads when it opens a catalogue (about 0.1 s each on
# 2 cores); more are left to ``kiosk read-text``.
TEXT_BACKFILL_LIMIT = 300
# Pack text read in the background (:meth:`Engine.start_reading_text`) waits while the checkout
# has used the model within this many seconds: a shopper's tray goes first.
TEXT_YIELD_S = 1.5
# Gallery images re-embedded per model run when the model changed (small enough for the
# start-up screen to count them off every second or two).
REEMBED_BATCH = 16



def index_path_for(db_path: Path) -> Path:
    return Path(db_path).with_suffix(".faiss")


def background_path_for(db_path: Path) -> Path:
    """Where the calibrated empty-tray image of this catalogue lives."""
    return Path(db_path).parent / "empty_tray.png"


class Engine:
    def __init__(self, catalog: Catalog, embedder: Embedder, detector: Detector,
                 decider: Decider | None = None, index_path: Path | None = None,
                 text_reader=None, text_backfill_limit: int | None = TEXT_BACKFILL_LIMIT,
                 progress=None, defer_text: bool = False, adaptation=None) -> None:
        from kiosk.progress import EMBED, TEXT, throttled
        from kiosk.text import TextProfiles

        progress = throttled(progress)
        self.catalog = catalog
        self.embedder = embedder
        self.detector = detector
        self.decider = decider or Decider()
        # the store's own adaptation of the similarity (kiosk.adapt), refit from the gallery
        self.adaptation = adaptation
        self._view_of: dict[int, str] = {}  # gallery row -> its view (per-product thresholds)
        if self.decider.product_floor is not None:
            from kiosk.decide import ProductFloors

            self.decider.floors = ProductFloors(self.decider.product_floor, self._floor_views)
        self.index_path = Path(index_path) if index_path else index_path_for(catalog.path)
        self._lock = threading.RLock()
        # pack text (kiosk.text): a reader with .read(rgb) -> PackText and .reader_id, or None
        self.text_reader = text_reader
        self._text = TextProfiles({})
        self.reembedded = self._reembed_stale(progress.stage(EMBED))
        self.text_missing = 0  # gallery images the reader has not read yet (see below)
        # ``defer_text``: pictures decide and pack text only re-ranks look-alikes, so an engine
        # can recognise before it has read the packs: :meth:`start_reading_text` reads them in
        # the background (``text_pending`` of them) and the words count as they arrive.
        self._text_limit = text_backfill_limit
        self._text_thread: threading.Thread | None = None
        self._text_stop = threading.Event()
        self.text_pending = 0
        # products whose pack text is still being read: words are not weighed for them yet
        # (only the look-alike already read would have any, and the words would push to it)
        self._text_unread: set[str] = set()
        self._last_use = 0.0  # time.monotonic() when the checkout last used the model
        self.frames_recognised = 0  # pictures through the frame pipeline (kiosk.pipeline)
        if defer_text and self.text_reader is not None and text_backfill_limit != 0:
            todo = self.catalog.files_without_words(self.text_reader.reader_id)
            if text_backfill_limit is not None:
                todo = todo[:text_backfill_limit]
            self.text_pending = len(todo)
            self._text_unread = {sku for sku, _ in todo}
            self.text_backfilled = 0
            if todo:
                self._load_text_reader(progress)
        else:
            self.text_backfilled = self.read_missing_text(text_backfill_limit,
                                                          progress=progress.stage(TEXT))
        self._sync_index(progress)
        if self.index_action != "loaded":
            log.info("vector index %s: %s", self.index_path, self.index_action)
            self.index.save(self.index_path)
        # a reader that loads its models on first use (kiosk.text.TextReader) loads them now
        # when the catalogue has words to weigh, not in front of the first tray; a catalogue
        # without pack text never loads them
        if (self.text_reader is not None and len(self._text)
                and getattr(self.text_reader, "loaded", True) is False):
            self._load_text_reader(progress)
        # The first faiss search in a process pays for page faults and thread set-up
        # (~20 ms): pay it here, not on the first tray.
        if self.index.n_live:
            self.index.search(np.zeros((1, self.index.dim), np.float32), k=1)
        # the index follows the catalogue's committed changes, whoever makes them
        self._stop_events = self.catalog.subscribe(self._on_catalog_event)

    # -------------------------------------------------------------- factory
    @classmethod
    def open(cls, db_path: str | Path, *, embedder: Embedder | None = None,
             detector: str | Detector | None = None, background: np.ndarray | None = None,
             threshold: float | None = None, k: int | None = None,
             unsure_margin: float | None = None, product_floor: float | None = None,
             text_reader=None, text_backfill_limit: int | None = None,
             progress=None, defer_text: bool = False, adapt: bool | None = None,
             adapt_strength: float | None = None) -> "Engine":
        """Open the catalogue at ``db_path``: re-embed pictures of another model, read missing
        pack text (unless ``defer_text``: then :meth:`start_reading_text` reads it later) and
        load or build the vector index.  ``progress(stage, done, total)`` (stages of
        :mod:`kiosk.progress`: "embed", "text", "index") is told how that goes, at most
        about ten times a second, on the calling thread.  ``adapt``: learn the store's own
        similarity from the gallery (:mod:`kiosk.adapt`; None: the ``[recognition]`` default),
        ``adapt_strength`` its shrinkage."""
        from kiosk.images import load_image
        from kiosk.settings import CheckoutSettings

        db_path = Path(db_path)
        catalog = Catalog(db_path)
        embedder = embedder or load_embedder()
        if background is None and background_path_for(db_path).is_file():
            background = load_image(background_path_for(db_path))
        if detector is None or isinstance(detector, str):
            detector = make_detector(detector, background=background)
        decider = Decider(
            k=k or Decider().k,
            threshold=threshold if threshold is not None else model_threshold(embedder),
            unsure_margin=(unsure_margin if unsure_margin is not None
                           else CheckoutSettings().unsure_margin),
            product_floor=(product_floor if product_floor is not None
                           else CheckoutSettings().product_floor),
        )
        kw = {} if text_backfill_limit is None else {"text_backfill_limit": text_backfill_limit}
        from kiosk.adapt import Adaptation

        adaptation = Adaptation.from_settings(adapt=adapt, strength=adapt_strength)
        return cls(catalog, embedder, detector, decider, text_reader=text_reader,
                   progress=progress, defer_text=defer_text, adaptation=adaptation, **kw)

    # ------------------------------------------------------------ internals
    def _sync_index(self, progress=None) -> None:
        """Load the vector index and make it agree with the catalogue."""
        ids, skus = self.catalog.gallery_ids(self.embedder.model_id)
        self.index, self.index_action = VectorIndex.sync(
            self.index_path, self.embedder.model_id, self.embedder.dim, ids,
            self.catalog.gallery_vectors_for, progress=progress)
        self._refresh_skus(ids, skus)
        self._refit()

    def _refit(self) -> None:
        """Refit the store's adaptation on the live gallery: the rows are read under the
        engine lock, the fit is solved off it (a large catalogue takes seconds) and installed
        under it.  Callers must not hold the lock, or recognition waits for the fit."""
        if self.adaptation is None:
            return
        with self._lock:
            ids = np.asarray(list(self._sku_of), np.int64)
            labels = [self._sku_of[i] for i in ids.tolist()]
            big = len(ids) > self.adaptation.max_rows
            if not big:  # (above FIT_ROWS rows only the fit's per-product sample is read)
                ids, labels = self.adaptation.fit_sample(ids, labels)
            vectors = None if big else self.index.vectors_for(ids)
        fit = {} if big else self.adaptation.solve(ids, vectors, labels)
        with self._lock:
            self.adaptation.install(fit)
            if self.decider.floors is not None:
                self.decider.floors.invalidate()

    def _refresh_skus(self, ids: np.ndarray | None = None, skus: list[str] | None = None
                      ) -> None:
        """Re-read which live gallery row belongs to which product, and the products."""
        if ids is None:
            ids, skus = self.catalog.gallery_ids(self.embedder.model_id)
        self._sku_of = dict(zip(ids.tolist(), skus))
        self._ids_of: dict[str, list[int]] = {}
        for i, sku in self._sku_of.items():
            self._ids_of.setdefault(sku, []).append(i)
        self._products = {p.sku: p for p in self.catalog.list_products(active_only=False)}
        if self.decider.floors is not None:
            self._view_of = self.catalog.gallery_view_of(self.embedder.model_id)
            self.decider.floors.invalidate()
        self._refresh_text()

    def _floor_views(self, sku: str) -> tuple[np.ndarray, list]:
        """(vectors, view of each) of ``sku``'s live gallery rows (per-product thresholds;
        called under the engine lock)."""
        ids = self._ids_of.get(sku, [])
        if not ids:
            return np.zeros((0, self.embedder.dim), np.float32), []
        # the model's own vectors, even with the store's adaptation (Decider.below)
        return (self.index.vectors_for(np.asarray(ids, np.int64)),
                [self._view_of.get(i, i) for i in ids])

    # ------------------------------------------------------------ pack text
    def _refresh_text(self) -> None:
        """Rebuild the products' text profiles from the catalogue (active products only)."""
        if self.text_reader is None:
            return
        from kiosk.text import TextProfiles

        words = self.catalog.gallery_words(self.text_reader.reader_id)
        n = sum(1 for p in list(self._products.values()) if p.active)  # (may run off the lock)
        self._text = TextProfiles(words, n_products=n)

    def read_missing_text(self, limit: int | None = None, progress=None, *,
                          stop: threading.Event | None = None, refresh: bool = False) -> int:
        """Read the pack text of gallery images the reader has not read yet (a catalogue made
        without a reader, by ``kiosk gallery import``, or by an older reader); at most
        ``limit`` of them (None: all), so that opening a large catalogue does not wait hours
        for OCR; ``text_missing`` says how many are left (``kiosk read-text`` reads them all).
        Returns how many were read.  ``progress(done, total)`` is called as it goes (first
        with 0).  ``stop``: an event that ends the reading early (between images).
        ``refresh``: the engine's text profiles take up each product's words as soon as they
        are stored (for reading while the engine recognises)."""
        if self.text_reader is None:
            return 0
        from kiosk.images import load_image

        todo = self.catalog.files_without_words(self.text_reader.reader_id)
        self.text_missing = max(0, len(todo) - limit) if limit is not None else 0
        if limit is not None:
            todo = todo[:limit]
        if self.text_missing and limit:  # (limit 0: the caller did not ask for any reading)
            log.warning("%d gallery images have no pack text read yet: `kiosk read-text` reads "
                        "them", self.text_missing)
        if todo:  # (read while selling: nothing to warn about)
            (log.info if refresh else log.warning)(
                "reading the pack text of %d gallery images (%s)", len(todo),
                self.text_reader.reader_id)
        done = 0
        if progress and todo:
            progress(0, len(todo))
        by_sku: dict[str, list[str]] = {}
        for sku, file in todo:
            by_sku.setdefault(sku, []).append(file)
        for sku, files in by_sku.items():
            read: list[tuple[str, np.ndarray, tuple[str, ...]]] = []  # views read: file, image, words
            rows = []
            for file in files:
                if stop is not None and (refresh and self._yield_to_checkout(stop)
                                         or stop.is_set()):
                    return done
                try:
                    img = load_image(Path(file))
                except (OSError, ValueError) as exc:  # a missing or unreadable file: no text
                    log.warning("gallery image %s of %s: %s", file, sku, exc)
                    rows.append((file, file, ()))
                    continue
                # an enrolment stores each view twice, as cut and half-turned: read a view
                # once and give its copy the same words (counted once, as at enrolment)
                view = next((r for r in read if _is_half_turn(img, r[1])), None)
                if view is not None:
                    rows.append((file, view[0], view[2]))
                    continue
                words = self.text_reader.read(img).words
                read.append((file, img, words))
                rows.append((file, file, words))
            with self.catalog.transaction():
                self.catalog.set_gallery_words(sku, rows, self.text_reader.reader_id)
                if refresh:  # (run under the catalogue's lock, as an enrolment's refresh is)
                    self.catalog.after_commit(self._refresh_text)
            self._text_unread.discard(sku)
            done += len(rows)
            if progress:
                progress(done, len(todo))
        return len(todo)

    def _load_text_reader(self, progress) -> None:
        """Have the reader load its models now (a blank picture read: seconds, once), while
        start-up is on screen, rather than in front of a shopper's first tray."""
        from kiosk.progress import MODEL

        progress(MODEL, 0, 1)
        try:
            self.text_reader.read(np.zeros((64, 64, 3), np.uint8))
        except Exception:  # noqa: BLE001 - selling by the pictures alone
            log.exception("the pack-text reader did not load: the packs are not read")
            self.text_pending = 0  # (the unread products stay unweighed by words)
        progress(MODEL, 1, 1)

    def start_reading_text(self, progress=None) -> threading.Thread | None:
        """Read the pack text an engine opened with ``defer_text`` left unread, on a
        background thread (the reader runs in the model's process when there is one, so this
        thread only waits on a pipe).  Recognition goes on meanwhile by pictures alone for
        products whose words have not arrived; each product's words count as soon as they
        are read.  ``progress(stage, done, total)`` as for :meth:`open` (stage "text").
        Returns the thread, or None when there is nothing to read.  :meth:`close` stops it."""
        from kiosk.progress import TEXT, throttled

        if self.text_reader is None or not self.text_pending or self._text_thread is not None:
            return None
        progress = throttled(progress)

        def run() -> None:
            t0 = time.perf_counter()
            try:
                n = self.read_missing_text(self._text_limit, progress=progress.stage(TEXT),
                                           stop=self._text_stop, refresh=True)
            except Exception:  # noqa: BLE001 - the kiosk still sells by its pictures
                log.exception("reading pack text in the background stopped; `kiosk read-text` "
                              "reads what is left")
                return
            finally:
                self.text_pending = 0
            self.text_backfilled += n
            if self._text_stop.is_set():
                log.info("background pack-text reading stopped after %d gallery images; the "
                         "next start reads the rest", n)
            else:
                log.info("pack text of %d gallery images read in the background in %.1f s", n,
                         time.perf_counter() - t0)

        log.info("reading the pack text of %d gallery images in the background",
                 self.text_pending)
        self._text_thread = threading.Thread(target=run, name="kiosk-pack-text", daemon=True)
        self._text_thread.start()
        return self._text_thread

    def _yield_to_checkout(self, stop: threading.Event) -> bool:
        """Wait while the checkout is using the model (background reading must not slow a
        shopper's tray).  True when ``stop`` was set meanwhile."""
        while time.monotonic() - self._last_use < TEXT_YIELD_S:
            if stop.wait(0.1):
                return True
        return stop.is_set()

    def wait_for_text(self, timeout: float | None = None) -> bool:
        """Wait until background reading (:meth:`start_reading_text`) has ended; True when it
        has (or none runs)."""
        thread = self._text_thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    def _apply_text(self, crops: Sequence[np.ndarray], decisions: list[Decision],
                    timings: dict | None = None) -> list[Decision]:
        """Read the packs of items whose close candidates include a product with enrolled
        text, and let the words re-rank those candidates (:meth:`Decider.refine_with_text`)."""
        if self.text_reader is None or not len(self._text):
            return decisions
        t0 = time.perf_counter()
        out = [self.read_and_refine(c, d) for c, d in zip(crops, decisions)]
        if timings is not None:
            timings["text"] = (time.perf_counter() - t0) * 1e3
        return out

    def wants_text(self, d: Decision) -> bool:
        """Whether reading the item's pack could change ``d`` (close candidates, one of them
        with enrolled words, none whose words are still being read, and a reader)."""
        if self.text_reader is None:
            return False
        close = self.decider.text_contenders(d)
        unread = self._text_unread
        return any(self._text.has(c.sku) for c in close) and not (
            unread and any(c.sku in unread for c in close))

    def read_and_refine(self, crop: np.ndarray, d: Decision) -> Decision:
        """Read the item's pack and let its words re-rank ``d``'s close candidates."""
        if not self.wants_text(d):
            return d
        self._last_use = time.monotonic()
        return self._refine(d, self.text_reader.read(crop).words)

    def _refine(self, d: Decision, words: tuple[str, ...]) -> Decision:
        from kiosk.pipeline import refine_with_words

        return refine_with_words(self.decider, self._text, d, words)

    def refine_with_words(self, decisions: Sequence[Decision],
                          words: Sequence[tuple[str, ...]]) -> list[Decision]:
        """Apply words already read on each item (e.g. to a decision on several fused views of
        it) without reading again."""
        return [self._refine(d, w) if w and self.wants_text(d) else d
                for d, w in zip(decisions, words)]

    def _reembed_stale(self, progress=None) -> int:
        """Gallery images embedded by another model get this model's embedding; the old
        model's rows are then dropped, so vectors of two models never mix.
        ``progress(done, total)``: pictures embedded so far (first 0)."""
        model = self.embedder.model_id
        stale = self.catalog.stale_models(model)
        if not stale:
            return 0
        from kiosk.images import load_image

        have = {(r["sku"], r["file"]) for r in self.catalog.gallery_rows(model_id=model)}
        todo = [sf for sf in self.catalog.gallery_files() if sf not in have]
        log.warning("re-embedding %d gallery images for model %s (was %s)", len(todo), model,
                    ", ".join(stale))
        if progress:
            progress(0, len(todo))
        for start in range(0, len(todo), REEMBED_BATCH):
            chunk = todo[start:start + REEMBED_BATCH]
            emb = self.embedder.embed([load_image(Path(f)) for _, f in chunk])
            with self.catalog.transaction():
                for (sku, f), vec in zip(chunk, emb.vectors):
                    self.catalog.add_gallery_images(sku, [f], Embeddings(vec[None], model),
                                                    audit_action=None)
            if progress:
                progress(start + len(chunk), len(todo))
        with self.catalog.transaction():
            for old in stale:
                self.catalog.remove_model(old)
            self.catalog.audit("reembed", None, role="system", before=stale,
                               after={model: len(todo)})
        return len(todo)

    def product(self, sku: str | None) -> Product | None:
        return self._products.get(sku) if sku else None

    # ------------------------------------------------------------- recognise
    def recognize(self, image: np.ndarray, *, barcode: bool = True) -> TrayResult:
        """The items on one tray picture and their receipt: the checkout's own frame path
        (:class:`kiosk.pipeline.FramePipeline`) on a fresh tracker, one picture, every pack
        that could settle a look-alike read at once.  ``barcode``: read the codes of items
        the pictures cannot name, as the checkout does."""
        from kiosk.pipeline import FramePipeline

        return FramePipeline(self, barcode=barcode).recognize(image)

    def count_frame(self) -> None:
        """One more picture went through the frame pipeline (``frames_recognised``)."""
        with self._lock:
            self.frames_recognised += 1

    def recognize_crops(self, crops: Sequence[np.ndarray],
                        timings: dict | None = None) -> list[Decision]:
        """Decisions for ready item crops (each embedded, searched, decided and its pack read
        when that could settle a look-alike): the per-item stages of the frame pipeline."""
        return self.embed_and_decide(crops, timings)[1]

    def embed_and_decide(self, crops: Sequence[np.ndarray], timings: dict | None = None,
                         read_text: bool = True) -> tuple[np.ndarray, list[Decision]]:
        """Like :meth:`recognize_crops`, also returning the embeddings (N, D) (e.g. to fuse
        several views of one item with :meth:`decide_vectors`).  ``read_text=False`` leaves
        the packs unread (the caller reads those :meth:`wants_text` later, with
        :meth:`read_and_refine`)."""
        if not crops:
            return np.zeros((0, self.embedder.dim), np.float32), []
        self._last_use = time.monotonic()
        t0 = time.perf_counter()
        emb = self.embedder.embed(list(crops))
        t1 = time.perf_counter()
        self._last_use = time.monotonic()
        decisions = self.decide_vectors(emb.vectors, timings)
        if read_text:
            decisions = self._apply_text(crops, decisions, timings)
        if timings is not None:
            timings["embed"] = (t1 - t0) * 1e3
        return emb.vectors, decisions

    def decide_vectors(self, vectors: np.ndarray, timings: dict | None = None) -> list[Decision]:
        """Search and decide for ready embeddings (L2-normalised here):
        :func:`kiosk.pipeline.retrieve_and_decide` on this engine's index."""
        from kiosk.pipeline import retrieve_and_decide

        v = np.asarray(vectors, np.float32).reshape(-1, self.embedder.dim)
        if not len(v):
            return []
        v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
        with self._lock:
            return retrieve_and_decide(self.index, self._sku_of, self.decider, v,
                                       len(self._ids_of), timings, self.adaptation)

    def lookup_product(self, sku: str | None) -> Product | None:
        """:meth:`product`, falling back to the catalogue for products added since start-up
        (e.g. by another process); found products are remembered."""
        if not sku:
            return None
        with self._lock:
            p = self._products.get(sku)
        if p is None:
            # read without the engine's lock: a staff enrolment holds the catalogue's lock
            # (its transaction) while it takes the engine's, so the opposite order here, on
            # the recognition thread, could deadlock the two
            p = self.catalog.get_product(sku)
            if p is not None:
                with self._lock:
                    p = self._products.setdefault(sku, p)
        return p

    def receipt_for(self, skus: Sequence[str]) -> Receipt:
        return build_receipt(skus, self._products)

    # --------------------------------------------------------- gallery edits
    def add_images(self, sku: str, images: Sequence[np.ndarray],
                   files: Sequence[str | Path], *, role: str = "system",
                   audit_action: str = "gallery_add",
                   copies_of: Sequence[int | None] | None = None,
                   embeddings: Embeddings | None = None) -> list[int]:
        """Embed and store gallery images for an existing product; searchable at once.
        Audited as ``audit_action`` by ``role`` (see :data:`kiosk.catalog.AUDIT_ROLES`).

        With a text reader, each image's pack text is read and stored with it; ``copies_of[i]``
        names the image that image ``i`` is a turned copy of (its text is that image's, read
        once).  ``embeddings``: the images' embeddings by this engine's model, when the
        caller has them already."""
        images = list(images)
        files = [str(f) for f in files]
        if embeddings is not None and (embeddings.model_id != self.embedder.model_id
                                       or len(embeddings.vectors) != len(images)):
            raise ValueError("embeddings do not match the images or the model")
        emb = embeddings if embeddings is not None else self.embedder.embed(images)
        text_rows = []
        if self.text_reader is not None and len(files) == len(images):
            copies_of = list(copies_of) if copies_of is not None else [None] * len(images)
            read: dict[int, tuple[str, ...]] = {}
            for i, (img, src) in enumerate(zip(images, copies_of)):
                j = i if src is None else int(src)
                if j not in read:
                    read[j] = self.text_reader.read(images[j]).words
                text_rows.append((files[i], files[j], read[j]))
        with self.catalog.transaction():  # (no engine lock held while listeners hear it)
            ids = self.catalog.add_gallery_images(sku, files, emb, role=role,
                                                  audit_action=audit_action)
            if text_rows:
                self.catalog.set_gallery_words(sku, text_rows, self.text_reader.reader_id)
                self.catalog.after_commit(self._refresh_text)
            # searchable once committed (the catalogue's views_added event, see
            # _on_catalog_event): inside a caller's transaction that later rolls back, the rows
            # never reach the index (SQLite hands their ids out again after a rollback)
        return ids

    def _on_catalog_event(self, event) -> None:
        """Keep the index, the products and the pack text in step with a committed change."""
        from kiosk.catalog import events as ev

        if event.kind == ev.VIEWS_ADDED:
            if event.model_id == self.embedder.model_id and len(event.skus) == 1 and event.ids:
                product = self.catalog.get_product(event.skus[0])
                if product is not None:
                    ids = np.asarray(event.ids, np.int64)
                    self._index_add(product, ids, self.catalog.gallery_vectors_for(ids))
        elif event.kind in (ev.VIEWS_REMOVED, ev.PRODUCT_DELETED):
            with self._lock:
                if event.kind == ev.PRODUCT_DELETED:
                    for sku in event.skus:
                        self._products.pop(sku, None)
                # only rows the index holds live (another model's, an inactive product's: none)
                self._index_remove([i for i in event.ids if i in self._sku_of])
        elif event.kind == ev.ACTIVATION:
            with self._lock:
                ids, _ = self.catalog.gallery_ids(self.embedder.model_id)
                self.index.set_live(ids)
                missing = ids[~np.isin(ids, self.index.ids())]
                if len(missing):
                    self.index.add(missing, self.catalog.gallery_vectors_for(missing))
                self._refresh_skus()
            self._refit()
        elif event.kind in (ev.PRODUCT_ADDED, ev.PRODUCT_EDITED, ev.PRICE):
            with self._lock:
                for sku in event.skus:
                    p = self.catalog.get_product(sku)
                    if p is not None:
                        self._products[sku] = p

    def _index_add(self, product: Product, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Make committed gallery rows of ``product`` searchable."""
        views = (self.catalog.gallery_view_of(self.embedder.model_id, ids.tolist())
                 if self.decider.floors is not None else {})
        with self._lock:
            if self.decider.floors is not None:
                self._view_of.update(views)
                self.decider.floors.invalidate([product.sku])
            self._products[product.sku] = product
            if not product.active:
                return
            self.index.add(ids, vectors)
            self._sku_of.update((i, product.sku) for i in ids.tolist())
            self._ids_of.setdefault(product.sku, []).extend(ids.tolist())
            due = self.adaptation is not None and self.adaptation.added(ids, vectors)
        if due:
            self._refit()

    # ------------------------------------------------------------- enrolment
    def cut_view(self, frame: np.ndarray) -> tuple[int, np.ndarray | None]:
        """An enrolment photo: how many items are on the tray, and (exactly one) the item cut
        out and turned upright exactly as at recognition (else None)."""
        dets = self.detector.detect(frame)
        if len(dets) != 1:
            return len(dets), None
        return 1, dets.crops(frame)[0]

    def _cut_views(self, frames: Sequence[np.ndarray]
                   ) -> tuple[list[np.ndarray | None], list]:
        from kiosk.catalog.enrol import count_problem

        crops, problems = [], []
        for n, frame in enumerate(frames):
            items, crop = self.cut_view(frame)
            crops.append(crop)
            problem = count_problem(n + 1, items)
            if problem is not None:
                problems.append(problem)
        return crops, problems

    def check_enrolment(self, frames: Sequence[np.ndarray], sku: str | None = None):
        """Check tray photos of one product before they are enrolled (:mod:`kiosk.catalog.enrol`):
        exactly one item in each view, views that look like each other, and which existing
        products (other than ``sku``) they are a near-duplicate of.  Returns an
        :class:`kiosk.catalog.enrol.EnrolCheck`; its ``crops`` and ``vectors`` are what an enrolment
        stores, so :meth:`enrol_product` embeds each view once."""
        import cv2

        from kiosk.catalog.enrol import EnrolCheck, problems_from_agreement, view_agreement

        frames = list(frames)
        crops, problems = self._cut_views(frames)
        if problems or not frames:
            return EnrolCheck(len(frames), tuple(problems), (), tuple(crops))
        both = [c for crop in crops for c in (crop, cv2.rotate(crop, cv2.ROTATE_180))]
        emb = self.embedder.embed(both)
        cut, turned = emb.vectors[0::2], emb.vectors[1::2]
        agreement = view_agreement(cut, turned)
        problems = problems_from_agreement(agreement, self.decider.threshold)
        lookalikes = () if problems else self._lookalikes(cut, exclude=sku)
        return EnrolCheck(len(frames), tuple(problems), tuple(lookalikes), tuple(crops),
                          emb.vectors, emb.model_id, agreement)

    def _lookalikes(self, views: np.ndarray, exclude: str | None = None) -> list:
        """Existing products whose gallery some view comes as close to as their own pictures
        are to each other (:func:`kiosk.catalog.enrol.lookalike_floor`), closest first."""
        from kiosk.catalog.enrol import Lookalike, lookalike_floor, usual_similarity

        threshold = self.decider.threshold
        with self._lock:
            if not self.index.n_live:
                return []
            k = min(max(4 * self.decider.k, 20), self.index.n_live)
            nb = self.index.search(np.ascontiguousarray(views, np.float32), k=k)
            best: dict[str, np.ndarray] = {}  # product -> each view's best similarity
            for v in range(len(nb)):
                for gid, s in zip(*nb.row(v)):
                    sku = self._sku_of.get(int(gid))
                    if sku is None or sku == exclude or s < threshold:
                        continue
                    row = best.setdefault(sku, np.full(len(views), -1.0))
                    row[v] = max(row[v], float(s))
            found = []
            for sku, scores in best.items():
                ids = self._ids_of.get(sku, [])
                if not ids:
                    continue
                usual = usual_similarity(self.index.vectors_for(np.asarray(ids, np.int64)))
                floor = lookalike_floor(threshold, usual)
                hits = tuple(int(i) + 1 for i in np.flatnonzero(scores >= floor))
                if hits:
                    found.append((sku, float(scores.max()), usual, hits))
        out = []
        for sku, score, usual, hits in sorted(found, key=lambda f: -f[1]):
            p = self.lookup_product(sku)
            files = tuple(f for _, f in self.catalog.gallery_files(sku))
            out.append(Lookalike(sku, p.name if p else sku, p.price if p else None,
                                 p.currency if p else "CNY", score, usual, hits, files))
        return out

    def enrol(self, sku: str, frames: Sequence[np.ndarray], gallery_dir: Path | None = None,
              *, role: str = "system") -> list[int]:
        """Add views of ``sku`` from tray photos with that product alone on the tray.

        Each frame is segmented like a checkout frame, its one item cut out and turned upright
        (exactly as at recognition), saved as a gallery image and embedded; the product is
        searchable as soon as this returns.  A frame with no item or with several items raises
        :class:`kiosk.catalog.enrol.EnrolRefused` (a ``ValueError`` naming the view) and nothing is
        stored.  (A new product from the staff screen goes through :meth:`enrol_product`,
        which also checks that the views agree and are not a near-duplicate.)
        """
        from kiosk.catalog.enrol import EnrolCheck, EnrolRefused

        frames = list(frames)
        crops, problems = self._cut_views(frames)
        if problems:
            raise EnrolRefused(EnrolCheck(len(frames), tuple(problems), (), tuple(crops)))
        return self.add_crops(sku, crops, gallery_dir, role=role)

    def enrol_product(self, sku: str, name: str, price: int | None,
                      frames: Sequence[np.ndarray], *, barcode: str | None = None,
                      role: str = "staff", confirm_lookalike: bool = False,
                      gallery_dir: Path | None = None) -> list[int]:
        """Create product ``sku`` from tray photos of it alone on the tray, all or nothing.

        :meth:`check_enrolment` first: a view without exactly one item or unlike the others
        raises :class:`kiosk.catalog.enrol.EnrolRefused`; views that are a near-duplicate of an existing
        product raise :class:`kiosk.catalog.enrol.LookalikeNeedsConfirmation` unless staff confirmed
        (``confirm_lookalike``), and a confirmed one is audited as
        ``enrol_lookalike_confirmed``.  Then the product and its views land in one transaction
        and the vector index is saved.  Returns the gallery row ids."""
        from kiosk.catalog.enrol import EnrolRefused, LookalikeNeedsConfirmation

        if self.catalog.get_product(sku) is not None:
            raise ValueError(f"a product with SKU {sku!r} already exists")
        check = self.check_enrolment(frames, sku=sku)
        if not check.ok:
            raise EnrolRefused(check)
        if check.lookalikes and not confirm_lookalike:
            raise LookalikeNeedsConfirmation(check)
        with self.catalog.transaction():  # the product appears with its views or not at all
            self.catalog.add_product(sku, name, price, barcode=barcode, role=role)
            ids = self.add_crops(sku, check.crops, gallery_dir, role=role,
                                 embeddings=Embeddings(check.vectors, check.model_id))
            if check.lookalikes:
                self.catalog.audit(
                    "enrol_lookalike_confirmed", sku, role=role,
                    after={"sku": sku, "name": name,
                           "lookalikes": [l.sku for l in check.lookalikes]},
                    detail="staff confirmed a different product from " + ", ".join(
                        f"{l.sku} {l.name} (similarity {l.score:.3f}, views "
                        f"{', '.join(map(str, l.views))})" for l in check.lookalikes))
        self.save()
        return ids

    def add_crops(self, sku: str, crops: Sequence[np.ndarray], gallery_dir: Path | None = None,
                  half_turns: bool = True, *, role: str = "system",
                  embeddings: Embeddings | None = None,
                  audit_action: str | None = "enrol") -> list[int]:
        """Store upright item crops as gallery images of ``sku`` (files named by content hash).

        An upright crop is only defined up to a half turn (a can lies either way round), so by
        default each crop is stored twice, as cut and turned by 180 degrees.  On the demo
        trays this takes look-alike flavours from 13 to 20 fully right trays out of 20.
        ``embeddings``: those images' embeddings when already computed (in that order: each
        crop, then its half turn), e.g. by :meth:`check_enrolment`.  Which stored file is a
        copy of which view is recorded (``gallery_views``), so that a product's own spread can
        be measured between views.  ``audit_action``: None for a caller that audits itself.
        """
        import hashlib

        import cv2

        copies_of: list[int | None] = [None] * len(crops)
        if half_turns:
            crops = [c for crop in crops for c in (crop, cv2.rotate(crop, cv2.ROTATE_180))]
            copies_of = [None if i % 2 == 0 else i - 1 for i in range(len(crops))]
        folder = Path(gallery_dir or self.catalog.path.parent / "gallery") / sku
        folder.mkdir(parents=True, exist_ok=True)
        files, written = [], []
        try:
            for crop in crops:
                ok, buf = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, 92])
                if not ok:
                    raise ValueError("could not encode a gallery image")
                path = folder / f"{hashlib.sha256(buf.tobytes()).hexdigest()[:16]}.jpg"
                if not path.exists():
                    path.write_bytes(buf.tobytes())
                    written.append(path)
                files.append(path)
            with self.catalog.transaction():
                ids = self.add_images(sku, crops, files, role=role, audit_action=audit_action,
                                      copies_of=copies_of, embeddings=embeddings)
                self.catalog.set_gallery_views(sku, [
                    (f, files[i if src is None else src])
                    for i, (f, src) in enumerate(zip(files, copies_of))])
            return ids
        except BaseException:
            for path in written:  # nothing half-done: no orphan files
                path.unlink(missing_ok=True)
            raise

    def remove_gallery_rows(self, ids: Sequence[int]) -> int:
        """Delete gallery rows (e.g. a learned view taken back); they stop matching as soon as
        the deletion commits (tombstones in the index, nothing re-embedded).  Not audited here:
        the caller audits in its transaction.  Returns how many rows existed."""
        ids = [int(i) for i in ids]
        if not ids:
            return 0
        # the index is told by the catalogue's event once this commits (no engine lock held
        # here: listeners such as the basket may take their own locks)
        return self.catalog.remove_gallery_images(ids)

    def _index_remove(self, ids: list[int]) -> None:
        with self._lock:
            self.index.remove(ids)
            for i in ids:
                sku = self._sku_of.pop(i, None)
                if sku is not None and i in self._ids_of.get(sku, ()):
                    self._ids_of[sku].remove(i)
                    if self.decider.floors is not None:
                        self.decider.floors.invalidate([sku])
            due = self.adaptation is not None and self.adaptation.removed(ids)
            self._refresh_text()
        if due:
            self._refit()

    def vectors_of(self, sku: str) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) of the live gallery rows of ``sku`` in the index."""
        with self._lock:
            ids = np.asarray(self._ids_of.get(sku, []), np.int64)
            if not len(ids):
                return ids, np.zeros((0, self.embedder.dim), np.float32)
            return ids, self.index.vectors_for(ids)

    def remove_product(self, sku: str, *, role: str = "system") -> int:
        """Delete a product and its gallery rows; it stops matching at once (audited)."""
        if self.catalog.get_product(sku) is None:
            raise KeyError(f"no product with SKU {sku!r}")
        live = len(self._ids_of.get(sku, []))
        self.catalog.delete_product(sku, role=role)  # its event takes it out of the index
        return live

    # (price and on/off sale reach the engine as catalogue events, like every other change;
    #  no engine lock is held while the catalogue's listeners run)
    def set_price(self, sku: str, fen: int | None, *, role: str = "system") -> None:
        self.catalog.set_price(sku, fen, role=role)

    def set_active(self, sku: str, active: bool, *, role: str = "system") -> None:
        self.catalog.set_active(sku, active, role=role)

    def reload(self) -> None:
        """Pick up catalogue changes made by another process (e.g. the command line)."""
        with self._lock:
            self.read_missing_text(TEXT_BACKFILL_LIMIT)
            self._sync_index()

    def save(self) -> None:
        with self._lock:
            if self.index.needs_compaction:
                self.index = self.index.compacted()
            if self.index.dirty or not self.index_path.exists():
                self.index.save(self.index_path)

    def add_close_hook(self, fn) -> None:
        """Run ``fn()`` first when the engine closes (e.g. a learner's queue is finished while
        the catalogue and the index are still open)."""
        hooks = self.__dict__.setdefault("_close_hooks", [])
        if fn not in hooks:
            hooks.append(fn)

    def close(self) -> None:
        for fn in self.__dict__.get("_close_hooks", ()):
            try:
                fn()
            except Exception:  # noqa: BLE001 - closing goes on
                log.exception("closing: %r", fn)
        self.__dict__.get("_stop_events", lambda: None)()
        self._text_stop.set()  # background text reading ends after the image it reads
        if not self.wait_for_text(60):
            log.warning("background pack-text reading did not stop")
        self.save()
        self.catalog.close()
        # the index holds every gallery vector (hundreds of MB at 100k): let it go now, not
        # when the engine object is collected (the engine is in reference cycles)
        with self._lock:
            self.index = VectorIndex(self.index.dim, self.index.model_id, kind=self.index.kind)


def _is_half_turn(a: np.ndarray, b: np.ndarray, tol: float = 6.0) -> bool:
    """True when ``b`` is ``a`` turned by 180 degrees (up to JPEG noise)."""
    if a.shape != b.shape:
        return False
    return float(np.mean(np.abs(a[::-1, ::-1].astype(np.int16) - b.astype(np.int16)))) < tol


def model_threshold(embedder: Embedder) -> float:
    """The model's calibrated threshold if its config has one, else the default."""
    from kiosk.decide import DEFAULT_THRESHOLD

    return float(getattr(embedder, "threshold", None) or DEFAULT_THRESHOLD)
