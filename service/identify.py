"""Piece identification (paper §5): excerpts vote with their 25 nearest sheet snippets.

Beyond the paper:
- The query also votes as if played more slowly (Settings.query_tempi, query_excerpts): a 2.4-s audio
  excerpt slowed to 0.7 holds about the music of one 128-px sheet snippet, and on validation the right
  piece was ranked first for 97 of 168 queries against 87 as played alone (README, "Query tempi").
- Votes are weighed against the piece's size. A library of hundreds of pieces holds long quartets with
  10,000 snippets beside chorales with 100; raw counts let the long pieces (and "hub" snippets that sit
  near every query) win on chance alone. Each piece is ranked by how far its votes exceed what its share
  of the library predicts, in Poisson standard deviations: z = (votes − E) / √E, E = total · n_piece / n_all.
- The shortlist of pieces with the most significant votes is re-ranked by their votes and temporal
  consistency together: the z-score per √(votes cast) plus the share of excerpts whose hits
  progress through the piece along one tempo line (service/consistency.py). Chance votes, however many,
  land at unrelated places; the right piece's hits line up. Consistency alone ranked worse on validation
  with the shipped embedding; votes alone tie with the sum there, and the sum lets consistency decide
  where no piece's votes stand out (copies of one score splitting them; README, Identification).
- A calibrated confidence from the top piece's evidence, its margin over the runner-up and how well the
  best ranked pieces' alignments to the query fit (service/verify.py), an explicit no-match answer at a
  threshold calibrated per library size, and the part of the score the votes point at.
Works without HTTP (CLI and benchmarks call it directly); benchmarks leave pieces out by passing a
`LibraryView` (Library.without) instead of the library.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from indexer.library import Library
from indexer.library_view import LibraryView
from indexer.settings import QueryReadings
from model.audio import FPS, SAMPLE_RATE, spectrogram
from model.embed import nearest, normalised_mean
from service.consistency import consistency_scores
from service.verify import PathEvidence, path_evidence

DEFAULT_CALIBRATION = {"a": 1.0, "b": -3.0, "threshold": 0.5}  # used only until `sheetid eval calibrate` ran
MAX_RANKED = 10  # pieces returned
NO_PATH = PathEvidence()  # no piece aligned: the alignment terms add nothing
SHORTLIST = 30  # pieces, by vote z-score, whose hits are checked for temporal consistency


@dataclass(frozen=True)  # shared: Calibration.load hands out one parsed instance per file version
class Calibration:
    """confidence = sigmoid(a · m + b + c · ln n + d · s + e · p + f · g).

    m is the margin of the top piece's ranking score over the runner-up's, s the top piece's own score,
    n the number of pieces in the library, p the mean cosine distance along the top piece's alignment to
    the query and g how far the runner-ups' lie above it (service/verify.py). Chance evidence changes with
    the library's size, so the same margin means something else in a small library; c carries that.
    The answer is "no match" below the threshold, which the calibration sets per library size
    (`thresholds`: pieces → threshold, interpolated in ln n, held beyond the calibrated sizes) so that the
    same share of absent pieces is kept out at every size; `threshold` alone where no sizes are given.
    """

    a: float
    b: float
    threshold: float  # below this confidence the answer is "no match"
    c: float = 0.0
    d: float = 0.0
    e: float = 0.0
    f: float = 0.0
    thresholds: dict[int, float] | None = None

    @classmethod
    def load(cls, path: Path) -> Calibration:
        """The fitted calibration at `path` (Settings.calibration_path), or a neutral default before one exists.
        Parsed once per version of the file: identification asks for it on every query."""
        try:
            stamp = path.stat().st_mtime_ns
        except OSError:
            return cls.load_dict(DEFAULT_CALIBRATION)
        return _parsed_calibration(path, stamp)

    @classmethod
    def load_dict(cls, data: dict) -> Calibration:
        """The calibration of a fit's dictionary (benchmarks/calibrate.py writes it as JSON)."""
        by_size = data.get("thresholds_by_size")
        c, d, e, f = (float(data.get(k, 0.0)) for k in "cdef")
        return cls(float(data["a"]), float(data["b"]), float(data["threshold"]), c, d, e, f,
                   {int(n): float(t) for n, t in by_size.items()} if by_size else None)  # fmt: skip

    def confidence(self, margin: float, pieces: int = 1, top: float = 0.0, path: PathEvidence | None = None) -> float:
        path = path or NO_PATH
        logit = (self.a * margin + self.b + self.c * math.log(max(1, pieces)) + self.d * top
                 + self.e * path.top_cost + self.f * path.runner_up_gap)  # fmt: skip
        return 1.0 / (1.0 + math.exp(-min(60.0, max(-60.0, logit))))

    def threshold_for(self, pieces: int) -> float:
        """The no-match threshold of a library of `pieces` pieces."""
        if not self.thresholds:
            return self.threshold
        sizes = sorted(self.thresholds)
        return float(np.interp(math.log(max(1, pieces)), np.log(sizes), [self.thresholds[n] for n in sizes]))


