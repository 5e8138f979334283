"""``kiosk train --from-catalog DB``: retrain on the kiosk's own views, swap in only if better.

The catalogue holds the store's own pictures: the enrolment views and the views learned from
cashier answers (:mod:`kiosk.checkout.learn`, the lossless cut-outs).  This module

1. writes them as training lists (one picture per view: a half-turned copy is the same view,
   and training turns pictures itself), holding out the **most recent** views (learned ones
   first) as the test: the pictures the kiosk will meet next look like those it met last;
2. trains the neck on them (plus any base training lists) with :func:`kiosk.tools.train.run_training`
   at the current model's threshold (with ``--tune-blocks N`` also Lite0's last N blocks, on
   their cached input activations: ``cfg.tune_blocks``);
3. compares the new model with the current one on the held-out views (the rest of the
   catalogue as gallery): recall@1 and accuracy at the operating point;
4. only when the new model is better: embeds every gallery picture with it (the catalogue then
   holds both models' vectors; the kiosk drops the old ones when it opens with the new model,
   with nothing left to re-embed) and writes ``[recognition] model`` to the settings in one
   atomic replace.  The kiosk takes the new model at its next start.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Callable

from kiosk.catalog import Catalog


def catalog_lists(catalog: Catalog, model_id: str, folder: Path, holdout: float = 0.2,
                  min_learned: int = 5) -> dict:
    """Write ``train.txt`` (every view but the held-out ones), ``gallery.txt`` (the same, as
    the catalogue would search them) and ``query.txt`` (the held-out views) into ``folder``;
    returns their paths and counts."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows = catalog.gallery_rows(model_id=model_id)
    view_of = catalog.gallery_view_of(model_id)
    active = {p.sku for p in catalog.list_products(active_only=True)}
    learned = {v["file"]: v for v in catalog.learned_views(status="approved") if v["file"]}
    views: dict[tuple[str, str], dict] = {}  # (sku, view) -> {"path", "order", "learned"}
    for r in rows:
        if r["sku"] not in active:
            continue
        key = (r["sku"], view_of.get(r["id"], r["file"]))
        if key in views:
            continue
        lv = learned.get(key[1])
        path = lv["picture"] if lv and Path(lv["picture"]).is_file() else key[1]
        views[key] = {"path": path, "learned": lv is not None,
                      "order": (1, lv["created_t"]) if lv else (0, r["id"])}
    per_sku: dict[str, int] = {}
    for sku, _ in views:
        per_sku[sku] = per_sku.get(sku, 0) + 1
    pool = [k for k, v in views.items() if v["learned"]]
    if len(pool) < min_learned:  # too few learned views: the newest views of any kind
        pool = list(views)
    pool.sort(key=lambda k: views[k]["order"], reverse=True)
    n_hold = max(1, math.ceil(holdout * len(pool))) if pool else 0
    held: list[tuple[str, str]] = []
    left = dict(per_sku)
    for k in pool:
        if len(held) >= n_hold:
            break
        if left[k[0]] >= 2:  # the product keeps a view in the gallery
            held.append(k)
            left[k[0]] -= 1
    held_set = set(held)

    def write(name: str, keys) -> Path:
        p = folder / name
        p.write_text("".join(f"{views[k]['path']}\t{k[0]}\n" for k in keys), encoding="utf-8")
        return p

    kept = [k for k in views if k not in held_set]
    return {"train": write("train.txt", kept), "gallery": write("gallery.txt", kept),
            "query": write("query.txt", held), "n_train": len(kept), "n_heldout": len(held),
            "n_learned": sum(1 for v in views.values() if v["learned"]),
            "n_products": len(per_sku)}


def compare(embedders: dict, gallery: Path, query: Path, unsure_margin: float) -> dict:
    """recall@1 and accuracy at the operating point of each embedder on the held-out views."""
    from kiosk.decide import Decider
    from kiosk.engine import model_threshold
    from kiosk.tools.evaluate import evaluate_lists

    out = {}
    for name, emb in embedders.items():
        r = evaluate_lists(emb, gallery, query, Decider(threshold=model_threshold(emb),
                                                        unsure_margin=unsure_margin))
        out[name] = {"recall_at_1": round(r.recall_at_1, 4), "mAP": round(r.mAP, 4),
                     "accuracy": round(r.accuracy, 4), "model_id": emb.model_id}
    return out


