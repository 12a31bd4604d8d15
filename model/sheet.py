"""Sheet front-end: page image → staff systems → one unrolled strip → fixed-size snippets.

The training data and the indexer both go through `unroll` (model/embed.py cuts the windows), so a snippet from a
verovio raster during training and one cut from a user's PDF look alike: every system is rescaled so its
staff-line spacing is exactly STAFF_SPACE pixels, whatever the engraver or resolution.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image

STAFF_SPACE = 4.5  # px between staff lines in the strip (model scale; paper's 180 px snippet halved)
STRIP_HEIGHT = 90  # px; strip and snippet height, centred on the system's middle
INK_THRESHOLD = 192  # grey level below which a page pixel counts as ink (thin lines rasterise grey)
LINE_MIN_LENGTH = 0.08  # a staff line runs unbroken over at least this share of the page width
SPACING_TOLERANCE = 0.3  # max relative spread of the four gaps within one 5-line staff
LENGTH_RATIO = 2.0  # lines of one staff differ in length by at most this factor (beams are shorter)
BARLINE_FILL = 0.9  # share of a column between two staves that must be ink to join them in a system
BARLINE_INK = 230  # grey level below which a pixel of a (thin, anti-aliased) barline counts as ink


@dataclass(frozen=True)
class System:
    """One staff system on a page, in page pixels."""

    page: int  # 0-based page index
    top: float  # y of the first staff line
    bottom: float  # y of the last staff line
    left: float  # x where the staff lines start
    right: float  # x where the staff lines end
    staff_space: float  # distance between adjacent staff lines

    @property
    def scale(self) -> float:
        """Factor that maps page pixels of this system to strip pixels."""
        return STAFF_SPACE / self.staff_space

    @property
    def centre(self) -> float:
        return (self.top + self.bottom) / 2.0

    def to_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


@dataclass
class Strip:
    """All systems of a piece side by side, at model scale; ink is 255, paper is 0."""

    image: np.ndarray  # (STRIP_HEIGHT, W) uint8
    systems: list[System]
    offsets: np.ndarray  # (n_systems,) strip x where each system starts

    def strip_x(self, system: int, page_x: np.ndarray | float) -> np.ndarray:
        """Map page x positions inside `system` to strip x."""
        s = self.systems[system]
        return self.offsets[system] + (np.asarray(page_x, dtype=np.float64) - s.left) * s.scale

    def locate(self, strip_x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Map strip x positions back to (system index, page x)."""
        strip_x = np.asarray(strip_x, dtype=np.float64)
        sys_idx = np.clip(np.searchsorted(self.offsets, strip_x, side="right") - 1, 0, len(self.systems) - 1)
        lefts = np.array([s.left for s in self.systems])
        scales = np.array([s.scale for s in self.systems])
        return sys_idx, lefts[sys_idx] + (strip_x - self.offsets[sys_idx]) / scales[sys_idx]


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) index pairs of consecutive True values in a 1-d mask, end exclusive."""
    padded = np.concatenate([[False], mask, [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def _line_extent(row: np.ndarray) -> tuple[int, int]:
    """Longest ink run of a staff-line row: where the line starts and ends."""
    runs = _runs(row)
    return max(runs, key=lambda r: r[1] - r[0]) if runs else (0, 0)


def _longest_runs(ink: np.ndarray) -> np.ndarray:
    """Length of the longest horizontal ink run in every row."""
    cols = np.arange(ink.shape[1])[None, :]
    last_gap = np.maximum.accumulate(np.where(ink, -1, cols), axis=1)
    return (cols - last_gap).max(axis=1)


def _staves(page: np.ndarray, ink: np.ndarray) -> list[tuple[np.ndarray, int, int]]:
    """Find 5-line staves: (line y centres, left, right) top to bottom."""
    # A staff-line row holds a long unbroken run; a thin line may straddle two rows, so join each row
    # with its neighbour below before measuring.
    longest = _longest_runs(ink | np.vstack([ink[1:], ink[-1:]]))
    darkness = (255.0 - page.astype(np.float32)).sum(axis=1)
    lines, line_lengths = [], []
    for a, b in _runs(longest >= LINE_MIN_LENGTH * ink.shape[1]):
        # A beam lying on or between lines widens the run, and dense beams can bridge two staff lines
        # into one run; only rows as long as the longest line count, and each band of them is a line.
        seg = longest[a:b]
        for c, d in _runs(seg >= 0.9 * seg.max()):
            rows = np.arange(a + c, a + d)
            lines.append(float(np.average(rows, weights=darkness[rows] + 1e-6)))
            line_lengths.append(int(seg[c:d].max()))
    lengths = np.array(line_lengths)
    staves: list[tuple[np.ndarray, int, int]] = []
    if len(lines) < 5:
        return staves
    ys = np.array(lines)
    long_rows = ys[lengths >= 0.5 * lengths.max()]
    gaps = np.diff(long_rows)
    gaps = gaps[(gaps > 2.5) & (gaps < 0.05 * page.shape[0])]
    if len(gaps) == 0:
        return staves
    space = float(np.median(gaps))
    used = np.zeros(len(ys), dtype=bool)
    for i, y in enumerate(ys):
        if used[i]:
            continue
        # A staff is a line followed by four more of similar length at one staff space each; other long
        # rows in between (beams, slurs, text) are skipped rather than breaking the staff. Stacked beams
        # can be spaced like staff lines, but they are much shorter than the lines they sit beside.
        similar = (lengths >= lengths[i] / LENGTH_RATIO) & (lengths <= lengths[i] * LENGTH_RATIO)
        cand = np.where(similar, ys, np.inf)
        picked, prev = [i], y
        for _ in range(4):
            j = int(np.argmin(np.abs(cand - (prev + space))))
            if used[j] or j in picked or abs(cand[j] - prev - space) > SPACING_TOLERANCE * space:
                break
            picked.append(j)
            prev = ys[j]
        if len(picked) < 5:
            continue
        used[picked] = True
        staff = ys[picked]
        bands = [np.asarray(ink[max(0, int(v) - 1) : int(v) + 2].any(axis=0)) for v in staff]
        extents = [_line_extent(band) for band in bands]
        staves.append((staff, int(np.median([e[0] for e in extents])), int(np.median([e[1] for e in extents]))))
    return staves


def _joined(page: np.ndarray, upper: tuple[np.ndarray, int, int], lower: tuple[np.ndarray, int, int]) -> bool:
    """True when a vertical line (system barline or brace) bridges the gap between two staves.

    A one-pixel barline often rasterises light grey, so the test is lenient about darkness and lets each
    row's ink sit in the column or its neighbours.
    """
    y0, y1 = int(np.ceil(upper[0][-1])), int(np.floor(lower[0][0]))
    left, right = max(upper[1], lower[1]), min(upper[2], lower[2])
    if y1 <= y0 or right <= left:
        return False
    gap = page[y0:y1, max(0, left - 4) : right + 2] < BARLINE_INK
    near = gap[:, 1:-1] | gap[:, :-2] | gap[:, 2:]
    return bool(near.size and (near.mean(axis=0) >= BARLINE_FILL).any())


def detect_systems(page: np.ndarray, page_index: int = 0) -> list[System]:
    """Staff systems on a greyscale page (paper white): staves found from row projections, then
    grouped into systems where a barline or brace joins neighbouring staves."""
    if page.ndim != 2:
        raise ValueError("expected a greyscale page")
    ink = page < INK_THRESHOLD
    staves = _staves(page, ink)
    groups: list[list[tuple[np.ndarray, int, int]]] = []
    for staff in staves:
        if groups and _joined(page, groups[-1][-1], staff):
            groups[-1].append(staff)
        else:
            groups.append([staff])
    systems = []
    for group in groups:
        spaces = [(s[0][-1] - s[0][0]) / 4.0 for s in group]
        systems.append(
            System(
                page=page_index,
                top=float(group[0][0][0]),
                bottom=float(group[-1][0][-1]),
                left=float(min(s[1] for s in group)),
                right=float(max(s[2] for s in group)),
                staff_space=float(np.median(spaces)),
            )
        )
    return systems


def _system_image(page: np.ndarray, system: System) -> np.ndarray:
    """One system cut from its page, rescaled to STAFF_SPACE and inverted (ink 255)."""
    f = system.scale
    half = STRIP_HEIGHT / (2.0 * f)
    y0, y1 = int(round(system.centre - half)), int(round(system.centre + half))
    x0, x1 = int(round(system.left)), int(round(system.right))
    h, w = page.shape
    crop = np.full((y1 - y0, max(1, x1 - x0)), 255, dtype=np.uint8)
    sy0, sy1, sx0, sx1 = max(0, y0), min(h, y1), max(0, x0), min(w, x1)
    if sy1 > sy0 and sx1 > sx0:
        crop[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = page[sy0:sy1, sx0:sx1]
    out_w = max(1, int(round((x1 - x0) * f)))
    resized = Image.fromarray(crop).resize((out_w, STRIP_HEIGHT), Image.Resampling.LANCZOS)
    return 255 - np.asarray(resized, dtype=np.uint8)


def unroll(pages: Sequence[np.ndarray], systems: Sequence[System]) -> Strip:
    """Concatenate the systems of a piece, in reading order, into one strip at model scale."""
    if not systems:
        raise ValueError("no staff systems to unroll")
    images = [_system_image(pages[s.page], s) for s in systems]
    widths = np.array([im.shape[1] for im in images])
    offsets = np.concatenate([[0], np.cumsum(widths)[:-1]]).astype(np.float64)
    return Strip(image=np.concatenate(images, axis=1), systems=list(systems), offsets=offsets)
