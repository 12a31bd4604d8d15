"""`sheetid` command line: thin wrappers that parse arguments and call model/, indexer/ and service/."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    help="Identify and follow sheet music from audio.",
)
data_app = typer.Typer(no_args_is_help=True, help="Build the training / evaluation dataset.")
eval_app = typer.Typer(no_args_is_help=True, help="Benchmarks that print the figures we report.")
app.add_typer(data_app, name="data")
app.add_typer(eval_app, name="eval")

DATASET = Path("data/dataset")  # default dataset folder, relative to the working directory


@data_app.command("splits")
def data_splits() -> None:
    """Recompute the committed split file from the corpus (deterministic)."""
    from model.data.corpus import SPLITS_FILE, compute_splits

    splits = compute_splits()
    SPLITS_FILE.write_text(json.dumps(splits, indent=1) + "\n")
    typer.echo(json.dumps({k: len(v) for k, v in splits.items()}))


@data_app.command("build")
def data_build(
    only: Annotated[list[str] | None, typer.Option("--only", help="piece id or corpus path; repeatable")] = None,
    split: Annotated[list[str] | None, typer.Option("--split", help="build only these splits; repeatable")] = None,
    out: Annotated[Path, typer.Option(help="dataset folder")] = DATASET,
    workers: Annotated[int, typer.Option(help="parallel worker processes")] = 2,
) -> None:
    """Engrave, synthesize and store every piece of the split file (resumable)."""
    from model.data.build import build, summarize

    if split:
        from model.data.corpus import load_splits

        splits = load_splits()
        only = (only or []) + [pid for name in split for pid in splits[name]]
    manifest = build(out, only=only, workers=workers, log=typer.echo)
    typer.echo(json.dumps({"splits": summarize(manifest), "failures": sorted(manifest["failures"]),
                           "build_seconds": manifest.get("build_seconds")}, indent=1))  # fmt: skip


@data_app.command("show")
def data_show(
    piece: str,
    out: Annotated[Path, typer.Option(help="PNG to write")] = Path("figure2.png"),
    dataset: Annotated[Path, typer.Option(help="dataset folder")] = DATASET,
    n: Annotated[int, typer.Option(help="number of pairs")] = 4,
) -> None:
    """Write a Figure-2 style PNG: sheet snippets beside their spectrogram excerpts."""
    from model.data.figure import figure2

    figure2(dataset, piece, out, n)
    typer.echo(str(out))


@app.command("train")
def train_cmd(
    dataset: Annotated[Path, typer.Option(help="dataset folder")] = DATASET,
    out: Annotated[Path, typer.Option(help="checkpoint to write")] = Path("model/weights/sheetid.pt"),
    minutes: Annotated[float, typer.Option(help="wall-clock budget")] = 45.0,
    snapshot_minutes: Annotated[float | None, typer.Option(help="also save the weights reached by then")] = None,
    no_augment: Annotated[bool, typer.Option("--no-augment", help="ablation: no augmentation")] = False,
    steps_per_epoch: Annotated[int, typer.Option(help="steps between validations")] = 200,
    max_epochs: Annotated[int | None, typer.Option(help="stop after this many epochs")] = None,
    seed: Annotated[int, typer.Option(help="random seed")] = 1234,
) -> None:
    """Train the embedding on the training split (CPU, or GPU when present); early-stops on validation."""
    from model.config import TrainConfig
    from model.train import train

    cfg = TrainConfig(dataset=str(dataset), out=str(out), max_minutes=minutes, augment=not no_augment,
                      steps_per_epoch=steps_per_epoch, seed=seed, snapshot_minutes=snapshot_minutes,
                      max_epochs=max_epochs)  # fmt: skip
    train(cfg, log=typer.echo)


@eval_app.command("snippets")
def eval_snippets(
    dataset: Annotated[Path, typer.Option(help="dataset folder")] = DATASET,
    weights: Annotated[Path | None, typer.Option(help="checkpoint (default: shipped)")] = None,
    split: Annotated[str, typer.Option(help="test | test-chorales | validation")] = "test",
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Table-2 protocol: rank each query's counterpart among all snippets of the split."""
    import torch

    from model import checkpoint
    from model.evaluate import evaluate_snippets

    torch.set_num_threads(2)
    model, version, _ = checkpoint.load(weights)
    result = evaluate_snippets(model, dataset, split)
    if as_json:
        typer.echo(json.dumps(result))
        return
    typer.echo(f"model {version}, split {split}, {result['candidates']} candidates")
    for direction in ("audio_to_sheet", "sheet_to_audio"):
        m = result[direction]
        typer.echo(f"{direction:15s} R@1 {m['R@1']:6.2f}  R@10 {m['R@10']:6.2f}  R@25 {m['R@25']:6.2f}  MR {m['MR']}")


