"""Sheet front-end: page image → staff systems → one unrolled strip → fixed-size snippets.

The training data and the indexer both go through `unroll` (model/embed.py cuts the windows), so a snippet from a
verovio raster during training and one cut from a user's PDF look alike: every system is rescaled so its
staff-line spacing is exactly STAFF_SPACE pixels, whatever the engraver or resolution.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from model.page import PreparedPage, StaffMetrics, clean_paper, prepare

STAFF_SPACE = 4.5  # px between staff lines in the strip (model scale; paper's 180 px snippet halved)
STRIP_HEIGHT = 90  # px; strip and snippet height, centred on the system's middle
LINE_MIN_LENGTH = 0.08  # a staff line runs unbroken over at least this share of the page width
SPACING_TOLERANCE = 0.3  # max relative spread of the four gaps within one 5-line staff
LENGTH_RATIO = 2.0  # lines of one staff differ in length by at most this factor (beams are shorter)
BARLINE_FILL = 0.9  # share of a column between two staves that must be ink to join them in a system
BARLINE_INK = 230  # grey level below which a pixel of a (thin, anti-aliased) barline counts as ink
BRIDGE_SPACES = 0.5  # horizontal gaps up to this many staff spaces are bridged when following a line
SPREAD_SPACES = 0.15  # a staff line is followed over this many staff spaces of rows (curved lines)
ALIGN_SPACES = 2.0  # the lines of one staff start and end within this many staff spaces of each other
LINE_COVERAGE = 0.85  # share of a staff line's extent in long unbridged ink runs (median over its five lines)
LINE_DARKNESS = 64  # grey levels below paper, summed over a line's rows: a 1-px line at grey 192
# A staff line's unbridged ink runs are at least this many staff spaces long. On our seeded scans staff
# lines lie almost wholly in such runs, while a line of scanned prose, its letters thickened into a bar,
# still breaks at the gaps between words; at 2 spaces, blur that merges a long word's letters let some
# prose through (tests/test_scans.py).
UNBROKEN_SPACES = 4.0
MIN_STAFF_GAP_SPACES = 2.0  # real staves lie further apart than this; closer "staves" are ledger lines

Staff = tuple[np.ndarray, int, int]  # five line y centres, left x, right x


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


def _line_extent(row: np.ndarray, bridge: int) -> tuple[int, int]:
    """Longest ink run of a staff-line row, gaps up to `bridge` px bridged: where the line starts and ends."""
    runs = _runs(row)
    if not runs:
        return (0, 0)
    merged = [runs[0]]
    for a, b in runs[1:]:
        if a - merged[-1][1] <= bridge:
            merged[-1] = (merged[-1][0], b)
        else:
            merged.append((a, b))
    return max(merged, key=lambda r: r[1] - r[0])


def _longest_runs(ink: np.ndarray, bridge: int = 0, at_least: int = 0) -> np.ndarray:
    """Length of the longest horizontal ink run in every row, runs split by gaps of up to `bridge` px
    counting as one (from the run-length code of the rows); rows with less ink than `at_least` cannot
    hold such a run and are reported as 0 without being looked at."""
    h, w = ink.shape
    candidates = np.flatnonzero(cv2.reduce(ink.view(np.uint8), 1, cv2.REDUCE_SUM, dtype=cv2.CV_32S)[:, 0] >= at_least)
    padded = np.zeros((len(candidates), w + 2), np.int8)
    padded[:, 1:-1] = ink[candidates]
    edges = np.flatnonzero(np.diff(padded.ravel()))  # alternately run starts and ends, row by row
    starts, ends = edges[::2], edges[1::2]
    rows = starts // (w + 2)
    if bridge > 0 and len(starts):
        # a run continues the previous one when it starts in the same row within `bridge` px of its end
        new = np.concatenate([[True], (rows[1:] != rows[:-1]) | (starts[1:] - ends[:-1] > bridge)])
        first = np.flatnonzero(new)
        last = np.concatenate([first[1:], [len(starts)]]) - 1
        starts, ends, rows = starts[first], ends[last], rows[first]
    longest = np.zeros(h, np.int64)
    np.maximum.at(longest, candidates[rows], ends - starts)
    return longest


def _line_mask(ink: np.ndarray, metrics: StaffMetrics) -> np.ndarray:
    """Ink spread over a few rows, so a slightly curved staff line, or one that straddles two rows,
    stays inside one band of rows."""
    spread = max(2, int(round(metrics.space * SPREAD_SPACES)))
    return cv2.dilate(ink.view(np.uint8), np.ones((spread, 1), np.uint8)).view(bool)


def _bridge(metrics: StaffMetrics) -> int:
    """Gaps a staff line may have (breaks, noise, JPEG) and still count as one line."""
    return max(1, int(round(metrics.space * BRIDGE_SPACES)))


def _aligned(extents: list[tuple[int, int]], space: float) -> bool:
    """The five lines of a staff start and end together; text lines and beams do not."""
    lefts, rights = np.array([e[0] for e in extents]), np.array([e[1] for e in extents])
    slack = ALIGN_SPACES * space
    return bool((np.abs(lefts - np.median(lefts)) <= slack).sum() >= 4
                and (np.abs(rights - np.median(rights)) <= slack).sum() >= 4)  # fmt: skip


def _unbroken_share(bands: list[np.ndarray], left: int, right: int, space: float) -> float:
    """Median over a staff's five line bands (a row mask per line: its rows' ink, or their summed
    darkness) of the share of [left, right] lying in unbridged runs at least UNBROKEN_SPACES long. A
    staff line is one stroke; rows through a paragraph of text are ink only where letters are, and a
    line of prose, even with its letters thickened into bars by a scan's threshold, is a chain of words."""
    shares = []
    for band in bands:
        long_runs = [b - a for a, b in _runs(band[left:right]) if b - a >= UNBROKEN_SPACES * space]
        shares.append(sum(long_runs) / max(1, right - left))
    return float(np.median(shares))


