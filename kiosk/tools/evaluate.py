"""Retrieval evaluation on PaddleClas-style gallery/query lists (``kiosk eval``).

Each query image is embedded whole, as one item.  Ranking metrics (recall@k, mAP) use the
exact similarity to every gallery image; the operating-point metrics (accuracy and the two
reject rates) go through the same HNSW index and the same retrieve-and-decide stage as every
item at the kiosk (:func:`kiosk.pipeline.retrieve_and_decide`, and with pack text
:func:`kiosk.pipeline.refine_with_words`), with the store's adaptation of the similarity
(:mod:`kiosk.adapt`, fitted on the gallery) when one is given.

When the queries include products that are not in the gallery, ``open_set`` says how well any
single cut-off could send those to the cashier while charging the others: by the winner's
similarity (a threshold) and by its margin over the next product (an unsure margin), the share
of catalogue products' queries sent away to catch 90 % of the others, and the share of the
others caught when 5 % of the catalogue's queries are sent away (:func:`open_set_tradeoff`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from kiosk.decide import Decider
from kiosk.embed import Embedder, Embeddings
from kiosk.retrieve import VectorIndex


@dataclass(frozen=True)
class EvalReport:
    model_id: str
    n_gallery: int
    n_queries: int
    n_unknown_queries: int
    recall_at_1: float
    recall_at_5: float
    mAP: float
    threshold: float
    accuracy: float
    false_reject_rate: float
    unknown_reject_rate: float | None
    # with a text reader: the share of queries whose pack was read, and the accuracy the
    # pictures alone gave (``accuracy`` is then with the pack text)
    text_read_rate: float | None = None
    accuracy_without_text: float | None = None
    # the decision's first candidate, threshold aside (the picture alone: its soft vote)
    top1: float | None = None
    top1_without_text: float | None = None
    adapted: bool = False  # the store's adaptation of the similarity (kiosk.adapt) was used
    # with unknown queries: {"by_score": ..., "by_margin": ...} of open_set_tradeoff
    open_set: dict | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def embed_files(embedder: Embedder, paths: Sequence[Path], batch: int = 32,
                progress: Callable[[int, int], None] | None = None) -> Embeddings:
    from kiosk.images import load_image

    chunks = []
    for start in range(0, len(paths), batch):
        images = [load_image(p) for p in paths[start:start + batch]]
        chunks.append(embedder.embed(images).vectors)
        if progress:
            progress(min(start + batch, len(paths)), len(paths))
    vecs = np.concatenate(chunks) if chunks else np.zeros((0, embedder.dim), np.float32)
    return Embeddings(vecs, embedder.model_id)


def ranking_metrics(sims: np.ndarray, g_labels: np.ndarray, q_labels: np.ndarray,
                    ks=(1, 5)) -> dict:
    """recall@k and mAP over queries whose label is in the gallery."""
    order = np.argsort(-sims, axis=1, kind="stable")
    rel = g_labels[order] == q_labels[:, None]  # (Q, G) relevance in rank order
    has = rel.any(axis=1)
    rel = rel[has]
    out = {f"recall_at_{k}": float(rel[:, :k].any(axis=1).mean()) if len(rel) else 0.0
           for k in ks}
    if len(rel):
        hits = np.cumsum(rel, axis=1)
        ranks = np.arange(1, rel.shape[1] + 1)
        ap = (rel * hits / ranks).sum(axis=1) / rel.sum(axis=1)
        out["mAP"] = float(ap.mean())
    else:
        out["mAP"] = 0.0
    return out


OPEN_SET_CATCH = 0.9  # the share of never-enrolled queries to send to the cashier
OPEN_SET_FALSE_REJECT = 0.05  # the share of catalogue queries a store might send there


def open_set_tradeoff(known: Sequence[float], unknown: Sequence[float],
                      catch: float = OPEN_SET_CATCH,
                      false_reject: float = OPEN_SET_FALSE_REJECT) -> dict:
    """How one cut-off on a score (higher: surer) separates queries of catalogue products
    (``known``) from those of products not in it (``unknown``), both sent away when at or under
    it: ``known_sent_away`` at the lowest cut-off that sends away at least ``catch`` of the
    unknown ones, and ``unknown_caught`` at the highest that sends away at most
    ``false_reject`` of the known ones.  Empty when either list is."""
    k = np.sort(np.asarray(known, np.float64))
    u = np.sort(np.asarray(unknown, np.float64))
    if not len(k) or not len(u):
        return {}
    cut = u[int(np.ceil(catch * len(u))) - 1]  # at or under it: at least `catch` of u
    n_away = int(np.floor(false_reject * len(k)))  # how many known may go
    # the highest cut-off sending away at most n_away known ones: just under the next known
    cut_k = k[n_away] if n_away < len(k) else np.inf
    return {"known_sent_away": round(float((k <= cut).mean()), 4),
            "unknown_caught": round(float((u < cut_k).mean()), 4)}


def _open_set(decisions: Sequence, known: np.ndarray) -> dict | None:
    if known.all() or not known.any():
        return None
    score = np.array([d.best.score if d.best else -np.inf for d in decisions])
    margin = np.array([min(d.margin, 2.0) if d.best else -np.inf for d in decisions])
    return {"catch": OPEN_SET_CATCH, "false_reject": OPEN_SET_FALSE_REJECT,
            "by_score": open_set_tradeoff(score[known], score[~known]),
            "by_margin": open_set_tradeoff(margin[known], margin[~known])}


def evaluate_embeddings(g: Embeddings, g_labels: Sequence[str], q: Embeddings,
                        q_labels: Sequence[str], decider: Decider, text=None,
                        adaptation=None) -> EvalReport:
    """``text``: optional (profiles, read) where ``profiles`` is a :class:`kiosk.text.
    TextProfiles` of the gallery's products and ``read(i)`` the words read on query ``i``
    (called only for queries whose close candidates include a product with text).
    ``adaptation``: a :class:`kiosk.adapt.Adaptation`, fitted here on the gallery, through
    which the decisions and the ranking are scored (as at the kiosk); inactive when the gallery
    cannot fit one (fewer than two products with two views)."""
    from kiosk.pipeline import refine_with_words, retrieve_and_decide

    g_labels = np.asarray(g_labels, dtype=object)
    q_labels = np.asarray(q_labels, dtype=object)
    ids = np.arange(len(g_labels), dtype=np.int64)
    if adaptation is not None and not adaptation.fit(ids, g.vectors, g_labels.tolist()):
        adaptation = None
    if adaptation is not None:
        sims = adaptation.transform(q.vectors) @ adaptation.transform(g.vectors).T
    else:
        sims = q.vectors @ g.vectors.T
    rank = ranking_metrics(sims, g_labels, q_labels)

    index = VectorIndex(g.dim, g.model_id)
    index.add(ids, g.vectors)
    sku_of = dict(zip(ids.tolist(), g_labels.tolist()))
    decisions = retrieve_and_decide(index, sku_of, decider, q.vectors,
                                    len(set(g_labels.tolist())), adaptation=adaptation)
    known = np.isin(q_labels, np.unique(g_labels))
    text_extra = {}
    if text is not None:
        profiles, read = text
        plain = np.array([d.sku for d in decisions], dtype=object)
        plain_top = np.array([d.best.sku if d.best else None for d in decisions], dtype=object)
        n_read = 0
        for i, d in enumerate(decisions):
            close = decider.text_contenders(d)
            if any(profiles.has(c.sku) for c in close):
                words = read(i)
                n_read += 1
                decisions[i] = refine_with_words(decider, profiles, d, words)
        text_extra = {
            "text_read_rate": n_read / len(decisions) if decisions else 0.0,
            "accuracy_without_text": float((plain[known] == q_labels[known]).mean())
            if known.any() else 0.0,
            "top1_without_text": float((plain_top[known] == q_labels[known]).mean())
            if known.any() else 0.0}
    top = np.array([d.best.sku if d.best else None for d in decisions], dtype=object)
    text_extra["top1"] = float((top[known] == q_labels[known]).mean()) if known.any() else 0.0

    called = np.array([d.sku for d in decisions], dtype=object)
    rejected = np.array([d.unknown for d in decisions])
    n_known = int(known.sum())
    n_unknown = int((~known).sum())
    return EvalReport(
        model_id=g.model_id,
        n_gallery=len(g_labels),
        n_queries=len(q_labels),
        n_unknown_queries=n_unknown,
        **rank,
        threshold=decider.threshold,
        accuracy=float((called[known] == q_labels[known]).mean()) if n_known else 0.0,
        false_reject_rate=float(rejected[known].mean()) if n_known else 0.0,
        unknown_reject_rate=float(rejected[~known].mean()) if n_unknown else None,
        adapted=adaptation is not None,
        open_set=_open_set(decisions, known),
        **text_extra,
    )


def evaluate_lists(embedder: Embedder, gallery_list: Path, query_list: Path | Sequence[Path],
                   decider: Decider, progress=None, text_reader=None,
                   adaptation=None) -> EvalReport:
    """``query_list``: one list, or several taken together.  With ``text_reader`` the gallery
    images' pack text is read (as an enrolment would) and queries whose close candidates have
    text are read and re-ranked as the kiosk does.  ``adaptation``: see
    :func:`evaluate_embeddings`."""
    from kiosk.catalog.gallery_io import parse_gallery_list
    from kiosk.images import load_image

    g_entries = parse_gallery_list(gallery_list)
    lists = [query_list] if isinstance(query_list, (str, Path)) else list(query_list)
    q_entries = [e for lst in lists for e in parse_gallery_list(lst)]
    g = embed_files(embedder, [e.path for e in g_entries], progress=progress)
    q = embed_files(embedder, [e.path for e in q_entries], progress=progress)
    text = None
    if text_reader is not None:
        from kiosk.text import TextProfiles

        views: dict[str, list] = {}
        for n, e in enumerate(g_entries):
            views.setdefault(e.label, []).append(text_reader.read(load_image(e.path)).words)
            if progress:
                progress(n + 1, len(g_entries))
        profiles = TextProfiles(views, n_products=len(views))
        text = (profiles, lambda i: text_reader.read(load_image(q_entries[i].path)).words)
    return evaluate_embeddings(g, [e.label for e in g_entries], q,
                               [e.label for e in q_entries], decider, text, adaptation)
