"""Benchmarks of the service's answers: Table-3 identification, no-match calibration, alignment error.

The library is built from the dataset's PDFs through the real indexer (`Library.add_pdf`), and queries
are the dataset's FLAC renditions (unseen SoundFont, 120 bpm). Calibration reads the validation split
only; identification and alignment report on the test splits.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from sqlalchemy import select

from indexer.library import Library
from indexer.store import Piece, SystemRow
from model.data import dataset as ds
from model.sheet import Strip, System
from service.align import align
from service.identify import CALIBRATION_FILE, Calibration, identify, margin_statistic

EXCERPT_SECONDS = 10.0  # Table-3 excerpt queries
CALIBRATION_EXCERPTS = (5.0, 10.0, 20.0)  # excerpt lengths used to calibrate the confidence
CALIBRATION_LIBRARY_SIZES = (16, 64, 434)  # sub-library sizes the confidence is calibrated on


def build_library(library: Library, dataset: Path, log: Callable[[str], None] = print) -> dict[str, int]:
    """Index every built piece's PDF (skips pieces already indexed); returns dataset id → piece id."""
    manifest = ds.read_manifest(dataset)
    ids: dict[str, int] = {}
    for n, (pid, meta) in enumerate(sorted(manifest["pieces"].items())):
        data = (dataset / ds.PDF_DIR / f"{ds.piece_key(pid)}.pdf").read_bytes()
        ids[pid] = library.add_pdf(data, title=pid, composer=meta["composer"]).piece_id
        if (n + 1) % 50 == 0:
            log(f"indexed {n + 1}/{len(manifest['pieces'])}")
    return ids


def _audio(dataset: Path, pid: str) -> np.ndarray:
    wave, _ = sf.read(dataset / ds.AUDIO_DIR / f"{ds.piece_key(pid)}.flac", dtype="float32")
    return wave


def _excerpt(wave: np.ndarray, seconds: float, rng: np.random.Generator) -> np.ndarray:
    span = int(seconds * 22050)
    start = int(rng.integers(0, max(1, len(wave) - span)))
    return wave[start : start + span]


def _rank_of(result_ids: list[int], true_id: int) -> int:
    return result_ids.index(true_id) + 1 if true_id in result_ids else 10**6


def _bucket(ranks: list[int]) -> dict[str, int]:
    return {"n": len(ranks), "R1": sum(r == 1 for r in ranks), "R2": sum(r == 2 for r in ranks),
            "R3": sum(r == 3 for r in ranks), ">R3": sum(r > 3 for r in ranks)}  # fmt: skip


def evaluate_identify(library: Library, dataset: Path, splits: tuple[str, ...] = ("test", "test-chorales"),
                      seed: int = 0, log: Callable[[str], None] = print) -> dict:  # fmt: skip
    ids = build_library(library, dataset, log)
    manifest = ds.read_manifest(dataset)
    queries = sorted(pid for pid, p in manifest["pieces"].items() if p["split"] in splits)
    rng = np.random.default_rng(seed)
    calibration = Calibration.load()
    full, excerpt, right_match, accepted, rejected = [], [], [], [], []
    for pid in queries:
        wave = _audio(dataset, pid)
        true = ids[pid]
        r = identify(library, wave, calibration)
        full.append(_rank_of([p.id for p in r.pieces], true))
        clip = _excerpt(wave, EXCERPT_SECONDS, rng)
        r10 = identify(library, clip, calibration)
        excerpt.append(_rank_of([p.id for p in r10.pieces], true))
        # the same excerpt with its piece left out of the library must come back as "no match"
        absent = identify(library, clip, calibration, exclude={true})
        right_match.append(not r10.no_match and r10.pieces[0].id == true)
        accepted.append(not r10.no_match)
        rejected.append(absent.no_match)
    return {"library_size": len(ids), "full": _bucket(full), "excerpt10s": _bucket(excerpt),
            "no_match_accuracy": round(float(np.mean(right_match + rejected)), 4),
            # the two halves of that accuracy: 10-s excerpts answered with a match when their piece is
            # in the library, and answered "no match" when it is left out
            "present_answered_match": round(float(np.mean(accepted)), 4),
            "absent_answered_no_match": round(float(np.mean(rejected)), 4)}  # fmt: skip


