"""System detection on PDFs from another engraver (MuseScore 3), against the staves MuseScore drew.

Evaluation pieces are engraved by verovio (MuseScore engraves only a share of the training pieces), so
measuring the detector on verovio PDFs alone would flatter it.
Here each test piece's two-staff reduction (the same MusicXML the data engine engraves) is laid out by
MuseScore 3 into a PDF, and the same layout is exported to SVG, whose `StaffLines` polylines give the true
staves: every two consecutive staves form one system, because every reduction has exactly two staves.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from benchmarks.systems import MIN_IOU, evaluate_engraver
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
    return evaluate_engraver("MuseScore 3", musescore_engrave, staff_systems, split, dpi, min_iou, log)
