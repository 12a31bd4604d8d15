"""Speed benchmarks (scripts that print figures, never timed tests).

- `embedding_paths`: the per-window path (one forward pass per overlapping crop, how vectors were computed
  before the dense embedder) against the dense path (one trunk pass per strip or spectrogram), on the same
  model and inputs in the same run: times, their ratio, and the cosine between the two paths' vectors.
- `index_pdf`: wall time to index one multi-page score PDF through the real path.
- `identify_latency`: end-to-end identification of a recording (decode excluded) against the library.
- `align_latency`: the jump-aware alignment of one whole recording to its piece, the recording read as
  played only against the service's tempo views (service.align.ALIGN_TEMPI), in the same run.
- `search_scale`: FAISS top-25 search for a 30-s query's excerpts over synthetic snippet vectors at
  library scale, exact (Flat) versus approximate (HNSW), with the approximate index's recall@25.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from threadpoolctl import ThreadpoolController

from benchmarks.dataset_library import read_recording
from indexer.library import Library, open_library
from indexer.settings import Settings
from indexer.vector_faiss import DIM, FAISS_BLAS_THRESHOLD, VectorIndex
from model.audio import FPS, SAMPLE_RATE
from model.data import dataset as ds
from service import consistency
from service import identify as identify_module
from service.identify import identify
from service.verify import VERIFIED, path_evidence

QUERY_SECONDS = 30  # length of the recording in the latency and load benchmarks
QUERY_EXCERPTS_30S = QUERY_SECONDS * FPS // Settings().excerpt_hop  # excerpts of such a recording (75 at 0.4 s)
# identify()'s parts timed by `part_times`: label -> the name service.identify calls, or the library's method
IDENTIFY_PARTS = {"spectrogram": "spectrogram", "consistency": "consistency_scores", "alignment_check": "path_evidence"}
LIBRARY_PARTS = {"embed": "embed_spectrogram", "search": "search"}
# Pause between the paths compared in one run, so that no path pays for threads another left spinning
# (numpy's OpenBLAS threads outlasted a whole trunk pass here; model/threads.py).
SETTLE_S = 0.3
PDF_PAGES = 10  # pages of the PDF in the indexing benchmark
DEFAULT_SCALES = (1_500_000,)  # synthetic vector counts of the search benchmark
SEARCH_FACTORIES = ("Flat", "HNSW32")  # exact and approximate FAISS indexes compared at scale


def run_all(dataset: Path, library_dir: Path, scales: list[int] | None = None, clients: int = 4,
            load_seconds: float = 30.0, emit: Callable[[dict], None] = print) -> None:  # fmt: skip
    """Every speed figure of `sheetid bench`, each handed to `emit` as soon as it is measured."""
    lib = open_library(library_dir)
    tests = ds.built_pieces(dataset, ["test"])
    pdfs = [ds.pdf_path(dataset, p) for p in tests]
    pdf = concat_pdfs(pdfs, PDF_PAGES)
    wave = read_recording(dataset, tests[0])[: QUERY_SECONDS * SAMPLE_RATE]
    emit({"embedding_paths": embedding_paths(lib, pdf, wave)})
    emit({"index_10_page_pdf": index_pdf(lib, pdf)})
    emit({"identify_30s": dict(identify_latency(lib, wave), pieces=len(lib.counts()), vectors=lib.index.ntotal)})
    if load_seconds > 0:
        import soundfile as sf

        buf = io.BytesIO()
        sf.write(buf, wave, SAMPLE_RATE, format="WAV")
        lib.close()
        emit({"load_30s_recordings": serve_load(library_dir, buf.getvalue(), clients, load_seconds)})
    for n in scales or DEFAULT_SCALES:
        for factory in SEARCH_FACTORIES:
            emit({"search": search_scale(n, factory)})


def concat_pdfs(pdfs: list[Path], pages: int) -> bytes:
    """A `pages`-page PDF assembled from the given PDFs, cycling through them."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    readers = [PdfReader(p) for p in pdfs]
    i = 0
    while len(writer.pages) < pages:
        reader = readers[i % len(readers)]
        for page in reader.pages:
            if len(writer.pages) < pages:
                writer.add_page(page)
        i += 1
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def _best_of(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def embedding_paths(library: Library, pdf: bytes, wave: np.ndarray, repeats: int = 3) -> dict[str, object]:
    """Per-window against dense embedding of a PDF's strip and a recording's spectrogram (best of `repeats`)."""
    from indexer.pdf import rasterise
    from model.audio import spectrogram
    from model.embed import embed_spectrogram, embed_spectrogram_per_window, embed_strip, embed_strip_per_window
    from model.sheet import read_page, unroll

    st, model, device = library.settings, library.model, library.device
    pages = rasterise(pdf, st.pdf_dpi, st.max_page_pixels)
    readings = [read_page(page, i) for i, page in enumerate(pages)]
    strip = unroll([r[0] for r in readings], [s for r in readings for s in r[1]]).image
    spec = spectrogram(wave)
    out: dict[str, object] = {}
    for name, dense, per_window, data, hop in (
        ("sheet", embed_strip, embed_strip_per_window, strip, st.snippet_hop),
        ("audio", embed_spectrogram, embed_spectrogram_per_window, spec, st.excerpt_hop),
    ):
        _, fast = dense(model, data, hop, device)
        _, ref = per_window(model, data, hop, device)
        t_dense = _best_of(lambda d=dense, x=data, h=hop: d(model, x, h, device), repeats)  # type: ignore[misc]
        t_window = _best_of(lambda p=per_window, x=data, h=hop: p(model, x, h, device), repeats)  # type: ignore[misc]
        cos = np.sum(fast * ref, axis=1)
        out[name] = {"windows": len(fast), "per_window_s": round(t_window, 4), "dense_s": round(t_dense, 4),
                     "speedup": round(t_window / t_dense, 1), "cosine_median": round(float(np.median(cos)), 5),
                     "cosine_min": round(float(cos.min()), 5)}  # fmt: skip
    out["strip_px"], out["audio_s"] = int(strip.shape[1]), round(len(wave) / SAMPLE_RATE, 1)
    return out


def align_latency(library: Library, piece_id: int, wave: np.ndarray, repeats: int = 3) -> dict[str, object]:
    """Seconds (best of `repeats`) to align `wave` to `piece_id` with the cost read once (the recording as
    played, the strip as engraved), with the recording also read at the service's ALIGN_TEMPI, and with
    that and the strip read at ALIGN_SHEET_WIDTHS too (the service's); each path's time against the one
    before it. The pages' 8-px re-embedding is in all three."""
    from service.align import ALIGN_SHEET_HOP, ALIGN_SHEET_WIDTHS, ALIGN_TEMPI, cost_matrix
    from service.jumps import jump_alignment

    def align(tempi: tuple[float, ...], widths: tuple[float, ...]) -> float:
        return _best_of(lambda: jump_alignment(piece_id, *cost_matrix(library, piece_id, wave, ALIGN_SHEET_HOP,
                                                                      tempi, widths)), repeats)  # fmt: skip

    once, tempi, both = align((1.0,), (1.0,)), align(ALIGN_TEMPI, (1.0,)), align(ALIGN_TEMPI, ALIGN_SHEET_WIDTHS)
    return {"audio_s": round(len(wave) / SAMPLE_RATE, 1),
            "tempi": list(ALIGN_TEMPI), "widths": list(ALIGN_SHEET_WIDTHS),
            "once_s": round(once, 3), "tempi_s": round(tempi, 3), "tempi_and_widths_s": round(both, 3),
            "tempi_slowdown": round(tempi / once, 2), "widths_slowdown": round(both / tempi, 2)}  # fmt: skip


def index_pdf(library: Library, data: bytes) -> dict[str, float]:
    t0 = time.perf_counter()
    result = library.add_pdf(data, title="benchmark")
    seconds = time.perf_counter() - t0
    snippets = library.counts().get(result.piece_id, 0)
    library.remove(result.piece_id)
    return {"seconds": round(seconds, 2), "snippets": snippets}


def _most_per_line_two_unique(group: np.ndarray, excerpt: np.ndarray, n: int,
                              lines_per_window: int) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """service.consistency._most_per_line as it was: one np.unique for distinct (line, excerpt) keys and
    another to count them per line; np.maximum.at takes the most per window as the caller does."""
    keys, counts = np.unique(np.unique(group * n + excerpt[None, :]) // n, return_counts=True)
    return keys // lines_per_window, counts


@contextmanager
def previous_path(library: Library) -> Iterator[None]:
    """identify() as it ran before numpy's BLAS was kept to one thread (model/threads.py), exact search
    took FAISS's BLAS path (indexer/vector_faiss.py), the alignment check read piece vectors back from the
    vector store and the consistency counted lines with one sort: numpy's OpenBLAS on every core (its
    default), FAISS's default BLAS threshold, vectors from the database, lines by two np.unique."""
    most_per_line, blas_threshold = consistency._most_per_line, faiss.cvar.distance_compute_blas_threshold
    faiss.cvar.distance_compute_blas_threshold = FAISS_BLAS_THRESHOLD
    blas = ThreadpoolController().select(threading_layer="pthreads").limit(limits=os.cpu_count())
    library.index.vectors = lambda ids: None  # type: ignore[method-assign]
    consistency._most_per_line = _most_per_line_two_unique
    try:
        yield
    finally:
        del library.index.vectors
        consistency._most_per_line = most_per_line
        blas.restore_original_limits()
        faiss.cvar.distance_compute_blas_threshold = blas_threshold


@contextmanager
def part_times(library: Library, into: dict[str, list[float]]) -> Iterator[None]:
    """Seconds identify() spends in each of its parts during the block, one sum per part appended to `into`:
    the functions service.identify calls by name and the library's methods, wrapped for the block."""
    spent = dict.fromkeys([*IDENTIFY_PARTS, *LIBRARY_PARTS], 0.0)

    def timed(label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[label] += time.perf_counter() - t0

        return run

    saved = {name: getattr(identify_module, name) for name in IDENTIFY_PARTS.values()}
    for label, name in IDENTIFY_PARTS.items():
        setattr(identify_module, name, timed(label, saved[name]))
    for label, name in LIBRARY_PARTS.items():
        setattr(library, name, timed(label, getattr(library, name)))
    try:
        yield
    finally:
        for name, fn in saved.items():
            setattr(identify_module, name, fn)
        for name in LIBRARY_PARTS.values():
            delattr(library, name)
        for label, seconds in spent.items():
            into.setdefault(label, []).append(seconds)


def identify_latency(library: Library, wave: np.ndarray, repeats: int = 20) -> dict[str, object]:
    """identify()'s latency and its parts (`part_times`); the same query by the previous path
    (`previous_path`, same answer) and asked as played only (Settings.query_tempi empty); the part of it
    spent aligning the best ranked pieces (service/verify.py); and that check's read of the pieces'
    vectors (piece_vectors) against reading whole piece_snippets rows."""
    times, previous, played_only, verify, lean, full = [], [], [], [], [], []
    parts: dict[str, list[float]] = {}
    previous_parts: dict[str, list[float]] = {}
    settings = library.settings
    for _ in range(repeats):
        with part_times(library, parts):
            t0 = time.perf_counter()
            result = identify(library, wave)
            times.append(time.perf_counter() - t0)
        time.sleep(SETTLE_S)
        with previous_path(library), part_times(library, previous_parts):
            t0 = time.perf_counter()
            before = identify(library, wave)
            previous.append(time.perf_counter() - t0)
        time.sleep(SETTLE_S)
        same = [p.id for p in before.pieces] == [p.id for p in result.pieces]
        assert same and abs(before.confidence - result.confidence) < 1e-6, "the previous path must agree"
        library.settings = settings.model_copy(update={"query_tempi": ()})
        t0 = time.perf_counter()
        identify(library, wave)
        played_only.append(time.perf_counter() - t0)
        time.sleep(SETTLE_S)
        library.settings = settings
        _, vectors = library.embed_recording(wave, library.settings.excerpt_hop)
        checked = [p.id for p in result.pieces[:VERIFIED]]
        t0 = time.perf_counter()
        path_evidence(library, vectors, checked)
        verify.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        [library.piece_vectors(p) for p in checked]
        lean.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        [library.piece_snippets(p).vectors for p in checked]
        full.append(time.perf_counter() - t0)
    ms, verify_ms = 1000 * np.array(times), 1000 * np.array(verify)
    lean_ms, full_ms = 1000 * float(np.median(lean)), 1000 * float(np.median(full))
    played_ms, previous_ms = 1000 * float(np.median(played_only)), 1000 * float(np.median(previous))
    return {"p50_ms": round(float(np.median(ms)), 1), "p95_ms": round(float(np.percentile(ms, 95)), 1),
            "previous_path_p50_ms": round(previous_ms, 1),
            "speedup_over_previous": round(previous_ms / max(float(np.median(ms)), 1e-9), 2),
            "query_tempi": list(settings.query_tempi), "as_played_only_p50_ms": round(played_ms, 1),
            "tempi_cost": round(float(np.median(ms)) / max(played_ms, 1e-9), 2),
            "verify_p50_ms": round(float(np.median(verify_ms)), 1),
            "without_verify_p50_ms": round(float(np.median(ms - verify_ms)), 1),
            "verify_read_p50_ms": round(lean_ms, 1), "full_rows_read_p50_ms": round(full_ms, 1),
            "read_speedup": round(full_ms / max(lean_ms, 1e-9), 2),
            "parts_p50_ms": _medians_ms(parts), "previous_path_parts_p50_ms": _medians_ms(previous_parts)}  # fmt: skip


def _medians_ms(seconds: dict[str, list[float]]) -> dict[str, float]:
    return {label: round(1000 * float(np.median(values)), 1) for label, values in seconds.items()}


def search_scale(n_vectors: int, factory: str, queries: int = QUERY_EXCERPTS_30S, repeats: int = 20,
                 seed: int = 0) -> dict[str, float | str]:  # fmt: skip
    """Search latency for one query's excerpts over n synthetic unit vectors; recall@25 against Flat."""
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n_vectors, DIM)).astype(np.float32)
    q = vectors[rng.integers(0, n_vectors, queries)] + 0.3 * rng.normal(size=(queries, DIM)).astype(np.float32)
    exact = VectorIndex("bench", "Flat")
    exact.add(np.arange(n_vectors), vectors)
    index = exact if factory == "Flat" else VectorIndex("bench", factory)
    t_build = time.perf_counter()
    if index is not exact:
        index.add(np.arange(n_vectors), vectors)
    build_s = time.perf_counter() - t_build
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        _, ids = index.search(q, 25)
        times.append(time.perf_counter() - t0)
    _, truth = exact.search(q, 25)
    recall = float(np.mean([len(set(a) & set(b)) / 25 for a, b in zip(ids, truth, strict=True)]))
    return {"vectors": n_vectors, "factory": factory, "p50_ms": round(1000 * float(np.median(times)), 2),
            "recall@25": round(recall, 4), "build_s": round(build_s, 1)}  # fmt: skip


def serve_load(library_dir: Path, recording: bytes, clients: int = 4, seconds: float = 30.0) -> dict[str, float]:
    """Identifications per second and latency from `clients` parallel HTTP clients against a real server.

    The server (`sheetid serve`, one worker) runs in a subprocess on loopback over `library_dir`; its peak
    resident memory (VmHWM) is read from /proc when the run ends.
    """
    import os
    import socket
    import subprocess
    import sys
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    env = dict(os.environ, SHEETID_DATA_DIR=str(library_dir))
    proc = subprocess.Popen([sys.executable, "-m", "cli", "serve", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        pieces = httpx.get(f"{url}/readyz", timeout=10).json()["pieces"]
        deadline = time.perf_counter() + seconds

        def client(_: int) -> tuple[list[float], int]:
            times, errors = [], 0
            with httpx.Client(timeout=120) as http:
                while time.perf_counter() < deadline:
                    t0 = time.perf_counter()
                    r = http.post(f"{url}/identify", files={"file": ("q.wav", recording, "audio/wav")})
                    times.append(time.perf_counter() - t0)
                    errors += r.status_code != 200
            return times, errors

        t_start = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            results = list(pool.map(client, range(clients)))
        wall = time.perf_counter() - t_start
        peak_kb = next(int(line.split()[1]) for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines()
                       if line.startswith("VmHWM"))  # fmt: skip
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    ms = 1000 * np.array([t for times, _ in results for t in times])
    return {"pieces": pieces, "clients": clients, "requests": len(ms), "errors": sum(e for _, e in results),
            "per_second": round(len(ms) / wall, 2), "p50_ms": round(float(np.median(ms)), 1),
            "p95_ms": round(float(np.percentile(ms, 95)), 1),
            "server_peak_rss_mb": round(peak_kb / 1024, 1)}  # fmt: skip