def calibrate(library: Library, dataset: Path, out: Path = CALIBRATION_FILE, seed: int = 0,
              log: Callable[[str], None] = print) -> dict:  # fmt: skip
    """Fit confidence = sigmoid(a·m + b + c·ln n) on validation queries, pick the threshold.

    Each excerpt is asked against sub-libraries of CALIBRATION_LIBRARY_SIZES pieces (a random subset of
    the full library, the rest left out), once with its own piece among them and once without, so the
    confidence holds for small libraries (the demo) as well as large ones.
    """
    ids = build_library(library, dataset, log)
    manifest = ds.read_manifest(dataset)
    queries = sorted(pid for pid, p in manifest["pieces"].items() if p["split"] == "validation")
    everyone = np.array(sorted(set(ids.values())))
    all_ids = set(everyone.tolist())
    rng = np.random.default_rng(seed)
    rows, y = [], []
    for pid in queries:
        wave, true = _audio(dataset, pid), ids[pid]
        others = everyone[everyone != true]
        for seconds in CALIBRATION_EXCERPTS:
            for _ in range(3):
                clip = _excerpt(wave, seconds, rng)
                for n in CALIBRATION_LIBRARY_SIZES:
                    n = min(n, len(everyone))
                    kept = set(rng.choice(others, n - 1, replace=False).tolist())
                    spare = sorted(all_ids - kept - {true})
                    for present in (True, False):
                        pool = kept | {true} if present else kept | ({int(rng.choice(spare))} if spare else set())
                        r = identify(library, clip, exclude=all_ids - pool)
                        rows.append((margin_statistic([p.score for p in r.pieces]), np.log(len(pool))))
                        y.append(float(present and bool(r.pieces) and r.pieces[0].id == true))
    x = np.array(rows)
    a, c, b = _fit_logistic(np.column_stack([x, np.ones(len(x))]), np.array(y))
    conf = 1.0 / (1.0 + np.exp(-(a * x[:, 0] + c * x[:, 1] + b)))
    candidates = np.linspace(0.05, 0.95, 91)
    accuracy = [float(np.mean((conf >= t) == (np.array(y) > 0.5))) for t in candidates]
    threshold = round(float(candidates[int(np.argmax(accuracy))]), 4)
    result = {"a": a, "b": b, "c": c, "threshold": threshold, "validation_accuracy": round(max(accuracy), 4),
              "queries": len(y), "library_sizes": list(CALIBRATION_LIBRARY_SIZES),
              "model_version": library.model_version}  # fmt: skip
    out.write_text(json.dumps(result, indent=1) + "\n")
    return result


def _fit_logistic(x: np.ndarray, y: np.ndarray, steps: int = 50, ridge: float = 1e-6) -> tuple[float, ...]:
    """Maximum-likelihood weights of sigmoid(x · w) by Newton's method (a few parameters, a few steps)."""
    w = np.zeros(x.shape[1])
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ w, -60, 60)))
        hessian = x.T @ (x * (p * (1 - p))[:, None]) + ridge * np.eye(x.shape[1])
        step = np.linalg.solve(hessian, x.T @ (p - y))
        w -= step
        if np.abs(step).max() < 1e-9:
            break
    return tuple(round(float(v), 4) for v in w)


@dataclass
class _Truth:
    times: np.ndarray  # onset times (s)
    strip_x: np.ndarray  # their note-head x in the indexed strip
    page_width: float  # one page width in strip px (the normaliser)


