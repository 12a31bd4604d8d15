"""Alignment that follows repeats, endings, da capo and skips: DTW whose path may jump in the score.

Global DTW (service/align.py) walks the score once, left to right. A performer who plays a section
twice breaks that: the monotone path must stretch or squash the repeat over the wrong bars. Here the
dynamic programme over the cross-modal cost matrix (rows: audio excerpts, columns: snippets in strip
order) gets, besides DTW's three local steps, a jump transition in the spirit of JumpDTW (Fremerey,
Müller and Clausen, ISMIR 2010): from any cell of the previous row to any column of this row, at a fixed
penalty. The path may also start and end away from the score's first and last snippet, at a penalty, so
an excerpt from the middle of a piece needs no separate mode.

The local steps are librosa's global DTW (D[n, m] = C[n, m] + min of the three predecessors), but an
excerpt that stays on its predecessor's snippet pays DOWN_PENALTY, so that the path cannot skip music
and park on one cheap snippet instead. Where no jump, late start or early end pays for its penalty, the
alignment is global DTW's own path, as the API gave it before jumps. Each row costs a few vectorised
operations, so a ten-minute recording of a seven-page score takes about a second.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from indexer.library import Library, PieceSnippets
from model.audio import FPS
from service.align import (
    ALIGN_HOP_FRAMES,
    PLACEMENT,
    AlignedJump,
    Alignment,
    Placement,
    cost_matrix,
    dtw_path,
    is_excerpt,
    points_of,
)

# Penalties in units of summed cosine distance (one cell of the cost matrix costs 0–2). Chosen on the
# validation split (`sheetid eval align --split validation --penalty ...`, old embedding, 7 pieces, 5 with
# repeats): of 8/4/4, 30/8/8, 60/15/15, 100/30/30 and 200/60/60, 30/8/8 had the lowest error on renditions
# with repeats (0.032 page widths against 0.094 for 60/15/15; global DTW 0.224). With the sheet columns
# every 8 px instead of 16 (service/align.py ALIGN_SHEET_HOP) a path walks twice as many cells, and of 13
# settings on validation (`sheetid eval align --split validation --sheet-hop 8 --penalty ...`) start and end
# at 16 gave mid-piece excerpts the best figures with repeats unchanged. Retune with a new model.
# With DOWN_PENALTY (below) jumps of 20, 25 and 30 tied on validation (repeats 95.1 % on the right system,
# plain and excerpts equal); 20 also takes the jump back in a validation piece whose first half is
# played twice (tests/test_jumps.py), which 30 stretched over.
JUMP_PENALTY = 20.0  # a jump must save this much cost over the path without it
START_PENALTY = 16.0  # starting after the score's first snippet (a recording that begins mid-piece)
END_PENALTY = 16.0  # ending before the score's last snippet
# With v2-a14b111f1158 the path could skip the score's first systems and "park" on one cheap snippet for
# many excerpts (a hub: close to much of the audio): parking, then starting late, cost less than the true
# path. A cost per excerpt that stays on a snippet (a DOWN step) makes parking pay. On validation, of
# 0.1–0.5 (`sheetid eval align --split validation --penalty 30,16,16,0,D,E`), 0.3 put the most onsets
# of renditions with repeats on the right system (95.1 % against 90.7 % without) with the plain ones
# unchanged; 0.4 and 0.5 lost plain onsets. Re-checked with v2-3fc2f2a953c5 (same command, D of 0.1-0.4):
# 0.2 put 96.9 % of the repeats' onsets on the right system against 96.4 %, but the validation piece
# played first half twice (tests/test_jumps.py) then no longer jumps back: 0.3 stays (README, Alignment).
DOWN_PENALTY = 0.3
# A recording much shorter than the score (service.align.is_excerpt) is expected to start and end
# anywhere: its start and end penalties are this instead (of 0, 4 and 8, 4 and 0 tied on validation's
# mid-piece excerpts, 92.5 % of onsets on the right system against 89.3 % at 8 and 80.5 % at 16).
EXCERPT_END_PENALTY = 4.0

DIAGONAL, DOWN, JUMP, RIGHT, START = range(5)  # how the path entered a cell


@dataclass(frozen=True)
class Penalties:
    jump: float = JUMP_PENALTY
    start: float = START_PENALTY
    end: float = END_PENALTY
    hubs: float = 0.0  # 1: measure each snippet against its own median distance (see without_hubs)
    down: float = DOWN_PENALTY  # per excerpt that stays on the snippet of the excerpt before
    excerpt_ends: float = EXCERPT_END_PENALTY  # start and end penalty of an excerpt (see is_excerpt)


def without_hubs(cost: np.ndarray, weight: float) -> np.ndarray:
    """Cost relative to each snippet's median distance to the whole recording (times `weight`).

    Some snippets (a clef and key signature at a system start, a bar of rests) are close to much of the
    audio. A monotone path passes them once; a path that may jump can park on one of them for many
    excerpts and jump away later, which is cheaper than the true path. Subtracting each column's median
    takes that advantage away, and adding the overall median back keeps the scale of the penalties."""
    if weight == 0.0:
        return cost
    column_median = np.median(cost, axis=0, keepdims=True)
    return cost - weight * (column_median - float(np.median(column_median)))


def jump_dtw(cost: np.ndarray, penalties: Penalties = Penalties()) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
    """Cheapest path through `cost` (rows ascending) with jumps; returns (path (L, 2), jumps).

    Each jump is (row, source column in row − 1, target column in row)."""
    n_rows, n_cols = cost.shape
    steps = np.empty((n_rows, n_cols), dtype=np.uint8)
    jump_source = np.zeros(n_rows, dtype=np.int64)  # the column every jump into row n leaves from
    # Row 0: enter at column 0 for free, or anywhere else for the start penalty, then walk right.
    entry = np.full(n_cols, penalties.start)
    entry[0] = 0.0
    total = _row_scan(cost[0], entry, steps[0], np.full(n_cols, START, np.uint8))
    for n in range(1, n_rows):
        prev = total
        diagonal = np.concatenate([[np.inf], prev[:-1]])
        best_prev = int(np.argmin(prev))
        jump_source[n] = best_prev
        jump = prev[best_prev] + penalties.jump
        down = prev + penalties.down
        entry = np.minimum(diagonal, down)
        codes = np.where(diagonal <= down, DIAGONAL, DOWN).astype(np.uint8)
        take_jump = jump < entry
        entry = np.where(take_jump, jump, entry)
        codes[take_jump] = JUMP
        total = _row_scan(cost[n], entry, steps[n], codes)
    # End at the last column for free, or anywhere else for the end penalty.
    finish = total + penalties.end
    finish[-1] = total[-1]
    m = int(np.argmin(finish))
    n = n_rows - 1
    path, jumps = [(n, m)], []
    while True:
        step = steps[n, m]
        if step == START:
            break
        if step == RIGHT:
            m -= 1
        elif step == DIAGONAL:
            n, m = n - 1, m - 1
        elif step == DOWN:
            n -= 1
        else:
            jumps.append((n, int(jump_source[n]), m))
            n, m = n - 1, int(jump_source[n])
        path.append((n, m))
    return np.array(path[::-1], dtype=np.int64), jumps[::-1]


def _row_scan(row_cost: np.ndarray, entry: np.ndarray, steps: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """D[m] = row_cost[m] + min(entry[m], D[m − 1]) for a whole row at once (a running minimum).

    Unrolled, D[m] = S[m] + min over k ≤ m of (entry[k] − S[k − 1]) with S the cumulative row cost, so
    np.minimum.accumulate does the left-to-right recursion. Writes each cell's step code into `steps`."""
    cumulative = np.cumsum(row_cost)
    own = entry + row_cost - cumulative  # entering at k, before the cells k+1..m are added
    running = np.minimum.accumulate(own)
    steps[:] = np.where(running < own, RIGHT, codes)
    return cumulative + running


