"""``bmp``: Block-Max Pruning (kernel: :mod:`lsr.index.kernels.bmp`; reference twins:
``bmp.search_python`` at any alpha and beta, ``bmp.search_reference`` (numpy, rank-safe setting)
and a numpy twin of ``build_blocks`` in the tests). The ``bmp`` part holds per-term block maxima
over blocks of ``block_size`` internal doc numbers (dense rows for terms in >= ``dense_fraction``
of the blocks).

Pruning never pays when the query's terms touch most blocks (short real vectors on a small
collection): the kernel then runs exact search instead. It estimates both in the same unit (array
touches, BMP's weighed by their measured cost): exact search = the query terms' postings plus the
accumulator scan; BMP = 1.5 x the bound pass and the bucket sort up front, then the blocks whose
bound can still beat the k-th score, at ``2 block_size + 120 x query terms + 8 x average postings
per block`` each, re-estimated at
checkpoints every 1/32 of exact's work; where the work still to come exceeds ``FALLBACK`` x
exact's (work already spent is paid either way, so it does not count), it switches (details in
:mod:`lsr.index.kernels.bmp`). The fallback returns exact search's top-k, so alpha = beta = 1 stays rank-safe."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from lsr.index import format as fmt
from lsr.index.batch import search_batch
from lsr.index.methods import (
    BuildContext,
    FallbackPolicy,
    Method,
    Param,
    Part,
    exact_up_front,
    init_thr,
    timed_call,
)

# Fall back to exact search when BMP's estimated work exceeds FALLBACK x exact search's (0: never;
# see lsr.index.kernels.bmp for how the work is estimated): pruning should never cost more than
# exhaustive search. Rank-safe either way (the fallback returns exact search's top-k bit for bit).
FALLBACK = 1.0

ARRAYS = (
    "bmp_offsets",
    "bmp_blocks",
    "bmp_starts",
    "bmp_max",
    "bmp_dense_rows",
    "bmp_dense_max",
    "bmp_dense_starts",
)


def build(ctx: BuildContext, params: dict[str, Any]) -> dict[str, Any]:
    from lsr.index.kernels import bmp as bmp_k

    bs = int(params["block_size"])
    arrays = bmp_k.build_blocks(
        ctx.offsets, ctx.docs, ctx.impacts, bs, ctx.n_docs, float(params["dense_fraction"])
    )
    for name, arr in zip(ARRAYS, arrays, strict=True):
        ctx.save(name, arr)
    bo, drow = arrays[0], arrays[4]
    return {**params, "n_entries": int(bo[-1]), "n_dense": int((drow >= 0).sum())}


def open_part(index: Any, record: dict[str, Any]) -> tuple:
    n = int(record["n_entries"])
    nd = int(record.get("n_dense", 0))
    bs = int(record["block_size"])
    nb = (index.n_docs + bs - 1) // bs
    p, m = index.path, index.manifest
    index.bmp_block_size = bs
    return (
        fmt.open_array(p, "bmp_offsets", m),
        fmt.open_array(p, "bmp_blocks", m, n),
        fmt.open_array(p, "bmp_starts", m, n),
        fmt.open_array(p, "bmp_max", m, n),
        fmt.open_array(p, "bmp_dense_rows", m),
        fmt.open_array(p, "bmp_dense_max", m, nd * nb),
        fmt.open_array(p, "bmp_dense_starts", m, nd * (nb + 1)),
    )


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
    """BMP top-k; ``scratch.buffer("bmp_slots")`` holds one int32 row of (query terms x blocks)
    per chunk, ``scratch.buffer("acc")`` the zeroed accumulators exact search shares (for the
    fallback to exact search: see :mod:`lsr.index.kernels.bmp`), or exact search up front where this
    index's recent queries kept falling back or took longer than exact search's
    (:class:`lsr.index.methods.FallbackPolicy`)."""
    fallback = float(FALLBACK)
    policy = None
    if fallback > 0:
        # approximate settings prune differently: each (alpha, beta) keeps its own policy, which
        # times nothing (their results must not depend on timings: exact search's differ)
        safe = params["alpha"] == 1.0 and params["beta"] == 1.0
        key = "bmp" if safe else f"bmp:{params['alpha']}:{params['beta']}"
        policy = FallbackPolicy.of(index, key, timed=safe)
    nq = len(indptr) - 1
    t0 = time.perf_counter()
    out = exact_up_front(policy, t0, index, params, indptr, terms, weights, k, scratch, n_chunks, mask)
    if out is not None:
        return out
    from lsr.index.kernels import bmp  # after the policy: a call sent to exact search skips it

    n_blocks = (index.n_docs + index.bmp_block_size - 1) // index.bmp_block_size
    if len(indptr) == 2:  # one query: no numpy call for its length
        max_nq = int(indptr[1] - indptr[0])
    else:
        max_nq = int(np.diff(indptr).max()) if len(indptr) > 1 else 0
    slots = scratch.buffer("bmp_slots", max(max_nq * n_blocks, 1), np.int32, fill=None)
    accs = scratch.buffer("acc", index.n_docs, np.float32)
    args = (
        *index.postings,
        index.doc_order,
        *index.bmp,
        index.bmp_block_size,
        index.n_docs,
        indptr,
        terms,
        weights,
        k,
        params["alpha"],
        params["beta"],
        fallback,
    )
    stats = np.zeros(3, np.int64)  # queries that fell back, work, exact search's work
    thr0 = init_thr(params)
    if n_chunks == 1:
        out = bmp.search_serial(*args, slots[0], accs[0], mask, thr0, stats)
    else:
        chunk_stats = np.zeros((n_chunks, 3), np.int64)

        def work(c: int, lo: int, hi: int, out_d: np.ndarray, out_s: np.ndarray) -> None:
            bmp.search_range(*args, slots[c], accs[c], lo, hi, out_d, out_s, mask, thr0, chunk_stats[c])

        out = search_batch(indptr, k, n_chunks, work)
        stats[:] = chunk_stats.sum(axis=0)
    if policy is not None:
        seconds = time.perf_counter() - t0 if timed_call(params, n_chunks, mask) else None
        policy.update(int(stats[0]), nq, seconds, int(stats[1]), int(stats[2]))
    return out


PARTS = (
    Part(
        name="bmp",
        arrays={
            "bmp_offsets": ("int64", "n_terms+1"),
            "bmp_blocks": ("uint32", None),
            "bmp_starts": ("uint32", None),
            "bmp_max": ("impacts", None),
            "bmp_dense_rows": ("int32", "n_terms"),
            "bmp_dense_max": ("impacts", None),
            "bmp_dense_starts": ("uint32", None),
        },
        build=build,
        open=open_part,
        reorder=True,
        defaults={"block_size": 16, "dense_fraction": 0.25},
        order=10,
    ),
)

METHOD = Method(
    name="bmp",
    parts=("bmp",),
    params=(
        Param("alpha", 1.0, 1e-6, 1.0, doc="< 1 over-estimates the threshold: stops earlier (approximate)"),
        Param(
            "beta",
            1.0,
            1e-6,
            1.0,
            doc="< 1 keeps only the heaviest query terms holding that share of the weight",
        ),
    ),
    search=search,
    rank_safe=lambda p: p["alpha"] == 1.0 and p["beta"] == 1.0,
    doc="Block-Max Pruning: blocks visited by decreasing upper bound until it falls under the k-th score",
    order=20,
)
