"""`sheetid data build`: corpus piece → reduced score → engraving → renditions → dataset record.

Runs pieces in parallel worker processes, skips pieces already on disk (the build resumes after an
interruption) and records every failure with its reason in the manifest instead of dropping it.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import random
import time
import traceback
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

from model.audio import SAMPLE_RATE, spectrogram
from model.data import dataset as ds
from model.data.corpus import (
    EXTRA_SPLIT,
    PieceSpec,
    is_training,
    load_splits,
    pieces_in,
    reduce_to_grand_staff,
    split_of,  # fmt: skip
    to_musicxml,
)
from model.data.engrave import MUSIC_FONTS, RASTER_SCALE, Engraving, Note, engrave
from model.data.musescore import musescore_engraving
from model.data.perform import ROOM, perform, seed_of
from model.data.synth import EVAL_FONT, KEYBOARD_PROGRAMS, TIMIDITY_FONTS, TRAIN_FONTS, render
from model.sheet import unroll

TRAIN_TEMPO = (70.0, 150.0)  # bpm range of training renditions (paper §2.3 used 100–130; users play wider)
EVAL_TEMPO = 120.0  # bpm of validation and test renditions
PDF_DPI = 72.0 * RASTER_SCALE * 840 / 595.276  # page rasters are A4 wide: about 203 dpi
MUSESCORE_SHARE = 0.3  # share of training pieces engraved by MuseScore 3 instead of verovio (issue 12)


def onset_pairs(eng: Engraving) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One (quarter position, system, page x) per distinct onset; simultaneous heads share a median x."""
    by_onset: dict[float, list[str]] = {}
    for n in eng.notes:
        if n.id in eng.head_x:
            by_onset.setdefault(n.on, []).append(n.id)
    qs, systems, xs = [], [], []
    for q in sorted(by_onset):
        ids = by_onset[q]
        system = Counter(eng.head_system[i] for i in ids).most_common(1)[0][0]
        qs.append(q)
        systems.append(system)
        xs.append(float(np.median([eng.head_x[i] for i in ids if eng.head_system[i] == system])))
    return np.array(qs), np.array(systems, dtype=np.int32), np.array(xs)


def _piece_rng(piece: str) -> random.Random:
    return random.Random(int(hashlib.sha256(piece.encode()).hexdigest()[:8], 16))


def renditions_for(piece: str, split: str) -> list[tuple[str, float]]:
    """(voice, bpm) per rendition (model/data/synth.py names voices): for a training piece every training
    font as a FluidSynth piano, one font played by timidity and one as another keyboard instrument, then
    a FluidSynth piano and a timidity one performed in a room (model/data/perform.py), each at a seeded
    random tempo; for an evaluation piece the unseen font at EVAL_TEMPO."""
    if not is_training(split):
        return [(next(iter(EVAL_FONT)), EVAL_TEMPO)]
    rng = _piece_rng(piece)
    plain = [(font, round(rng.uniform(*TRAIN_TEMPO), 1)) for font in TRAIN_FONTS]
    # Drawn after the plain three, so their tempi stay those of builds from before these voices.
    other = [f"timidity/{rng.choice(TIMIDITY_FONTS)}",
             f"{rng.choice(list(TRAIN_FONTS))}@{rng.choice(KEYBOARD_PROGRAMS)}"]  # fmt: skip
    played = [(voice, round(rng.uniform(*TRAIN_TEMPO), 1)) for voice in other]
    # Drawn last for the same reason: the performed renditions came after the five above.
    rooms = [f"{rng.choice(list(TRAIN_FONTS))}{ROOM}", f"timidity/{rng.choice(TIMIDITY_FONTS)}{ROOM}"]
    return plain + played + [(voice, round(rng.uniform(*TRAIN_TEMPO), 1)) for voice in rooms]


def music_font_for(piece: str, split: str) -> str:
    """verovio music font: a seeded choice for training pieces, the default (Leipzig) for evaluation."""
    return _piece_rng("font:" + piece).choice(MUSIC_FONTS) if is_training(split) else MUSIC_FONTS[0]


def engraver_for(piece: str, split: str) -> str:
    """The piece's engraver: MuseScore for a seeded share of the training pieces, else verovio (evaluation
    pieces stay verovio's, so validation figures compare across data builds)."""
    musescore = is_training(split) and _piece_rng("engraver:" + piece).random() < MUSESCORE_SHARE
    return "musescore" if musescore else "verovio"


def _engraving(xml: str, piece: str, split: str) -> tuple[Engraving, dict, bytes | None]:
    """The piece's engraving by its planned engraver, its metadata and (MuseScore) the engraver's own PDF.
    A score MuseScore misreads (its times do not match verovio's onsets) falls back to verovio."""
    font = music_font_for(piece, split)
    meta: dict = {"planned_engraver": engraver_for(piece, split)}
    if meta["planned_engraver"] == "musescore":
        try:
            sounding = engrave(xml, font, draw=False)
            eng, pdf = musescore_engraving(xml, sounding.notes, PDF_DPI)
            eng.bars = sounding.bars  # verovio's notes, so verovio's bar lines (the performed pedal changes there)
            return eng, meta | {"engraver": "musescore", "music_font": "Emmentaler"}, pdf
        except ValueError as exc:
            meta["musescore_refused"] = str(exc)
    eng = engrave(xml, font)
    if not eng.systems:
        raise ValueError("verovio drew no staff systems")
    return eng, meta | {"engraver": "verovio", "music_font": font}, None


