"""`sheetid eval robust-queries`: validation and test pieces played the way users play them.

The plain evaluation queries are one unseen SoundFont (TimGM6mb, FluidSynth) at a steady 120 bpm, dry,
played exactly as printed. A user plays repeats, drifts in tempo, slows down at the end, pedals, and
records in a room with a phone. This module renders each validation or test piece once more, with
nothing that the training data used:

- the score re-engraved with repeats expanded (verovio's default), so repeats and endings are played;
- a seeded base tempo (70–150 bpm) with a smooth random drift (up to ±15 %) and a final ritardando,
  by warping the note times;
- dynamics per bar (a slow random walk) with per-note jitter, and the sustain pedal (CC64) on a
  seeded share of the bars;
- a different synthesizer and sample set: timidity with freepats (training uses FluidSynth with
  FluidR3_GM, MuseScore_General_Lite and sf_GMbank; plain evaluation queries use TimGM6mb);
- a room (exponentially decaying noise impulse response, RT60 0.3–1.2 s), a microphone-like band-pass
  with a spectral tilt, and coloured noise at 20–35 dB SNR.

Every choice is drawn from a generator seeded by the piece id, so a rebuild writes the same audio.
Output: <dataset>/robust/<split>/<piece key>.flac and a manifest.json with each piece's choices.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from model.audio import SAMPLE_RATE
from model.data import dataset as ds
from model.data.corpus import PieceSpec
from model.data.engrave import Note
from model.data.perform import bar_velocities, bars_before, microphone, pedal_spans, with_noise

ROBUST_DIR = "robust"  # under the dataset root: robust/<split>/
SPLIT_GROUPS = {"validation": ("validation",), "test": ("test", "test-chorales")}  # query set → dataset splits
ENGINE = "timidity+freepats"
FREEPATS_CONFIG = "/etc/timidity/freepats.cfg"  # Debian's freepats; its piano patch replaces the default font's
TEMPO_RANGE = (70.0, 150.0)  # base tempo, bpm
DRIFT_RANGE = (0.08, 0.15)  # peak relative tempo deviation of the drift curve
RITARDANDO_RANGE = (0.6, 0.8)  # final tempo relative to the tempo before the ritardando
RITARDANDO_QUARTERS = 8.0  # the ritardando spans the last bars (at most a quarter of the piece)
RT60_RANGE = (0.3, 1.2)  # room reverberation time, s
DRR_DB_RANGE = (0.0, 10.0)  # direct-to-reverberant energy ratio
SNR_DB_RANGE = (20.0, 35.0)  # signal to additive noise, over the whole recording
LEAD_IN_RANGE = (0.2, 1.0)  # seconds of room noise before the first note
GRID_PER_QUARTER = 24  # resolution of the tempo curve


@dataclass
class Performance:
    """The seeded choices for one piece's robust rendition."""

    bpm: float
    drift: float
    ritardando: float
    pedal_share: float
    rt60: float
    drr_db: float
    snr_db: float
    low_cut_hz: float
    high_cut_hz: float
    tilt: float  # gain of the >1 kHz band added (brighter) or removed (darker)
    noise_colour: float  # 0 white … 0.95 rumbling (one-pole low-pass coefficient)
    lead_in: float


def piece_rng(piece: str) -> np.random.Generator:
    return np.random.default_rng(int(hashlib.sha256(("robust:" + piece).encode()).hexdigest()[:16], 16))


def draw_performance(rng: np.random.Generator) -> Performance:
    u = rng.uniform
    return Performance(
        bpm=round(float(u(*TEMPO_RANGE)), 1), drift=float(u(*DRIFT_RANGE)), ritardando=float(u(*RITARDANDO_RANGE)),
        pedal_share=float(u(0.2, 0.9)), rt60=float(u(*RT60_RANGE)), drr_db=float(u(*DRR_DB_RANGE)),
        snr_db=float(u(*SNR_DB_RANGE)), low_cut_hz=float(u(60, 150)), high_cut_hz=float(u(5000, 9000)),
        tilt=float(u(-0.4, 0.4)), noise_colour=float(u(0.0, 0.95)), lead_in=float(u(*LEAD_IN_RANGE)),
    )  # fmt: skip


