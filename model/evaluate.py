"""Table-2 protocol: one query per note-head onset, its counterpart ranked among all snippets of the split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from model.data.dataset import load_split
from model.nets import SheetAudioNet
from model.pairs import PairIndex, audio_batch, sheet_batch

EVAL_SPLITS = ("validation", "test", "test-chorales")  # evaluation never reads training pieces
BATCH = 500  # pairs embedded per forward pass


@torch.no_grad()
def embed_pairs(model: SheetAudioNet, pairs: PairIndex) -> tuple[torch.Tensor, torch.Tensor]:
    """Un-augmented sheet and audio embeddings of every pair: (N, 32) each, unit length."""
    model.eval()
    rng = np.random.default_rng(0)
    xs, ys = [], []
    for start in range(0, len(pairs), BATCH):
        idx = np.arange(start, min(start + BATCH, len(pairs)))
        xs.append(model.embed_sheet(sheet_batch(pairs, idx, model.cfg, None, rng)))
        ys.append(model.embed_audio(audio_batch(pairs, idx, model.cfg, None, rng)))
    return torch.cat(xs), torch.cat(ys)


def ranks(queries: torch.Tensor, candidates: torch.Tensor) -> np.ndarray:
    """1-based rank of candidate i for query i under cosine similarity (ties count against the query)."""
    out = []
    for start in range(0, len(queries), 1024):
        q = queries[start : start + 1024]
        sims = q @ candidates.T
        true = sims[torch.arange(len(q)), torch.arange(start, start + len(q))]
        out.append(((sims > true[:, None]).sum(dim=1) + 1).numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def retrieval_metrics(queries: torch.Tensor, candidates: torch.Tensor) -> dict[str, float]:
    r = ranks(queries, candidates)
    return {
        "R@1": round(float(np.mean(r <= 1) * 100), 2),
        "R@10": round(float(np.mean(r <= 10) * 100), 2),
        "R@25": round(float(np.mean(r <= 25) * 100), 2),
        "MR": int(np.median(r)) if len(r) else 0,
    }


def evaluate_snippets(model: SheetAudioNet, dataset: Path, split: str = "test") -> dict:
    """Both retrieval directions over every onset of `split` (unseen SoundFont, 120 bpm)."""
    pairs = PairIndex.build(load_split(dataset, split, EVAL_SPLITS), first_rendition_only=True,
                            level=model.cfg.audio_level)  # fmt: skip
    x, y = embed_pairs(model, pairs)
    return {
        "candidates": len(pairs),
        "audio_to_sheet": retrieval_metrics(y, x),
        "sheet_to_audio": retrieval_metrics(x, y),
    }
