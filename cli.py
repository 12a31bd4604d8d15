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


@app.command("train")
def train_cmd(
    dataset: Annotated[Path, typer.Option(help="dataset folder")] = DATASET,
    out: Annotated[Path, typer.Option(help="checkpoint to write")] = Path("model/weights/sheetid.pt"),
    minutes: Annotated[float, typer.Option(help="wall-clock budget")] = 55.0,
    no_augment: Annotated[bool, typer.Option("--no-augment", help="ablation: no augmentation")] = False,
    steps_per_epoch: Annotated[int, typer.Option(help="steps between validations")] = 200,
    seed: Annotated[int, typer.Option(help="random seed")] = 1234,
) -> None:
    """Train the embedding on the training split (CPU, or GPU when present); early-stops on validation."""
    from model.config import TrainConfig
    from model.train import train

    cfg = TrainConfig(dataset=str(dataset), out=str(out), max_minutes=minutes, augment=not no_augment,
                      steps_per_epoch=steps_per_epoch, seed=seed)  # fmt: skip
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


if __name__ == "__main__":
    app()
