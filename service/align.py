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
from model.audio import FPS, SAMPLE_RATE, spectrogram
from model.embed import nearest

ALIGN_HOP_FRAMES = 2  # excerpt hop for alignment: 0.1 s resolution
SUBSEQ_RATIO = 0.6  # recordings shorter than this share of the score's expected length use subsequence DTW
# Sheet grid of the cost matrix's columns, strip px. The index holds a snippet every 16 px (enough to
# vote); the alignment re-embeds the piece's stored pages every 8 px (about a second a page on CPU), which
# cut the median plain-DTW error on validation from 0.0421 to 0.0295 page widths
# (`sheetid eval align --split validation --sheet-hop 16|8`).
ALIGN_SHEET_HOP = 8
# The recording is read as played and as if played 0.7 times as fast (model.audio.at_tempo, as identification
# asks it: indexer Settings.query_tempi), and the cost is the mean of the two views' cosine distances. A
# 2.4-s excerpt as played holds more music than a 128-px snippet shows; slowed, about as much; each view
# alone is noisier than their mean. Validation, `sheetid eval align --split validation --tempi 1.0` against
# the default: plain DTW 0.0189 -> 0.0173 page widths, repeats (jump-aware) 0.0184 -> 0.0169 (README, Alignment).
ALIGN_TEMPI = (1.0, 0.7)
# The strip is likewise read as engraved and 1.2 times as wide (model.sheet.at_width: a snippet then shows
# less music), and the cost is the mean over every pair of a recording reading and a strip reading.
# Validation, `sheetid eval align --split validation --widths 1.0` against the default: plain DTW 0.0173 ->
# 0.0169, repeats (jump-aware) 0.0169 -> 0.0161; 1.1, 1.3 and 1.2 + 1.4 did less (README, Alignment).
ALIGN_SHEET_WIDTHS = (1.0, 1.2)
# Strip px after each system's first window where the wider readings give way to the engraved one: read
# wider there, a validation piece played first half twice jumped back too late (tests/test_jumps.py).
WIDER_AFTER_PX = 128
STRIP_PX_PER_SECOND = 75.0  # rough engraving density (model-scale strip px per second at 120 bpm)


@dataclass(frozen=True)
class Placement:
    """How a DTW path becomes a position per excerpt (points_of). Chosen on validation with
    `sheetid eval align --split validation --smooth S --header H` (README, "Alignment")."""

    # The path's position, placed between its steps, wobbles from excerpt to excerpt around the music's
    # steady progress: a centred moving average over this many seconds (per stretch between jumps)
    # follows the tempo and drops the wobble.
    smooth_seconds: float = 4.0
    # Strip px after each system's first snippet where no time passes (clef, key and time signature):
    # placed on the strip itself, a position crossing a system break spends time in the next system's
    # header and is there before the last notes of the system before are over (see _MusicAxis).
    header_px: float = 20.0


PLACEMENT = Placement()  # the service's


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
    cost: np.ndarray  # (audio excerpts, snippets) cosine distances, the mean over ALIGN_TEMPI × ALIGN_SHEET_WIDTHS
    path: np.ndarray  # (L, 2) row/column pairs, ascending in time (columns may jump back)
    jumps: list[AlignedJump] = field(default_factory=list)


def dtw_path(cost: np.ndarray, subsequence: bool) -> np.ndarray:
    import librosa

    _, wp = librosa.sequence.dtw(C=cost, subseq=subsequence, backtrack=True)
    return np.asarray(wp[::-1])


