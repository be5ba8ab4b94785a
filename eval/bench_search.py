"""Search benchmark on a synthetic SPLADE-like collection: build time, size, peak RSS, latency.

Measures, in ONE run on the same data and one thread, after a warm-up (JIT never timed):
  * lsr exact search (float32 and uint8 impacts), through the public ``Index.search`` call;
  * a naive Numba term-at-a-time search (dense accumulator, a fresh pass over all documents for
    top-k, the textbook baseline) over the same postings held in RAM;
  * scipy: CSR sparse product + argpartition (on a subset of queries: it is slow);
and writes a JSON record (git commit, CPU, threads, counts, parameters, percentiles, ratios) plus a
Markdown table. Data comes from ``shared/bench/synth_lsr.py`` (``--data DIR``, or ``--generate N``).

    python eval/bench_search.py --data /path/to/synth_1m --output eval/results/search_1m.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np

from lsr.eval.bench_common import cpu_name


def naive_taat_search(offsets, docs, impacts, q_indptr, q_terms, q_weights, k, n_docs):
    """The textbook baseline: accumulate every posting, then scan all documents for the top-k."""
    from numba import njit

    @njit(cache=False, nogil=True)
    def kernel(offsets, docs, impacts, q_indptr, q_terms, q_weights, k, acc, out_d, out_s):
        for q in range(q_indptr.shape[0] - 1):
            for i in range(q_indptr[q], q_indptr[q + 1]):
                t = q_terms[i]
                w = q_weights[i]
                for j in range(offsets[t], offsets[t + 1]):
                    acc[docs[j]] += w * impacts[j]
            # top-k by a sorted insertion buffer over every document
            n = 0
            for d in range(acc.shape[0]):
                s = acc[d]
                if s > 0 and (n < k or s > out_s[q, n - 1]):
                    p = n if n < k else k - 1
                    while p > 0 and out_s[q, p - 1] < s:
                        out_s[q, p] = out_s[q, p - 1]
                        out_d[q, p] = out_d[q, p - 1]
                        p -= 1
                    out_s[q, p] = s
                    out_d[q, p] = d
                    if n < k:
                        n += 1
            acc[:] = 0

    return kernel


def time_per_query(fn, nq, repeats):
    times = np.empty((repeats, nq))
    for r in range(repeats):
        for i in range(nq):
            t0 = time.perf_counter()
            fn(i)
            times[r, i] = time.perf_counter() - t0
    return np.median(times, axis=0)


def stats(seconds):
    ms = np.asarray(seconds) * 1e3
    return {
        "mean": float(ms.mean()),
        "p50": float(np.percentile(ms, 50)),
        "p99": float(np.percentile(ms, 99)),
    }


def build_in_child(src, out, quantization):
    """Build in a child process so its peak RSS is measured alone; returns (seconds, peak RSS bytes)."""
    code = (
        "import sys,time,resource;from lsr.index import build_index;t=time.perf_counter();"
        f"build_index({src!r},{out!r},quantization={quantization!r},overwrite=True);"
        "print(time.perf_counter()-t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss*1024)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    secs, rss = res.stdout.split()
    return float(secs), int(rss)


def dir_size(path):
    return sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--data",
        required=True,
        help="folder written by synth_lsr.py (docs.jsonl, queries.jsonl, matrices.npz)",
    )
    ap.add_argument("--work", default=None, help="where to build indexes (default: DATA/lsr_indexes)")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--queries", type=int, default=1000, help="queries timed for lsr and naive")
    ap.add_argument("--scipy-queries", type=int, default=100, help="queries timed for scipy (slow)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quantizations", default="uint8,float32")
    ap.add_argument("--reuse", action="store_true", help="reuse indexes already built in --work")
    ap.add_argument("--output", default="eval/results/search.json")
    a = ap.parse_args()

    import numba
    import scipy.sparse as sp

    from lsr.index import open_index
    from lsr.index.bench import benchmark_search
    from lsr.vectors import read_vectors

    numba.set_num_threads(1)
    work = a.work or os.path.join(a.data, "lsr_indexes")
    os.makedirs(work, exist_ok=True)
    record: dict = {
        "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
        "git_commit": subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True
        ).stdout.strip(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "threads": 1,
        "python": platform.python_version(),
        "numba": numba.__version__,
        "data": os.path.abspath(a.data),
        "k": a.k,
        "systems": {},
    }
    meta_path = os.path.join(a.data, "meta.json")
    if os.path.exists(meta_path):
        record["data_meta"] = json.load(open(meta_path))

    qpath = os.path.join(a.data, "queries.jsonl")
    docs_path = os.path.join(a.data, "docs.jsonl")
    indexes = {}
    for quant in a.quantizations.split(","):
        out = os.path.join(work, f"index_{quant}")
        if a.reuse and os.path.exists(os.path.join(out, "manifest.json")):
            build = {
                "seconds": open_index(out).manifest.get("build_seconds"),
                "peak_rss_bytes": None,
                "reused": True,
            }
        else:
            print(f"building {quant} index from {docs_path} ...", flush=True)
            secs, rss = build_in_child(docs_path, out, quant)
            build = {"seconds": secs, "peak_rss_bytes": rss}
        index = open_index(out)
        queries = read_vectors(qpath)
        queries = queries.select(range(min(a.queries, len(queries))))
        print(f"timing lsr exact ({quant}) ...", flush=True)
        rec = benchmark_search(
            index, queries, k=a.k, method="exact", threads=1, repeats=a.repeats, warmup=100
        )
        rec["build"] = build
        rec["index_bytes"] = dir_size(out)
        record["systems"][f"lsr exact {quant}"] = rec
        record.setdefault("n_docs", index.n_docs)
        record.setdefault("n_postings", index.n_postings)
        record.setdefault("queries", rec["queries"])
        indexes[quant] = index
        if quant == a.quantizations.split(",")[0]:
            first_index, first_queries = index, queries

    # naive numba TAAT and scipy over the same float32 weights
    index, queries = first_index, first_queries
    indptr, terms, weights, _ = index.prepare_queries(queries)
    nq = len(indptr) - 1
    offsets = np.asarray(index.offsets)
    pdocs = np.array(index.postings_docs)  # in RAM, as the naive baseline holds it
    imp = np.asarray(index.postings_impacts).astype(np.float32) * np.float32(index.scale)
    kern = naive_taat_search(offsets, pdocs, imp, indptr, terms, weights, a.k, index.n_docs)
    acc = np.zeros(index.n_docs, np.float32)
    out_d = np.full((1, a.k), -1, np.int64)
    out_s = np.zeros((1, a.k), np.float32)

    def naive(i):
        out_s[:] = 0
        kern(
            offsets,
            pdocs,
            imp,
            np.array([0, indptr[i + 1] - indptr[i]]),
            terms[indptr[i] : indptr[i + 1]],
            weights[indptr[i] : indptr[i + 1]],
            a.k,
            acc,
            out_d,
            out_s,
        )

    for i in range(min(100, nq)):
        naive(i)
    print("timing naive numba TAAT ...", flush=True)
    record["systems"]["naive numba TAAT"] = {
        "latency_ms": stats(time_per_query(naive, nq, a.repeats)),
        "queries": nq,
    }

    D = sp.csc_matrix((imp, pdocs, offsets), shape=(index.n_docs, index.n_terms)).tocsr()
    Q = sp.csr_matrix((weights, terms, indptr), shape=(nq, index.n_terms))
    DT = D.T.tocsr()
    ns = min(a.scipy_queries, nq)

    def scipy_search(i):
        s = (Q[i] @ DT).toarray().ravel()
        part = np.argpartition(-s, a.k)[: a.k]
        part[np.argsort(-s[part], kind="stable")]

    for i in range(min(5, ns)):
        scipy_search(i)
    print(f"timing scipy on {ns} queries ...", flush=True)
    record["systems"]["scipy CSR product + argpartition"] = {
        "latency_ms": stats(time_per_query(scipy_search, ns, 1)),
        "queries": ns,
    }

    # quality check against the generator's ground truth (integer dot products; ties unordered)
    gt_path = os.path.join(a.data, "groundtruth.npz")
    if os.path.exists(gt_path) and a.k <= 10 and "float32" in indexes:
        gt = np.load(gt_path)
        res = indexes["float32"].search(first_queries, k=a.k)
        gt_scores = gt["scores"][:nq, : a.k] / 1600.0  # x40 doc weights, x40 query weights
        agree = [
            np.allclose(np.sort(r.scores)[::-1], gs, rtol=1e-4) for r, gs in zip(res, gt_scores, strict=True)
        ]
        # share of queries whose float32 exact top-k scores equal the generator's brute force
        record["groundtruth_score_agreement"] = float(np.mean(agree))

    base = record["systems"]["naive numba TAAT"]["latency_ms"]["mean"]
    sci = record["systems"]["scipy CSR product + argpartition"]["latency_ms"]["mean"]
    for s in record["systems"].values():
        s["ratio_vs_naive_mean"] = s["latency_ms"]["mean"] / base
        s["ratio_vs_scipy_mean"] = s["latency_ms"]["mean"] / sci
    os.makedirs(os.path.dirname(os.path.abspath(a.output)), exist_ok=True)
    with open(a.output, "w") as f:
        json.dump(record, f, indent=2)
    md = _markdown(record)
    with open(os.path.splitext(a.output)[0] + ".md", "w") as f:
        f.write(md)
    print(md)
    return 0


def _markdown(r: dict) -> str:
    lines = [
        f"{r['n_docs']:,} documents, {r['n_postings']:,} postings, {r['queries']} queries, k={r['k']}, one thread; "
        f"{r['cpu']}; commit {r['git_commit'][:10]}; `{r['command']}`",
        "",
        "| system | mean ms | p50 ms | p99 ms | vs naive | vs scipy | recall | build s | peak RSS | index |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, s in r["systems"].items():
        lat = s["latency_ms"]
        b = s.get("build", {})
        rss = f"{b['peak_rss_bytes'] / 2**30:.2f} GiB" if b.get("peak_rss_bytes") else "-"
        size = f"{s['index_bytes'] / 2**30:.2f} GiB" if "index_bytes" in s else "-"
        secs = f"{b['seconds']:.0f}" if b.get("seconds") else "-"
        lines.append(
            f"| {name} | {lat['mean']:.3f} | {lat['p50']:.3f} | {lat['p99']:.3f} | {s['ratio_vs_naive_mean']:.2f}x | "
            f"{s['ratio_vs_scipy_mean']:.3f}x | {s.get('recall', 1.0):.3f} | {secs} | {rss} | {size} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
