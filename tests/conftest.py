"""Shared fixtures, made by the project's own pipeline (music21 corpus → verovio → FluidSynth)."""

from __future__ import annotations

from pathlib import Path

import pytest

TRAIN_PIECE = "bach/bwv66.6"  # a one-page four-part chorale (train split)
VAL_PIECE = "schumann_robert/dichterliebe_no2"  # a one-page song accompaniment (validation split)
TEST_PIECE = "schoenberg/opus19/movement2"  # a one-page piano piece (test split)


@pytest.fixture(scope="session")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real three-piece dataset build (one piece per split kind), about 15 s."""
    from model.data.build import build

    root = tmp_path_factory.mktemp("dataset")
    manifest = build(root, only=[TRAIN_PIECE, VAL_PIECE, TEST_PIECE], workers=1, log=lambda *_: None)
    assert not manifest["failures"], manifest["failures"]
    return root
