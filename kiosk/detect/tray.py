"""Class-agnostic item segmentation on a fixed tray (the default detector, ``"tray"``).

Pipeline, run at a reduced working resolution (long side ``work_size``, 512 by default):

1. **Tray model.**  A reference image: the calibrated empty tray, or without calibration a flat
   tray colour estimated robustly (median over a border band).  A smooth per-channel gain
   surface (quadratic in x, y) is fitted to ``image / reference`` over cells that look like tray
   (iteratively rejecting outliers), which absorbs global brightness / white-balance drift,
   vignetting and, without calibration, the tray's own shading.
2. **Difference score** per pixel against ``reference * gain``, separating chroma from brightness:
   chroma distance in normalised rgb; *brighter* than the tray is foreground; *darker with the
   same chroma* is treated as shadow unless it is much darker (below ``shadow_ratio``).  Each
   term is scaled by the noise measured on the tray pixels (with a floor), so 1.0 = "surely an
   item".
3. Light blur, hysteresis threshold (seed 1.0, grow 0.6), open/close, fill small holes, connected
   components, drop specks below ``min_area_frac`` of the frame.
4. **Split touching items.**  For a component that is not convex, threshold its distance transform
   at a range of levels; a level whose cores each rise ``h`` above it (an h-maxima test) and
   gives ≥ 2 cores splits the component by nearest core.  A single elongated item (a bottle) has a
   connected ridge, so it stays whole.
5. Boxes, per-item masks and scores (solidity and contrast) at full resolution.

No cap on the number of items, and an empty tray gives no detections.
"""
from __future__ import annotations

import logging
import math

import cv2
import numpy as np

from kiosk.detect.base import Detections

log = logging.getLogger(__name__)

_EPS = 1e-3


