"""How identification holds up as the library grows: top-1 of validation queries against random
sub-libraries of 16 → 434 pieces that hold the query's piece.

Issue 13 asks why top-1 falls at library scale; this prints the curve. Each query (plain and, where built,
robust recordings; whole and one 10-s excerpt each) is asked against `draws` random sub-libraries per size,
the same ones for every condition, so the sizes differ only in the distractors they add. Also reported per
size: how often a 10-s excerpt's piece is answered with a correct match, and how often a left-out piece's
excerpt is answered "no match" (the two halves of the calibrated answer).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from benchmarks.calibrate import calibration_queries, sub_libraries
from benchmarks.dataset_library import index_dataset, random_excerpt
from benchmarks.identify import EXCERPT_SECONDS
from indexer.library import Library
from service.identify import Calibration, identify

LIBRARY_SIZES = (16, 32, 64, 128, 256, 434)
DRAWS = 2  # random sub-libraries per size and query


def evaluate_scaling(library: Library, dataset: Path, sizes: tuple[int, ...] = LIBRARY_SIZES, draws: int = DRAWS,
                     seed: int = 0, log: Callable[[str], None] = print) -> dict:  # fmt: skip
    """Per size and condition: queries, top-1 share, and the two no-match halves on 10-s excerpts."""
    ids = index_dataset(library, dataset, log=log)
    everyone = np.array(sorted(set(ids.values())))
    all_ids = set(everyone.tolist())
    calibration = Calibration.load(library.settings.calibration_path)
    rng = np.random.default_rng(seed)
    tally: dict[tuple[int, str], list[float]] = {}
    halves: dict[tuple[int, str], list[float]] = {}
    for condition, pid, wave in calibration_queries(dataset):
        true = ids[pid]
        clip = random_excerpt(wave, EXCERPT_SECONDS, rng)
        for n in sizes:
            n = min(n, len(everyone))
            for _ in range(draws):
                with_piece, without_piece = sub_libraries(everyone, true, n, rng)
                present = library.without(all_ids - with_piece)
                for length, query in (("full", wave), ("excerpt10s", clip)):
                    r = identify(present, query, calibration)
                    tally.setdefault((n, f"{condition}_{length}"), []).append(
                        float(bool(r.pieces) and r.pieces[0].id == true))
                    if length == "excerpt10s":
                        right = not r.no_match and bool(r.pieces) and r.pieces[0].id == true
                        halves.setdefault((n, f"{condition}_match_present"), []).append(float(right))
                absent = identify(library.without(all_ids - without_piece), clip, calibration)
                halves.setdefault((n, f"{condition}_no_match_absent"), []).append(float(absent.no_match))
        log(f"{condition} {pid}: done")
    table: dict[str, dict[str, float | int]] = {}
    for (n, key), values in sorted((tally | halves).items()):
        row = table.setdefault(str(n), {})
        row[key] = round(float(np.mean(values)), 4)
        row["queries_per_condition"] = len(values)
    return {"draws": draws, "model_version": library.model_version, "by_library_size": table}
