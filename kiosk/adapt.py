"""Between retrieve and decide: the store's own adaptation of the similarity.

The model was trained on other products and other cameras.  The catalogue, though, knows which
of its pictures show the same product: the enrolment views and every view learned from a
cashier's answer (:mod:`kiosk.checkout.learn`).  How those pictures of one product differ from
each other (light, angle, the kiosk's own camera against the enrolment photos, a half-turn) is
variation the decision should ignore; what tells two products apart is what is left.

:class:`Adaptation` learns that from the catalogue: the within-class covariance ``S`` of the
gallery's vectors (each centred on its product's mean), shrunk towards the identity
(``S + eps I`` with ``eps = strength x trace(S) / dim``), and compares items through
``(S + eps I)^(-1/2)`` ("within-class covariance normalisation"), re-normalised so the
similarity stays a cosine.  Directions in which one product's pictures vary a lot count less,
so look-alikes (one flavour against another) separate more.  It is a closed-form refit from the
vectors the catalogue already holds: no training, milliseconds for a store's catalogue, and it
follows every learned view (refit after ``refit_every`` new views).

Only the low-rank part is stored: with the eigenvectors ``B`` (k x dim) of ``S`` and eigenvalues
``l``, ``x -> x + ((x B^T) * c) B`` with ``c = sqrt(eps / (l + eps)) - 1`` (the rest of the
space is scaled by a constant, which the normalisation removes).

The index keeps the model's own vectors (no rebuild on a refit): the nearest ``rescore_k``
views by the model's similarity are re-scored in the adapted space, and the decision sees those
scores.  Catalogues larger than ``max_rows`` gallery rows are not adapted (the transformed
copies are kept in memory; see README, "Asking instead of guessing"); above ``FIT_ROWS`` the
fit reads a per-product sample and rows are transformed as searches first meet them.

Measured on the held-out split of ``kiosk split-dev`` (README): recall@1 of known products in a
new session 0.852 -> 0.877, of newly enrolled look-alikes 0.828 -> 0.883 (strength 1).
"""
from __future__ import annotations

import logging
from typing import Sequence

import numpy as np

from kiosk.embed.base import l2_normalize
from kiosk.retrieve import Neighbours

log = logging.getLogger(__name__)

DEFAULT_STRENGTH = 1.0
DEFAULT_REFIT_EVERY = 10
DEFAULT_MAX_ROWS = 20000
DEFAULT_RESCORE_K = 60
# the fit reads at most this many rows (a per-product sample beyond), so a refit takes at most
# 1-5 s on a 2-core host, off the engine's lock (0.1 s for the held-out split's 550 rows)
FIT_ROWS = 1500


