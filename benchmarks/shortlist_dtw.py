"""`python -m benchmarks.shortlist_dtw`: would a DTW check of identify's ranked pieces change top-1? (validation)

Issue 13 asked to measure again, on the stronger embedding, a second stage that verifies the shortlist by
alignment. For every query, identify() ranks its 10 best pieces (votes, then temporal consistency); each of
them is then aligned to the whole query with the jump-aware DTW of the confidence's check
(service/verify.path_cost: cheap jumps, starts and ends, since a query may be any part of a piece, with
repeats) on the index's own snippets, and scored by the mean cosine distance along the path. Top-1 is
counted for the shipped order, for the DTW score alone, and for consistency − λ · (path cost − the best
candidate's path cost); "wins" and "losses" count queries where a rule's top-1 is right and the shipped
one is wrong, and the reverse. Validation queries only: plain and
robust recordings, whole and random 10-s excerpts.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import soundfile as sf

from benchmarks.dataset_library import index_dataset, random_excerpt, read_recording
from benchmarks.robust import robust_queries, robust_root
from indexer.library import Library, open_library
from model.data import dataset as ds
from service.identify import identify
from service.verify import path_cost

LAMBDAS = (1.0, 4.0)


def path_costs(library: Library, wave: np.ndarray, candidates: list[int]) -> np.ndarray:
    """Mean cosine distance along each candidate's jump-aware DTW path against all the query's excerpts."""
    _, vectors = library.embed_recording(wave, library.settings.excerpt_hop)
    return np.array([path_cost(vectors, library.piece_vectors(piece)) for piece in candidates])


def queries(dataset: Path, excerpts: int, seed: int) -> list[tuple[str, str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    robust = robust_queries(robust_root(dataset), "validation")
    out = []
    for pid in ds.built_pieces(dataset, ["validation"]):
        sets = [("plain", read_recording(dataset, pid))]
        if pid in robust:
            sets.append(("robust", sf.read(robust[pid], dtype="float32")[0]))
        for kind, wave in sets:
            out.append((f"{kind} whole", pid, wave))
            out += [(f"{kind} 10s", pid, random_excerpt(wave, 10.0, rng)) for _ in range(excerpts)]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--library", type=Path, default=Path("data/corpus-library"))
    parser.add_argument("--dataset", type=Path, default=Path("data/dataset"))
    parser.add_argument("--excerpts", type=int, default=3, help="random 10-s excerpts per recording")
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    library = open_library(args.library)
    ids = index_dataset(library, args.dataset, log=lambda *_: None)
    rules = ["shipped", "dtw", *(f"consistency-{lam:g}*dtw" for lam in LAMBDAS)]
    top1: dict[str, dict[str, int]] = {}
    paired = {rule: {"wins": 0, "losses": 0} for rule in rules[1:]}
    for condition, pid, wave in queries(args.dataset, args.excerpts, args.seed):
        result = identify(library, wave)
        ranked = [p.id for p in result.pieces]
        row = top1.setdefault(condition, {"queries": 0, "in_top10": 0} | {rule: 0 for rule in rules})
        row["queries"] += 1
        row["in_top10"] += ids[pid] in ranked
        if not ranked:
            continue
        cost = path_costs(library, wave, ranked)
        consistency = np.array([p.consistency for p in result.pieces])
        picks = {"shipped": 0, "dtw": int(np.argmin(cost))}
        for lam in LAMBDAS:
            picks[f"consistency-{lam:g}*dtw"] = int(np.argmax(consistency - lam * (cost - cost.min())))
        right = {rule: ranked[i] == ids[pid] for rule, i in picks.items()}
        for rule in rules:
            row[rule] += right[rule]
        for rule in rules[1:]:
            paired[rule]["wins"] += right[rule] and not right["shipped"]
            paired[rule]["losses"] += right["shipped"] and not right[rule]
    print(json.dumps({"model": library.model_version, "top1": top1, "paired": paired}))


if __name__ == "__main__":
    main()
