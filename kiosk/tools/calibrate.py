"""``kiosk calibrate``: the operating point from the catalogue's own views.

The unsure margin trades silent wrong charges against calls for the cashier.  This module
replays the catalogue's own gallery against itself, through the checkout's decision and its
"ask instead of guessing" rule (:func:`kiosk.checkout.session.price_rivals`), for a range of margins:

* **leave one view out** (products with at least two views): each view, its half-turned copy
  set aside too (``gallery_views``), is an item of a known product: ``ok``, ``silent`` (charged
  as another product) or ``cashier``;
* **leave one product out**: each view with its whole product set aside is a product the
  catalogue does not have: sent to the cashier, or charged silently as a look-alike.

The same for per-product thresholds (:class:`kiosk.decide.ProductFloors`: a product is only
called above its own usual similarity less an offset).  The operating point chosen is the one
with the lowest expected cashier rate among those whose expected silent rate (leave one view
out) is at most the target.  A large catalogue is sampled (2,000 views).  The catalogue's views are usually cleaner
than a day at the till (several views of one enrolment session), so the expected rates are a
floor: ``kiosk eval-stream`` measures the real thing on held-out photos.  For that reason the
margin chosen is never below ``min_margin`` (the kiosk's default, 0.05): on the held-out split
of ``kiosk split-dev`` the catalogue's own views, replayed, asked for 0.01, at which the stream
of new photos is charged wrongly 7.6 % of the time without learning (3.7 % at 0.03, 1.8 % at
0.05; README, "Asking instead of guessing").  A catalogue may still call for a larger one.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

DEFAULT_MARGINS = tuple(round(x, 3) for x in np.arange(0.0, 0.2001, 0.005))
# per-product threshold offsets tried (None: the global threshold only)
DEFAULT_FLOORS = (None, 0.1, 0.05, 0.0)


def _outcomes(engine, decisions, labels, margin: float) -> list[str]:
    from kiosk.pipeline import price_rivals

    out = []
    old = engine.decider.unsure_margin
    engine.decider.unsure_margin = margin
    try:
        for d, label in zip(decisions, labels):
            if d.unknown or d.sku is None:
                out.append("cashier")
                continue
            d = replace(d, unsure=d.margin < margin)
            p = engine.lookup_product(d.sku)
            unsure = price_rivals(d, p, engine, True)[0] if p is not None else True
            if unsure or p is None or p.price is None:
                out.append("cashier")
            else:
                out.append("ok" if d.sku == label else "silent")
    finally:
        engine.decider.unsure_margin = old
    return out


def _rates(out: list[str]) -> dict:
    n = len(out)
    return {f"{k}_rate": round(out.count(k) / n, 4) if n else 0.0
            for k in ("ok", "silent", "cashier")}


def replay_views(engine, chunk: int = 256, max_views: int | None = 2000, seed: int = 0):
    """Decisions for each source view of the catalogue with its own view set aside (leave one
    view out) and with its whole product set aside (leave one product out).  Returns
    (labels, loo_view decisions, loo_product decisions, has_other_views).

    With the store's adaptation (:mod:`kiosk.adapt`) the decisions are by the adapted
    similarity, as at the till, but the adaptation is refit here on every other view of each
    product and only the other views are replayed: an adaptation that learned from a view
    makes it look closer to its product than any new picture will."""
    from kiosk.adapt import Adaptation

    with engine._lock:
        sku_of = dict(engine._sku_of)
        ids = np.asarray(sorted(sku_of), np.int64)
        raw = engine.index.vectors_for(ids) if len(ids) else np.zeros((0, 1), np.float32)
    view_of = engine.catalog.gallery_view_of(engine.embedder.model_id)
    group = [(sku_of[i], view_of.get(i, str(i))) for i in ids.tolist()]
    groups: dict[tuple, list[int]] = {}
    for n, g in enumerate(group):
        groups.setdefault(g, []).append(n)
    views_of_sku: dict[str, int] = {}
    for sku, _ in groups:
        views_of_sku[sku] = views_of_sku.get(sku, 0) + 1
    sources = [rows[0] for rows in groups.values()]
    vectors = raw
    adaptation = engine.adaptation
    if adaptation is not None and adaptation.active:
        seen: dict[str, int] = {}
        fit_groups = set()
        for g in groups:  # every other view of each product (in catalogue order)
            if seen.get(g[0], 0) % 2 == 0:
                fit_groups.add(g)
            seen[g[0]] = seen.get(g[0], 0) + 1
        fit_rows = [n for n, g in enumerate(group) if g in fit_groups]
        held = Adaptation(adaptation.strength, max_rows=adaptation.max_rows)
        if held.fit(ids[fit_rows], raw[fit_rows], [group[n][0] for n in fit_rows]):
            vectors = held.transform(raw)
            sources = [r for r in sources if group[r] not in fit_groups]
    if max_views is not None and len(sources) > max_views:  # a large catalogue: a sample
        pick = np.random.default_rng(seed).choice(len(sources), max_views, replace=False)
        sources = [sources[i] for i in sorted(pick)]
    number = {g: n for n, g in enumerate(groups)}
    gid = np.asarray([number[g] for g in group])
    skus = np.asarray([g[0] for g in group], dtype=object)
    k = engine.decider.search_k
    labels, by_view, by_product, has_other = [], [], [], []
    for start in range(0, len(sources), chunk):
        rows = sources[start:start + chunk]
        sims = vectors[rows] @ vectors.T
        model_sims = sims if vectors is raw else raw[rows] @ raw.T
        for r, s, ms in zip(rows, sims, model_sims):
            label = skus[r]
            labels.append(label)
            has_other.append(views_of_sku[label] >= 2)
            for mask, out in ((gid == gid[r], by_view), (skus == label, by_product)):
                s2 = np.where(mask, -np.inf, s)
                top = np.argpartition(-s2, min(k, len(s2) - 1))[:k]
                top = top[np.argsort(-s2[top])]
                top = top[np.isfinite(s2[top])]
                out.append(engine.decider.decide_one(ids[top], s2[top], sku_of, ms[top]))
    return labels, by_view, by_product, has_other


def calibrate(engine, silent_rate: float = 0.01, margins=DEFAULT_MARGINS,
              floors=DEFAULT_FLOORS, min_margin: float | None = None) -> dict:
    """The operating point (unsure margin, per-product threshold offset or None for none)
    with the lowest expected cashier rate among those whose expected silent rate is at most
    ``silent_rate`` (see the module docstring); without one, the lowest silent rate.  Margins
    below ``min_margin`` (None: the ``[checkout]`` default) are measured but never chosen.
    With the expected rates of every pair tried (``table``)."""
    from kiosk.decide import ProductFloors
    from kiosk.settings import CheckoutSettings

    if not 0 <= silent_rate < 1:
        raise ValueError("silent rate must be in [0, 1)")
    if min_margin is None:
        min_margin = float(CheckoutSettings().unsure_margin)
    if not 0 <= min_margin <= max(margins):
        raise ValueError(f"min_margin must be in [0, {max(margins)}]")
    decider = engine.decider
    saved = decider.product_floor, decider.floors
    table = []
    try:
        for delta in floors:
            decider.product_floor = delta
            decider.floors = None if delta is None else ProductFloors(delta, engine._floor_views)
            if delta is not None and not engine._view_of:
                engine._view_of = engine.catalog.gallery_view_of(engine.embedder.model_id)
            labels, by_view, by_product, has_other = replay_views(engine)
            known = [i for i, h in enumerate(has_other) if h]
            if not known:
                raise ValueError("the catalogue has no product with two views or more: "
                                 "nothing to calibrate on")
            for m in margins:
                kv = _outcomes(engine, [by_view[i] for i in known], [labels[i] for i in known],
                               m)
                up = _outcomes(engine, by_product, [None] * len(by_product), m)
                table.append({"unsure_margin": float(m), "product_floor": delta, **_rates(kv),
                              "unknown_to_cashier": round(up.count("cashier") / len(up), 4)})
    finally:
        decider.product_floor, decider.floors = saved
    allowed = [row for row in table if row["unsure_margin"] >= min_margin - 1e-9]
    ok = [row for row in allowed if row["silent_rate"] <= silent_rate]
    chosen = (min(ok, key=lambda r: (r["cashier_rate"], r["unsure_margin"])) if ok
              else min(allowed, key=lambda r: (r["silent_rate"], r["cashier_rate"])))
    # what the catalogue's views alone would pick, all margins allowed
    met = [row for row in table if row["silent_rate"] <= silent_rate]
    alone = min(met, key=lambda r: (r["cashier_rate"], r["unsure_margin"])) if met else None
    return {"unsure_margin": chosen["unsure_margin"], "product_floor": chosen["product_floor"],
            "min_margin": min_margin,
            "held_at_min_margin": bool(alone is not None
                                       and alone["unsure_margin"] < min_margin - 1e-9),
            "target_silent_rate": silent_rate,
            "reached": bool(ok), "expected": {k: chosen[k] for k in
                                              ("ok_rate", "silent_rate", "cashier_rate")},
            "unknown_to_cashier": chosen["unknown_to_cashier"],
            "threshold": engine.decider.threshold, "views": len(labels),
            "views_known": len(known),
            "products": len(set(labels)), "table": table}
