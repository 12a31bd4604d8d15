"""A seeded "print and scan" of a clean page: the degradations a scanned or photographed score shows.

Geometry (rotation and a slight perspective) is one homography, returned with the scan, so a benchmark
can carry the engraver's true system boxes into the scan's frame. The photometric steps follow the
order of a real scan: toned paper and ink, uneven light, optical blur, sensor noise, JPEG.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image


@dataclass(frozen=True)
class ScanStyle:
    """Ranges each degradation is drawn from (uniformly)."""

    dpi: tuple[int, int] = (100, 300)  # the page is rasterised at this resolution before degrading
    rotation: float = 1.5  # degrees, either way
    perspective: float = 0.004  # each corner moves by up to this share of the page's size
    paper: tuple[float, float] = (0.78, 0.96)  # paper brightness (1 = white)
    ink: tuple[float, float] = (0.04, 0.22)  # ink brightness (0 = black)
    light: float = 0.22  # the light falls off by up to this share across the page
    blur: tuple[float, float] = (0.3, 1.0)  # Gaussian blur sigma, px
    noise: tuple[float, float] = (2.0, 8.0)  # Gaussian noise sigma, grey levels
    jpeg: tuple[int, int] = (35, 85)  # JPEG quality


SCAN = ScanStyle()


def scan_dpi(rng: np.random.Generator, style: ScanStyle = SCAN) -> int:
    return int(rng.integers(style.dpi[0], style.dpi[1] + 1))


def _geometry(shape: tuple[int, int], rng: np.random.Generator, style: ScanStyle) -> np.ndarray:
    """3×3 homography: a rotation about the page centre, then every corner nudged a little."""
    h, w = shape
    angle = rng.uniform(-style.rotation, style.rotation)
    rotation = np.vstack([cv2.getRotationMatrix2D((w / 2.0, h / 2.0), angle, 1.0), [0.0, 0.0, 1.0]])
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    moved = cv2.perspectiveTransform(corners[None], rotation)[0]
    moved += rng.uniform(-1, 1, size=(4, 2)).astype(np.float32) * style.perspective * np.array([w, h], np.float32)
    return cv2.getPerspectiveTransform(corners, moved.astype(np.float32))


def _light(shape: tuple[int, int], rng: np.random.Generator, style: ScanStyle) -> np.ndarray:
    """Illumination: a linear fall-off in a random direction plus a darker corner region (the page
    curving away from the glass, a lamp to one side); 1 at the brightest point."""
    h, w = shape
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    direction = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(direction) * x / w + np.sin(direction) * y / h).astype(np.float32)
    cx, cy = rng.uniform(0, w), rng.uniform(0, h)
    blob = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * (0.5 * max(h, w)) ** 2)).astype(np.float32)
    field = 0.6 * (ramp - ramp.min()) / max(1e-6, float(np.ptp(ramp))) + 0.4 * (1 - blob)
    return 1.0 - style.light * rng.uniform(0.3, 1.0) * field


def degrade_page(page: np.ndarray, rng: np.random.Generator, style: ScanStyle = SCAN) -> tuple[np.ndarray, np.ndarray]:
    """A scan of a clean greyscale page (paper 255): (scan, 3×3 homography from page px to scan px)."""
    h, w = page.shape
    homography = _geometry((h, w), rng, style)
    warped = cv2.warpPerspective(page, homography, (w, h), flags=cv2.INTER_LINEAR, borderValue=255)
    paper, ink = rng.uniform(*style.paper), rng.uniform(*style.ink)
    tone = ink + (paper - ink) * (warped.astype(np.float32) / 255.0)
    tone *= _light((h, w), rng, style)
    blurred = cv2.GaussianBlur(tone, (0, 0), rng.uniform(*style.blur))
    noisy = blurred * 255.0 + rng.normal(0.0, rng.uniform(*style.noise), size=(h, w)).astype(np.float32)
    grey = np.clip(noisy + 0.5, 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(grey).save(buffer, format="JPEG", quality=int(rng.integers(style.jpeg[0], style.jpeg[1] + 1)))
    return np.asarray(Image.open(buffer).convert("L"), dtype=np.uint8), homography


def map_box(box: tuple[float, float, float, float], homography: np.ndarray,
            then: Callable[[np.ndarray], np.ndarray] | None = None) -> tuple[float, float, float, float]:  # fmt: skip
    """An axis-aligned box (x0, y0, x1, y1) carried through a homography (and then a point map): each
    side is the mean of its two mapped corners, so a box that stays (nearly) upright keeps its
    staff-line edges."""
    x0, y0, x1, y1 = box
    pts = cv2.perspectiveTransform(np.array([[[x0, y0], [x1, y0], [x1, y1], [x0, y1]]], np.float64), homography)[0]
    (tl, tr, br, bl) = then(pts) if then is not None else pts
    return ((tl[0] + bl[0]) / 2, (tl[1] + tr[1]) / 2, (tr[0] + br[0]) / 2, (bl[1] + br[1]) / 2)
