"""Demo library: index the dataset's test-split PDFs and write short example recordings to try."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from benchmarks.dataset_library import index_dataset, random_excerpt, read_recording
from indexer.library import Library
from model.audio import SAMPLE_RATE
from model.data import dataset as ds

EXAMPLE_SECONDS = 20.0  # length of each example recording
EXAMPLES = 4  # example recordings written


def build_demo(library: Library, dataset: Path, splits: tuple[str, ...] = ("test",),
               log: Callable[[str], None] = print) -> list[Path]:  # fmt: skip
    """Index every built piece of `splits` (skipping ones already indexed); returns the example files."""
    import soundfile as sf

    if not ds.built_pieces(dataset, splits):
        raise FileNotFoundError(f"no pieces of {splits} in {dataset}: run `sheetid data build` first")
    ids = index_dataset(library, dataset, splits, log)
    examples_dir = library.settings.data_dir / "examples"
    examples_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    with_audio = [pid for pid in ids if ds.audio_path(dataset, pid).exists()][:EXAMPLES]
    written: list[Path] = []
    for pid in with_audio:
        out = examples_dir / f"{ds.piece_key(pid)}_excerpt.wav"
        sf.write(out, random_excerpt(read_recording(dataset, pid), EXAMPLE_SECONDS, rng), SAMPLE_RATE)
        written.append(out)
    return written
