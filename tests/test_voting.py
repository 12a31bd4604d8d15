"""Voting and calibration arithmetic: piece-size-aware vote scores, the margin, the calibration fit."""

from __future__ import annotations

import numpy as np

from benchmarks.calibrate import fit_calibration
from service.identify import Calibration, margin_statistic, vote_scores


def test_a_long_piece_does_not_win_on_size_alone() -> None:
    sizes = np.array([0, 10_000, 100, 100], np.float64)  # piece 0 does not exist
    votes = np.array([0, 300, 60, 5], np.float64)  # the long piece has most votes, but fewer than chance
    scores = vote_scores(votes, sizes)
    assert np.argmax(scores) == 2
    assert scores[0] == -np.inf and scores[1] < 0 < scores[2]
    uniform = vote_scores(sizes * 0.5, sizes)  # votes exactly in proportion to size: no piece stands out
    assert np.allclose(uniform[1:], 0.0)


def test_margin_and_confidence_are_monotone() -> None:
    assert margin_statistic([]) == 0.0
    assert margin_statistic([9.0, 2.0]) == 7.0 and margin_statistic([9.0, -3.0]) == 9.0
    cal = Calibration(a=0.5, b=-2.0, threshold=0.5)
    confs = [cal.confidence(m) for m in (0.0, 2.0, 4.0, 8.0, 1e6)]
    assert confs == sorted(confs) and confs[-1] == 1.0 and abs(cal.confidence(4.0) - 0.5) < 1e-12


def test_calibration_fit_recovers_a_known_logistic() -> None:
    # margins, library sizes and top scores drawn as the calibration sees them, outcomes from a known confidence
    rng = np.random.default_rng(0)
    margin = rng.exponential(scale=10.0, size=30_000)
    pieces = rng.choice([16, 64, 434], size=margin.size)
    top = margin + rng.exponential(scale=8.0, size=margin.size)
    truth = Calibration(a=0.3, b=0.5, threshold=0.5, c=-0.8, d=0.1)
    p = np.array([truth.confidence(m, int(n), t) for m, n, t in zip(margin, pieces, top, strict=True)])
    correct = (rng.random(margin.size) < p).astype(np.float64)
    fit = fit_calibration(np.column_stack([margin, np.log(pieces), top]), correct)
    assert abs(fit["a"] - 0.3) < 0.05 and abs(fit["b"] - 0.5) < 0.4 and abs(fit["c"] + 0.8) < 0.1
    assert abs(fit["d"] - 0.1) < 0.04
    # the best threshold on calibrated probabilities sits near 0.5, and beats always answering the majority
    assert 0.35 <= fit["threshold"] <= 0.65 and fit["validation_accuracy"] > max(correct.mean(), 1 - correct.mean())


def test_confidence_is_the_logistic_of_its_terms() -> None:
    # with a = 1, c = -1 and d = 0.5 the logit is m - ln n + s / 2: 0 (confidence 1/2) exactly on that plane
    cal = Calibration(a=1.0, b=0.0, threshold=0.5, c=-1.0, d=0.5)
    assert abs(cal.confidence(np.log(16), pieces=16) - 0.5) < 1e-12
    assert abs(cal.confidence(0.0, pieces=1, top=2.0) - 1.0 / (1.0 + np.exp(-1.0))) < 1e-12
    # a negative c: the same evidence counts for less in a larger library (more pieces to collide with)
    assert cal.confidence(5.0, pieces=16) > cal.confidence(5.0, pieces=434)
    assert Calibration(a=1.0, b=0.0, threshold=0.5).confidence(5.0, 16) == Calibration(1.0, 0.0, 0.5).confidence(5.0)
