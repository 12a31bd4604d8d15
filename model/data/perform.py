"""Performed training renditions: what a pianist and a room add to the notes as printed.

A voice name ending in ROOM ("csound+room", "timidity/fluidr3+room") is played with dynamics that walk
from bar to bar, the sustain pedal held through a seeded share of the bars, then heard through a room
(a synthetic impulse response), a microphone (band-pass and spectral tilt) and background noise. The
tempo stays steady, so a rendition's onsets are still its quarter positions · 60 / bpm (dataset.py);
the training loop's excerpt time-stretch stands in for local tempo changes.

The robust query set (benchmarks/robust.py) shares the dynamics, pedal, microphone and noise steps, but
keeps what a training rendition never has: timidity with freepats, tempo drift and a ritardando, repeats
played. Its room is a different model too: one broadband exponential decay there, here a decay that is
faster for high frequencies than for low ones, after a few discrete early reflections.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from model.audio import SAMPLE_RATE
from model.data.engrave import Note
from model.data.synth import render

ROOM = "+room"  # voice-name suffix of a performed rendition
PEDAL_DELAY = 0.05  # s after a bar's first notes: the pedal goes down after the new harmony sounds
# Decay time of each band relative to the room's RT60: wood, carpet and air absorb highs first.
BAND_EDGES_HZ = (400.0, 3000.0)
BAND_RT60_SCALE = (1.3, 1.0, 0.55)


@dataclass
class Room:
    """The seeded choices of one performed rendition."""

    pedal_share: float  # share of bars with the sustain pedal held
    rt60: float  # s, mid band
    drr_db: float  # direct-to-reverberant energy ratio
    reflections: int  # discrete early reflections before the diffuse tail
    snr_db: float  # signal to additive noise, over the whole rendition
    low_cut_hz: float
    high_cut_hz: float
    tilt: float  # gain of the >1 kHz band added (brighter) or removed (darker)
    noise_colour: float  # 0 white … 0.95 rumbling (one-pole low-pass coefficient)


def draw_room(rng: np.random.Generator) -> Room:
    u = rng.uniform
    return Room(pedal_share=float(u(0.1, 0.9)), rt60=float(u(0.2, 1.6)), drr_db=float(u(-3.0, 12.0)),
                reflections=int(rng.integers(2, 8)), snr_db=float(u(15.0, 40.0)), low_cut_hz=float(u(40, 200)),
                high_cut_hz=float(u(4000, 10000)), tilt=float(u(-0.5, 0.5)),
                noise_colour=float(u(0.0, 0.95)))  # fmt: skip


def bar_velocities(notes: Sequence[Note], bars: np.ndarray, rng: np.random.Generator) -> list[int]:
    """A random walk of dynamics from bar to bar, a small accent on downbeats, jitter per note."""
    level = np.clip(rng.uniform(55, 90) + np.cumsum(rng.normal(0, 6, len(bars))), 35, 110)
    bar_of = np.clip(np.searchsorted(bars, [n.on for n in notes], side="right") - 1, 0, len(bars) - 1)
    out = []
    for n, b in zip(notes, bar_of, strict=True):
        accent = 5.0 if abs(n.on - bars[b]) < 1e-6 else 0.0
        out.append(int(np.clip(round(level[b] + accent + rng.normal(0, 7)), 20, 120)))
    return out


def bars_before(bars: Sequence[float], end: float) -> np.ndarray:
    """The bar lines (quarters) before the piece's end; a piece without any has one at 0."""
    return np.array(sorted(b for b in bars if b < end) or [0.0])


def pedal_spans(bar_seconds: np.ndarray, end: float, share: float,
                rng: np.random.Generator) -> list[tuple[float, float]]:  # fmt: skip
    """(down, up) seconds: the pedal is held through a seeded share of the bars, changed at each bar line."""
    starts, ends = bar_seconds, np.append(bar_seconds[1:], end)
    return [(float(s) + PEDAL_DELAY, float(e)) for s, e in zip(starts, ends, strict=True)
            if rng.uniform() < share and e - s > 2 * PEDAL_DELAY]  # fmt: skip