@functools.lru_cache(maxsize=8)
def _parsed_calibration(path: Path, stamp: int) -> Calibration:
    """The calibration file at `path` as of modification time `stamp` (the cache key: a refit file is read anew)."""
    return Calibration.load_dict(json.loads(path.read_text()))


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


def rerank_scores(z: np.ndarray, consistency: np.ndarray, total_votes: float, vote_weight: float) -> np.ndarray:
    """The re-ranking score of shortlisted pieces: consistency plus `vote_weight` × each piece's vote z-score
    per √(votes cast), the vote excess as an effect size, (share − expected share) / √(expected share).

    Unlike the raw z-score it does not grow with the recording's length, and unlike a z-score relative to
    the best one it stays small when no piece's votes stand out (copies of one score splitting its votes,
    say), so consistency decides there."""
    return consistency + vote_weight * z / np.sqrt(max(total_votes, 1.0))


@dataclass
class RankedPiece:
    id: int
    votes: int
    score: float  # votes above chance for the piece's size, in Poisson standard deviations
    consistency: float = 0.0  # share of excerpts whose hits line up in this piece (0 when not re-ranked)
    rank_score: float = 0.0  # what the re-ranking sorts by: consistency + w · score / √votes (w: Settings)


@dataclass
class Identification:
    no_match: bool
    confidence: float
    pieces: list[RankedPiece]
    excerpts: int
    seconds: float
    matched_strip_x: tuple[float, float] | None = None  # where the top piece's votes fall (10th–90th pct)
    margin: float = 0.0
    reranked: bool = False  # ranked by temporal consistency (Settings.rerank)
    path: PathEvidence = NO_PATH  # how well the best ranked pieces' alignments fit (service/verify.py)

    @property
    def evidence(self) -> tuple[float, float]:
        """(margin, top) fed to the calibration: the re-ranked score when re-ranked, else vote z-scores."""
        values = [p.rank_score if self.reranked else p.score for p in self.pieces]
        return margin_statistic(values), (values[0] if values else 0.0)


