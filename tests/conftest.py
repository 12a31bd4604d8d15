"""Shared fixtures, made by the project's own pipeline (music21 corpus → verovio → FluidSynth)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

TRAIN_PIECE = "bach/bwv66.6"  # a one-page four-part chorale (train split)
VAL_PIECE = "schumann_robert/dichterliebe_no2"  # a one-page song accompaniment (validation split)
TEST_PIECE = "schoenberg/opus19/movement2"  # a one-page piano piece (test split)


@pytest.fixture(scope="session")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real three-piece dataset build (one piece per split kind), about 15 s."""
    from model.data.build import build

    root = tmp_path_factory.mktemp("dataset")
    manifest = build(root, only=[TRAIN_PIECE, VAL_PIECE, TEST_PIECE], workers=1, log=lambda *_: None)
    assert not manifest["failures"], manifest["failures"]
    return root


def _test_vector_store(tmp_path: Path) -> str:
    """SHEETID_TEST_VECTOR_STORE=milvus-lite runs the library tests on Milvus Lite (a fresh file per test)."""
    chosen = os.environ.get("SHEETID_TEST_VECTOR_STORE", "faiss")
    if chosen == "milvus-lite":
        return str(tmp_path / "milvus-lite.db")
    if chosen != "faiss":
        raise ValueError("SHEETID_TEST_VECTOR_STORE is faiss or milvus-lite")
    return "faiss"


@pytest.fixture()
def settings(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Settings for a fresh, empty library in a temporary data directory.

    With SHEETID_TEST_VECTOR_STORE=milvus-lite, the library's vectors live in Milvus Lite instead of FAISS.

    With SHEETID_TEST_DATABASE_URL set to a PostgreSQL server URL (postgresql+psycopg://user@host/db), each
    test gets a new, empty database on that server instead of SQLite.
    """
    from indexer.settings import Settings

    store = _test_vector_store(tmp_path)
    server = os.environ.get("SHEETID_TEST_DATABASE_URL")
    if not server:
        yield Settings(data_dir=tmp_path / "library", threads=2, vector_store=store)
        return
    from sqlalchemy import create_engine, make_url, text

    name = f"sheetid_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    yield Settings(data_dir=tmp_path / "library", threads=2, database_url=url, vector_store=store)
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def pdfs(dataset: Path) -> dict[str, bytes]:
    """The fixture pieces' PDFs as engraved by the data engine (verovio → raster → PDF)."""
    from model.data.dataset import pdf_path

    return {pid: pdf_path(dataset, pid).read_bytes() for pid in (TRAIN_PIECE, VAL_PIECE, TEST_PIECE)}
