"""Alignment evidence for the no-match answer: does the recording follow the top piece's score?

The votes and their temporal consistency rank the pieces, but in a library of hundreds of pieces an absent
piece's best stand-in collects nearly as many chance votes as a present piece does (README,
Identification). What chance cannot fake as easily is a path: the query's excerpts, in order, lying close
to the snippets of one piece, in order. So the best ranked pieces are each aligned to the query with the
jump-aware DTW (service/jumps.py: cheap jumps, starts and ends, since a query may be any stretch of a
piece, with repeats), and the confidence (service/identify.Calibration) weighs

- the mean cosine distance along the top piece's path, and
- how far the runner-ups' mean path distance lies above it.

On validation queries in 16-, 64- and 434-piece libraries, each answered by a calibration fitted without
its piece (`python -m benchmarks.confidence_features`), these two terms raised the share of present pieces
answered with their match at the same ≥ 90 % of absent ones kept out, at every size (README,
Identification). As a re-ranking, path costs did not clearly beat the votes (`python -m
benchmarks.shortlist_dtw`), so the order stays the votes'.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from service.jumps import Penalties, jump_dtw

VERIFIED = 5  # ranked pieces aligned to the query
# The query's excerpts aligned: at most this many from its middle (30 s at identify's 0.4-s hop). A whole
# recording's votes are already clear, and a path over 30 s tells a piece from a stand-in as well as one
# over ten minutes, at a fraction of the cost.
MAX_EXCERPTS = 75
# A query may be any stretch of a piece, played with repeats: starting, ending and jumping are cheap. In
# units of summed cosine distance (one cell costs 0-2), as in service/jumps.py.
PENALTIES = Penalties(jump=10.0, start=2.0, end=2.0, down=0.1)


class SnippetSource(Protocol):
    def piece_vectors(self, piece_id: int) -> np.ndarray: ...


@dataclass(frozen=True)
class PathEvidence:
    top_cost: float = 0.0  # mean cosine distance along the top piece's path
    runner_up_gap: float = 0.0  # the other verified pieces' mean path distance minus top_cost (0: none)


def path_cost(vectors: np.ndarray, snippets: np.ndarray) -> float:
    """Mean cosine distance along the cheapest jump-aware path of the query's excerpts through a piece."""
    cost = (1.0 - vectors @ snippets.T).astype(np.float64)
    path, _ = jump_dtw(cost, PENALTIES)
    return float(cost[path[:, 0], path[:, 1]].mean())


def path_evidence(library: SnippetSource, vectors: np.ndarray, ranked: list[int]) -> PathEvidence:
    """The path costs of the first VERIFIED of `ranked` against the query's excerpt `vectors` (unit rows)."""
    if not ranked or len(vectors) == 0:
        return PathEvidence()
    start = max(0, (len(vectors) - MAX_EXCERPTS) // 2)
    query = vectors[start : start + MAX_EXCERPTS]
    costs = []
    for piece in ranked[:VERIFIED]:
        snippets = library.piece_vectors(piece)
        costs.append(path_cost(query, snippets) if len(snippets) else 2.0)  # 2: the largest cosine distance
    gap = float(np.mean(costs[1:]) - costs[0]) if len(costs) > 1 else 0.0
    return PathEvidence(costs[0], gap)
