"""Alignment across pages: a piece whose engraving spans two pages, built by the project's own data engine."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from benchmarks.dataset_library import read_recording
from indexer.library import Library
from indexer.settings import Settings
from indexer.snippet_map import PieceSnippets
from model.data import dataset as ds
from service.align import Placement, align, cost_matrix, points_of

TWO_PAGE_PIECE = "haydn/opus1no1/movement4"  # a short quartet movement (test split) engraved on two pages
TURN_TOLERANCE_S = 3.0  # how far the aligned page turn may sit from the true one


@pytest.fixture(scope="module")
def two_page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Library, int, Path]]:
    from model.data.build import build

    root = tmp_path_factory.mktemp("two_page")
    manifest = build(root / "dataset", only=[TWO_PAGE_PIECE], workers=1, log=lambda *_: None)
    assert not manifest["failures"], manifest["failures"]
    assert manifest["pieces"][TWO_PAGE_PIECE]["pages"] >= 2
    library = Library(Settings(data_dir=root / "lib", threads=2))
    piece = library.add_pdf(ds.pdf_path(root / "dataset", TWO_PAGE_PIECE).read_bytes()).piece_id
    yield library, piece, root / "dataset"
    library.close()


def test_alignment_turns_the_page_when_the_music_does(two_page: tuple[Library, int, Path]) -> None:
    library, piece, dataset = two_page
    rec = ds.load_record(ds.record_path(dataset, TWO_PAGE_PIECE), with_audio=False)
    onset_page = np.array([rec.strip.systems[int(i)].page for i in rec.onset_system])
    onset_time = rec.onset_q * 60.0 / rec.renditions[0].bpm
    true_turn = float(onset_time[onset_page >= 1].min())  # first note on the second page

    result = align(library, piece, read_recording(dataset, TWO_PAGE_PIECE))
    pages = np.array([p.page for p in result.points])
    times = np.array([p.time for p in result.points])
    assert pages.max() >= 2 and pages[0] == 1
    aligned_turn = float(times[pages >= 2].min())
    assert abs(aligned_turn - true_turn) < TURN_TOLERANCE_S, (aligned_turn, true_turn)


def test_the_aligned_position_moves_between_snippets_instead_of_jumping_from_one_to_the_next() -> None:
    """Snippets sit 16 px apart; a recording moves on between them. A path that holds each snippet for
    four excerpts gives positions that keep rising, and a box that slides within a system but never
    straddles a system break."""

    n = 6  # snippets 0-2 on system 0, 3-5 on system 1
    boxes = np.array([[100.0 + 16 * (k % 3), 50.0 + 200 * (k // 3), 228.0 + 16 * (k % 3), 140.0 + 200 * (k // 3)]
                      for k in range(n)])  # fmt: skip
    snippets = PieceSnippets(ids=np.arange(n), strip_x=16.0 * np.arange(n) + 64, page=np.ones(n, np.int64),
                             system=np.repeat([0, 1], 3), boxes=boxes, vectors=np.zeros((n, 32), np.float32))
    path = np.array([(row, row // 4) for row in range(4 * n)])
    points = points_of(path, np.arange(4 * n) * 2, snippets)
    xs = np.array([p.strip_x for p in points])
    middle = slice(2, 4 * n - 2)  # between the first and the last step's middles
    assert np.all(np.diff(xs[middle]) > 0)
    assert xs.min() >= snippets.strip_x[0] and xs.max() <= snippets.strip_x[-1]
    for p in points:
        assert p.box[1] == (50.0 if p.system == 0 else 250.0)  # the box stays on its system's staff
        assert (p.box[0] + p.box[2]) / 2 == p.x
    inside = [p for p in points if p.system == 0 and 64 < p.strip_x < 96]
    assert any(p.box[0] not in (100.0, 116.0, 132.0) for p in inside)  # slides between two snippets' boxes


def test_the_finer_alignment_grid_contains_the_indexed_snippets(two_page: tuple[Library, int, Path]) -> None:
    # the alignment re-embeds stored pages: on the index's grid that must give back exactly what was indexed
    library, piece, _ = two_page
    stored = library.piece_snippets(piece)
    again = library.dense_snippets(piece, library.settings.snippet_hop)
    np.testing.assert_array_equal(again.strip_x, stored.strip_x)
    np.testing.assert_array_equal(again.page, stored.page)
    assert float(np.min(np.sum(again.vectors * stored.vectors, axis=1))) > 0.9999
    fine = library.dense_snippets(piece, library.settings.snippet_hop // 2)
    assert set(stored.strip_x) <= set(fine.strip_x) and len(fine.strip_x) >= 2 * len(stored.strip_x) - 2 * len(
        set(stored.system)
    )


def _two_systems(per_system: int = 40, hop: float = 8.0) -> PieceSnippets:
    """Snippets every `hop` strip px on two systems of one page, the second starting right after the first."""
    n = 2 * per_system
    system = np.repeat([0, 1], per_system)
    xs = hop * np.arange(n) + 10.0
    boxes = np.array([[x - 20.0, 50.0 + 200 * s, x + 20.0, 140.0 + 200 * s] for x, s in zip(xs, system, strict=True)])
    return PieceSnippets(ids=np.arange(n), strip_x=xs, page=np.ones(n, np.int64), system=system, boxes=boxes,
                         vectors=np.zeros((n, 32), np.float32))  # fmt: skip


def test_a_wobbling_path_gives_a_steadier_position_than_its_steps() -> None:
    """A recording played at a steady tempo, whose DTW path wobbles around the straight line a column or two
    either side, is placed closer to the line than the path's own steps are."""
    snippets = _two_systems()
    rows = np.arange(400)
    true_col = rows * (len(snippets.strip_x) - 1) / (len(rows) - 1)
    wobble = np.round(true_col + 2.0 * np.sin(rows / 7.0)).astype(np.int64)
    path = np.column_stack([rows, np.clip(np.maximum.accumulate(wobble), 0, len(snippets.strip_x) - 1)])
    true_x = np.interp(true_col, np.arange(len(snippets.strip_x)), snippets.strip_x)

    def error(placement: Placement) -> float:
        xs = np.array([p.strip_x for p in points_of(path, rows * 2, snippets, placement)])
        return float(np.median(np.abs(xs - true_x)))

    unsmoothed = error(Placement(smooth_seconds=0.0, header_px=0.0))
    assert error(Placement(header_px=0.0)) < 0.5 * unsmoothed, unsmoothed