def cost_matrix(library: Library, piece_id: int, wave: np.ndarray, sheet_hop: int = ALIGN_SHEET_HOP,
                tempi: tuple[float, ...] = ALIGN_TEMPI, widths: tuple[float, ...] = ALIGN_SHEET_WIDTHS,
                wider_after_px: float = WIDER_AFTER_PX) -> tuple[np.ndarray, PieceSnippets, np.ndarray]:  # fmt: skip
    """(audio excerpt centre frames, the piece's snippets every `sheet_hop` px, cosine distances excerpts ×
    snippets, averaged over every pair of the recording read at one of `tempi` and the strip read at one
    of `widths`). Rows are the excerpts as played, every ALIGN_HOP_FRAMES; another tempo's excerpt nearest
    in time stands in for each. Columns are the strip's windows as engraved; another width's window nearest
    in place stands in for each, except within `wider_after_px` of a system's first window, where the
    engraved one does. On the index's own grid, at width 1.0 only, the stored vectors are used; otherwise
    the pages are re-embedded."""
    snippets = library.piece_snippets(piece_id)
    if len(snippets.ids) == 0:
        raise NotIndexed(f"piece {piece_id} has no snippets for model {library.model_version}")
    if sheet_hop != library.settings.snippet_hop or set(widths) != {1.0}:
        snippets = library.dense_snippets(piece_id, sheet_hop, widths)
    spec = spectrogram(wave)
    centres, played = library.embed_spectrogram(spec, ALIGN_HOP_FRAMES)
    if len(played) == 0:
        raise BadAudio("the recording is too short to align")
    sheet = [snippets.vectors if width == 1.0 else _engraved_at_system_starts(snippets, width, wider_after_px)
             for width in widths]  # fmt: skip
    cost = np.zeros((len(centres), len(snippets.ids)))
    for tempo in tempi:
        vectors = played
        if tempo != 1.0:
            at, read = library.embed_spectrogram(spec, ALIGN_HOP_FRAMES, tempo)
            vectors = read[nearest(at, centres)]
        for snippet_vectors in sheet:
            cost += 1.0 - vectors @ snippet_vectors.T
    return centres, snippets, cost / (len(tempi) * len(sheet))


def _engraved_at_system_starts(snippets: PieceSnippets, width: float, after_px: float) -> np.ndarray:
    """The snippets' vectors read at `width`, but as engraved within `after_px` of each system's first."""
    systems, first = np.unique(snippets.system, return_index=True)
    into = snippets.strip_x - snippets.strip_x[first][np.searchsorted(systems, snippets.system)]
    return np.where((into < after_px)[:, None], snippets.vectors, snippets.vectors_at_width[width])


def is_excerpt(seconds: float, snippets: PieceSnippets) -> bool:
    """A recording much shorter than the score takes to play is a part of it, not the whole."""
    expected_s = (snippets.strip_x[-1] - snippets.strip_x[0]) / STRIP_PX_PER_SECOND
    return bool(seconds < SUBSEQ_RATIO * expected_s)


def align(library: Library, piece_id: int, wave: np.ndarray, subsequence: bool | None = None) -> Alignment:
    centres, snippets, cost = cost_matrix(library, piece_id, wave)
    if subsequence is None:
        subsequence = is_excerpt(len(wave) / SAMPLE_RATE, snippets)
    return monotone_alignment(piece_id, centres, snippets, cost, subsequence)


def monotone_alignment(piece_id: int, centres: np.ndarray, snippets: PieceSnippets, cost: np.ndarray,
                       subsequence: bool, placement: Placement = PLACEMENT) -> Alignment:  # fmt: skip
    """Global (or subsequence) DTW over a `cost_matrix` result."""
    # librosa's subsequence DTW searches the shorter axis inside the longer one: the audio must be shorter.
    # (a plain bool: the length test above yields numpy's bool, which JSON output cannot carry)
    subsequence = bool(subsequence and cost.shape[0] <= cost.shape[1])
    path = dtw_path(cost, subsequence)
    return Alignment(piece_id, subsequence, points_of(path, centres, snippets, placement), cost, path)


def points_of(path: np.ndarray, centres: np.ndarray, snippets: PieceSnippets,
              placement: Placement = PLACEMENT) -> list[AlignedPoint]:  # fmt: skip
    """One point per audio excerpt. The path's raw position is a staircase on the snippet grid: many
    excerpts in a row sit on one snippet while the music moves on. Each step of the stair stands for its
    middle excerpt, the excerpts between two such middles are placed linearly between their snippets, and
    the result is smoothed, within each stretch between two jumps of the path, on a strip axis without
    the systems' headers; then placed on the page."""
    rows = np.unique(path[:, 0])
    warp = _MusicAxis(snippets, placement.header_px)
    raw = warp.to_music(np.array([float(np.mean(snippets.strip_x[path[path[:, 0] == row, 1]])) for row in rows]))
    steps = np.diff(path, axis=0)
    jumped = path[1:, 0][(steps[:, 1] < 0) | (steps[:, 1] > 1)]  # rows entered by a jump (back or ahead)
    cuts = [0, *np.searchsorted(rows, jumped), len(rows)]
    window = max(1, int(round(placement.smooth_seconds * FPS / ALIGN_HOP_FRAMES)) | 1)
    music = np.concatenate([_smoothed(_between_steps(rows[a:b].astype(np.float64), raw[a:b]), window)
                            for a, b in zip(cuts[:-1], cuts[1:], strict=True) if b > a])  # fmt: skip
    strip_x = np.clip(warp.to_strip(music), snippets.strip_x[0], snippets.strip_x[-1])  # smoothing's end lines
    points = []
    for row, x in zip(rows, strip_x, strict=True):
        page, system, page_x, box = _on_page(snippets, float(x))
        points.append(AlignedPoint(time=float(centres[row]) / FPS, page=page, system=system, x=page_x,
                                   strip_x=float(x), box=box))  # fmt: skip
    return points