def _staves(page: PreparedPage) -> list[Staff]:
    """Find 5-line staves: (line y centres, left, right) top to bottom."""
    image, ink = page.image, page.ink
    lines_mask = _line_mask(ink, page.metrics)
    min_length = LINE_MIN_LENGTH * ink.shape[1]
    longest = _longest_runs(lines_mask, _bridge(page.metrics), int(min_length))
    darkness = 255.0 * image.shape[1] - cv2.reduce(image, 1, cv2.REDUCE_SUM, dtype=cv2.CV_64F)[:, 0]
    lines, line_lengths = [], []
    for a, b in _runs(longest >= min_length):
        # A beam lying on or between lines widens the run, and dense beams can bridge two staff lines
        # into one run; only rows as long as the longest line count, and each band of them is a line.
        seg = longest[a:b]
        for c, d in _runs(seg >= 0.9 * seg.max()):
            rows = np.arange(a + c, a + d)
            lines.append(float(np.average(rows, weights=darkness[rows] + 1e-6)))
            line_lengths.append(int(seg[c:d].max()))
    lengths = np.array(line_lengths)
    staves: list[Staff] = []
    if len(lines) < 5:
        return staves
    ys = np.array(lines)
    long_rows = ys[lengths >= 0.5 * lengths.max()]
    gaps = np.diff(long_rows)
    expected = page.metrics.space
    gaps = gaps[(gaps > 2.5) & (gaps < 0.05 * image.shape[0]) & (np.abs(gaps - expected) <= 0.5 * expected)]
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
        staff = ys[picked]
        # A thin line that straddles two rows can be too light in each to pass the ink threshold; the
        # darkness summed over the line's rows still shows it.
        bands = [np.asarray(lines_mask[max(0, int(v) - 1) : int(v) + 2].any(axis=0))
                 | ((255 - image[max(0, int(v) - 1) : int(v) + 2].astype(np.int32)).sum(axis=0) >= LINE_DARKNESS)
                 for v in staff]  # fmt: skip
        extents = [_line_extent(band, _bridge(page.metrics)) for band in bands]
        left, right = int(np.median([e[0] for e in extents])), int(np.median([e[1] for e in extents]))
        # staff lines are drawn unbroken, in long runs (a share of the extent in long runs is never more
        # than its plain ink coverage, so this is also the coverage test)
        if not _aligned(extents, space) or _unbroken_share(bands, left, right, space) < LINE_COVERAGE:
            continue
        used[picked] = True
        staves.append((staff, left, right))
    return _without_ledger_staves(sorted(staves, key=lambda st: float(st[0][0])), space)


