"""The library seen with some pieces left out, for evaluations that ask "what if this piece were absent?"."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from indexer.library import Library


class LibraryView:
    """A library with some pieces left out: searches skip their snippets through the vector store's id filter
    (FAISS ID selectors, or a Milvus filter expression), so the k neighbours are the k nearest that remain.

    It answers the same queries as Library (embed_recording, embed_spectrogram, piece_sizes, search, snippets), so the
    production identification runs on it unchanged.
    """

    def __init__(self, library: Library, left_out: Iterable[int]) -> None:
        self.library = library
        self.settings = library.settings
        self.snippets = library.snippets
        self.left_out = np.array(sorted(set(left_out)), np.int64)
        owned = np.isin(library.snippets.pieces, self.left_out)
        # FAISS checks each candidate against a hash set: hand it the smaller of the two id sets
        small_out = owned.sum() <= len(owned) // 2
        self._allow = None if small_out else library.snippets.ids[~owned]
        self._deny = library.snippets.ids[owned] if small_out else None

    def embed_recording(self, wave: np.ndarray, hop_frames: int) -> tuple[np.ndarray, np.ndarray]:
        return self.library.embed_recording(wave, hop_frames)

    def embed_spectrogram(self, spec: np.ndarray, hop_frames: int, tempo: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        return self.library.embed_spectrogram(spec, hop_frames, tempo)

    def piece_sizes(self) -> np.ndarray:
        sizes = self.library.piece_sizes().copy()
        sizes[self.left_out[self.left_out < len(sizes)]] = 0
        return sizes

    def search(self, vectors: np.ndarray, k: int) -> np.ndarray:
        return self.library.index.search(vectors, k, allow=self._allow, deny=self._deny)[1]

    def piece_vectors(self, piece_id: int) -> np.ndarray:
        return self.library.piece_vectors(piece_id)
