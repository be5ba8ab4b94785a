"""Batch search on several threads: a batch's queries cut into ranges, handed one range at a time to
Python threads that each call a method's ``search_range`` kernel on scratch of their own.

The kernels are compiled with ``nogil=True``, so these threads search in parallel. This replaced
numba ``prange`` wrappers (one ``search_batch`` per method): a parallel kernel is compiled again for
every impact dtype and costs 2-6 s of compilation each (numba's parfor pass, and the serial kernel it
calls compiled once more for it), where the threads here run the very code the one-thread search
compiled. Dispatch costs a few microseconds per range, a few ranges per thread per batch.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

PARTS_PER_THREAD = 8  # query ranges per thread, handed out as threads free up

_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_pool_lock = threading.Lock()


def max_threads() -> int:
    """The most threads a batch search uses: numba's thread count limit (``NUMBA_NUM_THREADS``,
    the machine's cores unless set), as when numba ran the batches."""
    import numba

    return max(1, int(numba.config.NUMBA_NUM_THREADS))


def _executor(n_workers: int) -> ThreadPoolExecutor:
    """A process-wide pool of at least ``n_workers`` threads (made larger when a call needs it)."""
    global _pool, _pool_size
    with _pool_lock:
        if _pool is None or _pool_size < n_workers:
            old = _pool
            _pool = ThreadPoolExecutor(max_workers=n_workers, thread_name_prefix="lsr-search")
            _pool_size = n_workers
            if old is not None:
                old.shutdown(wait=False)  # its running calls finish; new ones go to the new pool
        return _pool


def run_ranges(nq: int, n_chunks: int, work: Callable[[int, int, int], None]) -> None:
    """Call ``work(chunk, lo, hi)`` for query ranges [lo, hi) that cover 0..nq-1 once each, on
    ``min(n_chunks, max_threads())`` threads, the calling thread among them.

    ``chunk`` (0..n_chunks-1) numbers the thread, so scratch indexed by it is that thread's alone.
    The queries are cut into up to ``PARTS_PER_THREAD`` ranges per thread, handed out one at a time
    as threads free up, so a thread with slow queries does not leave the others idle. If ``work``
    raises, no new range starts, and the first exception is raised once every thread has stopped.
    """
    n_workers = max(1, min(n_chunks, max_threads(), nq))
    n_parts = max(1, min(nq, PARTS_PER_THREAD * n_workers))
    per = -(-nq // n_parts) if nq else 1
    ranges = iter([(lo, min(nq, lo + per)) for lo in range(0, nq, per)])
    lock = threading.Lock()
    failed: list[BaseException] = []

    def loop(chunk: int) -> None:
        while not failed:
            with lock:
                r = next(ranges, None)
            if r is None:
                return
            try:
                work(chunk, r[0], r[1])
            except BaseException as e:  # stop the others; re-raised below
                failed.append(e)
                return

    futures = []
    if n_workers > 1:
        pool = _executor(n_workers - 1)
        futures = [pool.submit(loop, c) for c in range(1, n_workers)]
    try:
        loop(0)
    finally:
        for f in futures:
            f.result()
    if failed:
        raise failed[0]


def search_batch(
    indptr: np.ndarray, k: int, n_chunks: int, search_range: Callable[..., object]
) -> tuple[np.ndarray, np.ndarray]:
    """A batch search of the CSR queries ``indptr`` on threads (:func:`run_ranges`): returns (doc
    numbers int64[nq, k], -1 past the hits; scores float32[nq, k], 0 past the hits), which
    ``search_range(chunk, lo, hi, out_d, out_s)`` fills row by row for queries [lo, hi) with the
    scratch of thread ``chunk``: what each kernel's serial search returns for the same queries."""
    nq = len(indptr) - 1
    out_d = np.full((nq, k), -1, np.int64)
    out_s = np.zeros((nq, k), np.float32)
    run_ranges(nq, n_chunks, lambda c, lo, hi: search_range(c, lo, hi, out_d, out_s))
    return out_d, out_s
