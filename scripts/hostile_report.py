"""Print every hostile input of the test suite and the answer the API gives it (for the reliability notes).

    .venv/bin/python scripts/hostile_report.py data/dataset/pdf/bach__bwv66.6.pdf

Runs the real app in-process (FastAPI TestClient) on a throw-away library holding that one score.
"""

from __future__ import annotations

import io
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from indexer.settings import Settings  # noqa: E402
from service.app import create_app  # noqa: E402
from tests.hostile import bad_pdfs  # noqa: E402

KEY = {"X-API-Key": "report-key"}


def wav(wave: np.ndarray, sr: int = 22050, channels: int = 1, fmt: str = "WAV") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, np.repeat(wave[:, None], channels, axis=1), sr, format=fmt)
    return buf.getvalue()


def main(good_pdf: Path) -> None:
    good = good_pdf.read_bytes()
    tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(22050 * 4) / 22050)).astype(np.float32)
    audio = {
        "zero-length audio": b"",
        "text file as audio": b"just a text file, not audio at all",
        "silent audio (5 s)": wav(np.zeros(22050 * 5, np.float32)),
        "0.1-s audio": wav(tone[:2000]),
        "3-hour audio (8 kHz FLAC)": wav(np.full(8000 * 3 * 3600, 0.1, np.float32), sr=8000, fmt="FLAC"),
        "8-channel audio": wav(tone, channels=8),
        "192 kHz audio": wav(np.tile(tone, 9)[: 192000 * 4], sr=192000),
    }
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp) / "lib", api_key="report-key", max_upload_mb=50)
        with TestClient(create_app(settings)) as c:
            c.post("/pieces", files={"file": ("good.pdf", good)}, headers=KEY)
            c.app.state.jobs.wait_idle()  # type: ignore[attr-defined]
            before = c.get("/pieces").json()
            rows = []
            for name, data in bad_pdfs(good).items():
                r = c.post("/pieces", files={"file": ("../../etc/évil ☃.pdf", data, "application/pdf")}, headers=KEY)
                if r.status_code == 202:
                    c.app.state.jobs.wait_idle()  # type: ignore[attr-defined]
                    job = c.get(f"/jobs/{r.json()['id']}").json()
                    rows.append((f"PDF: {name}", f"202, then job {job['status']}: {job['error']}"))
                else:
                    rows.append((f"PDF: {name}", f"{r.status_code} {r.json()['detail']}"))
            big = b"%PDF-1.4\n" + b"0" * (51 * 1024 * 1024)
            r = c.post("/pieces", files={"file": ("big.pdf", big)}, headers=KEY)
            rows.append(("PDF: 51 MB upload (limit 50)", f"{r.status_code} {r.json()['detail']}"))
            r = c.post("/pieces", files={"file": ("good.pdf", good)})
            rows.append(("PDF without API key", f"{r.status_code} {r.json()['detail']}"))
            for name, data in audio.items():
                r = c.post("/identify", files={"file": ("take.wav", data, "audio/wav")})
                rows.append((name, f"{r.status_code} {r.json()['detail']}"))
            unchanged = c.get("/pieces").json() == before
    for name, answer in rows:
        print(f"| {name} | {answer} |")
    print(f"library unchanged afterwards: {unchanged}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
