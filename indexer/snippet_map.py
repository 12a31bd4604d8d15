"""Where each FAISS id sits: its piece and strip position, for vote counting and alignment."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class PieceSnippets:
    ids: np.ndarray  # (N,) snippet ids in strip order
    strip_x: np.ndarray  # (N,) centre in the unrolled strip
    page: np.ndarray  # (N,) 1-based page
    system: np.ndarray  # (N,) system index
    boxes: np.ndarray  # (N, 4) x0, y0, x1, y1 on the page
    vectors: np.ndarray  # (N, 32)
    # factor -> (N, 32): the same snippets with the strip read that many times as wide (dense_snippets only)
    vectors_at_width: dict[float, np.ndarray] = field(default_factory=dict)


class SnippetMap:
    """FAISS id → (piece id, strip x), kept in sorted arrays for vectorised lookups."""

    def __init__(self) -> None:
        self.ids = np.zeros(0, np.int64)
        self.pieces = np.zeros(0, np.int64)
        self.strip_x = np.zeros(0, np.float64)

    def set(self, ids: np.ndarray, pieces: np.ndarray, strip_x: np.ndarray) -> None:
        order = np.argsort(ids)
        self.ids = np.asarray(ids, np.int64)[order]
        self.pieces = np.asarray(pieces, np.int64)[order]
        self.strip_x = np.asarray(strip_x, np.float64)[order]

    def add(self, ids: np.ndarray, piece: int, strip_x: np.ndarray) -> None:
        self.set(np.concatenate([self.ids, ids]), np.concatenate([self.pieces, np.full(len(ids), piece)]),
                 np.concatenate([self.strip_x, strip_x]))  # fmt: skip

    def drop_piece(self, piece: int) -> None:
        keep = self.pieces != piece
        self.ids, self.pieces, self.strip_x = self.ids[keep], self.pieces[keep], self.strip_x[keep]

    def _find(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ids = np.asarray(ids, np.int64)
        if len(self.ids) == 0:
            return np.zeros(ids.shape, np.int64), np.zeros(ids.shape, bool)
        pos = np.clip(np.searchsorted(self.ids, ids), 0, len(self.ids) - 1)
        return pos, self.ids[pos] == ids

    def piece_of(self, ids: np.ndarray) -> np.ndarray:
        """Piece id per FAISS id; -1 for ids that are unknown (or -1 padding from FAISS)."""
        pos, found = self._find(ids)
        return np.where(found, self.pieces[pos] if len(self.ids) else -1, -1)

    def piece_ids(self, piece: int) -> np.ndarray:
        """The piece's ids in strip order (ties in id order)."""
        mine = self.pieces == piece
        return self.ids[mine][np.argsort(self.strip_x[mine], kind="stable")]

    def piece_sizes(self) -> np.ndarray:
        """Snippets per piece id (index = piece id)."""
        return np.bincount(self.pieces) if len(self.pieces) else np.zeros(1, np.int64)

    def strip_x_at(self, ids: np.ndarray) -> np.ndarray:
        """Strip x per id, same shape as `ids`; NaN for unknown ids (and FAISS's −1 padding)."""
        pos, found = self._find(ids)
        return np.where(found, self.strip_x[pos] if len(self.ids) else np.nan, np.nan)

    def strip_x_of(self, ids: np.ndarray) -> np.ndarray:
        pos, found = self._find(ids)
        return self.strip_x[pos[found]] if len(self.ids) else np.zeros(0)
