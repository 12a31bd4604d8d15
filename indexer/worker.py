"""The ingest worker: claims jobs from the database queue and indexes them through the library.

`sheetid worker` runs one in its own process (any number of them, on any machine that reaches the
database, the vector store and the page volume); `sheetid serve` runs one in a thread unless told not
to (SHEETID_EMBEDDED_WORKER=false). While a job runs, a second thread renews its lease and reports its
progress, so a worker that dies leaves a lease that runs out and a job that another worker retries.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import traceback

from indexer.errors import BadInput
from indexer.job_queue import ClaimedJob, JobQueue
from indexer.library import Library

log = logging.getLogger("sheetid.worker")
POLL_S = 0.5  # idle wait between claims


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident() % 100000}"


class Worker:
    def __init__(self, library: Library, queue: JobQueue | None = None, name: str | None = None) -> None:
        self.library = library
        self.queue = queue or library.queue
        self.name = name or worker_name()
        self.stop = threading.Event()

    def run(self) -> None:
        """Claim and run jobs until `stop` is set."""
        while not self.stop.is_set():
            try:
                ran = self.run_once()
            except Exception:  # noqa: BLE001 - database or store unreachable: keep polling
                log.exception("worker %s: claim failed", self.name)
                ran = False
            if not ran:
                self.stop.wait(POLL_S)

    def run_once(self) -> bool:
        """Run one claimable job if there is one; True when a job ran."""
        job = self.queue.claim(self.name)
        if job is None:
            return False
        self._process(job)
        return True

    def _process(self, job: ClaimedJob) -> None:
        progress: list[tuple[str, float]] = [("running", 0.0)]  # latest (stage, fraction), read by renew()
        done = threading.Event()

        def report(stage: str, fraction: float) -> None:
            progress[0] = (stage, fraction)

        def renew() -> None:  # renews the lease and publishes progress until the job ends
            period = min(1.0, self.queue.lease_s / 3)
            while not done.wait(period):
                try:
                    self.queue.heartbeat(job.id, self.name, *progress[0])
                except Exception:  # noqa: BLE001 - a missed renewal is retried next period
                    log.exception("worker %s: heartbeat failed", self.name)

        beat = threading.Thread(target=renew, name=f"lease-{job.id[:8]}", daemon=True)
        beat.start()
        log.info("worker %s: job %s (attempt %d) started", self.name, job.id, job.attempt)
        started = time.monotonic()
        try:
            result = self.library.add_pdf(job.pdf, job.title, job.composer, job.filename, report)
        except BadInput as exc:
            done.set()
            log.info("worker %s: job %s refused: %s", self.name, job.id, exc)
            self.queue.fail(job.id, self.name, str(exc))
        except Exception as exc:  # noqa: BLE001 - reported on the job; the worker keeps running
            done.set()
            log.error("worker %s: job %s failed:\n%s", self.name, job.id, traceback.format_exc())
            self.queue.fail(job.id, self.name, f"internal error: {type(exc).__name__}")
        else:
            done.set()
            self.queue.finish(job.id, self.name, result.piece_id, duplicate=not result.created,
                              pages_without_music=result.pages_without_music)  # fmt: skip
            log.info("worker %s: job %s done in %.1f s: piece %d", self.name, job.id, time.monotonic() - started,
                     result.piece_id)  # fmt: skip
        finally:
            done.set()
            beat.join(timeout=5)
