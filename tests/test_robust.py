"""The robust query set: repeats played, tempo drift, another synthesizer, a room; seeded per piece."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from model.audio import SAMPLE_RATE
from tests.conftest import VAL_PIECE

pytestmark = pytest.mark.skipif(not Path("/etc/timidity/freepats.cfg").exists(), reason="needs timidity + freepats")


def _two_bars_repeated() -> str:
    """MusicXML of two 4/4 bars of quarter notes closed by a repeat sign."""
    from music21 import bar, meter, note, stream
    from music21.musicxml.m21ToXml import GeneralObjectExporter

    part = stream.Part()
    for number, pitches in enumerate((["C4", "D4", "E4", "F4"], ["G4", "A4", "B4", "C5"]), start=1):
        measure = stream.Measure(number=number)
        if number == 1:
            measure.append(meter.TimeSignature("4/4"))
        for p in pitches:
            measure.append(note.Note(p, quarterLength=1))
        part.append(measure)
    part.getElementsByClass(stream.Measure)[-1].rightBarline = bar.Repeat(direction="end")
    return GeneralObjectExporter(stream.Score([part])).parse().decode()


def test_expanded_engraving_plays_the_repeat() -> None:
    from model.data.engrave import engrave

    xml = _two_bars_repeated()
    printed = engrave(xml, draw=False)
    played = engrave(xml, expand_repeats=True, draw=False)
    assert [n.pitch for n in printed.notes] == [60, 62, 64, 65, 67, 69, 71, 72]
    assert [n.pitch for n in played.notes] == [n.pitch for n in printed.notes] * 2
    assert played.notes[-1].off == pytest.approx(16.0)
    assert played.bars == [0.0, 4.0, 8.0, 12.0]


def test_performance_length_follows_tempo_and_repeats_and_is_seeded() -> None:
    from benchmarks.robust import perform
    from model.data.engrave import engrave

    xml = _two_bars_repeated()
    printed, played = engrave(xml, draw=False), engrave(xml, expand_repeats=True, draw=False)
    once, info_once = perform(printed.notes, printed.bars, "piece")
    twice, info_twice = perform(played.notes, played.bars, "piece")
    assert info_twice["repeated_notes"] == 8 and info_once["repeated_notes"] == 0
    assert info_twice["played_seconds"] > 1.6 * info_once["played_seconds"]
    again, _ = perform(played.notes, played.bars, "piece")
    other, _ = perform(played.notes, played.bars, "another piece")
    assert np.array_equal(twice, again)  # same seed, same audio
    assert len(other) != len(twice) or not np.allclose(other, twice, atol=1e-3)


def test_robust_build_of_a_validation_piece(dataset: Path, tmp_path: Path) -> None:
    from benchmarks.robust import build_robust, robust_queries
    from model.data import dataset as ds

    manifest = build_robust(dataset, "validation", tmp_path, log=lambda *_: None)
    assert not manifest["failures"] and list(manifest["pieces"]) == [VAL_PIECE]  # only the validation piece
    entry = manifest["pieces"][VAL_PIECE]
    wave, sr = sf.read(robust_queries(tmp_path, "validation")[VAL_PIECE], dtype="float32")
    assert sr == SAMPLE_RATE and entry["engine"] == "timidity+freepats"
    seconds = len(wave) / sr
    # the length is the lead-in, the performance at the drawn tempo curve, and the room's decay
    assert entry["lead_in"] + entry["played_seconds"] <= seconds <= entry["lead_in"] + entry["played_seconds"] + 5
    steady = entry["quarters"] * 60.0 / entry["bpm"]  # seconds at the base tempo
    slowest = steady / ((1 - entry["drift"]) * entry["ritardando"])
    assert steady / (1 + entry["drift"]) <= entry["played_seconds"] <= slowest
    lead_in = wave[: int(0.9 * entry["lead_in"] * sr)]
    music = wave[int(entry["lead_in"] * sr) : int((entry["lead_in"] + entry["played_seconds"]) * sr)]
    assert np.sqrt(np.mean(music**2)) > 0.05  # not silent
    assert np.sqrt(np.mean(music**2)) > 5 * np.sqrt(np.mean(lead_in**2))  # noise 20–35 dB below the music
    plain, _ = sf.read(ds.audio_path(dataset, VAL_PIECE), dtype="float32")
    n = min(len(plain), len(wave))
    assert abs(len(plain) - len(wave)) > sr or np.abs(plain[:n] - wave[:n]).max() > 0.1
    rebuilt = build_robust(dataset, "validation", tmp_path / "again", log=lambda *_: None)
    assert rebuilt["pieces"][VAL_PIECE]["seconds"] == entry["seconds"]
    assert np.array_equal(sf.read(tmp_path / "again" / "validation" / entry["file"], dtype="int16")[0],
                          sf.read(tmp_path / "validation" / entry["file"], dtype="int16")[0])  # fmt: skip


def test_timidity_releases_doubled_and_restruck_keys() -> None:
    """Two voices in unison and a voice re-striking a held key: every key is silent once its notes end
    (with two note-ons and one note-off, timidity kept such voices sounding to the end of the piece)."""
    from benchmarks.robust import timidity
    from model.data.engrave import Note

    notes = [Note("unison-long", 60, 0.0, 1.0), Note("unison-short", 60, 0.0, 0.5),
             Note("held", 64, 0.0, 2.0), Note("restruck", 64, 1.0, 1.5),
             Note("last", 72, 6.0, 6.5)]  # fmt: skip
    wave = timidity(notes, [80] * len(notes), [])

    def rms(start: float, end: float) -> float:
        return float(np.sqrt(np.mean(wave[int(start * SAMPLE_RATE) : int(end * SAMPLE_RATE)] ** 2)))

    assert 20 * np.log10(rms(3.5, 5.5) / rms(0.0, 2.0) + 1e-12) < -40.0
