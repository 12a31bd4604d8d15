"""FAISS backend: the embedded VectorIndex of one process, saved atomically to the data directory.

One process owns the file: `sheetid serve` with its embedded ingest worker (the default shape). Every
change is saved before the call returns, so a crash leaves the last saved index and its manifest,
which start-up compares with the database (and rebuilds from it when they disagree).
"""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np

from indexer.vector_store import VectorStore
from indexer.vectors import VectorIndex


class FaissStore(VectorStore):
    shared = False

    def __init__(self, path: Path, model_version: str, factory: str = "Flat") -> None:
        self.path = path
        self.model_version = model_version
        self.factory = factory
        loaded = VectorIndex.load(path)
        usable = loaded is not None and loaded.model_version == model_version and loaded.factory == factory
        self.index = loaded if usable and loaded is not None else VectorIndex(model_version, factory)

    @property
    def ntotal(self) -> int:
        return self.index.ntotal

    def save(self) -> None:
        self.index.save(self.path)

    def add(self, ids: np.ndarray, pieces: np.ndarray, vectors: np.ndarray) -> None:
        self.index.add(ids, vectors)
        self.save()

    def remove(self, ids: np.ndarray, pieces: list[int] | None = None) -> int:
        """Removes by id (FAISS keeps no piece field); RuntimeError for index types without removal (HNSW)."""
        removed = self.index.remove(np.asarray(ids, np.int64)) if len(ids) else 0
        if removed:
            self.save()
        return removed

    def search(self, queries: np.ndarray, k: int, allow: np.ndarray | None = None,
               deny: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        return self.index.search(queries, k, allow=allow, deny=deny)

    def ids(self) -> np.ndarray:
        with self.index.lock:
            return np.sort(faiss.vector_to_array(self.index.index.id_map).astype(np.int64))

    def agrees_with(self, ids: np.ndarray) -> bool:
        max_id = int(ids.max()) if len(ids) else -1
        return self.index.ntotal == len(ids) and self.index.max_id == max_id

    def rebuild(self, ids: np.ndarray, pieces: np.ndarray, vectors: np.ndarray) -> None:
        index = VectorIndex(self.model_version, self.factory)
        index.add(ids, vectors)
        index.save(self.path)
        self.index = index

