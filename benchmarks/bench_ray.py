"""Scaling on Ray: encode throughput with 1 and 2 actors; search latency and QPS with 1, 2 and 4
shards (threads in this process, and Ray actors) against the single index, in the same run.

Writes a JSON record (commit, CPU, cores, counts, parameters, percentiles, bytes per posting,
agreement with the single index) and a Markdown table next to it. Never imported by the package.

Full size (a quiet machine; ~6 GB of disk for the synthetic data)::

    python benchmarks/bench_ray.py --work /data/bench_ray --n-docs 1000000 --queries 1000 \\
        --encode-docs 2000 --output benchmarks/results/ray_1m.json

A quick proof that it runs (minutes)::

    python benchmarks/bench_ray.py --work /tmp/bench_ray --n-docs 5000 --queries 50 --encode-docs 300 \\
        --shards 1,2 --output /tmp/bench_ray/ray_tiny.json
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import shutil
import sys
import time
from typing import Any

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("LSR_SHARED", os.path.join(os.path.dirname(REPO), "shared"))  # as tests/conftest.py
SYNTH = os.environ.get("LSR_SYNTH", os.path.join(SHARED, "bench", "synth_lsr.py"))


def _synth(work: str, n_docs: int, n_queries: int, seed: int) -> str:
    """The synthetic collection (generated once per size into ``work/synth_N``)."""
    out = os.path.join(work, f"synth_{n_docs}")
    if os.path.isfile(os.path.join(out, "queries.jsonl")):
        return out
    import subprocess

    if not os.path.isfile(SYNTH):
        sys.exit(f"bench_ray: {SYNTH} not found (set LSR_SHARED to the shared folder, or LSR_SYNTH)")
    cmd = [sys.executable, SYNTH, "--out", out, "--n-docs", str(n_docs), "--n-queries", str(n_queries)]
    subprocess.run([*cmd, "--seed", str(seed)], check=True)
    return out


def _bytes_per_posting(index: Any) -> float:
    return index.size_bytes() / max(1, index.n_postings)


def _encode_bench(work: str, n_docs: int, actor_counts: list[int], address: str | None) -> list[dict]:
    """Docs/s of `lsr encode` in this process, then on Ray with each actor count (fresh output each)."""
    import lsr
    from lsr.distributed.encode import encode_on_ray

    corpus = os.path.join(work, f"scifact_{n_docs}.jsonl")
    src = os.path.join(REPO, "eval", "data", "scifact", "corpus.jsonl.gz")
    with gzip.open(src, "rt", encoding="utf-8") as f, open(corpus, "w", encoding="utf-8") as out:
        for i, line in enumerate(f):
            if i >= n_docs:
                break
            out.write(line)
    rows = []
    enc = lsr.load_encoder("splade-tiny")
    texts = []
    with open(corpus, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            texts.append(f"{r.get('title', '')} {r['text']}".strip())
    enc.encode_documents(texts[:32])  # warm up
    t0 = time.perf_counter()
    for s in range(0, len(texts), 256):
        enc.encode_documents(texts[s : s + 256])
    dt = time.perf_counter() - t0
    rows.append({"what": "lsr encode (one process)", "actors": 0, "docs": len(texts), "seconds": dt})
    cores = os.cpu_count() or 1
    for a in actor_counts:
        out_dir = os.path.join(work, f"parts_{a}")
        shutil.rmtree(out_dir, ignore_errors=True)
        t0 = time.perf_counter()
        rec = encode_on_ray(
            corpus,
            out_dir,
            "splade-tiny",
            address=address,
            actors=a,
            threads=max(1, cores // a),
            block_size=256,
        )
        dt = time.perf_counter() - t0
        rows.append({"what": f"Ray, {a} actor(s)", "actors": a, "docs": rec["n_docs"], "seconds": dt})
    for r in rows:
        r["docs_per_s"] = r["docs"] / r["seconds"]
    return rows


def markdown(rec: dict[str, Any]) -> str:
    """The Markdown tables of a bench_ray record."""
    md = [
        f"# bench_ray: {rec['n_docs']} synthetic documents, {rec['queries']} queries, k={rec['k']}, {rec['quantization']}",
        "",
        f"commit {rec['commit'][:7]}, {rec['cpu']}, {rec['cores']} cores; latency = one query at a "
        f"time (median of {rec['repeats']} passes), QPS = one batch over {rec['threads']} threads.",
        "",
        "| index | backend | method | mean ms | p50 ms | p99 ms | QPS | same as single |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rec["search"]:
        lat = r["latency_ms"]
        same = "-" if r["setup"] == "single" else ("yes" if r["same_as_single"] else "no")
        md.append(
            f"| {r['setup']} | {r['backend']} | {r['method']} | {lat['mean']:.3f} | {lat['p50']:.3f} | "
            f"{lat['p99']:.3f} | {r['qps']:.0f} | {same} |"
        )
    md += ["", "| build | seconds | postings | bytes | bytes/posting |", "|---|---|---|---|---|"]
    for b in rec["builds"]:
        secs = "reused" if b["seconds"] is None else f"{b['seconds']:.1f}"
        md.append(
            f"| {b['index']} | {secs} | {b['postings']} | {b['bytes']} | {b['bytes_per_posting']:.2f} |"
        )
    md += ["", "| encode | docs | seconds | docs/s |", "|---|---|---|---|"]
    for e in rec["encode"]:
        md.append(f"| {e['what']} | {e['docs']} | {e['seconds']:.1f} | {e['docs_per_s']:.1f} |")
    return "\n".join(md) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", required=True, help="working directory (data, indexes)")
    ap.add_argument("--n-docs", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--shards", default="1,2,4", help="shard counts (default 1,2,4)")
    ap.add_argument("--methods", default="exact,bmp", help="search methods timed (default exact,bmp)")
    ap.add_argument("--quantization", default="uint8")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads of the batch QPS run")
    ap.add_argument("--encode-docs", type=int, default=2000, help="SciFact documents for the encode runs")
    ap.add_argument("--actors", default="1,2", help="encoder actor counts (default 1,2)")
    ap.add_argument("--no-ray-actors", action="store_true", help="time in-process shards only")
    ap.add_argument(
        "--reuse-shards",
        action="store_true",
        help="reuse sharded indexes an earlier run built (build seconds are then not recorded)",
    )
    ap.add_argument("--ray", default="local", help="Ray address (default: a local Ray)")
    ap.add_argument("--output", required=True, help="JSON record to write (Markdown next to it)")
    args = ap.parse_args()

    from lsr.distributed import init_ray
    from lsr.distributed.build import build_on_ray
    from lsr.distributed.search import open_on_ray
    from lsr.eval.environment import cpu_name, git_commit
    from lsr.index import build_index, open_index
    from lsr.index.bench import benchmark_search, recall_at_k
    from lsr.vectors import read_vectors

    os.makedirs(args.work, exist_ok=True)
    init_ray(args.ray, num_cpus=os.cpu_count())
    data = _synth(args.work, args.n_docs, args.queries, args.seed)
    docs, queries = os.path.join(data, "docs.jsonl"), read_vectors(os.path.join(data, "queries.jsonl"))
    methods = [m for m in args.methods.split(",") if m]
    record: dict[str, Any] = {
        "benchmark": "bench_ray",
        "commit": git_commit(REPO),
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "n_docs": args.n_docs,
        "queries": len(queries),
        "k": args.k,
        "quantization": args.quantization,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "threads": args.threads,
        "builds": [],
        "search": [],
    }
    single_dir = os.path.join(args.work, f"single_{args.n_docs}_{args.quantization}")
    t0 = time.perf_counter()
    reused = os.path.isdir(single_dir)  # built by an earlier run of this script: no build time
    if not reused:
        build_index(docs, single_dir, quantization=args.quantization, methods=methods)
    single = open_index(single_dir)
    record["builds"].append(
        {
            "index": "single",
            "seconds": None if reused else time.perf_counter() - t0,
            "postings": single.n_postings,
            "bytes": single.size_bytes(),
            "bytes_per_posting": _bytes_per_posting(single),
        }
    )
    exact = single.search(queries, k=args.k, method="exact", threads=args.threads)
    truth = {m: exact for m in methods}
    for m in methods:
        r = benchmark_search(single, queries, args.k, m, args.threads, args.repeats, args.warmup)
        record["search"].append({**r, "setup": "single", "shards": 0, "backend": "-"})
    for n in [int(x) for x in args.shards.split(",") if x]:
        root = os.path.join(args.work, f"shards{n}_{args.n_docs}_{args.quantization}")
        t0 = time.perf_counter()
        block = max(1, -(-args.n_docs // (4 * n)))  # 4 blocks per shard
        reused = args.reuse_shards and os.path.isfile(os.path.join(root, "shards.json"))
        if not reused:
            build_on_ray(
                docs, root, n, address=args.ray, block_size=block, quantization=args.quantization,
                methods=methods, overwrite=True, show_progress=False,
            )  # fmt: skip
        sh = open_index(root)
        record["builds"].append(
            {
                "index": f"{n} shards (Ray tasks)",
                "seconds": None if reused else time.perf_counter() - t0,
                "postings": sh.n_postings,
                "bytes": sh.size_bytes(),
                "bytes_per_posting": _bytes_per_posting(sh),
            }
        )
        backends = [("threads", sh)]
        if not args.no_ray_actors:
            backends.append(("ray actors", open_on_ray(root, args.ray)))
        for name, idx in backends:
            for m in methods:
                r = benchmark_search(idx, queries, args.k, m, args.threads, args.repeats, args.warmup)
                got = idx.search(queries, k=args.k, method=m, threads=args.threads)
                r["recall_vs_single_exact"] = recall_at_k(got, truth[m])
                r["same_as_single"] = all(
                    a.ids == b.ids and a.scores == b.scores
                    for a, b in zip(got, single.search(queries, k=args.k, method=m), strict=True)
                )
                record["search"].append({**r, "setup": f"{n} shards", "shards": n, "backend": name})
            if name == "ray actors":
                idx.close()
    record["encode"] = _encode_bench(
        args.work, args.encode_docs, [int(x) for x in args.actors.split(",") if x], args.ray
    )
    with open(args.output, "w", encoding="utf-8") as f:
        json.dump(record, f, indent=1)
    md = markdown(record)
    with open(os.path.splitext(args.output)[0] + ".md", "w", encoding="utf-8") as f:
        f.write(md)
    print(md)


if __name__ == "__main__":
    main()
