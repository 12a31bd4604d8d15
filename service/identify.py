"""Piece identification (paper §5): excerpts vote with their 25 nearest sheet snippets.

Beyond the paper:
- Votes are weighed against the piece's size. A library of hundreds of pieces holds long quartets with
  10,000 snippets beside chorales with 100; raw counts let the long pieces (and "hub" snippets that sit
  near every query) win on chance alone. Each piece is ranked by how far its votes exceed what its share
  of the library predicts, in Poisson standard deviations: z = (votes − E) / √E, E = total · n_piece / n_all.
- A calibrated confidence from the margin between the top two pieces, an explicit no-match answer, and
  the part of the score the votes point at.
Works without HTTP (CLI and benchmarks call it directly); benchmarks leave pieces out by passing a
`LibraryView` (Library.without) instead of the library.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from indexer.library import Library, LibraryView
from model.audio import SAMPLE_RATE

DEFAULT_CALIBRATION = {"a": 1.0, "b": -3.0, "threshold": 0.5}  # used only until `sheetid eval calibrate` ran
MAX_RANKED = 10  # pieces returned


@dataclass
class Calibration:
    """confidence = sigmoid(a · m + b + c · ln n).

    m is the top piece's vote z-score minus the runner-up's, and n is the number of pieces in the library.
    Vote margins grow with the library (chance votes spread thinner), so the same margin means less in
    a small library; c carries that.
    """

    a: float
    b: float
    threshold: float  # below this confidence the answer is "no match"
    c: float = 0.0

    @classmethod
    def load(cls, path: Path) -> Calibration:
        """The fitted calibration at `path` (Settings.calibration_path), or a neutral default before one exists."""
        data = json.loads(path.read_text()) if path.exists() else DEFAULT_CALIBRATION
        return cls(float(data["a"]), float(data["b"]), float(data["threshold"]), float(data.get("c", 0.0)))

    def confidence(self, z: float, pieces: int = 1) -> float:
        logit = self.a * z + self.b + self.c * math.log(max(1, pieces))
        return 1.0 / (1.0 + math.exp(-min(60.0, max(-60.0, logit))))


def margin_statistic(scores: list[float]) -> float:
    """Top score minus the runner-up's (z-scores); 0 when nothing voted."""
    s1 = scores[0] if scores else 0.0
    s2 = scores[1] if len(scores) > 1 else 0.0
    return s1 - max(s2, 0.0)


def vote_scores(votes: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Poisson z-score of each piece's votes given its share of the library's snippets (−inf: no snippets)."""
    expected = votes.sum() * sizes / max(1, sizes.sum())
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (votes - expected) / np.sqrt(expected)
    return np.where(sizes > 0, z, -np.inf)


@dataclass
class RankedPiece:
    id: int
    votes: int
    score: float  # votes above chance for the piece's size, in Poisson standard deviations


@dataclass
class Identification:
    no_match: bool
    confidence: float
    pieces: list[RankedPiece]
    excerpts: int
    seconds: float
    matched_strip_x: tuple[float, float] | None = None  # where the top piece's votes fall (10th–90th pct)
    margin: float = 0.0


def identify(library: Library | LibraryView, wave: np.ndarray, calibration: Calibration | None = None,
             hop_frames: int | None = None, top_k: int | None = None) -> Identification:  # fmt: skip
    """Rank the library's pieces by their excerpts' votes; "no match" below the calibrated confidence."""
    st = library.settings
    calibration = calibration or Calibration.load(st.calibration_path)
    if st.no_match_threshold is not None:
        calibration = Calibration(calibration.a, calibration.b, st.no_match_threshold, calibration.c)
    _, vectors = library.embed_recording(wave, hop_frames or st.excerpt_hop)
    seconds = len(wave) / SAMPLE_RATE
    sizes = library.piece_sizes()
    if sizes.sum() == 0 or len(vectors) == 0:
        return Identification(True, 0.0, [], len(vectors), seconds)
    ids = library.search(vectors, top_k or st.top_k)
    pieces = library.snippets.piece_of(ids.ravel())
    valid = pieces >= 0
    votes = np.bincount(pieces[valid], minlength=len(sizes))[: len(sizes)]
    scores = vote_scores(votes.astype(np.float64), sizes.astype(np.float64))
    order = [int(i) for i in np.argsort(-scores, kind="stable")[:MAX_RANKED] if votes[i] > 0]
    ranked = [RankedPiece(i, int(votes[i]), float(scores[i])) for i in order]
    z = margin_statistic([r.score for r in ranked])
    confidence = calibration.confidence(z, int((sizes > 0).sum()))
    matched = None
    if ranked:
        top_ids = ids.ravel()[valid][pieces[valid] == ranked[0].id]
        xs = library.snippets.strip_x_of(top_ids)
        matched = (float(np.percentile(xs, 10)), float(np.percentile(xs, 90))) if len(xs) else None
    return Identification(confidence < calibration.threshold, confidence, ranked, len(vectors), seconds, matched, z)
