"""`python -m benchmarks.confidence_features ROWS.npz`: which evidence makes the no-match answer honest?

Reads the rows `sheetid eval calibrate --rows ROWS.npz` keeps (validation only: every calibration query's
features, outcome, library size and piece) and compares calibrations leave-one-piece-out: each validation
piece's queries are answered by a calibration fitted on the other pieces' queries, so no figure comes from
the rows it was fitted on. Per library size it prints the two halves of the answer: present pieces
answered with their (correct) match, and absent pieces answered "no match". Compared: the votes' evidence
alone (margin, ln n, top score) against the same with the alignment terms (service/verify.py), each with
one threshold for every size and with a threshold per size; and what the smallest calibrated library size
buys (the calibration fitted without its rows, its threshold held from the next size).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from benchmarks.calibrate import fit_calibration, fitted_confidence
from service.identify import Calibration

FEATURE_SETS = {"votes": 3, "votes + alignment": 5}  # leading feature columns used


def held_out_answers(features: np.ndarray, correct: np.ndarray, absent: np.ndarray, size: np.ndarray,
                     piece: np.ndarray, per_size: bool, fitted_sizes: np.ndarray | None = None,
                     ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(confidence, threshold) of every row from the calibration fitted without its piece's rows (and only
    on rows of `fitted_sizes` where given: a size left out gets the threshold the service would use,
    Calibration.threshold_for, held beyond the calibrated sizes)."""
    conf, threshold = np.zeros(len(correct)), np.zeros(len(correct))
    fitted = np.isin(size, fitted_sizes) if fitted_sizes is not None else np.ones(len(size), dtype=bool)
    for held in np.unique(piece):
        fit_rows, rows = fitted & (piece != held), piece == held
        fit = fit_calibration(features[fit_rows], correct[fit_rows], absent[fit_rows], size[fit_rows])
        conf[rows] = fitted_confidence(fit, features[rows])
        calibration = Calibration.load_dict(fit)
        threshold[rows] = [calibration.threshold_for(int(n)) if per_size else fit["threshold"] for n in size[rows]]
    return conf, threshold


def _halves(conf: np.ndarray, threshold: np.ndarray, correct: np.ndarray, absent: np.ndarray,
            size: np.ndarray) -> dict:  # fmt: skip
    """Per library size: present pieces answered with their (correct) match, absent ones with "no match"."""
    answered_right = (correct > 0.5) & (conf >= threshold)
    return {str(n): {"match_present": round(float(answered_right[~absent & (size == n)].mean()), 3),
                     "no_match_absent": round(float((conf < threshold)[absent & (size == n)].mean()), 3)}
            for n in sorted(set(size.tolist()))}  # fmt: skip


def compare(rows: dict[str, np.ndarray]) -> dict:
    """Present → match and absent → no match per library size, for each feature set and threshold rule."""
    correct, absent, size, piece = rows["correct"], rows["absent"].astype(bool), rows["size"], rows["piece"]
    out: dict = {"queries": int(len(correct)), "pieces": int(len(np.unique(piece)))}
    for name, columns in FEATURE_SETS.items():
        for per_size in (False, True):
            conf, threshold = held_out_answers(rows["features"][:, :columns], correct, absent, size, piece, per_size)
            out[f"{name}, {'threshold per size' if per_size else 'one threshold'}"] = _halves(
                conf, threshold, correct, absent, size)
    # What the smallest calibrated size buys: the same calibration fitted without its rows, the threshold
    # of the next size held for it (as the service holds it below the calibrated sizes).
    sizes = sorted(set(size.tolist()))
    if len(sizes) > 1:
        conf, threshold = held_out_answers(rows["features"], correct, absent, size, piece, True, np.array(sizes[1:]))
        out[f"votes + alignment, threshold per size, fitted without the {sizes[0]}-piece rows"] = _halves(
            conf, threshold, correct, absent, size)
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
