"""Alignment error: median distance (in page widths) between aligned and true note positions, test pieces.

The truth is the data engine's note-head x of every onset, mapped into the strip the indexer built from
the PDF; the baseline spreads the recording linearly over the piece's snippets.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import select

from benchmarks.dataset_library import index_dataset, read_recording
from indexer.library import Library
from indexer.store import Piece, SystemRow
from model.audio import SAMPLE_RATE
from model.data import dataset as ds
from model.data.engrave import RASTER_SCALE
from model.sheet import Strip, System
from service.align import align

ENGRAVED_PAGE_WIDTH = 840 * RASTER_SCALE  # the data engine's A4 page: 840 verovio px, rasterised at RASTER_SCALE


@dataclass
class Truth:
    times: np.ndarray  # onset times (s)
    strip_x: np.ndarray  # their note-head x in the indexed strip
    page_width: float  # one page width in strip px (the normaliser)


def truth_in_library(library: Library, piece_id: int, rec: ds.PieceRecord) -> Truth:
    """Map the data engine's ground truth (its own raster) into the indexed strip (PDF raster)."""
    with library.Session() as s:
        systems = list(s.scalars(select(SystemRow).where(SystemRow.piece_id == piece_id).order_by(SystemRow.index)))
        piece = s.get(Piece, piece_id)
        page_w = piece.page_rows[0].width if piece else 1
    if len(systems) != len(rec.strip.systems):
        raise ValueError(f"{rec.id}: detector found {len(systems)} systems, engraving has {len(rec.strip.systems)}")
    ratio = page_w / ENGRAVED_PAGE_WIDTH
    sys_idx, page_x = rec.strip.locate(rec.onset_x.astype(np.float64))
    indexed = Strip(image=np.zeros((0, 0), np.uint8),
                    systems=[System(r.page - 1, r.top, r.bottom, r.left, r.right, r.staff_space) for r in systems],
                    offsets=np.array([r.strip_offset for r in systems]))  # fmt: skip
    xs = np.array([float(indexed.strip_x(int(i), px * ratio)) for i, px in zip(sys_idx, page_x, strict=True)])
    scale = float(np.mean([s.scale for s in indexed.systems]))
    return Truth(rec.onset_q * 60.0 / rec.renditions[0].bpm, xs, page_w * scale)


def evaluate_align(library: Library, dataset: Path, split: str = "test",
                   log: Callable[[str], None] = print) -> dict:  # fmt: skip
    ids = index_dataset(library, dataset, log=log)
    errors, linear, skipped = [], [], []
    for pid in ds.built_pieces(dataset, [split]):
        rec = ds.load_record(ds.record_path(dataset, pid), with_audio=False)
        try:
            truth = truth_in_library(library, ids[pid], rec)
        except ValueError as exc:  # no ground truth in the indexed strip: counted, not hidden
            skipped.append(pid)
            log(f"skipped: {exc}")
            continue
        wave = read_recording(dataset, pid)
        result = align(library, ids[pid], wave, subsequence=False)
        times = np.array([p.time for p in result.points])
        pred = np.interp(truth.times, times, np.array([p.strip_x for p in result.points]))
        snippets = library.piece_snippets(ids[pid])
        duration = len(wave) / SAMPLE_RATE
        lin = snippets.strip_x[0] + (snippets.strip_x[-1] - snippets.strip_x[0]) * truth.times / duration
        errors.append(np.abs(pred - truth.strip_x) / truth.page_width)
        linear.append(np.abs(lin - truth.strip_x) / truth.page_width)
        log(f"{pid}: median error {np.median(errors[-1]):.3f} (linear {np.median(linear[-1]):.3f})")
    all_err, all_lin = np.concatenate(errors), np.concatenate(linear)
    return {"pieces": len(errors), "median_error": round(float(np.median(all_err)), 4),
            "linear_median_error": round(float(np.median(all_lin)), 4), "skipped": skipped}  # fmt: skip
