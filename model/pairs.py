"""Training pairs: (sheet snippet at a note head, spectrogram excerpt at its onset), with augmentation.

Kept apart from the training loop so evaluation cuts un-augmented pairs with exactly the same code.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from model.audio import cut_excerpts
from model.config import TrainConfig
from model.data.dataset import PieceRecord
from model.sheet import SNIPPET_WIDTH, STRIP_HEIGHT

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
    def build(cls, records: list[PieceRecord], first_rendition_only: bool = False) -> PairIndex:
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


def sheet_batch(pairs: PairIndex, idx: np.ndarray, cfg: TrainConfig | None, rng: np.random.Generator) -> torch.Tensor:
    """Snippets (B, H, W) in [0, 1]; with a config that has augment=True, scaled and shifted (Fig. 3)."""
    h, w = STRIP_HEIGHT, SNIPPET_WIDTH
    crops = np.zeros((len(idx), h + 2 * PAD, w + 2 * PAD), dtype=np.float32)
    for i, j in enumerate(idx):
        rec = pairs.records[pairs.piece[j]]
        x = int(round(float(rec.onset_x[pairs.onset[j]])))
        strip = rec.strip.image
        lo, hi = x - w // 2 - PAD, x + w // 2 + PAD
        a, b = max(lo, 0), min(hi, strip.shape[1])
        crops[i, PAD : PAD + h, a - lo : b - lo] = strip[:, a:b] / 255.0
    batch = torch.from_numpy(crops)
    if cfg is None or not cfg.augment:
        return batch[:, PAD : PAD + h, PAD : PAD + w].contiguous()
    n = len(idx)
    scale = rng.uniform(*cfg.scale_range, size=n)
    dx = rng.uniform(-cfg.shift_x, cfg.shift_x, size=n)
    dy = rng.uniform(-cfg.shift_y, cfg.shift_y, size=n)
    hc, wc = h + 2 * PAD, w + 2 * PAD
    theta = np.zeros((n, 2, 3), dtype=np.float32)
    theta[:, 0, 0] = w / scale / wc
    theta[:, 1, 1] = h / scale / hc
    theta[:, 0, 2] = 2 * dx / wc
    theta[:, 1, 2] = 2 * dy / hc
    grid = F.affine_grid(torch.from_numpy(theta), [n, 1, h, w], align_corners=False)
    return F.grid_sample(batch[:, None], grid, align_corners=False, padding_mode="zeros")[:, 0]


def audio_batch(pairs: PairIndex, idx: np.ndarray, cfg: TrainConfig | None, rng: np.random.Generator) -> torch.Tensor:
    """Spectrogram excerpts (B, 92, 42) centred on the onsets; augmented in the linear-magnitude domain."""
    augment = cfg is not None and cfg.augment
    jitter = rng.integers(-cfg.onset_jitter, cfg.onset_jitter + 1, size=len(idx)) if augment else 0  # type: ignore[union-attr]
    centres = pairs.frame[idx] + jitter
    out = np.stack([
        cut_excerpts(pairs.records[pairs.piece[j]].renditions[pairs.rendition[j]].spec, np.array([c]))[0]
        for j, c in zip(idx, centres, strict=True)
    ])  # fmt: skip
    if augment:
        assert cfg is not None
        out = _augment_audio(out, cfg, rng)
    return torch.from_numpy(out.astype(np.float32))


def _augment_audio(spec: np.ndarray, cfg: TrainConfig, rng: np.random.Generator) -> np.ndarray:
    """Gain, smooth EQ + reverb tail, and additive noise, applied to 10^spec − 1 (linear magnitudes)."""
    n, bins, frames = spec.shape
    lin = np.power(10.0, spec) - 1.0
    lin *= 10.0 ** (rng.uniform(-cfg.gain_db, cfg.gain_db, size=(n, 1, 1)) / 20.0)
    eq_mask = np.asarray(rng.random(n) < cfg.eq_prob)
    if eq_mask.any():
        k = np.arange(bins) / bins
        phase, freq = rng.uniform(0, 2 * np.pi, size=(n, 1)), rng.uniform(0.5, 2.0, size=(n, 1))
        curve_db = rng.uniform(0, 6, size=(n, 1)) * np.sin(2 * np.pi * freq * k[None, :] + phase)
        lin[eq_mask] *= (10.0 ** (curve_db / 20.0))[eq_mask, :, None]
        decay = np.asarray(rng.uniform(0.2, 0.6, size=n))[eq_mask, None]
        tail = lin[eq_mask].copy()
        for t in range(1, frames):  # one-pole reverb tail along time
            tail[:, :, t] = np.maximum(tail[:, :, t], decay * tail[:, :, t - 1])
        lin[eq_mask] = tail
    noise_mask = np.asarray(rng.random(n) < cfg.noise_prob)
    if noise_mask.any():
        level = lin.mean(axis=(1, 2), keepdims=True) * rng.uniform(0.02, 0.2, size=(n, 1, 1))
        lin[noise_mask] += (np.abs(rng.normal(size=(n, bins, frames))) * level)[noise_mask]
    return np.log10(1.0 + np.maximum(lin, 0.0))

