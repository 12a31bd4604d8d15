"""`sheetid bench runtime`: the dense embedder's conv trunk under each CPU runtime, for both pathways.

Workloads are the two the targets are about: a sheet strip of a 10-page score (90 × 20,000 px, hop 16 px,
one grid phase) and a 30-s query spectrogram (92 bins × 600 frames, hop 8 frames, two grid phases). Each
variant computes the column features of every grid phase exactly as model/embed.py does (same padding,
same tiles, via `model.embed._columns`); the variants are timed in interleaved rounds, so a change of load
on a shared machine hits them alike, and the best round is reported.

Variants: 1 `eager` the trunk as `Pathway.columns` runs it (BatchNorm unfused, NCHW): the baseline;
2 `fused` `inference_trunk` (BatchNorm folded, channels-last), what `embed_strip` runs; 3 `fused-1thread`;
4 `compiled` torch.compile of (2) (inductor; compile time reported apart); 5 `onnxruntime` (2) exported to
ONNX, CPU provider; 6 `bf16` (2) under bfloat16 autocast. Each reports the max abs difference of its
column features from the baseline's and the lowest cosine of its window vectors (pooled and projected as
in the embedder) to the baseline's, so a faster variant that changes the numbers shows.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from model.config import ModelConfig
from model.embed import HALO_COLS, _columns, inference_trunk, window_centres
from model.nets import Pathway, SheetAudioNet

VARIANTS = ("eager", "fused", "fused-1thread", "compiled", "onnxruntime", "bf16")
SHEET_WIDTH = 20_000  # px: about ten pages of unrolled systems
QUERY_FRAMES = 600  # 30 s at 20 frames per second
SHEET_HOP = 16  # px, the indexer's hop
QUERY_HOP = 8  # frames, the identifier's hop: two grid phases


@dataclass
class Workload:
    pathway: str  # "sheet" or "audio"
    image: np.ndarray  # (H, W) float32, the network's input scale
    hop: int
    window_cols: int


@dataclass
class Variant:
    name: str
    trunk: nn.Module | Callable[[torch.Tensor], torch.Tensor]
    threads: int
    autocast: bool = False
    setup_s: float = 0.0  # export / session creation time, outside the timed rounds


def random_model(seed: int = 0, steps: int = 4) -> SheetAudioNet:
    """The shipped configuration with random weights, its BatchNorm statistics set by training-mode forwards
    on synthetic crops (running means and variances of a fresh model are 0 and 1, which folding hides)."""
    torch.manual_seed(seed)
    model = SheetAudioNet(ModelConfig())
    cfg, rng = model.cfg, np.random.default_rng(seed)
    sheet = torch.from_numpy(synthetic_strip(cfg.sheet_crop[1] * 16, rng) / np.float32(255))
    audio = torch.from_numpy(synthetic_spectrogram(cfg.audio_crop[1] * 16, rng).T.copy())
    model.train()
    with torch.no_grad():
        for _ in range(steps):
            model.sheet(sheet.unfold(1, cfg.sheet_crop[1], cfg.sheet_crop[1]).permute(1, 0, 2))
            model.audio(audio.unfold(1, cfg.audio_crop[1], cfg.audio_crop[1]).permute(1, 0, 2))
    return model.eval()


def synthetic_strip(width: int, rng: np.random.Generator) -> np.ndarray:
    """(90, width) uint8, ink 255: five staff lines 4.5 px apart with note-head-sized blobs and stems."""
    cfg = ModelConfig()
    strip = np.zeros((cfg.strip_height, width), np.uint8)
    top = cfg.strip_height // 2 - 9
    for k in range(5):
        strip[int(top + k * cfg.staff_space)] = 255
    for x in rng.integers(0, max(1, width - 6), width // 12):
        y = int(rng.integers(top - 10, top + 28))
        strip[y : y + 4, x : x + 5] = 255
        strip[y - 14 : y, x + 4] = 255
    return strip


def synthetic_spectrogram(frames: int, rng: np.random.Generator) -> np.ndarray:
    """(frames, 92) float32 in the front-end's log10(1 + magnitude) range."""
    return np.log10(1 + rng.gamma(0.5, 2.0, (frames, ModelConfig().n_bins))).astype(np.float32)


