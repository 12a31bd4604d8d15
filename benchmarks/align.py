"""`sheetid eval align`: alignment error of global DTW and of the jump-aware alignment, side by side.

The truth is the data engine's note-head x of every onset, mapped into the strip the indexer built from
the PDF; the linear baseline spreads the plain recording evenly over the piece's snippets.

Three sets of queries, all against the piece's PDF indexed through the real indexer:
- plain: the dataset's renditions, played straight through as printed (today's protocol);
- repeats: the renditions that play repeats, endings and da capo (`sheetid data repeats`);
- excerpts: EXCERPTS_PER_RENDITION seeded EXCERPT_SECONDS windows of both kinds of rendition, starting
  between 20 % and 80 % of the way through. Their rows are cut from the whole rendition's cost matrix
  (the same audio excerpts, embedded once), so an excerpt costs no second pass through the network.

Figures per set and method: median error in page widths (|aligned − true strip x| at every onset,
divided by the page width in strip px) and the share of onsets aligned to the right staff system.
"Global DTW" is service/align.py as the API used it: global for whole renditions, subsequence DTW for
excerpts. The jump-aware alignment is service/jumps.py with one set of penalties for everything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from sqlalchemy import select

from benchmarks.dataset_library import index_dataset
from indexer.library import Library, PieceSnippets
from indexer.store import Piece, SystemRow
from model.audio import FPS, SAMPLE_RATE
from model.data import dataset as ds
from model.data import repeats as rp
from model.data.engrave import RASTER_SCALE
from model.sheet import Strip, System
from service.align import (
    ALIGN_SHEET_HOP,
    ALIGN_SHEET_WIDTHS,
    ALIGN_TEMPI,
    PLACEMENT,
    WIDER_AFTER_PX,
    Alignment,
    Placement,
    cost_matrix,
    monotone_alignment,
)
from service.jumps import Penalties, jump_alignment

ENGRAVED_PAGE_WIDTH = 840 * RASTER_SCALE  # the data engine's A4 page: 840 verovio px, rasterised at RASTER_SCALE
EXCERPT_SECONDS = 20.0  # length of a mid-piece excerpt
EXCERPTS_PER_RENDITION = 2  # excerpts cut from each plain and each performed rendition
EXCERPT_START = (0.2, 0.8)  # excerpts start within this share of the rendition


@dataclass
class Truth:
    times: np.ndarray  # onset times (s) in the query
    strip_x: np.ndarray  # their note-head x in the indexed strip
    system: np.ndarray  # their system index in the indexed strip
    page_width: float  # one page width in strip px (the normaliser)


class NoTruth(ValueError):
    """The detector's systems differ from the engraver's: no ground truth in the indexed strip."""


def indexed_strip(library: Library, piece_id: int) -> tuple[Strip, float]:
    """The indexed strip's systems (no image) and the page width in page px."""
    with library.Session() as s:
        rows = list(s.scalars(select(SystemRow).where(SystemRow.piece_id == piece_id).order_by(SystemRow.index)))
        piece = s.get(Piece, piece_id)
        page_w = float(piece.page_rows[0].width) if piece else 1.0
    strip = Strip(image=np.zeros((0, 0), np.uint8),
                  systems=[System(r.page - 1, r.top, r.bottom, r.left, r.right, r.staff_space) for r in rows],
                  offsets=np.array([r.strip_offset for r in rows]))  # fmt: skip
    return strip, page_w


def truth_in_index(indexed: Strip, page_w: float, rec: ds.PieceRecord, times: np.ndarray,
                   onset_x: np.ndarray) -> Truth:  # fmt: skip
    """Map data-engine strip x (2× verovio raster) of onsets at `times` into the indexed strip."""
    if len(indexed.systems) != len(rec.strip.systems):
        raise NoTruth(f"{rec.id}: detector found {len(indexed.systems)} systems, engraving has "
                      f"{len(rec.strip.systems)}")  # fmt: skip
    ratio = page_w / ENGRAVED_PAGE_WIDTH
    sys_idx, page_x = rec.strip.locate(onset_x.astype(np.float64))
    xs = np.array([float(indexed.strip_x(int(i), px * ratio)) for i, px in zip(sys_idx, page_x, strict=True)])
    scale = float(np.mean([s.scale for s in indexed.systems]))
    return Truth(times, xs, sys_idx, page_w * scale)


def errors(alignment: Alignment, truth: Truth, indexed: Strip) -> tuple[np.ndarray, np.ndarray]:
    """Per onset: error in page widths, and whether the aligned position is on the right system."""
    times = np.array([p.time for p in alignment.points])
    pred = np.interp(truth.times, times, np.array([p.strip_x for p in alignment.points]))
    system, _ = indexed.locate(pred)
    return np.abs(pred - truth.strip_x) / truth.page_width, system == truth.system


def excerpt(cost: np.ndarray, centres: np.ndarray, truth: Truth,
            start_s: float) -> tuple[np.ndarray, np.ndarray, Truth]:  # fmt: skip
    """Rows of a whole rendition's cost matrix for EXCERPT_SECONDS from `start_s`, times from 0."""
    t = centres / FPS
    rows = (t >= start_s) & (t < start_s + EXCERPT_SECONDS)
    keep = (truth.times >= t[rows][0]) & (truth.times <= t[rows][-1])
    part = Truth(truth.times[keep] - start_s, truth.strip_x[keep], truth.system[keep], truth.page_width)
    return cost[rows], centres[rows] - int(round(start_s * FPS)), part


