"""Page preprocessing before staff detection: flat-field normalisation, ink mask, staff metrics, deskew.

A scanned or photographed page differs from a born-digital PDF raster in three ways that break a row-run
staff finder: the paper is not white (grey, unevenly lit), the ink is blurred and noisy (sensor, JPEG),
and the page is rotated, so at 1° a 1,100-px staff line drifts by 19 px, more than two staff spaces.
Each step here undoes one of them and leaves a clean PDF raster exactly as it was: a white page needs
no flat-fielding, a noise-free page no denoising, a straight page no rotation.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

INK_THRESHOLD = 192  # grey level (on a flat-fielded page) below which a pixel counts as ink
BACKGROUND_CELLS = 64  # the paper level is estimated on a grid this many cells across the page
MIN_CONTRAST = 64  # a page whose darkest ink is within this of the paper holds no ink at all
DENOISE_SIGMA = 1.0  # px: Gaussian smoothing of a scanned page
NOISE_MARGIN, MIN_DROP = 4.0, 12.0  # on a noisy page ink is this many noise spreads (at least MIN_DROP
MAX_INK_THRESHOLD = 235  # grey levels) darker than the paper, and darker than this in any case
MAX_SKEW = 3.0  # degrees: the deskew search range, either way
COARSE_STEP, FINE_STEP = 0.2, 0.04  # degrees: the deskew search, coarse then around the best angle
MIN_SKEW = 0.04  # degrees: smaller rotations are left alone (under 1 px over a 1,400-px line)
SKEW_STRIPS = 24  # column strips whose row profiles are shifted against each other in the search
SHEAR_BANDS = 6  # horizontal bands whose leftover slope is measured after the rotation (perspective)
MAX_SHEAR = 0.8  # degrees: the leftover slope searched in each band, either way


@dataclass(frozen=True)
class StaffMetrics:
    """Staff-line thickness and spacing of one page, from vertical run-length histograms."""

    thickness: float  # most common vertical ink run (px)
    space: float  # most common distance from one staff line to the next (px)


@dataclass
class PreparedPage:
    """A page ready for staff detection, in the frame of `image` (the straightened page)."""

    image: np.ndarray  # flat-fielded, straightened greyscale page (uint8, paper 255)
    ink: np.ndarray  # bool ink mask of `image` (a scan's smoothed first)
    metrics: StaffMetrics
    angle: float  # degrees the input was rotated by to straighten it (0 when left alone)
    matrix: np.ndarray  # (2, 3) affine map from input page px to the rotated page
    shear: np.ndarray | None = None  # (2, n) band centre y and leftover slope (tan) removed after rotating

    def to_image(self, points: np.ndarray) -> np.ndarray:
        """Input page points (N, 2) → `image` px: the rotation, then the inverse of the band shear."""
        xy = np.asarray(points, np.float64) @ self.matrix[:, :2].T + self.matrix[:, 2]
        if self.shear is not None:
            cx, y = self.image.shape[1] / 2.0, xy[:, 1].copy()
            for _ in range(4):  # y_rotated = y_image + (x - cx)·slope(y_image), solved by fixed point
                y = xy[:, 1] - (xy[:, 0] - cx) * np.interp(y, self.shear[0], self.shear[1])
            xy[:, 1] = y
        return xy


def flat_field(page: np.ndarray) -> np.ndarray:
    """Divide out the paper's brightness (grey paper, uneven light) and stretch the ink to black.

    The paper level is the brightest pixel of every grid cell and its neighbours (wider than a note head
    or a beam, so it always reaches paper), smoothed and upsampled back to the page.
    """
    h, w = page.shape
    cell = max(4, w // BACKGROUND_CELLS)
    # grey dilation = local maximum, of a smoothed page so that noise peaks do not pass for paper
    brightest = cv2.dilate(cv2.blur(page, (5, 5)), np.ones((3 * cell, 3 * cell), np.uint8))
    grid = cv2.GaussianBlur(brightest[cell // 2 :: cell, cell // 2 :: cell].astype(np.float32), (5, 5), 0)
    if grid.min() >= 250:  # white paper everywhere: a born-digital page, left exactly as it was
        return page
    paper = cv2.resize(grid, (w, h), interpolation=cv2.INTER_LINEAR)
    flat = page.astype(np.float32) / np.maximum(paper, 1.0)
    ink_level = float(np.percentile(flat, 0.5))
    if 1.0 - ink_level < MIN_CONTRAST / 255.0:  # nothing dark on the page: don't stretch noise into ink
        ink_level = 0.0
    flat = (flat - ink_level) / max(1e-3, 1.0 - ink_level)
    return np.clip(flat * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _paper_spread(page: np.ndarray) -> tuple[float, float]:
    """(median, robust spread) of the paper's grey levels, from every fourth pixel brighter than ink."""
    sample = page[::4, ::4]
    paper = sample[sample > INK_THRESHOLD]
    if paper.size < 100:
        return 255.0, 0.0
    counts = np.bincount(paper, minlength=256)
    cumulative = np.cumsum(counts)
    median = int(np.searchsorted(cumulative, paper.size / 2.0))
    deviation = np.bincount(np.abs(np.arange(256) - median), weights=counts, minlength=256)
    mad = int(np.searchsorted(np.cumsum(deviation), paper.size / 2.0))
    return float(median), 1.4826 * mad