def workloads(model: SheetAudioNet, sheet_width: int, query_frames: int, seed: int = 1) -> list[Workload]:
    rng, cfg = np.random.default_rng(seed), model.cfg
    strip = synthetic_strip(sheet_width, rng) / np.float32(255)
    spec = synthetic_spectrogram(query_frames, rng).T.copy()
    return [Workload("sheet", strip, SHEET_HOP, cfg.sheet_window_cols),
            Workload("audio", spec, QUERY_HOP, cfg.audio_window_cols)]  # fmt: skip


def phase_inputs(work: Workload, stride: int) -> list[torch.Tensor]:
    """The padded, phase-shifted inputs model.embed._dense builds: one per grid phase of the windows."""
    h, w = work.image.shape
    window = work.window_cols * stride
    starts = window_centres(w, window, stride, work.hop) - window // 2
    pad = stride * (work.window_cols + HALO_COLS)
    total = pad + w + pad
    total += -total % stride
    out = []
    for phase in np.unique(starts % stride):
        shifted = torch.zeros((h, total))
        shifted[:, pad - int(phase) : pad - int(phase) + w] = torch.from_numpy(work.image)
        out.append(shifted)
    return out


def window_vectors(cols: torch.Tensor, window_cols: int, project: Callable[[torch.Tensor], torch.Tensor]) -> np.ndarray:
    """Unit vectors of every window of `window_cols` consecutive columns (pooled as the embedder pools)."""
    csum = torch.nn.functional.pad(cols.double().cumsum(dim=1), (1, 0))
    pooled = (csum[:, window_cols:] - csum[:, :-window_cols]) / window_cols
    return project(pooled.T.float()).numpy()


@contextlib.contextmanager
def _threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@torch.no_grad()
def run_variant(variant: Variant, inputs: list[torch.Tensor], stride: int) -> list[torch.Tensor]:
    """Column features (D, n) of every phase input under the variant."""
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if variant.autocast else contextlib.nullcontext()
    with _threads(variant.threads), autocast:
        return [_columns(variant.trunk, x, stride).float() for x in inputs]  # type: ignore[arg-type]


def make_variants(pathway: Pathway, names: tuple[str, ...], threads: int, log: Callable[[str], None]) -> tuple[
        list[Variant], list[dict[str, Any]]]:  # fmt: skip
    """The requested variants that can run here, and a JSON line for each one that cannot."""
    variants, skipped = [], []
    eager = nn.Sequential(pathway.blocks, pathway.head).eval()  # Pathway.columns without its height mean
    fused = inference_trunk(pathway)
    for name in names:
        t0 = time.perf_counter()
        try:
            if name == "eager":
                variants.append(Variant(name, eager, threads))
            elif name == "fused":
                variants.append(Variant(name, fused, threads))
            elif name == "fused-1thread":
                variants.append(Variant(name, fused, 1))
            elif name == "compiled":
                variants.append(Variant(name, torch.compile(inference_trunk(pathway)), threads))
            elif name == "onnxruntime":
                from model.onnx_trunk import OnnxTrunk

                variants.append(Variant(name, OnnxTrunk(pathway, threads), threads, setup_s=time.perf_counter() - t0))
            elif name == "bf16":
                variants.append(Variant(name, fused, threads, autocast=True))
            else:
                raise ValueError(f"unknown variant {name!r}; known: {', '.join(VARIANTS)}")
        except ImportError as e:
            log(f"{name}: skipped ({e})")
            skipped.append({"variant": name, "skipped": f"{type(e).__name__}: {e}"})
    return variants, skipped


