"""Run a sheetid process whose ingests hold still after their vectors are stored, so a crash test can kill it
there however fast the machine is.

    python tests/paused_ingest.py SECONDS -m uvicorn service.app:create_app --factory ...
    python tests/paused_ingest.py SECONDS path/to/cli.py worker

Every vector-store `add` (FAISS and Milvus) sleeps SECONDS after it returns: the piece row is pending, its
snippet rows and vectors are written, and it is not yet visible - the partial state a crash must not leak.
The worker's heartbeat keeps publishing the job's stage ("embedded") meanwhile, which is what the tests poll
for. Without the pause, a small PDF is ingested between two heartbeats on a fast machine and the test never
sees the job mid-way. Only the test launcher patches; the product's code runs unchanged.
"""

from __future__ import annotations

import runpy
import sys
import time
from typing import Any

from indexer.vector_faiss import FaissStore
from indexer.vector_milvus import MilvusStore


def _pause_after_add(store: Any, seconds: float) -> None:
    original = store.add

    def add(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        time.sleep(seconds)

    store.add = add


def main(argv: list[str]) -> None:
    seconds, target = float(argv[0]), argv[1:]
    for store in (FaissStore, MilvusStore):
        _pause_after_add(store, seconds)
    if target[0] == "-m":
        sys.argv = [target[1], *target[2:]]
        runpy.run_module(target[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = target
        runpy.run_path(target[0], run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])
