"""Identification behaviours on small real libraries made by the project's own pipeline."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from indexer.library import Library
from indexer.settings import Settings
from model.audio import SAMPLE_RATE, spectrogram
from model.data import dataset as ds
from service.identify import Calibration, identify, query_excerpts
from tests.conftest import TEST_PIECE, TRAIN_PIECE, VAL_PIECE

# Behaviours issue 13 asks for that the shipped model does not reach yet (see model/MODEL.md); they run
# and report XPASS once a better model passes them.
MISSED = "missed with the shipped model (issue 13 open)"
DISTRACTORS = 100  # short pieces added to a library to check that the right answer does not move


def _recording(dataset: Path, piece: str) -> np.ndarray:
    wave, sr = sf.read(dataset / ds.AUDIO_DIR / f"{ds.piece_key(piece)}.flac", dtype="float32")
    assert sr == SAMPLE_RATE
    return wave


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory, pdfs: dict[str, bytes]) -> Library:
    lib = Library(Settings(data_dir=tmp_path_factory.mktemp("identify-lib"), threads=2))
    for piece in (TRAIN_PIECE, VAL_PIECE, TEST_PIECE):
        lib.add_pdf(pdfs[piece], title=piece)
    return lib


def _top(lib: Library, wave: np.ndarray) -> str:
    result = identify(lib, wave)
    return lib.titles([result.pieces[0].id])[result.pieces[0].id][0]


def test_a_recording_that_repeats_a_section_is_still_identified(library: Library, dataset: Path) -> None:
    # ||: A :|| B, the form of a repeat sign: the hits jump back once and still line up in the piece
    wave = _recording(dataset, TEST_PIECE)
    first, second = wave[: len(wave) // 2], wave[len(wave) // 2 :]
    assert _top(library, np.concatenate([first, first, second])) == TEST_PIECE


def test_a_recording_normalised_to_full_scale_is_embedded_as_the_quiet_one(library: Library, dataset: Path) -> None:
    # FluidSynth renders about 25 dB below full scale; a phone or an editor normalises to a peak near 1
    wave = _recording(dataset, TEST_PIECE)
    loud = wave * (0.9 / float(np.abs(wave).max()))
    _, quiet_vectors = library.embed_recording(wave, 8)
    _, loud_vectors = library.embed_recording(loud, 8)
    assert float(np.min(np.sum(quiet_vectors * loud_vectors, axis=1))) > 0.999
    assert _top(library, loud) == TEST_PIECE


# With the weights before v2-23a5172e8dca this piece's first half lay nearer the song (VAL_PIECE) than itself
# and the test was an expected failure (README, Identification); the performed training renditions fixed it.
def test_the_first_half_alone_played_twice_is_still_identified(library: Library, dataset: Path) -> None:
    wave = _recording(dataset, TEST_PIECE)
    half = wave[: len(wave) // 2]
    assert _top(library, np.concatenate([half, half])) == TEST_PIECE


def test_the_recording_follows_its_own_score_more_closely_than_the_others(library: Library, dataset: Path) -> None:
    # the confidence's alignment evidence: the piece played lies on a cheaper path than the other pieces,
    # and with the piece left out its stand-in's path is dearer than the piece's own was
    wave = _recording(dataset, TEST_PIECE)
    present = identify(library, wave)
    test_id = present.pieces[0].id
    assert library.titles([test_id])[test_id][0] == TEST_PIECE
    assert len(present.pieces) >= 2 and present.path.runner_up_gap > 0.0
    absent = identify(library.without([test_id]), wave)
    assert absent.path.top_cost > present.path.top_cost


def test_a_library_without_the_piece_answers_no_match(library: Library, dataset: Path) -> None:
    wave = _recording(dataset, TEST_PIECE)
    test_id = next(pid for pid, (title, _) in library.titles(list(library.counts())).items() if title == TEST_PIECE)
    present = identify(library, wave)
    assert present.pieces[0].id == test_id
    absent = identify(library.without([test_id]), wave)
    assert absent.no_match and all(p.id != test_id for p in absent.pieces)
    # not "no match" to everything: the evidence for the answer falls when its piece is taken away
    assert absent.confidence < present.confidence - 0.1


# The test piece (atonal; its path through its own score is dear for a right answer) is ranked first in
# its 3-piece library, but its confidence stays just under the small-library threshold (README, "Small
# libraries"; `pytest --runxfail -k confident_match` prints the figures).
@pytest.mark.xfail(reason=MISSED, strict=False)
def test_a_library_with_the_piece_answers_a_confident_match(library: Library, dataset: Path) -> None:
    result = identify(library, _recording(dataset, TEST_PIECE))
    threshold = Calibration.load(library.settings.calibration_path).threshold_for(len(library.counts()))
    assert not result.no_match, (f"confidence {result.confidence:.3f}, threshold {threshold:.2f}, "
                                 f"path cost {result.path.top_cost:.3f}")  # fmt: skip


@pytest.mark.slow
def test_top1_holds_when_100_short_distractor_pieces_are_added(
    tmp_path: Path, pdfs: dict[str, bytes], dataset: Path
) -> None:
    from model.data.build import save_pdf, score_xml
    from model.data.corpus import load_splits, pieces_in
    from model.data.engrave import engrave

    lib = Library(Settings(data_dir=tmp_path / "lib", threads=2))
    for piece in (VAL_PIECE, TEST_PIECE):
        lib.add_pdf(pdfs[piece], title=piece)
    queries = {piece: _recording(dataset, piece) for piece in (VAL_PIECE, TEST_PIECE)}
    before = {piece: _top(lib, wave) for piece, wave in queries.items()}
    chorales = [s for s in pieces_in(load_splits()) if s.kind == "chorale" and s.id != TRAIN_PIECE]
    for spec in chorales[:DISTRACTORS]:  # first page of each: one or two systems of another piece
        eng = engrave(score_xml(spec)[0])
        out = tmp_path / "distractor.pdf"
        save_pdf(eng.pages[:1], out, spec.id, spec.composer)
        lib.add_pdf(out.read_bytes(), title=spec.id)
    assert len(lib.counts()) == 2 + DISTRACTORS
    after = {piece: _top(lib, wave) for piece, wave in queries.items()}
    assert before == after == {piece: piece for piece in queries}


def test_identify_answers_over_http_bytes_too(library: Library, dataset: Path) -> None:
    """The same recording decoded from FLAC bytes (as the API receives it) gives the same top piece."""
    from service.uploads import decode_audio

    buf = io.BytesIO()
    sf.write(buf, _recording(dataset, VAL_PIECE), SAMPLE_RATE, format="FLAC")
    assert _top(library, decode_audio(buf.getvalue(), library.settings)) == VAL_PIECE


def test_a_query_is_also_asked_at_other_tempi_in_its_own_time(library: Library, dataset: Path) -> None:
    wave = _recording(dataset, TEST_PIECE)
    centres, vectors, played = query_excerpts(library, wave, 8, (0.5, 2.0), 8)
    own_centres, own_vectors = library.embed_recording(wave, 8)
    np.testing.assert_array_equal(centres[played], own_centres)  # the recording as played, unchanged
    np.testing.assert_allclose(vectors[played], own_vectors, atol=1e-6)
    assert np.all(np.diff(centres) >= 0)  # in time order
    # half the tempo has twice the excerpts, twice the tempo half, all placed in the recording's own frames
    assert 2.0 < (~played).sum() / played.sum() < 3.0
    assert own_centres.min() - 8 <= centres[~played].min() and centres[~played].max() <= own_centres.max() + 16


def test_a_query_read_as_the_mean_of_its_tempi_votes_once_per_excerpt_as_played(library: Library,
                                                                                dataset: Path) -> None:  # fmt: skip
    wave = _recording(dataset, TEST_PIECE)[: 30 * SAMPLE_RATE]
    own_centres, own_vectors = library.embed_recording(wave, 8)
    centres, vectors, played = query_excerpts(library, wave, 8, (0.7,), 8, "mean")
    np.testing.assert_array_equal(centres, own_centres)  # one vote set, at the excerpts as played
    assert played.all()
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # the mean leans to neither reading: nearer the played one than the slowed one is to it, and moved from it
    slowed_centres, slowed = library.embed_spectrogram(spectrogram(wave), 8, 0.7)
    nearest_slowed = slowed[[int(np.argmin(np.abs(slowed_centres - c))) for c in own_centres]]
    to_played = np.sum(vectors * own_vectors, axis=1)
    assert np.all(to_played >= np.sum(nearest_slowed * own_vectors, axis=1) - 1e-5) and np.median(to_played) < 0.999
    both = query_excerpts(library, wave, 8, (0.7,), 8, "mean+tempi")
    np.testing.assert_allclose(both[1][both[2]], vectors, atol=1e-6)  # the means, and the slowed reading beside
    assert (~both[2]).sum() == len(slowed)


def test_a_model_trained_at_a_slower_audio_tempo_places_its_windows_in_the_recordings_frames(
        library: Library, dataset: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    # the audio pathway sees every recording resampled to its audio_tempo; callers still get positions in
    # the recording's own frames, so votes, consistency and alignment read them unchanged
    wave = _recording(dataset, TEST_PIECE)[: 20 * SAMPLE_RATE]
    own_centres, _ = library.embed_recording(wave, 8)
    monkeypatch.setattr(library.model, "cfg", replace(library.model.cfg, audio_tempo=0.5))
    centres, vectors = library.embed_recording(wave, 8)
    assert len(vectors) == len(centres) and np.all(np.diff(centres) > 0)
    assert 1.8 < len(centres) / len(own_centres) < 2.2  # a window every 8 frames of the slowed input
    assert own_centres.min() - 8 <= centres.min() and centres.max() <= own_centres.max() + 8
