"""Which ranking names the right piece first: votes alone, temporal consistency alone, or both (validation).

identify() ranks a shortlist of 30 pieces by vote z-score; `Settings.rerank` re-ranks it by temporal
consistency plus `rerank_vote_weight` × the z-score per √(votes cast) (weight 0: consistency
alone, the ranking shipped before). Each validation recording (plain and, where built, robust) is asked
whole and as `excerpts` random 10-s excerpts against the full library under each ranking; more queries
than `sheetid eval identify` asks (one excerpt each), for a comparison that 14 pieces can support.
Top-1 counts per condition, and per ranking the queries it won and lost against the first one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from benchmarks.calibrate import calibration_queries
from benchmarks.dataset_library import index_dataset, random_excerpt
from benchmarks.identify import EXCERPT_SECONDS
from indexer.library import Library
from indexer.library_view import LibraryView
from service.identify import identify

RANKINGS: dict[str, dict[str, object]] = {  # name → Settings fields
    "consistency": {"rerank": True, "rerank_vote_weight": 0.0},
    "votes": {"rerank": False},
    "votes+consistency": {"rerank": True, "rerank_vote_weight": 1.0},
}
EXCERPTS = 5  # random 10-s excerpts per recording


def evaluate_ranking(library: Library, dataset: Path, excerpts: int = EXCERPTS, seed: int = 0,
                     log: Callable[[str], None] = print, rankings: Mapping[str, dict[str, object]] = RANKINGS,
                     views: Mapping[str, Callable[[Library], LibraryView]] | None = None) -> dict:  # fmt: skip
    """Top-1 per condition under each of `rankings` (name → Settings fields); a ranking named in `views`
    asks the view of the library that it makes (another search, say) instead of the library itself."""
    views = views or {}
    ids = index_dataset(library, dataset, log=log)
    rng = np.random.default_rng(seed)
    base = library.settings
    right: dict[str, list[bool]] = {name: [] for name in rankings}
    condition: list[str] = []
    try:
        for cond, pid, wave in calibration_queries(dataset):
            clips = [random_excerpt(wave, EXCERPT_SECONDS, rng) for _ in range(excerpts)]
            queries = [("full", wave)] + [("excerpt10s", clip) for clip in clips]
            for length, query in queries:
                condition.append(f"{cond}_{length}")
                for name, fields in rankings.items():
                    library.settings = base.model_copy(update=fields)
                    r = identify(views[name](library) if name in views else library, query)
                    right[name].append(bool(r.pieces) and r.pieces[0].id == ids[pid])
            log(f"{cond} {pid}: done")
    finally:  # the caller's library keeps its own settings, also when a query fails
        library.settings = base
    first = np.array(right[next(iter(rankings))])
    out: dict = {"queries": len(condition), "excerpts_per_recording": excerpts}
    for name, flags in right.items():
        hits = np.array(flags)
        out[name] = {c: int(hits[[k == c for k in condition]].sum()) for c in sorted(set(condition))}
        out[name] |= {"total": int(hits.sum()), "won": int((hits & ~first).sum()), "lost": int((~hits & first).sum())}
    out["queries_per_condition"] = {c: condition.count(c) for c in sorted(set(condition))}
    return out
