"""Table-2 snippet retrieval: each query's counterpart ranked among all snippets of a split.

The metrics themselves live in model/evaluate.py (training validates with them); this runs them on a
checkpoint for `sheetid eval snippets`.
"""

from __future__ import annotations

from pathlib import Path

from model import checkpoint
from model.evaluate import evaluate_snippets

EVAL_THREADS = 2  # torch CPU threads for the benchmark


def evaluate_checkpoint(weights: Path | None, dataset: Path, split: str = "test") -> tuple[str, dict]:
    """(model version, Table-2 metrics) of the checkpoint at `weights` (default: the shipped one)."""
    import torch

    torch.set_num_threads(EVAL_THREADS)
    model, version, _ = checkpoint.load(weights)
    return version, evaluate_snippets(model, dataset, split)
