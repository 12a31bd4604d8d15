"""The training loop on the three-piece fixture: it runs, saves a loadable checkpoint and resumes."""

from __future__ import annotations

from pathlib import Path

import torch

from model import checkpoint
from model.config import TrainConfig
from model.train import resume_path, train


def _cfg(dataset: Path, out: Path, epochs: int) -> TrainConfig:
    return TrainConfig(dataset=str(dataset), out=str(out), steps_per_epoch=2, max_epochs=epochs, batch_size=40,
                       val_pairs=100, cca_refit_pairs=200, max_minutes=30)  # fmt: skip


def test_resume_continues_the_interrupted_run(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.pt"
    first = train(_cfg(dataset, out, 1), log=lambda *_: None)
    assert first["epochs"] == 1 and resume_path(_cfg(dataset, out, 1)).exists()
    state = torch.load(resume_path(_cfg(dataset, out, 1)), weights_only=False)
    resumed = train(_cfg(dataset, out, 2), log=lambda *_: None, resume=True)
    assert resumed["epochs"] == 2  # one more epoch on top of the first, not two from scratch
    _, _, extra = checkpoint.load(out)
    history = extra["history"]
    assert [row["epoch"] for row in history] == [1, 2]
    assert history[0] == state["history"][0]  # the first epoch is carried over, not redone


def test_inputs_are_scaled_to_a_given_level_or_else_to_the_training_median(dataset: Path, tmp_path: Path) -> None:
    """A fine-tune can keep its init's input level (new renditions would move the training median)."""
    from dataclasses import replace

    from model.data.dataset import load_split
    from model.pairs import median_level
    from model.train import TRAINING_SPLITS

    derived = _cfg(dataset, tmp_path / "derived.pt", 1)
    given = _cfg(dataset, tmp_path / "given.pt", 1)
    train(derived, log=lambda *_: None)
    train(replace(given, model=replace(given.model, audio_level=12.5)), log=lambda *_: None)
    median = round(median_level(load_split(dataset, "train", TRAINING_SPLITS)), 3)
    assert median != 12.5
    assert checkpoint.load(Path(derived.out))[0].cfg.audio_level == median
    assert checkpoint.load(Path(given.out))[0].cfg.audio_level == 12.5
