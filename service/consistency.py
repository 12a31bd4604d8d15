"""Temporal consistency of the votes: the hits of the right piece line up, chance hits do not.

An excerpt at time t that truly comes from a piece finds snippets near the strip position x(t), and for
a stretch of music played at a steady tempo x(t) ≈ x0 + v·t. Chance neighbours ("hub" snippets, pieces
that share a cadence) land at unrelated positions. So each shortlisted piece is scored by the largest
number of distinct excerpts whose hits fall on one line x − v·t = const, searched over a grid of slopes
v (strip px per second: tempo × engraving density) and offset bins, in windows of the recording short
enough for the tempo to be roughly steady (and for a repeat to start a new line).
"""

from __future__ import annotations

import numpy as np

SLOPES = np.geomspace(20.0, 320.0, 25)  # strip px per second; 75 is 120 bpm in verovio's default density
OFFSET_BIN = 64.0  # px; half a sheet window: an excerpt's hits scatter about that much around its position
WINDOW_S = 12.0  # seconds of recording scored at a time
WINDOW_STEP_S = 6.0  # seconds between window starts


def consistency_scores(times: np.ndarray, hit_pieces: np.ndarray, hit_x: np.ndarray,
                       candidates: list[int]) -> np.ndarray:  # fmt: skip
    """Per candidate piece: the share of a window's excerpts whose hits lie on one line, averaged over the
    recording's windows.

    times: (N,) excerpt centre times in seconds; hit_pieces, hit_x: (N, k) piece and strip x of each
    excerpt's k nearest snippets (piece −1 for padding). All candidates, windows, slopes and both offset
    grids are scored in one vectorised pass: a key per (candidate, window, slope, bin), distinct excerpts
    per key, the best key per (candidate, window).
    """
    n, k = hit_pieces.shape
    if n == 0 or not candidates:
        return np.zeros(len(candidates))
    duration = float(times[-1] - times[0])
    starts = np.arange(0.0, max(duration - WINDOW_S, 0.0) + 1e-9, WINDOW_STEP_S) + float(times[0])
    cand = np.asarray(candidates, dtype=np.int64)
    order = np.argsort(cand)
    flat = hit_pieces.ravel()
    pos = np.clip(np.searchsorted(cand[order], flat), 0, len(cand) - 1)
    keep = cand[order][pos] == flat
    c_idx = order[pos[keep]]  # candidate index of every kept hit
    e_idx = np.repeat(np.arange(n), k)[keep]
    t, x = times[e_idx], hit_x.ravel()[keep]
    # every hit joins each window it falls in (windows overlap by half)
    w_of = np.floor((t - starts[0]) / WINDOW_STEP_S).astype(np.int64)
    rows = [(w, w >= 0) for w in (w_of, w_of - 1)]
    ws: list[np.ndarray] = []
    cs: list[np.ndarray] = []
    es: list[np.ndarray] = []
    ts: list[np.ndarray] = []
    xs: list[np.ndarray] = []
    for w, ok in rows:
        ok = ok & (w < len(starts)) & (t < starts[np.clip(w, 0, len(starts) - 1)] + WINDOW_S)
        for out, values in ((ws, w[ok]), (cs, c_idx[ok]), (es, e_idx[ok]), (ts, t[ok] - starts[w[ok]]), (xs, x[ok])):
            out.append(values)
    w, c, e, tr, xr = (np.concatenate(a) for a in (ws, cs, es, ts, xs))
    if len(w) == 0:
        return np.zeros(len(cand))
    best = np.zeros((len(cand), len(starts)))
    n_s = len(SLOPES)
    for shift in (0.0, OFFSET_BIN / 2):  # two bin grids, so a line on a bin edge is not split in two
        bins = np.floor((xr[None, :] - SLOPES[:, None] * tr[None, :] + shift) / OFFSET_BIN).astype(np.int64)
        bins -= bins.min()
        n_bins = int(bins.max()) + 1
        group = ((c * len(starts) + w)[None, :] * n_s + np.arange(n_s)[:, None]) * n_bins + bins
        cw, counts = _most_per_line(group, e, n, n_s * n_bins)
        np.maximum.at(best.ravel(), cw, counts)
    excerpts_per_window = max(1.0, n * min(1.0, WINDOW_S / max(duration, 1e-9)))
    return best.sum(axis=1) / (len(starts) * excerpts_per_window)


def _most_per_line(group: np.ndarray, excerpt: np.ndarray, n: int,
                   lines_per_window: int) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(candidate · windows + window, the most distinct excerpts on one of its lines) for every pair with hits.

    group holds each hit's line key ((candidate · windows + window) · lines_per_window + line), broadcast
    against `excerpt` (each hit's excerpt index, < n). One sort of the (line, excerpt) keys does what two
    np.unique calls did: the keys are sorted, so lines and windows are runs that boundaries delimit.
    """
    keys = np.sort((group * n + excerpt[None, :]).ravel())
    keys = keys[np.r_[True, keys[1:] != keys[:-1]]]  # one vote per excerpt and line
    lines = keys // n
    line_start = np.flatnonzero(np.r_[True, lines[1:] != lines[:-1]])
    per_line = np.diff(np.r_[line_start, len(lines)])
    windows = lines[line_start] // lines_per_window
    window_start = np.flatnonzero(np.r_[True, windows[1:] != windows[:-1]])
    return windows[window_start], np.maximum.reduceat(per_line, window_start)