def _poly_terms(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Quadratic design matrix for normalised coordinates in [-1, 1]."""
    return np.stack([np.ones_like(xs), xs, ys, xs * xs, xs * ys, ys * ys], axis=-1)


class TraySegmenter:
    """Find every item on a tray by comparing the frame with the (calibrated) empty tray."""

    name = "tray"

    def __init__(
        self,
        background: np.ndarray | None = None,
        *,
        min_area_frac: float = 0.0015,
        max_area_frac: float = 0.9,
        work_size: int = 512,
        shadow_ratio: float = 0.55,
        chroma_floor: float = 0.014,
        bright_floor: float = 0.06,
        noise_k: float = 6.0,
        split: bool = True,
        border_frac: float = 0.04,
    ) -> None:
        """
        background:    the empty tray (BGR uint8), or None to estimate the tray from the border.
        min_area_frac: components smaller than this fraction of the frame are specks.
        max_area_frac: a "component" larger than this is a failed tray model, never an item.
        work_size:     long side of the internal working resolution.
        shadow_ratio:  darker than the tray by more than this factor (same chroma) = an item,
                       not a shadow.
        chroma_floor, bright_floor: smallest chroma distance / relative brightness increase that
                       counts as an item, however clean the image.
        noise_k:       thresholds are at least this many times the tray's own median deviation.
        split:         split touching items with the distance-transform test.
        border_frac:   width of the border band used without calibration.
        """
        self.min_area_frac = float(min_area_frac)
        self.max_area_frac = float(max_area_frac)
        self.work_size = int(work_size)
        self.shadow_ratio = float(shadow_ratio)
        self.chroma_floor = float(chroma_floor)
        self.bright_floor = float(bright_floor)
        self.noise_k = float(noise_k)
        self.split = bool(split)
        self.border_frac = float(border_frac)
        self._background: np.ndarray | None = None
        self._ref_cache: dict[tuple[int, int], np.ndarray] = {}
        self._kernel3 = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
        self._kernel5 = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
        if background is not None:
            self.calibrate(background)

    # ------------------------------------------------------------------ calibration

    @property
    def calibrated(self) -> bool:
        return self._background is not None

    def calibrate(self, background_bgr: np.ndarray | None) -> None:
        """Use ``background_bgr`` (the empty tray, BGR uint8) as the reference; None forgets it."""
        self._ref_cache.clear()
        if background_bgr is None:
            self._background = None
            return
        bg = np.asarray(background_bgr)
        if bg.ndim != 3 or bg.shape[2] != 3:
            raise ValueError(f"background must be an H×W×3 BGR image, got shape {bg.shape}")
        self._background = bg.copy()

    def _work_shape(self, h: int, w: int) -> tuple[int, int]:
        s = min(1.0, self.work_size / max(h, w))
        return max(1, int(round(h * s))), max(1, int(round(w * s)))

    def _reference(self, hs: int, ws: int) -> np.ndarray | None:
        if self._background is None:
            return None
        ref = self._ref_cache.get((hs, ws))
        if ref is None:
            bg = cv2.resize(self._background, (ws, hs), interpolation=cv2.INTER_AREA)
            ref = cv2.GaussianBlur(bg.astype(np.float32), (3, 3), 0) + _EPS
            self._ref_cache[(hs, ws)] = ref
        return ref

    def _border_colour(self, small: np.ndarray) -> np.ndarray:
        h, w = small.shape[:2]
        b = max(2, int(round(min(h, w) * self.border_frac)))
        band = np.concatenate([
            small[:b].reshape(-1, 3), small[-b:].reshape(-1, 3),
            small[b:-b, :b].reshape(-1, 3), small[b:-b, -b:].reshape(-1, 3),
        ])
        return np.median(band, axis=0).astype(np.float32)

    # ------------------------------------------------------------------ tray model

    def _fit_gain(self, small: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Smooth per-channel gain surface ``small ≈ ref * gain`` fitted on tray-like cells.

        Returns the gain at working resolution (H, W, 3) and the inlier mask of the grid cells.
        """
        hs, ws = small.shape[:2]
        gw, gh = max(6, ws // 16), max(6, hs // 16)
        img_g = cv2.resize(small, (gw, gh), interpolation=cv2.INTER_AREA)
        ref_g = cv2.resize(ref, (gw, gh), interpolation=cv2.INTER_AREA) if ref.ndim == 3 \
            else np.broadcast_to(ref, (gh, gw, 3))
        ratio = (img_g / ref_g).reshape(-1, 3).astype(np.float32)
        lr = np.log(np.maximum(ratio.mean(axis=1), _EPS))
        ci = img_g.reshape(-1, 3) / (img_g.reshape(-1, 3).sum(1, keepdims=True) + _EPS)
        cr = ref_g.reshape(-1, 3) / (ref_g.reshape(-1, 3).sum(1, keepdims=True) + _EPS)
        dc = np.linalg.norm(ci - cr, axis=1)
        # start from cells near the typical (median) brightness ratio and chroma
        m = np.median(lr)
        inl = (np.abs(lr - m) < 0.15) & (dc < max(0.02, 3.0 * float(np.median(dc))))
        yy, xx = np.mgrid[0:gh, 0:gw].astype(np.float32)
        a = _poly_terms((xx.ravel() + 0.5) / gw * 2 - 1, (yy.ravel() + 0.5) / gh * 2 - 1)
        coef = None
        for _ in range(4):
            if inl.sum() < 24:
                break
            ai = a[inl]
            # normal equations (6×6): far cheaper than an SVD-based lstsq for this size
            coef = np.linalg.solve(ai.T @ ai + 1e-6 * np.eye(6, dtype=np.float32),
                                   ai.T @ ratio[inl])
            pred = a @ coef
            res = np.abs(ratio / np.maximum(pred, _EPS) - 1.0).max(axis=1)
            mad = float(np.median(res[inl]))
            new = res < max(0.03, 4.5 * mad)
            if (new == inl).all():
                break
            inl = new
        if coef is None:  # nothing tray-like: fall back to the median gain
            gain_g = np.broadcast_to(np.median(ratio, axis=0), (gh, gw, 3)).astype(np.float32)
        else:
            gain_g = (a @ coef).reshape(gh, gw, 3).astype(np.float32)
        gain = cv2.resize(gain_g, (ws, hs), interpolation=cv2.INTER_LINEAR)
        return gain, inl.reshape(gh, gw)

    def score_map(self, image_bgr: np.ndarray) -> np.ndarray:
        """Per-pixel foreground score at working resolution (≥ 1: item)."""
        img = np.asarray(image_bgr)
        if img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"expected an H×W×3 BGR image, got shape {img.shape}")
        h, w = img.shape[:2]
        hs, ws = self._work_shape(h, w)
        small = cv2.resize(img, (ws, hs), interpolation=cv2.INTER_AREA).astype(np.float32)
        ref = self._reference(hs, ws)
        if ref is None:
            ref = np.empty_like(small)
            ref[:] = self._border_colour(small) + _EPS
        gain, inl = self._fit_gain(small, ref)
        model = cv2.multiply(ref, gain)
        # one 3×3 transform gives brightness and two opponent-colour channels
        opp = np.float32([[1, 1, 1], [1, -1, 0], [0, -1, 1]])  # S, B-G, R-G
        oi, om = cv2.transform(small, opp), cv2.transform(model, opp)
        inv_i = 1.0 / (oi[..., 0] + _EPS)
        inv_m = 1.0 / np.maximum(om[..., 0], _EPS)
        r = oi[..., 0] * inv_m
        # chroma: opponent channels normalised by brightness (same for any gain / shadow)
        ci = cv2.multiply(oi, cv2.merge([inv_i, inv_i, inv_i]))
        cm = cv2.multiply(om, cv2.merge([inv_m, inv_m, inv_m]))
        d = cv2.subtract(ci, cm)
        dc = cv2.sqrt(cv2.transform(cv2.multiply(d, d), np.float32([[0, 0.5, 0.5]])))
        # noise on tray pixels (cells that fitted the tray model), with floors
        tray = cv2.resize(inl.astype(np.uint8), (ws, hs), interpolation=cv2.INTER_NEAREST) > 0
        tray_s = tray[::3, ::3]
        if tray_s.sum() > 50:
            nc = float(np.median(dc[::3, ::3][tray_s]))
            nb = float(np.median(np.abs(r[::3, ::3][tray_s] - 1.0)))
        else:
            nc = nb = 0.0
        tc = max(self.chroma_floor, self.noise_k * nc)
        tb = max(self.bright_floor, self.noise_k * nb)
        # dark pixels have unreliable chroma: weigh the chroma term down below ~35 % of tray level
        cw = np.minimum(r, 0.35) * (1.0 / (0.35 * tc))
        score = cv2.max(cv2.multiply(dc, cw), (r - 1.0) * (1.0 / tb))
        # darker, same chroma: a shadow.  Nothing below 25 % darkening, 1.0 at shadow_ratio.
        knee = max(0.75, self.shadow_ratio + 0.05)
        score = cv2.max(score, (knee - r) * (1.0 / (knee - self.shadow_ratio)))
        return cv2.GaussianBlur(score, (5, 5), 0)

    # ------------------------------------------------------------------ detection

    def foreground(self, image_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cleaned foreground mask (uint8 0/1) and score map, both at working resolution."""
        score = self.score_map(image_bgr)
        weak = (score > 0.6).astype(np.uint8)
        n, lab = cv2.connectedComponents(weak, connectivity=8)
        if n > 1:
            strong = score > 1.0
            keep = np.zeros(n, bool)
            keep[lab[strong]] = True
            keep[0] = False
            mask = keep[lab].astype(np.uint8)
        else:
            mask = weak
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, self._kernel3)
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, self._kernel5)
        # fill holes (text, tray-coloured panels) smaller than a few items
        hole_max = 0.02 * mask.size
        contours, hier = cv2.findContours(mask, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
        if hier is not None:
            holes = [c for c, hh in zip(contours, hier[0]) if hh[3] >= 0
                     and cv2.contourArea(c) < hole_max]
            if holes:
                cv2.drawContours(mask, holes, -1, 1, thickness=cv2.FILLED)
        return mask, score

    def detect(self, image: np.ndarray) -> Detections:
        img = np.asarray(image)
        h, w = img.shape[:2]
        mask, score = self.foreground(img)
        hs, ws = mask.shape
        min_area = self.min_area_frac * hs * ws
        n, lab, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        # (x0, y0, bool mask, solidity) at working resolution
        pieces: list[tuple[int, int, np.ndarray, float]] = []
        for k in range(1, n):
            x, y, bw, bh, area = (int(v) for v in stats[k])
            if area < min_area:
                continue
            if area > self.max_area_frac * hs * ws:
                log.warning("tray segmenter: foreground covers %.0f%% of the frame; the tray "
                            "model does not fit this image (recalibrate?) — ignoring it",
                            100.0 * area / (hs * ws))
                continue
            comp = lab[y:y + bh, x:x + bw] == k
            sol, _ = _solidity(comp.astype(np.uint8))
            if not self.split or sol > 0.95:
                pieces.append((x, y, comp, sol))
                continue
            for p in self._split(comp, min_area):
                for q in _split_concave(p, min_area, area):
                    q8 = q.astype(np.uint8)
                    qx, qy, qw, qh = cv2.boundingRect(q8)
                    if qw == 0:
                        continue
                    q = q[qy:qy + qh, qx:qx + qw]
                    pieces.append((x + qx, y + qy, q, _solidity(q8[qy:qy + qh, qx:qx + qw])[0]))
        if not pieces:
            return Detections.empty()
        sx, sy = w / ws, h / hs
        boxes, scores, masks = [], [], []
        for x0, y0, sub, sol in pieces:
            ph, pw = sub.shape
            bx1, by1 = max(0, math.floor(x0 * sx)), max(0, math.floor(y0 * sy))
            bx2, by2 = min(w, math.ceil((x0 + pw) * sx)), min(h, math.ceil((y0 + ph) * sy))
            full = cv2.resize(sub.astype(np.uint8) * 255, (bx2 - bx1, by2 - by1),
                              interpolation=cv2.INTER_LINEAR) > 127
            boxes.append((bx1, by1, bx2, by2))
            masks.append(full)
            # confidence: solidity (items are compact) and contrast against the tray
            contrast = cv2.mean(score[y0:y0 + ph, x0:x0 + pw], mask=sub.astype(np.uint8))[0]
            scores.append(float(np.clip(0.6 * sol + 0.4 * min(1.0, contrast / 3.0), 0.0, 1.0)))
        order = np.lexsort((np.array([b[0] for b in boxes]), np.array([b[1] for b in boxes])))
        return Detections(
            np.asarray(boxes, np.int32)[order],
            np.asarray(scores, np.float32)[order],
            tuple(masks[i] for i in order),
        )

    @staticmethod
    def _split(comp: np.ndarray, min_area: float) -> list[np.ndarray]:
        """Split one connected component into touching items (list of same-size masks)."""
        m8 = np.pad(comp, 1).astype(np.uint8)
        if float(comp.sum()) < 2 * min_area:
            return [comp]
        dt = cv2.distanceTransform(m8, cv2.DIST_L2, 5)
        peak = float(dt.max())
        min_peak = max(4.0, math.sqrt(min_area / math.pi) * 0.6)
        if peak < 2 * min_peak:
            return [comp]
        best, best_n = None, 1
        for frac in (0.3, 0.4, 0.5, 0.6, 0.7):
            t = frac * peak
            cores = (dt > t).astype(np.uint8)
            n, lab = cv2.connectedComponents(cores, connectivity=8)
            if n <= 2:
                continue
            peaks = np.zeros(n, np.float32)
            np.maximum.at(peaks, lab.ravel(), dt.ravel())
            core_area = np.bincount(lab.ravel(), minlength=n)
            h = np.maximum(2.5, 0.2 * peaks)  # h-maxima: a core must rise h above the level
            good = (peaks >= t + h) & (peaks >= min_peak) & (core_area >= 4)
            good[0] = False
            ng = int(good.sum())
            if ng > best_n:
                best_n = ng
                best = np.where(good[lab], lab, 0)
        if best is None:
            return [comp]
        # assign every pixel of the component to its nearest core (Voronoi of the cores)
        src = np.where(best > 0, 0, 255).astype(np.uint8)
        _, vor = cv2.distanceTransformWithLabels(src, cv2.DIST_L2, 5,
                                                 labelType=cv2.DIST_LABEL_CCOMP)
        vor = vor[1:-1, 1:-1]
        out = []
        for v in np.unique(vor[comp]):
            piece = comp & (vor == v)
            # keep the main connected part; stray bits go back to whoever is adjacent (dropped)
            nn, pl, st, _ = cv2.connectedComponentsWithStats(piece.astype(np.uint8), connectivity=8)
            if nn > 2:
                piece = pl == 1 + int(np.argmax(st[1:, cv2.CC_STAT_AREA]))
            out.append(piece)
        if any(p.sum() < min_area for p in out):
            return [comp]
        return out


def _solidity(mask_u8: np.ndarray) -> tuple[float, np.ndarray | None]:
    contours, _ = cv2.findContours(mask_u8, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return 0.0, None
    c = max(contours, key=cv2.contourArea)
    area = float(cv2.countNonZero(mask_u8))
    hull = cv2.contourArea(cv2.convexHull(c))
    return min(1.0, area / max(hull, 1.0)), c


def _ray_end(mask: np.ndarray, p: np.ndarray, d: np.ndarray, max_len: int) -> np.ndarray | None:
    """Last pixel inside ``mask`` marching from ``p`` along unit vector ``d``."""
    h, w = mask.shape
    t = np.arange(2, max_len, dtype=np.float32)
    xs = np.rint(p[0] + d[0] * t).astype(np.int64)
    ys = np.rint(p[1] + d[1] * t).astype(np.int64)
    ok = (xs >= 0) & (xs < w) & (ys >= 0) & (ys < h)
    ok[ok] = mask[ys[ok], xs[ok]] > 0
    stop = int(np.argmin(ok)) if not ok.all() else len(ok)
    if stop == 0:
        return None
    last = np.array([xs[stop - 1], ys[stop - 1]])
    if np.hypot(*(last - p)) < 3:
        return None
    return last


def _split_concave(comp: np.ndarray, min_area: float, whole_area: float,
                   depth: int = 0) -> list[np.ndarray]:
    """Split touching items where the union is L/T-shaped (no distance-transform saddle).

    From each deep convexity defect, try straight cuts continuing the contour on either side of
    the defect, along its bisector, and to the other deep defects.  The best cut is taken when it
    leaves two item-sized pieces that are both nearly convex and clearly more convex than the
    whole; pieces are split again (a chain of items).
    """
    m8 = np.pad(comp, 1).astype(np.uint8)
    area = float(cv2.countNonZero(m8))
    sol, c = _solidity(m8)
    if c is None or sol > 0.95 or depth > 4 or area < 2 * min_area or len(c) < 12:
        return [comp]
    try:
        hull_idx = cv2.convexHull(c, returnPoints=False)
        defects = cv2.convexityDefects(c, hull_idx)
    except cv2.error:
        return [comp]
    if defects is None:
        return [comp]
    min_piece = max(1.5 * min_area, 0.1 * whole_area)
    dmin = max(3.0, 0.08 * math.sqrt(area))
    pts = c[:, 0, :].astype(np.float32)
    n = len(pts)
    dd = defects.reshape(-1, 4)
    dd = dd[dd[:, 3] / 256.0 >= dmin]
    # the few deepest concavities are where items meet
    deep = [int(f) for f in dd[np.argsort(-dd[:, 3])][:4, 2]]
    if not deep:
        return [comp]
    k = max(3, min(8, n // 30))
    max_len = int(2 * max(m8.shape))
    cuts = []
    for i in deep:
        f = pts[i]
        a, b = pts[(i - k) % n], pts[(i + k) % n]
        d1, d2 = f - a, f - b
        n1, n2 = np.hypot(*d1), np.hypot(*d2)
        if n1 < 1e-3 or n2 < 1e-3:
            continue
        d1, d2 = d1 / n1, d2 / n2
        bis = d1 + d2
        dirs = [d1, d2]
        if np.hypot(*bis) > 1e-3:
            dirs.append(bis / np.hypot(*bis))
        for d in dirs:
            q = _ray_end(m8, f, d, max_len)
            if q is not None:
                cuts.append((f.astype(int), q))
        for j in deep:
            if j != i:
                q = pts[j]
                ln = int(np.hypot(*(q - f)))
                if ln < 2:
                    continue
                xs = np.linspace(f[0], q[0], ln + 1).round().astype(int)
                ys = np.linspace(f[1], q[1], ln + 1).round().astype(int)
                if m8[ys, xs].mean() > 0.9:
                    cuts.append((f.astype(int), q.astype(int)))
    best, best_gain = None, 0.04
    for f, q in cuts:
        cut = m8.copy()
        cv2.line(cut, (int(f[0]), int(f[1])), (int(q[0]), int(q[1])), 0, thickness=2)
        nn, lab, st, _ = cv2.connectedComponentsWithStats(cut, connectivity=4)
        big = [j for j in range(1, nn) if st[j, cv2.CC_STAT_AREA] >= 0.03 * area]
        if len(big) != 2:
            continue
        if min(st[j, cv2.CC_STAT_AREA] for j in big) < min_piece:
            continue
        sols = []
        for j in big:
            s_j, _ = _solidity((lab == j).astype(np.uint8))
            sols.append(s_j)
        if min(sols) < 0.86:
            continue
        ws = [st[j, cv2.CC_STAT_AREA] for j in big]
        gain = float(np.average(sols, weights=ws)) - sol
        if gain > best_gain:
            best_gain, best = gain, [lab == j for j in big]
    if best is None:
        return [comp]
    out = []
    for piece in best:
        # give the cut line back to the piece (dilate within the component)
        grown = cv2.dilate(piece.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        piece = (piece | (grown & (m8 > 0)))[1:-1, 1:-1]
        out.extend(_split_concave(piece, min_area, whole_area, depth + 1))
    return out
