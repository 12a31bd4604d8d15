"""Against a real server (uvicorn on loopback): SIGKILL mid-ingest, concurrency, and OpenAPI fuzzing."""

from __future__ import annotations

import io
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import soundfile as sf

from indexer.vector_faiss import VectorIndex
from model.data import dataset as ds
from tests.conftest import TEST_PIECE, TRAIN_PIECE, VAL_PIECE
from tests.server import API_KEY, add_piece, running_server, start_server, stop_server, submit_pdf, wait_job

pytestmark = pytest.mark.slow


def pdf_variant(pdfs: list[bytes], tag: str) -> bytes:
    """A new PDF (new content hash) made of the given PDFs' pages, with its own title."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for data in pdfs:
        for page in PdfReader(io.BytesIO(data)).pages:
            writer.add_page(page)
    writer.add_metadata({"/Title": tag})
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def on_disk_state(data_dir: Path) -> tuple[dict[str, str], int, int]:
    """(status per title, indexed snippets in SQLite, vectors in the saved FAISS index) read from disk."""
    with sqlite3.connect(data_dir / "library.sqlite3") as db:
        status = dict(db.execute("SELECT title, status FROM pieces").fetchall())
        (rows,) = db.execute("SELECT count(*) FROM snippets JOIN pieces ON pieces.id = snippets.piece_id "
                             "WHERE pieces.status = 'indexed'").fetchone()  # fmt: skip
    index = VectorIndex.load(data_dir / "snippets.faiss")
    return status, int(rows), index.ntotal if index else 0


def served_state(url: str) -> tuple[dict[str, str], int, int]:
    pieces = httpx.get(f"{url}/pieces", timeout=30).json()
    vectors = httpx.get(f"{url}/readyz", timeout=30).json()["vectors"]
    return {p["title"]: p["status"] for p in pieces}, sum(p["snippets"] for p in pieces), vectors


LEASE_S = 3  # job lease of the test servers: a killed server's job is claimable 3 s after its last renewal
PAUSE_S = 4.0  # the first server's ingests hold still this long after storing their vectors (tests/paused_ingest.py)


def test_sigkill_mid_ingest_then_restart(tmp_path: Path, pdfs: dict[str, bytes]) -> None:
    """The killed ingest is a job row: the restarted server's worker retries it once its lease runs out."""
    data = tmp_path / "lib"
    big = pdf_variant([pdfs[TRAIN_PIECE], pdfs[VAL_PIECE], pdfs[TEST_PIECE]] * 3, "interrupted")  # 9 pages
    server = start_server(data, pause_s=PAUSE_S, SHEETID_JOB_LEASE_S=str(LEASE_S))
    try:
        add_piece(server.url, pdfs[TRAIN_PIECE], "kept")
        job = submit_pdf(server.url, big, "interrupted")
        for _ in range(2000):  # kill once its snippets are embedded: pending row, vectors stored, not yet visible
            state = httpx.get(f"{server.url}/jobs/{job}", timeout=10).json()
            if state["status"] in ("done", "failed") or state["stage"] == "embedded":
                break
            time.sleep(0.02)
        assert state["status"] == "running", state
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait()
    finally:
        stop_server(server)
    with running_server(data, SHEETID_JOB_LEASE_S=str(LEASE_S)) as restarted:
        retried = wait_job(restarted.url, job)
        assert retried["status"] == "done" and not retried["duplicate"], retried
        titles, snippets, vectors = served_state(restarted.url)
        assert titles == {"kept": "indexed", "interrupted": "indexed"} and snippets == vectors > 0
        again = wait_job(restarted.url, submit_pdf(restarted.url, big, "interrupted"))
        assert again["status"] == "done" and again["duplicate"] and again["piece_id"] == retried["piece_id"]
    status, rows, saved = on_disk_state(data)
    assert set(status.values()) == {"indexed"} and rows == saved == vectors


def test_concurrent_ingests_and_identifications(tmp_path: Path, pdfs: dict[str, bytes], dataset: Path) -> None:
    sources = [pdfs[TRAIN_PIECE], pdfs[VAL_PIECE], pdfs[TEST_PIECE]]
    variants = {f"variant {i}": pdf_variant([sources[i % 3]], f"variant {i}") for i in range(8)}
    wave, sr = sf.read(dataset / ds.AUDIO_DIR / f"{ds.piece_key(TEST_PIECE)}.flac", dtype="float32")
    buf = io.BytesIO()
    sf.write(buf, wave[: int(6 * sr)], sr, format="WAV")
    clip = buf.getvalue()
    with running_server(tmp_path / "lib") as server:
        add_piece(server.url, pdfs[TEST_PIECE], "base")

        def identify(_: int) -> int:
            r = httpx.post(f"{server.url}/identify", files={"file": ("q.wav", clip, "audio/wav")}, timeout=300)
            return r.status_code

        with ThreadPoolExecutor(max_workers=24) as pool:
            jobs = list(pool.map(lambda kv: submit_pdf(server.url, kv[1], kv[0]), variants.items()))
            answers = list(pool.map(identify, range(50)))
            states = list(pool.map(lambda j: wait_job(server.url, j), jobs))
        assert answers == [200] * 50
        assert all(s["status"] == "done" and not s["duplicate"] for s in states), states
        assert len({s["piece_id"] for s in states}) == 8
        titles, snippets, vectors = served_state(server.url)
        assert titles == {"base": "indexed", **{t: "indexed" for t in variants}} and snippets == vectors
        log = server.output()
    assert "database is locked" not in log and "Traceback" not in log, log[-3000:]
    _, rows, saved = on_disk_state(tmp_path / "lib")
    assert rows == saved == vectors


FUZZ_SECONDS = 150  # schemathesis time budget


def test_openapi_fuzzing_gives_no_server_errors(tmp_path: Path, pdfs: dict[str, bytes]) -> None:
    schemathesis = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert schemathesis, "make test installs schemathesis (dev extra)"
    with running_server(tmp_path / "lib", SHEETID_MAX_UPLOAD_MB="2") as server:
        add_piece(server.url, pdfs[TRAIN_PIECE], "fuzzed")
        run = subprocess.run(
            [schemathesis, "run", f"{server.url}/openapi.json", "--checks", "not_a_server_error",
             "--max-examples", "40", "--max-time", str(FUZZ_SECONDS), "--seed", "7", "--request-timeout", "120",
             "-H", f"X-API-Key: {API_KEY}"],
            capture_output=True, text=True, timeout=FUZZ_SECONDS + 300, cwd=tmp_path,
        )  # fmt: skip
        log = server.output()
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "Traceback" not in log, log[-3000:]
