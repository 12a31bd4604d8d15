"""Background ingest jobs: one worker thread, so ingests run one at a time while queries go on."""

from __future__ import annotations

import queue
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from indexer.errors import BadInput
from indexer.library import AddResult, Library

MAX_JOBS_KEPT = 1000  # finished jobs remembered for GET /jobs/{id}


@dataclass
class Job:
    id: str
    status: str = "queued"
    stage: str = "queued"
    progress: float = 0.0
    piece_id: int | None = None
    duplicate: bool = False
    error: str | None = None
    pages_without_music: list[int] = field(default_factory=list)  # 1-based pages skipped: no staff systems


class JobRunner:
    def __init__(self, library: Library) -> None:
        self.library = library
        self.jobs: dict[str, Job] = {}
        self.queue: queue.Queue[tuple[Job, Callable[[Job], AddResult]] | None] = queue.Queue()
        self.thread = threading.Thread(target=self._run, name="ingest", daemon=True)
        self.thread.start()

    def submit_pdf(self, data: bytes, title: str | None, composer: str | None, filename: str | None) -> Job:
        job = Job(id=uuid.uuid4().hex)
        self.jobs[job.id] = job
        if len(self.jobs) > MAX_JOBS_KEPT:
            finished = [j for j in self.jobs.values() if j.status in ("done", "failed")]
            for old in finished[: len(self.jobs) - MAX_JOBS_KEPT]:
                self.jobs.pop(old.id, None)

        def work(j: Job) -> AddResult:
            def progress(stage: str, fraction: float) -> None:
                j.stage, j.progress = stage, round(fraction, 3)

            return self.library.add_pdf(data, title, composer, filename, progress)

        self.queue.put((job, work))
        return job

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            job, work = item
            job.status = job.stage = "running"
            try:
                result = work(job)
                job.piece_id, job.duplicate = result.piece_id, not result.created
                job.pages_without_music = result.pages_without_music
                job.status, job.stage, job.progress = "done", "indexed", 1.0
            except BadInput as exc:
                job.status, job.error = "failed", str(exc)
            except Exception as exc:  # noqa: BLE001 - reported on the job, the worker keeps running
                job.status, job.error = "failed", f"internal error: {type(exc).__name__}"

    def wait_idle(self) -> None:
        """Block until every queued job has finished (tests and the demo builder use it)."""
        while not self.queue.empty() or any(j.status in ("queued", "running") for j in self.jobs.values()):
            threading.Event().wait(0.05)

    def stop(self) -> None:
        self.queue.put(None)
        self.thread.join(timeout=5)
