"""System detection on degraded scans of the data engine's PDFs, against the systems verovio drew.

Each piece's PDF is rasterised at a seeded resolution (100–300 dpi) and every page goes through
`degrade_page`. The truth boxes (verovio's, in the data engine's 1680-px-wide page frame) are carried
into the frame the detector answers in: scaled to the raster, through the scan's homography, then
through the rotation the page front-end applied to straighten the scan. The snippets a piece yields
are compared with those of its clean PDF at the indexer's resolution.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from benchmarks.degrade import SCAN, ScanStyle, degrade_page, map_box, scan_dpi
from benchmarks.systems import MIN_IOU, NO_PIXEL_LIMIT, box_iou
from indexer.pdf import rasterise
from indexer.settings import Settings
from model.config import ModelConfig
from model.data import dataset as ds
from model.embed import window_centres
from model.page import prepare
from model.sheet import System, find_systems, read_page, unroll

ENGINE_PAGE_WIDTH = 1680.0  # px: the data engine's page rasters (2× verovio), the truth boxes' frame
MODEL_CONFIG = ModelConfig()  # the shipped model's window and stride decide how many snippets a strip gives
SNIPPET_TOLERANCE = 0.05  # a scan's snippet count should be within this share of the clean PDF's


def snippet_count(pages: list[np.ndarray], systems: list[System], hop: int, cfg: ModelConfig = MODEL_CONFIG) -> int:
    """Snippets (windows) the indexer would embed from these systems."""
    if not systems:
        return 0
    return len(window_centres(unroll(pages, systems).image.shape[1], cfg.sheet_window, cfg.stride, hop))


def _matches(truth: list[tuple[int, tuple[float, float, float, float]]], found: list[System], min_iou: float) -> int:
    return sum(any(f.page == page and box_iou(box, (f.left, f.top, f.right, f.bottom)) >= min_iou for f in found)
               for page, box in truth)  # fmt: skip


def evaluate_scans(dataset: Path, splits: tuple[str, ...] = ("test",), seed: int = 0, min_iou: float = MIN_IOU,
                   style: ScanStyle = SCAN, log: Callable[[str], None] = print) -> dict:  # fmt: skip
    """Precision and recall (IoU ≥ min_iou) of the page front-end on seeded scans of a split's PDFs,
    and each piece's snippet count relative to its clean PDF's."""
    settings = Settings()
    tp = n_true = n_found = 0
    ratios: dict[str, float] = {}
    seconds, n_pages = 0.0, 0
    pieces = sorted(pid for pid, meta in ds.read_manifest(dataset)["pieces"].items() if meta["split"] in splits)
    for n, pid in enumerate(pieces):
        rng = np.random.default_rng([seed, n])
        rec = ds.load_record(dataset / ds.PIECES_DIR / f"{ds.piece_key(pid)}.npz", with_audio=False)
        pdf = (dataset / ds.PDF_DIR / f"{ds.piece_key(pid)}.pdf").read_bytes()
        clean = [read_page(p, i) for i, p in enumerate(rasterise(pdf, settings.pdf_dpi, NO_PIXEL_LIMIT))]
        clean_snippets = snippet_count([c[0] for c in clean], [s for c in clean for s in c[1]], settings.snippet_hop)
        images, found, truth = [], [], []
        for i, page in enumerate(rasterise(pdf, scan_dpi(rng, style), NO_PIXEL_LIMIT)):
            scan, homography = degrade_page(page, rng, style)
            t0 = time.perf_counter()
            prepared = prepare(scan)
            systems = find_systems(prepared, i)
            seconds, n_pages = seconds + time.perf_counter() - t0, n_pages + 1
            images.append(prepared.image)
            found += systems
            # engine frame → raster → scan (homography) → straightened scan (the front-end's rotation
            # and shear)
            to_scan = homography @ np.diag([page.shape[1] / ENGINE_PAGE_WIDTH] * 2 + [1.0])
            truth += [(i, map_box((t.left, t.top, t.right, t.bottom), to_scan, prepared.to_image))
                      for t in rec.strip.systems if t.page == i]  # fmt: skip
        hits = _matches(truth, found, min_iou)
        ratios[pid] = snippet_count(images, found, settings.snippet_hop) / max(1, clean_snippets)
        log(f"{pid}: {len(truth)} systems, {len(found)} detected, {hits} matched, snippets ×{ratios[pid]:.3f}")
        tp, n_true, n_found = tp + hits, n_true + len(truth), n_found + len(found)
    off = np.abs(np.array(list(ratios.values())) - 1.0) if ratios else np.zeros(1)
    return {"degrade": "scan", "seed": seed, "pieces": len(pieces), "systems": n_true, "detected": n_found,
            "precision": round(tp / max(1, n_found), 4), "recall": round(tp / max(1, n_true), 4),
            "snippets_within_5pct": int((off <= SNIPPET_TOLERANCE).sum()),
            "snippet_ratio_min": round(float(min(ratios.values(), default=0.0)), 4),
            "snippet_ratio_max": round(float(max(ratios.values(), default=0.0)), 4),
            "ms_per_page": round(1000 * seconds / max(1, n_pages), 1)}  # fmt: skip
