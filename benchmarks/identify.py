"""Table-3 identification: whole recordings and 10-s excerpts of test pieces against the full corpus library.

The library is built from the dataset's PDFs through the real indexer, and queries are the dataset's FLAC
renditions (unseen SoundFont, 120 bpm). Each excerpt is also asked with its own piece left out of the
library (Library.without), where the right answer is "no match".
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from benchmarks.dataset_library import index_dataset, random_excerpt, read_recording
from indexer.library import Library
from model.data import dataset as ds
from service.identify import Calibration, identify

EXCERPT_SECONDS = 10.0  # Table-3 excerpt queries
NOT_FOUND_RANK = 10**6  # rank given to a piece that is not among the returned ones


def rank_of(result_ids: list[int], true_id: int) -> int:
    return result_ids.index(true_id) + 1 if true_id in result_ids else NOT_FOUND_RANK


def rank_buckets(ranks: list[int]) -> dict[str, int]:
    return {"n": len(ranks), "R1": sum(r == 1 for r in ranks), "R2": sum(r == 2 for r in ranks),
            "R3": sum(r == 3 for r in ranks), ">R3": sum(r > 3 for r in ranks)}  # fmt: skip


def evaluate_identify(library: Library, dataset: Path, splits: tuple[str, ...] = ("test", "test-chorales"),
                      seed: int = 0, log: Callable[[str], None] = print) -> dict:  # fmt: skip
    ids = index_dataset(library, dataset, log=log)
    rng = np.random.default_rng(seed)
    calibration = Calibration.load(library.settings.calibration_path)
    full, excerpt, right_match, accepted, rejected = [], [], [], [], []
    for pid in ds.built_pieces(dataset, splits):
        wave = read_recording(dataset, pid)
        true = ids[pid]
        r = identify(library, wave, calibration)
        full.append(rank_of([p.id for p in r.pieces], true))
        clip = random_excerpt(wave, EXCERPT_SECONDS, rng)
        r10 = identify(library, clip, calibration)
        excerpt.append(rank_of([p.id for p in r10.pieces], true))
        # the same excerpt with its piece left out of the library must come back as "no match"
        absent = identify(library.without({true}), clip, calibration)
        right_match.append(not r10.no_match and r10.pieces[0].id == true)
        accepted.append(not r10.no_match)
        rejected.append(absent.no_match)
    return {"library_size": len(ids), "full": rank_buckets(full), "excerpt10s": rank_buckets(excerpt),
            "no_match_accuracy": round(float(np.mean(right_match + rejected)), 4),
            # the two halves of that accuracy: 10-s excerpts answered with a match when their piece is
            # in the library, and answered "no match" when it is left out
            "present_answered_match": round(float(np.mean(accepted)), 4),
            "absent_answered_no_match": round(float(np.mean(rejected)), 4)}  # fmt: skip
