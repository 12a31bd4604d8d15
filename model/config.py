"""Configuration dataclasses. ModelConfig travels inside every checkpoint; TrainConfig is the one place
where a training run is described (nanoGPT style: every knob commented, defaults = the shipped model)."""

from __future__ import annotations

from dataclasses import dataclass, field

from model.audio import EXCERPT_FRAMES, N_BINS
from model.sheet import SNIPPET_WIDTH, STAFF_SPACE, STRIP_HEIGHT


@dataclass
class ModelConfig:
    sheet_shape: tuple[int, int] = (STRIP_HEIGHT, SNIPPET_WIDTH)  # (H, W); the paper's 180×200 halved
    audio_shape: tuple[int, int] = (N_BINS, EXCERPT_FRAMES)  # (bins, frames)
    staff_space: float = STAFF_SPACE  # px between staff lines the sheet pathway was trained on
    channels: tuple[int, ...] = (12, 24, 48, 48)  # conv widths of the four VGG blocks (Table 1)
    embed_dim: int = 32  # joint embedding size
    cca_reg: float = 1e-3  # ridge added to covariances before whitening
    cca_momentum: float = 0.05  # running-statistics update rate while training


@dataclass
class TrainConfig:
    # data
    dataset: str = "data/dataset"  # output of `sheetid data build`
    out: str = "model/weights/sheetid.pt"  # checkpoint written at the best validation score
    seed: int = 1234  # fixes sampling, augmentation and initialisation
    # optimisation (paper §3)
    batch_size: int = 100  # pairs per step; the other 99 are each pair's contrastive examples
    lr: float = 0.002  # Adam learning rate
    margin: float = 0.7  # ranking-loss margin α
    max_minutes: float = 45.0  # wall-clock budget; training stops at the budget or on early stopping
    max_epochs: int | None = None  # stop after this many epochs (step-matched ablations), else only time
    snapshot_minutes: float | None = None  # also save the weights reached by then (<out stem>.snapshot.pt)
    steps_per_epoch: int = 200  # an "epoch" here is a fixed number of steps, then validation
    patience: int = 3  # epochs without validation improvement before halving the learning rate
    max_halvings: int = 3  # stop after this many halvings without improvement
    val_pairs: int = 2000  # validation queries (fixed subset, audio→sheet among themselves)
    cca_refit_pairs: int = 6000  # training pairs used to re-estimate the CCA projections
    threads: int = 2  # torch CPU threads
    # augmentation (paper §2.3 plus robustness for real recordings)
    augment: bool = True  # False reproduces the "no augmentation" row of Table 2
    scale_range: tuple[float, float] = (0.95, 1.05)  # sheet image scaling
    # The paper's ±5 px are at 180×200 input (about 9 px per staff space); our strip has 4.5, so the same
    # ±0.55 staff space is ±2.5 px here. Literal ±5 px would shift notes by a whole third.
    shift_y: float = 2.5  # ± px vertical system translation
    shift_x: float = 2.5  # ± px horizontal note translation
    onset_jitter: int = 1  # ± spectrogram frames around the onset
    gain_db: float = 6.0  # ± dB level change
    noise_prob: float = 0.5  # share of excerpts that get additive noise
    eq_prob: float = 0.5  # share of excerpts that get a random smooth EQ curve and reverb tail
    model: ModelConfig = field(default_factory=ModelConfig)
