"""Training pairs: (sheet snippet at a note head, spectrogram excerpt at its onset), with augmentation.

Kept apart from the training loop so evaluation cuts un-augmented pairs with exactly the same code.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from model.audio import BANDS_PER_OCTAVE, at_level, spectrogram_level
from model.config import ModelConfig, TrainConfig
from model.data.dataset import PieceRecord
from model.embed import crop_windows

PAD = 12  # px of context cut around a snippet so scaling and shifts never run out of image


@dataclass
class PairIndex:
    """Flat table of every (piece, rendition, onset) pair of a list of records."""

    records: list[PieceRecord]
    piece: np.ndarray  # (N,) index into records
    rendition: np.ndarray  # (N,) index into that record's renditions
    onset: np.ndarray  # (N,) index into that record's onsets
    frame: np.ndarray  # (N,) spectrogram frame of the onset

    @classmethod
    def build(cls, records: list[PieceRecord], first_rendition_only: bool = False,
              level: float | None = None) -> PairIndex:  # fmt: skip
        """Every pair of the records; with `level`, each rendition's spectrogram scaled to it first."""
        if level is not None:
            records = [replace(r, renditions=[replace(k, spec=at_level(k.spec, level)) for k in r.renditions])
                       for r in records]  # fmt: skip
        rows: list[np.ndarray] = []
        for p, rec in enumerate(records):
            for k, rend in enumerate(rec.renditions[:1] if first_rendition_only else rec.renditions):
                frames = rend.onset_frames(rec.onset_q)
                ok = np.flatnonzero(frames < len(rend.spec))
                rows.append(np.stack([np.full(len(ok), p), np.full(len(ok), k), ok, frames[ok]], axis=1))
        table = np.concatenate(rows) if rows else np.zeros((0, 4), dtype=np.int64)
        return cls(records, table[:, 0], table[:, 1], table[:, 2], table[:, 3])

    def __len__(self) -> int:
        return len(self.piece)

    def subset(self, idx: np.ndarray) -> PairIndex:
        return PairIndex(self.records, self.piece[idx], self.rendition[idx], self.onset[idx], self.frame[idx])


def median_level(records: list[PieceRecord]) -> float:
    """The median spectrogram level over every rendition: the level a checkpoint scales its inputs to."""
    return float(np.median([spectrogram_level(k.spec) for r in records for k in r.renditions]))


def sheet_batch(pairs: PairIndex, idx: np.ndarray, model: ModelConfig, cfg: TrainConfig | None,
                rng: np.random.Generator) -> torch.Tensor:  # fmt: skip
    """Sheet crops (B, *model.sheet_crop) in [0, 1] centred on the note heads; with a config that has
    augment=True, scaled, shifted and rotated (Fig. 3), and some degraded like a scan."""
    h, w = model.sheet_crop
    crops = np.zeros((len(idx), h + 2 * PAD, w + 2 * PAD), dtype=np.float32)
    for i, j in enumerate(idx):
        rec = pairs.records[pairs.piece[j]]
        x = int(round(float(rec.onset_x[pairs.onset[j]])))
        crops[i, PAD : PAD + h] = crop_windows(rec.strip.image, np.array([x]), w + 2 * PAD)[0] / 255.0
    batch = torch.from_numpy(crops)
    if cfg is None or not cfg.augment:
        return batch[:, PAD : PAD + h, PAD : PAD + w].contiguous()
    n = len(idx)
    scale = rng.uniform(*cfg.scale_range, size=n)
    dx = rng.uniform(-cfg.shift_x, cfg.shift_x, size=n)
    dy = rng.uniform(-cfg.shift_y, cfg.shift_y, size=n)
    scan = rng.random(n) < cfg.scan_prob
    angle = np.where(scan, np.radians(rng.uniform(-cfg.rotate_deg, cfg.rotate_deg, size=n)), 0.0)
    hc, wc = h + 2 * PAD, w + 2 * PAD
    # affine_grid works in normalised coordinates; rotation is applied in pixel units, hence the aspect terms
    cos, sin = np.cos(angle), np.sin(angle)
    theta = np.zeros((n, 2, 3), dtype=np.float32)
    theta[:, 0, 0] = cos * w / scale / wc
    theta[:, 0, 1] = -sin * h / scale / wc
    theta[:, 1, 0] = sin * w / scale / hc
    theta[:, 1, 1] = cos * h / scale / hc
    theta[:, 0, 2] = 2 * dx / wc
    theta[:, 1, 2] = 2 * dy / hc
    grid = F.affine_grid(torch.from_numpy(theta), [n, 1, h, w], align_corners=False)
    out = F.grid_sample(batch[:, None], grid, align_corners=False, padding_mode="zeros")
    if scan.any():
        out[scan] = _scan_like(out[scan], rng)
    return out[:, 0]