def is_stale(entry: dict, piece: str, split: str) -> bool:
    """A built piece whose planned engraver is not the one the build plans now (records from before the
    second engraver say nothing and were verovio's)."""
    return entry.get("planned_engraver", "verovio") != engraver_for(piece, split)


def score_xml(spec: PieceSpec) -> tuple[str, dict]:
    from music21 import corpus

    score = corpus.parse(spec.path)
    md = getattr(score, "metadata", None)
    title = (md.title or md.movementName) if md is not None else None
    if title and title.lower().endswith((".mxl", ".xml", ".musicxml", ".krn", ".abc")):
        title = None  # some corpus files carry their own file name as the title: the piece id says more
    meta = {"title": title or spec.id, "source": spec.path, "kind": spec.kind}
    return to_musicxml(reduce_to_grand_staff(score, spec.kind)), meta


def save_pdf(pages: list[np.ndarray], path: Path, title: str, author: str) -> None:
    from PIL import Image

    images = [Image.fromarray(p) for p in pages]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.pdf")
    images[0].save(tmp, "PDF", resolution=PDF_DPI, save_all=True, append_images=images[1:], title=title,
                   author=author)  # fmt: skip
    tmp.replace(path)


def _rendition(notes: list[Note], bars: list[float], voice: str, bpm: float, piece: str,
               split: str) -> tuple[np.ndarray, ds.Rendition]:  # fmt: skip
    """One rendition of the notes and its waveform; a training rendition varies its velocities, a
    performed one (ROOM) its dynamics by bar, with pedal, room and noise."""
    if voice.endswith(ROOM):
        wave = perform(notes, bars, bpm, voice, seed_of(piece, voice))
    else:
        wave = render(notes, bpm, voice, vary_velocity=is_training(split))
    return wave, ds.Rendition(voice, bpm, spectrogram(wave))


def _listed(rec: ds.PieceRecord) -> list[dict]:
    """The record's renditions as the manifest lists them."""
    return [{"font": r.font, "bpm": r.bpm} for r in rec.renditions]


def build_piece(spec: PieceSpec, split: str, root: Path, audio: bool = True) -> dict:
    """Build one piece's record, PDF and (for non-training splits) FLAC audio; returns its summary.

    Without `audio` a training piece is engraved only (no renditions): a later build with audio renders
    them through add_renditions, keeping the engraving."""
    import soundfile as sf

    t0 = time.time()
    xml, meta = score_xml(spec)
    eng, engraving_meta, engraver_pdf = _engraving(xml, spec.id, split)
    strip = unroll(eng.pages, eng.systems)
    onset_q, onset_system, page_x = onset_pairs(eng)
    onset_x = np.array([strip.strip_x(int(s), x) for s, x in zip(onset_system, page_x, strict=True)])
    rec = ds.PieceRecord(spec.id, split, spec.composer, strip, onset_q, onset_x, onset_system, meta=meta)
    for voice, bpm in renditions_for(spec.id, split) if audio or not is_training(split) else []:
        wave, rendition = _rendition(eng.notes, eng.bars, voice, bpm, spec.id, split)
        rec.renditions.append(rendition)
        if not is_training(split):
            flac = ds.audio_path(root, spec.id)
            flac.parent.mkdir(parents=True, exist_ok=True)
            sf.write(flac, wave, SAMPLE_RATE)
    rec.meta.update(engraving_meta, pages=len(eng.pages), systems=len(eng.systems), notes=len(eng.notes),
                    onsets=len(onset_q))  # fmt: skip
    pdf = ds.pdf_path(root, spec.id)
    if engraver_pdf is None:
        save_pdf(eng.pages, pdf, meta["title"], spec.composer)
    else:  # the engraver's own PDF, written atomically like save_pdf's
        pdf.parent.mkdir(parents=True, exist_ok=True)
        tmp = pdf.with_suffix(".tmp.pdf")
        tmp.write_bytes(engraver_pdf)
        tmp.replace(pdf)
    ds.save_record(rec, root)
    return dict(rec.meta, split=split, composer=spec.composer, renditions=_listed(rec),
                seconds=round(time.time() - t0, 2))


def add_renditions(spec: PieceSpec, split: str, root: Path, summary: dict) -> dict:
    """Render the renditions a built record lacks (one built before a voice was planned), keeping its
    engraving; returns its updated summary. The notes are verovio's reading of the score, as in build_piece."""
    t0 = time.time()
    rec = ds.load_record(ds.record_path(root, spec.id))
    have = {(r.font, r.bpm) for r in rec.renditions}
    sounding = engrave(score_xml(spec)[0], draw=False)
    if not np.isin(rec.onset_q, [n.on for n in sounding.notes]).all():
        raise ValueError("the score's notes no longer match the record's onsets: rebuild the piece")
    for voice, bpm in renditions_for(spec.id, split):
        if (voice, bpm) not in have:
            rec.renditions.append(_rendition(sounding.notes, sounding.bars, voice, bpm, spec.id, split)[1])
    ds.save_record(rec, root)
    return summary | {"renditions": _listed(rec), "seconds": round(summary["seconds"] + time.time() - t0, 2)}


