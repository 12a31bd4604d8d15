"""A real sheetid server (uvicorn on loopback) in a subprocess, for browser and crash tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

API_KEY = "browser-test-key"  # key of the test servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_server(data_dir: Path, timeout_s: float = 120.0) -> Iterator[str]:
    port = free_port()
    env = dict(os.environ, SHEETID_DATA_DIR=str(data_dir), SHEETID_API_KEY=API_KEY)
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "service.app:create_app", "--factory", "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited: {proc.stdout.read().decode() if proc.stdout else ''}")
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        else:
            raise TimeoutError("server did not become ready")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def add_piece(url: str, pdf: bytes, title: str) -> int:
    r = httpx.post(f"{url}/pieces", files={"file": ("score.pdf", pdf, "application/pdf")},
                   data={"title": title}, headers={"X-API-Key": API_KEY}, timeout=60)  # fmt: skip
    r.raise_for_status()
    job = r.json()["id"]
    for _ in range(600):
        state = httpx.get(f"{url}/jobs/{job}", timeout=10).json()
        if state["status"] in ("done", "failed"):
            assert state["status"] == "done", state
            return int(state["piece_id"])
        time.sleep(0.2)
    raise TimeoutError("ingest job did not finish")
