"""`sheetid eval robust-factors`: which part of the robust query set costs identification what.

The robust set (benchmarks/robust.py) changes many things at once: synthesizer and samples, tempo,
pedal, dynamics, room, microphone, noise, loudness. Here each validation piece is played again with one
change at a time, against the same library, and every rendition is asked as a whole recording:

- clean: the dataset's query rendition (TimGM6mb, FluidSynth, 120 bpm, as printed);
- room: the clean rendition through the piece's robust room, microphone and noise;
- other-synth: timidity + freepats at a steady 120 bpm, fixed velocity, dry;
- other-synth+tempo: the same with the robust tempo drift and ritardando;
- other-synth+pedal: steady tempo with the robust sustain pedal;
- robust: the robust query itself (all of the above, repeats played, peak 0.9).

With `match_level`, every rendition is first scaled to the clean rendition's RMS, which takes loudness
out of the comparison (what a checkpoint with ModelConfig.audio_level does in its front-end).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf

from benchmarks import robust as rb
from benchmarks.dataset_library import index_dataset, read_recording
from benchmarks.identify import rank_of
from indexer.library import Library
from model.data import dataset as ds
from model.data.perform import bars_before, pedal_spans
from service.identify import identify

CONDITIONS = ("clean", "room", "other-synth", "other-synth+tempo", "other-synth+pedal", "robust")
STEADY_SECONDS_PER_QUARTER = 0.5  # 120 bpm, the clean rendition's tempo
FIXED_VELOCITY = 80


def renditions(dataset: Path, pid: str, robust_file: Path) -> dict[str, np.ndarray]:
    """The piece played under every condition (mono float32 at 22.05 kHz)."""
    from model.data.build import score_xml
    from model.data.corpus import piece_spec
    from model.data.engrave import engrave

    engraving = engrave(score_xml(piece_spec(pid))[0], expand_repeats=False, draw=False)
    notes = engraving.notes
    rng = rb.piece_rng(pid)  # the robust set's own draws for this piece, in the same order
    perf = rb.draw_performance(rng)
    end = max(n.off for n in notes)
    q, seconds = rb.tempo_map(end, perf, rng)
    steady = rb.at_tempo(notes, STEADY_SECONDS_PER_QUARTER)
    drifting = rb.warp(notes, q, seconds)
    fixed = [FIXED_VELOCITY] * len(notes)
    clean = read_recording(dataset, pid)
    return {
        "clean": clean,
        "room": rb.room(clean, perf, rb.piece_rng("room:" + pid)),
        "other-synth": rb.timidity(steady, fixed, []),
        "other-synth+tempo": rb.timidity(drifting, fixed, []),
        "other-synth+pedal": rb.timidity(steady, fixed, _steady_pedal(pid, engraving.bars, end, perf.pedal_share)),
        "robust": sf.read(robust_file, dtype="float32")[0],
    }


def _steady_pedal(pid: str, bars: list[float], end_quarters: float, share: float) -> list[tuple[float, float]]:
    """The pedal held through `share` of the bars (seeded), at the steady tempo."""
    bar_seconds = bars_before(bars, end_quarters) * STEADY_SECONDS_PER_QUARTER
    return pedal_spans(bar_seconds, end_quarters * STEADY_SECONDS_PER_QUARTER, share, rb.piece_rng("pedal:" + pid))


def evaluate_factors(library: Library, dataset: Path, match_level: bool = False,
                     log: Callable[[str], None] = print) -> dict:  # fmt: skip
    """Rank of the right piece per validation piece and condition; top-1 counts per condition."""
    recordings = rb.robust_queries(rb.robust_root(dataset), "validation")
    if not recordings:
        raise FileNotFoundError("no robust validation set: `sheetid eval robust-queries --split validation`")
    ids = index_dataset(library, dataset, log=lambda _: None)
    stray = set(library.counts()) - set(ids.values())
    if stray:
        raise ValueError(f"the library holds {len(stray)} pieces besides this dataset's: use a folder of its own")
    ranks: dict[str, dict[str, int]] = {}
    for pid in ds.built_pieces(dataset, rb.SPLIT_GROUPS["validation"]):
        if pid not in recordings:
            continue
        waves = renditions(dataset, pid, recordings[pid])
        reference = float(np.sqrt(np.mean(waves["clean"] ** 2)))
        row = {}
        for name, wave in waves.items():
            if match_level:
                wave = wave * (reference / max(float(np.sqrt(np.mean(wave**2))), 1e-12))
            result = identify(library, wave.astype(np.float32))
            row[name] = rank_of([p.id for p in result.pieces], ids[pid])
        ranks[pid] = row
        log(f"{pid}: {row}")
    return {"pieces": len(ranks), "match_level": match_level,
            "top1": {c: sum(r[c] == 1 for r in ranks.values()) for c in CONDITIONS}, "ranks": ranks}  # fmt: skip