def lacks_renditions(entry: dict, piece: str, split: str) -> bool:
    """A built piece whose renditions are fewer than the build plans now."""
    return {(r["font"], r["bpm"]) for r in entry["renditions"]} < set(renditions_for(piece, split))


def _worker(spec: PieceSpec, split: str, root: Path, summary: dict | None = None,
            audio: bool = True) -> tuple[str, dict | None, str | None]:  # fmt: skip
    try:
        if summary is not None:
            return spec.id, add_renditions(spec, split, root, summary), None
        return spec.id, build_piece(spec, split, root, audio), None
    except Exception as exc:  # noqa: BLE001 - every failure is logged with its reason, never dropped
        reason = f"{type(exc).__name__}: {exc}".strip()
        return spec.id, None, reason + "\n" + traceback.format_exc(limit=3)


def worker_pool(workers: int) -> ProcessPoolExecutor:
    """The data engine's process pool. Spawned, not forked: a caller with live threads (torch, FAISS, a
    server, as in the test process) can deadlock a forked child on a lock one of them held."""
    return ProcessPoolExecutor(max_workers=max(1, workers), mp_context=multiprocessing.get_context("spawn"))


def planned_pieces(splits: dict[str, list[str]], only: list[str] | None = None) -> list[PieceSpec]:
    """The pieces a build makes: `only` those ids or corpus paths, else every piece of the split file but
    the extra training pieces, which are built apart when asked for by name (corpus.EXTRA_SPLIT)."""
    specs = pieces_in(splits)
    if not only:
        return [s for s in specs if split_of(s.id, splits) != EXTRA_SPLIT]
    specs = [s for s in specs if s.id in only or s.path in only]
    missing = set(only) - {s.id for s in specs} - {s.path for s in specs}
    if missing:
        raise KeyError(f"not in the split file: {sorted(missing)}")
    return specs


def build(
    root: Path,
    only: list[str] | None = None,
    workers: int = 2,
    log=print,  # type: ignore[no-untyped-def]
    audio: bool = True,
) -> dict:
    """Build every piece of the split file (or `only` those ids), resuming where a previous run stopped.

    `audio=False` engraves the training pieces without renditions: their PDFs fill a full-size evaluation
    library in minutes instead of hours; a later build with audio renders what they lack."""
    from tqdm import tqdm

    root.mkdir(parents=True, exist_ok=True)
    splits = load_splits()
    specs = planned_pieces(splits, only)
    manifest = ds.read_manifest(root)
    todo = [s for s in specs if not ds.record_path(root, s.id).exists() or s.id not in manifest["pieces"]
            or is_stale(manifest["pieces"][s.id], s.id, split_of(s.id, splits))]  # fmt: skip
    # Long pieces first, so the last worker does not idle behind one big quartet.
    todo.sort(key=lambda s: (s.kind != "quartet", s.kind != "with_piano", s.id))
    todo_ids = {s.id for s in todo}
    # Built pieces that only lack renditions planned since keep their engraving and get the new audio.
    extend = [s for s in specs if audio and s.id not in todo_ids
              and lacks_renditions(manifest["pieces"][s.id], s.id, split_of(s.id, splits))]  # fmt: skip
    t0 = time.time()
    with worker_pool(workers) as pool:
        futures = [pool.submit(_worker, s, split_of(s.id, splits), root, None, audio) for s in todo]
        futures += [pool.submit(_worker, s, split_of(s.id, splits), root, manifest["pieces"][s.id]) for s in extend]
        for fut in tqdm(as_completed(futures), total=len(futures), desc="pieces", unit="piece", mininterval=10):
            pid, summary, error = fut.result()
            if summary is not None:
                manifest["pieces"][pid] = summary
                manifest["failures"].pop(pid, None)
            else:
                manifest["failures"][pid] = error
                log(f"FAILED {pid}: {error.splitlines()[0] if error else ''}")
            ds.write_manifest(root, manifest)
    manifest["build_seconds"] = round(time.time() - t0, 1)
    ds.write_manifest(root, manifest)
    return manifest


def summarize(manifest: dict) -> dict[str, dict[str, int]]:
    """Per split: pieces, pages, note pairs (distinct onsets) and renditions."""
    out: dict[str, dict[str, int]] = {}
    for p in manifest["pieces"].values():
        row = out.setdefault(p["split"], {"pieces": 0, "pages": 0, "pairs": 0, "renditions": 0})
        row["pieces"] += 1
        row["pages"] += p["pages"]
        row["pairs"] += p["onsets"]
        row["renditions"] += len(p["renditions"])
    return out
