"""Checkpoints: weights + the ModelConfig they were built with + a version string, loadable without pickle."""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from model.config import ModelConfig
from model.nets import SheetAudioNet

FORMAT = 2  # bump when the checkpoint layout changes (2: windows in feature columns, trained with context)
DEFAULT_WEIGHTS = Path(__file__).with_name("weights") / "sheetid.pt"  # the shipped model


def _version(state: dict[str, torch.Tensor]) -> str:
    """Content hash of the weights: two checkpoints share a version only if they embed identically."""
    h = hashlib.sha256()
    for k in sorted(state):
        h.update(k.encode())
        h.update(state[k].detach().cpu().contiguous().numpy().tobytes())
    return f"v{FORMAT}-{h.hexdigest()[:12]}"


def save(model: SheetAudioNet, path: Path, extra: dict[str, Any] | None = None) -> str:
    """Write atomically; returns the model version."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    version = _version(state)
    blob = {"format": FORMAT, "version": version, "config": asdict(model.cfg), "state": state, "extra": extra or {}}
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save(blob, buf)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        f.write(buf.getvalue())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return version


def load(path: Path | None = None, device: str = "cpu") -> tuple[SheetAudioNet, str, dict[str, Any]]:
    """Model in eval mode, its version and the extra metadata saved with it."""
    path = path or DEFAULT_WEIGHTS
    blob = torch.load(path, map_location=device, weights_only=True)
    if blob.get("format") != FORMAT:
        raise ValueError(f"{path}: checkpoint format {blob.get('format')}, expected {FORMAT}")
    raw = dict(blob["config"])
    raw["channels"] = tuple(raw["channels"])
    model = SheetAudioNet(ModelConfig(**raw))
    model.load_state_dict(blob["state"])
    model.to(device).eval()
    return model, str(blob["version"]), dict(blob.get("extra", {}))


def pick_device(preference: str = "auto") -> str:
    """'cuda' when asked for or available under 'auto', else 'cpu'."""
    if preference == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return preference
