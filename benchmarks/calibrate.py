"""No-match calibration: fit confidence = sigmoid(a·m + b + c·ln n + d·s) on validation queries, pick the threshold.

Reads the validation split only and writes the calibration file the service loads
(Settings.calibration_path, beside the weights by default).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from benchmarks.dataset_library import index_dataset, random_excerpt, read_recording
from indexer.library import Library
from model.data import dataset as ds
from service.identify import identify

CALIBRATION_EXCERPTS = (5.0, 10.0, 20.0)  # excerpt lengths used to calibrate the confidence
EXCERPTS_PER_LENGTH = 3  # random excerpts of each length per validation piece
CALIBRATION_LIBRARY_SIZES = (16, 64, 434)  # sub-library sizes the confidence is calibrated on
THRESHOLDS = np.linspace(0.05, 0.95, 91)  # candidate no-match thresholds


def calibrate(library: Library, dataset: Path, out: Path | None = None, seed: int = 0,
              log: Callable[[str], None] = print) -> dict:  # fmt: skip
    """Fit the confidence on validation excerpts asked against random sub-libraries; write it to `out`.

    Each excerpt is asked against sub-libraries of CALIBRATION_LIBRARY_SIZES pieces (a random subset of
    the full library, the rest left out), once with its own piece among them and once without, so the
    confidence holds for small libraries (the demo) as well as large ones.
    """
    ids = index_dataset(library, dataset, log=log)
    everyone = np.array(sorted(set(ids.values())))
    all_ids = set(everyone.tolist())
    rng = np.random.default_rng(seed)
    rows, y = [], []
    for pid in ds.built_pieces(dataset, ["validation"]):
        wave, true = read_recording(dataset, pid), ids[pid]
        others = everyone[everyone != true]
        for seconds in CALIBRATION_EXCERPTS:
            for _ in range(EXCERPTS_PER_LENGTH):
                clip = random_excerpt(wave, seconds, rng)
                for n in CALIBRATION_LIBRARY_SIZES:
                    n = min(n, len(everyone))
                    kept = set(rng.choice(others, n - 1, replace=False).tolist())
                    spare = sorted(all_ids - kept - {true})
                    for present in (True, False):
                        pool = kept | {true} if present else kept | ({int(rng.choice(spare))} if spare else set())
                        r = identify(library.without(all_ids - pool), clip)
                        margin, top = r.evidence
                        rows.append((margin, np.log(len(pool)), top))
                        y.append(float(present and bool(r.pieces) and r.pieces[0].id == true))
    result = fit_calibration(np.array(rows), np.array(y))
    result.update(queries=len(y), library_sizes=list(CALIBRATION_LIBRARY_SIZES), model_version=library.model_version)
    (out or library.settings.calibration_path).write_text(json.dumps(result, indent=1) + "\n")
    return result


def fit_calibration(features: np.ndarray, correct: np.ndarray) -> dict:
    """a, c, d, b of sigmoid(a·margin + c·ln n + d·top + b) from (margin, ln n, top) rows and 0/1 outcomes;
    the threshold that answers most of them right."""
    a, c, d, b = fit_logistic(np.column_stack([features, np.ones(len(features))]), correct)
    conf = 1.0 / (1.0 + np.exp(-(a * features[:, 0] + c * features[:, 1] + d * features[:, 2] + b)))
    accuracy = [float(np.mean((conf >= t) == (correct > 0.5))) for t in THRESHOLDS]
    threshold = round(float(THRESHOLDS[int(np.argmax(accuracy))]), 4)
    return {"a": a, "b": b, "c": c, "d": d, "threshold": threshold, "validation_accuracy": round(max(accuracy), 4)}


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
