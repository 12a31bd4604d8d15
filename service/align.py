"""Offline audio-to-sheet alignment (paper §6): DTW on cross-modal cosine distances.

Rows of the cost matrix are audio excerpts, columns the piece's snippets in unrolled-strip order.
Whole recordings use global DTW; short excerpts use subsequence DTW (they may start and end anywhere
in the score). The path becomes audio time → (page, system, x, box on the page).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from indexer.errors import BadAudio, NotIndexed
from indexer.library import Library, PieceSnippets
from model.audio import FPS, SAMPLE_RATE

ALIGN_HOP_FRAMES = 2  # excerpt hop for alignment: 0.1 s resolution
SUBSEQ_RATIO = 0.6  # recordings shorter than this share of the score's expected length use subsequence DTW
STRIP_PX_PER_SECOND = 75.0  # rough engraving density (model-scale strip px per second at 120 bpm)


@dataclass
class AlignedPoint:
    time: float  # seconds into the recording
    page: int  # 1-based
    system: int
    x: float  # page px at the indexing DPI
    strip_x: float
    box: tuple[float, float, float, float]


@dataclass
class AlignedJump:
    """Where the performance leaves the printed order (a repeat, an ending, a da capo, a skip)."""

    time: float  # seconds into the recording of the first excerpt after the jump
    source: AlignedPoint  # the last position before the jump
    target: AlignedPoint  # the first position after it


@dataclass
class Alignment:
    piece_id: int
    subsequence: bool
    points: list[AlignedPoint]
    cost: np.ndarray  # (audio excerpts, snippets) cosine distances
    path: np.ndarray  # (L, 2) row/column pairs, ascending in time (columns may jump back)
    jumps: list[AlignedJump] = field(default_factory=list)


def dtw_path(cost: np.ndarray, subsequence: bool) -> np.ndarray:
    import librosa

    _, wp = librosa.sequence.dtw(C=cost, subseq=subsequence, backtrack=True)
    return np.asarray(wp[::-1])


def cost_matrix(library: Library, piece_id: int, wave: np.ndarray) -> tuple[np.ndarray, PieceSnippets, np.ndarray]:
    """(audio excerpt centre frames, the piece's snippets, cosine distances excerpts × snippets)."""
    snippets = library.piece_snippets(piece_id)
    if len(snippets.ids) == 0:
        raise NotIndexed(f"piece {piece_id} has no snippets for model {library.model_version}")
    centres, vectors = library.embed_recording(wave, ALIGN_HOP_FRAMES)
    if len(vectors) == 0:
        raise BadAudio("the recording is too short to align")
    return centres, snippets, (1.0 - vectors @ snippets.vectors.T).astype(np.float64)


def align(library: Library, piece_id: int, wave: np.ndarray, subsequence: bool | None = None) -> Alignment:
    centres, snippets, cost = cost_matrix(library, piece_id, wave)
    if subsequence is None:
        expected_s = (snippets.strip_x[-1] - snippets.strip_x[0]) / STRIP_PX_PER_SECOND
        subsequence = len(wave) / SAMPLE_RATE < SUBSEQ_RATIO * expected_s
    return monotone_alignment(piece_id, centres, snippets, cost, subsequence)


def monotone_alignment(piece_id: int, centres: np.ndarray, snippets: PieceSnippets, cost: np.ndarray,
                       subsequence: bool) -> Alignment:  # fmt: skip
    """Global (or subsequence) DTW over a `cost_matrix` result."""
    # librosa's subsequence DTW searches the shorter axis inside the longer one: the audio must be shorter.
    # (a plain bool: the length test above yields numpy's bool, which JSON output cannot carry)
    subsequence = bool(subsequence and cost.shape[0] <= cost.shape[1])
    path = dtw_path(cost, subsequence)
    return Alignment(piece_id, subsequence, points_of(path, centres, snippets), cost, path)


def points_of(path: np.ndarray, centres: np.ndarray, snippets: PieceSnippets) -> list[AlignedPoint]:
    """One point per audio excerpt: the mean strip position the path assigns to that row."""
    points = []
    for row in np.unique(path[:, 0]):
        cols = path[path[:, 0] == row, 1]
        col = int(np.round(np.median(cols)))
        strip_x = float(np.mean(snippets.strip_x[cols]))
        box = tuple(float(v) for v in snippets.boxes[col])
        points.append(AlignedPoint(time=float(centres[row]) / FPS, page=int(snippets.page[col]),
                                   system=int(snippets.system[col]), x=(box[0] + box[2]) / 2,
                                   strip_x=strip_x, box=box))  # type: ignore[arg-type]  # fmt: skip
    return points


def plot_cost(alignment: Alignment, out: Path) -> None:
    """Figure-6 style PNG: the cost matrix (dark = similar) with the DTW path in white."""
    from PIL import Image

    c = alignment.cost
    img = (255 * (c - c.min()) / (np.ptp(c) + 1e-9)).astype(np.uint8)
    rgb = np.stack([img] * 3, axis=-1)
    rgb[alignment.path[:, 0], alignment.path[:, 1]] = (255, 255, 255)
    Image.fromarray(rgb).save(out)
