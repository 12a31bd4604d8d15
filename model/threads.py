"""How the process's compute libraries share the CPU.

torch runs the network on its OpenMP pool (Settings.threads) and FAISS searches on its own. numpy's bundled
OpenBLAS is built on pthreads, and its worker threads keep spinning for a while after each matrix product:
on 2 cores they took the CPU from the trunk passes that came next (a 30-s query's two passes: 115.8 ms, 53.7
ms with numpy's BLAS on one thread; `sheetid bench`, README, Speed). The
products numpy does at query time are small (the filterbank, the alignment check's cosine matrix), so
they run on the calling thread. OpenMP-built BLAS (FAISS's) is left alone: it shares FAISS's pool.
"""

from __future__ import annotations

import torch
from threadpoolctl import ThreadpoolController


def use_threads(threads: int) -> None:
    """torch on `threads` threads; pthreads-built BLAS (numpy's OpenBLAS) on the calling thread only."""
    torch.set_num_threads(threads)
    ThreadpoolController().select(threading_layer="pthreads").limit(limits=1)
