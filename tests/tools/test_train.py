"""Training: end to end on a tiny list, and floors on the honest held-out split of the dev data."""
from __future__ import annotations

import numpy as np
import pytest

from kiosk.demo.catalog import DEMO_LIST
from kiosk.embed import load_embedder
from kiosk.catalog.gallery_io import parse_gallery_list
from kiosk.images import load_image
from kiosk.tools.splits import dev_split, write_split
from kiosk.tools.train import run_training
from kiosk.embed.model import TrainConfig, ensure_trained_model, load_neck


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    entries = parse_gallery_list(DEMO_LIST)
    gallery, query = root / "gallery.txt", root / "query.txt"  # views 0-2 / views 3-4
    gallery.write_text("".join(f"{e.path}\t{e.label}\n" for e in entries
                               if e.path.stem[-1] in "012"))
    query.write_text("".join(f"{e.path}\t{e.label}\n" for e in entries
                             if e.path.stem[-1] in "34"))
    cfg = TrainConfig(epochs=3, views=2, dim=32)
    report = run_training([DEMO_LIST], root / "model", cfg, gallery_list=gallery,
                          query_lists={"known": query}, save_neck_to=root / "neck.npz",
                          cache_dir=root / "cache")
    return root, report


def test_training_end_to_end_on_a_tiny_list(tiny_run):
    root, report = tiny_run
    assert [row["epoch"] for row in report["epochs"]] == [1, 2, 3]
    assert all(np.isfinite(row["loss"]) for row in report["epochs"])
    assert report["n_classes"] == 13 and report["n_train_images"] == 65
    assert 0.0 < report["threshold"] < 1.0
    # the exported model loads like any PaddleClas model and embeds crops
    emb = load_embedder(str(root / "model"))
    assert emb.model_id == report["model_id"] and emb.model_id.startswith("kiosk-lite0-arc")
    assert emb.dim == 1280 + 32
    assert emb.threshold == pytest.approx(report["threshold"], abs=1e-4)
    entries = parse_gallery_list(DEMO_LIST)[:6]
    vecs = emb.embed([load_image(e.path) for e in entries]).vectors
    assert vecs.shape == (6, 1312)
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-4)
    # same product closer than another product, on its own training images
    sims = vecs @ vecs.T
    assert sims[0, 1] > sims[0, 5]


def test_neck_round_trip_and_rebuilt_model_is_the_same(tiny_run, tmp_path):
    root, report = tiny_run
    neck, cfg, threshold = load_neck(root / "neck.npz")
    assert cfg.dim == 32 and cfg.views == 2
    assert threshold == pytest.approx(report["threshold"], abs=1e-4)
    folder = ensure_trained_model(root / "neck.npz", tmp_path)
    assert ensure_trained_model(root / "neck.npz", tmp_path) == folder  # built once
    rebuilt = load_embedder(str(folder))
    original = load_embedder(str(root / "model"))
    crops = [load_image(e.path) for e in parse_gallery_list(DEMO_LIST)[:3]]
    assert np.allclose(rebuilt.embed(crops).vectors, original.embed(crops).vectors, atol=1e-5)


def test_exported_model_gives_what_training_measured(tiny_run):
    """The kiosk runs the export on Paddle Inference with oneDNN; it must embed exactly as the
    training evaluated it (cached descriptors through the neck).  Paddle 3.3.1's oneDNN once
    shrank the plain `gap` half 14x (a scale after a normalisation, mis-fused), so the kiosk
    ran a different model than the one measured."""
    from kiosk.embed.paddle import PaddleEmbedder
    from kiosk.tools.train import FeatureCache, _project

    root, _ = tiny_run
    neck, _cfg, _thr = load_neck(root / "neck.npz")
    paths = [e.path for e in parse_gallery_list(DEMO_LIST)[:4]]
    want = _project(neck, FeatureCache(root / "cache").descriptors(paths)[:, 0])
    for precision in ("fp32", "bf16"):
        emb = PaddleEmbedder(root / "model", precision=precision)
        got = emb.embed([load_image(p) for p in paths]).vectors
        assert (got * want).sum(axis=1).min() > 0.99, precision
        # both halves as trained: the plain ImageNet part and the neck, 1/sqrt(2) each
        np.testing.assert_allclose(np.linalg.norm(got[:, :1280], axis=1), 2 ** -0.5, atol=0.01)


def test_training_refuses_a_single_label(tmp_path):
    one = tmp_path / "one.txt"
    first = parse_gallery_list(DEMO_LIST)[0]
    one.write_text(f"{first.path}\t{first.label}\n")
    with pytest.raises(ValueError, match="two labels"):
        run_training([one], None, TrainConfig(epochs=1, views=1), cache_dir=tmp_path)


def test_dev_split_is_disjoint(dev_data):
    split = dev_split(dev_data)
    skus = {k: {label for _, label in v} for k, v in split.items()}
    assert not skus["train"] & (skus["query_unseen"] | skus["query_unknown"])
    assert not skus["gallery"] & skus["query_unknown"]
    assert skus["query_unseen"] <= skus["gallery"] and skus["query_known"] <= skus["train"]
    train_files = {p for p, _ in split["train"]}
    assert not train_files & {p for p, _ in split["query_known"]}  # other photo sessions


# Floors measured on this split with this recipe (views=2, 30 epochs): see the README table.
HELD_OUT_FLOORS = {"known": 0.80, "unseen": 0.75}


def test_held_out_split_floors(dev_data, tmp_path_factory, text_reader):
    root = tmp_path_factory.mktemp("split")
    files = write_split(dev_split(dev_data), root / "lists")
    report = run_training(
        [files["train"]], root / "model", TrainConfig(views=2), gallery_list=files["gallery"],
        query_lists={"known": files["query_known"], "unseen": files["query_unseen"],
                     "unknown": files["query_unknown"]},
        cache_dir=root / "cache")
    final = report["final"]
    print(final)
    for name, floor in HELD_OUT_FLOORS.items():
        assert final[name]["recall_at_1"] >= floor, (name, final[name])
    assert final["known"]["false_reject_rate"] <= 0.05
    assert 0.0 <= final["unknown_reject_rate"] <= 1.0
    # the exported model, as the kiosk runs it (Paddle Inference, oneDNN), measures the same
    from kiosk.decide import Decider
    from kiosk.tools.evaluate import evaluate_lists

    kiosk = evaluate_lists(load_embedder(str(root / "model")), files["gallery"],
                           files["query_unseen"], Decider())
    assert kiosk.recall_at_1 >= HELD_OUT_FLOORS["unseen"]
    assert abs(kiosk.recall_at_1 - final["unseen"]["recall_at_1"]) < 0.03
    # pack text on the unseen products (enrolled, never trained on): look-alike flavours
    with_text = evaluate_lists(load_embedder(str(root / "model")), files["gallery"],
                               files["query_unseen"], Decider(), text_reader=text_reader)
    print(with_text)
    assert 0.2 <= with_text.text_read_rate <= 0.6
    assert with_text.top1 >= with_text.top1_without_text + 0.01
    assert with_text.accuracy >= with_text.accuracy_without_text
