"""The one embedder: sheet snippets and audio excerpts → unit vectors in the shared 32-d space.

Everything that turns pixels or sound into vectors goes through here: the indexer (score pages), the
service (query recordings) and the benchmarks. `embed_strip` and `embed_spectrogram` slide a window across
a whole strip or spectrogram and return where each window is centred beside its vector.
"""

from __future__ import annotations

import numpy as np
import torch

from model.audio import cut_excerpts, excerpt_centres
from model.config import ModelConfig
from model.nets import SheetAudioNet
from model.sheet import cut_snippets, snippet_centres

EMBED_DIM = ModelConfig.embed_dim  # size of the shared embedding space (the index and the store use it)
SNIPPET_BATCH = 256  # sheet snippets per forward pass
EXCERPT_BATCH = 512  # audio excerpts per forward pass
WINDOW_CHUNK = 1024  # windows cut at a time from a strip or spectrogram (bounds memory on long inputs)


def _empty() -> np.ndarray:
    return np.zeros((0, EMBED_DIM), np.float32)


@torch.no_grad()
def embed_snippets(model: SheetAudioNet, snippets: np.ndarray, device: str = "cpu") -> np.ndarray:
    """(N, H, W) float32 snippets in [0, 1] (ink high) → (N, 32) float32 unit vectors."""
    out = []
    for start in range(0, len(snippets), SNIPPET_BATCH):
        batch = torch.from_numpy(np.ascontiguousarray(snippets[start : start + SNIPPET_BATCH])).to(device)
        out.append(model.embed_sheet(batch).cpu().numpy())
    return np.concatenate(out).astype(np.float32) if out else _empty()


@torch.no_grad()
def embed_excerpts(model: SheetAudioNet, excerpts: np.ndarray, device: str = "cpu") -> np.ndarray:
    """(N, 92, F) float32 spectrogram excerpts → (N, 32) float32 unit vectors."""
    out = []
    for start in range(0, len(excerpts), EXCERPT_BATCH):
        batch = torch.from_numpy(np.ascontiguousarray(excerpts[start : start + EXCERPT_BATCH])).to(device)
        out.append(model.embed_audio(batch).cpu().numpy())
    return np.concatenate(out).astype(np.float32) if out else _empty()


def embed_strip(model: SheetAudioNet, strip: np.ndarray, hop: int,
                device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Snippets every `hop` px across an unrolled strip ((H, W) uint8, ink = 255) → (centres, vectors)."""
    centres = snippet_centres(strip.shape[1], hop)
    vectors = [embed_snippets(model, cut_snippets(strip, centres[i : i + WINDOW_CHUNK]), device)
               for i in range(0, len(centres), WINDOW_CHUNK)]  # fmt: skip
    return centres, (np.concatenate(vectors) if vectors else _empty())


def embed_spectrogram(model: SheetAudioNet, spec: np.ndarray, hop_frames: int,
                      device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Excerpts every `hop_frames` frames across a (T, 92) spectrogram → (centre frames, vectors)."""
    centres = excerpt_centres(len(spec), hop_frames)
    vectors = [embed_excerpts(model, cut_excerpts(spec, centres[i : i + WINDOW_CHUNK]), device)
               for i in range(0, len(centres), WINDOW_CHUNK)]  # fmt: skip
    return centres, (np.concatenate(vectors) if vectors else _empty())
