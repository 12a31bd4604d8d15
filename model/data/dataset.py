"""On-disk dataset: one compressed .npz per piece plus a manifest; readers used by training and eval.

A piece record holds its unrolled strip, the strip x and quarter position of every onset (one pair per
distinct onset: simultaneous note heads share one x), and one spectrogram per audio rendition.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from model.audio import FPS
from model.sheet import Strip, System

MANIFEST = "manifest.json"  # per-piece summary and failures, rewritten after each piece
PIECES_DIR = "pieces"  # one <piece key>.npz per piece
PDF_DIR = "pdf"  # one PDF per piece (image pages), used by the indexer and the demo
AUDIO_DIR = "audio"  # FLAC renditions of validation and test pieces (queries for eval and demo)


def piece_key(piece_id: str) -> str:
    """File-system name of a piece id ("mozart/k545/movement1" → "mozart__k545__movement1")."""
    return piece_id.replace("/", "__")


def pdf_path(root: Path, piece_id: str) -> Path:
    """The piece's engraved PDF in a built dataset."""
    return root / PDF_DIR / f"{piece_key(piece_id)}.pdf"


def audio_path(root: Path, piece_id: str) -> Path:
    """The piece's query recording (FLAC) in a built dataset (validation and test pieces only)."""
    return root / AUDIO_DIR / f"{piece_key(piece_id)}.flac"


def record_path(root: Path, piece_id: str) -> Path:
    """The piece's .npz record in a built dataset."""
    return root / PIECES_DIR / f"{piece_key(piece_id)}.npz"


def built_pieces(root: Path, splits: Iterable[str] | None = None) -> list[str]:
    """Sorted ids of the finished pieces of `splits` (every split when None), from the manifest."""
    wanted = None if splits is None else set(splits)
    return sorted(pid for pid, p in read_manifest(root)["pieces"].items() if wanted is None or p["split"] in wanted)


@dataclass
class Rendition:
    font: str
    bpm: float
    spec: np.ndarray  # (T, 92) float32

    def onset_frames(self, onset_q: np.ndarray) -> np.ndarray:
        return np.round(onset_q * 60.0 / self.bpm * FPS).astype(np.int64)


@dataclass
class PieceRecord:
    id: str
    split: str
    composer: str
    strip: Strip
    onset_q: np.ndarray  # (N,) onset positions in quarter notes
    onset_x: np.ndarray  # (N,) strip x of the note heads sounding at that onset
    onset_system: np.ndarray  # (N,) system index of each onset
    renditions: list[Rendition] = field(default_factory=list)
    meta: dict = field(default_factory=dict)


def save_record(rec: PieceRecord, root: Path) -> Path:
    """Write atomically, so an interrupted build never leaves a half-written piece behind."""
    path = record_path(root, rec.id)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {
        "strip": rec.strip.image,
        "systems": np.array([[s.page, s.top, s.bottom, s.left, s.right, s.staff_space] for s in rec.strip.systems]),
        "offsets": rec.strip.offsets,
        "onset_q": rec.onset_q,
        "onset_x": rec.onset_x.astype(np.float32),
        "onset_system": rec.onset_system.astype(np.int32),
    }
    for i, r in enumerate(rec.renditions):
        arrays[f"spec{i}"] = r.spec.astype(np.float16)
    meta = dict(rec.meta, id=rec.id, split=rec.split, composer=rec.composer,
                renditions=[{"font": r.font, "bpm": r.bpm} for r in rec.renditions])  # fmt: skip
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, **arrays)  # type: ignore[arg-type]
    os.replace(tmp, path)
    return path


def load_record(path: Path, with_audio: bool = True) -> PieceRecord:
    with np.load(path) as z:
        meta = json.loads(z["meta"].tobytes().decode())
        systems = [System(int(r[0]), *map(float, r[1:])) for r in z["systems"]]
        strip = Strip(image=z["strip"], systems=systems, offsets=z["offsets"])
        renditions = [
            Rendition(r["font"], float(r["bpm"]), z[f"spec{i}"].astype(np.float32) if with_audio else np.zeros((0, 0)))
            for i, r in enumerate(meta["renditions"])
        ]
        return PieceRecord(meta["id"], meta["split"], meta["composer"], strip, z["onset_q"], z["onset_x"],
                           z["onset_system"], renditions, meta)  # fmt: skip


def read_manifest(root: Path) -> dict:
    path = root / MANIFEST
    return json.loads(path.read_text()) if path.exists() else {"pieces": {}, "failures": {}}


def write_manifest(root: Path, manifest: dict) -> None:
    tmp = root / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    os.replace(tmp, root / MANIFEST)


def load_split(root: Path, split: str, allowed: tuple[str, ...], with_audio: bool = True) -> list[PieceRecord]:
    """Records of one split. Callers name the splits they may read: training passes ("train",
    "validation"), so asking it for test material fails here instead of leaking silently."""
    if split not in allowed:
        raise PermissionError(f"split {split!r} is not allowed here (allowed: {', '.join(allowed)})")
    records = [load_record(record_path(root, pid), with_audio) for pid in built_pieces(root, [split])]
    leaked = [r.id for r in records if r.split not in allowed]
    if leaked:
        raise PermissionError(f"records from a forbidden split: {leaked[:5]}")
    return records
