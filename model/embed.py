"""The one embedder: unrolled sheet strips and spectrograms → unit vectors in the joint space.

Both pathways are all-convolutional and end in average pooling, so the vectors of overlapping windows
share almost all their work. The dense path runs a pathway's conv trunk once over the whole input (in
tiles, to bound memory), keeps one feature column per `stride` input pixels or frames, and averages each
window's columns with a cumulative sum. Training computes a window's vector the same way, from a crop
that carries `sheet_context_cols` / `audio_context_cols` of real neighbourhood on each side
(model/pairs.py), so the dense vector of a window equals the vector the network was trained to produce.

Windows sit on the trunk's pooling grid: a window centred at c is computed in the pass whose grid phase
is (c − window/2) mod stride. A hop that divides the stride costs stride / hop passes.

The per-window path (`embed_snippets`, `embed_excerpts` on cut crops) is the reference the dense path is
tested against, and the old way `sheetid bench` compares speeds with.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from model.audio import at_level, at_tempo
from model.config import ModelConfig
from model.nets import Pathway, SheetAudioNet
from model.sheet import at_width

EMBED_DIM = ModelConfig().embed_dim  # size of the joint space of the shipped configuration
EMBED_BATCH = 256  # crops per forward pass on the per-window path
PROJECT_BATCH = 8192  # pooled windows projected per step
TILE_COLS = 512  # feature columns per trunk pass over a long input (8,192 px or frames)
HALO_COLS = 4  # columns of overlap each side of a tile: 64 px, beyond the trunk's receptive-field radius (38)
RUNTIMES = ("torch", "onnxruntime")  # what runs the dense trunk; onnxruntime: CPU only, pip extra `onnx`


def window_centres(length: int, window: int, stride: int, hop: int) -> np.ndarray:
    """Centres, `hop` apart on the pooling grid, of windows lying at least three quarters inside an input
    of `length` px or frames; one central window for inputs shorter than that."""
    if hop <= 0 or stride % hop:
        raise ValueError(f"hop {hop} must divide the stride {stride}")
    offset = (window // 2) % hop
    lo, hi = window // 4, length - window // 4
    centres = np.arange(offset + hop * int(np.ceil((lo - offset) / hop)), hi + 1, hop, dtype=np.int64)
    if len(centres) == 0:
        centres = np.array([offset + hop * int(round((length / 2 - offset) / hop))], dtype=np.int64)
    return centres


def crop_windows(image: np.ndarray, centres: np.ndarray, width: int) -> np.ndarray:
    """Crops (N, H, width) of a (H, W) image centred on `centres` (integer), zero-padded beyond its ends."""
    half = width // 2
    idx = np.asarray(centres, dtype=np.int64)[:, None] - half + np.arange(width)[None, :]
    valid = (idx >= 0) & (idx < image.shape[1])
    crops = image[:, np.clip(idx, 0, max(0, image.shape[1] - 1))].transpose(1, 0, 2)
    return np.ascontiguousarray(np.where(valid[:, None, :], crops, 0)).astype(np.float32)


def inference_trunk(pathway: Pathway) -> nn.Sequential:
    """The pathway's conv trunk and head for inference: every BatchNorm folded into the convolution before
    it, in channels-last layout (both measured faster on CPU, see `sheetid bench`); same outputs."""
    layers: list[nn.Module] = []
    for module in [*pathway.blocks, pathway.head]:
        for layer in module:
            if isinstance(layer, nn.BatchNorm2d):
                conv = layers[-1]
                assert isinstance(conv, nn.Conv2d)  # every BatchNorm of Table 1 follows a convolution
                layers[-1] = fuse_conv_bn_eval(conv, layer)
            else:
                layers.append(layer)
    return nn.Sequential(*layers).eval().to(memory_format=torch.channels_last)  # type: ignore[call-overload]


def _columns(trunk: nn.Module, image: torch.Tensor, stride: int) -> torch.Tensor:
    """Column features (D, W // stride) of a (H, W) input, W a multiple of stride, computed in tiles."""
    n = image.shape[1] // stride
    out = []
    for t0 in range(0, n, TILE_COLS):
        a, b = max(0, t0 - HALO_COLS), min(n, t0 + TILE_COLS + HALO_COLS)
        tile = image[None, None, :, a * stride : b * stride].contiguous(memory_format=torch.channels_last)
        cols = trunk(tile).mean(dim=2)[0]
        out.append(cols[:, t0 - a : t0 - a + min(TILE_COLS, n - t0)])
    return torch.cat(out, dim=1)


@torch.no_grad()
def _dense(pathway: Pathway, image: np.ndarray, centres: np.ndarray, window_cols: int, stride: int,
           device: str, runtime: str = "torch") -> torch.Tensor:  # fmt: skip
    """Pooled trunk features (N, D) of the windows centred on `centres`, one trunk pass per grid phase."""
    trunk = inference_trunk(pathway) if runtime == "torch" else _onnx_trunk(pathway, device, runtime)
    h, w = image.shape
    window = window_cols * stride
    pad = stride * (window_cols + HALO_COLS)  # left padding, a whole number of columns
    total = pad + w + pad
    total += -total % stride
    pooled = torch.empty((len(centres), pathway.embed_dim), device=device)
    starts = np.asarray(centres, dtype=np.int64) - window // 2  # window's left edge in image px
    phases = starts % stride
    src = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).to(device)
    for phase in np.unique(phases):
        shifted = torch.zeros((h, total), device=device)
        # shifted[:, i] = image[:, i − pad + phase], so column j starts at image px j·stride − pad + phase
        shifted[:, pad - int(phase) : pad - int(phase) + w] = src  # phase < stride ≤ pad
        cols = _columns(trunk, shifted, stride)  # (D, n)
        csum = torch.nn.functional.pad(cols.cumsum(dim=1), (1, 0))
        sel = np.flatnonzero(phases == phase)
        first = torch.from_numpy((starts[sel] - int(phase) + pad) // stride).to(device)
        pooled[torch.from_numpy(sel).to(device)] = ((csum[:, first + window_cols] - csum[:, first]) / window_cols).T
    return pooled


def _onnx_trunk(pathway: Pathway, device: str, runtime: str) -> nn.Module:
    """The trunk run by ONNX Runtime (`sheetid bench runtime`: faster on CPU, same features within 1e-6)."""
    if runtime != "onnxruntime":
        raise ValueError(f"runtime {runtime!r}: one of {', '.join(RUNTIMES)}")
    if device != "cpu":
        raise ValueError("the onnxruntime runtime runs on CPU only")
    from model.onnx_trunk import cached_onnx_trunk

    return cached_onnx_trunk(pathway)


def _project(project, pooled: torch.Tensor) -> np.ndarray:  # type: ignore[no-untyped-def]
    out = [project(pooled[i : i + PROJECT_BATCH]).cpu().numpy() for i in range(0, len(pooled), PROJECT_BATCH)]
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, pooled.shape[1]), np.float32)