def test_no_time_is_spent_on_a_system_header() -> None:
    """The clef and key signature at a system's start take no playing time: however long the path walks
    through them, no aligned position rests inside the header, and the position is never ahead in the
    strip of where the path is (it crosses to the next system once the path is past the header)."""
    snippets = _two_systems()
    placement = Placement(header_px=24.0)
    start = snippets.strip_x[40]  # the second system's first snippet
    path = np.array([(row, row // 3) for row in range(3 * len(snippets.strip_x))])
    points = points_of(path, path[:, 0] * 2, snippets, placement)
    xs = np.array([p.strip_x for p in points])
    assert not np.any((xs > start + 1.0) & (xs < start + placement.header_px - 1.0)), xs
    header_rows = path[(snippets.strip_x[path[:, 1]] >= start) & (snippets.strip_x[path[:, 1]] < start + 24.0), 0]
    on_second = np.array([p.system == 1 for p in points])
    assert on_second[header_rows].any() and not on_second[header_rows].all()  # the header's time is shared out
    assert np.all(np.diff(xs) >= 0)


def test_smoothing_stops_at_a_jump() -> None:
    """A performance that goes back to the start of the piece (a repeat) is shown at the start right after
    the jump: the position is not averaged across the jump."""
    snippets = _two_systems()
    first = [(row, row // 4) for row in range(4 * 80)]
    second = [(320 + row, row // 4) for row in range(4 * 40)]
    path = np.array(first + second)
    points = points_of(path, path[:, 0] * 2, snippets)
    xs = np.array([p.strip_x for p in points])
    assert xs[319] > snippets.strip_x[-3] and xs[320] < snippets.strip_x[2], (xs[318:322])


def test_the_recording_read_slowed_is_placed_on_the_as_played_time_axis(two_page: tuple[Library, int, Path]) -> None:
    # The cost averages the recording read as played and as if played 0.7 times as fast (ALIGN_TEMPI): one
    # row per as-played excerpt, and the slowed reading's rows must speak of the same moments, or their
    # mean would blur the path instead of sharpening it.
    library, piece, dataset = two_page
    wave = read_recording(dataset, TWO_PAGE_PIECE)
    centres, _, played = cost_matrix(library, piece, wave, tempi=(1.0,), widths=(1.0,))
    both_centres, _, both = cost_matrix(library, piece, wave, tempi=(1.0, 0.7), widths=(1.0,))
    assert np.array_equal(centres, both_centres) and both.shape == played.shape
    slowed = 2.0 * both - played  # the slowed reading's own distances, row by row
    late = np.arange(len(played)) > len(played) // 2  # where a time axis off by the factor would be far off
    shift = np.abs(np.argmin(slowed, axis=1) - np.argmin(played, axis=1))[late]
    assert np.median(shift) <= 4, np.median(shift)  # columns of 8 px


def test_the_strip_read_wider_is_placed_on_the_engraved_strip(two_page: tuple[Library, int, Path]) -> None:
    # The cost also averages the strip read as engraved and 1.2 times as wide (ALIGN_SHEET_WIDTHS): one
    # column per engraved window, and the wider reading's columns must show the same place in the score.
    library, piece, dataset = two_page
    wave = read_recording(dataset, TWO_PAGE_PIECE)
    _, engraved_snippets, engraved = cost_matrix(library, piece, wave, tempi=(1.0,), widths=(1.0,))
    _, snippets, both = cost_matrix(library, piece, wave, tempi=(1.0,), widths=(1.0, 1.2))
    assert np.array_equal(snippets.strip_x, engraved_snippets.strip_x) and both.shape == engraved.shape
    wider = 2.0 * both - engraved  # the wider reading's own distances
    late = np.arange(len(engraved)) > len(engraved) // 2  # where an axis off by the factor would be far off
    shift = np.abs(np.argmin(wider, axis=1) - np.argmin(engraved, axis=1))[late]
    assert np.median(shift) <= 4, np.median(shift)  # columns of 8 px
