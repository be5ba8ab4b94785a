"""Cost of merging per-shard top-10 lists into one top-10 (``lsr.index.shards.merge_topk``), one
query, for 16 .. 1,000 shards: the merge term of docs/SCALE.md's latency estimate.

    python benchmarks/bench_merge.py --output benchmarks/results/merge_cost.json
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from lsr.index.shards import merge_topk


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--output", default="benchmarks/results/merge_cost.json")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=200)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    out: dict[str, float] = {}
    for n in (16, 64, 256, 1000):
        parts = [
            (
                np.sort(rng.integers(0, 1_000_000, (1, a.k))).astype(np.int64),
                -np.sort(-rng.random((1, a.k)).astype(np.float32)),
            )
            for _ in range(n)
        ]
        first = [i * 1_000_000 for i in range(n)]
        merge_topk(parts, first, a.k)
        t = []
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            merge_topk(parts, first, a.k)
            t.append(time.perf_counter() - t0)
        out[str(n)] = float(np.median(t) * 1e3)
        print(f"{n} shards: merge p50 {out[str(n)]:.3f} ms")
    with open(a.output, "w", encoding="utf-8") as f:
        json.dump({"k": a.k, "merge_p50_ms_by_shards": out}, f, indent=1)


if __name__ == "__main__":
    main()
