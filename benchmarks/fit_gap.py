"""`python -m benchmarks.fit_gap [--weights W]`: does the network memorise its training pieces?

Audio→sheet retrieval among N random pairs (each piece's first rendition, un-augmented), on the training
split and on the validation split, as `sheetid train` validates. A wide gap says the network learned the
training pieces more than the task: more pieces or stronger augmentation, not more capacity, is the lever.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from model.checkpoint import load
from model.data.dataset import load_split
from model.pairs import PairIndex
from model.train import TRAINING_SPLITS, validate


def fit_gap(weights: Path | None, dataset: Path, pairs: int = 2000, seed: int = 1234) -> dict:
    model, version, _ = load(weights)
    model.eval()
    rng = np.random.default_rng(seed)
    out: dict = {"model_version": version, "pairs": pairs}
    for split in ("train", "validation"):
        everyone = PairIndex.build(load_split(dataset, split, TRAINING_SPLITS), first_rendition_only=True,
                                   level=model.cfg.audio_level)  # fmt: skip
        chosen = everyone.subset(np.sort(rng.choice(len(everyone), min(pairs, len(everyone)), replace=False)))
        out[split] = validate(model, chosen)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=None, help="checkpoint (default: the shipped weights)")
    parser.add_argument("--dataset", type=Path, default=Path("data/dataset"))
    parser.add_argument("--pairs", type=int, default=2000)
    args = parser.parse_args()
    torch.set_num_threads(2)
    print(json.dumps(fit_gap(args.weights, args.dataset, args.pairs)))


if __name__ == "__main__":
    main()
