"""`sheetid data repeats`: renditions that play repeats, endings and jumps, with printed-score ground truth.

The main dataset plays every score straight through as printed (`expandNever`). Performers do not: they
repeat sections, take first and second endings, go da capo. For validation and test pieces whose score
has repeat signs, this writes a second rendition in which verovio expands them, beside the dataset:

    <dataset>/repeats/<piece key>.flac  the performance (evaluation SoundFont and tempo, as in build.py)
    <dataset>/repeats/<piece key>.npz   per distinct performed onset: its performed quarter position and
                                        where it is PRINTED: system and page x in the unexpanded engraving
                                        (the one the dataset PDF shows) and x in the piece record's strip
    <dataset>/repeats/manifest.json     pieces written, pieces without repeats (skipped), failures

The expanded engraving is checked against the dataset record: its systems must be the record's, so the
ground truth maps into an indexed PDF exactly as the main dataset's does.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from collections.abc import Callable
from concurrent.futures import as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from model.audio import SAMPLE_RATE
from model.data import dataset as ds
from model.data.build import music_font_for, onset_pairs, renditions_for, score_xml, worker_pool
from model.data.corpus import load_splits, piece_spec, split_of
from model.data.engrave import engrave, printed_id
from model.data.synth import render
from model.sheet import System

REPEATS_DIR = "repeats"  # beside pieces/, pdf/ and audio/ in the dataset folder
SPLITS = ("validation", "test")  # only evaluation pieces get performed renditions
SYSTEM_TOLERANCE_PX = 0.5  # the expanded engraving's systems must match the record's to this (raster px)
BACKWARD_JUMP_PX = 50.0  # strip px an onset must lie before the previous one to count as a jump back


@dataclass
class Performance:
    """A rendition that plays repeats: every distinct performed onset and where it is printed."""

    id: str
    bpm: float
    font: str
    onset_q: np.ndarray  # (N,) performed quarter position; seconds = onset_q · 60 / bpm
    onset_system: np.ndarray  # (N,) printed system (index into the record's strip systems)
    onset_page_x: np.ndarray  # (N,) note-head x on the printed page (data-engine raster px)
    onset_x: np.ndarray  # (N,) x in the piece record's strip
    meta: dict = field(default_factory=dict)

    @property
    def onset_times(self) -> np.ndarray:
        return self.onset_q * 60.0 / self.bpm

    def backward_jumps(self) -> np.ndarray:
        """Indices of onsets that go back in the printed score (a repeat, a da capo)."""
        return np.flatnonzero(np.diff(self.onset_x) < -BACKWARD_JUMP_PX) + 1


def performance_path(root: Path, piece_id: str, suffix: str = ".npz") -> Path:
    return root / REPEATS_DIR / f"{ds.piece_key(piece_id)}{suffix}"


def save_performance(perf: Performance, root: Path) -> Path:
    path = performance_path(root, perf.id)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = dict(perf.meta, id=perf.id, bpm=perf.bpm, font=perf.font)
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, onset_q=perf.onset_q, onset_system=perf.onset_system.astype(np.int32),
                        onset_page_x=perf.onset_page_x.astype(np.float32), onset_x=perf.onset_x.astype(np.float32),
                        meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8))  # fmt: skip
    os.replace(tmp, path)
    return path


def load_performance(root: Path, piece_id: str) -> Performance:
    with np.load(performance_path(root, piece_id)) as z:
        meta = json.loads(z["meta"].tobytes().decode())
        return Performance(meta["id"], float(meta["bpm"]), meta["font"], z["onset_q"], z["onset_system"],
                           z["onset_page_x"], z["onset_x"], meta)  # fmt: skip


def read_manifest(root: Path) -> dict:
    path = root / REPEATS_DIR / ds.MANIFEST
    return json.loads(path.read_text()) if path.exists() else {"pieces": {}, "no_repeats": [], "failures": {}}


def _same_systems(a: list[System], b: list[System]) -> bool:
    def close(x: System, y: System) -> bool:
        return max(abs(x.top - y.top), abs(x.left - y.left), abs(x.right - y.right)) <= SYSTEM_TOLERANCE_PX

    return len(a) == len(b) and all(x.page == y.page and close(x, y) for x, y in zip(a, b, strict=True))


def build_performance(piece_id: str, split: str, root: Path) -> dict | None:
    """Write one piece's performed rendition and ground truth; None when its score has no repeats."""
    import soundfile as sf

    t0 = time.time()
    spec = piece_spec(piece_id)
    record_file = ds.record_path(root, piece_id)
    if not record_file.exists():
        raise FileNotFoundError(f"{piece_id}: build the main dataset first (`sheetid data build`)")
    rec = ds.load_record(record_file, with_audio=False)
    xml, _ = score_xml(spec)
    eng = engrave(xml, music_font_for(piece_id, split), expand_repeats=True)
    replayed = sum(printed_id(n.id) != n.id for n in eng.notes)
    if replayed == 0:
        return None
    if not _same_systems(eng.systems, rec.strip.systems):
        raise ValueError(f"{piece_id}: the expanded engraving's systems differ from the dataset record's")
    onset_q, onset_system, page_x = onset_pairs(eng)
    onset_x = np.array([rec.strip.strip_x(int(s), x) for s, x in zip(onset_system, page_x, strict=True)])
    font, bpm = renditions_for(piece_id, split)[0]
    wave = render(eng.notes, bpm, font)
    audio = performance_path(root, piece_id, ".flac")
    audio.parent.mkdir(parents=True, exist_ok=True)
    sf.write(audio, wave, SAMPLE_RATE)
    meta = {"split": split, "notes": len(eng.notes), "replayed_notes": replayed, "printed_onsets": len(rec.onset_q),
            "seconds_audio": round(len(wave) / SAMPLE_RATE, 2)}  # fmt: skip
    perf = Performance(piece_id, bpm, font, onset_q, onset_system, page_x, onset_x, meta)
    perf.meta["backward_jumps"] = len(perf.backward_jumps())
    save_performance(perf, root)
    return dict(perf.meta, onsets=len(onset_q), seconds=round(time.time() - t0, 2))


