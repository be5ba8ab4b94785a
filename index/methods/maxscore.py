"""``maxscore``: rank-safe MaxScore in windows of documents (kernel: :mod:`lsr.index.kernels.maxscore`;
reference twin: ``maxscore.search_reference``, plain Python, compared with the kernel on random
inputs in ``tests/test_kernel_twins.py``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from lsr.index.methods import Method, init_thr

# Fall back to exact search when MaxScore's projected work exceeds FALLBACK x exact search's (0:
# never; see lsr.index.kernels.maxscore for how the work is counted). Rank-safe either way: the
# fallback returns exact search's top-k bit for bit.
FALLBACK = 1.0
# An index on which MaxScore keeps falling back (real learned-sparse vectors: long queries whose
# term bounds are close, so few lists ever become non-essential) answers its queries with exact
# search up front: each index keeps the share of recent queries that fell back (an exponential
# moving average with weight POLICY_WEIGHT per query); over POLICY_SKIP, a call goes straight to
# exact search, except every POLICY_PROBE-th call, which runs MaxScore and updates the share (so an
# index whose queries change can switch back). Same results either way (the fallback is exact
# search, bit for bit); what it saves is the work MaxScore does before its first fallback check
# (BENCHMARKS.md, issue 17: 1.14x exact search's time on real vectors without it). FALLBACK = 0
# turns both off.
POLICY_WEIGHT = 0.1
POLICY_SKIP = 0.75
POLICY_PROBE = 8


class Policy:
    """Per index: the moving share of queries that fell back (``rate``) and the calls so far."""

    __slots__ = ("rate", "calls")

    def __init__(self) -> None:
        self.rate = 0.0
        self.calls = 0

    def skip(self) -> bool:
        """Whether this call should go to exact search up front (counts the call)."""
        self.calls += 1
        return self.rate > POLICY_SKIP and self.calls % POLICY_PROBE != 0

    def update(self, fell_back: int, n_queries: int) -> None:
        """Fold in a MaxScore call of ``n_queries`` queries of which ``fell_back`` fell back."""
        if n_queries > 0:
            a = 1.0 - (1.0 - POLICY_WEIGHT) ** n_queries
            self.rate += (fell_back / n_queries - self.rate) * a


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
    recent queries kept falling back (:class:`Policy`)."""
    from lsr.index.kernels import maxscore
    from lsr.index.methods import exact

    fallback = float(FALLBACK)
    policy = index.adaptive.get("maxscore")
    if policy is None:
        policy = index.adaptive.setdefault("maxscore", Policy())
    if fallback > 0 and policy.skip():
        return exact.search(index, params, indptr, terms, weights, k, scratch, n_chunks, mask)

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
    stats = np.zeros(1, np.int64)
    if n_chunks == 1:
        out = maxscore.search_serial(*args, mask, thr0, fallback, accs[0], stats)
    else:
        out = maxscore.search_batch(*args, n_chunks, mask, thr0, fallback, accs[:n_chunks], stats)
    if fallback > 0:
        policy.update(int(stats[0]), len(indptr) - 1)
    return out


METHOD = Method(
    name="maxscore",
    parts=("forward",),
    params=(),
    search=search,
    doc="rank-safe MaxScore: lists that cannot lift a document into the top-k are only looked up",
    order=10,
)