def embed_strip(model: SheetAudioNet, strip: np.ndarray, hop: int, device: str = "cpu",
                runtime: str = "torch") -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(window centres in strip px, unit vectors (N, D)) for an unrolled strip (H, W) uint8, ink 255.
    `runtime` is one of RUNTIMES (same vectors; "onnxruntime" exports the trunk once per model)."""
    cfg = model.cfg
    centres = window_centres(strip.shape[1], cfg.sheet_window, cfg.stride, hop)
    pooled = _dense(model.sheet, strip / np.float32(255.0), centres, cfg.sheet_window_cols, cfg.stride, device,
                    runtime)  # fmt: skip
    return centres, _project(model.project_sheet, pooled)


def embed_strip_at_width(model: SheetAudioNet, strip: np.ndarray, centres: np.ndarray, factor: float, hop: int,
                         device: str = "cpu") -> np.ndarray:  # fmt: skip
    """Unit vectors (len(centres), D) of the strip read `factor` times as wide (model.sheet.at_width), one
    per window centre of the input strip: the window of the wider strip, every `hop` of its px, nearest to
    the centre's place there."""
    wide_centres, vectors = embed_strip(model, at_width(strip, factor), hop, device)
    return vectors[nearest(wide_centres / factor, np.asarray(centres, np.float64))]


