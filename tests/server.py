"""A real sheetid server (uvicorn on loopback) in a subprocess, for browser, crash, load and fuzz tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from benchmarks.vector_scale import free_port

API_KEY = "browser-test-key"  # key of the test servers


@dataclass
class Server:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path  # the server's stdout and stderr

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def _python(pause_s: float) -> list[str]:
    """The interpreter command; with pause_s > 0, one whose ingests pause after storing (tests/paused_ingest.py)."""
    launcher = Path(__file__).resolve().parent / "paused_ingest.py"
    return [sys.executable, str(launcher), str(pause_s)] if pause_s > 0 else [sys.executable]


def start_server(data_dir: Path, timeout_s: float = 120.0, pause_s: float = 0.0, **env: str) -> Server:
    """Start uvicorn on a free port and wait for /readyz (migrations, model and index loaded)."""
    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    log = data_dir.parent / f"server-{port}.log"
    environ = {**os.environ, "SHEETID_DATA_DIR": str(data_dir), "SHEETID_API_KEY": API_KEY, **env}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*_python(pause_s), "-m", "uvicorn", "service.app:create_app", "--factory", "--host", "127.0.0.1",
             "--port", str(port), "--workers", "1"],
            env=environ, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    server = Server(f"http://127.0.0.1:{port}", proc, log)
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {server.output()}")
        try:
            if httpx.get(f"{server.url}/readyz", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise TimeoutError(f"server did not become ready: {server.output()}")


def stop_server(server: Server) -> None:
    if server.proc.poll() is None:
        server.proc.terminate()
        try:
            server.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait()


@contextmanager
def running_server(data_dir: Path, timeout_s: float = 120.0, **env: str) -> Iterator[Server]:
    server = start_server(data_dir, timeout_s, **env)
    try:
        yield server
    finally:
        stop_server(server)


def submit_pdf(url: str, pdf: bytes, title: str) -> str:
    r = httpx.post(f"{url}/pieces", files={"file": ("score.pdf", pdf, "application/pdf")},
                   data={"title": title}, headers={"X-API-Key": API_KEY}, timeout=60)  # fmt: skip
    r.raise_for_status()
    return str(r.json()["id"])


def wait_job(url: str, job: str, timeout_s: float = 300.0) -> dict:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        state = httpx.get(f"{url}/jobs/{job}", timeout=10).json()
        if state["status"] in ("done", "failed"):
            return dict(state)
        time.sleep(0.2)
    raise TimeoutError("ingest job did not finish")


def add_piece(url: str, pdf: bytes, title: str) -> int:
    state = wait_job(url, submit_pdf(url, pdf, title))
    assert state["status"] == "done", state
    return int(state["piece_id"])


def start_worker(log: Path, pause_s: float = 0.0, **env: str) -> subprocess.Popen[bytes]:
    """`sheetid worker` in its own process."""
    cli = Path(__file__).resolve().parent.parent / "cli.py"
    with log.open("wb") as out:
        return subprocess.Popen([*_python(pause_s), str(cli), "worker"], env=dict(os.environ, **env), stdout=out,
                                stderr=subprocess.STDOUT)  # fmt: skip
