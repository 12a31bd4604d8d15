"""Demo library: index the dataset's test-split PDFs and write short example recordings to try."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from indexer.library import Library
from model.data import dataset as ds

EXAMPLE_SECONDS = 20.0  # length of each example recording
EXAMPLES = 4  # example recordings written


def build_demo(library: Library, dataset: Path, splits: tuple[str, ...] = ("test",),
               log: Callable[[str], None] = print) -> list[Path]:  # fmt: skip
    """Index every built piece of `splits` (skipping ones already indexed); returns the example files."""
    import soundfile as sf

    manifest = ds.read_manifest(dataset)
    chosen = sorted(pid for pid, p in manifest["pieces"].items() if p["split"] in splits)
    if not chosen:
        raise FileNotFoundError(f"no pieces of {splits} in {dataset}: run `sheetid data build` first")
    examples_dir = library.settings.data_dir / "examples"
    examples_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    rng = np.random.default_rng(0)
    for n, pid in enumerate(chosen):
        meta = manifest["pieces"][pid]
        pdf = dataset / ds.PDF_DIR / f"{ds.piece_key(pid)}.pdf"
        result = library.add_pdf(pdf.read_bytes(), title=meta.get("title"), composer=meta["composer"],
                                 filename=pdf.name)  # fmt: skip
        log(f"[{n + 1}/{len(chosen)}] {'indexed' if result.created else 'already indexed'}: {pid}")
        audio = dataset / ds.AUDIO_DIR / f"{ds.piece_key(pid)}.flac"
        if len(written) < EXAMPLES and audio.exists():
            wave, sr = sf.read(audio, dtype="float32")
            span = int(EXAMPLE_SECONDS * sr)
            start = int(rng.integers(0, max(1, len(wave) - span)))
            out = examples_dir / f"{ds.piece_key(pid)}_excerpt.wav"
            sf.write(out, wave[start : start + span], sr)
            written.append(out)
    return written
