"""Pages → systems → strip → snippet vectors with their place on the page (the embedding is model.embed's)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from indexer.errors import BadInput
from model.embed import embed_strip, embed_strip_at_width, normalised_mean
from model.nets import SheetAudioNet
from model.sheet import STRIP_HEIGHT, Strip, read_page, unroll


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
    # factor -> (N, 32) vectors of the same windows, the strip read that many times as wide (alignment)
    vectors_at_width: dict[float, np.ndarray] = field(default_factory=dict)


def embed_pages(model: SheetAudioNet, pages: list[np.ndarray], hop: int, device: str = "cpu",
                widths: tuple[float, ...] = ()) -> EmbeddedScore:  # fmt: skip
    """Straighten every page and find its staff systems, unroll them and embed a sliding window of
    snippets, and the same windows with the strip read at each factor of `widths` (model.embed.
    embed_strip_at_width). Pages without music are skipped (and named); a PDF without any is refused."""
    readings = [read_page(page, i) for i, page in enumerate(pages)]
    pages = [image for image, _ in readings]
    systems = [s for _, found in readings for s in found]
    if not systems:
        raise BadInput("no staff systems found: is this sheet music?")
    strip = unroll(pages, systems)
    centres, vectors = embed_strip(model, strip.image, hop, device)
    sys_idx, page_x = strip.locate(centres.astype(np.float64))
    scale = np.array([strip.systems[i].scale for i in sys_idx])
    mid = np.array([strip.systems[i].centre for i in sys_idx])
    half = model.cfg.sheet_window / 2 / scale  # a snippet's box is its window, not the crop's context
    boxes = np.stack([page_x - half, mid - STRIP_HEIGHT / 2 / scale,
                      page_x + half, mid + STRIP_HEIGHT / 2 / scale], axis=1)  # fmt: skip
    page_of = np.array([strip.systems[i].page for i in sys_idx])
    without = [i + 1 for i, (_, found) in enumerate(readings) if not found]
    wider = {f: embed_strip_at_width(model, strip.image, centres, f, hop, device) for f in widths if f != 1.0}
    return EmbeddedScore(strip, centres, sys_idx, boxes, page_of, vectors, pages, without, wider)


def mean_reading(score: EmbeddedScore) -> EmbeddedScore:
    """The score with each snippet's vector the normalised mean of its vectors as engraved and at every
    width it was read at (Settings.snippet_widths), the readings themselves dropped."""
    if not score.vectors_at_width:
        return score
    vectors = normalised_mean([score.vectors, *score.vectors_at_width.values()])
    return replace(score, vectors=vectors, vectors_at_width={})


def vector_version(model_version: str, widths: tuple[float, ...]) -> str:
    """What the indexed vectors depend on: the model's version and the widths averaged into them."""
    widths = tuple(f for f in widths if f != 1.0)
    return model_version if not widths else f"{model_version}+w{','.join(f'{f:g}' for f in widths)}"
