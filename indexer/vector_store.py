"""The vector-store interface and the one setting that picks a backend.

Two backends answer the same calls: FAISS, embedded in one process (the default: laptop, demo, CI), and
Milvus, a server that many API replicas and workers share (or Milvus Lite, the same client API on a
local file, for tests). The database stays the source of truth: snippet ids are its primary keys, and
either store can be brought back in line with it from the vectors stored there.

`SHEETID_VECTOR_STORE` picks the backend:
- `faiss` (default): `<data_dir>/snippets.faiss`, factory from `SHEETID_INDEX_FACTORY`;
- `milvus://host:19530` (or `milvus+https://host:443`): a Milvus server;
- `milvus-lite:///abs/path.db`, `milvus-lite://rel/path.db` (relative to the data directory) or any
  path ending in `.db`: Milvus Lite, in-process, one process at a time.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import numpy as np


class VectorStore(ABC):
    """Cosine search over unit snippet vectors keyed by snippet id; each vector also knows its piece."""

    model_version: str
    shared: bool  # True: other processes write and search the same store (Milvus server)

    @property
    @abstractmethod
    def ntotal(self) -> int:
        """Vectors held."""

    @abstractmethod
    def add(self, ids: np.ndarray, pieces: np.ndarray, vectors: np.ndarray) -> None:
        """Store vectors (L2-normalised here); durable when this returns. Re-adding an id replaces it."""

    @abstractmethod
    def remove(self, ids: np.ndarray, pieces: list[int] | None = None) -> int:
        """Delete these snippet ids, and with `pieces` every vector of those pieces; durable on return."""

    @abstractmethod
    def search(self, queries: np.ndarray, k: int, allow: np.ndarray | None = None,
               deny: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """(similarities, ids), both (n, k); ids are -1 where fewer than k vectors exist.

        `allow` restricts the search to those ids and `deny` leaves those ids out (evaluations).
        """

    @abstractmethod
    def ids(self) -> np.ndarray:
        """Every id held, sorted (consistency checks; a full scan)."""

    @abstractmethod
    def agrees_with(self, ids: np.ndarray) -> bool:
        """Cheap start-up check: does the store hold exactly these ids (count and bounds)?"""

    @abstractmethod
    def rebuild(self, ids: np.ndarray, pieces: np.ndarray, vectors: np.ndarray) -> None:
        """Make the store hold exactly these vectors."""

    def vectors(self, ids: np.ndarray) -> np.ndarray | None:
        """The stored unit vectors of `ids` (all held), (n, D); None where this store cannot read vectors back
        cheaply, and the caller reads the database instead."""
        return None

    def close(self) -> None:  # noqa: B027 - optional for backends without connections
        """Release connections."""


@dataclass(frozen=True)
class StoreSpec:
    kind: str  # "faiss" | "milvus" | "milvus-lite"
    uri: str  # FAISS index file, Milvus server URI or Milvus Lite file


def parse_store(setting: str, data_dir: Path) -> StoreSpec:
    """The backend named by SHEETID_VECTOR_STORE (see the module docstring); ValueError when unreadable."""
    value = setting.strip()
    if value.lower() in ("", "faiss"):
        return StoreSpec("faiss", str(data_dir / "snippets.faiss"))
    if value.startswith(("milvus://", "milvus+http://", "milvus+https://")):
        scheme, rest = value.split("://", 1)
        if not rest:
            raise ValueError(f"vector store {value!r}: no host")
        return StoreSpec("milvus", ("https" if scheme.endswith("https") else "http") + "://" + rest)
    if value.startswith("milvus-lite://"):
        path = Path(value.removeprefix("milvus-lite://"))
        return StoreSpec("milvus-lite", str(path if path.is_absolute() else data_dir / path))
    if value.endswith(".db"):
        path = Path(value)
        return StoreSpec("milvus-lite", str(path if path.is_absolute() else data_dir / path))
    raise ValueError(f"vector store {value!r}: expected 'faiss', 'milvus://host:port' or a Milvus Lite .db file")


def open_vector_store(setting: str, data_dir: Path, model_version: str, faiss_factory: str = "Flat",
                      milvus_index: str = "HNSW", milvus_consistency: str = "Strong") -> VectorStore:  # fmt: skip
    """The configured backend, opened for this model version (FAISS: loaded from disk when present)."""
    spec = parse_store(setting, data_dir)
    if spec.kind == "faiss":
        from indexer.vector_faiss import FaissStore

        return FaissStore(Path(spec.uri), model_version, faiss_factory)
    from indexer.vector_milvus import MilvusStore

    return MilvusStore(spec.uri, model_version, milvus_index, shared=spec.kind == "milvus",
                       consistency=milvus_consistency)
