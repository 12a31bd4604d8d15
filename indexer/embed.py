"""Pages → systems → strip → snippets → sheet-pathway vectors, through the shared sheet front-end."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from indexer.pdf import BadInput
from model.nets import SheetAudioNet
from model.sheet import SNIPPET_WIDTH, STRIP_HEIGHT, Strip, cut_snippets, read_page, snippet_centres, unroll

EMBED_BATCH = 256  # snippets per forward pass


@dataclass
class EmbeddedScore:
    strip: Strip
    centres: np.ndarray  # (N,) strip x of each snippet centre
    systems: np.ndarray  # (N,) system index of each snippet
    boxes: np.ndarray  # (N, 4) x0, y0, x1, y1 on the snippet's page (page px)
    pages: np.ndarray  # (N,) 0-based page of each snippet
    vectors: np.ndarray  # (N, 32) float32, unit length
    page_images: list[np.ndarray]  # the pages as kept: flat-fielded and straightened, boxes in this frame
    pages_without_music: list[int]  # 1-based pages where no staff system was found (title, text, blank)


@torch.no_grad()
def embed_snippets(model: SheetAudioNet, snippets: np.ndarray, device: str = "cpu") -> np.ndarray:
    out = []
    for start in range(0, len(snippets), EMBED_BATCH):
        batch = torch.from_numpy(snippets[start : start + EMBED_BATCH]).to(device)
        out.append(model.embed_sheet(batch).cpu().numpy())
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, 32), np.float32)


def embed_pages(
    model: SheetAudioNet,
    pages: list[np.ndarray],
    hop: int,
    device: str = "cpu",
    progress: Callable[[float], None] | None = None,
) -> EmbeddedScore:
    """Straighten every page and find its staff systems, unroll them and embed a sliding window of
    snippets. Pages without music are skipped (and named); a PDF without any is refused."""
    readings = [read_page(page, i) for i, page in enumerate(pages)]
    pages = [image for image, _ in readings]
    systems = [s for _, found in readings for s in found]
    if not systems:
        raise BadInput("no staff systems found: is this sheet music?")
    strip = unroll(pages, systems)
    centres = snippet_centres(strip.image.shape[1], hop)
    sys_idx, page_x = strip.locate(centres.astype(np.float64))
    vectors = []
    for start in range(0, len(centres), EMBED_BATCH * 4):
        chunk = centres[start : start + EMBED_BATCH * 4]
        vectors.append(embed_snippets(model, cut_snippets(strip.image, chunk), device))
        if progress:
            progress(min(1.0, (start + len(chunk)) / len(centres)))
    scale = np.array([strip.systems[i].scale for i in sys_idx])
    mid = np.array([strip.systems[i].centre for i in sys_idx])
    boxes = np.stack([page_x - SNIPPET_WIDTH / 2 / scale, mid - STRIP_HEIGHT / 2 / scale,
                      page_x + SNIPPET_WIDTH / 2 / scale, mid + STRIP_HEIGHT / 2 / scale], axis=1)  # fmt: skip
    page_of = np.array([strip.systems[i].page for i in sys_idx])
    without = [i + 1 for i, (_, found) in enumerate(readings) if not found]
    return EmbeddedScore(strip, centres, sys_idx, boxes, page_of, np.concatenate(vectors), pages, without)
