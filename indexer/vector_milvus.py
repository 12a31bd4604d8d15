"""Milvus backend (pymilvus): one collection per model version, shared by every replica and worker.

Collection `sheetid_<model version>`: `id` (the snippet's database primary key), `piece_id` (so a piece's
vectors can be deleted by piece even when its snippet rows are already gone), `vector` (32 floats, unit
length, so inner product = cosine). Writes use upsert, so a retried ingest never duplicates a vector.
Counts and id scans (the start-up consistency check) always read with Strong consistency; searches use the
configured level: Strong (the default) sees every write acknowledged before it, at the price of waiting
for the server's time tick, about 200 ms a search; Bounded answers at once from slightly older data. The
same class drives Milvus Lite (a local `.db` file, in-process) for tests.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from indexer.vector_store import VectorStore
from model.embed import EMBED_DIM as DIM

HNSW_PARAMS = {"M": 16, "efConstruction": 200}  # graph degree and build breadth
HNSW_EF_SEARCH = 128  # search breadth (as for FAISS HNSW)
IVF_NLIST = 4096  # IVF lists (about sqrt of the collection size at 10-20 M vectors)
IVF_NPROBE = IVF_NLIST // 16  # lists visited per query: the same share of the lists as for FAISS IVF
WRITE_BATCH = 10_000  # rows per upsert request (gRPC messages stay well under 64 MB)
SCAN_BATCH = 16_384  # ids per page when listing a collection
MAX_FILTER_IDS = 100_000  # `id in [...]` filters longer than this are refused rather than sent
# Every call has a deadline: a Milvus that stops answering fails the request or ingest job (which the
# worker reports and moves on from) instead of blocking a worker forever while its lease keeps renewing.
CALL_TIMEOUT_S = 120.0
CONSISTENCY_LEVELS = ("Strong", "Bounded", "Session", "Eventually")


def collection_name(model_version: str) -> str:
    """Milvus names allow letters, digits and underscores."""
    return "sheetid_" + re.sub(r"[^A-Za-z0-9_]", "_", model_version)[:200]


class MilvusStore(VectorStore):
    def __init__(self, uri: str, model_version: str, index_kind: str = "HNSW", shared: bool = True,
                 consistency: str = "Strong") -> None:  # fmt: skip
        from pymilvus import MilvusClient

        self.uri = uri
        self.model_version = model_version
        self.shared = shared
        self.index_kind = index_kind.upper()
        if self.index_kind not in ("HNSW", "IVF_FLAT", "FLAT"):
            raise ValueError(f"milvus index {index_kind!r}: expected HNSW, IVF_FLAT or FLAT")
        if consistency not in CONSISTENCY_LEVELS:
            raise ValueError(f"milvus consistency {consistency!r}: expected one of {', '.join(CONSISTENCY_LEVELS)}")
        self.consistency = consistency
        self.client = MilvusClient(uri, timeout=CALL_TIMEOUT_S)
        self.name = collection_name(model_version)
        self._ensure_collection()

    # ---- set-up ---------------------------------------------------------------------------------
    def _ensure_collection(self) -> None:
        from pymilvus import DataType, MilvusClient

        if not self.client.has_collection(self.name):
            schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False,
                                                description=f"sheetid snippets of model {self.model_version}")
            schema.add_field("id", DataType.INT64, is_primary=True)
            schema.add_field("piece_id", DataType.INT64)
            schema.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM)
            params = self.client.prepare_index_params()
            params.add_index(field_name="vector", index_type=self.index_kind, metric_type="IP",
                             params=self._build_params())  # fmt: skip
            try:
                self.client.create_collection(self.name, schema=schema, index_params=params,
                                              consistency_level="Strong")  # fmt: skip
            except Exception:  # another replica created it first
                if not self.client.has_collection(self.name):
                    raise
        self.client.load_collection(self.name, timeout=CALL_TIMEOUT_S)

    def _build_params(self) -> dict[str, Any]:
        return {"HNSW": HNSW_PARAMS, "IVF_FLAT": {"nlist": IVF_NLIST}, "FLAT": {}}[self.index_kind]

    def _search_params(self, k: int) -> dict[str, Any]:
        params = {"HNSW": {"ef": max(HNSW_EF_SEARCH, k)}, "IVF_FLAT": {"nprobe": IVF_NPROBE}, "FLAT": {}}
        return {"metric_type": "IP", "params": params[self.index_kind]}

    # ---- VectorStore ----------------------------------------------------------------------------
    @property
    def ntotal(self) -> int:
        rows = self.client.query(self.name, filter="", output_fields=["count(*)"], timeout=CALL_TIMEOUT_S)
        return int(rows[0]["count(*)"]) if rows else 0

    def add(self, ids: np.ndarray, pieces: np.ndarray, vectors: np.ndarray) -> None:
        ids = np.asarray(ids, np.int64)
        pieces = np.broadcast_to(np.asarray(pieces, np.int64), ids.shape)
        vectors = _unit(vectors)
        for start in range(0, len(ids), WRITE_BATCH):
            end = start + WRITE_BATCH
            rows = [{"id": int(i), "piece_id": int(p), "vector": v.tolist()}
                    for i, p, v in zip(ids[start:end], pieces[start:end], vectors[start:end], strict=True)]  # fmt: skip
            self.client.upsert(self.name, rows, timeout=CALL_TIMEOUT_S)

    def remove(self, ids: np.ndarray, pieces: list[int] | None = None) -> int:
        removed = 0
        if pieces:
            removed += _count(self.client.delete(self.name, filter=f"piece_id in {[int(p) for p in pieces]}",
                                                    timeout=CALL_TIMEOUT_S))
        ids = np.asarray(ids, np.int64)
        for start in range(0, len(ids), WRITE_BATCH):
            removed += _count(self.client.delete(self.name, ids=[int(i) for i in ids[start : start + WRITE_BATCH]],
                                                 timeout=CALL_TIMEOUT_S))
        return removed

    def search(self, queries: np.ndarray, k: int, allow: np.ndarray | None = None,
               deny: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        queries = _unit(queries)
        n = len(queries)
        sims = np.full((n, k), -np.inf, np.float32)
        ids = np.full((n, k), -1, np.int64)
        if n == 0:
            return sims, ids
        hits = self.client.search(self.name, data=queries.tolist(), limit=k, output_fields=["piece_id"],
                                  search_params=self._search_params(k), filter=_id_filter(allow, deny),
                                  consistency_level=self.consistency, timeout=CALL_TIMEOUT_S)  # fmt: skip
        for row, found in enumerate(hits):
            for col, hit in enumerate(list(found)[:k]):
                ids[row, col] = int(hit["id"])
                sims[row, col] = float(hit["distance"])
        return sims, ids

    def ids(self) -> np.ndarray:
        it = self.client.query_iterator(self.name, batch_size=SCAN_BATCH, filter="", output_fields=["id"],
                                         timeout=CALL_TIMEOUT_S)  # fmt: skip
        chunks: list[np.ndarray] = []
        try:
            while batch := it.next():
                chunks.append(np.array([int(r["id"]) for r in batch], np.int64))
        finally:
            it.close()
        return np.sort(np.concatenate(chunks)) if chunks else np.zeros(0, np.int64)

    def agrees_with(self, ids: np.ndarray) -> bool:
        """Same count, and the smallest and largest ids present (a full comparison is `ids()`)."""
        if self.ntotal != len(ids):
            return False
        if len(ids) == 0:
            return True
        ends = [int(ids.min()), int(ids.max())]
        found = self.client.query(self.name, filter=f"id in {ends}", output_fields=["id"], timeout=CALL_TIMEOUT_S)
        return len(found) == len(set(ends))

    def rebuild(self, ids: np.ndarray, pieces: np.ndarray, vectors: np.ndarray) -> None:
        """Reconcile in place (other processes keep using the collection): drop strays, upsert the rest."""
        ids = np.asarray(ids, np.int64)
        held = self.ids()
        stray = np.setdiff1d(held, ids)
        if len(stray):
            self.remove(stray)
        missing = ~np.isin(ids, held)
        self.add(ids[missing], np.asarray(pieces)[missing], np.asarray(vectors)[missing])

    def close(self) -> None:
        self.client.close()


def _unit(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, np.float32).reshape(-1, DIM)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def _count(result: Any) -> int:
    """pymilvus returns {'delete_count': n} from a server and a list of ids from Milvus Lite."""
    if isinstance(result, dict):
        return int(result.get("delete_count", 0))
    return len(result) if result is not None else 0


def _id_filter(allow: np.ndarray | None, deny: np.ndarray | None) -> str:
    chosen = allow if allow is not None else deny
    if chosen is None:
        return ""
    if len(chosen) > MAX_FILTER_IDS:
        raise ValueError(f"id filter of {len(chosen)} ids is too long for a Milvus expression")
    listed = [int(i) for i in chosen]
    return f"id in {listed}" if allow is not None else (f"id not in {listed}" if listed else "")
