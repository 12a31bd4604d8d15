"""CPU runtimes of the dense trunk: every one kept gives the baseline's features (`sheetid bench runtime`)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from benchmarks.runtime import make_variants, phase_inputs, random_model, run_variant, workloads
from model.embed import embed_spectrogram, embed_strip
from model.nets import SheetAudioNet

TOLERANCE = 1e-4  # max abs difference of column features (values of order 1) from the eager trunk's
KEPT = ("fused", "fused-1thread", "onnxruntime")  # the variants worth keeping (the others lose on 2 cores)


@pytest.fixture(scope="module")
def model() -> SheetAudioNet:
    return random_model(seed=3)  # BatchNorm statistics away from 0 / 1, so a wrong fold shows


@pytest.mark.parametrize("name", KEPT)
@pytest.mark.parametrize("pathway", ["sheet", "audio"])
def test_kept_runtimes_give_the_eager_trunks_column_features(model: SheetAudioNet, name: str, pathway: str) -> None:
    if name == "onnxruntime":
        pytest.importorskip("onnxruntime")
        pytest.importorskip("onnx")
    work = next(w for w in workloads(model, sheet_width=700, query_frames=90) if w.pathway == pathway)
    inputs = phase_inputs(work, model.cfg.stride)
    assert len(inputs) == (1 if pathway == "sheet" else 2)  # hop 16 px: one grid phase; hop 8 frames: two
    variants, skipped = make_variants(getattr(model, pathway), ("eager", name), threads=2, log=lambda _: None)
    assert not skipped
    reference, cols = (run_variant(v, inputs, model.cfg.stride) for v in variants)
    for a, b in zip(cols, reference, strict=True):
        assert a.shape == b.shape and b.abs().max() > 0.1
        assert (a - b).abs().max() <= TOLERANCE


def test_onnxruntime_runtime_embeds_strips_and_spectrograms_like_torch(model: SheetAudioNet) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    rng = np.random.default_rng(5)
    strip = (rng.random((model.cfg.strip_height, 900)) < 0.1).astype(np.uint8) * 255
    spec = rng.random((140, model.cfg.n_bins)).astype(np.float32)
    for embed, data, hop in ((embed_strip, strip, 16), (embed_spectrogram, spec, 8)):
        centres, ref = embed(model, data, hop)
        ort_centres, vectors = embed(model, data, hop, runtime="onnxruntime")
        np.testing.assert_array_equal(ort_centres, centres)
        np.testing.assert_allclose(vectors, ref, atol=TOLERANCE)


def test_an_unknown_runtime_or_a_gpu_onnxruntime_is_refused(model: SheetAudioNet) -> None:
    strip = np.zeros((model.cfg.strip_height, 300), np.uint8)
    with pytest.raises(ValueError, match="runtime"):
        embed_strip(model, strip, 16, runtime="tensorrt")
    with pytest.raises(ValueError, match="CPU only"):
        embed_strip(model, strip, 16, device="cuda", runtime="onnxruntime")


def test_bench_runtime_prints_one_json_line_per_variant_and_bench_alone_runs_the_old_figures(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from benchmarks import speed
    from cli import app

    calls: list[tuple[object, ...]] = []
    monkeypatch.setattr(speed, "run_all", lambda *args, **_: calls.append(args))
    result = CliRunner().invoke(app, ["bench", "runtime", "--variant", "eager", "--variant", "fused", "--rounds", "1",
                                      "--sheet-width", "300", "--query-frames", "60"])  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    figures = [r for r in rows if "variant" in r]
    assert [(r["pathway"], r["variant"]) for r in figures] == [
        ("sheet", "eager"), ("sheet", "fused"), ("audio", "eager"), ("audio", "fused")]  # fmt: skip
    assert all(r["best_s"] > 0 and r["max_abs_diff"] <= TOLERANCE for r in figures)
    assert not calls  # the subcommand alone, not the end-to-end figures
    result = CliRunner().invoke(app, ["bench", "--load-seconds", "0", "--scale", "1000"])
    assert result.exit_code == 0, result.output
    assert len(calls) == 1 and calls[0][2] == [1000] and calls[0][4] == 0.0


def test_bf16_autocast_stays_close_to_float32(model: SheetAudioNet) -> None:
    """Not kept (no native bf16 on the 2-core CPU, slower there), but its vectors must stay usable."""
    work = workloads(model, sheet_width=400, query_frames=60)[0]
    inputs = phase_inputs(work, model.cfg.stride)
    variants, _ = make_variants(model.sheet, ("fused", "bf16"), threads=2, log=lambda _: None)
    (ref,), (cols,) = (run_variant(v, inputs, model.cfg.stride) for v in variants)
    assert cols.dtype == torch.float32
    cosine = torch.nn.functional.cosine_similarity(cols, ref, dim=0)
    assert cosine.min() > 0.99
