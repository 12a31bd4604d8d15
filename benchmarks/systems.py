"""Staff-system detection on the data engine's (verovio) PDFs against the systems verovio drew (IoU ≥ 0.8)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from benchmarks.align import ENGRAVED_PAGE_WIDTH
from indexer.pdf import rasterise
from model.data import dataset as ds
from model.data.build import score_xml
from model.data.corpus import load_splits, pieces_in
from model.sheet import read_page

Box = tuple[float, float, float, float]  # x0, y0, x1, y1
Engrave = Callable[[str, Path], tuple[bytes, list[str]]]  # (MusicXML, work dir) → (PDF, SVG text per page)
TrueSystems = Callable[[str], tuple[list[Box], float]]  # SVG page → (system boxes, page width), SVG units
MIN_IOU = 0.8  # a detected system counts when it overlaps a true one this much
NO_PIXEL_LIMIT = 10**9  # the benchmark's own PDFs: no decompression-bomb guard needed


def box_iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def evaluate_systems(dataset: Path, splits: tuple[str, ...] = ("test",), dpi: int = 150,
                     min_iou: float = MIN_IOU) -> dict:  # fmt: skip
    """Precision and recall of the page front-end (read_page) on the dataset's PDFs of `splits`."""
    tp = n_true = n_found = 0
    for pid in ds.built_pieces(dataset, splits):
        rec = ds.load_record(ds.record_path(dataset, pid), with_audio=False)
        pages = rasterise(ds.pdf_path(dataset, pid).read_bytes(), dpi, NO_PIXEL_LIMIT)
        ratio = pages[0].shape[1] / ENGRAVED_PAGE_WIDTH
        found = [s for i, p in enumerate(pages) for s in read_page(p, i)[1]]
        truth = rec.strip.systems
        n_true, n_found = n_true + len(truth), n_found + len(found)
        for t in truth:
            box = (t.left * ratio, t.top * ratio, t.right * ratio, t.bottom * ratio)
            tp += any(f.page == t.page and box_iou(box, (f.left, f.top, f.right, f.bottom)) >= min_iou for f in found)
    return {"systems": n_true, "detected": n_found, "precision": round(tp / max(1, n_found), 4),
            "recall": round(tp / max(1, n_true), 4)}  # fmt: skip


def evaluate_engraver(name: str, engrave: Engrave, true_systems: TrueSystems, split: str = "test", dpi: int = 150,
                      min_iou: float = MIN_IOU, log: Callable[[str], None] = print) -> dict:  # fmt: skip
    """Precision and recall (IoU ≥ min_iou) of the page front-end on another engraver's PDFs of a split's
    pieces, against the systems that engraver drew in the SVG of the same layout."""
    tp = n_true = n_found = 0
    for spec in pieces_in({split: load_splits()[split]}):
        with tempfile.TemporaryDirectory() as tmp:
            pdf, svgs = engrave(score_xml(spec)[0], Path(tmp))
        hits, truths, found = _match_engraved_pages(rasterise(pdf, dpi, NO_PIXEL_LIMIT),
                                                    [true_systems(svg) for svg in svgs], min_iou)  # fmt: skip
        log(f"{spec.id}: {truths} systems, {found} detected, {hits} matched")
        tp, n_true, n_found = tp + hits, n_true + truths, n_found + found
    return {"engraver": name, "systems": n_true, "detected": n_found,
            "precision": round(tp / max(1, n_found), 4), "recall": round(tp / max(1, n_true), 4)}  # fmt: skip


def _match_engraved_pages(pages: list, truths: list[tuple[list[Box], float]], min_iou: float) -> tuple[int, int, int]:
    """(matched, true, detected) systems over a PDF's rasters against an engraver's own boxes.

    `truths` holds, per page, the engraver's system boxes in its SVG units and the SVG page width; the
    boxes are scaled to the raster before the IoU test."""
    hits = n_true = n_found = 0
    for i, (page, (truth, width)) in enumerate(zip(pages, truths, strict=True)):
        r = page.shape[1] / width
        boxes = [(s.left, s.top, s.right, s.bottom) for s in read_page(page, i)[1]]
        n_true, n_found = n_true + len(truth), n_found + len(boxes)
        hits += sum(any(box_iou((t[0] * r, t[1] * r, t[2] * r, t[3] * r), b) >= min_iou for b in boxes)
                    for t in truth)  # fmt: skip
    return hits, n_true, n_found
