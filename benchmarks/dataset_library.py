"""The built dataset as the benchmarks see it: a library of its PDFs and a source of query recordings.

`index_dataset` is the one way to put the dataset's PDFs into a library (evaluations, speed benchmark and
demo all use it); indexing is idempotent, so a library that already holds a piece keeps it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import soundfile as sf

from indexer.library import Library
from model.audio import SAMPLE_RATE
from model.data import dataset as ds

LOG_EVERY = 50  # progress line every this many pieces


def index_dataset(library: Library, dataset: Path, splits: Iterable[str] | None = None,
                  log: Callable[[str], None] = print,
                  pdf_for: Callable[[str], Path] | None = None) -> dict[str, int]:  # fmt: skip
    """Index every built piece of `splits` (all splits when None); returns dataset id → piece id.

    `pdf_for` picks each piece's PDF (default: the data engine's clean one)."""
    manifest = ds.read_manifest(dataset)
    chosen = ds.built_pieces(dataset, splits)
    ids: dict[str, int] = {}
    for n, pid in enumerate(chosen):
        meta = manifest["pieces"][pid]
        pdf = pdf_for(pid) if pdf_for is not None else ds.pdf_path(dataset, pid)
        result = library.add_pdf(pdf.read_bytes(), title=meta.get("title") or pid, composer=meta["composer"],
                                 filename=pdf.name)  # fmt: skip
        ids[pid] = result.piece_id
        if result.created or (n + 1) % LOG_EVERY == 0 or n + 1 == len(chosen):
            log(f"[{n + 1}/{len(chosen)}] {'indexed' if result.created else 'already indexed'}: {pid}")
    return ids


def read_recording(dataset: Path, pid: str) -> np.ndarray:
    """The piece's query rendition (unseen SoundFont, 120 bpm), mono float32 at 22.05 kHz."""
    wave, _ = sf.read(ds.audio_path(dataset, pid), dtype="float32")
    return wave


def random_excerpt(wave: np.ndarray, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """A `seconds`-long stretch of `wave` starting at a random sample (the whole wave if shorter)."""
    span = int(seconds * SAMPLE_RATE)
    start = int(rng.integers(0, max(1, len(wave) - span)))
    return wave[start : start + span]
