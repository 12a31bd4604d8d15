"""Configuration dataclasses. ModelConfig travels inside every checkpoint; TrainConfig is the one place
where a training run is described (nanoGPT style: every knob commented, defaults = the shipped model)."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field, fields, replace
from typing import Any

from model.audio import N_BINS
from model.sheet import STAFF_SPACE, STRIP_HEIGHT


@dataclass
class ModelConfig:
    """The network's shape. Windows are counted in feature-map columns of the conv trunk (one column =
    `stride` input pixels or frames), so a window's vector can be pooled from the feature map of a whole
    strip or spectrogram computed once (model/embed.py) and equal the vector of a crop trained on."""

    strip_height: int = STRIP_HEIGHT  # px; sheet input height (one unrolled system, paper's 180 halved)
    n_bins: int = N_BINS  # spectrogram bins; audio input height
    staff_space: float = STAFF_SPACE  # px between staff lines the sheet pathway was trained on
    channels: tuple[int, ...] = (12, 24, 48, 48)  # conv widths of the four VGG blocks (Table 1)
    embed_dim: int = 32  # joint embedding size
    sheet_window_cols: int = 8  # sheet snippet width in columns (8 × 16 = 128 px, ≈ 28 staff spaces)
    audio_window_cols: int = 3  # audio excerpt length in columns (3 × 16 = 48 frames = 2.4 s)
    # Columns of real neighbourhood each side of a training crop, so training sees what a window of a
    # whole-input feature map sees instead of zero padding (the trunk's receptive-field radius is 38 px).
    # Two columns (32 px or frames) each side: with one, the dense and per-window vectors of the shipped
    # layers agreed only to a median cosine of 0.981–0.989 on test strips (audio: 0.985 on an early model).
    sheet_context_cols: int = 2
    audio_context_cols: int = 2
    # Median spectrogram level (model/audio.py spectrogram_level) of the training renditions; inputs are
    # scaled to it before embedding. None: a checkpoint trained on raw levels, inputs are not scaled.
    audio_level: float | None = None
    # Tempo factor every spectrogram is resampled to before the audio pathway sees it (model.audio.at_tempo;
    # training pairs alike, model/pairs.py): below 1 a 2.4-s window holds less music, at 0.7 about what a
    # 128-px snippet shows at 120 bpm. 1.0: as played (every checkpoint before it existed).
    audio_tempo: float = 1.0
    cca_reg: float = 1e-3  # ridge added to covariances before whitening
    cca_momentum: float = 0.05  # running-statistics update rate while training

    @property
    def stride(self) -> int:
        """Input pixels (frames) per feature-map column: each VGG block halves the resolution."""
        return 2 ** len(self.channels)

    @property
    def sheet_window(self) -> int:
        return self.sheet_window_cols * self.stride

    @property
    def audio_window(self) -> int:
        return self.audio_window_cols * self.stride

    @property
    def sheet_crop(self) -> tuple[int, int]:
        """(H, W) of a training / per-window sheet input: the window plus context on both sides."""
        return self.strip_height, (self.sheet_window_cols + 2 * self.sheet_context_cols) * self.stride

    @property
    def audio_crop(self) -> tuple[int, int]:
        """(bins, frames) of a training / per-window audio input."""
        return self.n_bins, (self.audio_window_cols + 2 * self.audio_context_cols) * self.stride


@dataclass
class TrainConfig:
    # data
    dataset: str = "data/dataset"  # output of `sheetid data build`
    out: str = "model/weights/sheetid.pt"  # checkpoint written at the best validation score
    seed: int = 1234  # fixes sampling, augmentation and initialisation
    init: str | None = None  # start from this checkpoint's network weights (any format with the same layers)
    # A second dataset folder whose "train-extra" pieces join the training pairs (model/data/corpus.py builds
    # them apart from `dataset`, so the evaluation library keeps its size). None: `dataset` alone.
    extra_dataset: str | None = None
    # Renditions per training piece: the first N of each record, or all. A record lists the three FluidSynth
    # pianos first, then timidity and another keyboard instrument, then two performed in a room
    # (model/data/build.py renditions_for); the stages before MODEL.md step 11 were trained on the first
    # three, steps 11-14 on the first five.
    renditions: int | None = None
    # optimisation (paper §3)
    batch_size: int = 100  # pairs per step; the other 99 are each pair's contrastive examples
    lr: float = 0.002  # Adam learning rate
    # "hinge" (the paper's Eq. 1) or "infonce" (in-batch softmax, learned temperature). From scratch, InfoNCE
    # stalled near chance on validation while hinge kept improving (MODEL.md, training steps 6 and 7).
    loss: str = "hinge"
    margin: float = 0.7  # hinge-loss margin α
    temperature: float = 0.1  # InfoNCE starting temperature (learned from there)
    max_minutes: float = 60.0  # wall-clock budget; training stops at the budget or on early stopping
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
    shift_x: float = 4.0  # ± px horizontal note translation (indexed windows sit every 16 px: ≤ 8 px off a note)
    onset_jitter: int = 1  # ± spectrogram frames around the onset
    level_inputs: bool = True  # scale every spectrogram to the training median (ModelConfig.audio_level)
    gain_db: float = 6.0  # ± dB level change (after level scaling)
    noise_prob: float = 0.5  # share of excerpts that get additive noise
    eq_prob: float = 0.5  # share of excerpts that get a random smooth EQ curve and reverb tail
    # The shipped weights' last stage (MODEL.md step 10) used these three; the long run before it had
    # eq_db 6, tail_decay (0.2, 0.6), timbre_prob 0 and level_inputs False (`make weights` runs both).
    eq_db: float = 10.0  # peak gain of the EQ curve, ± dB
    tail_decay: tuple[float, float] = (0.2, 0.85)  # reverb / pedal tail: per-frame decay factor range
    # Another instrument voicing: copies of the excerpt shifted up by the 2nd–4th partials' intervals are
    # added with random weights, so the network cannot lean on one piano's balance of partials.
    timbre_prob: float = 0.5
    timbre_gain: float = 0.5  # largest weight of an added partial copy
    stretch: tuple[float, float] = (0.8, 1.25)  # local tempo change: excerpt time-stretch factor range
    # SpecAugment-style masking (Park et al. 2019): the share of excerpts that lose one band of bins and the
    # share that lose one span of frames (set to silence), so no single note or partial can carry a match.
    # 0 for every checkpoint up to MODEL.md step 18 (trained without it).
    freq_mask_prob: float = 0.0
    time_mask_prob: float = 0.0
    freq_mask_bins: int = 12  # widest masked band (16 bins an octave)
    time_mask_frames: int = 10  # longest masked span (0.5 s)
    scan_prob: float = 0.5  # share of snippets degraded like a scan (rotation, blur, noise, line weight)
    rotate_deg: float = 1.0  # ± degrees of rotation for scan-like snippets
    model: ModelConfig = field(default_factory=ModelConfig)


def with_overrides(cfg: TrainConfig, items: list[str]) -> TrainConfig:
    """Apply "name=value" (TrainConfig) and "model.name=value" (ModelConfig) overrides, each value parsed
    as a Python literal (`loss=hinge`, `batch_size=200`, `model.audio_window_cols=5`); unknown names fail."""
    train_fields, model_fields = {f.name for f in fields(TrainConfig)}, {f.name for f in fields(ModelConfig)}
    model_changes: dict[str, Any] = {}
    train_changes: dict[str, Any] = {}
    for item in items:
        name, _, raw = item.partition("=")
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw  # a bare word is a string
        if name.startswith("model.") and name[6:] in model_fields:
            model_changes[name[6:]] = tuple(value) if isinstance(value, list) else value
        elif name in train_fields and name != "model":
            train_changes[name] = tuple(value) if isinstance(value, list) else value
        else:
            raise KeyError(f"unknown training setting {name!r}")
    return replace(cfg, model=replace(cfg.model, **model_changes), **train_changes)
