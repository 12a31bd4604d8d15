"""The dense embedder: one trunk pass per strip or spectrogram gives the vectors of the per-window path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from model import checkpoint
from model.data import dataset as ds
from model.embed import (
    embed_spectrogram,
    embed_spectrogram_per_window,
    embed_strip,
    embed_strip_per_window,
    window_centres,
)
from model.sheet import STRIP_HEIGHT, at_width
from tests.conftest import TEST_PIECE

COSINE_FLOOR = 0.99  # the tolerance for dense against per-window vectors of the same window


@pytest.fixture(scope="module")
def shipped() -> torch.nn.Module:
    model, _, _ = checkpoint.load()
    return model


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_dense_strip_vectors_match_per_window_vectors_in_the_middle_and_at_the_ends(
    dataset: Path, shipped: torch.nn.Module
) -> None:
    strip = ds.load_record(dataset / ds.PIECES_DIR / f"{ds.piece_key(TEST_PIECE)}.npz").strip.image
    centres, dense = embed_strip(shipped, strip, hop=16)
    ref_centres, ref = embed_strip_per_window(shipped, strip, hop=16)
    np.testing.assert_array_equal(centres, ref_centres)
    cos = _cosines(dense, ref)
    assert len(cos) > 20
    assert cos[0] >= COSINE_FLOOR and cos[-1] >= COSINE_FLOOR  # the strip's ends
    assert np.median(cos) >= COSINE_FLOOR and cos.min() >= 0.95


def test_dense_audio_vectors_match_per_window_vectors(dataset: Path, shipped: torch.nn.Module) -> None:
    spec = ds.load_record(dataset / ds.PIECES_DIR / f"{ds.piece_key(TEST_PIECE)}.npz").renditions[0].spec
    centres, dense = embed_spectrogram(shipped, spec, hop_frames=8)  # two grid phases
    ref_centres, ref = embed_spectrogram_per_window(shipped, spec, hop_frames=8)
    np.testing.assert_array_equal(centres, ref_centres)
    assert np.all(np.diff(centres) == 8)
    cos = _cosines(dense, ref)
    assert cos[0] >= COSINE_FLOOR and cos[-1] >= COSINE_FLOOR and np.median(cos) >= COSINE_FLOOR


def test_long_strips_are_embedded_in_tiles_without_seams(shipped: torch.nn.Module) -> None:
    rng = np.random.default_rng(0)
    strip = (rng.random((shipped.cfg.strip_height, 9000)) < 0.1).astype(np.uint8) * 255  # > one tile of columns
    _, dense = embed_strip(shipped, strip, hop=16)
    _, ref = embed_strip_per_window(shipped, strip, hop=16)
    assert _cosines(dense, ref).min() >= COSINE_FLOOR


def test_inputs_shorter_than_one_window_still_embed(shipped: torch.nn.Module) -> None:
    strip = np.zeros((shipped.cfg.strip_height, 30), np.uint8)
    strip[40:50, 5:25] = 255
    centres, vectors = embed_strip(shipped, strip, hop=16)
    assert len(centres) == 1 and vectors.shape == (1, 32) and np.isfinite(vectors).all()
    centres, vectors = embed_spectrogram(shipped, np.ones((10, 92), np.float32), hop_frames=8)
    assert len(centres) == 1 and np.isfinite(vectors).all()


def test_window_centres_sit_on_the_pooling_grid() -> None:
    centres = window_centres(1000, window=128, stride=16, hop=16)
    assert np.all(centres % 16 == 0) and centres[0] >= 32 and centres[-1] <= 1000 - 32
    with pytest.raises(ValueError):
        window_centres(1000, window=128, stride=16, hop=10)  # must divide the stride


def test_wider_windows_keep_dense_and_per_window_vectors_equal(shipped: torch.nn.Module) -> None:
    """The window sizes are settings (a longer audio context with a wider sheet snippet): the dense pass
    must pool the same vectors as a crop of the new size, not of the shipped one."""
    from dataclasses import replace

    from model.nets import SheetAudioNet

    torch.manual_seed(0)
    wide = SheetAudioNet(replace(shipped.cfg, sheet_window_cols=13, audio_window_cols=5)).eval()
    rng = np.random.default_rng(1)
    strip = (rng.random((wide.cfg.strip_height, 1500)) < 0.1).astype(np.uint8) * 255
    centres, dense = embed_strip(wide, strip, hop=16)
    ref_centres, ref = embed_strip_per_window(wide, strip, hop=16)
    np.testing.assert_array_equal(centres, ref_centres)
    assert _cosines(dense, ref).min() >= COSINE_FLOOR
    spec = rng.random((600, wide.cfg.n_bins)).astype(np.float32)
    centres, dense = embed_spectrogram(wide, spec, hop_frames=16)
    assert _cosines(dense, embed_spectrogram_per_window(wide, spec, hop_frames=16)[1]).min() >= COSINE_FLOOR


def test_a_strip_read_wider_keeps_each_mark_at_the_same_share_of_its_width() -> None:
    strip = np.zeros((STRIP_HEIGHT, 500), dtype=np.uint8)
    strip[:, 99:102] = 255  # a bar line centred at x = 100
    wide = at_width(strip, 1.2)
    assert wide.shape == (STRIP_HEIGHT, 600) and at_width(strip, 1.0) is strip
    ink = wide.sum(axis=0).astype(np.float64)
    assert abs(float((ink * np.arange(600)).sum() / ink.sum()) - 120.0) < 1.0
    with pytest.raises(ValueError):
        at_width(strip, 0.0)
