"""The training data's second engraver: MuseScore 3 lays out the score, verovio's onsets keep the audio."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

MUSESCORE_PIECE = "bach/bwv111.6"  # a one-page training chorale that the build engraves with MuseScore
NOTE_GLYPH = re.compile(r'<path class="Note" transform="matrix\(([\d.]+),0,0,[\d.]+,([\d.]+),([\d.]+)\)" d="([^"]+)"')


def _glyph_centres(svg: str) -> list[tuple[float, float]]:
    """(x, y) centre of every note-head glyph MuseScore drew, in SVG units (from the glyph's outline)."""
    centres = []
    for scale, x, y, path in NOTE_GLYPH.findall(svg):
        xs = [float(v) for v in re.findall(r"(-?[\d.]+),-?[\d.]+", path)]
        centres.append((float(x) + float(scale) * (min(xs) + max(xs)) / 2, float(y)))
    return centres


def _grand_staff_with_repeat_and_tempo() -> str:
    """Four 4/4 bars on a grand staff at ♩ = 60, a repeat sign after bar 2."""
    from music21 import bar, clef, meter, note, stream, tempo
    from music21.musicxml.m21ToXml import GeneralObjectExporter

    parts = []
    for octave, staff_clef in ((5, clef.TrebleClef()), (3, clef.BassClef())):
        part = stream.Part()
        for number in range(1, 5):
            measure = stream.Measure(number=number)
            if number == 1:
                measure.append([staff_clef, meter.TimeSignature("4/4"), tempo.MetronomeMark(number=60)])
            for step in "CDEF" if number % 2 else "GAB":
                measure.append(note.Note(f"{step}{octave}", quarterLength=1 if step in "CDEF" else 4 / 3))
            if number == 2:
                measure.rightBarline = bar.Repeat(direction="end")
            part.append(measure)
        parts.append(part)
    return GeneralObjectExporter(stream.Score(parts)).parse().decode()


def test_training_piece_onsets_sit_on_musescore_note_heads(tmp_path: Path) -> None:
    from model.data.build import _engraving, engraver_for, score_xml
    from model.data.corpus import piece_spec
    from model.data.musescore import SVG_WIDTH, export, played_straight

    assert engraver_for(MUSESCORE_PIECE, "train") == "musescore"
    xml = score_xml(piece_spec(MUSESCORE_PIECE))[0]
    eng, meta, pdf = _engraving(xml, MUSESCORE_PIECE, "train")
    assert meta["engraver"] == "musescore" and pdf is not None and pdf.startswith(b"%PDF")
    assert len(eng.head_x) >= 0.9 * len(eng.notes)

    svg = export(played_straight(xml), tmp_path, ("svg",))["svg"][0]
    assert isinstance(svg, str)
    px = eng.pages[0].shape[1] / float(SVG_WIDTH.search(svg).group(1))  # type: ignore[union-attr]
    glyphs = np.array(_glyph_centres(svg)) * px
    for note_id, x in eng.head_x.items():
        system = eng.systems[eng.head_system[note_id]]
        inside = glyphs[(glyphs[:, 1] > system.top - 6 * system.staff_space)
                        & (glyphs[:, 1] < system.bottom + 6 * system.staff_space)]  # fmt: skip
        # every onset lies on a note head of its system: within half a staff space of the nearest one
        assert np.min(np.abs(inside[:, 0] - x)) < 0.5 * system.staff_space, note_id


def test_repeats_and_tempo_marks_do_not_move_musescore_times(tmp_path: Path) -> None:
    from model.data.engrave import engrave
    from model.data.musescore import _segments, export, musescore_engraving

    xml = _grand_staff_with_repeat_and_tempo()
    notes = engrave(xml, draw=False).notes  # verovio's clock: printed order, no repeat, quarters
    eng, _ = musescore_engraving(xml, notes, dpi=100)
    assert set(eng.head_x) == {n.id for n in notes}  # triplet-like 4/3 quarters included
    treble = sorted((n.on, eng.head_x[n.id]) for n in notes if n.pitch >= 60)
    assert all(a[1] < b[1] for a, b in zip(treble, treble[1:], strict=False))  # later onsets further right

    spos = export(xml, tmp_path, ("spos",))["spos"][0]  # the score as printed: MuseScore plays the repeat
    with pytest.raises(ValueError, match="twice"):
        _segments(str(spos))


def test_a_piece_is_rebuilt_when_its_planned_engraver_changes() -> None:
    from model.data.build import engraver_for, is_stale

    assert is_stale({}, MUSESCORE_PIECE, "train")  # built before MuseScore joined: verovio's
    assert not is_stale({"planned_engraver": "musescore"}, MUSESCORE_PIECE, "train")
    assert engraver_for(MUSESCORE_PIECE, "test") == "verovio"  # evaluation pieces never change engraver
