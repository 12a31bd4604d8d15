"""Every endpoint through FastAPI's test client, with the real model, index and fixture pieces."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient
from pydantic import SecretStr

from indexer.settings import Settings
from model.data import dataset as ds
from service.app import create_app
from tests.conftest import TEST_PIECE, TRAIN_PIECE, VAL_PIECE
from tests.hostile import bad_pdfs

KEY = {"X-API-Key": "test-key"}


@pytest.fixture()
def client(settings: Settings) -> Iterator[TestClient]:
    """The app over the `settings` fixture's library (FAISS or Milvus Lite, SQLite or PostgreSQL)."""
    limits = {"api_key": SecretStr("test-key"), "max_upload_mb": 5, "max_audio_seconds": 600}
    settings = settings.model_copy(update=limits)  # model_copy does not validate: values of the field types
    with TestClient(create_app(settings)) as c:
        yield c


def _upload(c: TestClient, data: bytes, name: str = "score.pdf", **form: str):  # type: ignore[no-untyped-def]
    r = c.post("/pieces", files={"file": (name, data, "application/pdf")}, data=form, headers=KEY)
    if r.status_code == 202:
        c.app.state.jobs.wait_idle()  # type: ignore[attr-defined]
        return c.get(f"/jobs/{r.json()['id']}").json()
    return r


def _wav(wave: np.ndarray, sr: int = 22050, channels: int = 1, fmt: str = "WAV") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, np.repeat(wave[:, None], channels, axis=1), sr, format=fmt)
    return buf.getvalue()


def _recording(dataset: Path, piece: str, seconds: float | None = None) -> np.ndarray:
    wave, _ = sf.read(dataset / ds.AUDIO_DIR / f"{ds.piece_key(piece)}.flac", dtype="float32")
    return wave if seconds is None else wave[: int(seconds * 22050)]


def test_health_and_docs(client: TestClient) -> None:
    assert client.get("/healthz").json()["status"] == "ok"
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready" and ready["vectors"] == 0
    spec = client.get("/openapi.json").json()
    assert {"/pieces", "/identify", "/jobs/{job_id}", "/pieces/{piece_id}/align"} <= set(spec["paths"])
    assert "413" in spec["paths"]["/identify"]["post"]["responses"]
    assert "text/html" in client.get("/").headers["content-type"]


def test_library_lifecycle(client: TestClient, pdfs: dict[str, bytes]) -> None:
    assert client.post("/pieces", files={"file": ("a.pdf", pdfs[TRAIN_PIECE])}).status_code == 401
    assert client.post("/pieces", files={"file": ("a.pdf", pdfs[TRAIN_PIECE])},
                       headers={"X-API-Key": "wrong"}).status_code == 401  # fmt: skip
    job = _upload(client, pdfs[TRAIN_PIECE], title="Chorale BWV 66.6", composer="J. S. Bach")
    assert job["status"] == "done" and not job["duplicate"]
    pid = job["piece_id"]
    dup = _upload(client, pdfs[TRAIN_PIECE])
    assert dup["piece_id"] == pid and dup["duplicate"]
    listing = client.get("/pieces").json()
    assert [(p["id"], p["title"], p["status"]) for p in listing] == [(pid, "Chorale BWV 66.6", "indexed")]
    assert listing[0]["snippets"] > 0
    assert client.get(f"/pieces/{pid}").json()["composer"] == "J. S. Bach"
    page = client.get(f"/pieces/{pid}/pages/1")
    assert page.status_code == 200 and page.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert client.get(f"/pieces/{pid}/pages/2").status_code == 404
    assert client.get("/pieces/999").status_code == 404
    assert client.get("/jobs/nope").status_code == 404
    assert client.delete(f"/pieces/{pid}").status_code == 401
    assert client.delete(f"/pieces/{pid}", headers=KEY).status_code == 204
    assert client.delete(f"/pieces/{pid}", headers=KEY).status_code == 404
    assert client.get("/readyz").json()["vectors"] == 0


