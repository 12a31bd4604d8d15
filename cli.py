"""`sheetid` command line: thin wrappers that parse arguments, call model/, indexer/ and service/, and print.

The benchmark commands (`eval ...`, `bench`, `demo-library`) live in benchmarks/cli.py and are mounted here.
Refusals (indexer.errors) are printed as messages and exit with status 1.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from benchmarks.cli import DATASET, bench_app, demo_library_cmd, eval_app

if TYPE_CHECKING:
    import numpy as np

    from indexer.library import Library
    from indexer.settings import Settings

T = TypeVar("T")
app = typer.Typer(
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    help="Identify and follow sheet music from audio.",
)
data_app = typer.Typer(no_args_is_help=True, help="Build the training / evaluation dataset.")
app.add_typer(data_app, name="data")
app.add_typer(eval_app, name="eval")
app.add_typer(bench_app, name="bench")
app.command("demo-library")(demo_library_cmd)


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
    audio: Annotated[bool, typer.Option(help="render training renditions (--no-audio: engrave training "
                                        "pieces only, for a full-size evaluation library in minutes)")] = True,
) -> None:
    """Engrave, synthesize and store every piece of the split file (resumable)."""
    from model.data.build import build, summarize

    if split:
        from model.data.corpus import load_splits

        splits = load_splits()
        only = (only or []) + [pid for name in split for pid in splits[name]]
    manifest = build(out, only=only, workers=workers, log=typer.echo, audio=audio)
    typer.echo(json.dumps({"splits": summarize(manifest), "failures": sorted(manifest["failures"]),
                           "build_seconds": manifest.get("build_seconds")}, indent=1))  # fmt: skip


@data_app.command("repeats")
def data_repeats(
    dataset: Annotated[Path, typer.Option(help="dataset folder (built first with `data build`)")] = DATASET,
    split: Annotated[list[str] | None, typer.Option("--split", help="validation and/or test (default: both)")] = None,
    only: Annotated[list[str] | None, typer.Option("--only", help="piece id; repeatable")] = None,
    workers: Annotated[int, typer.Option(help="parallel worker processes")] = 1,
) -> None:
    """Renditions that play repeats, endings and da capo, with each onset's printed position (resumable)."""
    from model.data.repeats import SPLITS, build_performances, summarize

    try:
        splits = tuple(split or SPLITS)
        manifest = build_performances(dataset, splits, only, workers, log=typer.echo)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    typer.echo(json.dumps({"splits": summarize(manifest, dataset, splits), "failures": sorted(manifest["failures"])},
                          indent=1))  # fmt: skip


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
    minutes: Annotated[float, typer.Option(help="wall-clock budget")] = 60.0,
    snapshot_minutes: Annotated[float | None, typer.Option(help="also save the weights reached by then")] = None,
    no_augment: Annotated[bool, typer.Option("--no-augment", help="ablation: no augmentation")] = False,
    steps_per_epoch: Annotated[int | None, typer.Option(help="steps between validations [TrainConfig]")] = None,
    max_epochs: Annotated[int | None, typer.Option(help="stop after this many epochs")] = None,
    seed: Annotated[int, typer.Option(help="random seed")] = 1234,
    resume: Annotated[bool, typer.Option("--resume", help="continue from <out>.resume.pt")] = False,
    overrides: Annotated[list[str] | None, typer.Option("--set", help="name=value of TrainConfig, or "
                                                        "model.name=value of ModelConfig; repeatable")] = None,
) -> None:
    """Train the embedding on the training split (CPU, or GPU when present); early-stops on validation."""
    from model.config import TrainConfig, with_overrides
    from model.train import train

    cfg = TrainConfig(dataset=str(dataset), out=str(out), max_minutes=minutes, augment=not no_augment,
                      seed=seed, snapshot_minutes=snapshot_minutes, max_epochs=max_epochs)  # fmt: skip
    if steps_per_epoch is not None:
        cfg.steps_per_epoch = steps_per_epoch
    cfg = with_overrides(cfg, overrides or [])
    train(cfg, log=typer.echo, resume=resume)


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

    from indexer.errors import BadInput
    from indexer.library import open_library

    lib = open_library()
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

    from indexer.library import open_library
    from indexer.store import Piece

    lib = open_library()
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
    from indexer.library import open_library

    if not open_library().remove(piece_id):
        typer.echo(f"no piece {piece_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"removed piece {piece_id}")


@app.command("reindex")
def reindex_cmd() -> None:
    """Re-embed every piece with the current model (after a model change)."""
    from indexer.library import open_library

    typer.echo(f"re-embedded {open_library().reindex()} pieces")


def _refusing(what: Path, run: Callable[[], T]) -> T:
    """run(), printing a refusal (bad audio, unknown piece) as a message and exiting with status 1."""
    from indexer.errors import SheetidError

    try:
        return run()
    except SheetidError as exc:
        typer.echo(f"refused {what}: {exc}", err=True)
        raise typer.Exit(1) from None


def _wave(path: Path, settings: Settings) -> np.ndarray:
    from service.uploads import decode_audio

    return decode_audio(path.read_bytes(), settings)


@app.command("identify")
def identify_cmd(
    audio: Path,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Which library piece is this recording?"""
    from indexer.library import open_library
    from service.identify import identify

    lib = open_library()
    result = _refusing(audio, lambda: identify(lib, _wave(audio, lib.settings)))
    meta = lib.titles([p.id for p in result.pieces])
    pieces = [{"id": p.id, "title": meta[p.id][0], "composer": meta[p.id][1], "votes": p.votes,
               "score": round(p.score, 4), "consistency": round(p.consistency, 4)}
              for p in result.pieces if p.id in meta]  # fmt: skip
    confidence = round(min(1.0, max(0.0, result.confidence)), 4)
    if as_json:
        typer.echo(json.dumps({"no_match": result.no_match, "confidence": confidence, "pieces": pieces}))
        return
    typer.echo("NO MATCH" if result.no_match else "match", nl=False)
    typer.echo(f" (confidence {confidence:.2f}, {result.excerpts} excerpts)")
    for rank, p in enumerate(pieces[:5], 1):
        who = f" — {p['composer']}" if p["composer"] else ""
        typer.echo(f"{rank}. [{p['id']}] {p['title']}{who}: consistency {p['consistency']:.2f}, "
                   f"{p['votes']} votes, score {p['score']:.1f}")


@app.command("align")
def align_cmd(
    audio: Path,
    piece: Annotated[int, typer.Option("--piece", help="piece id")],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    plot: Annotated[Path | None, typer.Option(help="write the cost matrix and path as PNG")] = None,
) -> None:
    """Follow a recording through a piece: audio time → page, system, x."""
    from indexer.library import open_library
    from service.align import AlignedPoint, plot_cost
    from service.jumps import align_with_jumps

    lib = open_library()
    result = _refusing(audio, lambda: align_with_jumps(lib, piece, _wave(audio, lib.settings)))
    if plot:
        plot_cost(result, plot)

    def out(p: AlignedPoint) -> dict[str, Any]:
        return {"time": round(p.time, 2), "page": p.page, "system": p.system, "x": round(p.x, 1),
                "box": [round(v, 1) for v in p.box]}  # fmt: skip

    points = [out(p) for p in result.points]
    jumps: list[dict[str, Any]] = [{"time": round(j.time, 2), "from": out(j.source), "to": out(j.target)}
                                   for j in result.jumps]  # fmt: skip
    if as_json:
        typer.echo(json.dumps({"piece_id": piece, "subsequence": result.subsequence, "points": points,
                               "jumps": jumps}))  # fmt: skip
        return
    for p in points[:: max(1, len(points) // 20)]:
        typer.echo(f"{p['time']:7.2f} s → page {p['page']}, system {p['system'] + 1}, x {p['x']:.0f}")
    for j in jumps:
        typer.echo(f"jump at {j['time']:.2f} s: page {j['from']['page']}, system {j['from']['system'] + 1} → "
                   f"page {j['to']['page']}, system {j['to']['system'] + 1}")  # fmt: skip


def _open_when_ready(wait_s: float = 300.0) -> Library:
    """Open the library, retrying while the database or vector store is still starting (all services of a
    compose file start together) or another process is creating the schema or collection."""
    import logging
    import time

    from indexer.library import open_library

    deadline = time.monotonic() + wait_s
    while True:
        try:
            return open_library()
        except Exception:  # noqa: BLE001 - retried until the deadline, then raised
            if time.monotonic() > deadline:
                raise
            logging.getLogger("sheetid.worker").exception("library not ready; retrying in 5 s")
            time.sleep(5)


@app.command("worker")
def worker_cmd() -> None:
    """Run ingest jobs from the database queue until SIGTERM (scale-out: beside API-only replicas)."""
    import faulthandler
    import logging
    import signal

    from indexer.worker import Worker

    faulthandler.register(signal.SIGUSR1, all_threads=True)  # `kill -USR1 PID` prints every thread's stack
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    lib = _open_when_ready()
    if not lib.index.shared:
        typer.echo("sheetid worker needs a shared vector store (SHEETID_VECTOR_STORE=milvus://host:19530); "
                   "with FAISS, `sheetid serve` runs the ingest jobs itself", err=True)  # fmt: skip
        raise typer.Exit(2)
    worker = Worker(lib)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: worker.stop.set())  # finish the current job, then exit
    typer.echo(f"sheetid worker {worker.name}: {lib.settings.db_url.split('@')[-1]}, {lib.settings.vector_store}")
    worker.run()
    lib.close()


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