def align_with_jumps(library: Library, piece_id: int, wave: np.ndarray,
                     penalties: Penalties = Penalties()) -> Alignment:  # fmt: skip
    """Audio time → score position, following the performance through repeats and jumps."""
    return jump_alignment(piece_id, *cost_matrix(library, piece_id, wave), penalties)


def jump_alignment(piece_id: int, centres: np.ndarray, snippets: PieceSnippets, cost: np.ndarray,
                   penalties: Penalties = Penalties(), placement: Placement = PLACEMENT) -> Alignment:  # fmt: skip
    """Jump-aware DTW over a `cost_matrix` result; `subsequence` says whether the path starts or ends
    away from the score's ends."""
    if is_excerpt(len(centres) * ALIGN_HOP_FRAMES / FPS, snippets):
        penalties = replace(penalties, start=penalties.excerpt_ends, end=penalties.excerpt_ends)
    path, jumps = jump_dtw(without_hubs(cost, penalties.hubs), penalties)
    if not jumps and path[0, 1] == 0 and path[-1, 1] == cost.shape[1] - 1:
        path = dtw_path(cost, subsequence=False)  # no jump paid off: global DTW on the raw cost, as before
    points = points_of(path, centres, snippets, placement)
    by_row = {int(row): i for i, row in enumerate(np.unique(path[:, 0]))}
    aligned = [AlignedJump(time=points[by_row[row]].time, source=points[by_row[row - 1]], target=points[by_row[row]])
               for row, _, _ in jumps]  # fmt: skip
    subsequence = bool(path[0, 1] != 0 or path[-1, 1] != cost.shape[1] - 1)
    return Alignment(piece_id, subsequence, points, cost, path, aligned)
