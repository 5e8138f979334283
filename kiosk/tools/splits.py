"""An honest split of the dev photos for training and validation (``kiosk split-dev``).

Whole SKUs are held out, stratified by group (fruit / packages / vegetables), so look-alikes of
trained products end up among the held-out ones:

* ``known``: trained on.  Their in-store photos from the original *train* sessions and their
  gallery photos are training data; their photos from the original *val* sessions (another
  day) are the ``query_known`` list.
* ``unseen``: never trained on, but enrolled: their 5 gallery photos are in the gallery and all
  their other photos are ``query_unseen``.
* ``unknown``: neither trained on nor enrolled: every photo is in ``query_unknown`` and should be
  rejected.

``gallery`` holds the gallery photos of known and unseen SKUs.  Every list is PaddleClas format
with absolute paths.
"""
from __future__ import annotations

import csv
import hashlib
from collections import defaultdict
from pathlib import Path

SPLIT_LISTS = ("train", "gallery", "query_known", "query_unseen", "query_unknown")


def dev_split(dataset: Path, *, seed: int = 0, unseen_frac: float = 0.2,
              unknown_frac: float = 0.15) -> dict[str, list[tuple[Path, str]]]:
    dataset = Path(dataset)
    rows = list(csv.DictReader(open(dataset / "images.csv", encoding="utf-8")))
    if not rows:
        raise ValueError(f"{dataset / 'images.csv'} is empty")
    group_of = {r["sku"]: r["group"] for r in rows}
    by_group: dict[str, list[str]] = defaultdict(list)
    for sku, group in sorted(group_of.items()):
        by_group[group].append(sku)
    role: dict[str, str] = {}
    for group, skus in by_group.items():
        skus.sort(key=lambda s: hashlib.sha256(f"{seed}:{s}".encode()).hexdigest())
        n_unseen = max(1, round(len(skus) * unseen_frac))
        n_unknown = max(1, round(len(skus) * unknown_frac))
        for i, sku in enumerate(skus):
            role[sku] = ("unseen" if i < n_unseen else
                         "unknown" if i < n_unseen + n_unknown else "known")
    out: dict[str, list[tuple[Path, str]]] = {k: [] for k in SPLIT_LISTS}
    for r in rows:
        item = ((dataset / r["path"]).resolve(), r["sku"])
        kind, gallery = role[r["sku"]], r["role"] == "gallery"
        if kind == "known":
            if gallery:
                out["train"].append(item)
                out["gallery"].append(item)
            elif r["orig_split"] == "val":
                out["query_known"].append(item)
            else:
                out["train"].append(item)
        elif kind == "unseen":
            out["gallery" if gallery else "query_unseen"].append(item)
        else:
            out["query_unknown"].append(item)
    return out


def write_split(split: dict[str, list[tuple[Path, str]]], out_dir: Path) -> dict[str, Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, items in split.items():
        f = out_dir / f"{name}.txt"
        f.write_text("".join(f"{p}\t{label}\n" for p, label in items), encoding="utf-8")
        files[name] = f
    return files