def _sample(groups: dict[str, list[int]], n: int, seed: int = 0) -> dict[str, list[int]]:
    """At most ``n`` rows in all, at least two per product kept: the same number from each
    product (its first rows in a seeded shuffle), and a seeded sample of the products when
    even two each are too many."""
    rng = np.random.default_rng(seed)
    keys = sorted(groups)
    if 2 * len(keys) > n:
        keys = sorted(rng.choice(keys, n // 2, replace=False).tolist())
    per = max(2, n // len(keys))
    return {k: sorted(rng.permutation(groups[k])[:per].tolist()) for k in keys}


def _fit_groups(labels: Sequence[str]) -> dict[str, list[int]]:
    """Positions of the rows a fit learns from, by product: every row of each product with
    two or more, or above ``FIT_ROWS`` rows in all a per-product sample of them."""
    groups: dict[str, list[int]] = {}
    for n, sku in enumerate(labels):
        groups.setdefault(sku, []).append(n)
    groups = {k: g for k, g in groups.items() if len(g) >= 2}
    if sum(map(len, groups.values())) > FIT_ROWS:  # a large catalogue: a sample
        groups = _sample(groups, FIT_ROWS)
    return groups


def _apply(x: np.ndarray, basis: np.ndarray, coef: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return l2_normalize(x + ((x @ basis.T) * coef) @ basis)


class Adaptation:
    """The store's within-class normalisation (module docstring).  Not thread-safe: the engine
    calls it under its lock."""

    def __init__(self, strength: float = DEFAULT_STRENGTH,
                 refit_every: int = DEFAULT_REFIT_EVERY, max_rows: int = DEFAULT_MAX_ROWS,
                 rescore_k: int = DEFAULT_RESCORE_K) -> None:
        if not strength > 0:
            raise ValueError("strength must be positive")
        if refit_every < 1 or max_rows < 2 or rescore_k < 1:
            raise ValueError("refit_every, max_rows and rescore_k must be positive")
        self.strength = float(strength)
        self.refit_every = int(refit_every)
        self.max_rows = int(max_rows)
        self.rescore_k = int(rescore_k)
        self._basis: np.ndarray | None = None  # (k, dim) float32
        self._coef: np.ndarray | None = None  # (k,) float32
        self._rows: dict[int, np.ndarray] = {}  # gallery row -> adapted vector
        self._fitted: frozenset[int] = frozenset()  # the rows the fit learned from
        self._pending = 0  # views added or removed since the last fit
        self.fits = 0

    @classmethod
    def from_settings(cls, recognition=None, *, adapt: bool | None = None,
                      strength: float | None = None) -> "Adaptation | None":
        """The adaptation the ``[recognition]`` settings ask for (``recognition``: that
        section, default its defaults; ``adapt`` / ``strength``, when given, override its
        ``adapt`` / ``adapt_strength``); None when it is off."""
        if recognition is None:
            from kiosk.settings import RecognitionSettings

            recognition = RecognitionSettings()
        if not (adapt if adapt is not None else recognition.adapt):
            return None
        return cls(strength if strength is not None else recognition.adapt_strength)

    # ------------------------------------------------------------------ state
    @property
    def active(self) -> bool:
        return self._basis is not None

    def fit(self, ids: np.ndarray, vectors: np.ndarray, labels: Sequence[str]) -> bool:
        """Learn from the live gallery rows ``ids`` (their model ``vectors``, product
        ``labels``); returns whether the adaptation is active (it is not with fewer than two
        products having two rows each, or more than ``max_rows`` rows).  The same as
        :meth:`install` of :meth:`solve`."""
        return self.install(self.solve(ids, vectors, labels))

    def solve(self, ids: np.ndarray, vectors: np.ndarray, labels: Sequence[str]) -> dict:
        """The fit of :meth:`fit`, without changing this adaptation (the engine solves off its
        lock, then installs under it)."""
        ids = np.asarray(ids, np.int64)
        if len(ids) > self.max_rows:
            log.info("store adaptation off: %d gallery rows (more than %d)", len(ids),
                     self.max_rows)
            return {}
        v = np.asarray(vectors, np.float32)
        groups = _fit_groups(labels)
        if len(groups) < 2:
            return {}
        fitted = frozenset(ids[np.concatenate(list(groups.values()))].tolist())
        x = np.concatenate([v[g] - v[g].mean(axis=0) for g in groups.values()]
                           ).astype(np.float64)
        if len(x) <= x.shape[1]:  # few rows: from their Gram matrix (N x N, the fastest)
            gram, u = np.linalg.eigh(x @ x.T)
            gram, u = gram[::-1], u[:, ::-1]
            pos = gram > max(gram.max(), 0.0) * 1e-9
            gram, u = gram[pos], u[:, pos]
            basis = (u.T @ x) / np.sqrt(gram)[:, None]  # the right singular vectors
            lam = gram / len(x)
        else:  # many rows: from the covariance
            lam, vecs = np.linalg.eigh(x.T @ x / len(x))
            lam, basis = lam[::-1], vecs[:, ::-1].T
        keep = lam > max(lam.max(), 0.0) * 1e-9
        if not keep.any():
            return {}
        eps = self.strength * lam[lam > 0].sum() / v.shape[1]
        fit = {"basis": basis[keep].astype(np.float32),
               "coef": (np.sqrt(eps / (lam[keep] + eps)) - 1.0).astype(np.float32),
               "fitted": fitted}
        if len(ids) <= FIT_ROWS:  # a store's catalogue: every row at once
            fit["rows"] = dict(zip(ids.tolist(), _apply(v, fit["basis"], fit["coef"])))
        return fit  # (else rows are transformed as searches first meet them)

    def fit_sample(self, ids: np.ndarray, labels: Sequence[str]
                   ) -> tuple[np.ndarray, list[str]]:
        """The rows (ids, labels) a fit of a catalogue of more than ``FIT_ROWS`` rows reads:
        its per-product sample, so that only those vectors need reading (all rows otherwise).
        A fit of the sample is the fit of the whole catalogue."""
        ids = np.asarray(ids, np.int64)
        if len(ids) <= FIT_ROWS:
            return ids, list(labels)
        pick = np.sort(np.concatenate(list(_fit_groups(labels).values())
                                      or [np.zeros(0, np.int64)])).astype(np.int64)
        return ids[pick], [labels[i] for i in pick.tolist()]

    def install(self, fit: dict) -> bool:
        """Take a :meth:`solve` result (empty: off); returns whether the adaptation is active.
        Rows added since the solve are transformed when first searched."""
        self._pending = 0
        self._basis = fit.get("basis")
        self._coef = fit.get("coef")
        self._rows = dict(fit.get("rows", {}))
        self._fitted = frozenset(fit.get("fitted", ()))
        if self._basis is None:
            return False
        self.fits += 1
        return True

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Model vectors (N, dim) -> adapted, L2-normalised vectors (unchanged when inactive)."""
        x = np.asarray(x, np.float32)
        if self._basis is None:
            return l2_normalize(x)
        return _apply(x, self._basis, self._coef)

    def added(self, ids: np.ndarray, vectors: np.ndarray) -> bool:
        """New live rows; returns True when a refit is due."""
        if self._basis is not None:
            self._rows.update(zip(np.asarray(ids, np.int64).tolist(), self.transform(vectors)))
        self._pending += len(ids)
        return self._pending >= self.refit_every

    def removed(self, ids: Sequence[int]) -> bool:
        """Rows taken out; returns True when a refit is due: at once, when the fit had learned
        from any of them (a wrong answer undone must stop weighing; in a large catalogue, a
        row of the fit's sample whether or not a search has met it since)."""
        ids = [int(i) for i in ids]
        for i in ids:
            self._rows.pop(i, None)
        self._pending += len(ids)
        learned = any(i in self._fitted for i in ids)
        return learned or self._pending >= self.refit_every

    def vectors_of(self, ids: Sequence[int], fallback) -> np.ndarray:
        """Adapted vectors of gallery rows; ``fallback(ids)`` gives model vectors of rows not
        cached (then transformed and cached)."""
        ids = [int(i) for i in ids]
        missing = [i for i in ids if i not in self._rows]
        if missing:
            self._rows.update(zip(missing, self.transform(fallback(np.asarray(missing,
                                                                              np.int64)))))
        if not ids:
            return np.zeros((0, 0 if self._basis is None else self._basis.shape[1]),
                            np.float32)
        return np.stack([self._rows[i] for i in ids])

    # ----------------------------------------------------------------- search
    def rescore(self, queries: np.ndarray, nb: Neighbours, fallback) -> Neighbours:
        """Re-score the model's nearest rows ``nb`` of the (model, L2-normalised) ``queries``
        in the adapted space, each row sorted best first (-1 ids stay last); the model's own
        scores ride along (``model_scores``: per-product thresholds are on those)."""
        q = self.transform(queries)
        valid = nb.ids >= 0
        if not valid.any():
            return Neighbours(nb.ids.copy(), nb.scores.copy(), nb.scores.copy())
        rows = np.unique(nb.ids[valid])  # sorted: one look-up for every query's rows
        adapted = self.vectors_of(rows, fallback)
        col = np.searchsorted(rows, np.where(valid, nb.ids, rows[0]))
        # every query against every row met (one product of small matrices), then each
        # query's own rows picked out: no (queries x k x dim) copy of the rows
        s = np.take_along_axis(q @ adapted.T, col, axis=1)
        s = np.where(valid, s, -np.inf).astype(np.float32)
        order = np.argsort(-s, axis=1, kind="stable")  # -inf (no row) stays last
        ids = np.take_along_axis(np.where(valid, nb.ids, -1), order, axis=1)
        scores = np.take_along_axis(s, order, axis=1)
        model = np.take_along_axis(np.where(valid, nb.scores, -np.inf), order, axis=1)
        return Neighbours(ids, scores, model)


def search(index, vectors: np.ndarray, k: int, adaptation: Adaptation | None) -> Neighbours:
    """The ``k`` nearest rows of ``index`` for (L2-normalised) ``vectors``: by the model's
    similarity, or, with an active ``adaptation``, the best ``k`` in the adapted space of the
    nearest ``max(k, rescore_k)`` by the model."""
    if adaptation is None or not adaptation.active:
        return index.search(vectors, k=k)
    nb = index.search(vectors, k=min(max(k, adaptation.rescore_k), max(index.n_live, 1)))
    out = adaptation.rescore(vectors, nb, index.vectors_for)
    return Neighbours(out.ids[:, :k], out.scores[:, :k], out.model_scores[:, :k])

