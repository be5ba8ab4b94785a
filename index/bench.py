"""Measuring search: per-query latency after a warm-up, batch QPS, recall@k against exact search.

Used by ``lsr bench`` and the benchmark scripts, so every figure they print comes from one code path.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from lsr.errors import LsrError
from lsr.vectors import SparseBatch


def recall_at_k(found: list[Any], truth: list[Any]) -> float:
    """Mean over queries of |found ∩ truth| / |truth| (queries whose exact top-k is empty are skipped)."""
    vals = []
    for f, t in zip(found, truth, strict=True):
        if len(t.docs):
            vals.append(len(set(f.docs.tolist()) & set(t.docs.tolist())) / len(t.docs))
    return float(np.mean(vals)) if vals else 1.0


def single_queries(
    index: Any, indptr: np.ndarray, terms: np.ndarray, weights: np.ndarray
) -> list[SparseBatch]:
    """One SparseBatch per query of CSR arrays (from ``index.prepare_queries``), for timing queries
    one at a time."""
    return [
        SparseBatch(
            np.array([0, indptr[i + 1] - indptr[i]]),
            terms[indptr[i] : indptr[i + 1]],
            weights[indptr[i] : indptr[i + 1]],
            index.vocab,
        )
        for i in range(len(indptr) - 1)
    ]


def latency_stats(seconds: np.ndarray) -> dict[str, float]:
    ms = np.asarray(seconds, dtype=np.float64) * 1e3
    return {
        "mean": float(ms.mean()),
        "p50": float(np.percentile(ms, 50)),
        "p90": float(np.percentile(ms, 90)),
        "p99": float(np.percentile(ms, 99)),
        "max": float(ms.max()),
    }


def benchmark_search(
    index: Any,
    queries: Any,
    k: int = 10,
    method: str = "exact",
    threads: int = 1,
    repeats: int = 1,
    warmup: int = 50,
    params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Time ``index.search`` one query at a time (the median of ``repeats`` passes per query) and as
    one batch over ``threads`` threads; compare the top-k with exact search.

    The first ``warmup`` queries run untimed first, so JIT compilation and cold pages never count.
    Returns the JSON record documented for ``lsr bench``.
    """
    params = params or {}
    if repeats < 1 or warmup < 0:
        raise LsrError("repeats must be >= 1 and warmup >= 0")
    indptr, terms, weights, _ = index.prepare_queries(queries)
    nq = len(indptr) - 1
    if nq == 0:
        raise LsrError("no queries to benchmark")
    singles = single_queries(index, indptr, terms, weights)
    index.warmup()
    for i in range(min(warmup, nq)):
        index.search(singles[i], k=k, method=method, **params)
    times = np.empty((repeats, nq))
    results = [None] * nq
    for r in range(repeats):
        for i in range(nq):
            t0 = time.perf_counter()
            res = index.search(singles[i], k=k, method=method, **params)
            times[r, i] = time.perf_counter() - t0
            results[i] = res[0]
    per_query = np.median(times, axis=0)
    all_q = SparseBatch(indptr, terms, weights, index.vocab)
    index.search(all_q, k=k, method=method, threads=threads, **params)  # warm the parallel path
    t0 = time.perf_counter()
    index.search(all_q, k=k, method=method, threads=threads, **params)
    batch_s = time.perf_counter() - t0
    exact = results if method == "exact" else index.search(all_q, k=k, method="exact", threads=threads)
    return {
        "method": method,
        "k": k,
        "queries": nq,
        "threads": threads,
        "params": params,
        "latency_ms": latency_stats(per_query),
        "qps": nq / batch_s,
        "qps_single_thread_sequential": nq / float(per_query.sum()),
        "recall": recall_at_k(results, exact),
        "repeats": repeats,
        "warmup": min(warmup, nq),
        "index": {
            "path": index.path,
            "n_docs": index.n_docs,
            "n_postings": index.n_postings,
            "quantization": index.quantization,
            "size_bytes": index.size_bytes(),
        },
    }