def ink_mask(page: np.ndarray) -> np.ndarray:
    """Ink pixels of a flat-fielded page. A born-digital page (paper exactly white) is cut at
    INK_THRESHOLD; any other is smoothed first, so noise neither breaks staff lines into short runs nor
    scatters ink specks, and cut just below its paper's noise, so thin lines that blur and JPEG left
    light grey still count as ink."""
    paper, spread = _paper_spread(page)
    if paper >= 254 and spread < 1.0:
        return page < INK_THRESHOLD
    smooth = cv2.GaussianBlur(page, (0, 0), DENOISE_SIGMA)
    paper, spread = _paper_spread(smooth)
    return smooth < np.clip(paper - max(NOISE_MARGIN * spread, MIN_DROP), INK_THRESHOLD, MAX_INK_THRESHOLD)


def clean_paper(image: np.ndarray, ink: np.ndarray) -> np.ndarray:
    """A scan's paper set to white, its ink and the ink's soft edges kept: the network learned from
    born-digital pages, whose paper is exactly 255, and a scan's paper noise and JPEG ringing around
    every snippet move its vector. A born-digital page is returned as it is."""
    paper, spread = _paper_spread(image)
    if paper >= 254 and spread < 1.0:
        return image
    near_ink = cv2.dilate(ink.view(np.uint8), np.ones((3, 3), np.uint8)).view(bool)
    return np.where(near_ink, image, np.uint8(255))


def _mode(lengths: np.ndarray, limit: int) -> float:
    counts = np.bincount(lengths[(lengths > 0) & (lengths < limit)], minlength=2)
    return float(np.argmax(counts[1:]) + 1)


