"""Ingest jobs as database rows, so any worker process (or the server's embedded worker) can run them.

A job is `queued` until a worker claims it: PostgreSQL hands each queued row to one claimer with
`SELECT ... FOR UPDATE SKIP LOCKED`, and the claim itself is a guarded UPDATE, which is what makes it
safe on SQLite too. A claimed job holds a lease that its worker renews while it works; a worker that
dies stops renewing, and once the lease has run out the job is claimable again (up to MAX_ATTEMPTS).
The uploaded PDF travels in the row (see `JobRow.pdf`) and is dropped once the job has finished.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import dataclass, field

from sqlalchemy import Boolean, Float, Integer, LargeBinary, String, and_, exists, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column, sessionmaker

from indexer.store import Base

MAX_ATTEMPTS = 3  # a PDF whose worker died this many times is failed instead of retried again
CLAIM_CANDIDATES = 8  # rows looked at per claim (skipping those whose PDF another worker is ingesting)


class JobRow(Base):
    __tablename__ = "jobs"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))  # queued | running | done | failed
    stage: Mapped[str] = mapped_column(String(32))
    progress: Mapped[float] = mapped_column(Float)
    sha256: Mapped[str] = mapped_column(String(64))
    title: Mapped[str | None] = mapped_column(String(300), nullable=True)
    composer: Mapped[str | None] = mapped_column(String(200), nullable=True)
    filename: Mapped[str | None] = mapped_column(String(300), nullable=True)
    # The upload itself. In the database rather than on a shared disk: the row and its input commit
    # together (no orphan files, no half-written file a worker could read), and a worker needs nothing
    # but the database URL to fetch it. Uploads are capped (SHEETID_MAX_UPLOAD_MB); the bytes are set
    # to NULL when the job ends, so the table holds only the PDFs still waiting.
    pdf: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    piece_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    duplicate: Mapped[bool] = mapped_column(Boolean, default=False)
    pages_without_music: Mapped[str] = mapped_column(String(400), default="")  # "1,5": skipped pages
    error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker: Mapped[str | None] = mapped_column(String(120), nullable=True)
    lease_until: Mapped[float | None] = mapped_column(Float, nullable=True)  # epoch seconds
    created: Mapped[float] = mapped_column(Float)
    finished: Mapped[float | None] = mapped_column(Float, nullable=True)


@dataclass
class JobState:
    """What GET /jobs/{id} shows."""

    id: str
    status: str
    stage: str
    progress: float
    piece_id: int | None = None
    duplicate: bool = False
    error: str | None = None
    pages_without_music: list[int] = field(default_factory=list)  # 1-based pages skipped: no staff systems


@dataclass
class ClaimedJob:
    id: str
    sha256: str
    pdf: bytes
    title: str | None
    composer: str | None
    filename: str | None
    attempt: int


def _state(row: JobRow) -> JobState:
    skipped = [int(p) for p in (row.pages_without_music or "").split(",") if p]
    return JobState(row.id, row.status, row.stage, row.progress, row.piece_id, row.duplicate, row.error, skipped)


class JobQueue:
    def __init__(self, session: sessionmaker, lease_s: float = 60.0) -> None:
        self.Session = session
        self.lease_s = lease_s

    # ---- API side -------------------------------------------------------------------------------
    def submit(self, pdf: bytes, title: str | None, composer: str | None, filename: str | None) -> JobState:
        """Queue a PDF; the same PDF while it is still queued or running gives back that job."""
        sha = hashlib.sha256(pdf).hexdigest()
        with self.Session.begin() as s:
            active = s.scalars(select(JobRow).where(JobRow.sha256 == sha, JobRow.status.in_(("queued", "running")))
                               .order_by(JobRow.created).limit(1)).first()  # fmt: skip
            if active is not None:
                return _state(active)
            row = JobRow(id=uuid.uuid4().hex, status="queued", stage="queued", progress=0.0, sha256=sha,
                         title=title, composer=composer, filename=(filename or "")[:300] or None, pdf=pdf,
                         duplicate=False, pages_without_music="", attempts=0, created=time.time())  # fmt: skip
            s.add(row)
            return _state(row)

    def get(self, job_id: str) -> JobState | None:
        with self.Session() as s:
            row = s.get(JobRow, job_id[:32])
            return _state(row) if row is not None else None

    def unfinished(self) -> int:
        """Jobs queued or running."""
        with self.Session() as s:
            return int(s.scalar(select(func.count()).select_from(JobRow)
                                .where(JobRow.status.in_(("queued", "running")))) or 0)  # fmt: skip

    # ---- worker side ----------------------------------------------------------------------------
    def claim(self, worker: str) -> ClaimedJob | None:
        """Take the oldest claimable job: queued, or running under a lease that ran out."""
        now = time.time()
        claimable = or_(JobRow.status == "queued", and_(JobRow.status == "running", JobRow.lease_until < now))
        other = JobRow.__table__.alias("other")
        busy_elsewhere = exists().where(other.c.sha256 == JobRow.sha256, other.c.id != JobRow.id,
                                        other.c.status == "running", other.c.lease_until >= now)  # fmt: skip
        try:
            with self.Session.begin() as s:
                rows = s.execute(select(JobRow.id, JobRow.status, JobRow.attempts)
                                 .where(claimable, ~busy_elsewhere).order_by(JobRow.created)
                                 .limit(CLAIM_CANDIDATES).with_for_update(skip_locked=True)).all()  # fmt: skip
                for job_id, status, attempts in rows:
                    if attempts >= MAX_ATTEMPTS:
                        s.execute(update(JobRow).where(JobRow.id == job_id).values(
                            status="failed", stage="failed", pdf=None, finished=now, lease_until=None,
                            error=f"the worker stopped {attempts} times while indexing this PDF"))  # fmt: skip
                        continue
                    guard = JobRow.status == "queued" if status == "queued" else JobRow.lease_until < now
                    taken = s.execute(update(JobRow).where(JobRow.id == job_id, guard).values(
                        status="running", stage="running", worker=worker, attempts=JobRow.attempts + 1,
                        lease_until=now + self.lease_s))  # fmt: skip
                    if taken.rowcount != 1:  # type: ignore[attr-defined]
                        continue
                    row = s.get(JobRow, job_id)
                    assert row is not None and row.pdf is not None
                    return ClaimedJob(row.id, row.sha256, row.pdf, row.title, row.composer, row.filename,
                                      row.attempts)  # fmt: skip
        except IntegrityError:  # another worker started the same PDF in the same instant: try again later
            return None
        return None

    def heartbeat(self, job_id: str, worker: str, stage: str | None = None, progress: float | None = None) -> bool:
        """Renew the lease (and report progress); False when the job is no longer this worker's."""
        values: dict[str, object] = {"lease_until": time.time() + self.lease_s}
        if stage is not None:
            values["stage"] = stage[:32]
        if progress is not None:
            values["progress"] = round(progress, 3)
        with self.Session.begin() as s:
            result = s.execute(update(JobRow).where(JobRow.id == job_id, JobRow.worker == worker,
                                                    JobRow.status == "running").values(**values))  # fmt: skip
            return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    def finish(self, job_id: str, worker: str, piece_id: int, duplicate: bool,
               pages_without_music: list[int] | None = None) -> None:  # fmt: skip
        skipped = ",".join(map(str, pages_without_music or []))[:400]
        self._end(job_id, worker, status="done", stage="indexed", progress=1.0, piece_id=piece_id,
                  duplicate=duplicate, pages_without_music=skipped)  # fmt: skip

    def fail(self, job_id: str, worker: str, error: str) -> None:
        self._end(job_id, worker, status="failed", stage="failed", error=error[:500])

    def _end(self, job_id: str, worker: str, **values: object) -> None:
        with self.Session.begin() as s:
            s.execute(update(JobRow).where(JobRow.id == job_id, JobRow.worker == worker)
                      .values(pdf=None, lease_until=None, finished=time.time(), **values))  # fmt: skip

    def release_all(self) -> int:
        """Return every running job to the queue (single-process start: whoever ran them is gone)."""
        with self.Session.begin() as s:
            result = s.execute(update(JobRow).where(JobRow.status == "running")
                               .values(status="queued", stage="queued", lease_until=None, worker=None))  # fmt: skip
            return int(result.rowcount)  # type: ignore[attr-defined]

    def live_sha256s(self) -> set[str]:
        """PDFs some worker is ingesting right now (its lease still runs)."""
        with self.Session() as s:
            return set(s.scalars(select(JobRow.sha256).where(JobRow.status == "running",
                                                             JobRow.lease_until >= time.time())))  # fmt: skip