class _Tally:
    def __init__(self) -> None:
        self.err: dict[str, list[np.ndarray]] = {}
        self.hit: dict[str, list[np.ndarray]] = {}
        self.queries = 0

    def add(self, method: str, err: np.ndarray, hit: np.ndarray) -> None:
        self.err.setdefault(method, []).append(err)
        self.hit.setdefault(method, []).append(hit)

    def summary(self) -> dict:
        out: dict = {"queries": self.queries}
        for method in self.err:
            err, hit = np.concatenate(self.err[method]), np.concatenate(self.hit[method])
            out[method] = {"median_error": round(float(np.median(err)), 4),
                           "right_system": round(float(np.mean(hit)), 4), "onsets": len(err)}  # fmt: skip
        return out


def _methods(penalties: list[Penalties]) -> dict[str, Penalties]:
    return {"jumps" if i == 0 else f"jumps{i}": p for i, p in enumerate(penalties)}


def _score(tally: _Tally, pid: str, precomputed: tuple[np.ndarray, PieceSnippets, np.ndarray], truth: Truth,
           indexed: Strip, subsequence: bool, penalties: list[Penalties], placement: Placement,
           log: Callable[[str], None], label: str) -> None:  # fmt: skip
    tally.queries += 1
    line = []
    base = monotone_alignment(0, *precomputed, subsequence, placement)
    err, hit = errors(base, truth, indexed)
    tally.add("dtw", err, hit)
    line.append(f"dtw {np.median(err):.3f}/{np.mean(hit):.2f}")
    for name, p in _methods(penalties).items():
        result = jump_alignment(0, *precomputed, p, placement)
        err, hit = errors(result, truth, indexed)
        tally.add(name, err, hit)
        line.append(f"{name} {np.median(err):.3f}/{np.mean(hit):.2f} ({len(result.jumps)} jumps)")
    log(f"{pid} [{label}]: " + ", ".join(line))


def evaluate_align(library: Library, dataset: Path, split: str = "test", penalties: list[Penalties] | None = None,
                   seed: int = 0, sheet_hop: int = ALIGN_SHEET_HOP, placement: Placement = PLACEMENT,
                   tempi: tuple[float, ...] = ALIGN_TEMPI, widths: tuple[float, ...] = ALIGN_SHEET_WIDTHS,
                   wider_after_px: float = WIDER_AFTER_PX, log: Callable[[str], None] = print) -> dict:  # fmt: skip
    """Plain, performed (repeats) and mid-piece-excerpt alignment error for both methods, with the cost
    matrix's columns every `sheet_hop` strip px, read at `widths` (as engraved only within `wider_after_px`
    of each system's start), its rows the recording read at `tempi`, and positions placed along the path
    as `placement` says."""
    penalties = penalties or [Penalties()]
    pieces = ds.built_pieces(dataset, [split])
    ids = index_dataset(library, dataset, [split], log)
    performed = rp.read_manifest(dataset)["pieces"]
    rng = np.random.default_rng(seed)
    sets = {"plain": _Tally(), "repeats": _Tally(), "excerpts": _Tally()}
    linear, skipped = [], []
    for pid in pieces:
        rec = ds.load_record(ds.record_path(dataset, pid), with_audio=False)
        indexed, page_w = indexed_strip(library, ids[pid])
        queries = [("plain", ds.audio_path(dataset, pid),
                    rec.onset_q * 60.0 / rec.renditions[0].bpm, rec.onset_x)]  # fmt: skip
        if pid in performed:
            perf = rp.load_performance(dataset, pid)
            queries.append(("repeats", rp.performance_path(dataset, pid, ".flac"), perf.onset_times, perf.onset_x))
        for kind, audio, times, onset_x in queries:
            try:
                truth = truth_in_index(indexed, page_w, rec, times, onset_x)
            except NoTruth as exc:  # counted, not hidden
                skipped.append(pid)
                log(f"skipped: {exc}")
                break
            wave, _ = sf.read(audio, dtype="float32")
            pre = cost_matrix(library, ids[pid], wave, sheet_hop, tempi, widths, wider_after_px)
            _score(sets[kind], pid, pre, truth, indexed, False, penalties, placement, log, kind)
            if kind == "plain":
                snippets, duration = pre[1], len(wave) / SAMPLE_RATE
                lin = snippets.strip_x[0] + (snippets.strip_x[-1] - snippets.strip_x[0]) * truth.times / duration
                linear.append(np.abs(lin - truth.strip_x) / truth.page_width)
            for _ in range(EXCERPTS_PER_RENDITION):
                start = float(rng.uniform(*EXCERPT_START)) * len(wave) / SAMPLE_RATE
                cost, centres, part = excerpt(pre[2], pre[0], truth, start)
                _score(sets["excerpts"], pid, (centres, pre[1], cost), part, indexed, True, penalties, placement,
                       log, f"{kind} excerpt at {start:.0f} s")  # fmt: skip
    plain = sets["plain"].summary()
    return {"split": split, "sheet_hop": sheet_hop, "tempi": list(tempi), "widths": list(widths),
            "wider_after_px": wider_after_px,
            "placement": asdict(placement),
            "pieces": plain["queries"],
            "median_error": plain["dtw"]["median_error"],
            "linear_median_error": round(float(np.median(np.concatenate(linear))), 4), "skipped": sorted(set(skipped)),
            **{name: tally.summary() for name, tally in sets.items()},
            "penalties": {name: asdict(p) for name, p in _methods(penalties).items()}}  # fmt: skip