def _truth(library: Library, piece_id: int, rec: ds.PieceRecord) -> _Truth:
    """Map the data engine's ground truth (2× verovio raster) into the indexed strip (PDF raster)."""
    with library.Session() as s:
        systems = list(s.scalars(select(SystemRow).where(SystemRow.piece_id == piece_id).order_by(SystemRow.index)))
        piece = s.get(Piece, piece_id)
        page_w = piece.page_rows[0].width if piece else 1
    if len(systems) != len(rec.strip.systems):
        raise ValueError(f"{rec.id}: detector found {len(systems)} systems, engraving has {len(rec.strip.systems)}")
    ratio = page_w / 1680.0  # the data engine's pages are 1680 px wide
    sys_idx, page_x = rec.strip.locate(rec.onset_x.astype(np.float64))
    indexed = Strip(image=np.zeros((0, 0), np.uint8),
                    systems=[System(r.page - 1, r.top, r.bottom, r.left, r.right, r.staff_space) for r in systems],
                    offsets=np.array([r.strip_offset for r in systems]))  # fmt: skip
    xs = np.array([float(indexed.strip_x(int(i), px * ratio)) for i, px in zip(sys_idx, page_x, strict=True)])
    scale = float(np.mean([s.scale for s in indexed.systems]))
    return _Truth(rec.onset_q * 60.0 / rec.renditions[0].bpm, xs, page_w * scale)


def evaluate_align(library: Library, dataset: Path, split: str = "test",
                   log: Callable[[str], None] = print) -> dict:  # fmt: skip
    ids = build_library(library, dataset, log)
    errors, linear, skipped = [], [], []
    for pid in sorted(p for p, m in ds.read_manifest(dataset)["pieces"].items() if m["split"] == split):
        rec = ds.load_record(dataset / ds.PIECES_DIR / f"{ds.piece_key(pid)}.npz", with_audio=False)
        try:
            truth = _truth(library, ids[pid], rec)
        except ValueError as exc:  # no ground truth in the indexed strip: counted, not hidden
            skipped.append(pid)
            log(f"skipped: {exc}")
            continue
        wave = _audio(dataset, pid)
        result = align(library, ids[pid], wave, subsequence=False)
        times = np.array([p.time for p in result.points])
        pred = np.interp(truth.times, times, np.array([p.strip_x for p in result.points]))
        snippets = library.piece_snippets(ids[pid])
        duration = len(wave) / 22050
        lin = snippets.strip_x[0] + (snippets.strip_x[-1] - snippets.strip_x[0]) * truth.times / duration
        errors.append(np.abs(pred - truth.strip_x) / truth.page_width)
        linear.append(np.abs(lin - truth.strip_x) / truth.page_width)
        log(f"{pid}: median error {np.median(errors[-1]):.3f} (linear {np.median(linear[-1]):.3f})")
    all_err, all_lin = np.concatenate(errors), np.concatenate(linear)
    return {"pieces": len(errors), "median_error": round(float(np.median(all_err)), 4),
            "linear_median_error": round(float(np.median(all_lin)), 4), "skipped": skipped}  # fmt: skip



def box_iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def evaluate_systems(dataset: Path, splits: tuple[str, ...] = ("test",), dpi: int = 150,
                     min_iou: float = 0.8) -> dict:  # fmt: skip
    """Staff-system detection on the data engine's PDFs against the systems verovio drew (IoU ≥ 0.8)."""
    from indexer.pdf import rasterise
    from model.sheet import read_page

    tp = n_true = n_found = 0
    for pid, meta in sorted(ds.read_manifest(dataset)["pieces"].items()):
        if meta["split"] not in splits:
            continue
        rec = ds.load_record(dataset / ds.PIECES_DIR / f"{ds.piece_key(pid)}.npz", with_audio=False)
        pages = rasterise((dataset / ds.PDF_DIR / f"{ds.piece_key(pid)}.pdf").read_bytes(), dpi, 10**9)
        ratio = pages[0].shape[1] / 1680.0
        found = [s for i, p in enumerate(pages) for s in read_page(p, i)[1]]
        truth = [s for s in rec.strip.systems]
        n_true, n_found = n_true + len(truth), n_found + len(found)
        for t in truth:
            box = (t.left * ratio, t.top * ratio, t.right * ratio, t.bottom * ratio)
            tp += any(f.page == t.page and box_iou(box, (f.left, f.top, f.right, f.bottom)) >= min_iou for f in found)
    return {"systems": n_true, "detected": n_found, "precision": round(tp / max(1, n_found), 4),
            "recall": round(tp / max(1, n_true), 4)}  # fmt: skip
