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


@pytest.fixture()
def settings(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Settings for a fresh, empty library in a temporary data directory."""
    from indexer.settings import Settings

    return Settings(data_dir=tmp_path / "library", threads=2)


@pytest.fixture(scope="session")
def pdfs(dataset: Path) -> dict[str, bytes]:
    """The fixture pieces' PDFs as engraved by the data engine (verovio → raster → PDF)."""
    from model.data.dataset import PDF_DIR, piece_key

    pieces = (TRAIN_PIECE, VAL_PIECE, TEST_PIECE)
    return {pid: (dataset / PDF_DIR / f"{piece_key(pid)}.pdf").read_bytes() for pid in pieces}
