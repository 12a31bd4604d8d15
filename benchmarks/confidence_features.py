"""`python -m benchmarks.confidence_features ROWS.npz`: which evidence makes the no-match answer honest?

Reads the rows `sheetid eval calibrate --rows ROWS.npz` keeps (validation only: every calibration query's
features, outcome, library size and piece) and compares calibrations leave-one-piece-out: each validation
piece's queries are answered by a calibration fitted on the other pieces' queries, so no figure comes from
the rows it was fitted on. Per library size it prints the two halves of the answer: present pieces
answered with their (correct) match, and absent pieces answered "no match". Compared: the votes' evidence
alone (margin, ln n, top score) against the same with the alignment terms (service/verify.py), each with
one threshold for every size and with a threshold per size.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from benchmarks.calibrate import fit_calibration, fitted_confidence

FEATURE_SETS = {"votes": 3, "votes + alignment": 5}  # leading feature columns used


def held_out_answers(features: np.ndarray, correct: np.ndarray, absent: np.ndarray, size: np.ndarray,
                     piece: np.ndarray, per_size: bool) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(confidence, threshold) of every row from the calibration fitted without its piece's rows."""
    conf, threshold = np.zeros(len(correct)), np.zeros(len(correct))
    for held in np.unique(piece):
        fit_rows, rows = piece != held, piece == held
        fit = fit_calibration(features[fit_rows], correct[fit_rows], absent[fit_rows], size[fit_rows])
        conf[rows] = fitted_confidence(fit, features[rows])
        by_size = fit["thresholds_by_size"]
        threshold[rows] = [by_size[str(n)] if per_size else fit["threshold"] for n in size[rows]]
    return conf, threshold


def compare(rows: dict[str, np.ndarray]) -> dict:
    """Present → match and absent → no match per library size, for each feature set and threshold rule."""
    correct, absent, size, piece = rows["correct"], rows["absent"].astype(bool), rows["size"], rows["piece"]
    out: dict = {"queries": int(len(correct)), "pieces": int(len(np.unique(piece)))}
    for name, columns in FEATURE_SETS.items():
        for per_size in (False, True):
            conf, threshold = held_out_answers(rows["features"][:, :columns], correct, absent, size, piece, per_size)
            answered_right = (correct > 0.5) & (conf >= threshold)
            out[f"{name}, {'threshold per size' if per_size else 'one threshold'}"] = {
                str(n): {"match_present": round(float(answered_right[~absent & (size == n)].mean()), 3),
                         "no_match_absent": round(float((conf < threshold)[absent & (size == n)].mean()), 3)}
                for n in sorted(set(size.tolist()))}  # fmt: skip
    out["top1_present"] = {str(n): round(float(correct[~absent & (size == n)].mean()), 3)
                           for n in sorted(set(size.tolist()))}  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rows", type=Path, help="the .npz of `sheetid eval calibrate --rows`")
    args = parser.parse_args()
    print(json.dumps(compare(dict(np.load(args.rows))), indent=1))


if __name__ == "__main__":
    main()
