"""No-match calibration: fit confidence = sigmoid(a·m + b + c·ln n + d·s + e·p + f·g) on validation queries,
pick the thresholds.

Reads the validation split only and writes the calibration file the service loads
(Settings.calibration_path, beside the weights by default).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf

from benchmarks.dataset_library import index_dataset, random_excerpt, read_recording
from benchmarks.robust import robust_queries, robust_root
from indexer.library import Library
from model.data import dataset as ds
from service.identify import identify

CALIBRATION_EXCERPTS = (5.0, 10.0, 20.0)  # excerpt lengths used to calibrate the confidence
EXCERPTS_PER_LENGTH = 3  # random excerpts of each length per validation piece
CALIBRATION_LIBRARY_SIZES = (4, 16, 64, 434)  # sub-library sizes the confidence is calibrated on
THRESHOLDS = np.linspace(0.05, 0.95, 91)  # candidate no-match thresholds
# The operating point: per calibration library size, the lowest threshold at which at least this share of
# the queries whose piece is absent is answered "no match" (issue 13's target). A confident wrong answer
# is the worse error, and where the evidence cannot also give present pieces their match (it cannot today:
# README, Identification) the threshold must not trade this half away for the other.
ABSENT_NO_MATCH = 0.9


def calibration_queries(dataset: Path, robust: Path | None = None) -> list[tuple[str, str, np.ndarray]]:
    """(condition, piece, recording) of every validation piece: its plain rendition and, where the robust
    set was built, its robust one, so the confidence also holds for recordings unlike the training audio."""
    pieces = ds.built_pieces(dataset, ["validation"])
    out = [("plain", pid, read_recording(dataset, pid)) for pid in pieces]
    recordings = robust_queries(robust or robust_root(dataset), "validation")
    out += [("robust", pid, sf.read(recordings[pid], dtype="float32")[0]) for pid in pieces if pid in recordings]
    return out


def sub_libraries(everyone: np.ndarray, true: int, n: int, rng: np.random.Generator) -> tuple[set[int], set[int]]:
    """Two random pools of n library pieces (all of them where it holds fewer): the query's piece with n − 1
    others, and the same others with a spare piece in its place (none is left at the full size)."""
    others = everyone[everyone != true]
    kept = set(rng.choice(others, min(n, len(everyone)) - 1, replace=False).tolist())
    spare = sorted(set(others.tolist()) - kept)
    return kept | {true}, kept | ({int(rng.choice(spare))} if spare else set())


def calibrate(library: Library, dataset: Path, out: Path | None = None, seed: int = 0,
              log: Callable[[str], None] = print, robust: Path | None = None,
              rows_out: Path | None = None) -> dict:  # fmt: skip
    """Fit the confidence on validation excerpts asked against random sub-libraries; write it to `out`.

    Each excerpt is asked against sub-libraries of CALIBRATION_LIBRARY_SIZES pieces (a random subset of
    the full library, the rest left out), once with its own piece among them and once without, so the
    confidence holds for small libraries (the demo) as well as large ones. `rows_out` keeps every query's
    features and outcome (.npz) for analysis.
    """
    ids = index_dataset(library, dataset, log=log)
    everyone = np.array(sorted(set(ids.values())))
    all_ids = set(everyone.tolist())
    rng = np.random.default_rng(seed)
    rows, y, absent, size, is_robust, piece = [], [], [], [], [], []
    queries = calibration_queries(dataset, robust)
    log(f"calibrating on {len(queries)} validation recordings "
        f"({sum(c == 'robust' for c, _, _ in queries)} robust)")  # fmt: skip
    for condition, pid, wave in queries:
        true = ids[pid]
        for seconds in CALIBRATION_EXCERPTS:
            for _ in range(EXCERPTS_PER_LENGTH):
                clip = random_excerpt(wave, seconds, rng)
                for n in CALIBRATION_LIBRARY_SIZES:
                    n = min(n, len(everyone))
                    with_piece, without_piece = sub_libraries(everyone, true, n, rng)
                    for present, pool in ((True, with_piece), (False, without_piece)):
                        r = identify(library.without(all_ids - pool), clip)
                        margin, top = r.evidence
                        rows.append((margin, np.log(len(pool)), top, r.path.top_cost, r.path.runner_up_gap))
                        y.append(float(present and bool(r.pieces) and r.pieces[0].id == true))
                        absent.append(not present)
                        size.append(n)
                        is_robust.append(condition == "robust")
                        piece.append(pid)
    features, correct = np.array(rows), np.array(y)
    if rows_out is not None:
        np.savez(rows_out, features=features, correct=correct, absent=np.array(absent), size=np.array(size),
                 robust=np.array(is_robust), piece=np.array(piece))  # fmt: skip
    result = fit_calibration(features, correct, np.array(absent), np.array(size))
    result.update(queries=len(y), robust_queries=int(np.sum(is_robust)), library_sizes=list(CALIBRATION_LIBRARY_SIZES),
                  model_version=library.model_version)  # fmt: skip
    (out or library.settings.calibration_path).write_text(json.dumps(result, indent=1) + "\n")
    return result


FEATURES = "acdef"  # the calibration weight of each feature column: margin, ln n, top, path cost, path gap


def fitted_confidence(fit: dict, features: np.ndarray) -> np.ndarray:
    """The confidence of every row of `features` (its first columns of FEATURES) under a fit's weights:
    service.identify.Calibration.confidence for many rows at once."""
    weights = np.array([fit[k] for k in FEATURES[: features.shape[1]]])
    return 1.0 / (1.0 + np.exp(-(features @ weights + fit["b"])))


def fit_calibration(features: np.ndarray, correct: np.ndarray, absent: np.ndarray | None = None,
                    size: np.ndarray | None = None) -> dict:  # fmt: skip
    """The weights of sigmoid(a·margin + c·ln n + d·top + e·path cost + f·path gap + b) from rows of the
    first columns of (margin, ln n, top, path cost, path gap) and 0/1 outcomes, and the no-match thresholds.

    With `absent` (the rows whose piece was left out) and `size` (their library sizes) the threshold of each
    size is its operating point of ABSENT_NO_MATCH (`thresholds_by_size`; `threshold` the strictest of them),
    and the two halves of the answer at it are reported per size: present pieces answered with a correct
    match, absent ones answered "no match". Without them, the threshold that answers most rows right."""
    *weights, b = fit_logistic(np.column_stack([features, np.ones(len(features))]), correct)
    result: dict = {"a": weights[0], "b": b} | dict(zip(FEATURES[1:], weights[1:], strict=False))
    conf = fitted_confidence(result, features)
    accuracy = [float(np.mean((conf >= t) == (correct > 0.5))) for t in THRESHOLDS]
    best = int(np.argmax(accuracy))
    if absent is None or size is None or not absent.any():
        return result | {"threshold": round(float(THRESHOLDS[best]), 4),
                         "validation_accuracy": round(accuracy[best], 4)}  # fmt: skip
    sizes = sorted(set(size.tolist()))
    by_size, chosen = {}, {}
    for n in sizes:
        kept_out = np.array([np.mean(conf[absent & (size == n)] < t) for t in THRESHOLDS])
        meets = np.flatnonzero(kept_out >= ABSENT_NO_MATCH)
        k = int(meets[0]) if len(meets) else len(THRESHOLDS) - 1
        chosen[n] = float(THRESHOLDS[k])
        answered_right = (correct > 0.5) & (conf >= chosen[n])
        by_size[str(n)] = {"threshold": round(chosen[n], 4),
                           "match_present": round(float(np.mean(answered_right[~absent & (size == n)])), 4),
                           "no_match_absent": round(float(kept_out[k]), 4)}  # fmt: skip
    at = np.array([chosen[n] for n in size.tolist()])
    return result | {"most_accurate_threshold": round(float(THRESHOLDS[best]), 4), "by_library_size": by_size,
                     "thresholds_by_size": {str(n): round(t, 4) for n, t in chosen.items()},
                     "threshold": round(max(chosen.values()), 4),
                     "validation_accuracy": round(float(np.mean((conf >= at) == (correct > 0.5))), 4)}  # fmt: skip


def fit_logistic(x: np.ndarray, y: np.ndarray, steps: int = 50, ridge: float = 1e-6) -> tuple[float, ...]:
    """Maximum-likelihood weights of sigmoid(x · w) by Newton's method (a few parameters, a few steps)."""
    w = np.zeros(x.shape[1])
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ w, -60, 60)))
        hessian = x.T @ (x * (p * (1 - p))[:, None]) + ridge * np.eye(x.shape[1])
        step = np.linalg.solve(hessian, x.T @ (p - y))
        w -= step
        if np.abs(step).max() < 1e-9:
            break
    return tuple(round(float(v), 4) for v in w)
