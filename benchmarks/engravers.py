"""System detection on PDFs from another engraver (MuseScore 3), against the staves MuseScore drew.

Evaluation pieces are engraved by verovio (MuseScore engraves only a share of the training pieces), so
measuring the detector on verovio PDFs alone would flatter it.
Here each test piece's two-staff reduction (the same MusicXML the data engine engraves) is laid out by
MuseScore 3 into a PDF, and the same layout is exported to SVG, whose `StaffLines` polylines give the true
staves: every two consecutive staves form one system, because every reduction has exactly two staves.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from benchmarks.systems import MIN_IOU, NO_PIXEL_LIMIT, match_engraved_pages
from indexer.pdf import rasterise
from model.data.build import score_xml
from model.data.corpus import load_splits, pieces_in
from model.data.musescore import export, staff_systems


def musescore_engrave(xml: str, tmp: Path, svg: bool = True) -> tuple[bytes, list[str]]:
    """MuseScore 3's PDF of a MusicXML score (as printed: repeats and tempo marks kept) and (with `svg`)
    its SVG pages, in page order."""
    files = export(xml, tmp, ("pdf", "svg") if svg else ("pdf",))
    pdf, pages = files["pdf"], files.get("svg", [])
    assert isinstance(pdf, bytes) and isinstance(pages, list)
    return pdf, pages


def evaluate_musescore(split: str = "test", dpi: int = 150, min_iou: float = MIN_IOU,
                       log: Callable[[str], None] = print) -> dict:  # fmt: skip
    """Precision and recall (IoU ≥ min_iou) of the page front-end on MuseScore 3 PDFs of a split's pieces."""
    tp = n_true = n_found = 0
    for spec in pieces_in({split: load_splits()[split]}):
        with tempfile.TemporaryDirectory() as tmp:
            pdf, svgs = musescore_engrave(score_xml(spec)[0], Path(tmp))
        hits, truths, found = match_engraved_pages(rasterise(pdf, dpi, NO_PIXEL_LIMIT),
                                                   [staff_systems(svg) for svg in svgs], min_iou)  # fmt: skip
        log(f"{spec.id}: {truths} systems, {found} detected, {hits} matched")
        tp, n_true, n_found = tp + hits, n_true + truths, n_found + found
    return {"engraver": "MuseScore 3", "systems": n_true, "detected": n_found,
            "precision": round(tp / max(1, n_found), 4), "recall": round(tp / max(1, n_true), 4)}  # fmt: skip
