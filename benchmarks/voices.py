"""`sheetid eval voices`: how far each synthesized voice sounds from the evaluation queries' piano.

Every validation piece is played at a steady 120 bpm by each voice the data engine knows (the training
voices of model/data/synth.py, and the robust set's timidity + freepats, written with one key per pitch
as the robust set is now and with the stacked note-ons it had before), and each spectrogram is compared
frame by frame with the evaluation rendition (TimGM6mb, FluidSynth), both scaled to one level. A voice
close to 1 sounds like what the plain queries sound like; the training voices' spread is the variety
the network learns to ignore, and the robust voice's distance is the gap it must cross.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from benchmarks import robust as rb
from model.audio import at_level, spectrogram
from model.data import dataset as ds
from model.data.engrave import Note
from model.data.synth import EVAL_FONT, KEYBOARD_PROGRAMS, TIMIDITY_FONTS, TRAIN_FONTS, render

LEVEL = 30.0  # any common level: at_level makes the comparison independent of each voice's loudness
TEMPO = 120.0  # the evaluation renditions' bpm
STUCK = "timidity+freepats (stacked note-ons, as built before)"


def training_voices() -> list[str]:
    """Every voice a training rendition can be drawn from (model/data/build.py renditions_for)."""
    return ([*TRAIN_FONTS] + [f"timidity/{f}" for f in TIMIDITY_FONTS]
            + [f"{f}@{p}" for f in TRAIN_FONTS for p in KEYBOARD_PROGRAMS])  # fmt: skip


def _freepats(notes: Sequence[Note], one_key: bool) -> np.ndarray:
    """The robust set's synthesizer at a steady tempo, fixed velocity, dry; `one_key=False` writes the
    MIDI as the robust set did before its stuck-note fix."""
    steady = rb.at_tempo(notes, 60.0 / TEMPO)
    return rb.timidity(steady, [80] * len(steady), [], one_key=one_key)


def median_frame_cosine(spec: np.ndarray, reference: np.ndarray) -> float:
    n = min(len(spec), len(reference))
    a, b = at_level(reference[:n], LEVEL), at_level(spec[:n], LEVEL)
    norm_a = np.linalg.norm(a, axis=1)
    cos = (a * b).sum(axis=1) / (norm_a * np.linalg.norm(b, axis=1) + 1e-9)
    return float(np.median(cos[norm_a > 0]))


def evaluate_voices(dataset: Path, pieces: int | None = None, log: Callable[[str], None] = print) -> dict:
    """Median frame cosine to the evaluation voice, per voice and validation piece, and the mean per voice."""
    from model.data.build import score_xml
    from model.data.corpus import piece_spec
    from model.data.engrave import engrave

    ids = ds.built_pieces(dataset, ["validation"])[:pieces]
    table: dict[str, dict[str, float]] = {}
    for pid in ids:
        notes = engrave(score_xml(piece_spec(pid))[0], draw=False).notes
        reference = spectrogram(render(notes, TEMPO, next(iter(EVAL_FONT))))
        row = {v: median_frame_cosine(spectrogram(render(notes, TEMPO, v)), reference) for v in training_voices()}
        row[rb.ENGINE] = median_frame_cosine(spectrogram(_freepats(notes, one_key=True)), reference)
        row[STUCK] = median_frame_cosine(spectrogram(_freepats(notes, one_key=False)), reference)
        table[pid] = {k: round(v, 4) for k, v in row.items()}
        log(f"{pid}: " + ", ".join(f"{k} {v:.3f}" for k, v in table[pid].items()))
    voices = list(next(iter(table.values()))) if table else []
    mean = {v: round(float(np.mean([row[v] for row in table.values()])), 4) for v in voices}
    return {"pieces": len(table), "reference": f"{next(iter(EVAL_FONT))} (FluidSynth), {TEMPO:g} bpm",
            "mean": mean, "per_piece": table}  # fmt: skip