class _MusicAxis:
    """Strip x without the first `header_px` of each system (from its first snippet), where no time passes."""

    def __init__(self, snippets: PieceSnippets, header_px: float) -> None:
        key = np.asarray(snippets.page, np.int64) * 100_000 + np.asarray(snippets.system, np.int64)
        starts = snippets.strip_x[np.r_[0, np.flatnonzero(np.diff(key) != 0) + 1]]
        ends = np.r_[starts[1:], np.inf]
        header = np.minimum(header_px, np.maximum(ends - starts - 1e-3, 0.0))
        self.starts, self.header = starts, header
        before = np.r_[0.0, np.cumsum(header)[:-1]]  # header px removed before each system
        # knots of the inverse: system s's music begins at strip x start + header, music x start − before
        self.music_knots = np.ravel(np.column_stack([starts - before - 1e-6, starts - before]))
        self.strip_knots = np.ravel(np.column_stack([starts, starts + header]))

    def to_music(self, x: np.ndarray) -> np.ndarray:
        return x - np.clip(x[:, None] - self.starts[None, :], 0.0, self.header[None, :]).sum(axis=1)

    def to_strip(self, u: np.ndarray) -> np.ndarray:
        if len(self.starts) == 0 or not self.header.any():
            return u.copy()
        far = 1e9  # beyond the first and last knot, slope 1
        xp = np.r_[self.music_knots[0] - far, self.music_knots, self.music_knots[-1] + far]
        fp = np.r_[self.strip_knots[0] - far, self.strip_knots, self.strip_knots[-1] + far]
        return np.interp(u, xp, fp)


def _between_steps(t: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Linear interpolation between the middles of the staircase's steps (one stretch without jumps)."""
    starts = np.concatenate([[0], np.flatnonzero(np.diff(x) != 0) + 1])
    ends = np.concatenate([starts[1:], [len(x)]])
    if len(starts) < 2:
        return x.copy()
    return np.interp(t, (t[starts] + t[ends - 1]) / 2, x[starts])


def _smoothed(x: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average over `window` points (odd); near the stretch's ends, a straight line fitted
    to the first or last window (Savitzky-Golay of order 1), so a steady progress is not bent there."""
    from scipy.signal import savgol_filter

    window = min(window, len(x) if len(x) % 2 else len(x) - 1)
    return x.copy() if window < 3 else np.asarray(savgol_filter(x, window, 1, mode="interp"))


def _on_page(snippets: PieceSnippets, strip_x: float) -> tuple[int, int, float, tuple[float, float, float, float]]:
    """(page, system, page x, box) of a strip position: between two snippets of one system, the box
    slides linearly from one to the other; across a system break, the nearer snippet's."""
    n = len(snippets.strip_x)
    j = int(np.clip(np.searchsorted(snippets.strip_x, strip_x), 1, n - 1)) if n > 1 else 0
    i = max(0, j - 1)
    x0, x1 = float(snippets.strip_x[i]), float(snippets.strip_x[j])
    w = float(np.clip((strip_x - x0) / (x1 - x0), 0.0, 1.0)) if x1 > x0 else 0.0
    if snippets.system[i] != snippets.system[j] or snippets.page[i] != snippets.page[j]:
        i = j = i if w < 0.5 else j
        w = 0.0
    box_arr = (1 - w) * snippets.boxes[i].astype(np.float64) + w * snippets.boxes[j].astype(np.float64)
    box = (float(box_arr[0]), float(box_arr[1]), float(box_arr[2]), float(box_arr[3]))
    nearest = i if w < 0.5 else j
    return int(snippets.page[nearest]), int(snippets.system[nearest]), (box[0] + box[2]) / 2, box


def plot_cost(alignment: Alignment, out: Path) -> None:
    """Figure-6 style PNG: the cost matrix (dark = similar) with the DTW path in white."""
    from PIL import Image

    c = alignment.cost
    img = (255 * (c - c.min()) / (np.ptp(c) + 1e-9)).astype(np.uint8)
    rgb = np.stack([img] * 3, axis=-1)
    rgb[alignment.path[:, 0], alignment.path[:, 1]] = (255, 255, 255)
    Image.fromarray(rgb).save(out)
