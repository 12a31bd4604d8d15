"""`sheetid eval ...`, `sheetid bench [runtime]` and `sheetid demo-library`: the benchmark commands
(cli.py mounts them)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

DATASET = Path("data/dataset")  # default dataset folder, relative to the working directory
EVAL_LIBRARY = Path("data/corpus-library")  # the benchmarks' own library: every corpus piece's PDF

eval_app = typer.Typer(no_args_is_help=True, help="Benchmarks that print the figures we report.")


def _log(message: str) -> None:
    typer.echo(message, err=True)


@eval_app.command("library")
def eval_library(
    dataset: Annotated[Path, typer.Option(help="dataset folder")] = DATASET,
    library: Annotated[Path, typer.Option(help="library folder")] = EVAL_LIBRARY,
) -> None:
    """Index every built dataset piece's PDF into the benchmarks' library (resumable; the evals do it too)."""
    from benchmarks.dataset_library import index_dataset
    from indexer.library import open_library

    typer.echo(json.dumps({"pieces": len(index_dataset(open_library(library), dataset, log=_log))}))


@eval_app.command("snippets")
def eval_snippets(
    dataset: Annotated[Path, typer.Option(help="dataset folder")] = DATASET,
    weights: Annotated[Path | None, typer.Option(help="checkpoint (default: shipped)")] = None,
    split: Annotated[str, typer.Option(help="test | test-chorales | validation")] = "test",
    widths: Annotated[str | None, typer.Option(help="comma-separated strip width factors whose snippet vectors "
                                               "are averaged (test-time readings; default: as engraved)")] = None,
    tempi: Annotated[str | None, typer.Option(help="comma-separated tempo factors whose excerpt vectors are "
                                              "averaged (test-time readings; default: as played)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Table-2 protocol: rank each query's counterpart among all snippets of the split."""
    from benchmarks.snippets import evaluate_checkpoint, evaluate_readings

    if widths or tempi:
        version, result = evaluate_readings(weights, dataset, split, _factors("--widths", widths, (1.0,)),
                                            _factors("--tempi", tempi, (1.0,)))  # fmt: skip
    else:
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
    split: Annotated[str, typer.Option(help="validation (tune) | test (test and test-chorales; report once)")] = (
        "test"
    ),
    robust: Annotated[Path | None, typer.Option(help="robust query sets (default: <dataset>/robust)")] = None,
    pdfs: Annotated[str, typer.Option(help="index the queried pieces from clean | scan | musescore | lilypond "
                                      "PDFs (give each its own --library)")] = "clean",
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Table-3 protocol: whole recordings and 10-s excerpts, plain and robust, against the full corpus library."""
    from benchmarks.identify import evaluate_identify
    from benchmarks.pdf_sources import PDF_SOURCES
    from indexer.library import open_library

    if split not in ("validation", "test"):
        raise typer.BadParameter("split is validation or test")
    if pdfs not in PDF_SOURCES:
        raise typer.BadParameter(f"--pdfs is one of {', '.join(PDF_SOURCES)}")
    result = evaluate_identify(open_library(library), dataset, split, robust, pdfs=pdfs, log=_log)
    typer.echo(json.dumps(result) if as_json else json.dumps(result, indent=1))


@eval_app.command("scaling")
def eval_scaling(
    dataset: Annotated[Path, typer.Option(help="dataset folder")] = DATASET,
    library: Annotated[Path, typer.Option(help="library folder (built on first use)")] = EVAL_LIBRARY,
    draws: Annotated[int, typer.Option(help="random sub-libraries per size and query")] = 2,
) -> None:
    """Top-1 and the no-match halves of validation queries against sub-libraries of 16 → 434 pieces."""
    from benchmarks.scaling import evaluate_scaling
    from indexer.library import open_library

    typer.echo(json.dumps(evaluate_scaling(open_library(library), dataset, draws=draws, log=_log)))


@eval_app.command("ranking")
def eval_ranking(
    dataset: Annotated[Path, typer.Option(help="dataset folder")] = DATASET,
    library: Annotated[Path, typer.Option(help="library folder (built on first use)")] = EVAL_LIBRARY,
    excerpts: Annotated[int, typer.Option(help="random 10-s excerpts per recording")] = 5,
    setting: Annotated[list[str] | None, typer.Option(help="compare the shipped settings with FIELD=VALUE "
                                                      "(a Settings field, JSON or text value); repeatable")] = None,
) -> None:
    """Top-1 on validation under votes alone, temporal consistency alone, and both (the default); with
    --setting, the shipped settings against each FIELD=VALUE instead."""
    from benchmarks.ranking import RANKINGS, evaluate_ranking
    from indexer.library import open_library

    rankings = RANKINGS
    if setting:
        rankings = {"shipped": {}} | {text: _setting(text) for text in setting}
    typer.echo(json.dumps(evaluate_ranking(open_library(library), dataset, excerpts=excerpts, log=_log,
                                           rankings=rankings)))  # fmt: skip


def _setting(text: str) -> dict[str, object]:
    """{field: value} of a FIELD=VALUE option as Settings validates it (the value read as JSON where it parses)."""
    from indexer.settings import Settings

    field, sep, raw = text.partition("=")
    if not sep or field not in Settings.model_fields:
        raise typer.BadParameter(f"--setting {text!r}: FIELD=VALUE with a Settings field")
    try:
        value: object = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    try:
        return {field: getattr(Settings.model_validate({field: value}), field)}
    except ValueError as err:
        raise typer.BadParameter(f"--setting {text!r}: {err}") from err


@eval_app.command("hubness")
def eval_hubness(
    dataset: Annotated[Path, typer.Option(help="dataset folder (needs training renditions)")] = DATASET,
    library: Annotated[Path, typer.Option(help="library folder (built on first use)")] = EVAL_LIBRARY,
    beta: Annotated[list[float] | None, typer.Option(help="hub penalties to compare; repeatable")] = None,
) -> None:
    """Top-1 on validation with a per-snippet hubness penalty (CSLS-like) at several strengths; 0 = shipped."""
    from benchmarks.hubness import BETAS, evaluate_hubness
    from indexer.library import open_library

    betas = tuple(beta) if beta else BETAS
    typer.echo(json.dumps(evaluate_hubness(open_library(library), dataset, betas=betas, log=_log)))


@eval_app.command("robust-factors")
def eval_robust_factors(
    dataset: Annotated[Path, typer.Option(help="dataset folder")] = DATASET,
    library: Annotated[Path, typer.Option(help="library folder (built on first use)")] = EVAL_LIBRARY,
    match_level: Annotated[bool, typer.Option(help="scale every rendition to the clean one's RMS")] = False,
) -> None:
    """Validation pieces played with one robust change at a time (room, synthesizer, tempo, pedal): top-1
    of whole recordings per condition, to see which change costs what."""
    from benchmarks.robust_factors import evaluate_factors
    from indexer.library import open_library

    typer.echo(json.dumps(evaluate_factors(open_library(library), dataset, match_level, log=_log)))


@eval_app.command("voices")
def eval_voices(
    dataset: Annotated[Path, typer.Option(help="dataset folder")] = DATASET,
    pieces: Annotated[int | None, typer.Option(help="only the first N validation pieces")] = None,
) -> None:
    """Each synthesized voice (training voices, the robust set's timidity + freepats before and after its
    stuck-note fix) against the evaluation queries' piano: median frame cosine per validation piece."""
    from benchmarks.voices import evaluate_voices

    typer.echo(json.dumps(evaluate_voices(dataset, pieces, log=_log)))