def embed_catalog(catalog: Catalog, embedder, log_fn: Callable[[str], None] = lambda m: None
                  ) -> int:
    """Embed every gallery picture of ``catalog`` with ``embedder`` (rows under its model id,
    next to the current model's) in one transaction; returns how many."""
    from kiosk.embed import Embeddings
    from kiosk.images import load_image

    have = {(r["sku"], r["file"]) for r in catalog.gallery_rows(model_id=embedder.model_id)}
    todo = [sf for sf in catalog.gallery_files() if sf not in have]
    with catalog.transaction():
        for start in range(0, len(todo), 32):
            chunk = todo[start:start + 32]
            emb = embedder.embed([load_image(Path(f)) for _, f in chunk])
            for (sku, f), vec in zip(chunk, emb.vectors):
                catalog.add_gallery_images(sku, [f], Embeddings(vec[None], embedder.model_id),
                                           audit_action=None)
            log_fn(f"embedded {min(start + 32, len(todo))}/{len(todo)} gallery pictures")
    return len(todo)


def take_model(catalog: Catalog, current, new, folder: Path, result: dict | None = None,
               settings=None, settings_path: Path | None = None,
               log_fn: Callable[[str], None] = lambda m: None) -> int:
    """Swap in model ``new`` (exported in ``folder``): every gallery picture embedded with it
    first, then ``[recognition] model`` written in one atomic replace of the settings file,
    audited.  Returns the pictures embedded."""
    from kiosk.settings import Settings, save_settings, with_changes

    n = embed_catalog(catalog, new, log_fn)
    result = result or {}
    with catalog.transaction():
        catalog.audit("model_swap", None, role="cli",
                      before={"model": current.model_id, **result.get("current", {})},
                      after={"model": new.model_id, "folder": str(folder), "embedded": n,
                             **result.get("new", {})})
    save_settings(with_changes(settings or Settings(), "recognition",
                               model=str(Path(folder).resolve())), settings_path)
    return n


def train_from_catalog(db: Path, current, out_dir: Path, *, base_lists=(), cfg=None,
                       holdout: float = 0.2, unsure_margin: float | None = None,
                       swap: bool = True, settings=None, settings_path: Path | None = None,
                       cache_dir: Path | None = None, log_fn: Callable[[str], None] = lambda m: None) -> dict:
    """The whole job (see the module docstring); returns the report (``swapped``: whether
    the new model was taken)."""
    import tempfile

    from kiosk.embed import load_embedder
    from kiosk.engine import model_threshold
    from kiosk.tools.train import run_training
    from kiosk.embed.model import TrainConfig
    from kiosk.settings import CheckoutSettings

    if unsure_margin is None:
        unsure_margin = CheckoutSettings().unsure_margin
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    if out_dir.exists():
        raise FileExistsError(f"{out_dir} already exists: choose a new model folder")
    with Catalog(db) as catalog, tempfile.TemporaryDirectory(prefix="kiosk-retrain-") as tmp:
        lists = catalog_lists(catalog, current.model_id, Path(tmp), holdout)
        if lists["n_heldout"] == 0 or lists["n_products"] < 2:
            raise ValueError("the catalogue has too few views to retrain on (at least two "
                             "products, one with two views or more)")
        log_fn(f"{lists['n_train']} views to train on ({lists['n_learned']} learned), "
               f"{lists['n_heldout']} recent views held out")
        report = run_training([lists["train"], *map(Path, base_lists)], out_dir,
                              cfg or TrainConfig(), threshold=model_threshold(current),
                              cache_dir=cache_dir, per_list_cache=True, log_fn=log_fn)
        new = load_embedder(str(out_dir))
        result = compare({"current": current, "new": new}, lists["gallery"], lists["query"],
                         unsure_margin)
        better = (result["new"]["recall_at_1"] > result["current"]["recall_at_1"]
                  and result["new"]["accuracy"] >= result["current"]["accuracy"])
        swapped = False
        if better and swap:
            take_model(catalog, current, new, out_dir, result, settings, settings_path, log_fn)
            swapped = True
    return {"model": str(out_dir), "model_id": report.get("model_id"), "lists": {
        k: v for k, v in lists.items() if k.startswith("n_")}, "heldout": result,
        "better": better, "swapped": swapped, "threshold": report["threshold"],
        "seconds": round(time.perf_counter() - t0, 1)}