def bench_pathway(model: SheetAudioNet, work: Workload, names: tuple[str, ...], rounds: int, threads: int,
                  log: Callable[[str], None]) -> list[dict[str, Any]]:  # fmt: skip
    """One JSON-ready result per variant: best and median wall time over `rounds` interleaved rounds."""
    pathway = model.sheet if work.pathway == "sheet" else model.audio
    project = model.project_sheet if work.pathway == "sheet" else model.project_audio
    stride = model.cfg.stride
    inputs = phase_inputs(work, stride)
    variants, results = make_variants(pathway, names, threads, log)
    base = next((v for v in variants if v.name == "eager"), None) or Variant("eager", nn.Sequential(
        pathway.blocks, pathway.head).eval(), threads)  # fmt: skip
    reference = run_variant(base, inputs, stride)
    ref_vectors = np.concatenate([window_vectors(c, work.window_cols, project) for c in reference])
    first: dict[str, float] = {}
    errors: dict[str, str] = {}
    diffs: dict[str, tuple[float, float]] = {}
    for v in variants:  # first call: warm-up, and the compile for torch.compile
        t0 = time.perf_counter()
        try:
            cols = run_variant(v, inputs, stride)
        except Exception as e:  # noqa: BLE001 - a runtime that fails here is a result to report, not a crash
            errors[v.name] = f"{type(e).__name__}: {str(e)[:500]}"
            log(f"{work.pathway} {v.name}: failed ({errors[v.name]})")
            continue
        first[v.name] = time.perf_counter() - t0
        vectors = np.concatenate([window_vectors(c, work.window_cols, project) for c in cols])
        diffs[v.name] = (max(float((a - b).abs().max()) for a, b in zip(cols, reference, strict=True)),
                         float((vectors * ref_vectors).sum(axis=1).min()))  # fmt: skip
        log(f"{work.pathway} {v.name}: first call {first[v.name]:.2f} s")
    live = [v for v in variants if v.name in first]
    times: dict[str, list[float]] = {v.name: [] for v in live}
    cpu: dict[str, list[float]] = {v.name: [] for v in live}  # process CPU time, all threads: steadier than
    for r in range(rounds):  # wall time on a shared machine, and it shows what extra threads cost
        for v in live:
            t0, c0 = time.perf_counter(), time.process_time()
            run_variant(v, inputs, stride)
            times[v.name].append(time.perf_counter() - t0)
            cpu[v.name].append(time.process_time() - c0)
        log(f"{work.pathway} round {r + 1}/{rounds}: " + ", ".join(f"{k} {t[-1]:.3f}" for k, t in times.items()))
    best = {k: min(t) for k, t in times.items()}
    shape = list(work.image.shape)
    for v in variants:
        row: dict[str, Any] = {"pathway": work.pathway, "variant": v.name, "input": shape, "hop": work.hop,
                               "phases": len(inputs), "threads": v.threads}  # fmt: skip
        if v.name in errors:
            row["error"] = errors[v.name]
        else:
            row |= {"best_s": round(best[v.name], 4), "median_s": round(statistics.median(times[v.name]), 4),
                    "cpu_s": round(min(cpu[v.name]), 4), "rounds": rounds, "max_abs_diff": diffs[v.name][0],
                    "min_cosine": round(diffs[v.name][1], 6)}  # fmt: skip
            for ref in ("eager", "fused"):
                if ref in best:
                    row[f"speedup_vs_{ref}"] = round(best[ref] / best[v.name], 2)
                    row[f"cpu_ratio_vs_{ref}"] = round(min(cpu[ref]) / min(cpu[v.name]), 2)
            if v.name == "compiled":
                row["compile_s"] = round(first[v.name] - best[v.name], 2)  # first call less a steady one
            if v.setup_s:
                row["export_s"] = round(v.setup_s, 2)
        results.append(row)
    return results


def cpu_supports_bf16() -> bool:
    """Native bfloat16 arithmetic (AVX512-BF16 or AMX); without it oneDNN emulates and bf16 is no win."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def run_runtime_bench(names: tuple[str, ...], rounds: int, threads: int, sheet_width: int, query_frames: int,
                      weights: Path | None, emit: Callable[[dict[str, Any]], None],
                      log: Callable[[str], None]) -> None:  # fmt: skip
    """Emit one JSON-ready figure per pathway and variant (and one line describing the setup)."""
    if weights is None:
        model, version = random_model(), "random weights, BatchNorm statistics from synthetic crops"
    else:
        from model.checkpoint import load

        model, version, _ = load(weights)
    torch.set_num_threads(threads)
    emit({"bench": "runtime", "model": version, "torch": torch.__version__, "threads": threads,
          "cpu_bf16": cpu_supports_bf16(), "interop_threads": torch.get_num_interop_threads()})  # fmt: skip
    for work in workloads(model, sheet_width, query_frames):
        for row in bench_pathway(model, work, names, rounds, threads, log):
            emit(row)
