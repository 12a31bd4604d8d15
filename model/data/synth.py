"""Render sounding notes to audio: a MIDI file at a fixed quarter-note tempo, then FluidSynth or timidity.

A voice names what plays the notes: a SoundFont of FONTS played by FluidSynth as a grand piano
("fluidr3"), the same font with another General MIDI keyboard program ("fluidr3@6", a harpsichord), or
the font played by timidity ("timidity/fluidr3"), a second synthesis engine with its own envelopes and
interpolation. timidity plays only the training SoundFonts here: its freepats patches are the robust
query set's unseen piano (benchmarks/robust.py)."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from model.audio import SAMPLE_RATE
from model.data.engrave import Note

TICKS_PER_QUARTER = 480  # MIDI resolution
VELOCITY = 80  # MIDI note-on velocity of every note
TRAIN_FONTS = {  # Debian SoundFonts used for training renditions
    "fluidr3": "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "musescore": "/usr/share/sounds/sf3/MuseScore_General_Lite.sf3",
    "csound": "/usr/share/sounds/sf2/sf_GMbank.sf2",
}
EVAL_FONT = {"timgm6mb": "/usr/share/sounds/sf2/TimGM6mb.sf2"}  # unseen font for validation and test
FONTS = TRAIN_FONTS | EVAL_FONT
TIMIDITY_FONTS = ("fluidr3", "csound")  # timidity reads .sf2 (not MuseScore's compressed .sf3)
# General MIDI programs 1–7: bright and electric grand, honky-tonk, two electric pianos, harpsichord, clavinet
KEYBOARD_PROGRAMS = tuple(range(1, 8))


def parse_voice(voice: str) -> tuple[str, str, int]:
    """(engine, font, program) of a voice name: "fluidr3", "fluidr3@6" or "timidity/fluidr3"."""
    engine, _, rest = voice.rpartition("/")
    font, _, program = rest.partition("@")
    if font not in FONTS or engine not in ("", "timidity") or (engine and font not in TIMIDITY_FONTS):
        raise ValueError(f"unknown voice {voice!r}")
    return engine or "fluidsynth", font, int(program or 0)


def velocities(notes: Sequence[Note], vary: bool) -> list[int]:
    """MIDI velocities: the fixed VELOCITY, or (training) a slow dynamics curve plus per-note jitter,
    seeded by the notes so a rebuild is identical."""
    if not vary or not notes:
        return [VELOCITY] * len(notes)
    rng = np.random.default_rng(len(notes) * 7919 + int(sum(n.pitch for n in notes[:64])))
    phase, period = rng.uniform(0, 2 * np.pi), rng.uniform(8.0, 32.0)  # quarter notes per swell
    base = rng.uniform(60, 95)
    out = [base + 20 * np.sin(2 * np.pi * n.on / period + phase) + rng.normal(0, 8) for n in notes]
    return [int(np.clip(round(v), 25, 120)) for v in out]


NOTE_OFF, PEDAL, NOTE_ON = 0, 1, 2  # event order within one tick: releases, then the pedal, then new notes
SUSTAIN = 64  # MIDI controller number of the sustain pedal


def write_midi(notes: Sequence[Note], bpm: float, path: Path, vary_velocity: bool = False,
               note_velocities: Sequence[int] | None = None,
               pedal: Sequence[tuple[float, float]] = (), one_key: bool = False,
               program: int = 0) -> None:  # fmt: skip
    """Type-0 MIDI, one General MIDI program (0: grand piano) on channel 0; the onset of a note is its
    quarter position · 60/bpm.

    `note_velocities` (one per note) replaces the built-in velocities; `pedal` lists (down, up) quarter
    positions of the sustain pedal (CC64).

    Notes of one pitch that overlap (two voices in unison, a voice re-striking a held note) share one key,
    which is released when the last of them ends. By default each of them still sends its note-on: FluidSynth
    releases a key's old voice at a new note-on, and the dataset's renditions were built this way (unisons
    struck together sound as two voices). `one_key=True` writes what a piano does: unisons struck together
    are one strike, and a re-strike releases the key first. Synthesizers that stack voices per key need it
    (timidity): with two note-ons and one note-off, a voice sounds until the end of the piece."""
    import mido

    chosen = velocities(notes, vary_velocity) if note_velocities is None else list(note_velocities)
    vel = {n.id: v for n, v in zip(notes, chosen, strict=True)}

    events: list[tuple[int, int, int, int]] = []  # (tick, order, pitch or controller, velocity or value)
    for n in notes:
        events.append((round(n.on * TICKS_PER_QUARTER), NOTE_ON, n.pitch, vel[n.id]))
        events.append((max(round(n.off * TICKS_PER_QUARTER), round(n.on * TICKS_PER_QUARTER) + 1), NOTE_OFF,
                       n.pitch, 0))  # fmt: skip
    for down, up in pedal:
        events.append((round(down * TICKS_PER_QUARTER), PEDAL, SUSTAIN, 127))
        events.append((round(up * TICKS_PER_QUARTER), PEDAL, SUSTAIN, 0))
    events.sort()
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("set_tempo", tempo=int(round(60_000_000 / bpm)), time=0))
    track.append(mido.Message("program_change", program=program, channel=0, time=0))
    sounding: dict[int, int] = {}
    struck_at: dict[int, int] = {}
    last = 0
    for tick, kind, pitch, velocity in events:
        if kind == PEDAL:
            track.append(mido.Message("control_change", control=pitch, value=velocity, time=tick - last))
        elif kind == NOTE_ON:
            held = sounding.get(pitch, 0)
            sounding[pitch] = held + 1
            if one_key and held:
                if struck_at[pitch] == tick:
                    continue  # a unison struck at this very tick: one key, one strike
                track.append(mido.Message("note_off", note=pitch, velocity=0, time=tick - last))
                last = tick
            track.append(mido.Message("note_on", note=pitch, velocity=velocity, time=tick - last))
            struck_at[pitch] = tick
        else:
            sounding[pitch] -= 1
            if sounding[pitch] > 0:
                continue
            track.append(mido.Message("note_off", note=pitch, velocity=0, time=tick - last))
        last = tick
    mid = mido.MidiFile(type=0, ticks_per_beat=TICKS_PER_QUARTER)
    mid.tracks.append(track)
    mid.save(str(path))


def play_midi(mid: Path, engine: str, config: Path) -> np.ndarray:
    """A MIDI file synthesized by FluidSynth (`config`: a SoundFont) or timidity (`config`: a timidity
    configuration, its own reverb and chorus off); mono float32 at SAMPLE_RATE."""
    import soundfile as sf

    wav = mid.with_suffix(".wav")
    if engine == "timidity":
        command = ["timidity", "-c", str(config), "-EFreverb=d", "-EFchorus=d", "-OwM",
                   "-s", str(SAMPLE_RATE), "-o", str(wav), str(mid)]  # fmt: skip
    else:
        command = ["fluidsynth", "-ni", "-q", "-o", "synth.dynamic-sample-loading=1", "-r", str(SAMPLE_RATE),
                   "-F", str(wav), str(config), str(mid)]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True, timeout=600)
    audio, sr = sf.read(wav, dtype="float32", always_2d=True)
    if sr != SAMPLE_RATE:
        raise RuntimeError(f"{engine} wrote {sr} Hz, expected {SAMPLE_RATE}")
    return audio.mean(axis=1)


def render(notes: Sequence[Note], bpm: float, voice: str, vary_velocity: bool = False,
           note_velocities: Sequence[int] | None = None,
           pedal: Sequence[tuple[float, float]] = ()) -> np.ndarray:  # fmt: skip
    """Synthesize notes with a voice (see the module docstring); mono float32 at SAMPLE_RATE.
    `note_velocities` and `pedal` (quarter positions) are write_midi's.

    The three plain FluidSynth piano voices write the MIDI the dataset was built with; every other voice
    plays one key per pitch (write_midi's `one_key`), which timidity needs."""
    engine, font, program = parse_voice(voice)
    with tempfile.TemporaryDirectory() as tmp:
        mid = Path(tmp) / "in.mid"
        write_midi(notes, bpm, mid, vary_velocity, note_velocities, pedal, one_key=voice != font, program=program)
        config = Path(FONTS[font])
        if engine == "timidity":
            # The font's preset as an explicit instrument: a `soundfont` line would lose to the one in
            # timidity's default configuration (Debian's reads FluidR3_GM), whatever font it named.
            config = Path(tmp) / "timidity.cfg"
            config.write_text(f"bank 0\n{program} %font {FONTS[font]} 0 {program}\n")
        return play_midi(mid, engine, config)
