"""System detection on PDFs from another engraver (MuseScore 3), against the staves MuseScore drew.

The data engine engraves with verovio, so measuring the detector on verovio PDFs alone would flatter it.
Here each test piece's two-staff reduction (the same MusicXML the data engine engraves) is laid out by
MuseScore 3 into a PDF, and the same layout is exported to SVG, whose `StaffLines` polylines give the true
staves: every two consecutive staves form one system, because every reduction has exactly two staves.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from benchmarks.systems import MIN_IOU, NO_PIXEL_LIMIT, match_engraved_pages, numbered_svg_pages
from indexer.pdf import rasterise
from model.data.build import score_xml
from model.data.corpus import load_splits, pieces_in

MSCORE = "mscore3"  # Debian package musescore3
STAFF_LINES = re.compile(r'class="StaffLines"[^>]*points="([\d.]+),([\d.]+) ([\d.]+),([\d.]+)"')
SVG_WIDTH = re.compile(r'<svg width="([\d.]+)px"')
Box = tuple[float, float, float, float]


def musescore_systems(svg: str) -> tuple[list[Box], float]:
    """(system boxes in SVG units, page width in SVG units) from a MuseScore SVG page."""
    lines = sorted((float(y0), float(x0), float(x1)) for x0, y0, x1, _ in STAFF_LINES.findall(svg))
    width = float(SVG_WIDTH.search(svg).group(1))  # type: ignore[union-attr]
    staves = [lines[i : i + 5] for i in range(0, len(lines) - len(lines) % 5, 5)]
    systems = []
    for upper, lower in zip(staves[::2], staves[1::2], strict=False):
        systems.append((min(upper[0][1], lower[0][1]), upper[0][0], max(upper[0][2], lower[0][2]), lower[-1][0]))
    return systems, width


def musescore_engrave(xml: str, tmp: Path, svg: bool = True) -> tuple[bytes, list[str]]:
    """MuseScore 3's PDF of a MusicXML score and (with `svg`) its SVG pages, in page order."""
    if shutil.which(MSCORE) is None:
        raise RuntimeError("MuseScore 3 is needed: apt-get install musescore3")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    (tmp / "score.musicxml").write_text(xml)
    for out in ("score.pdf", "score.svg") if svg else ("score.pdf",):
        subprocess.run([MSCORE, "-o", str(tmp / out), str(tmp / "score.musicxml")], env=env, check=True,
                       capture_output=True, timeout=300)  # fmt: skip
    pages = numbered_svg_pages(tmp)
    return (tmp / "score.pdf").read_bytes(), [p.read_text() for p in pages]


def evaluate_musescore(split: str = "test", dpi: int = 150, min_iou: float = MIN_IOU,
                       log: Callable[[str], None] = print) -> dict:  # fmt: skip
    """Precision and recall (IoU ≥ min_iou) of the page front-end on MuseScore 3 PDFs of a split's pieces."""
    tp = n_true = n_found = 0
    for spec in pieces_in({split: load_splits()[split]}):
        with tempfile.TemporaryDirectory() as tmp:
            pdf, svgs = musescore_engrave(score_xml(spec)[0], Path(tmp))
        hits, truths, found = match_engraved_pages(rasterise(pdf, dpi, NO_PIXEL_LIMIT),
                                                   [musescore_systems(svg) for svg in svgs], min_iou)  # fmt: skip
        log(f"{spec.id}: {truths} systems, {found} detected, {hits} matched")
        tp, n_true, n_found = tp + hits, n_true + truths, n_found + found
    return {"engraver": "MuseScore 3", "systems": n_true, "detected": n_found,
            "precision": round(tp / max(1, n_found), 4), "recall": round(tp / max(1, n_true), 4)}  # fmt: skip
