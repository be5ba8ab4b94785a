"""``maxscore``: rank-safe MaxScore in windows of documents (kernel: :mod:`lsr.index.kernels.maxscore`;
reference twin: ``maxscore.search_reference``, plain Python, compared with the kernel on random
inputs in ``tests/test_kernel_twins.py``)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from lsr.index.batch import search_batch
from lsr.index.methods import FallbackPolicy, Method, exact_up_front, init_thr, timed_call

# Fall back to exact search when MaxScore's projected work exceeds FALLBACK x exact search's (0:
# never; see lsr.index.kernels.maxscore for how the work is counted). Rank-safe either way: the
# fallback returns exact search's top-k bit for bit.
FALLBACK = 1.0


def search(
    index: Any,
    params: dict[str, Any],
    indptr: np.ndarray,
    terms: np.ndarray,
    weights: np.ndarray,
    k: int,
    scratch: Any,
    n_chunks: int,
    mask: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """MaxScore top-k (the kernel allocates its own small window accumulators;
    ``scratch.buffer("acc")``, the zeroed accumulators exact search shares, serve its fallback to
    exact search: see :mod:`lsr.index.kernels.maxscore`), or exact search up front where this index's
    recent queries kept falling back or took longer than exact search's
    (:class:`lsr.index.methods.FallbackPolicy`)."""
    fallback = float(FALLBACK)
    policy = FallbackPolicy.of(index, "maxscore") if fallback > 0 else None
    nq = len(indptr) - 1
    t0 = time.perf_counter()
    out = exact_up_front(policy, t0, index, params, indptr, terms, weights, k, scratch, n_chunks, mask)
    if out is not None:
        return out
    from lsr.index.kernels import maxscore  # after the policy: a call sent to exact search skips it

    args = (
        *index.postings,
        index.term_max,
        index.doc_order,
        *index.forward,
        index.n_docs,
        indptr,
        terms,
        weights,
        k,
    )
    thr0 = init_thr(params)
    accs = scratch.buffer("acc", index.n_docs, np.float32)
    stats = np.zeros(3, np.int64)  # queries that fell back, work, exact search's work
    if n_chunks == 1:
        out = maxscore.search_serial(*args, mask, thr0, fallback, accs[0], stats)
    else:
        chunk_stats = np.zeros((n_chunks, 3), np.int64)

        def work(c: int, lo: int, hi: int, out_d: np.ndarray, out_s: np.ndarray) -> None:
            maxscore.search_range(*args, lo, hi, out_d, out_s, mask, thr0, fallback, accs[c], chunk_stats[c])

        out = search_batch(indptr, k, n_chunks, work)
        stats[:] = chunk_stats.sum(axis=0)
    if policy is not None:
        seconds = time.perf_counter() - t0 if timed_call(params, n_chunks, mask) else None
        policy.update(int(stats[0]), nq, seconds, int(stats[1]), int(stats[2]))
    return out


METHOD = Method(
    name="maxscore",
    parts=("forward",),
    params=(),
    search=search,
    doc="rank-safe MaxScore: lists that cannot lift a document into the top-k are only looked up",
    order=10,
)
