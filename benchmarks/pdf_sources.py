"""The score PDFs a library can be indexed from, besides the data engine's clean verovio PDFs.

Users index scans and other engravers' PDFs, so identification is also measured on libraries built from
them (`sheetid eval identify --pdfs scan|musescore|lilypond`):

- scan: the clean PDF rasterised at a seeded 100–300 dpi, each page through `degrade_page` (rotation,
  perspective, toned paper, uneven light, blur, noise, JPEG), and the pages put back into a PDF at that
  resolution, as a scanner writes one;
- musescore / lilypond: the piece's two-staff reduction (the MusicXML the data engine engraves) laid out
  by MuseScore 3 or LilyPond.

Each PDF is made once and kept under <dataset>/pdf-<source>/, so repeated evaluations index the same
bytes. The seed of a scan comes from the piece id, so the same piece always gets the same scan.
"""

from __future__ import annotations

import hashlib
import io
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.degrade import degrade_page, scan_dpi
from benchmarks.engravers import musescore_engrave
from benchmarks.lilypond import lilypond_engrave
from benchmarks.systems import NO_PIXEL_LIMIT
from indexer.pdf import rasterise
from model.data import dataset as ds

PDF_SOURCES = ("clean", "scan", "musescore", "lilypond")
SCAN_SEED = 1  # not the system benchmark's seed 0: the identification scans are other draws


def _scanned(clean_pdf: bytes, rng: np.random.Generator) -> bytes:
    dpi = scan_dpi(rng)
    pages = [Image.fromarray(degrade_page(page, rng)[0]) for page in rasterise(clean_pdf, dpi, NO_PIXEL_LIMIT)]
    out = io.BytesIO()
    pages[0].save(out, format="PDF", save_all=True, append_images=pages[1:], resolution=float(dpi))
    return out.getvalue()


def _engraved(pid: str, source: str) -> bytes:
    from model.data.build import score_xml
    from model.data.corpus import piece_spec

    spec = piece_spec(pid)
    engrave = musescore_engrave if source == "musescore" else lilypond_engrave
    with tempfile.TemporaryDirectory() as tmp:
        return engrave(score_xml(spec)[0], Path(tmp), svg=False)[0]


def source_pdf(dataset: Path, pid: str, source: str) -> Path:
    """The piece's PDF from `source` (made on first use and kept beside the dataset)."""
    if source not in PDF_SOURCES:
        raise ValueError(f"PDF source is one of {PDF_SOURCES}, not {source!r}")
    clean = ds.pdf_path(dataset, pid)
    if source == "clean":
        return clean
    path = dataset / f"pdf-{source}" / clean.name
    if not path.exists():
        if source == "scan":
            seed = int.from_bytes(hashlib.sha256(pid.encode()).digest()[:4], "little")
            data = _scanned(clean.read_bytes(), np.random.default_rng([SCAN_SEED, seed]))
        else:
            data = _engraved(pid, source)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)  # a half-written PDF is never taken for a finished one
    return path
