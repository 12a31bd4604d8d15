"""Ingest jobs for the API: rows in the database queue, run by any worker (indexer/worker.py).

`sheetid serve` alone runs one embedded worker thread that claims from the same table, so ingests run
one at a time while queries go on; API-only replicas (SHEETID_EMBEDDED_WORKER=false) leave the work to
`sheetid worker` processes.
"""

from __future__ import annotations

import threading
import time

from indexer.job_queue import JobState
from indexer.library import Library
from indexer.worker import Worker

Job = JobState  # what the routes show


class JobRunner:
    def __init__(self, library: Library, embedded_worker: bool = True) -> None:
        self.library = library
        self.queue = library.queue
        self.worker = Worker(library) if embedded_worker else None
        self.thread: threading.Thread | None = None
        if self.worker is not None:
            self.thread = threading.Thread(target=self.worker.run, name="ingest", daemon=True)
            self.thread.start()

    def submit_pdf(self, data: bytes, title: str | None, composer: str | None, filename: str | None) -> Job:
        return self.queue.submit(data, title, composer, filename)

    def get(self, job_id: str) -> Job | None:
        return self.queue.get(job_id)

    def wait_idle(self, timeout_s: float = 600.0) -> None:
        """Block until no job is queued or running (tests and the demo builder use it)."""
        deadline = time.monotonic() + timeout_s
        while self.queue.unfinished() and time.monotonic() < deadline:
            time.sleep(0.05)

    def stop(self) -> None:
        if self.worker is not None and self.thread is not None:
            self.worker.stop.set()
            self.thread.join(timeout=30)
