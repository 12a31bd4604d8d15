"""`python -m benchmarks.gpu`: the embedder and a training step on CUDA against the CPU, in one run.

The design card says the service embeds on the GPU when one is present (`SHEETID_DEVICE=auto`). This checks
that it gives the CPU's vectors and says what it buys, on a machine that has one (our own machines do not:
the figures in MODEL.md name the machine). It imports torch, numpy and model/ only, so it runs where the
service's other dependencies are not installed.

Workloads: the sheet strip of a score (hop 16 px) and a 30-s query spectrogram (hop 8 frames), both real
when `--inputs` names an .npz written by `--save-inputs` here (a test piece's PDF and recording, through
the indexer's own rasteriser and the model's front-ends), else the synthetic ones of `sheetid bench
runtime`. Then one training step (forward, loss, backward, Adam) of `TrainConfig.batch_size` random pairs.
Each line printed is one JSON figure; timings are the best and median of `--rounds` rounds after a warm-up.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.runtime import QUERY_FRAMES, QUERY_HOP, SHEET_HOP, SHEET_WIDTH
from model.checkpoint import DEFAULT_WEIGHTS, load
from model.config import TrainConfig
from model.embed import embed_spectrogram, embed_strip
from model.nets import SheetAudioNet, ranking_loss


def _timed(fn: Callable[[], object], rounds: int, sync: bool) -> tuple[float, float]:
    fn()  # warm-up: cuDNN picks its kernels, the CPU allocator grows
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        if sync:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times)


def save_inputs(pdf: Path, recording: Path, out: Path, seconds: float = 30.0) -> None:
    """The real workloads: a PDF's unrolled strip and the first `seconds` of a recording's spectrogram."""
    import soundfile

    from indexer.pdf import rasterise
    from indexer.settings import Settings
    from model.audio import SAMPLE_RATE, spectrogram
    from model.sheet import read_page, unroll

    st = Settings()
    pages = rasterise(pdf.read_bytes(), st.pdf_dpi, st.max_page_pixels)
    readings = [read_page(page, i) for i, page in enumerate(pages)]
    strip = unroll([r[0] for r in readings], [s for r in readings for s in r[1]]).image
    wave, rate = soundfile.read(recording, dtype="float32", always_2d=True)
    if rate != SAMPLE_RATE:
        raise ValueError(f"{recording}: {rate} Hz, expected {SAMPLE_RATE}")
    spec = spectrogram(wave.mean(axis=1)[: int(seconds * SAMPLE_RATE)])
    np.savez_compressed(out, strip=strip, spec=spec, pages=len(readings), source=str(pdf))


def inputs(path: Path | None) -> dict[str, np.ndarray]:
    if path is not None:
        data = np.load(path)
        return {"strip": data["strip"], "spec": data["spec"]}
    from benchmarks.runtime import synthetic_spectrogram, synthetic_strip

    rng = np.random.default_rng(1)
    return {"strip": synthetic_strip(SHEET_WIDTH, rng), "spec": synthetic_spectrogram(QUERY_FRAMES, rng)}


def embedding_figures(weights: Path, data: dict[str, np.ndarray], rounds: int) -> list[dict[str, Any]]:
    """Per pathway: do CUDA's vectors equal the CPU's, and how long each takes."""
    cpu_model, version, _ = load(weights, "cpu")
    gpu_model, _, _ = load(weights, "cuda")
    rows = []
    for name, embed, x, hop in (("sheet", embed_strip, data["strip"], SHEET_HOP),
                                ("audio", embed_spectrogram, data["spec"], QUERY_HOP)):  # fmt: skip
        centres, ref = embed(cpu_model, x, hop, "cpu")
        gpu_centres, vectors = embed(gpu_model, x, hop, "cuda")
        cos = np.sum(ref * vectors, axis=1)
        cpu_best, cpu_median = _timed(lambda e=embed, x=x, h=hop: e(cpu_model, x, h, "cpu"), rounds, False)  # type: ignore[misc]
        gpu_best, gpu_median = _timed(lambda e=embed, x=x, h=hop: e(gpu_model, x, h, "cuda"), rounds, True)  # type: ignore[misc]
        rows.append({"figure": "embed", "pathway": name, "model": version, "input": list(x.shape),
                     "windows": len(ref), "same_centres": bool(np.array_equal(centres, gpu_centres)),
                     "max_abs_diff": float(np.abs(ref - vectors).max()), "min_cosine": round(float(cos.min()), 6),
                     "cpu_best_s": round(cpu_best, 4), "cpu_median_s": round(cpu_median, 4),
                     "cuda_best_s": round(gpu_best, 4), "cuda_median_s": round(gpu_median, 4),
                     "speedup": round(cpu_best / gpu_best, 1)})  # fmt: skip
    return rows


def train_step_figure(weights: Path, rounds: int) -> dict[str, Any]:
    """One hinge-loss training step of a full batch on each device (random crops: the network's cost only)."""
    train = TrainConfig()
    batch = train.batch_size
    out: dict[str, Any] = {"figure": "train_step", "batch": batch}
    for device in ("cpu", "cuda"):
        model, _, _ = load(weights, device)
        model.train()
        cfg = model.cfg
        gen = torch.Generator(device="cpu").manual_seed(0)
        sheet = torch.rand((batch, *cfg.sheet_crop), generator=gen).to(device)
        audio = torch.rand((batch, *cfg.audio_crop), generator=gen).to(device)
        optimiser = torch.optim.Adam(model.parameters(), lr=1e-4)

        def step(m: SheetAudioNet = model, o: torch.optim.Optimizer = optimiser, s: torch.Tensor = sheet,
                 a: torch.Tensor = audio) -> None:  # fmt: skip
            x, y = m(s, a)
            loss = ranking_loss(x, y, train.margin)
            o.zero_grad(set_to_none=True)
            loss.backward()
            o.step()

        best, median = _timed(step, rounds, device == "cuda")
        out[f"{device}_best_s"], out[f"{device}_median_s"] = round(best, 4), round(median, 4)
    out["speedup"] = round(out["cpu_best_s"] / out["cuda_best_s"], 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS)
    parser.add_argument("--inputs", type=Path, help="an .npz from --save-inputs (default: synthetic workloads)")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="CPU threads for torch")
    parser.add_argument("--save-inputs", nargs=3, type=Path, metavar=("PDF", "RECORDING", "OUT"),
                        help="write the real workloads and stop (run where the indexer's dependencies are)")
    args = parser.parse_args()
    if args.save_inputs:
        save_inputs(*args.save_inputs)
        return
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: nothing to compare")
    torch.set_num_threads(args.threads)
    print(json.dumps({"bench": "gpu", "device": torch.cuda.get_device_name(0), "torch": torch.__version__,
                      "cpu_threads": args.threads, "inputs": str(args.inputs or "synthetic")}), flush=True)  # fmt: skip
    for row in embedding_figures(args.weights, inputs(args.inputs), args.rounds):
        print(json.dumps(row), flush=True)
    print(json.dumps(train_step_figure(args.weights, args.rounds)), flush=True)


if __name__ == "__main__":
    main()