@eval_app.command("robust-queries")
def eval_robust_queries(
    split: Annotated[str, typer.Option(help="validation | test (test and test-chorales pieces)")] = "validation",
    dataset: Annotated[Path, typer.Option(help="dataset folder (its built pieces are rendered)")] = DATASET,
    out: Annotated[Path | None, typer.Option(help="query-set folder (default: <dataset>/robust)")] = None,
) -> None:
    """Build the robust query set: repeats played, tempo drift, pedal, timidity+freepats, room and noise."""
    from benchmarks.robust import SPLIT_GROUPS, build_robust, summarize

    if split not in SPLIT_GROUPS:
        raise typer.BadParameter("split is validation or test")
    manifest = build_robust(dataset, split, out, log=_log)
    typer.echo(json.dumps(summarize(manifest) | {"last_build_seconds": manifest["last_build_seconds"]}))


@eval_app.command("calibrate")
def eval_calibrate(
    dataset: Annotated[Path, typer.Option(help="dataset folder")] = DATASET,
    library: Annotated[Path, typer.Option(help="library folder (built on first use)")] = EVAL_LIBRARY,
    rows: Annotated[Path | None, typer.Option(help="also keep every query's features and outcome here (.npz)")] = None,
) -> None:
    """Fit the confidence and the no-match threshold on the validation split (plain and, where built, robust
    recordings); writes calibration.json."""
    from benchmarks.calibrate import calibrate
    from indexer.library import open_library

    typer.echo(json.dumps(calibrate(open_library(library), dataset, log=_log, rows_out=rows)))