def microphone(wet: np.ndarray, low_cut_hz: float, high_cut_hz: float, tilt: float) -> np.ndarray:
    """A microphone's band-pass, then a spectral tilt: tilt · (the part above 1 kHz) added."""
    from scipy.signal import butter, sosfilt

    band = butter(2, [low_cut_hz, high_cut_hz], btype="bandpass", fs=SAMPLE_RATE, output="sos")
    mic = sosfilt(band, wet)
    return mic + tilt * sosfilt(butter(1, 1000.0, btype="highpass", fs=SAMPLE_RATE, output="sos"), mic)


def with_noise(signal: np.ndarray, colour: float, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """Coloured noise added at `snr_db` below the signal's power, then the peak scaled to 0.9 (float32)."""
    from scipy.signal import lfilter

    noise = lfilter([1.0 - colour], [1.0, -colour], rng.standard_normal(len(signal)))
    noise *= np.sqrt(np.mean(signal**2) / np.mean(noise**2)) * 10 ** (-snr_db / 20)
    out = signal + noise
    return (0.9 * out / max(float(np.abs(out).max()), 1e-9)).astype(np.float32)


def impulse_response(room: Room, rng: np.random.Generator) -> np.ndarray:
    """Direct sound, a few early reflections (5–50 ms), then a diffuse tail whose decay time differs per
    band (BAND_RT60_SCALE); the reflections and tail carry the energy `drr_db` below the direct sound."""
    from scipy.signal import butter, sosfilt

    n = int(room.rt60 * max(BAND_RT60_SCALE) * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    noise = rng.standard_normal(n)
    lo, hi = BAND_EDGES_HZ
    bands = (sosfilt(butter(2, lo, btype="lowpass", fs=SAMPLE_RATE, output="sos"), noise),
             sosfilt(butter(2, [lo, hi], btype="bandpass", fs=SAMPLE_RATE, output="sos"), noise),
             sosfilt(butter(2, hi, btype="highpass", fs=SAMPLE_RATE, output="sos"), noise))  # fmt: skip
    tail = sum(b * np.exp(-np.log(1000.0) * t / (room.rt60 * s)) for b, s in zip(bands, BAND_RT60_SCALE, strict=True))
    onset = int(0.05 * SAMPLE_RATE)
    tail[:onset] *= np.linspace(0.0, 1.0, onset)  # the diffuse field builds up after the early reflections
    spike = np.sqrt(np.sum(tail**2) / 50)  # each reflection a few % of the tail's energy
    for delay in rng.uniform(0.005, 0.05, room.reflections):
        tail[int(delay * SAMPLE_RATE)] += rng.uniform(0.3, 1.0) * rng.choice([-1.0, 1.0]) * spike
    tail *= 10 ** (-room.drr_db / 20) / np.sqrt(np.sum(tail**2))
    tail[0] += 1.0  # the direct sound
    return tail


def seed_of(piece: str, voice: str) -> int:
    """A performed rendition's seed: its piece and voice, so a rebuild writes the same audio."""
    return int(hashlib.sha256(f"perform:{piece}:{voice}".encode()).hexdigest()[:16], 16)


def perform(notes: Sequence[Note], bars: Sequence[float], bpm: float, voice: str, seed: int) -> np.ndarray:
    """A performed rendition (voice: a synth.py voice + ROOM) at a steady `bpm`; mono float32."""
    from scipy.signal import fftconvolve

    if not voice.endswith(ROOM):
        raise ValueError(f"not a performed voice: {voice!r}")
    rng = np.random.default_rng(seed)
    room = draw_room(rng)
    end = max(n.off for n in notes)
    bar_q = bars_before(bars, end)
    seconds_per_quarter = 60.0 / bpm
    spans = pedal_spans(bar_q * seconds_per_quarter, end * seconds_per_quarter, room.pedal_share, rng)
    dry = render(notes, bpm, voice.removesuffix(ROOM), note_velocities=bar_velocities(notes, bar_q, rng),
                 pedal=[(down / seconds_per_quarter, up / seconds_per_quarter) for down, up in spans])  # fmt: skip
    wet = fftconvolve(dry, impulse_response(room, rng))
    return with_noise(microphone(wet, room.low_cut_hz, room.high_cut_hz, room.tilt), room.noise_colour,
                      room.snr_db, rng)  # fmt: skip
