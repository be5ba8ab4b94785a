"""Measuring search: per-query latency after a warm-up, batch QPS, recall@k against exact search.

The one timing code path: ``lsr bench`` (:func:`benchmark_search`), the evaluation harness (its timing
module imports this one; the index layer imports nothing from the evaluation package) and the
benchmark scripts all time queries with :func:`time_queries` and :func:`time_batch`, summarize with
:func:`latency_stats` and measure recall with :func:`mean_recall`.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable, Sequence
from typing import Any

import numpy as np

from lsr.errors import LsrError
from lsr.vectors import SparseBatch


def mean_recall(pairs: Iterable[tuple[Collection[Any], Collection[Any]]]) -> float:
    """Mean over ``(found, truth)`` pairs of |found ∩ truth| / |truth|.

    Pairs whose truth is empty are skipped; with none left the recall is 1.0 (nothing to find).
    """
    vals = [len(set(f) & set(t)) / len(set(t)) for f, t in pairs if len(t)]
    return float(np.mean(vals)) if vals else 1.0


def recall_at_k(found: list[Any], truth: list[Any]) -> float:
    """Mean over queries of |found ∩ truth| / |truth| for search results (queries whose exact top-k
    is empty are skipped)."""
    return mean_recall((f.docs.tolist(), t.docs.tolist()) for f, t in zip(found, truth, strict=True))


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


def latency_stats(seconds: Sequence[float] | np.ndarray) -> dict[str, float]:
    """Mean, p50, p90, p99 and max in milliseconds of per-query ``seconds`` (all 0.0 when empty)."""
    ms = np.asarray(seconds, dtype=np.float64) * 1e3
    if ms.size == 0:
        return {"mean": 0.0, "p50": 0.0, "p90": 0.0, "p99": 0.0, "max": 0.0}
    return {
        "mean": float(ms.mean()),
        "p50": float(np.percentile(ms, 50)),
        "p90": float(np.percentile(ms, 90)),
        "p99": float(np.percentile(ms, 99)),
        "max": float(ms.max()),
    }


def time_queries(
    index: Any,
    singles: Sequence[Any],
    k: int,
    method: str,
    params: dict[str, Any] | None = None,
    warmup: int = 50,
    repeats: int = 1,
    show_progress: bool = False,
) -> tuple[list[Any], np.ndarray]:
    """Search each query of ``singles`` alone: ``(results, seconds)``, one result and one time per query.

    ``index.warmup`` of ``method`` and exact search (what a benchmark runs: the method, and exact
    search for recall; the other methods' kernels are not compiled) and the first ``warmup``
    queries run untimed first, so JIT compilation and cold pages never count; each query's time is
    the median of ``repeats`` passes (seconds).
    """
    from tqdm.auto import tqdm

    params = params or {}
    if repeats < 1 or warmup < 0:
        raise LsrError("repeats must be >= 1 and warmup >= 0")
    index.warmup(sorted({method, "exact"}))
    for s in singles[:warmup]:
        index.search(s, k=k, method=method, **params)
    n = len(singles)
    times = np.empty((repeats, n))
    results: list[Any] = [None] * n
    bar = tqdm(total=repeats * n, desc=f"timing {method}", unit="q", leave=False, disable=not show_progress)
    for r in range(repeats):
        for i, s in enumerate(singles):
            t0 = time.perf_counter()
            res = index.search(s, k=k, method=method, **params)
            times[r, i] = time.perf_counter() - t0
            results[i] = res[0]
            bar.update(1)
    bar.close()
    return results, np.median(times, axis=0)


def time_batch(
    index: Any,
    batch: Any,
    k: int,
    method: str,
    threads: int = 1,
    params: dict[str, Any] | None = None,
    warm: bool = True,
) -> tuple[list[Any], float]:
    """Search ``batch`` in one call over ``threads`` threads: ``(results, seconds)``.

    With ``warm`` the batch runs once untimed first (the parallel path has its own compiled code).
    """
    params = params or {}
    if warm:
        index.search(batch, k=k, method=method, threads=threads, **params)
    t0 = time.perf_counter()
    results = index.search(batch, k=k, method=method, threads=threads, **params)
    return results, time.perf_counter() - t0


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
    results, per_query = time_queries(index, singles, k, method, params, warmup, repeats)
    all_q = SparseBatch(indptr, terms, weights, index.vocab)
    _, batch_s = time_batch(index, all_q, k, method, threads, params)
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
