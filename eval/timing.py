"""Efficiency figures of ``lsr eval``: per-query latency, QPS, recall against exact, peak memory.

The timing itself is :mod:`lsr.index.bench` (shared with ``lsr bench`` and the benchmark scripts);
this module only shapes its figures into the report's ``efficiency`` record and compares runs.
"""

from __future__ import annotations

import resource
import sys
from typing import Any

from lsr.eval.runs import Run
from lsr.index.bench import latency_stats, mean_recall, time_batch, time_queries

__all__ = ["latency_stats", "peak_rss_bytes", "recall_vs_exact", "time_method"]


def time_method(
    index: Any,
    singles: list[Any],
    batch: Any,
    k: int,
    method: str,
    params: dict[str, Any],
    warmup: int,
    threads: int,
    show_progress: bool = True,
) -> tuple[list[Any], dict[str, Any]]:
    """Time each query of ``singles`` alone after ``warmup`` untimed ones, then search ``batch`` (one
    call over ``threads`` threads) for the run: ``(results of the batch, efficiency record)``.

    The record: ``latency_ms`` (per query, one at a time), ``qps`` (queries / summed latency),
    ``qps_batch`` (queries / the batch call's seconds), ``batch_threads``, ``warmup_queries``.
    """
    _, times = time_queries(index, singles, k, method, params, warmup, show_progress=show_progress)
    results, batch_s = time_batch(index, batch, k, method, threads, params, warm=False)
    total = float(times.sum())
    return results, {
        "latency_ms": latency_stats(times),
        "qps": len(singles) / total if total > 0 else None,
        "qps_batch": len(singles) / batch_s if batch_s > 0 else None,
        "batch_threads": threads,
        "warmup_queries": min(warmup, len(singles)),
    }


def recall_vs_exact(run: Run, exact: Run, k: int) -> float:
    """Mean over queries of |top-k ∩ exact top-k| / |exact top-k| (queries with no exact hit skipped)."""
    return mean_recall(
        ({d for d, _ in run.get(q, [])[:k]}, {d for d, _ in truth[:k]}) for q, truth in exact.items()
    )


def peak_rss_bytes() -> int:
    """Peak resident memory of this process (ru_maxrss: KiB on Linux, bytes on macOS)."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(r if sys.platform == "darwin" else r * 1024)
