"""Table-3 identification: whole recordings and 10-s excerpts of validation or test pieces against the
full corpus library, under two query conditions.

The library is built from the dataset's PDFs through the real indexer. Plain queries are the dataset's
FLAC renditions (unseen SoundFont, 120 bpm, as printed); robust queries are the same pieces as
benchmarks/robust.py renders them (repeats played, tempo drift, pedal, another synthesizer, room and
noise). Each 10-s excerpt is also asked with its own piece left out of the library (Library.without),
where the right answer is "no match".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import soundfile as sf

from benchmarks.dataset_library import index_dataset, random_excerpt, read_recording
from benchmarks.pdf_sources import source_pdf
from benchmarks.robust import SPLIT_GROUPS, robust_queries, robust_root
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


def _share(flags: list[bool]) -> float | None:
    return round(float(np.mean(flags)), 4) if flags else None


def query_condition(library: Library, calibration: Calibration, ids: dict[str, int],
                    waves: Iterable[tuple[str, np.ndarray]], rng: np.random.Generator) -> dict:  # fmt: skip
    """Ranks of whole recordings and of one random 10-s excerpt each; the excerpt is asked again with its
    piece left out. Returns rank buckets and, per excerpt, whether the answer was right in both cases."""
    full, excerpt, right_match, accepted, rejected = [], [], [], [], []
    for pid, wave in waves:
        true = ids[pid]
        r = identify(library, wave, calibration)
        full.append(rank_of([p.id for p in r.pieces], true))
        clip = random_excerpt(wave, EXCERPT_SECONDS, rng)
        r10 = identify(library, clip, calibration)
        excerpt.append(rank_of([p.id for p in r10.pieces], true))
        absent = identify(library.without({true}), clip, calibration)
        right_match.append(not r10.no_match and bool(r10.pieces) and r10.pieces[0].id == true)
        accepted.append(not r10.no_match)
        rejected.append(absent.no_match)
    return {"full": rank_buckets(full), "excerpt10s": rank_buckets(excerpt), "right_match": right_match,
            "accepted": accepted, "rejected": rejected}  # fmt: skip


def evaluate_identify(library: Library, dataset: Path, split: str = "test", robust: Path | None = None,
                      seed: int = 0, pdfs: str = "clean", log: Callable[[str], None] = print) -> dict:  # fmt: skip
    """Plain and robust queries of a query set (`validation`, or `test`: test + test-chorales pieces).

    Tune on validation; report test once. Robust queries are read from `robust` (default
    <dataset>/robust); where that set was not built, the robust keys are absent and a line says so.
    With `pdfs` other than clean, the query pieces are indexed from that source's PDFs
    (benchmarks/pdf_sources.py) and every other piece from its clean PDF: use a library folder of its own."""
    if split not in SPLIT_GROUPS:
        raise ValueError(f"split must be one of {sorted(SPLIT_GROUPS)}, not {split!r}")
    queried = ds.built_pieces(dataset, SPLIT_GROUPS[split])
    ids = index_dataset(library, dataset, log=log,
                        pdf_for=lambda pid: source_pdf(dataset, pid, pdfs if pid in queried else "clean"))
    stray = set(library.counts()) - set(ids.values())
    if stray:  # e.g. the clean PDFs of the queried pieces beside their scans: two right answers
        raise ValueError(f"the library holds {len(stray)} pieces besides this dataset's {pdfs} ones: "
                         "give each --pdfs source a library folder of its own")
    calibration = Calibration.load(library.settings.calibration_path)
    pieces = [pid for pid in queried if pid in ids]
    # one generator per condition, so adding the robust set leaves the plain excerpts where they were
    plain = query_condition(library, calibration, ids, ((pid, read_recording(dataset, pid)) for pid in pieces),
                            np.random.default_rng(seed))  # fmt: skip
    result: dict = {"split": split, "pdfs": pdfs, "library_size": len(ids), "full": plain["full"],
                    "excerpt10s": plain["excerpt10s"],
                    "no_match_accuracy": _share(plain["right_match"] + plain["rejected"]),
                    # the two halves: a 10-s excerpt whose piece is in the library is answered with that
                    # piece (a correct match); one whose piece is left out is answered "no match"
                    "match_present": _share(plain["right_match"]), "no_match_absent": _share(plain["rejected"]),
                    # a match of any piece, right or wrong, when the piece is present
                    "present_answered_match": _share(plain["accepted"])}  # fmt: skip
    recordings = robust_queries(robust or robust_root(dataset), split)
    missing = [pid for pid in pieces if pid not in recordings]
    if not recordings:
        log(f"no robust query set for {split} (build it with `sheetid eval robust-queries --split {split}`)")
        return result
    if missing:
        log(f"robust set lacks {len(missing)} of {len(pieces)} pieces: {missing[:5]}")
    rendered = [pid for pid in pieces if pid in recordings]
    waves = ((pid, sf.read(recordings[pid], dtype="float32")[0]) for pid in rendered)
    rob = query_condition(library, calibration, ids, waves, np.random.default_rng(seed + 1))
    result |= {"robust_full": rob["full"], "robust_excerpt10s": rob["excerpt10s"],
               "robust_match_present": _share(rob["right_match"]),
               "robust_no_match_absent": _share(rob["rejected"]), "robust_missing": len(missing)}  # fmt: skip
    return result