@eval_app.command("systems")
def eval_systems(
    dataset: Annotated[Path, typer.Option(help="dataset folder")] = DATASET,
    split: Annotated[list[str] | None, typer.Option("--split", help="splits (default: test)")] = None,
    engraver: Annotated[str, typer.Option(help="verovio (the data engine's PDFs), musescore or lilypond")] = (
        "verovio"
    ),
    degrade: Annotated[str | None, typer.Option(help="'scan': seeded print-and-scan of the verovio PDFs")] = None,
    seed: Annotated[int, typer.Option(help="seed of the scan degradation")] = 0,
) -> None:
    """Staff-system detection precision / recall (IoU ≥ 0.8) on verovio, MuseScore 3 or LilyPond PDFs,
    or on seeded degraded scans of the verovio PDFs (with snippets per piece against the clean PDF's)."""
    splits = split or ["test"]
    if degrade not in (None, "scan"):
        raise typer.BadParameter("degrade is scan")
    if degrade == "scan":
        from benchmarks.scans import evaluate_scans

        typer.echo(json.dumps(evaluate_scans(dataset, tuple(splits), seed=seed, log=_log)))
    elif engraver in ("musescore", "lilypond"):
        from benchmarks.engravers import evaluate_musescore
        from benchmarks.lilypond import evaluate_lilypond

        evaluate = evaluate_musescore if engraver == "musescore" else evaluate_lilypond
        results = [evaluate(s, log=_log) for s in splits]
        typer.echo(json.dumps(results[0] if len(results) == 1 else results))
    elif engraver == "verovio":
        from benchmarks.systems import evaluate_systems

        typer.echo(json.dumps(evaluate_systems(dataset, tuple(splits))))
    else:
        raise typer.BadParameter("engraver is verovio, musescore or lilypond")


def _factors(option: str, text: str | None, default: tuple[float, ...]) -> tuple[float, ...]:
    """Comma-separated positive factors (`text`), or `default` when not given."""
    try:
        factors = tuple(float(t) for t in text.split(",")) if text else default
        if min(factors) <= 0:
            raise ValueError
    except ValueError:
        raise typer.BadParameter(f"{option} is comma-separated positive numbers, e.g. 1.0,0.7") from None
    return factors


