"""`sheetid eval ...`, `sheetid bench [runtime]`, `sheetid demo-library`: the benchmark commands (mounted by cli.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

DATASET = Path("data/dataset")  # default dataset folder, relative to the working directory
EVAL_LIBRARY = Path("data/corpus-library")  # the benchmarks' own library: every corpus piece's PDF

eval_app = typer.Typer(no_args_is_help=True, help="Benchmarks that print the figures we report.")


def _log(message: str) -> None:
    typer.echo(message, err=True)


@eval_app.command("snippets")
def eval_snippets(
    dataset: Annotated[Path, typer.Option(help="dataset folder")] = DATASET,
    weights: Annotated[Path | None, typer.Option(help="checkpoint (default: shipped)")] = None,
    split: Annotated[str, typer.Option(help="test | test-chorales | validation")] = "test",
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Table-2 protocol: rank each query's counterpart among all snippets of the split."""
    from benchmarks.snippets import evaluate_checkpoint

    version, result = evaluate_checkpoint(weights, dataset, split)
    if as_json:
        typer.echo(json.dumps(result))
        return
    typer.echo(f"model {version}, split {split}, {result['candidates']} candidates")
    for direction in ("audio_to_sheet", "sheet_to_audio"):
        m = result[direction]
        typer.echo(f"{direction:15s} R@1 {m['R@1']:6.2f}  R@10 {m['R@10']:6.2f}  R@25 {m['R@25']:6.2f}  MR {m['MR']}")


@eval_app.command("identify")
def eval_identify(
    dataset: Annotated[Path, typer.Option(help="dataset folder")] = DATASET,
    library: Annotated[Path, typer.Option(help="library folder (built on first use)")] = EVAL_LIBRARY,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Table-3 protocol: whole recordings and 10-s excerpts of test pieces against the full corpus library."""
    from benchmarks.identify import evaluate_identify
    from indexer.library import open_library

    result = evaluate_identify(open_library(library), dataset, log=_log)
    typer.echo(json.dumps(result) if as_json else json.dumps(result, indent=1))


@eval_app.command("calibrate")
def eval_calibrate(
    dataset: Annotated[Path, typer.Option(help="dataset folder")] = DATASET,
    library: Annotated[Path, typer.Option(help="library folder (built on first use)")] = EVAL_LIBRARY,
) -> None:
    """Fit the confidence and the no-match threshold on the validation split; writes calibration.json."""
    from benchmarks.calibrate import calibrate
    from indexer.library import open_library

    typer.echo(json.dumps(calibrate(open_library(library), dataset, log=_log)))


@eval_app.command("systems")
def eval_systems(
    dataset: Annotated[Path, typer.Option(help="dataset folder")] = DATASET,
    split: Annotated[list[str] | None, typer.Option("--split", help="splits (default: test)")] = None,
    engraver: Annotated[str, typer.Option(help="verovio (the data engine's PDFs) or musescore (MuseScore 3)")] = (
        "verovio"
    ),
) -> None:
    """Staff-system detection precision / recall (IoU ≥ 0.8) on verovio or MuseScore 3 PDFs."""
    if engraver == "musescore":
        from benchmarks.engravers import evaluate_musescore

        results = [evaluate_musescore(s, log=_log) for s in split or ["test"]]
        typer.echo(json.dumps(results[0] if len(results) == 1 else results))
    elif engraver == "verovio":
        from benchmarks.systems import evaluate_systems

        typer.echo(json.dumps(evaluate_systems(dataset, tuple(split or ["test"]))))
    else:
        raise typer.BadParameter("engraver is verovio or musescore")


@eval_app.command("align")
def eval_align(
    dataset: Annotated[Path, typer.Option(help="dataset folder")] = DATASET,
    library: Annotated[Path, typer.Option(help="library folder (built on first use)")] = EVAL_LIBRARY,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Median alignment error (page widths) on test pieces, against the linear baseline."""
    from benchmarks.align import evaluate_align
    from indexer.library import open_library

    result = evaluate_align(open_library(library), dataset, log=_log)
    typer.echo(json.dumps(result) if as_json else json.dumps(result, indent=1))


bench_app = typer.Typer(
    invoke_without_command=True, help="Speed figures; `sheetid bench` alone prints the end-to-end ones."
)


@bench_app.callback()
def bench_cmd(
    ctx: typer.Context,
    dataset: Annotated[Path, typer.Option(help="dataset folder (PDFs and recordings)")] = DATASET,
    library: Annotated[Path, typer.Option(help="library to query (e.g. the eval library)")] = EVAL_LIBRARY,
    scale: Annotated[list[int] | None, typer.Option(help="synthetic vector counts for the search benchmark")] = None,
    clients: Annotated[int, typer.Option(help="parallel HTTP clients in the load benchmark")] = 4,
    load_seconds: Annotated[float, typer.Option(help="length of the load benchmark (0 skips it)")] = 30.0,
) -> None:
    """Print speed figures: 10-page PDF indexing, identification latency, HTTP load, FAISS search at scale."""
    if ctx.invoked_subcommand is not None:  # `sheetid bench runtime`: only the subcommand's figures
        return
    from benchmarks.speed import run_all

    run_all(dataset, library, scale, clients, load_seconds, emit=lambda figure: typer.echo(json.dumps(figure)))


@bench_app.command("runtime")
def bench_runtime(
    variant: Annotated[list[str] | None, typer.Option("--variant", help="variants to run (default: all)")] = None,
    rounds: Annotated[int, typer.Option(help="timed rounds; the best is reported")] = 5,
    threads: Annotated[int, typer.Option(help="torch / ONNX Runtime threads")] = 2,
    sheet_width: Annotated[int, typer.Option(help="sheet strip width, px (20,000 ≈ 10 pages)")] = 20_000,
    query_frames: Annotated[int, typer.Option(help="query spectrogram frames (600 = 30 s)")] = 600,
    weights: Annotated[Path | None, typer.Option(help="checkpoint (default: random weights)")] = None,
) -> None:
    """Dense trunk on CPU: eager, BatchNorm-folded channels-last, 1 thread, torch.compile, ONNX Runtime, bf16."""
    from benchmarks.runtime import VARIANTS, run_runtime_bench

    run_runtime_bench(tuple(variant or VARIANTS), rounds, threads, sheet_width, query_frames, weights,
                      emit=lambda figure: typer.echo(json.dumps(figure)), log=_log)  # fmt: skip


def demo_library_cmd(
    dataset: Annotated[Path, typer.Option(help="dataset folder")] = DATASET,
    split: Annotated[list[str] | None, typer.Option("--split", help="splits to index (default: test)")] = None,
) -> None:
    """Index the dataset's test-split PDFs into SHEETID_DATA_DIR and write example recordings."""
    from benchmarks.demo import build_demo
    from indexer.library import open_library

    for e in build_demo(open_library(), dataset, tuple(split or ["test"]), log=typer.echo):
        typer.echo(f"example recording: {e}")
