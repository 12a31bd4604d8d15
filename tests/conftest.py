"""Shared fixtures, made by the project's own pipeline (music21 corpus → verovio → FluidSynth)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

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


EXACT = "FLAT"  # Milvus searches exactly in tests, as FAISS's default Flat does: backends compared, not recall


def _test_vector_store(tmp_path: Path) -> str:
    """SHEETID_TEST_VECTOR_STORE=milvus-lite runs the library tests on Milvus Lite (a fresh file per test)."""
    chosen = os.environ.get("SHEETID_TEST_VECTOR_STORE", "faiss")
    if chosen == "milvus-lite":
        return str(tmp_path / "milvus-lite.db")
    if chosen != "faiss":
        raise ValueError("SHEETID_TEST_VECTOR_STORE is faiss or milvus-lite")
    return "faiss"


@pytest.fixture(autouse=True)
def _close_libraries(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Close every Library a test opened (many tests reopen one to play a restart and drop the old one),
    then stop the test's Milvus Lite servers, so they do not pile up until the end of the run."""
    from indexer.library import Library

    opened: list[Library] = []
    original = Library.__init__

    def tracked(self: Library, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        opened.append(self)

    monkeypatch.setattr(Library, "__init__", tracked)
    yield
    for library in opened:
        try:
            library.close()
        except Exception:  # noqa: BLE001 - a test may have closed it, or broken its store on purpose
            pass
    if os.environ.get("SHEETID_TEST_VECTOR_STORE") == "milvus-lite":
        # Milvus Lite serves each .db file from a gRPC server thread in this process; a test's file is its own
        from milvus_lite.server_manager import server_manager_instance

        server_manager_instance.release_all()


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
        yield Settings(data_dir=tmp_path / "library", threads=2, vector_store=store, milvus_index=EXACT)
        return
    from sqlalchemy import create_engine, make_url, text

    name = f"sheetid_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    yield Settings(data_dir=tmp_path / "library", threads=2, database_url=url, vector_store=store,
                   milvus_index=EXACT)
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def pdfs(dataset: Path) -> dict[str, bytes]:
    """The fixture pieces' PDFs as engraved by the data engine (verovio → raster → PDF)."""
    from model.data.dataset import pdf_path

    return {pid: pdf_path(dataset, pid).read_bytes() for pid in (TRAIN_PIECE, VAL_PIECE, TEST_PIECE)}


_EXIT_STATUS = pytest.StashKey[int]()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    session.config.stash[_EXIT_STATUS] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """With Milvus Lite, leave without the interpreter's teardown, keeping pytest's exit status.

    Milvus Lite's gRPC servers run as threads in this process; even with each test's servers stopped (and,
    in a trial, awaited) after the test, the interpreter's teardown aborted the process ("terminate called
    without an active exception", exit 134) in 2 of 5 runs here after every test had passed and been
    reported.
    This hook runs after pytest's summary and every other plugin's end-of-run work."""
    if os.environ.get("SHEETID_TEST_VECTOR_STORE") == "milvus-lite":
        import sys

        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(config.stash.get(_EXIT_STATUS, 1))