def query_excerpts(library: Library | LibraryView, wave: np.ndarray, hop_frames: int, tempi: tuple[float, ...],
                   tempo_hop: int, readings: QueryReadings = "separate"
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """(centre frames, unit vectors, played) of a query's excerpts in time order: the recording as played
    (`played` true) every `hop_frames` and, for each factor in `tempi`, as if played that many times as
    fast, every `tempo_hop` of its own frames, its centres mapped back to the recording's frames.
    `readings` (Settings.query_readings): "mean" gives each excerpt as played the normalised mean of its
    vector and each tempo reading's window nearest its centre, and keeps only those; "mean+tempi" keeps the
    tempo readings beside the means."""
    spec = spectrogram(wave)
    versions = [library.embed_spectrogram(spec, hop_frames)]
    versions += [library.embed_spectrogram(spec, tempo_hop, f) for f in tempi if f != 1.0]
    if readings != "separate" and len(versions) > 1:
        played_centres, played_vectors = versions[0]
        mean = normalised_mean([played_vectors] + [v[nearest(c.astype(np.float64), played_centres.astype(np.float64))]
                                                   for c, v in versions[1:]])  # fmt: skip
        versions = [(played_centres, mean)] + (versions[1:] if readings == "mean+tempi" else [])
    centres = np.concatenate([c for c, _ in versions])
    order = np.argsort(centres, kind="stable")  # consistency reads the excerpts' times in order
    vectors = np.concatenate([v for _, v in versions])
    played = np.arange(len(centres)) < len(versions[0][1])
    return centres[order], vectors[order], played[order]


def identify(library: Library | LibraryView, wave: np.ndarray, calibration: Calibration | None = None,
             hop_frames: int | None = None, top_k: int | None = None) -> Identification:  # fmt: skip
    """Rank the library's pieces by their excerpts' votes; "no match" below the calibrated confidence."""
    st = library.settings
    calibration = calibration or Calibration.load(st.calibration_path)
    if st.no_match_threshold is not None:
        calibration = replace(calibration, threshold=st.no_match_threshold, thresholds=None)  # keeps the weights
    centres, vectors, played = query_excerpts(library, wave, hop_frames or st.excerpt_hop, st.query_tempi,
                                              st.query_tempo_hop, st.query_readings)  # fmt: skip
    seconds, excerpts = len(wave) / SAMPLE_RATE, int(played.sum())
    sizes = library.piece_sizes()
    if sizes.sum() == 0 or excerpts == 0:
        return Identification(True, 0.0, [], excerpts, seconds)
    ids = library.search(vectors, top_k or st.top_k)
    pieces = library.snippets.piece_of(ids.ravel())
    valid = pieces >= 0
    votes = np.bincount(pieces[valid], minlength=len(sizes))[: len(sizes)]
    scores = vote_scores(votes.astype(np.float64), sizes.astype(np.float64))
    shortlist = [int(i) for i in np.argsort(-scores, kind="stable")[: SHORTLIST if st.rerank else MAX_RANKED]
                 if votes[i] > 0]  # fmt: skip
    consistency = rank_score = np.zeros(len(shortlist))
    if st.rerank and shortlist:
        consistency = consistency_scores(centres / FPS, pieces.reshape(ids.shape),
                                         library.snippets.strip_x_at(ids), shortlist)  # fmt: skip
        rank_score = rerank_scores(scores[shortlist], consistency, float(votes.sum()), st.rerank_vote_weight)
        order = np.argsort(-rank_score, kind="stable")  # the shortlist is in vote order: ties keep it
        shortlist, consistency, rank_score = [shortlist[i] for i in order], consistency[order], rank_score[order]
    ranked = [RankedPiece(i, int(votes[i]), float(scores[i]), float(c), float(r))
              for i, c, r in zip(shortlist[:MAX_RANKED], consistency[:MAX_RANKED], rank_score[:MAX_RANKED],
                                 strict=True)]  # fmt: skip
    path = path_evidence(library, vectors[played], [p.id for p in ranked])  # the path follows the recording
    result = Identification(True, 0.0, ranked, excerpts, seconds, reranked=st.rerank, path=path)
    margin, top = result.evidence
    n_pieces = int((sizes > 0).sum())
    confidence = calibration.confidence(margin, n_pieces, top, path)
    matched = None
    if ranked:
        top_ids = ids.ravel()[valid][pieces[valid] == ranked[0].id]
        xs = library.snippets.strip_x_of(top_ids)
        matched = (float(np.percentile(xs, 10)), float(np.percentile(xs, 90))) if len(xs) else None
    return Identification(confidence < calibration.threshold_for(n_pieces), confidence, ranked, excerpts, seconds,
                          matched, margin, st.rerank, path)  # fmt: skip
