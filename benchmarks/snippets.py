"""Table-2 snippet retrieval: each query's counterpart ranked among all snippets of a split.

The metrics themselves live in model/evaluate.py (training validates with them); this runs them on a
checkpoint for `sheetid eval snippets`.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from model import checkpoint
from model.evaluate import evaluate_snippets

EVAL_THREADS = 2  # torch CPU threads for the benchmark


def evaluate_checkpoint(weights: Path | None, dataset: Path, split: str = "test") -> tuple[str, dict]:
    """(model version, Table-2 metrics) of the checkpoint at `weights` (default: the shipped one)."""
    import torch

    torch.set_num_threads(EVAL_THREADS)
    model, version, _ = checkpoint.load(weights)
    return version, evaluate_snippets(model, dataset, split)


def evaluate_readings(weights: Path | None, dataset: Path, split: str, widths: tuple[float, ...],
                      tempi: tuple[float, ...]) -> tuple[str, dict]:  # fmt: skip
    """The same metrics with test-time readings: each snippet's vector the normalised mean of its crops
    from the strip read at each of `widths` (model.sheet.at_width), each excerpt's the normalised mean of
    its crops read as if played at each of `tempi` (as model.audio.at_tempo). (1.0,) and (1.0,) give
    `evaluate_checkpoint`'s figures."""
    import torch

    from model.data.dataset import load_split
    from model.embed import crop_windows
    from model.evaluate import BATCH, EVAL_SPLITS, retrieval_metrics
    from model.pairs import PairIndex, audio_batch
    from model.sheet import at_width

    torch.set_num_threads(EVAL_THREADS)
    model, version, _ = checkpoint.load(weights)
    model.eval()
    pairs = PairIndex.build(load_split(dataset, split, EVAL_SPLITS), first_rendition_only=True,
                            level=model.cfg.audio_level)  # fmt: skip
    width_px = model.cfg.sheet_crop[1]
    batches = [np.arange(s, min(s + BATCH, len(pairs))) for s in range(0, len(pairs), BATCH)]
    sheet, audio = torch.zeros(len(pairs), model.cfg.embed_dim), torch.zeros(len(pairs), model.cfg.embed_dim)
    with torch.no_grad():
        for factor in widths:
            strips = {k: at_width(rec.strip.image, factor) for k, rec in enumerate(pairs.records)}
            for idx in batches:
                pieces = [int(pairs.piece[j]) for j in idx]
                onset_x = [float(pairs.records[k].onset_x[pairs.onset[j]]) for k, j in zip(pieces, idx, strict=True)]
                crops = [crop_windows(strips[k], np.array([int(round(x * factor))]), width_px)[0]
                         for k, x in zip(pieces, onset_x, strict=True)]  # fmt: skip
                sheet[idx] += model.embed_sheet(torch.from_numpy(np.stack(crops) / np.float32(255.0)))
        for tempo in tempi:
            cfg = replace(model.cfg, audio_tempo=model.cfg.audio_tempo * tempo)
            for idx in batches:
                audio[idx] += model.embed_audio(audio_batch(pairs, idx, cfg, None, np.random.default_rng(0)))
    sheet, audio = sheet / sheet.norm(dim=1, keepdim=True), audio / audio.norm(dim=1, keepdim=True)
    return version, {"candidates": len(pairs), "widths": list(widths), "tempi": list(tempi),
                     "audio_to_sheet": retrieval_metrics(audio, sheet),
                     "sheet_to_audio": retrieval_metrics(sheet, audio)}  # fmt: skip
