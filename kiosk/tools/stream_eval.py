"""``kiosk eval-stream``: a kiosk's day replayed, item by item, with or without learning.

A fresh catalogue is built from a gallery list in a temporary folder (each label a product,
each given its own price, so look-alikes never share one); then every query image is presented
once, in an order shuffled by the seed, as one item through the checkout's decision: the
engine's decision (and with ``text`` the pack read as the kiosk reads it), then the session's
"ask instead of guessing" rule (:func:`kiosk.pipeline.price_rivals`): the per-item stages of the
kiosk's one recognition path (:mod:`kiosk.pipeline`).  Each item ends as

* ``ok``: accepted as its right product;
* ``silent``: accepted as a wrong product (a wrong charge nobody is told about);
* ``cashier``: unknown or unsure, sent to the cashier, who answers with the true product (a
  product not in the catalogue: "not in the catalogue", nothing learned).

With ``learn="cashier"`` every cashier answer goes through the kiosk's own
:class:`kiosk.checkout.learn.Learner` under the ``[learning]`` settings (as the checkout session's
``on_answer``); ``learn="all"``: items accepted are learned too, as charged (as
``learn_paid_items`` does at the kiosk, under its ``paid_min_margin``: a wrong charge whose
pictures were clear is learned too).  Time runs at
``SECONDS_PER_ITEM`` per item for the learner's per-hour flood limit (one cashier).

The query images are embedded in batches first (an embedding does not depend on the gallery),
then decided one by one against the gallery as it stands at that moment.
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from kiosk.catalog.gallery_io import parse_gallery_list
from kiosk.images import load_image

LEARN_MODES = ("none", "cashier", "all")
SECONDS_PER_ITEM = 20.0  # a busy kiosk: three items a minute
CASHIER_ID = "EVAL"
OUTCOMES = ("ok", "silent", "cashier")


def item_outcome(engine, d, label: str, accept_same_price: bool = True) -> tuple[str, str | None]:
    """(outcome, charged sku or None) of an item decided ``d`` whose true product is
    ``label``, by the checkout session's rule."""
    from kiosk.pipeline import price_rivals

    if d.unknown or d.sku is None:
        return "cashier", None
    p = engine.lookup_product(d.sku)
    if p is None or p.price is None:
        return "cashier", None
    unsure, _same, _rivals, _ = price_rivals(d, p, engine, accept_same_price)
    if unsure:
        return "cashier", None
    return ("ok" if d.sku == label else "silent"), d.sku


def _item(entry, outcome: str, charged: str | None, d) -> dict:
    """One item of the replay, as ``details`` and ``kiosk eval-stream --items`` give it: its
    true product, outcome and charge, and what the decision saw (its first product, that
    product's similarity and margin over the next; None where there was none)."""
    margin = float(d.margin) if d.best is not None and np.isfinite(d.margin) else None
    return {"label": entry.label, "outcome": outcome, "charged": charged,
            "first": d.best.sku if d.best is not None else None,
            "score": round(float(d.score), 4) if d.best is not None else None,
            "margin": round(margin, 4) if margin is not None else None,
            "path": str(entry.path)}


def _rates(outcomes: Sequence[str]) -> dict:
    n = len(outcomes)
    return {f"{o}_rate": (round(sum(1 for x in outcomes if x == o) / n, 4) if n else 0.0)
            for o in OUTCOMES}