@pytest.mark.slow
def test_identify_and_align(client: TestClient, pdfs: dict[str, bytes], dataset: Path) -> None:
    ids = {pid: _upload(client, pdfs[pid], title=pid)["piece_id"] for pid in (TRAIN_PIECE, VAL_PIECE, TEST_PIECE)}
    wave = _recording(dataset, TEST_PIECE)
    r = client.post("/identify", files={"file": ("take.wav", _wav(wave), "audio/wav")})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["pieces"][0]["id"] == ids[TEST_PIECE]
    assert 0.0 <= body["confidence"] <= 1.0 and body["match"]["page_start"] == 1
    other = client.post("/identify", files={"file": ("b.wav", _wav(_recording(dataset, VAL_PIECE, 20.0)), "audio/wav")})
    assert other.json()["pieces"][0]["id"] == ids[VAL_PIECE]  # a different recording names a different piece
    r = client.post(f"/pieces/{ids[TEST_PIECE]}/align", files={"file": ("take.wav", _wav(wave), "audio/wav")})
    assert r.status_code == 200, r.text
    points = r.json()["points"]
    width, height = r.json()["page_size"]["1"]
    assert len(points) > 10 and points[0]["time"] < points[-1]["time"]
    assert all(0 <= p["x"] <= width and 0 <= (p["box"][1] + p["box"][3]) / 2 <= height for p in points)
    first = [p["x"] for p in points if p["system"] == points[0]["system"]]
    assert first[-1] > first[0]  # within a system the music moves right (tests/test_align.py turns pages)
    assert r.json()["jumps"] == []  # played straight through: the jump-aware path does not jump


def test_hostile_pdfs_get_4xx_and_change_nothing(client: TestClient, pdfs: dict[str, bytes]) -> None:
    _upload(client, pdfs[TRAIN_PIECE])
    before = client.get("/pieces").json()
    for name, data in bad_pdfs(pdfs[TRAIN_PIECE]).items():
        result = _upload(client, data, name="../../../../tmp/évil ☃.pdf")
        status = getattr(result, "status_code", None)
        if status is None:  # passed the quick checks, refused by the indexing job
            assert result["status"] == "failed" and result["error"], name
        else:
            assert 400 <= status < 500, (name, status, result.text)
        assert client.get("/pieces").json() == before, name
    big = b"%PDF-1.4\n" + b"0" * (6 * 1024 * 1024)
    assert client.post("/pieces", files={"file": ("big.pdf", big)}, headers=KEY).status_code == 413


def test_hostile_audio_gets_4xx(client: TestClient, dataset: Path) -> None:
    t = np.arange(22050 * 4) / 22050
    tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    cases = {
        "zero bytes": (b"", 422),
        "text as audio": (b"just a text file, not audio at all", 415),
        "silent": (_wav(np.zeros(22050 * 5, np.float32)), 422),
        "too short": (_wav(tone[:2000]), 422),
        "too long": (_wav(np.full(8000 * 601, 0.1, np.float32), sr=8000, fmt="FLAC"), 422),  # compresses small
        "8 channels": (_wav(tone, channels=8), 422),
        "192 kHz": (_wav(np.tile(tone, 9)[: 192000 * 4], sr=192000), 422),
    }
    for name, (data, status) in cases.items():
        r = client.post("/identify", files={"file": ("x.wav", data, "audio/wav")})
        assert r.status_code == status, (name, r.status_code, r.text)
    flac = io.BytesIO()
    sf.write(flac, _recording(dataset, VAL_PIECE, 6.0), 22050, format="FLAC")
    assert client.post("/identify", files={"file": ("x.flac", flac.getvalue())}).status_code == 200


def test_slow_requests_time_out_with_503(tmp_path: Path, pdfs: dict[str, bytes], dataset: Path) -> None:
    settings = Settings(data_dir=tmp_path / "lib", api_key="test-key", request_timeout_s=1e-4)
    with TestClient(create_app(settings)) as c:
        pid = _upload(c, pdfs[TEST_PIECE])["piece_id"]
        take = _wav(_recording(dataset, TEST_PIECE, 8.0))
        r = c.post("/identify", files={"file": ("take.wav", take, "audio/wav")})
        assert r.status_code == 503 and "too long" in r.json()["detail"]
        assert c.post(f"/pieces/{pid}/align", files={"file": ("take.wav", take, "audio/wav")}).status_code == 503
        assert c.get("/readyz").status_code == 200  # the server goes on serving


def test_cors_allows_only_the_configured_origins(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path / "lib", cors_origins=["https://scores.example"]))
    c = TestClient(app)  # no lifespan: /healthz needs no model
    allowed = c.get("/healthz", headers={"Origin": "https://scores.example"})
    assert allowed.headers.get("access-control-allow-origin") == "https://scores.example"
    assert "access-control-allow-origin" not in c.get("/healthz", headers={"Origin": "https://evil.example"}).headers
    plain = TestClient(create_app(Settings(data_dir=tmp_path / "lib2")))
    assert "access-control-allow-origin" not in plain.get("/healthz", headers={"Origin": "https://scores.example"}).headers
