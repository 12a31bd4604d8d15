"""Alignment that follows repeats: the jump-aware DTW on the fixture piece's real cost matrix, and the
data engine's performed renditions with printed-score ground truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from indexer.library import Library
from indexer.settings import Settings
from model.audio import SAMPLE_RATE
from model.data import dataset as ds
from service.align import cost_matrix, dtw_path, monotone_alignment
from service.jumps import Penalties, jump_alignment, jump_dtw
from tests.conftest import TEST_PIECE

REPEAT_PIECE = "verdi/laDonnaEMobile"  # validation; one page, four systems, played twice through


@pytest.fixture()
def indexed(settings: Settings, pdfs: dict[str, bytes], dataset: Path):  # type: ignore[no-untyped-def]
    """(library, piece id, plain rendition, its record) for the test piece (three systems, one page)."""
    library = Library(settings)
    piece = library.add_pdf(pdfs[TEST_PIECE], title=TEST_PIECE).piece_id
    wave, _ = sf.read(ds.audio_path(dataset, TEST_PIECE), dtype="float32")
    rec = ds.load_record(ds.record_path(dataset, TEST_PIECE), with_audio=False)
    assert len(rec.strip.systems) >= 3 and len(library.piece_snippets(piece).ids) > 0
    yield library, piece, wave, rec
    library.close()


def _system_at(rec: ds.PieceRecord, t: np.ndarray) -> np.ndarray:
    """The true system at times `t` of the plain rendition (the system of the last onset at or before t)."""
    times = rec.onset_q * 60.0 / rec.renditions[0].bpm
    return rec.onset_system[np.clip(np.searchsorted(times, t, side="right") - 1, 0, len(times) - 1)]


def test_without_jumps_the_path_is_global_dtw() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        cost = rng.random(tuple(rng.integers(5, 60, 2)))
        path, jumps = jump_dtw(cost, Penalties(jump=1e9, start=1e9, end=1e9, down=0.0))
        assert np.array_equal(path, dtw_path(cost, subsequence=False)) and not jumps


def test_the_path_does_not_skip_music_to_park_on_a_hub_snippet() -> None:
    # The true path is the diagonal (0.6 a cell, 35.9 in all); snippet 45 is close to everything (0.5, a
    # "hub"). Starting on it, staying there for 45 rows and then following the diagonal costs 31.4 plus
    # the start penalty of 4: cheaper, unless staying on one snippet costs something.
    n = 60
    cost = np.full((n, n), 1.0)
    cost[np.arange(n), np.arange(n)] = 0.6
    cost[:, 45] = 0.5
    free = Penalties(jump=1e9, start=4.0, end=4.0, down=0.0)
    parked, _ = jump_dtw(cost, free)
    assert parked[0, 1] > 0  # without it the path starts late and parks
    path, jumps = jump_dtw(cost, Penalties(jump=1e9, start=4.0, end=4.0))
    assert not jumps and path[0, 1] == 0 and path[-1, 1] == n - 1
    assert np.mean(path[:, 0] == path[:, 1]) > 0.9


def test_plain_rendition_gives_the_same_path_as_before(indexed) -> None:  # type: ignore[no-untyped-def]
    library, piece, wave, _ = indexed
    pre = cost_matrix(library, piece, wave)
    before = monotone_alignment(piece, *pre, subsequence=False)
    after = jump_alignment(piece, *pre)
    assert not after.jumps and not after.subsequence
    assert np.array_equal(after.path, before.path)


def _first_half_twice(library: Library, piece: int, wave: np.ndarray, rec: ds.PieceRecord) -> None:
    """Play the first half, then the whole piece: one jump back to system 0 near the cut, and the second
    time through the first half on the systems played, where the monotone path cannot follow."""
    times = rec.onset_q * 60.0 / rec.renditions[0].bpm
    cut = float(times[np.argmin(np.abs(times - times[-1] / 2))])  # the onset nearest the middle
    take = np.concatenate([wave[: int(cut * SAMPLE_RATE)], wave])  # first half, then the whole piece
    result = jump_alignment(piece, *cost_matrix(library, piece, take))
    back = [j for j in result.jumps if j.target.strip_x < j.source.strip_x]
    assert len(back) == 1 and abs(back[0].time - cut) < 1.5, [(j.time, j.source.system, j.target.system)
                                                             for j in result.jumps]  # fmt: skip
    assert back[0].target.system == 0
    t = np.array([p.time for p in result.points])
    second = (t > cut + 1.0) & (t < 2 * cut - 1.0)
    aligned = np.array([p.system for p in result.points])[second]
    assert np.mean(aligned == _system_at(rec, t[second] - cut)) >= 0.9
    dtw = monotone_alignment(piece, *cost_matrix(library, piece, take), subsequence=False)
    t_dtw = np.array([p.time for p in dtw.points])
    second = (t_dtw > cut + 1.0) & (t_dtw < 2 * cut - 1.0)
    assert np.mean(np.array([p.system for p in dtw.points])[second] == _system_at(rec, t_dtw[second] - cut)) < 0.9


@pytest.mark.slow
def test_first_half_played_twice_goes_back_to_the_first_half(settings: Settings, repeat_root: Path) -> None:
    library = Library(settings)
    try:
        piece = library.add_pdf(ds.pdf_path(repeat_root, REPEAT_PIECE).read_bytes(), title=REPEAT_PIECE).piece_id
        wave, _ = sf.read(ds.audio_path(repeat_root, REPEAT_PIECE), dtype="float32")
        _first_half_twice(library, piece, wave, ds.load_record(ds.record_path(repeat_root, REPEAT_PIECE),
                                                               with_audio=False))  # fmt: skip
    finally:
        library.close()


# The test piece's own cost matrix does not show its first half: subsequence DTW of that half alone lands
# on the third system (measured with v2-a14b111f1158), so no path search can find the repeat there.
@pytest.mark.xfail(reason="the embedding misplaces the test piece's first half (issue 13)", strict=False)
def test_first_half_of_the_test_piece_played_twice(indexed) -> None:  # type: ignore[no-untyped-def]
    _first_half_twice(*indexed)


def test_excerpt_from_the_middle_starts_at_the_right_system(indexed) -> None:  # type: ignore[no-untyped-def]
    library, piece, wave, rec = indexed
    times = rec.onset_q * 60.0 / rec.renditions[0].bpm
    start = float(times[np.flatnonzero(rec.onset_system == 1)[0]])  # the first onset of the second system
    result = jump_alignment(piece, *cost_matrix(library, piece, wave[int(start * SAMPLE_RATE) :]))
    assert result.subsequence and not result.jumps
    assert result.points[0].system == 1
    ends = np.array([p.system for p in result.points])
    assert np.all(np.diff(ends) >= 0) and ends[-1] == len(rec.strip.systems) - 1


@pytest.fixture(scope="module")
def repeat_root(dataset: Path) -> Path:
    """A dataset build of REPEAT_PIECE alone (about 15 s)."""
    from model.data.build import build

    root = dataset.parent / "with_repeats"
    assert not build(root, only=[REPEAT_PIECE], workers=1, log=lambda *_: None)["failures"]
    return root


@pytest.mark.slow
def test_performed_rendition_maps_every_onset_to_the_printed_score(dataset: Path, repeat_root: Path) -> None:
    from model.data.repeats import build_performance, load_performance, performance_path

    root = repeat_root
    rec = ds.load_record(ds.record_path(root, REPEAT_PIECE), with_audio=False)
    summary = build_performance(REPEAT_PIECE, "validation", root)
    assert summary is not None and summary["backward_jumps"] == 1
    perf = load_performance(root, REPEAT_PIECE)
    n = len(rec.onset_q)
    # The piece is played twice through: both passes sit exactly where the printed onsets are drawn.
    assert len(perf.onset_q) == 2 * n and perf.backward_jumps().tolist() == [n]
    for half in (slice(0, n), slice(n, 2 * n)):
        assert np.allclose(perf.onset_x[half], rec.onset_x, atol=0.01)
        assert np.array_equal(perf.onset_system[half], rec.onset_system)
    assert np.allclose(perf.onset_q[n:] - perf.onset_q[n], rec.onset_q - rec.onset_q[0])
    audio, sr = sf.read(performance_path(root, REPEAT_PIECE, ".flac"))
    assert sr == SAMPLE_RATE and len(audio) / sr > perf.onset_times[-1]
    # A piece without repeat signs gets no performed rendition.
    assert build_performance(TEST_PIECE, "test", dataset) is None