def _worker(piece_id: str, split: str, root: Path) -> tuple[str, dict | None, str | None]:
    try:
        return piece_id, build_performance(piece_id, split, root), None
    except Exception as exc:  # noqa: BLE001 - every failure is logged with its reason, never dropped
        return piece_id, None, f"{type(exc).__name__}: {exc}\n" + traceback.format_exc(limit=3)


def build_performances(root: Path, splits: tuple[str, ...] = SPLITS, only: list[str] | None = None,
                       workers: int = 1, log: Callable[[str], None] = print) -> dict:  # fmt: skip
    """Performed renditions of every built piece of `splits` (or `only` these ids); resumable."""
    for split in splits:
        if split not in SPLITS:
            raise ValueError(f"performed renditions are for {SPLITS} only, not {split!r}")
    built = ds.read_manifest(root)["pieces"]
    file_splits = load_splits()
    todo = sorted(pid for pid, p in built.items() if p["split"] in splits and (not only or pid in only))
    manifest = read_manifest(root)
    todo = [pid for pid in todo if pid not in manifest["pieces"] and pid not in manifest["no_repeats"]]
    with worker_pool(workers) as pool:
        futures = [pool.submit(_worker, pid, split_of(pid, file_splits), root) for pid in todo]
        for fut in as_completed(futures):
            pid, summary, error = fut.result()
            manifest["failures"].pop(pid, None)
            if error is not None:
                manifest["failures"][pid] = error
                log(f"FAILED {pid}: {error.splitlines()[0]}")
            elif summary is None:
                manifest["no_repeats"] = sorted(set(manifest["no_repeats"]) | {pid})
                log(f"{pid}: no repeats")
            else:
                manifest["pieces"][pid] = summary
                log(f"{pid}: {summary['backward_jumps']} jumps back, {summary['seconds_audio']} s")
            (root / REPEATS_DIR).mkdir(parents=True, exist_ok=True)
            tmp = root / REPEATS_DIR / (ds.MANIFEST + ".tmp")
            tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True))
            os.replace(tmp, root / REPEATS_DIR / ds.MANIFEST)
    return manifest


def summarize(manifest: dict, root: Path, splits: tuple[str, ...] = SPLITS) -> dict[str, dict[str, int]]:
    """Per split: pieces with repeats, pieces without (skipped), failures."""
    split_of_piece = {pid: p["split"] for pid, p in ds.read_manifest(root)["pieces"].items()}
    out: dict[str, dict[str, int]] = {}
    for pid, split in split_of_piece.items():
        if split not in splits:
            continue
        row = out.setdefault(split, {"with_repeats": 0, "no_repeats": 0, "failed": 0})
        if pid in manifest["pieces"]:
            row["with_repeats"] += 1
        elif pid in manifest["no_repeats"]:
            row["no_repeats"] += 1
        elif pid in manifest["failures"]:
            row["failed"] += 1
    return out
