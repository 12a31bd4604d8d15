"""On a machine with CUDA, the embedder gives the CPU's vectors (skipped where there is no GPU, as in CI)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model.checkpoint import DEFAULT_WEIGHTS, load, pick_device
from model.embed import embed_spectrogram, embed_strip

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
COSINE = 0.9999  # cuDNN's convolution algorithms sum in another order than the CPU's; the vectors may not move


def test_auto_picks_the_gpu() -> None:
    assert pick_device("auto") == "cuda"


@pytest.mark.parametrize("pathway", ["sheet", "audio"])
def test_cuda_embeds_like_the_cpu(pathway: str) -> None:
    from benchmarks.runtime import synthetic_spectrogram, synthetic_strip

    rng = np.random.default_rng(7)
    embed, data, hop = ((embed_strip, synthetic_strip(3000, rng), 16) if pathway == "sheet"
                        else (embed_spectrogram, synthetic_spectrogram(400, rng), 8))  # fmt: skip
    cpu_centres, cpu = embed(load(DEFAULT_WEIGHTS, "cpu")[0], data, hop, "cpu")
    gpu_centres, gpu = embed(load(DEFAULT_WEIGHTS, "cuda")[0], data, hop, "cuda")
    np.testing.assert_array_equal(gpu_centres, cpu_centres)
    assert float(np.sum(cpu * gpu, axis=1).min()) > COSINE
