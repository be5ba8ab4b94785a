"""``maxscore``: rank-safe MaxScore in windows of documents (kernel: :mod:`lsr.index.kernels.maxscore`;
reference twin: ``maxscore.search_reference``, plain Python, compared with the kernel on random
inputs in ``tests/test_kernel_twins.py``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from lsr.index.batch import search_batch
from lsr.index.methods import Method, init_thr, with_policy

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
    from lsr.index.kernels import maxscore
    from lsr.index.methods import exact

    fallback = float(FALLBACK)
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

    def run_method() -> tuple[tuple[np.ndarray, np.ndarray], int]:
        accs = scratch.buffer("acc", index.n_docs, np.float32)
        if n_chunks == 1:
            stats = np.zeros(1, np.int64)
            return maxscore.search_serial(*args, mask, thr0, fallback, accs[0], stats), int(stats[0])
        chunk_stats = np.zeros((n_chunks, 1), np.int64)

        def work(c: int, lo: int, hi: int, out_d: np.ndarray, out_s: np.ndarray) -> None:
            maxscore.search_range(*args, lo, hi, out_d, out_s, mask, thr0, fallback, accs[c], chunk_stats[c])

        return search_batch(indptr, k, n_chunks, work), int(chunk_stats.sum())

    return with_policy(
        index,
        "maxscore",
        fallback,
        len(indptr) - 1,
        n_chunks == 1,
        True,
        lambda: exact.search(index, params, indptr, terms, weights, k, scratch, n_chunks, mask),
        run_method,
    )


METHOD = Method(
    name="maxscore",
    parts=("forward",),
    params=(),
    search=search,
    doc="rank-safe MaxScore: lists that cannot lift a document into the top-k are only looked up",
    order=10,
)