def nearest(grid: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Index of the `grid` value (ascending) nearest to each point."""
    right = np.clip(np.searchsorted(grid, points), 0, len(grid) - 1)
    left = np.clip(right - 1, 0, len(grid) - 1)
    return np.where(np.abs(grid[left] - points) <= np.abs(grid[right] - points), left, right)


def normalised_mean(readings: list[np.ndarray]) -> np.ndarray:
    """Unit vectors (N, D), float32: the normalised mean of the same N windows' vectors in every reading."""
    total = np.sum([np.asarray(r, np.float64) for r in readings], axis=0)
    return (total / np.maximum(np.linalg.norm(total, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def embed_spectrogram(model: SheetAudioNet, spec: np.ndarray, hop_frames: int, device: str = "cpu",
                      runtime: str = "torch") -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(window centre frames, unit vectors (N, D)) for a (T, bins) spectrogram; `runtime` as in embed_strip."""
    cfg = model.cfg
    if len(spec) == 0:
        return np.zeros(0, np.int64), np.zeros((0, cfg.embed_dim), np.float32)
    centres = window_centres(len(spec), cfg.audio_window, cfg.stride, hop_frames)
    pooled = _dense(model.audio, np.asarray(spec, np.float32).T, centres, cfg.audio_window_cols, cfg.stride, device,
                    runtime)  # fmt: skip
    return centres, _project(model.project_audio, pooled)


@torch.no_grad()
def _per_window(embed, crops: np.ndarray, device: str) -> np.ndarray:  # type: ignore[no-untyped-def]
    out = [embed(torch.from_numpy(crops[i : i + EMBED_BATCH]).to(device)).cpu().numpy()
           for i in range(0, len(crops), EMBED_BATCH)]  # fmt: skip
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, EMBED_DIM), np.float32)


def embed_snippets(model: SheetAudioNet, snippets: np.ndarray, device: str = "cpu") -> np.ndarray:
    """Per-window path: sheet crops (N, *cfg.sheet_crop) in [0, 1] → unit vectors (N, D)."""
    return _per_window(model.embed_sheet, snippets, device)


def embed_excerpts(model: SheetAudioNet, excerpts: np.ndarray, device: str = "cpu") -> np.ndarray:
    """Per-window path: spectrogram crops (N, bins, cfg.audio_crop[1]) → unit vectors (N, D)."""
    return _per_window(model.embed_audio, excerpts, device)


def embed_strip_per_window(model: SheetAudioNet, strip: np.ndarray, hop: int,
                           device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """The same windows as `embed_strip`, one forward pass per crop (reference and speed baseline)."""
    cfg = model.cfg
    centres = window_centres(strip.shape[1], cfg.sheet_window, cfg.stride, hop)
    crops = crop_windows(strip / np.float32(255.0), centres, cfg.sheet_crop[1])
    return centres, embed_snippets(model, crops, device)


def embed_recording_spectrogram(model: SheetAudioNet, spec: np.ndarray, hop_frames: int, device: str = "cpu",
                                tempo: float = 1.0) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(window centres in `spec`'s frames, unit vectors) of a recording's spectrogram as the checkpoint
    expects it: resampled as if played `tempo` × the model's audio_tempo times as fast (model.audio.at_tempo),
    scaled to its audio_level, and embedded every `hop_frames` of the resampled frames."""
    factor = tempo * model.cfg.audio_tempo
    spec = at_tempo(spec, factor)
    if model.cfg.audio_level is not None:  # a recording's loudness says nothing about the piece
        spec = at_level(spec, model.cfg.audio_level)
    centres, vectors = embed_spectrogram(model, spec, hop_frames, device)
    return (centres if factor == 1.0 else np.round(centres * factor).astype(np.int64)), vectors


def embed_spectrogram_per_window(model: SheetAudioNet, spec: np.ndarray, hop_frames: int,
                                 device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    cfg = model.cfg
    centres = window_centres(len(spec), cfg.audio_window, cfg.stride, hop_frames)
    crops = crop_windows(np.asarray(spec, np.float32).T, centres, cfg.audio_crop[1])
    return centres, embed_excerpts(model, crops, device)
