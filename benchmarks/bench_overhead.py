"""Per-call overhead of ``Index.search``: the public call against the bare kernel on the same queries.

For every method the index has (or ``--methods``), one query at a time at k (default 10), after a
warm-up (JIT never timed), each query is timed in four ways, interleaved query by query so that
machine noise falls on all of them alike (each query runs once untimed first, so the caches are warm
for every way and the difference is the call's own cost, not the data's; the order rotates):

  * ``kernel``: the method's kernel on the query's CSR arrays already in index term ids (the
    method record's ``search`` with a scratch held across calls: what ``Index.search`` ends in);
  * ``search_arrays``: ``Index.search_arrays`` on the same arrays (parameters, scratch pool, mask);
  * ``search_batch``: ``Index.search`` with a one-query :class:`~lsr.vectors.SparseBatch` over the
    index vocabulary (what :class:`lsr.Retriever` hands it);
  * ``search_dict``: ``Index.search`` with ``[{token: weight}]`` (the service's and users' form).

Each time is the median over ``--repeats`` passes; the record gives mean / p50 / p99 per way and the
overhead (way minus kernel) in microseconds per query, mean and p50; then the QPS of one
``Index.search`` call over the whole batch with 1 and 2 threads (``--batch-threads``; leave
NUMBA_NUM_THREADS unset or >= 2). Data: a folder with
``docs.jsonl`` and ``queries.jsonl`` vectors (``{"id", "vector": {token: weight}}``), or an index.

    python benchmarks/bench_overhead.py --data /path/to/scifact_vec --output benchmarks/results/overhead_scifact.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np


def _stats_us(x: np.ndarray) -> dict[str, float]:
    """Mean, p50, p99 (microseconds) of per-query seconds."""
    us = np.asarray(x, np.float64) * 1e6
    return {
        "mean": float(us.mean()),
        "p50": float(np.percentile(us, 50)),
        "p99": float(np.percentile(us, 99)),
    }


def time_method(index, method: str, dicts: list, k: int, repeats: int) -> dict:
    """Interleaved per-query timings of one method (see the module docs); seconds -> microseconds."""
    from lsr.index import methods as registry
    from lsr.index.searcher import _NO_MASK, _Scratch
    from lsr.vectors import SparseBatch

    params = index.check_params(method, {})
    rec = registry.METHODS[method]
    singles = []
    for q in dicts:
        ip, t, w, _ = index.prepare_queries([q])
        singles.append((ip, t, w, SparseBatch(ip, t, w, index.vocab)))
    scratch = _Scratch(index.n_docs, 1)
    k_eff = max(1, min(k, index.n_docs))

    def kernel(i):
        ip, t, w, _ = singles[i]
        return rec.search(index, params, ip, t, w, k_eff, scratch, 1, _NO_MASK)

    def arrays(i):
        ip, t, w, _ = singles[i]
        return index.search_arrays(ip, t, w, k, 1, method, **params)

    def batch(i):
        return index.search(singles[i][3], k=k, method=method)

    def as_dict(i):
        return index.search([dicts[i]], k=k, method=method)

    ways = {"kernel": kernel, "search_arrays": arrays, "search_batch": batch, "search_dict": as_dict}
    n = len(dicts)
    for i in range(min(n, 50)):  # warm-up: pages, caches, the scratch pool
        for f in ways.values():
            f(i)
    times = {name: np.empty((repeats, n)) for name in ways}
    clock = time.perf_counter
    names = list(ways)
    for r in range(repeats):
        for i in range(n):
            kernel(i)  # untimed: the query's postings into the caches, so no way pays for them
            for j in range(len(names)):  # the order rotates, so none is always first after the warm call
                name = names[(i + r + j) % len(names)]
                f = ways[name]
                t0 = clock()
                f(i)
                times[name][r, i] = clock() - t0
    med = {name: np.median(v, axis=0) for name, v in times.items()}
    out: dict = {"params": params, "queries": n, "ways_us": {}, "overhead_us": {}}
    for name, v in med.items():
        out["ways_us"][name] = _stats_us(v)
        if name != "kernel":
            d = (v - med["kernel"]) * 1e6
            out["overhead_us"][name] = {"mean": float(d.mean()), "p50": float(np.median(d))}
    return out


def batch_qps(index, method: str, dicts: list, k: int, repeats: int, threads: tuple[int, ...]) -> dict:
    """Queries per second of one ``Index.search`` call over the whole batch (a SparseBatch) with each
    of ``threads``, interleaved, the median of ``repeats`` timings each; and the ratio to 1 thread."""
    from lsr.vectors import SparseBatch

    ip, t, w, _ = index.prepare_queries(dicts)
    batch = SparseBatch(ip, t, w, index.vocab)
    for n in threads:  # warm-up: the parallel kernels compile or load separately
        index.search(batch, k=k, method=method, threads=n)
    secs: dict[int, list[float]] = {n: [] for n in threads}
    for _ in range(repeats):
        for n in threads:
            t0 = time.perf_counter()
            index.search(batch, k=k, method=method, threads=n)
            secs[n].append(time.perf_counter() - t0)
    qps = {n: len(dicts) / float(np.median(v)) for n, v in secs.items()}
    return {
        "qps": {str(n): q for n, q in qps.items()},
        "speedup": {str(n): q / qps[threads[0]] for n, q in qps.items()},
    }


def markdown(record: dict) -> str:
    """The record as a Markdown table (microseconds per query)."""
    lines = [
        f"# Index.search overhead over the kernel ({record['n_docs']} docs, {record['queries']} queries, "
        f"k={record['k']}, one thread)",
        "",
        f"Commit `{record['git_commit'][:10]}`, {record['cpu']}, {record['date']}. Command: `{record['command']}`",
        "",
        "| method | kernel mean / p50 / p99 us | search_arrays +us | search (SparseBatch) +us "
        "| search (dict) +us | search (dict) mean / p50 / p99 us |",
        "|---|---|---|---|---|---|",
    ]
    for m, r in record["methods"].items():
        kst, dst, ov = r["ways_us"]["kernel"], r["ways_us"]["search_dict"], r["overhead_us"]
        lines.append(
            f"| {m} | {kst['mean']:.1f} / {kst['p50']:.1f} / {kst['p99']:.1f} "
            f"| {ov['search_arrays']['mean']:.1f} | {ov['search_batch']['mean']:.1f} "
            f"| {ov['search_dict']['mean']:.1f} | {dst['mean']:.1f} / {dst['p50']:.1f} / {dst['p99']:.1f} |"
        )
    if any("batch" in r for r in record["methods"].values()):
        lines += ["", "| method | batch QPS by threads | speedup over 1 thread |", "|---|---|---|"]
        for m, r in record["methods"].items():
            b = r.get("batch")
            if b:
                q = ", ".join(f"{n}: {v:.0f}" for n, v in b["qps"].items())
                sp = ", ".join(f"{n}: {v:.2f}x" for n, v in b["speedup"].items())
                lines.append(f"| {m} | {q} | {sp} |")
    lines += [
        "",
        "`+us`: mean per-query difference from the kernel (each query timed all four ways in turn; "
        "the median of the repeats per query). Target: <= 30 us for a vector query.",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="folder with docs.jsonl and queries.jsonl vectors")
    ap.add_argument("--index", help="an index already built (then --queries-file names the queries)")
    ap.add_argument("--queries-file", help="queries.jsonl (default: DATA/queries.jsonl)")
    ap.add_argument(
        "--work", default=None, help="where to build the index (default: DATA/lsr_overhead_index)"
    )
    ap.add_argument("--methods", default="exact,maxscore,bmp", help="methods built and timed")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument(
        "--batch-threads",
        default="1,2",
        help="thread counts for the batch QPS comparison (one Index.search call over all queries); '' skips it",
    )
    ap.add_argument("--output", default="benchmarks/results/overhead.json")
    a = ap.parse_args()
    if not a.data and not a.index:
        ap.error("give --data or --index")

    import numba

    from lsr.eval.environment import cpu_name, git_commit
    from lsr.index import build_index, open_index

    methods = [m.strip() for m in a.methods.split(",") if m.strip()]
    if a.index:
        path = a.index
    else:
        path = a.work or os.path.join(a.data, "lsr_overhead_index")
        if not os.path.exists(os.path.join(path, "manifest.json")):
            print(f"building {path} ...", flush=True)
            build_index(os.path.join(a.data, "docs.jsonl"), path, overwrite=True, methods=methods)
    index = open_index(path)
    qfile = a.queries_file or os.path.join(a.data or "", "queries.jsonl")
    with open(qfile) as f:
        dicts = [json.loads(line)["vector"] for line in f if line.strip()][: a.queries]
    index.warmup()
    record: dict = {
        "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
        "git_commit": git_commit(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "threads": 1,  # the per-query timings; the batch comparison uses --batch-threads
        "numba_threads": numba.config.NUMBA_NUM_THREADS,
        "python": platform.python_version(),
        "numba": numba.__version__,
        "index": os.path.abspath(path),
        "n_docs": index.n_docs,
        "n_postings": index.n_postings,
        "k": a.k,
        "queries": len(dicts),
        "repeats": a.repeats,
        "methods": {},
    }
    for m in methods:
        if m not in index.methods:
            print(f"skipping {m}: this index was built without it", flush=True)
            continue
        print(f"timing {m} ...", flush=True)
        record["methods"][m] = time_method(index, m, dicts, a.k, a.repeats)
        if a.batch_threads:
            threads = tuple(int(x) for x in a.batch_threads.split(","))
            record["methods"][m]["batch"] = batch_qps(index, m, dicts, a.k, a.repeats, threads)
    os.makedirs(os.path.dirname(os.path.abspath(a.output)), exist_ok=True)
    with open(a.output, "w") as f:
        json.dump(record, f, indent=2)
    md = markdown(record)
    with open(os.path.splitext(a.output)[0] + ".md", "w") as f:
        f.write(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
