"""The data engine on a real three-piece build: pairing, shapes, split hygiene, system detection."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from model.audio import N_BINS, n_frames
from model.config import ModelConfig
from model.data import dataset as ds
from model.data.corpus import COMPOSER_SPLIT, EXTRA_PIECES, TEST_CHORALES, load_splits
from model.pairs import PairIndex, audio_batch, sheet_batch
from model.sheet import detect_systems
from model.train import TRAINING_SPLITS
from tests.conftest import TEST_PIECE, TRAIN_PIECE, VAL_PIECE


def _records(root: Path) -> list[ds.PieceRecord]:
    return [ds.load_record(p) for p in sorted((root / ds.PIECES_DIR).glob("*.npz"))]


def test_strip_x_never_decreases_within_a_system(dataset: Path) -> None:
    for rec in _records(dataset):
        order = np.argsort(rec.onset_q, kind="stable")
        for system in np.unique(rec.onset_system):
            xs = rec.onset_x[order][rec.onset_system[order] == system]
            assert len(xs) > 0
            assert np.all(np.diff(xs) >= 0), f"{rec.id} system {system}: x goes backwards"
        # systems follow each other along the strip in time order too
        assert np.all(np.diff(rec.onset_system[order]) >= 0)


def test_spectrogram_shapes_and_lengths(dataset: Path) -> None:
    for rec in _records(dataset):
        assert len(rec.renditions) == (7 if rec.split == "train" else 1)
        for r in rec.renditions:
            assert r.spec.ndim == 2 and r.spec.shape[1] == N_BINS
            # the last onset plus its note must fit inside the rendition
            last_onset_s = rec.onset_q.max() * 60 / r.bpm
            assert r.spec.shape[0] / 20 > last_onset_s
    for pid in (VAL_PIECE, TEST_PIECE):  # non-training renditions are kept as FLAC: lengths agree exactly
        rec = ds.load_record(dataset / ds.PIECES_DIR / f"{ds.piece_key(pid)}.npz")
        audio, sr = sf.read(dataset / ds.AUDIO_DIR / f"{ds.piece_key(pid)}.flac")
        assert sr == 22050
        assert rec.renditions[0].spec.shape[0] == n_frames(len(audio))


def test_every_training_voice_sounds_at_the_recorded_onsets(dataset: Path) -> None:
    """Each voice (three FluidSynth pianos, timidity, another keyboard instrument, two performed in a room)
    starts notes where the record says: the spectral flux at onset frames is well above its level between
    them (less so in a room, whose noise and tail raise the flux between onsets)."""
    from model.data.perform import ROOM

    rec = ds.load_record(dataset / ds.PIECES_DIR / f"{ds.piece_key(TRAIN_PIECE)}.npz")
    voices = [r.font for r in rec.renditions]
    assert any(v.startswith("timidity/") for v in voices) and any("@" in v for v in voices), voices
    assert sum(v.endswith(ROOM) for v in voices) == 2, voices
    for r in rec.renditions:
        lin = np.power(10.0, r.spec) - 1.0
        flux = np.concatenate([[0.0], np.maximum(np.diff(lin, axis=0), 0.0).sum(axis=1)])
        onsets = r.onset_frames(rec.onset_q)
        near = np.zeros(len(flux), dtype=bool)
        for d in (-1, 0, 1):
            near[np.clip(onsets + d, 0, len(flux) - 1)] = True
        assert flux[near].mean() > (2 if r.font.endswith(ROOM) else 3) * flux[~near].mean(), r.font


def test_training_crops_have_model_input_shapes(dataset: Path) -> None:
    cfg = ModelConfig()
    rec = ds.load_record(dataset / ds.PIECES_DIR / f"{ds.piece_key(TRAIN_PIECE)}.npz")
    pairs = PairIndex.build([rec])
    idx = np.arange(len(pairs))
    snippets = sheet_batch(pairs, idx, cfg, None, np.random.default_rng(0)).numpy()
    assert snippets.shape == (len(pairs), *cfg.sheet_crop)
    assert 0.0 <= snippets.min() and snippets.max() <= 1.0 and snippets.mean() > 0.02  # ink is there
    excerpts = audio_batch(pairs, idx, cfg, None, np.random.default_rng(0)).numpy()
    assert excerpts.shape == (len(pairs), N_BINS, cfg.audio_crop[1]) and excerpts.max() > 0.1  # sound is there


def test_split_file_is_composer_disjoint() -> None:
    splits = load_splits()
    composers = {name: {pid.split("/")[0] for pid in ids} for name, ids in splits.items()}
    for a in ("train", "validation", "test", "train-extra"):
        for b in ("train", "validation", "test", "train-extra"):
            if a < b:
                assert not composers[a] & composers[b], f"{a} and {b} share {composers[a] & composers[b]}"
    assert len(splits["test-chorales"]) == TEST_CHORALES
    assert composers["test-chorales"] == {"bach"}
    assert not set(splits["test-chorales"]) & set(splits["train"])
    for name in ("validation", "test", "train-extra"):
        assert all(COMPOSER_SPLIT[c] == name for c in composers[name])
    assert len(splits["train-extra"]) == EXTRA_PIECES


def test_a_plain_build_leaves_the_extra_training_pieces_out() -> None:
    # the evaluation library indexes every built piece of data/dataset: the extra ones are built apart
    from model.data.build import planned_pieces

    splits = load_splits()
    planned = {s.id for s in planned_pieces(splits)}
    assert planned == {p for name, ids in splits.items() if name != "train-extra" for p in ids}
    extra = splits["train-extra"][:2]
    asked = planned_pieces(splits, extra)
    assert [s.id for s in asked] == extra and all(s.kind == "vocal" for s in asked)


def test_training_refuses_test_pieces(dataset: Path) -> None:
    assert ds.load_split(dataset, "train", TRAINING_SPLITS)
    for split in ("test", "test-chorales"):
        with pytest.raises(PermissionError):
            ds.load_split(dataset, split, TRAINING_SPLITS)


def test_detector_finds_verovio_systems(dataset: Path) -> None:
    from pdf2image import convert_from_path

    for rec in _records(dataset):
        pages = convert_from_path(dataset / ds.PDF_DIR / f"{ds.piece_key(rec.id)}.pdf", dpi=150, grayscale=True)
        detected = [s for i, p in enumerate(pages) for s in detect_systems(np.asarray(p), i)]
        assert len(detected) == len(rec.strip.systems), rec.id
        ratio = pages[0].width / 1680  # PDF rasters at 150 dpi vs the 2× verovio raster
        for d, s in zip(detected, rec.strip.systems, strict=True):
            assert d.page == s.page
            assert abs(d.top - s.top * ratio) < 3 and abs(d.bottom - s.bottom * ratio) < 3
            assert abs(d.staff_space / ratio - s.staff_space) / s.staff_space < 0.03


def test_mei_pitches_match_verovio_midi() -> None:
    import verovio
    from music21 import corpus

    from model.data.corpus import reduce_to_grand_staff, to_musicxml
    from model.data.engrave import mei_pitches

    verovio.enableLog(verovio.LOG_OFF)
    tk = verovio.toolkit()
    tk.loadData(to_musicxml(reduce_to_grand_staff(corpus.parse(TEST_PIECE), "piano")))
    tk.renderToTimemap()
    pitches = mei_pitches(tk.getMEI())
    assert len(pitches) > 50
    assert {nid: tk.getMIDIValuesForElement(nid)["pitch"] for nid in pitches} == pitches


def test_reduction_keeps_every_note() -> None:
    from music21 import corpus

    from model.data.corpus import _note_heads, reduce_to_grand_staff

    score = corpus.parse(TRAIN_PIECE)
    reduced = reduce_to_grand_staff(score, "chorale")
    assert len(reduced.parts) == 2
    assert _note_heads(reduced) == _note_heads(score) > 100


def test_timidity_plays_the_font_it_is_given() -> None:
    """timidity's default configuration names a SoundFont of its own; a voice's font must still be the
    one that sounds (the two training fonts' pianos differ)."""
    from model.data.engrave import Note
    from model.data.synth import render

    notes = [Note(str(i), 48 + 5 * i, 0.5 * i, 0.5 * i + 0.5) for i in range(8)]
    a, b = render(notes, 120.0, "timidity/fluidr3"), render(notes, 120.0, "timidity/csound")
    n = min(len(a), len(b))
    assert np.abs(a[:n] - b[:n]).max() > 0.05 * np.abs(a).max()


def test_a_performed_rendition_is_its_voice_in_a_room() -> None:
    """A performed rendition rebuilds bit for bit from its seed, another seed is another room, and the room
    rings on after the dry voice has stopped."""
    from model.data.engrave import Note
    from model.data.perform import perform
    from model.data.synth import render

    notes = [Note(str(i), 48 + 5 * i, 0.5 * i, 0.5 * i + 0.5) for i in range(8)]
    bars = [0.0, 2.0]
    a, b = perform(notes, bars, 120.0, "csound+room", 7), perform(notes, bars, 120.0, "csound+room", 7)
    assert np.array_equal(a, b) and not np.array_equal(a, perform(notes, bars, 120.0, "csound+room", 8))
    dry = render(notes, 120.0, "csound")
    assert len(a) > len(dry) and np.abs(a[len(dry):]).max() > 0.01
    assert np.isclose(np.abs(a).max(), 0.9)
    with pytest.raises(ValueError, match="not a performed voice"):
        perform(notes, bars, 120.0, "csound", 7)


def test_an_engraving_only_build_gets_its_renditions_later(tmp_path: Path) -> None:
    """`data build --no-audio` engraves a training piece without renditions (training refuses such a set);
    a later build renders them and keeps the engraving."""
    from model.config import TrainConfig
    from model.data.build import build, renditions_for
    from model.train import train

    first = build(tmp_path, only=[TRAIN_PIECE], workers=1, log=lambda *_: None, audio=False)
    assert first["pieces"][TRAIN_PIECE]["renditions"] == []
    pdf = ds.pdf_path(tmp_path, TRAIN_PIECE).read_bytes()
    with pytest.raises(ValueError, match="no renditions"):
        train(TrainConfig(dataset=str(tmp_path), out=str(tmp_path / "m.pt")), log=lambda *_: None)
    second = build(tmp_path, only=[TRAIN_PIECE], workers=1, log=lambda *_: None)
    planned = [{"font": f, "bpm": b} for f, b in renditions_for(TRAIN_PIECE, "train")]
    assert second["pieces"][TRAIN_PIECE]["renditions"] == planned
    assert ds.pdf_path(tmp_path, TRAIN_PIECE).read_bytes() == pdf
    assert len(ds.load_record(ds.record_path(tmp_path, TRAIN_PIECE)).renditions) == len(planned)