def _library(data_dir: Path | None = None):  # type: ignore[no-untyped-def]
    import torch

    from indexer.library import Library
    from indexer.settings import get_settings

    settings = get_settings()
    if data_dir is not None:
        settings = settings.model_copy(update={"data_dir": data_dir, "database_url": None})
    torch.set_num_threads(settings.threads)
    return Library(settings)


EVAL_LIBRARY = Path("data/corpus-library")  # the benchmarks' own library: every corpus piece's PDF


@eval_app.command("identify")
def eval_identify(
    dataset: Annotated[Path, typer.Option(help="dataset folder")] = DATASET,
    library: Annotated[Path, typer.Option(help="library folder (built on first use)")] = EVAL_LIBRARY,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Table-3 protocol: whole recordings and 10-s excerpts of test pieces against the full corpus library."""
    from service.evaluate import evaluate_identify

    result = evaluate_identify(_library(library), dataset, log=lambda m: typer.echo(m, err=True))
    typer.echo(json.dumps(result) if as_json else json.dumps(result, indent=1))


@eval_app.command("calibrate")
def eval_calibrate(
    dataset: Annotated[Path, typer.Option(help="dataset folder")] = DATASET,
    library: Annotated[Path, typer.Option(help="library folder (built on first use)")] = EVAL_LIBRARY,
) -> None:
    """Fit the confidence and the no-match threshold on the validation split; writes calibration.json."""
    from service.evaluate import calibrate

    typer.echo(json.dumps(calibrate(_library(library), dataset, log=lambda m: typer.echo(m, err=True))))


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
    or on degraded scans of the verovio PDFs."""
    from benchmarks.lilypond import evaluate_lilypond
    from benchmarks.scans import evaluate_scans
    from service.engravers import evaluate_musescore
    from service.evaluate import evaluate_systems

    log = lambda m: typer.echo(m, err=True)  # noqa: E731
    splits = split or ["test"]
    if degrade not in (None, "scan"):
        raise typer.BadParameter("degrade is scan")
    if degrade == "scan":
        typer.echo(json.dumps(evaluate_scans(dataset, tuple(splits), seed=seed, log=log)))
    elif engraver in ("musescore", "lilypond"):
        evaluate = evaluate_musescore if engraver == "musescore" else evaluate_lilypond
        results = [evaluate(s, log=log) for s in splits]
        typer.echo(json.dumps(results[0] if len(results) == 1 else results))
    elif engraver == "verovio":
        typer.echo(json.dumps(evaluate_systems(dataset, tuple(splits))))
    else:
        raise typer.BadParameter("engraver is verovio, musescore or lilypond")


@eval_app.command("align")
def eval_align(
    dataset: Annotated[Path, typer.Option(help="dataset folder")] = DATASET,
    library: Annotated[Path, typer.Option(help="library folder (built on first use)")] = EVAL_LIBRARY,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Median alignment error (page widths) on test pieces, against the linear baseline."""
    from service.evaluate import evaluate_align

    result = evaluate_align(_library(library), dataset, log=lambda m: typer.echo(m, err=True))
    typer.echo(json.dumps(result) if as_json else json.dumps(result, indent=1))


def _pdfs(paths: list[Path]) -> list[Path]:
    found: list[Path] = []
    for p in paths:
        found += sorted(p.rglob("*.pdf")) if p.is_dir() else [p]
    return found


@app.command("index")
def index_cmd(
    paths: Annotated[list[Path], typer.Argument(help="PDF files or folders")],
    title: Annotated[str | None, typer.Option(help="title (single file); default: PDF metadata or file name")] = None,
    composer: Annotated[str | None, typer.Option(help="composer; default: PDF metadata")] = None,
) -> None:
    """Add score PDFs to the library in SHEETID_DATA_DIR (re-running skips what is already indexed)."""
    from tqdm import tqdm

    from indexer.pdf import BadInput

    lib = _library()
    files = _pdfs(paths)
    failed = 0
    for f in tqdm(files, desc="indexing", unit="pdf"):
        try:
            r = lib.add_pdf(f.read_bytes(), title if len(files) == 1 else None, composer, f.name)
            tqdm.write(f"{'added' if r.created else 'already indexed'}: {f} → piece {r.piece_id}")
            if r.pages_without_music:
                tqdm.write(f"  skipped pages without music: {', '.join(map(str, r.pages_without_music))}")
        except BadInput as exc:
            failed += 1
            tqdm.write(f"refused {f}: {exc}")
    if failed:
        raise typer.Exit(1)


@app.command("pieces")
def pieces_cmd(as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False) -> None:
    """List the library."""
    from sqlalchemy import select

    from indexer.store import Piece

    lib = _library()
    counts = lib.counts()
    with lib.Session() as s:
        rows = [{"id": p.id, "title": p.title, "composer": p.composer, "pages": p.pages,
                 "snippets": counts.get(p.id, 0), "status": p.status.value}
                for p in s.scalars(select(Piece).order_by(Piece.id))]  # fmt: skip
    if as_json:
        typer.echo(json.dumps(rows))
        return
    for r in rows:
        typer.echo(f"{r['id']:5d}  {r['status']:8s} {r['pages']:3d} p {r['snippets']:6d} snippets  "
                   f"{r['title']}{' — ' + r['composer'] if r['composer'] else ''}")  # fmt: skip


@app.command("remove")
def remove_cmd(piece_id: int) -> None:
    """Delete a piece and its vectors."""
    if not _library().remove(piece_id):
        typer.echo(f"no piece {piece_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"removed piece {piece_id}")


@app.command("reindex")
def reindex_cmd() -> None:
    """Re-embed every piece with the current model (after a model change)."""
    typer.echo(f"re-embedded {_library().reindex()} pieces")


def _wave(path: Path):  # type: ignore[no-untyped-def]
    from fastapi import HTTPException

    from indexer.settings import get_settings
    from service.uploads import decode_audio

    try:
        return decode_audio(path.read_bytes(), get_settings())
    except HTTPException as exc:
        typer.echo(f"refused {path}: {exc.detail}", err=True)
        raise typer.Exit(1) from None


@app.command("identify")
def identify_cmd(
    audio: Path,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Which library piece is this recording?"""
    from service.identify import identify
    from service.routes.identify import identify_out

    lib = _library()
    out = identify_out(identify(lib, _wave(audio)), lib)
    if as_json:
        typer.echo(json.dumps(out.model_dump(include={"no_match", "confidence", "pieces"})))
        return
    typer.echo("NO MATCH" if out.no_match else "match", nl=False)
    typer.echo(f" (confidence {out.confidence:.2f}, {out.excerpts} excerpts)")
    for rank, p in enumerate(out.pieces[:5], 1):
        who = f" — {p.composer}" if p.composer else ""
        typer.echo(f"{rank}. [{p.id}] {p.title}{who}: {p.votes} votes, score {p.score:.1f}")


@app.command("align")
def align_cmd(
    audio: Path,
    piece: Annotated[int, typer.Option("--piece", help="piece id")],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    plot: Annotated[Path | None, typer.Option(help="write the cost matrix and path as PNG")] = None,
) -> None:
    """Follow a recording through a piece: audio time → page, system, x."""
    from service.align import align, plot_cost

    result = align(_library(), piece, _wave(audio))
    if plot:
        plot_cost(result, plot)
    points: list[dict[str, Any]] = [{"time": round(p.time, 2), "page": p.page, "system": p.system, "x": round(p.x, 1),
                                     "box": [round(v, 1) for v in p.box]} for p in result.points]  # fmt: skip
    if as_json:
        typer.echo(json.dumps({"piece_id": piece, "subsequence": result.subsequence, "points": points}))
        return
    for p in points[:: max(1, len(points) // 20)]:
        typer.echo(f"{p['time']:7.2f} s → page {p['page']}, system {p['system'] + 1}, x {p['x']:.0f}")


@app.command("demo-library")
def demo_library(
    dataset: Annotated[Path, typer.Option(help="dataset folder")] = DATASET,
    split: Annotated[list[str] | None, typer.Option("--split", help="splits to index (default: test)")] = None,
) -> None:
    """Index the dataset's test-split PDFs into SHEETID_DATA_DIR and write example recordings."""
    from service.demo import build_demo

    examples = build_demo(_library(), dataset, tuple(split or ["test"]), log=typer.echo)
    for e in examples:
        typer.echo(f"example recording: {e}")


@app.command("bench")
def bench_cmd(
    dataset: Annotated[Path, typer.Option(help="dataset folder (PDFs and recordings)")] = DATASET,
    library: Annotated[Path, typer.Option(help="library to query (e.g. the eval library)")] = EVAL_LIBRARY,
    scale: Annotated[list[int] | None, typer.Option(help="synthetic vector counts for the search benchmark")] = None,
    clients: Annotated[int, typer.Option(help="parallel HTTP clients in the load benchmark")] = 4,
    load_seconds: Annotated[float, typer.Option(help="length of the load benchmark (0 skips it)")] = 30.0,
) -> None:
    """Print speed figures: 10-page PDF indexing, identification latency, HTTP load, FAISS search at scale."""
    import io

    import soundfile as sf

    from model.data import dataset as ds
    from service import bench

    lib = _library(library)
    tests = sorted(p for p, m in ds.read_manifest(dataset)["pieces"].items() if m["split"] == "test")
    pdfs = [dataset / ds.PDF_DIR / f"{ds.piece_key(p)}.pdf" for p in tests]
    typer.echo(json.dumps({"index_10_page_pdf": bench.index_pdf(lib, bench.concat_pdfs(pdfs, 10))}))
    wave, _ = sf.read(dataset / ds.AUDIO_DIR / f"{ds.piece_key(tests[0])}.flac", dtype="float32")
    typer.echo(json.dumps({"identify_30s": dict(bench.identify_latency(lib, wave[: 30 * 22050]),
                                                pieces=len(lib.counts()), vectors=lib.index.ntotal)}))  # fmt: skip
    if load_seconds > 0:
        buf = io.BytesIO()
        sf.write(buf, wave[: 30 * 22050], 22050, format="WAV")
        lib.close()
        load = bench.serve_load(library, buf.getvalue(), clients, load_seconds)
        typer.echo(json.dumps({"load_30s_recordings": load}))
    for n in scale or [1_500_000]:
        for factory in ("Flat", "HNSW32"):
            typer.echo(json.dumps({"search": bench.search_scale(n, factory)}))


@app.command("serve")
def serve_cmd(
    host: Annotated[str, typer.Option(help="bind address")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port")] = 8000,
) -> None:
    """Serve the API and web page (one worker: the model and index live in its memory)."""
    import uvicorn

    from service.app import create_app

    typer.echo(f"sheetid at http://{host}:{port}/  (API docs at /docs)")
    uvicorn.run(create_app(), host=host, port=port, workers=1)


if __name__ == "__main__":
    app()
