"""Figure 2 of the paper for one piece: sheet snippets next to the spectrogram excerpts they pair with."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from model.config import ModelConfig
from model.data import dataset as ds
from model.embed import crop_windows

ZOOM = 3  # enlarge the small model-scale images so a reader can see note heads
GAP = 12  # px between panels


def _to_image(a: np.ndarray, invert: bool) -> Image.Image:
    a = (a - a.min()) / (np.ptp(a) + 1e-9)
    a = 1.0 - a if invert else a
    img = Image.fromarray((a * 255).astype(np.uint8))
    return img.resize((img.width * ZOOM, img.height * ZOOM), Image.Resampling.NEAREST)


def figure2(root: Path, piece: str, out: Path, n: int = 4) -> None:
    rec = ds.load_record(ds.record_path(root, piece))
    rendition = rec.renditions[0]
    picks = np.linspace(0, len(rec.onset_q) - 1, n + 2).round().astype(int)[1:-1]
    cfg = ModelConfig()  # the windows the network pairs (without the crops' context columns)
    snippets = crop_windows(rec.strip.image / 255.0, np.round(rec.onset_x[picks]).astype(int), cfg.sheet_window)
    frames = rendition.onset_frames(rec.onset_q[picks])
    excerpts = crop_windows(rendition.spec.T, frames, cfg.audio_window)
    pairs = zip(snippets, excerpts, strict=True)
    tiles = [(_to_image(s, invert=True), _to_image(e[::-1], invert=False)) for s, e in pairs]
    w = sum(a.width + b.width + 3 * GAP for a, b in tiles)
    h = max(max(a.height, b.height) for a, b in tiles) + 2 * GAP + 16
    canvas = Image.new("L", (w, h), 255)
    draw = ImageDraw.Draw(canvas)
    x = GAP
    for i, (a, b) in enumerate(tiles):
        draw.text((x, 2), f"onset q={rec.onset_q[picks[i]]:.2f}  {rendition.font} {rendition.bpm:g} bpm", fill=0)
        canvas.paste(a, (x, 16 + GAP))
        canvas.paste(b, (x + a.width + GAP, 16 + GAP))
        x += a.width + b.width + 3 * GAP
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out)
