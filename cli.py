"""`sheetid` command line: thin wrappers that parse arguments and call model/, indexer/ and service/."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False, help="Identify and follow sheet music from audio.")
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
    out: Annotated[Path, typer.Option(help="dataset folder")] = DATASET,
    workers: Annotated[int, typer.Option(help="parallel worker processes")] = 2,
) -> None:
    """Engrave, synthesize and store every piece of the split file (resumable)."""
    from model.data.build import build, summarize

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


if __name__ == "__main__":
    app()
