"""``lsr bench``: latency, QPS and recall of one method on one index."""

from __future__ import annotations

import json
from typing import Any

from lsr.cli.common import check_positive, load_query_file, method_params, summary


def run(args: Any) -> int:
    from lsr.index import open_index
    from lsr.index.bench import benchmark_search
    from lsr.index.searcher import check_k

    check_k(args.k)
    check_positive("threads", args.threads)
    check_positive("repeats", args.repeats)
    check_positive("limit", args.limit)
    index = open_index(args.index)
    params = index.check_params(args.method, method_params(args.param))
    _, queries, kind, enc_s = load_query_file(index, args.queries)
    if args.limit:
        queries = queries.select(range(min(args.limit, len(queries))))
    rec = benchmark_search(
        index,
        queries,
        k=args.k,
        method=args.method,
        threads=args.threads,
        repeats=args.repeats,
        warmup=args.warmup,
        params=params,
    )
    rec["query_kind"] = kind
    if kind == "text":
        rec["query_encoding_ms_mean"] = 1e3 * enc_s / max(len(queries), 1)
    if args.json:
        print(json.dumps(rec))
        return 0
    lat = rec["latency_ms"]
    shown = " ".join(f"{k}={v}" for k, v in params.items())
    print(
        f"method   {rec['method']} {shown}  k={rec['k']}  queries={rec['queries']}  threads={rec['threads']}"
    )
    print(f"latency  mean {lat['mean']:.3f} ms  p50 {lat['p50']:.3f} ms  p99 {lat['p99']:.3f} ms")
    print(f"qps      {rec['qps']:.1f} (batch, {rec['threads']} threads)")
    print(f"recall   {rec['recall']:.4f} @ {rec['k']} against exact")
    summary(f"benchmarked {rec['queries']} queries on {index.n_docs} documents")
    return 0