@eval_app.command("align")
def eval_align(
    dataset: Annotated[Path, typer.Option(help="dataset folder")] = DATASET,
    library: Annotated[Path, typer.Option(help="library folder (built on first use)")] = EVAL_LIBRARY,
    split: Annotated[str, typer.Option(help="test | validation (tune penalties on validation)")] = "test",
    penalty: Annotated[list[str] | None, typer.Option(
        help="JUMP,START,END[,HUBS[,DOWN[,EXCERPT]]] penalties of the jump-aware alignment; repeat to compare "
        "several")] = None,
    sheet_hop: Annotated[int | None, typer.Option(help="strip px between the cost matrix's sheet columns "
                                                  "(default: the service's)")] = None,
    smooth: Annotated[float | None, typer.Option(help="seconds of the moving average along the path "
                                                 "(default: the service's)")] = None,
    header: Annotated[float | None, typer.Option(help="strip px of each system's header where no time passes "
                                                 "(default: the service's)")] = None,
    tempi: Annotated[str | None, typer.Option(help="comma-separated tempo factors the recording is read at, "
                                              "costs averaged (default: the service's)")] = None,
    widths: Annotated[str | None, typer.Option(help="comma-separated width factors the strip is read at, "
                                               "costs averaged (default: the service's)")] = None,
    wider_after: Annotated[float | None, typer.Option(help="strip px into each system read as engraved only "
                                                      "(default: the service's)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Median alignment error (page widths) and right-system share, global DTW beside the jump-aware
    alignment, on plain renditions, renditions that play repeats, and mid-piece excerpts."""
    from benchmarks.align import evaluate_align
    from indexer.library import open_library
    from service.jumps import Penalties

    try:
        grid = [Penalties(*(float(v) for v in p.split(","))) for p in penalty or []]
    except (TypeError, ValueError):
        raise typer.BadParameter("--penalty is three to six numbers: JUMP,START,END[,HUBS[,DOWN[,EXCERPT]]]") from None
    from service.align import ALIGN_SHEET_HOP, ALIGN_SHEET_WIDTHS, ALIGN_TEMPI, PLACEMENT, WIDER_AFTER_PX

    factors = _factors("--tempi", tempi, ALIGN_TEMPI)
    width_factors = _factors("--widths", widths, ALIGN_SHEET_WIDTHS)
    placement = replace(PLACEMENT, **{k: v for k, v in (("smooth_seconds", smooth), ("header_px", header))
                                      if v is not None})  # fmt: skip
    result = evaluate_align(open_library(library), dataset, split, grid or None,
                            sheet_hop=sheet_hop or ALIGN_SHEET_HOP, placement=placement, tempi=factors,
                            widths=width_factors, wider_after_px=WIDER_AFTER_PX if wider_after is None else wider_after,
                            log=_log)  # fmt: skip
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
    vector_scale: Annotated[list[int] | None, typer.Option(
        help="vector engines at this many synthetic vectors (FAISS HNSW/IVF, embedded Milvus server)")] = None,
    engine: Annotated[list[str] | None, typer.Option(
        help="faiss-hnsw, faiss-ivf, milvus-hnsw, milvus-ivf (default: all)")] = None,
    vectors_only: Annotated[bool, typer.Option("--vectors-only", help="only the --vector-scale figures")] = False,
    nprobe: Annotated[list[int] | None, typer.Option(help="also search FAISS IVF with this nprobe; repeatable")] = None,
    milvus_compaction: Annotated[bool, typer.Option(
        help="let the Milvus server merge sealed segments (off: searches measure the index as first built)")] = True,
) -> None:
    """Print speed figures: 10-page PDF indexing, identification latency, HTTP load, vector search at scale."""
    if ctx.invoked_subcommand is not None:  # `sheetid bench runtime`: only the subcommand's figures
        return
    from benchmarks import vector_scale as engines_bench
    from benchmarks.speed import run_all

    if not vectors_only:
        run_all(dataset, library, scale, clients, load_seconds, emit=lambda figure: typer.echo(json.dumps(figure)))
    for n in vector_scale or []:
        engines_bench.run(n, tuple(engine or engines_bench.ENGINES), log=typer.echo, nprobes=tuple(nprobe or ()),
                          milvus_compaction=milvus_compaction)  # fmt: skip


@bench_app.command("align")
def bench_align(
    dataset: Annotated[Path, typer.Option(help="dataset folder (PDFs and recordings)")] = DATASET,
    library: Annotated[Path, typer.Option(help="library holding the piece (e.g. the eval library)")] = EVAL_LIBRARY,
    piece: Annotated[str | None, typer.Option(help="dataset piece id (default: the first test piece)")] = None,
) -> None:
    """Alignment of one whole recording: read once, at the service's tempi, and at its tempi and widths."""
    from benchmarks.dataset_library import index_dataset, read_recording
    from benchmarks.speed import align_latency
    from indexer.library import open_library
    from model.data import dataset as ds
    from model.data.corpus import load_splits, split_of

    lib = open_library(library)
    pid = piece or ds.built_pieces(dataset, ["test"])[0]
    ids = index_dataset(lib, dataset, [split_of(pid, load_splits())], _log)
    typer.echo(json.dumps(dict(align_latency(lib, ids[pid], read_recording(dataset, pid)), piece=pid)))


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
