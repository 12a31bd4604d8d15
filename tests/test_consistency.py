"""Temporal consistency: hits that progress through the score with the recording outweigh scattered ones."""

from __future__ import annotations

import numpy as np

from service.consistency import consistency_scores


def _hits(rng: np.random.Generator, times: np.ndarray, line_x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each excerpt: 3 hits of piece 1 near line_x(t), 10 hits of piece 2 anywhere, 12 of other pieces."""
    n = len(times)
    pieces = np.concatenate([np.full((n, 3), 1), np.full((n, 10), 2), rng.integers(3, 300, (n, 12))], axis=1)
    x = rng.uniform(0, 8000, size=pieces.shape)
    x[:, :3] = line_x[:, None] + rng.normal(0, 25, (n, 3))
    return pieces, x


def test_a_piece_whose_hits_follow_the_recording_outscores_one_with_more_scattered_votes() -> None:
    rng = np.random.default_rng(0)
    times = np.arange(25) * 0.4  # a 10-s query, one excerpt every 0.4 s
    pieces, x = _hits(rng, times, 2000 + 80 * times)
    scores = consistency_scores(times, pieces, x, [1, 2, 5])
    assert scores[0] > 0.9 and scores[0] > 2 * scores[1]


def test_playing_a_section_twice_keeps_the_right_piece_consistent() -> None:
    rng = np.random.default_rng(1)
    times = np.arange(150) * 0.4  # 60 s: the first 30 s of music, then the same 30 s again
    line = 1000 + 70 * (times % 30.0)
    pieces, x = _hits(rng, times, line)
    scores = consistency_scores(times, pieces, x, [1, 2])
    assert scores[0] > 0.8 and scores[0] > 2 * scores[1]


def test_no_hits_score_zero() -> None:
    times = np.arange(5) * 0.4
    assert consistency_scores(times, np.full((5, 25), -1), np.zeros((5, 25)), [1]).tolist() == [0.0]
