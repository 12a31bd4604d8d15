"""Vector search at scale: FAISS HNSW and IVF in this process, Milvus as an embedded server.

For n synthetic 32-d unit vectors, each engine reports build time, memory, p50/p95 latency of one
30-s query (its excerpt vectors, top 25 each, one search call) and recall@25 against exact search.

The database vectors are isotropic Gaussian directions: no clusters, which is the hard case for
approximate search (real snippet embeddings cluster by piece). Each query excerpt is a database vector
plus Gaussian noise (σ = 0.3 per dimension, then normalised), as an audio excerpt lies near its snippet.

Milvus runs as `milvus-server --data DIR` (the `milvus` pip package) on loopback, and is driven through
the product's own MilvusStore, with the product's index settings. Its memory is the server's resident
set after loading minus before inserting. Milvus searches are timed at Strong consistency (the product's
default: each search waits for the server's time tick) and at Bounded (no wait, slightly stale data).
Run: `python -m benchmarks.vector_scale --vectors 1000000`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import faiss
import numpy as np

from benchmarks.speed import QUERY_EXCERPTS_30S
from indexer.vector_faiss import VectorIndex

DIM = 32
EXCERPTS_PER_QUERY = QUERY_EXCERPTS_30S  # excerpts of a 30-s recording at the product's excerpt hop
TOP_K = 25
QUERY_NOISE = 0.3
CHUNK = 1_000_000  # vectors generated / inserted per step (bounds the extra memory)
EMBEDDED_ETCD_PORT = 2379  # the embedded server's etcd client port (milvus-server's default)
CONSISTENCY = ("Strong", "Bounded")  # Milvus search levels timed (indexer/vector_milvus.py)


def unit_vectors(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.empty((n, DIM), np.float32)
    for start in range(0, n, CHUNK):
        block = rng.standard_normal((min(CHUNK, n - start), DIM), dtype=np.float32)
        out[start : start + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def query_sets(vectors: np.ndarray, recordings: int, seed: int) -> np.ndarray:
    """(recordings, excerpts, 32) excerpt vectors near random database vectors."""
    rng = np.random.default_rng(seed + 1)
    picks = rng.integers(0, len(vectors), recordings * EXCERPTS_PER_QUERY)
    q = vectors[picks] + QUERY_NOISE * rng.standard_normal((len(picks), DIM), dtype=np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return q.reshape(recordings, EXCERPTS_PER_QUERY, DIM)


def exact_neighbours(vectors: np.ndarray, queries: np.ndarray) -> np.ndarray:
    flat = faiss.IndexFlatIP(DIM)
    flat.add(vectors)
    _, ids = flat.search(queries.reshape(-1, DIM), TOP_K)
    return ids.reshape(queries.shape[0], queries.shape[1], TOP_K)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = [len(set(a.tolist()) & set(b.tolist())) for a, b in zip(found.reshape(-1, TOP_K),
                                                                   truth.reshape(-1, TOP_K), strict=True)]  # fmt: skip
    return float(np.mean(hits)) / TOP_K


def rss_mb(pid: int | None = None) -> float:
    """Resident set of a process (and its children, for the Milvus server) in MB."""
    pids = [pid or os.getpid()]
    if pid is not None:
        children = Path(f"/proc/{pid}/task/{pid}/children")
        pids += [int(c) for c in children.read_text().split()] if children.exists() else []
    total = 0
    for p in pids:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmRSS"):
                total += int(line.split()[1])
    return total / 1024


def timed_searches(search: Callable[[np.ndarray], np.ndarray], queries: np.ndarray) -> tuple[dict, np.ndarray]:
    search(queries[0])  # warm-up (first-touch of pages, connection set-up)
    times, found = [], []
    for q in queries:
        t0 = time.perf_counter()
        found.append(search(q))
        times.append(time.perf_counter() - t0)
    ms = 1000 * np.array(times)
    stats = {"p50_ms": round(float(np.median(ms)), 2), "p95_ms": round(float(np.percentile(ms, 95)), 2)}
    return stats, np.stack(found)


def faiss_engine(factory: str, vectors: np.ndarray, queries: np.ndarray, truth: np.ndarray,
                 nprobes: tuple[int, ...] = ()) -> list[dict]:  # fmt: skip
    """One row per search setting: the product's default, then each IVF `nprobes` value on the same index."""
    before = rss_mb()
    t0 = time.perf_counter()
    index = VectorIndex("bench", factory)
    index.add(np.arange(len(vectors)), vectors.copy())  # the product's wrapper: trains IVF, sets efSearch/nprobe
    build_s = time.perf_counter() - t0
    memory = rss_mb() - before
    rows = []
    default = index.ivf_nprobe()  # None: not an IVF index, one row
    for nprobe in [default, *(p for p in nprobes if p != default)] if default else [None]:
        index.nprobe = nprobe
        stats, found = timed_searches(lambda q: index.search(q, TOP_K)[1], queries)
        rows.append({"engine": f"faiss {factory}" + (f" nprobe {nprobe}" if nprobe else ""),
                     "build_s": round(build_s, 1), "memory_mb": round(memory, 1), **stats,
                     "recall@25": round(recall(found, truth), 4)})  # fmt: skip
    return rows


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_milvus(work_dir: Path, timeout_s: float = 600.0,
                 config: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], str]:  # fmt: skip
    """The `milvus` pip package's embedded server (`milvus-server --data DIR`) on a free loopback port,
    with `config` overriding keys of its milvus.yaml (dotted paths).

    Returns the process (leader of its own process group: stop it with stop_process_group) and its URI.
    """
    from pymilvus import MilvusClient

    with socket.socket() as probe:  # only the proxy port is ours to choose; etcd's is fixed
        if probe.connect_ex(("127.0.0.1", EMBEDDED_ETCD_PORT)) == 0:
            raise RuntimeError(f"port {EMBEDDED_ETCD_PORT} is taken (another embedded Milvus server?): a second "
                               "one on this machine crashes in its embedded etcd")  # fmt: skip
    port = free_port()
    _link_milvus_binaries(work_dir / "data")
    exe = shutil.which("milvus-server", path=str(Path(sys.executable).parent))
    assert exe, "make test installs the milvus package (test extra)"
    with (work_dir / "milvus-server.log").open("wb") as out:
        extra = [arg for key, value in (config or {}).items() for arg in ("--extra-config", f"{key}={value}")]
        proc = subprocess.Popen([exe, "--data", str(work_dir / "data"), "--proxy-port", str(port), *extra],
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    uri = f"http://127.0.0.1:{port}"
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("milvus-server exited: " + (work_dir / "milvus-server.log").read_text()[-3000:])
        try:
            MilvusClient(uri, timeout=3).list_collections()
            return proc, uri
        except Exception:  # noqa: BLE001 - not listening yet
            time.sleep(1)
    stop_process_group(proc)
    raise TimeoutError("milvus-server did not start")


def _link_milvus_binaries(data_dir: Path) -> None:
    """Hard-link the server binaries from a cache into a fresh data directory.

    milvus-server unpacks ~250 MB of LZMA-compressed binaries into every new data directory (minutes on
    a busy CI machine); it skips files whose checksum file already matches, so a linked copy of a cache
    unpacked once makes each start cheap.
    """
    from milvus import _initialize_data_files  # the package's own unpacker

    cache = Path(os.environ.get("SHEETID_MILVUS_CACHE", Path.home() / ".cache" / "sheetid" / "milvus"))
    _initialize_data_files(str(cache))  # no-op once unpacked
    (data_dir / "bin").mkdir(parents=True, exist_ok=True)
    for f in (cache / "bin").iterdir():
        target = data_dir / "bin" / f.name
        if not target.exists():
            try:
                os.link(f, target)
            except OSError:  # another file system: copy instead
                shutil.copy2(f, target)


def stop_process_group(proc: subprocess.Popen[bytes]) -> None:
    """Stop a process started with start_new_session=True and everything in its group: milvus-server
    exits on SIGTERM but leaves its `milvus run standalone` child running, so the group is killed after."""
    import signal

    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:  # nothing left in the group
        pass
    proc.wait()


def milvus_engine(index_kind: str, vectors: np.ndarray, queries: np.ndarray, truth: np.ndarray,
                  work: Path, compaction: bool = True) -> list[dict]:  # fmt: skip
    """One row per search consistency level in CONSISTENCY, from one build. Without `compaction` the
    server never merges the sealed segments (and so never re-indexes the merged ones): at 10 M on 2 cores
    that maintenance outlasted a session, and searches during it measure the maintenance."""
    from pymilvus import MilvusClient

    from indexer.vector_milvus import MilvusStore

    config = {} if compaction else {"dataCoord.compaction.enableAutoCompaction": "false"}
    proc, uri = start_milvus(work / f"milvus-{index_kind.lower()}", config=config)  # fresh server per engine
    try:
        server_pid = _milvus_pid(proc)
        store = MilvusStore(uri, "bench", index_kind)
        before = rss_mb(server_pid)
        t0 = time.perf_counter()
        store.add(np.arange(len(vectors)), np.arange(len(vectors)) // 100, vectors)
        client: MilvusClient = store.client
        client.flush(store.name)
        while True:  # the index is built asynchronously on sealed segments
            info = client.describe_index(store.name, "vector")
            if int(info.get("indexed_rows", 0)) >= len(vectors) and int(info.get("pending_index_rows", 0)) == 0:
                break
            time.sleep(1)
        client.release_collection(store.name)
        client.load_collection(store.name)
        build_s = time.perf_counter() - t0
        memory = rss_mb(server_pid) - before
        rows = []
        for level in CONSISTENCY:
            store.consistency = level
            stats, found = timed_searches(lambda q: store.search(q, TOP_K)[1], queries)
            rows.append({"engine": f"milvus {index_kind} {level}", "compaction": compaction,
                         "build_s": round(build_s, 1), "memory_mb": round(memory, 1), **stats,
                         "recall@25": round(recall(found, truth), 4)})  # fmt: skip
        store.close()
    finally:
        stop_process_group(proc)
    return rows


def _milvus_pid(proc: subprocess.Popen[bytes]) -> int:
    """milvus-server (Python) starts the `milvus` binary as its child: measure that one."""
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    kids = [int(c) for c in children.read_text().split()] if children.exists() else []
    return kids[0] if kids else proc.pid


ENGINES = ("faiss-hnsw", "faiss-ivf", "milvus-hnsw", "milvus-ivf")


def ivf_factory(n: int) -> str:
    """About 4·√n lists (FAISS's guidance for IVF), at most 65,536."""
    return f"IVF{min(65536, max(64, int(4 * np.sqrt(n)) // 64 * 64))},Flat"


def run(n: int, engines: tuple[str, ...] = ENGINES, recordings: int = 30, seed: int = 0,
        log: Callable[[str], None] = print, nprobes: tuple[int, ...] = (),
        milvus_compaction: bool = True) -> list[dict]:  # fmt: skip
    t0 = time.perf_counter()
    vectors = unit_vectors(n, seed)
    queries = query_sets(vectors, recordings, seed)
    truth = exact_neighbours(vectors, queries)
    log(json.dumps({"vectors": n, "recordings": recordings, "setup_s": round(time.perf_counter() - t0, 1)}))
    results = []
    with tempfile.TemporaryDirectory(prefix="sheetid-scale-") as tmp:
        for engine in engines:
            if engine == "faiss-hnsw":
                rows = faiss_engine("HNSW32", vectors, queries, truth)
            elif engine == "faiss-ivf":
                rows = faiss_engine(ivf_factory(n), vectors, queries, truth, nprobes)
            elif engine == "milvus-hnsw":
                rows = milvus_engine("HNSW", vectors, queries, truth, Path(tmp), milvus_compaction)
            elif engine == "milvus-ivf":  # the product's IVF_FLAT settings (indexer/vector_milvus.py)
                rows = milvus_engine("IVF_FLAT", vectors, queries, truth, Path(tmp), milvus_compaction)
            else:
                raise ValueError(f"engine {engine!r}: one of {ENGINES}")
            for row in rows:
                results.append({"vectors": n, **row})
                log(json.dumps(results[-1]))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", type=int, action="append", help="collection size; repeatable")
    parser.add_argument("--engine", action="append", choices=ENGINES, help="default: all")
    parser.add_argument("--recordings", type=int, default=30, help="timed 30-s queries")
    parser.add_argument("--threads", type=int, default=2, help="FAISS OpenMP threads")
    parser.add_argument("--nprobe", type=int, action="append", help="also search IVF with this nprobe; repeatable")
    parser.add_argument("--no-milvus-compaction", action="store_true", help="Milvus never merges sealed segments")
    args = parser.parse_args()
    faiss.omp_set_num_threads(args.threads)
    for n in args.vectors or [100_000]:
        run(n, tuple(args.engine or ENGINES), args.recordings, nprobes=tuple(args.nprobe or ()),
            milvus_compaction=not args.no_milvus_compaction)


if __name__ == "__main__":
    main()
