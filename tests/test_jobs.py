"""Ingest jobs in the database: claims, leases, retries after a dead worker, and no half-indexed piece."""

from __future__ import annotations

import time

import numpy as np
import pytest
from sqlalchemy import func, select, update

from indexer.job_queue import MAX_ATTEMPTS, JobQueue, JobRow
from indexer.library import Library
from indexer.settings import Settings
from indexer.store import Piece, Snippet, Status, make_engine, migrate, session_factory
from indexer.worker import Worker
from tests.conftest import TRAIN_PIECE, VAL_PIECE


@pytest.fixture()
def queue(settings: Settings) -> JobQueue:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    migrate(settings.db_url)
    return JobQueue(session_factory(make_engine(settings.db_url)), lease_s=30.0)


def _expire(queue: JobQueue, job_id: str) -> None:
    """The worker holding the job died: its lease runs out."""
    with queue.Session.begin() as s:
        s.execute(update(JobRow).where(JobRow.id == job_id).values(lease_until=time.time() - 1))


def test_a_job_is_claimed_once_and_retried_after_its_lease_runs_out(queue: JobQueue) -> None:
    job = queue.submit(b"%PDF-1.4 one", "One", None, "one.pdf")
    assert queue.submit(b"%PDF-1.4 one", "again", None, None).id == job.id  # same PDF while queued
    first = queue.claim("w1")
    assert first is not None and first.id == job.id and first.pdf == b"%PDF-1.4 one" and first.attempt == 1
    assert queue.claim("w2") is None  # running under a live lease
    assert queue.heartbeat(job.id, "w1", "embedding", 0.5)
    state = queue.get(job.id)
    assert state is not None and (state.status, state.stage, state.progress) == ("running", "embedding", 0.5)
    _expire(queue, job.id)
    second = queue.claim("w2")
    assert second is not None and second.id == job.id and second.attempt == 2
    assert not queue.heartbeat(job.id, "w1")  # the old worker has lost it
    queue.finish(job.id, "w1", piece_id=1, duplicate=False)  # ... and cannot finish it either
    assert queue.get(job.id).status == "running"  # type: ignore[union-attr]
    queue.finish(job.id, "w2", piece_id=7, duplicate=False)
    done = queue.get(job.id)
    assert done is not None and (done.status, done.piece_id) == ("done", 7)
    with queue.Session() as s:
        assert s.get(JobRow, job.id).pdf is None  # type: ignore[union-attr]  # bytes dropped once done
    assert queue.unfinished() == 0 and queue.get("nope") is None


def test_a_pdf_that_kills_its_workers_is_failed_after_max_attempts(queue: JobQueue) -> None:
    job = queue.submit(b"%PDF-1.4 poison", None, None, None)
    for n in range(MAX_ATTEMPTS):
        claimed = queue.claim(f"w{n}")
        assert claimed is not None and claimed.attempt == n + 1
        _expire(queue, job.id)
    assert queue.claim("last") is None
    state = queue.get(job.id)
    assert state is not None and state.status == "failed" and "stopped" in (state.error or "")


def test_two_jobs_for_one_pdf_never_run_at_once(queue: JobQueue) -> None:
    first = queue.submit(b"%PDF-1.4 same", None, None, None)
    assert queue.claim("w1") is not None
    second = queue.submit(b"%PDF-1.4 same", None, None, None)  # resubmitted while running: same job
    assert second.id == first.id
    other = queue.submit(b"%PDF-1.4 other", None, None, None)
    claimed = queue.claim("w2")
    assert claimed is not None and claimed.id == other.id


def test_a_dead_workers_half_ingest_is_redone_once(settings: Settings, pdfs: dict[str, bytes],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    settings = settings.model_copy(update={"job_lease_s": 30.0})
    lib = Library(settings)
    lib.add_pdf(pdfs[TRAIN_PIECE])
    job = lib.queue.submit(pdfs[VAL_PIECE], "Song", None, "song.pdf")
    claimed = lib.queue.claim("dead-worker")
    assert claimed is not None

    class Killed(BaseException):
        pass

    real_add = lib.index.add

    def die(*args: object) -> None:  # SIGKILL once the vectors are in the store, before the piece is visible
        real_add(*args)  # type: ignore[arg-type]
        raise Killed

    def no_cleanup(*_: object) -> None:
        raise Killed

    monkeypatch.setattr(lib.index, "add", die)
    monkeypatch.setattr(lib, "_discard", no_cleanup)
    with pytest.raises(Killed):
        lib.add_pdf(claimed.pdf, claimed.title)
    monkeypatch.undo()

    # a second process starts while the dead worker's lease still runs: the pending piece is left alone
    other = Library(settings)
    with other.Session() as s:
        assert s.scalar(select(func.count()).select_from(Piece).where(Piece.status == Status.pending)) == 1
    assert Worker(other, name="w2").run_once() is False  # nothing claimable yet
    _expire(other.queue, job.id)
    assert Worker(other, name="w2").run_once() is True
    state = other.queue.get(job.id)
    assert state is not None and state.status == "done" and not state.duplicate, state
    with other.Session() as s:
        pieces = list(s.scalars(select(Piece)))
        indexed = np.sort(np.fromiter(s.scalars(select(Snippet.id).join(Piece)
                                                .where(Piece.status == Status.indexed)), np.int64))  # fmt: skip
    assert len(pieces) == 2 and "Song" in {p.title for p in pieces}
    assert {p.status for p in pieces} == {Status.indexed}
    assert np.array_equal(indexed, other.index.ids())  # every vector belongs to exactly one indexed snippet
    assert other.snippets.piece_sizes()[state.piece_id] > 0
