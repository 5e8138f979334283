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
    """The default embedder (EfficientNet-Lite0 on Paddle Inference), built once per run."""
    from kiosk.embed import load_embedder

    return load_embedder()


@pytest.fixture(scope="session")
def dev_data() -> Path:
    """../shared/datasets/grocerystore-dev, or skip with the reason."""
    if not (SHARED_DEV / "gallery_list.txt").is_file():
        pytest.skip(f"shared dev dataset not found at {SHARED_DEV} (CI provides ../shared)")
    return SHARED_DEV