def run_stream(embedder, gallery_list: str | Path, query_lists: Sequence[str | Path], *,
               learn: str = "none", seed: int = 0, text_reader=None, settings=None,
               unsure_margin: float | None = None, threshold: float | None = None,
               product_floor: float | None = None, adapt: bool | None = None,
               progress: Callable[[str, int, int], None] | None = None,
               details: bool = False) -> dict:
    """The replay (see the module docstring); returns the report dict (with ``details``: also
    ``items``, one dict per item in stream order: see :func:`_item`)."""
    from kiosk.assemble import open_engine
    from kiosk.tools.evaluate import embed_files
    from kiosk.checkout.learn import LearnPolicy, Learner
    from kiosk.settings import Settings
    from kiosk.tools.tray_eval import build_eval_catalog

    if learn not in LEARN_MODES:
        raise ValueError(f"learn must be one of {', '.join(LEARN_MODES)}")
    settings = settings if settings is not None else Settings()
    entries = [e for q in query_lists for e in parse_gallery_list(q)]
    if not entries:
        raise ValueError("no query images")
    order = np.random.default_rng(seed).permutation(len(entries))
    entries = [entries[i] for i in order]

    def tick(stage: str, done: int, total: int) -> None:
        if progress:
            progress(stage, done, total)

    with tempfile.TemporaryDirectory(prefix="kiosk-eval-stream-") as tmp:
        db = build_eval_catalog(Path(tmp) / "catalog.db", gallery_list, embedder,
                                progress=progress)
        from kiosk.catalog import Catalog

        with Catalog(db) as catalog:  # every product its own price: no same-price look-alikes
            for n, p in enumerate(sorted(catalog.list_products(active_only=False),
                                         key=lambda p: p.sku)):
                catalog.set_price(p.sku, 100 + n)
        if unsure_margin is None:
            unsure_margin = float(settings.checkout.unsure_margin)
        if threshold is None:
            threshold = settings.recognition.threshold
        if product_floor is None:
            product_floor = settings.checkout.product_floor
        adapt_kw = {} if adapt is None else {"adapt": adapt}
        engine = open_engine(db, settings, embedder=embedder, threshold=threshold,
                             unsure_margin=unsure_margin, product_floor=product_floor,
                             text_reader=text_reader, text_backfill_limit=10 ** 9, **adapt_kw)
        try:
            known = {p.sku for p in engine.catalog.list_products(active_only=False)}
            learner = None
            sim_t = [1.0e9]
            if learn != "none":
                policy = LearnPolicy.from_settings(settings)
                if learn == "cashier":
                    policy = replace(policy, cashier_answers=True)
                else:
                    policy = replace(policy, cashier_answers=True, paid_items=True)
                learner = Learner(engine, policy, gallery_dir=Path(tmp) / "gallery",
                                  clock=lambda: sim_t[0])
            t_start = time.perf_counter()
            vectors = embed_files(embedder, [e.path for e in entries],
                                  progress=lambda d, t: tick("embed", d, t)).vectors
            outcomes: list[str] = []
            items = []
            added = 0
            for i, (entry, v) in enumerate(zip(entries, vectors)):
                sim_t[0] += SECONDS_PER_ITEM
                d = engine.decide_vectors(v[None])[0]
                image = None
                if text_reader is not None and engine.wants_text(d):
                    image = load_image(entry.path)
                    d = engine.read_and_refine(image, d)
                outcome, charged = item_outcome(engine, d, entry.label)
                outcomes.append(outcome)
                items.append(_item(entry, outcome, charged, d))
                if learner is not None:
                    if outcome == "cashier" and entry.label in known:
                        sku, source = entry.label, "cashier"
                    elif outcome != "cashier" and learn == "all":
                        sku, source = charged, "paid"
                    else:
                        sku = None
                    if sku is not None:
                        image = image if image is not None else load_image(entry.path)
                        r = learner(image, sku, cashier=CASHIER_ID if source == "cashier"
                                    else None, source=source, decision=d)
                        added += r.status == "added"
                tick("stream", i + 1, len(entries))
            elapsed = time.perf_counter() - t_start
            n = len(outcomes)
            last = outcomes[n - max(1, n // 5):]
            report = {"n": n, **_rates(outcomes), "last_fifth": {"n": len(last), **_rates(last)},
                      "views_added": added,
                      "ms_per_item": round(1e3 * elapsed / n, 2),
                      "learn": learn, "seed": seed, "unsure_margin": unsure_margin, "product_floor": product_floor,
                      "threshold": engine.decider.threshold, "text": text_reader is not None,
                      "adapt": engine.adaptation is not None}
            if details:
                report["items"] = items
            return report
        finally:
            engine.close()