def _without_ledger_staves(staves: list[Staff], space: float) -> list[Staff]:
    """Drop "staves" made of ledger lines: a run of 16ths with ledger lines above a staff, bridged into
    long rows, can look like five staff lines one space above the real staff. Engravers never set two
    staves that close, so of two staves less than MIN_STAFF_GAP_SPACES apart the shorter one goes."""
    kept: list[Staff] = []
    for staff in staves:
        if kept and staff[0][0] - kept[-1][0][-1] < MIN_STAFF_GAP_SPACES * space:
            if staff[2] - staff[1] > kept[-1][2] - kept[-1][1]:
                kept[-1] = staff
            continue
        kept.append(staff)
    return kept


def _joined(page: PreparedPage, upper: Staff, lower: Staff) -> bool:
    """True when a vertical line (system barline or brace) bridges the gap between two staves.

    A one-pixel barline often rasterises light grey, and on a scan it comes out blurred and noisy, so
    the test is lenient about darkness (the grey level or the page's own ink mask) and lets each row's
    ink sit in the column or its neighbours.
    """
    y0, y1 = int(np.ceil(upper[0][-1])), int(np.floor(lower[0][0]))
    left, right = max(upper[1], lower[1]), min(upper[2], lower[2])
    if y1 <= y0 or right <= left:
        return False
    x0, x1 = max(0, left - 4), right + 2
    gap = (page.image[y0:y1, x0:x1] < BARLINE_INK) | page.ink[y0:y1, x0:x1]
    near = gap[:, 1:-1] | gap[:, :-2] | gap[:, 2:]
    return bool(near.size and (near.mean(axis=0) >= BARLINE_FILL).any())


def find_systems(page: PreparedPage, page_index: int = 0) -> list[System]:
    """Staff systems on a prepared page, in its (straightened) frame: staves found from row runs, then
    grouped into systems where a barline or brace joins neighbouring staves."""
    staves = _staves(page)
    groups: list[list[Staff]] = []
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


def read_page(page: np.ndarray, page_index: int = 0) -> tuple[np.ndarray, list[System]]:
    """The page as the indexer keeps it (flat-fielded and straightened) and its systems in that frame.

    Snippets are cut from, and page boxes drawn on, the returned image; a page without music gives
    no systems.
    """
    prepared = prepare(page)
    return clean_paper(prepared.image, prepared.ink), find_systems(prepared, page_index)


def detect_systems(page: np.ndarray, page_index: int = 0) -> list[System]:
    """Staff systems of a greyscale page (paper white) in the page's own frame, without straightening it."""
    return find_systems(prepare(page, deskew=False), page_index)


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


def at_width(strip: np.ndarray, factor: float) -> np.ndarray:
    """The strip engraved `factor` times as wide (each row resampled to round(W · factor) px, bilinear): a
    snippet of the result shows 1 / factor of the music the same snippet of the input shows. 1.0 returns
    the input."""
    if not factor > 0.0:
        raise ValueError(f"width factor must be positive, got {factor}")
    if factor == 1.0:
        return strip
    width = max(1, int(round(strip.shape[1] * factor)))
    return np.asarray(Image.fromarray(strip).resize((width, strip.shape[0]), Image.Resampling.BILINEAR))
