"""Voting and calibration arithmetic: piece-size-aware vote scores, the margin, the calibration fit."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

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


def test_separable_evidence_answers_both_halves_right_at_every_size() -> None:
    # present pieces ranked right score high, absent ones low, in every library size: the report per size
    # says every present piece gets its match and every absent one "no match"
    rng = np.random.default_rng(1)
    size = rng.choice([16, 64, 434], size=3_000)
    absent = rng.random(size.size) < 0.5
    margin = np.where(absent, rng.uniform(0.0, 1.0, size.size), rng.uniform(3.0, 6.0, size.size))
    features = np.column_stack([margin, np.log(size), margin + 1.0])
    fit = fit_calibration(features, (~absent).astype(np.float64), absent, size)
    assert fit["validation_accuracy"] == 1.0
    assert {n: {k: v for k, v in row.items() if k != "threshold"} for n, row in fit["by_library_size"].items()} == {
        str(n): {"match_present": 1.0, "no_match_absent": 1.0} for n in (16, 64, 434)}


def test_the_threshold_keeps_absent_pieces_out_at_every_library_size() -> None:
    # absent pieces look more like matches in small libraries; each size's threshold must keep them out
    # there, no lower one may, and the strictest threshold (answering without a size) holds at every size
    from benchmarks.calibrate import ABSENT_NO_MATCH, THRESHOLDS

    rng = np.random.default_rng(1)
    size = rng.choice([16, 64, 434], size=6_000)
    absent = rng.random(size.size) < 0.5
    margin = np.where(absent, rng.exponential(np.where(size == 16, 2.0, 1.0)), rng.exponential(6.0, size.size))
    top = margin + rng.exponential(2.0, size.size)
    correct = (~absent & (margin > 1.0)).astype(np.float64)
    fit = fit_calibration(np.column_stack([margin, np.log(size), top]), correct, absent, size)
    cal = Calibration.load_dict(fit)
    conf = np.array([cal.confidence(m, int(n), t) for m, n, t in zip(margin, size, top, strict=True)])
    for n in (16, 64, 434):
        t = cal.threshold_for(n)
        kept_out = np.mean(conf[absent & (size == n)] < t)
        assert kept_out >= ABSENT_NO_MATCH
        assert fit["by_library_size"][str(n)]["no_match_absent"] == pytest.approx(kept_out, abs=1e-4)
        lower = THRESHOLDS[np.searchsorted(THRESHOLDS, t - 1e-9) - 1]
        assert np.mean(conf[absent & (size == n)] < lower) < ABSENT_NO_MATCH
    assert min(np.mean(conf[absent & (size == n)] < fit["threshold"]) for n in (16, 64, 434)) >= ABSENT_NO_MATCH
    # absent pieces look more like matches in the small library: it needs the strictest threshold
    assert cal.threshold_for(16) == fit["threshold"] > cal.threshold_for(434)
    assert fit["threshold"] > fit["most_accurate_threshold"]  # here the target costs some accuracy


def test_the_threshold_between_calibrated_sizes_is_interpolated_on_log_size() -> None:
    cal = Calibration(a=1.0, b=0.0, threshold=0.6, thresholds={16: 0.6, 64: 0.4, 434: 0.3})
    assert cal.threshold_for(16) == pytest.approx(0.6) and cal.threshold_for(64) == pytest.approx(0.4)
    assert cal.threshold_for(32) == pytest.approx(0.5)  # halfway between 16 and 64 in ln n
    assert cal.threshold_for(3) == pytest.approx(0.6) and cal.threshold_for(5000) == pytest.approx(0.3)  # held
    assert Calibration(a=1.0, b=0.0, threshold=0.45).threshold_for(1000) == 0.45  # no sizes: the one threshold


def test_alignment_evidence_moves_the_confidence() -> None:
    from service.verify import PathEvidence

    # a tighter path through the top piece, and runner-ups further behind, both raise the confidence
    cal = Calibration(a=0.1, b=0.0, threshold=0.5, e=-8.0, f=10.0)
    tight, loose = PathEvidence(top_cost=0.3, runner_up_gap=0.1), PathEvidence(top_cost=0.5, runner_up_gap=0.1)
    assert cal.confidence(2.0, 64, 0.0, tight) > cal.confidence(2.0, 64, 0.0, loose)
    ahead = PathEvidence(top_cost=0.3, runner_up_gap=0.2)
    assert cal.confidence(2.0, 64, 0.0, ahead) > cal.confidence(2.0, 64, 0.0, tight)
    fit = fit_calibration(np.array([[1.0, 3.0, 1.0, 0.3, 0.1], [0.2, 3.0, 0.5, 0.5, 0.0]] * 50)
                          + np.random.default_rng(0).normal(0, 0.05, (100, 5)), np.array([1.0, 0.0] * 50))  # fmt: skip
    assert set("abcdef") <= set(fit)


def test_reranking_weighs_votes_against_consistency() -> None:
    from service.identify import rerank_scores

    z = np.array([40.0, 10.0, 8.0])  # the shortlist in vote order, 400 votes cast
    consistency = np.array([0.50, 0.60, 0.60])
    # consistency alone (weight 0): the best line wins, and a tie keeps the vote order
    assert list(np.argsort(-rerank_scores(z, consistency, 400.0, 0.0), kind="stable")) == [1, 2, 0]
    # with the votes: a clear vote leader keeps first place over a slightly straighter line ...
    assert np.argmax(rerank_scores(z, consistency, 400.0, 1.0)) == 0
    # ... but not over a much straighter one with comparable votes
    assert np.argmax(rerank_scores(np.array([12.0, 10.0]), np.array([0.3, 0.8]), 400.0, 1.0)) == 1
    # votes that stand out nowhere (copies of a score sharing them) leave the decision to consistency
    assert np.argmax(rerank_scores(np.array([1.7, -0.3]), np.array([0.34, 0.47]), 4_000.0, 1.0)) == 1
    # the same evidence from a recording four times as long (z doubles, votes quadruple) ranks the same
    assert np.allclose(rerank_scores(2 * z, consistency, 1_600.0, 1.0), rerank_scores(z, consistency, 400.0, 1.0))


def test_held_out_comparison_credits_evidence_that_separates_absent_pieces() -> None:
    # rows as `sheetid eval calibrate --rows` keeps them: the votes' margin overlaps between right answers
    # and absent pieces' stand-ins, the path cost does not; held out by piece, the calibration with the
    # path terms gives present pieces their match more often while still keeping absent ones out
    from benchmarks.confidence_features import compare

    rng = np.random.default_rng(2)
    n = 4_000
    size = rng.choice([16, 64, 434], size=n)
    absent = rng.random(n) < 0.5
    correct = (~absent & (rng.random(n) < 0.8)).astype(np.float64)
    margin = rng.exponential(2.0, n) + correct  # a little higher for right answers
    path_cost = np.where(correct > 0, rng.normal(0.35, 0.03, n), rng.normal(0.5, 0.03, n))
    features = np.column_stack([margin, np.log(size), margin + 1.0, path_cost, rng.normal(0.1, 0.02, n)])
    rows = {"features": features, "correct": correct, "absent": absent, "size": size,
            "piece": rng.integers(0, 7, n)}  # fmt: skip
    out = compare(rows)
    votes, both = out["votes, threshold per size"], out["votes + alignment, threshold per size"]
    for k in ("16", "64", "434"):
        assert both[k]["match_present"] > votes[k]["match_present"] + 0.2
        assert both[k]["no_match_absent"] >= 0.85


def test_a_refitted_calibration_file_is_read_anew(tmp_path: Path) -> None:
    # identification loads the calibration on every query from a parsed copy; a refit must not be missed
    path = tmp_path / "calibration.json"
    assert Calibration.load(path).a == 1.0  # no file yet: the neutral default
    path.write_text(json.dumps({"a": 2.0, "b": -1.0, "threshold": 0.6}))
    first = Calibration.load(path)
    assert (first.a, first.threshold) == (2.0, 0.6) and Calibration.load(path) is first  # parsed once
    path.write_text(json.dumps({"a": 3.0, "b": -1.0, "threshold": 0.4}))
    stamp = path.stat().st_mtime_ns + 1_000_000_000
    os.utime(path, ns=(stamp, stamp))  # a coarse file-system clock could give the rewrite the same time
    assert (Calibration.load(path).a, Calibration.load(path).threshold) == (3.0, 0.4)
