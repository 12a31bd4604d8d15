"""`sheetid train`: learn the joint embedding on the training split, early-stopped on validation.

Readable top to bottom: load data → build model → loop (sample, augment, step) → validate each epoch →
halve the learning rate on plateaus → refit the CCA projections → save the best checkpoint.
After every epoch the whole run state is written to <out>.resume.pt, so `sheetid train --resume`
continues an interrupted (or longer-budgeted) run where it stopped.
Test material is never loaded here: `load_split` refuses it.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

from model import checkpoint
from model.config import TrainConfig
from model.data.corpus import EXTRA_SPLIT
from model.data.dataset import load_split
from model.evaluate import embed_pairs, retrieval_metrics
from model.nets import SheetAudioNet, infonce_loss, ranking_loss
from model.pairs import PairIndex, audio_batch, median_level, sheet_batch

TRAINING_SPLITS = ("train", EXTRA_SPLIT, "validation")  # the only splits training and tuning may read


@torch.no_grad()
def refit_cca(model: SheetAudioNet, pairs: PairIndex, n: int, rng: np.random.Generator) -> None:
    """Re-estimate the CCA projections from pre-CCA embeddings of n un-augmented training pairs."""
    model.eval()
    idx = rng.choice(len(pairs), size=min(n, len(pairs)), replace=False)
    xs, ys = [], []
    for chunk in np.array_split(idx, max(1, len(idx) // 500)):
        xs.append(model.sheet(sheet_batch(pairs, chunk, model.cfg, None, rng), model.cfg.sheet_context_cols))
        ys.append(model.audio(audio_batch(pairs, chunk, model.cfg, None, rng), model.cfg.audio_context_cols))
    model.cca.refit(torch.cat(xs), torch.cat(ys))


def validate(model: SheetAudioNet, pairs: PairIndex) -> dict[str, float]:
    x, y = embed_pairs(model, pairs)
    return retrieval_metrics(y, x)  # audio → sheet, the paper's direction


def resume_path(cfg: TrainConfig) -> Path:
    return Path(cfg.out).with_suffix(".resume.pt")


def train(cfg: TrainConfig, log=print, resume: bool = False) -> dict:  # type: ignore[no-untyped-def]
    from tqdm import tqdm

    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    rng = np.random.default_rng(cfg.seed)
    t_start = time.time()

    # data: training pairs (all renditions) and a fixed validation subset (unseen font, 120 bpm)
    root = Path(cfg.dataset)
    train_records = load_split(root, "train", TRAINING_SPLITS)
    if cfg.extra_dataset is not None:
        train_records += load_split(Path(cfg.extra_dataset), EXTRA_SPLIT, TRAINING_SPLITS)
    if cfg.renditions is not None:
        train_records = [replace(r, renditions=r.renditions[: cfg.renditions]) for r in train_records]
    if not any(r.renditions for r in train_records):  # e.g. a dataset built with `data build --no-audio`
        raise ValueError(f"the training pieces in {root} have no renditions: build them with `sheetid data build`")
    # The level is derived from the data unless given (`--set model.audio_level=…`: a fine-tune can keep its
    # init's, when new renditions would move the median); stored in the checkpoint, applied to every input.
    if cfg.level_inputs:
        if cfg.model.audio_level is None:
            cfg = replace(cfg, model=replace(cfg.model, audio_level=round(median_level(train_records), 3)))
        log(f"inputs scaled to spectrogram level {cfg.model.audio_level}")
    level = cfg.model.audio_level
    train_pairs = PairIndex.build(train_records, level=level)
    val_all = PairIndex.build(load_split(root, "validation", TRAINING_SPLITS), first_rendition_only=True, level=level)
    val_pairs = val_all.subset(np.sort(rng.choice(len(val_all), min(cfg.val_pairs, len(val_all)), replace=False)))
    log(f"train pairs {len(train_pairs)} from {len(train_pairs.records)} pieces; "
        f"validation queries {len(val_pairs)} of {len(val_all)}")  # fmt: skip

    # model, loss temperature (InfoNCE) and optimiser
    model = SheetAudioNet(cfg.model)
    if cfg.init and not resume:
        # The layers do not depend on the window sizes, so a checkpoint of an earlier format (other windows,
        # no context columns) starts the run; only its weights are taken, not its config.
        model.load_state_dict(torch.load(cfg.init, map_location="cpu", weights_only=True)["state"])
        log(f"initialised from {cfg.init}")
    model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    log_temperature = torch.nn.Parameter(torch.tensor(float(np.log(cfg.temperature))))
    optimiser = torch.optim.Adam([*model.parameters(), log_temperature], lr=cfg.lr)
    best: dict = {"MR": float("inf"), "epoch": 0}  # epoch 0: the initial weights (--max-epochs 0)
    best_state = copy.deepcopy(model.state_dict())
    lr, bad_epochs, halvings, epoch, history = cfg.lr, 0, 0, 0, []
    snapshot_saved = False
    spent = 0.0  # minutes of earlier sessions of a resumed run
    if resume and resume_path(cfg).exists():
        state = torch.load(resume_path(cfg), weights_only=False)
        model.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        log_temperature.data.fill_(state["log_temperature"])
        best, best_state, history = state["best"], state["best_state"], state["history"]
        lr, bad_epochs, halvings = state["lr"], state["bad_epochs"], state["halvings"]
        epoch, spent = state["epoch"], state["minutes"]
        rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        log(f"resumed after epoch {epoch} ({spent:.1f} min)")

    # `--resume --max-epochs N` with N epochs already done skips straight to the finish: a long run can be
    # stopped and shipped from its best epoch
    while cfg.max_epochs is None or epoch < cfg.max_epochs:
        epoch += 1
        model.train()
        losses = []
        for _ in tqdm(range(cfg.steps_per_epoch), desc=f"epoch {epoch}", leave=False):
            idx = rng.integers(0, len(train_pairs), size=cfg.batch_size)
            x, y = model(sheet_batch(train_pairs, idx, cfg.model, cfg, rng),
                         audio_batch(train_pairs, idx, cfg.model, cfg, rng))  # fmt: skip
            loss = infonce_loss(x, y, log_temperature) if cfg.loss == "infonce" else ranking_loss(x, y, cfg.margin)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            losses.append(loss.item())

        refit_cca(model, train_pairs, cfg.cca_refit_pairs // 2, rng)
        metrics = validate(model, val_pairs)
        minutes = spent + (time.time() - t_start) / 60
        row = dict(epoch=epoch, loss=float(np.mean(losses)), lr=lr, minutes=round(minutes, 1),
                   temperature=round(log_temperature.exp().item(), 4))  # fmt: skip
        history.append(row | metrics)
        log(f"epoch {epoch:3d}  loss {np.mean(losses):.3f}  lr {lr:.5f}  val MR {metrics['MR']:.0f}  "
            f"R@1 {metrics['R@1']:.1f}  R@10 {metrics['R@10']:.1f}  R@25 {metrics['R@25']:.1f}  "
            f"{minutes:.1f} min")  # fmt: skip

        if (metrics["MR"], -metrics["R@10"]) < (best["MR"], -best.get("R@10", 0.0)):
            best, bad_epochs = dict(metrics, epoch=epoch), 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            bad_epochs += 1
            if bad_epochs >= cfg.patience:
                if halvings >= cfg.max_halvings:
                    log("early stop: validation stopped improving")
                    break
                lr, bad_epochs, halvings = lr / 2, 0, halvings + 1
                for group in optimiser.param_groups:
                    group["lr"] = lr
        if cfg.snapshot_minutes is not None and not snapshot_saved and minutes >= cfg.snapshot_minutes:
            # same budget as a shorter run: for ablations that compare settings at equal training time
            snapshot_saved = True
            snap = copy.deepcopy(model)
            snap.load_state_dict(best_state)
            refit_cca(snap, train_pairs, cfg.cca_refit_pairs, rng)
            checkpoint.save(snap, Path(cfg.out).with_suffix(".snapshot.pt"), {"summary": {"minutes": round(minutes, 1),
                            "best_epoch": best["epoch"], "validation": best}})  # fmt: skip
        torch.save({"model": model.state_dict(), "optimiser": optimiser.state_dict(),
                    "log_temperature": log_temperature.item(), "best": best, "best_state": best_state,
                    "history": history, "lr": lr, "bad_epochs": bad_epochs, "halvings": halvings, "epoch": epoch,
                    "minutes": minutes, "rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state()},
                   resume_path(cfg).with_suffix(".tmp"))  # fmt: skip
        resume_path(cfg).with_suffix(".tmp").replace(resume_path(cfg))  # atomic: a kill never leaves half a file
        if cfg.max_epochs is not None and epoch >= cfg.max_epochs:
            log(f"stop: {epoch} epochs")
            break
        if minutes + minutes / epoch > cfg.max_minutes:
            log("stop: time budget reached")
            break

    # best weights, CCA re-estimated on a large sample, then saved with config and history
    model.load_state_dict(best_state)
    refit_cca(model, train_pairs, cfg.cca_refit_pairs, rng)
    final = validate(model, val_pairs)
    summary = {"best_epoch": best["epoch"], "validation": final, "epochs": epoch,
               "minutes": round(spent + (time.time() - t_start) / 60, 1), "train_pairs": len(train_pairs)}  # fmt: skip
    extra = {"train_config": json.loads(json.dumps(asdict(cfg))), "summary": summary, "history": history}
    version = checkpoint.save(model, Path(cfg.out), extra)
    log(json.dumps(dict(summary, version=version)))
    return summary
