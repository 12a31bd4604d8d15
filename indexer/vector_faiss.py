"""FAISS backend: a cosine index over snippet vectors (VectorIndex) and the VectorStore that keeps one
per process, saved atomically to the data directory next to a manifest.

Vectors are L2-normalised, so inner product = cosine similarity. Ids are the snippets' primary keys.
The manifest records the model version, ntotal and the largest id, which is how start-up notices an
index that disagrees with the database (and rebuilds it from the stored vectors).

One process owns the file: `sheetid serve` with its embedded ingest worker (the default shape). Every
change is saved before the call returns, so a crash leaves the last saved index and its manifest.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from indexer.vector_store import VectorStore
from model.embed import EMBED_DIM as DIM

HNSW_EF_SEARCH = 128  # search breadth for HNSW indexes (recall vs speed)
# IVF lists visited per query: a share of the lists, since the true neighbours spread over more lists as
# the index grows (1 M synthetic vectors, IVF3968: 16 lists recall@25 0.34, 256 lists 0.89; sheetid bench
# --vector-scale 1000000 --engine faiss-ivf --nprobe 64 --nprobe 256)
IVF_PROBE_SHARE = 1 / 16
IVF_MIN_NPROBE = 16
# Exact (Flat) search takes FAISS's BLAS path (one matrix product per block, then the top k) from this many
# queries up. This build's default (FAISS_BLAS_THRESHOLD, 128,000) sent a query's ~180 excerpts down the
# per-query path instead: 64.6 ms against 28.5 ms inside identify on 2 cores (README, Speed).
FAISS_BLAS_THRESHOLD = faiss.cvar.distance_compute_blas_threshold
BLAS_FROM_QUERIES = 20
faiss.cvar.distance_compute_blas_threshold = BLAS_FROM_QUERIES


@dataclass
class Manifest:
    model_version: str
    ntotal: int
    max_id: int
    factory: str

    @classmethod
    def read(cls, path: Path) -> Manifest | None:
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None


def _fsync_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class VectorIndex:
    """Thread-safe wrapper: searches may run concurrently with each other, not with writes."""

    def __init__(self, model_version: str, factory: str = "Flat") -> None:
        self.model_version = model_version
        self.factory = factory
        self.index: Any = faiss.IndexIDMap2(faiss.index_factory(DIM, factory, faiss.METRIC_INNER_PRODUCT))
        self.max_id = -1
        self.lock = threading.RLock()
        self.nprobe: int | None = None  # IVF lists visited per query; None: IVF_PROBE_SHARE of the lists

    def ivf_nprobe(self) -> int | None:
        """Lists an IVF search visits (None for other index types)."""
        inner = faiss.downcast_index(self.index.index)
        return self._probes(inner.nlist) if isinstance(inner, faiss.IndexIVF) else None

    def _probes(self, nlist: int) -> int:
        return self.nprobe or min(nlist, max(IVF_MIN_NPROBE, int(nlist * IVF_PROBE_SHARE)))

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids) == 0:
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        faiss.normalize_L2(vectors)
        with self.lock:
            inner = faiss.downcast_index(self.index.index)
            if not inner.is_trained:
                inner.train(vectors)
            self.index.add_with_ids(vectors, np.asarray(ids, dtype=np.int64))
            self.max_id = max(self.max_id, int(np.max(ids)))

    def remove(self, ids: np.ndarray) -> int:
        with self.lock:
            return int(self.index.remove_ids(np.asarray(ids, dtype=np.int64)))  # type: ignore[arg-type]

    def search(self, queries: np.ndarray, k: int, allow: np.ndarray | None = None,
               deny: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """(similarities, ids), both (n, k); ids are -1 where fewer than k vectors exist.

        `allow` restricts the search to those ids, `deny` leaves those ids out (FAISS ID selectors, so the
        k neighbours are the k nearest among the remaining vectors, not a filtered top k).
        """
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        faiss.normalize_L2(queries)
        selectors = _selectors(allow, deny)
        with self.lock:
            inner = faiss.downcast_index(self.index.index)
            params: Any = None
            if isinstance(inner, faiss.IndexHNSW):
                inner.hnsw.efSearch = max(HNSW_EF_SEARCH, k)
                if selectors:
                    params = _search_params("SearchParametersHNSW", sel=selectors[-1], efSearch=inner.hnsw.efSearch)
            elif isinstance(inner, faiss.IndexIVF):
                inner.nprobe = self._probes(inner.nlist)
                if selectors:
                    params = _search_params("SearchParametersIVF", sel=selectors[-1], nprobe=inner.nprobe)
            elif selectors:
                params = _search_params("SearchParameters", sel=selectors[-1])
            return self.index.search(queries, min(k, max(1, self.ntotal)), params=params)

    def save(self, path: Path) -> None:
        """Index file first, then manifest, each written to a temp file, fsynced and renamed."""
        with self.lock:
            data = faiss.serialize_index(self.index).tobytes()
            manifest = Manifest(self.model_version, self.ntotal, self.max_id, self.factory)
        path.parent.mkdir(parents=True, exist_ok=True)
        _fsync_write(path, data)
        _fsync_write(manifest_path(path), json.dumps(manifest.__dict__).encode())

    @classmethod
    def load(cls, path: Path) -> VectorIndex | None:
        manifest = Manifest.read(manifest_path(path))
        if manifest is None or not path.exists():
            return None
        try:
            index = faiss.deserialize_index(np.frombuffer(path.read_bytes(), dtype=np.uint8))
        except RuntimeError:
            return None
        out = cls(manifest.model_version, manifest.factory)
        out.index = index
        out.max_id = manifest.max_id
        if out.ntotal != manifest.ntotal:  # index and manifest from different saves
            return None
        return out


def _search_params(kind: str, **fields: Any) -> Any:
    """faiss.<kind>(**fields), built through getattr: the faiss type stubs lack these classes' fields."""
    return getattr(faiss, kind)(**fields)


def _selectors(allow: np.ndarray | None, deny: np.ndarray | None) -> list[Any]:
    """The FAISS selector chain (last one is used); earlier entries keep the inner selectors alive."""
    if allow is not None:
        return [faiss.IDSelectorBatch(np.ascontiguousarray(allow, dtype=np.int64))]
    if deny is not None and len(deny):
        batch = faiss.IDSelectorBatch(np.ascontiguousarray(deny, dtype=np.int64))
        return [batch, faiss.IDSelectorNot(batch)]
    return []


def manifest_path(index_path: Path) -> Path:
    return index_path.with_name(index_path.name + ".manifest.json")


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

    def vectors(self, ids: np.ndarray) -> np.ndarray | None:
        """Read back from memory (Flat and HNSW keep the vectors; IVF without a direct map cannot: None)."""
        with self.index.lock:
            try:
                return self.index.index.reconstruct_batch(np.asarray(ids, np.int64))
            except RuntimeError:
                return None

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