def tempo_map(end: float, perf: Performance, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(quarter grid, seconds at each grid point): a smooth drift around the base tempo, then a ritardando."""
    q = np.linspace(0.0, end, max(2, int(end * GRID_PER_QUARTER) + 1))
    curve = np.zeros_like(q)
    for _ in range(3):  # three slow sinusoids, periods of 3 to 12 bars of 4/4
        curve += rng.normal() * np.sin(2 * np.pi * q / rng.uniform(12.0, 48.0) + rng.uniform(0, 2 * np.pi))
    curve *= perf.drift / max(float(np.abs(curve).max()), 1e-9)
    span = min(RITARDANDO_QUARTERS, end / 4)
    into = np.clip((q - (end - span)) / max(span, 1e-9), 0.0, 1.0)
    slowing = 1.0 - (1.0 - perf.ritardando) * (1 - np.cos(np.pi * into)) / 2  # eases in and out
    seconds_per_quarter = 60.0 / (perf.bpm * (1.0 + curve) * slowing)
    steps = np.diff(q) * (seconds_per_quarter[1:] + seconds_per_quarter[:-1]) / 2
    return q, np.concatenate([[0.0], np.cumsum(steps)])


def warp(notes: Sequence[Note], q: np.ndarray, seconds: np.ndarray) -> list[Note]:
    """The notes timed in seconds through a tempo map (quarter grid, seconds at each grid point)."""
    return [Note(n.id, n.pitch, float(np.interp(n.on, q, seconds)), float(np.interp(n.off, q, seconds)))
            for n in notes]  # fmt: skip


def at_tempo(notes: Sequence[Note], seconds_per_quarter: float) -> list[Note]:
    """The notes timed in seconds at a steady tempo."""
    end = max(n.off for n in notes)
    return warp(notes, np.array([0.0, end]), np.array([0.0, end * seconds_per_quarter]))


def timidity(notes: Sequence[Note], note_velocities: Sequence[int], pedal: Sequence[tuple[float, float]],
             one_key: bool = True) -> np.ndarray:  # fmt: skip
    """Synthesize notes timed in seconds with timidity and freepats; mono float32 at SAMPLE_RATE.

    `one_key=False` writes the MIDI as the robust set did before its stuck-note fix (benchmarks/voices.py)."""
    from model.data.synth import play_midi, write_midi

    with tempfile.TemporaryDirectory() as tmp:
        mid = Path(tmp) / "in.mid"
        # at 60 bpm a quarter is 1 s; one key per pitch, or timidity holds doubled unisons for ever
        write_midi(notes, 60.0, mid, note_velocities=note_velocities, pedal=pedal, one_key=one_key)
        return play_midi(mid, "timidity", Path(FREEPATS_CONFIG))  # its reverb stays off: the room is ours


def room(wave: np.ndarray, perf: Performance, rng: np.random.Generator) -> np.ndarray:
    """Reverb (synthetic impulse response), microphone band-pass and tilt, lead-in, noise; peak 0.9."""
    from scipy.signal import fftconvolve

    n = int(perf.rt60 * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    tail = rng.standard_normal(n) * np.exp(-np.log(1000.0) * t / perf.rt60)  # −60 dB after RT60
    tail[: int(rng.uniform(0.005, 0.02) * SAMPLE_RATE)] = 0.0  # pre-delay before the first reflections
    tail *= 10 ** (-perf.drr_db / 20) / np.sqrt(np.sum(tail**2))
    tail[0] += 1.0  # the direct sound
    wet = fftconvolve(np.concatenate([np.zeros(int(perf.lead_in * SAMPLE_RATE)), wave]), tail)
    mic = microphone(wet, perf.low_cut_hz, perf.high_cut_hz, perf.tilt)
    return with_noise(mic, perf.noise_colour, perf.snr_db, rng)


def perform(notes: Sequence[Note], bars: Sequence[float], piece: str) -> tuple[np.ndarray, dict]:
    """The robust rendition of sounding notes (quarter positions): audio and the choices made."""
    rng = piece_rng(piece)
    perf = draw_performance(rng)
    end = max(n.off for n in notes)
    bar_q = bars_before(bars, end)
    q, seconds = tempo_map(end, perf, rng)
    timed = warp(notes, q, seconds)
    played = float(seconds[-1])
    pedal = pedal_spans(np.interp(bar_q, q, seconds), played, perf.pedal_share, rng)
    dry = timidity(timed, bar_velocities(notes, bar_q, rng), pedal)
    wave = room(dry, perf, rng)
    info = asdict(perf) | {"engine": ENGINE, "notes": len(notes), "repeated_notes": sum("-rend" in n.id for n in notes),
                           "quarters": round(end, 3), "played_seconds": round(played, 3), "pedalled_bars": len(pedal),
                           "bars": len(bar_q), "seconds": round(len(wave) / SAMPLE_RATE, 3)}  # fmt: skip
    return wave, info


def robust_root(dataset: Path) -> Path:
    """Where a dataset's robust query sets live unless told otherwise: <dataset>/robust."""
    return dataset / ROBUST_DIR


def build_piece(spec: PieceSpec, out: Path) -> dict:
    """Re-engrave with repeats expanded, perform, write <out>/<key>.flac; returns the piece's entry."""
    import soundfile as sf

    from model.data.build import score_xml
    from model.data.engrave import engrave

    t0 = time.time()
    xml, _ = score_xml(spec)
    eng = engrave(xml, expand_repeats=True, draw=False)
    if not eng.notes:
        raise ValueError("no sounding notes")
    wave, info = perform(eng.notes, eng.bars, spec.id)
    path = out / f"{ds.piece_key(spec.id)}.flac"
    tmp = path.with_suffix(".tmp.flac")
    sf.write(tmp, wave, SAMPLE_RATE, subtype="PCM_16")
    tmp.replace(path)
    return info | {"file": path.name, "build_seconds": round(time.time() - t0, 2)}


def build_robust(dataset: Path, split: str, root: Path | None = None, log: Callable[[str], None] = print) -> dict:
    """Render every built piece of a query set (`validation` or `test`: test + test-chorales) into
    <root>/<split>/ (root: <dataset>/robust), resuming where a previous run stopped."""
    from model.data.corpus import load_splits, pieces_in

    if split not in SPLIT_GROUPS:
        raise ValueError(f"split must be one of {sorted(SPLIT_GROUPS)}, not {split!r}")
    out = (root or robust_root(dataset)) / split
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / ds.MANIFEST
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {"pieces": {}, "failures": {}}
    built = ds.read_manifest(dataset)["pieces"]
    wanted = ds.built_pieces(dataset, SPLIT_GROUPS[split])
    specs = {s.id: s for s in pieces_in(load_splits())}
    t0 = time.time()
    for n, pid in enumerate(wanted):
        if pid in manifest["pieces"] and (out / manifest["pieces"][pid]["file"]).exists():
            continue
        try:
            entry = build_piece(specs[pid], out)
        except Exception as exc:  # noqa: BLE001 - recorded with its reason, never dropped
            manifest["failures"][pid] = f"{type(exc).__name__}: {exc}"
            log(f"FAILED {pid}: {exc}")
        else:
            manifest["pieces"][pid] = entry | {"split": built[pid]["split"]}
            manifest["failures"].pop(pid, None)
            log(f"[{n + 1}/{len(wanted)}] {pid}: {entry['seconds']:.0f} s audio in {entry['build_seconds']:.0f} s")
        _write_json(manifest_path, manifest)
    manifest["last_build_seconds"] = round(time.time() - t0, 1)
    _write_json(manifest_path, manifest)
    return manifest


def _write_json(path: Path, data: dict) -> None:
    """Atomically, so an interrupted build never leaves a half-written manifest."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    tmp.replace(path)


def robust_queries(root: Path, split: str) -> dict[str, Path]:
    """Dataset piece id → robust FLAC of a query set built under root (empty when it was never built)."""
    path = root / split / ds.MANIFEST
    if not path.exists():
        return {}
    pieces = json.loads(path.read_text())["pieces"]
    return {pid: root / split / p["file"] for pid, p in sorted(pieces.items())}


def summarize(manifest: dict) -> dict:
    """Pieces, failures, minutes of audio, recording lengths, pieces with repeats, summed build time."""
    entries = list(manifest["pieces"].values())
    seconds = [e["seconds"] for e in entries] or [0.0]
    return {"pieces": len(entries), "failures": len(manifest["failures"]),
            "audio_minutes": round(sum(seconds) / 60, 1),
            "seconds_min_median_max": [round(float(f(seconds)), 1) for f in (np.min, np.median, np.max)],
            "with_repeats": sum(e["repeated_notes"] > 0 for e in entries),
            "build_seconds": round(sum(e["build_seconds"] for e in entries), 1)}  # fmt: skip