def staff_metrics(ink: np.ndarray) -> StaffMetrics:
    """Line thickness = the most common vertical ink run; spacing = thickness + the most common paper
    run (staff lines are the commonest thing on a page of music, Fujinaga's classic estimate)."""
    cols = ink[:, :: max(1, ink.shape[1] // 200)].T.astype(np.int8)
    edges = np.diff(np.pad(cols, ((0, 0), (1, 1))), axis=1)
    r, c = np.nonzero(edges)
    starts, ends = c[:-1], c[1:]
    same_col = r[:-1] == r[1:]
    is_ink = edges[r[:-1], c[:-1]] == 1
    lengths = ends - starts
    limit = max(8, ink.shape[0] // 20)
    thickness = _mode(lengths[same_col & is_ink], limit)
    gap = _mode(lengths[same_col & ~is_ink], limit)
    return StaffMetrics(thickness=thickness, space=thickness + gap)


def _strip_profiles(ink: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row profiles of SKEW_STRIPS column strips (K, H) and each strip's centre x from the page centre."""
    h, w = ink.shape
    width = w // SKEW_STRIPS
    used = ink[:, : width * SKEW_STRIPS].view(np.uint8)
    profiles = cv2.reduce(used.reshape(h * SKEW_STRIPS, width), 1, cv2.REDUCE_SUM, dtype=cv2.CV_32F)
    centres = (np.arange(SKEW_STRIPS) + 0.5) * width - w / 2.0
    return profiles.reshape(h, SKEW_STRIPS).T.copy(), centres


def _sharpness(profiles: np.ndarray, centres: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """How peaked the page's row profile becomes when every strip is shifted back along each angle:
    staff lines add up into sharp peaks only at the page's true slope."""
    k, h = profiles.shape
    pad = int(np.ceil(np.abs(centres).max() * np.tan(np.radians(MAX_SKEW + 1)))) + 1
    padded = np.pad(profiles, ((0, 0), (pad, pad)))
    scores = np.empty(len(angles))
    for n, a in enumerate(angles):
        shifts = pad + np.round(centres * np.tan(np.radians(a))).astype(np.int64)
        total = np.zeros(h, np.float32)
        for strip, s in enumerate(shifts):
            total += padded[strip, s : s + h]
        scores[n] = float(np.dot(total, total))
    return scores


def _peak(angles: np.ndarray, scores: np.ndarray) -> float:
    """The best angle, refined by a parabola through it and its neighbours."""
    i = int(np.argmax(scores))
    if 0 < i < len(scores) - 1:
        left, mid, right = scores[i - 1 : i + 2]
        curve = left - 2 * mid + right
        if curve < 0:
            return float(angles[i] + 0.5 * (left - right) / curve * (angles[1] - angles[0]))
    return float(angles[i])


def skew_angle(ink: np.ndarray) -> float:
    """The page's slope in degrees (positive: lines descend to the right), within ±MAX_SKEW."""
    if ink.shape[1] < 4 * SKEW_STRIPS or not ink.any():
        return 0.0
    profiles, centres = _strip_profiles(ink)
    # coarse search on rows pooled by four (lines stay peaks at that scale), then fine at full height
    pooled = profiles[:, : profiles.shape[1] // 4 * 4].reshape(SKEW_STRIPS, -1, 4).sum(axis=2)
    coarse = np.arange(-MAX_SKEW, MAX_SKEW + 1e-9, COARSE_STEP)
    best = float(coarse[int(np.argmax(_sharpness(pooled, centres / 4.0, coarse)))])
    fine = np.arange(best - COARSE_STEP, best + COARSE_STEP + 1e-9, FINE_STEP)
    return _peak(fine, _sharpness(profiles, centres, fine))


def _band_slopes(ink: np.ndarray) -> np.ndarray | None:
    """(2, SHEAR_BANDS) band centre y and slope (tan) of the staff lines in horizontal bands, or None
    when every band is level: a slight perspective tilts the top and bottom of a page differently."""
    h = ink.shape[0]
    edges = np.linspace(0, h, SHEAR_BANDS + 1).astype(int)
    angles = np.arange(-MAX_SHEAR, MAX_SHEAR + 1e-9, FINE_STEP)
    slopes, centres = [], []
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        band = ink[a:b]
        if band.sum() < band.shape[1]:  # (nearly) empty band: no lines to measure
            continue
        profiles, strip_centres = _strip_profiles(band)
        slopes.append(np.tan(np.radians(_peak(angles, _sharpness(profiles, strip_centres, angles)))))
        centres.append((a + b) / 2.0)
    if not slopes or np.abs(np.degrees(np.arctan(slopes))).max() < MIN_SKEW:
        return None
    return np.array([centres, slopes])


def _unshear(image: np.ndarray, shear: np.ndarray) -> np.ndarray:
    """Shift every column of each row so that lines sloping by the band slopes become level."""
    h, w = image.shape
    slope = np.interp(np.arange(h, dtype=np.float64), shear[0], shear[1]).astype(np.float32)
    x = np.arange(w, dtype=np.float32)
    map_x = np.broadcast_to(x[None, :], (h, w)).astype(np.float32)
    map_y = (np.arange(h, dtype=np.float32)[:, None] + (x[None, :] - w / 2.0) * slope[:, None]).astype(np.float32)
    return cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderValue=255)


def prepare(page: np.ndarray, deskew: bool = True) -> PreparedPage:
    """Flat-field, straighten (unless told not to) and binarise a greyscale page for staff detection.

    Straightening is a rotation by the page's skew, then, where a slight perspective leaves bands of
    the page still sloping, a per-band shear that levels them.
    """
    if page.ndim != 2:
        raise ValueError("expected a greyscale page")
    image = flat_field(page)
    ink = ink_mask(image)
    angle = skew_angle(ink) if deskew else 0.0
    h, w = image.shape
    matrix = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    if abs(angle) >= MIN_SKEW:
        matrix = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), angle, 1.0)
        image = cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderValue=255)
        ink = ink_mask(image)
    else:
        angle = 0.0
    shear = _band_slopes(ink) if deskew else None
    if shear is not None:
        image = _unshear(image, shear)
        ink = ink_mask(image)
    return PreparedPage(image=image, ink=ink, metrics=staff_metrics(ink), angle=angle, matrix=matrix, shear=shear)