def _scan_like(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """What printing and scanning do to a snippet (ink = 1): heavier or thinner lines, blur, paper and
    sensor noise, and the hard edges of a binarised scan."""
    n = len(x)
    weight = rng.integers(-1, 2, size=n)  # −1 thinner, 0 as engraved, +1 heavier lines
    thick, thin = F.max_pool2d(x, 3, 1, 1), -F.max_pool2d(-x, 3, 1, 1)
    w = torch.from_numpy(weight).view(n, 1, 1, 1)
    x = torch.where(w > 0, 0.5 * (x + thick), torch.where(w < 0, 0.5 * (x + thin), x))
    sigma = float(rng.uniform(0.3, 1.2))
    k = torch.exp(-0.5 * (torch.arange(-2, 3, dtype=torch.float32) / sigma) ** 2)
    k = k / k.sum()
    x = F.conv2d(F.conv2d(x, k.view(1, 1, 1, 5), padding=(0, 2)), k.view(1, 1, 5, 1), padding=(2, 0))
    x = x + torch.from_numpy(rng.normal(0, 1, size=x.shape).astype(np.float32)) * float(rng.uniform(0.0, 0.12))
    binarise = torch.from_numpy(rng.random(n) < 0.3).view(n, 1, 1, 1)
    x = torch.where(binarise, (x > float(rng.uniform(0.35, 0.6))).float(), x)
    return x.clamp(0.0, 1.0)


def audio_batch(pairs: PairIndex, idx: np.ndarray, model: ModelConfig, cfg: TrainConfig | None,
                rng: np.random.Generator) -> torch.Tensor:  # fmt: skip
    """Spectrogram crops (B, *model.audio_crop) centred on the onsets, resampled to model.audio_tempo (as
    model.audio.at_tempo does to a whole query); with augmentation, also time-stretched around the onset
    (local tempo change) and altered in the linear-magnitude domain."""
    augment = cfg is not None and cfg.augment
    bins, frames = model.audio_crop
    lo, hi = np.log(cfg.stretch) if cfg is not None else (0.0, 0.0)
    stretch = np.exp(rng.uniform(lo, hi, size=len(idx))) if augment else np.ones(len(idx))
    stretch = stretch * model.audio_tempo  # input frames per output frame
    resample = augment or model.audio_tempo != 1.0
    width = int(np.ceil(frames * stretch.max())) + 2 if resample else frames
    jitter = rng.integers(-cfg.onset_jitter, cfg.onset_jitter + 1, size=len(idx)) if augment else 0  # type: ignore[union-attr]
    centres = pairs.frame[idx] + jitter
    out = np.stack([
        crop_windows(pairs.records[pairs.piece[j]].renditions[pairs.rendition[j]].spec.T, np.array([c]), width)[0]
        for j, c in zip(idx, centres, strict=True)
    ])  # fmt: skip
    if not resample:
        return torch.from_numpy(out)
    if augment and cfg is not None:
        out = _mask(_augment_audio(out, cfg, rng), cfg, rng)
    batch = torch.from_numpy(out.astype(np.float32))
    theta = np.zeros((len(idx), 2, 3), dtype=np.float32)
    theta[:, 0, 0] = frames * stretch / width
    theta[:, 1, 1] = 1.0
    grid = F.affine_grid(torch.from_numpy(theta), [len(idx), 1, bins, frames], align_corners=False)
    return F.grid_sample(batch[:, None], grid, align_corners=False)[:, 0]


def _augment_audio(spec: np.ndarray, cfg: TrainConfig, rng: np.random.Generator) -> np.ndarray:
    """Partials of another voicing, gain, smooth EQ + reverb tail, and additive noise, applied to
    10^spec − 1 (linear magnitudes)."""
    n, bins, frames = spec.shape
    lin = np.power(10.0, spec) - 1.0
    timbre_mask = np.flatnonzero(rng.random(n) < cfg.timbre_prob)
    if timbre_mask.size:
        source = lin[timbre_mask]
        for partial in (2, 3, 4):  # 16 bins per octave: the k-th partial sits 16·log2(k) bins up
            up = int(round(BANDS_PER_OCTAVE * np.log2(partial)))
            weight = rng.uniform(0.0, cfg.timbre_gain, size=(len(timbre_mask), 1, 1))
            lin[timbre_mask, up:] += weight * source[:, :-up]
    lin *= 10.0 ** (rng.uniform(-cfg.gain_db, cfg.gain_db, size=(n, 1, 1)) / 20.0)
    eq_mask = np.asarray(rng.random(n) < cfg.eq_prob)
    if eq_mask.any():
        k = np.arange(bins) / bins
        phase, freq = rng.uniform(0, 2 * np.pi, size=(n, 1)), rng.uniform(0.5, 2.0, size=(n, 1))
        curve_db = rng.uniform(0, cfg.eq_db, size=(n, 1)) * np.sin(2 * np.pi * freq * k[None, :] + phase)
        lin[eq_mask] *= (10.0 ** (curve_db / 20.0))[eq_mask, :, None]
        decay = np.asarray(rng.uniform(*cfg.tail_decay, size=n))[eq_mask, None]
        tail = lin[eq_mask].copy()
        for t in range(1, frames):  # one-pole reverb tail along time
            tail[:, :, t] = np.maximum(tail[:, :, t], decay * tail[:, :, t - 1])
        lin[eq_mask] = tail
    noise_mask = np.asarray(rng.random(n) < cfg.noise_prob)
    if noise_mask.any():
        level = lin.mean(axis=(1, 2), keepdims=True) * rng.uniform(0.02, 0.2, size=(n, 1, 1))
        lin[noise_mask] += (np.abs(rng.normal(size=(n, bins, frames))) * level)[noise_mask]
    return np.log10(1.0 + np.maximum(lin, 0.0))


def _mask(spec: np.ndarray, cfg: TrainConfig, rng: np.random.Generator) -> np.ndarray:
    """One band of bins and one span of frames set to silence in a random share of the excerpts. Draws
    nothing when both shares are 0, so the recipes trained before it replay the same random stream."""
    n, bins, frames = spec.shape
    if cfg.freq_mask_prob <= 0.0 and cfg.time_mask_prob <= 0.0:
        return spec
    for i in np.flatnonzero(rng.random(n) < cfg.freq_mask_prob):
        width = int(rng.integers(1, cfg.freq_mask_bins + 1))
        start = int(rng.integers(0, bins - width + 1))
        spec[i, start : start + width] = 0.0
    for i in np.flatnonzero(rng.random(n) < cfg.time_mask_prob):
        width = int(rng.integers(1, cfg.time_mask_frames + 1))
        start = int(rng.integers(0, frames - width + 1))
        spec[i, :, start : start + width] = 0.0
    return spec
