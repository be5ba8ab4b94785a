"""Search benchmark: every lsr method and the peer engines, in ONE run, on the same data, one thread.

Measures after a warm-up (JIT never timed), queries one at a time at k (default 10):
  * lsr exact search (float32 and uint8 impacts), through the public ``Index.search`` call;
  * lsr maxscore, bmp and seismic over a sweep of their query-time settings (``--sweep``), on the
    first quantization's index, with recall@k against lsr exact;
  * a naive Numba term-at-a-time search (dense accumulator, a fresh pass over all documents for
    top-k, the textbook baseline) over the same postings held in RAM;
  * scipy: CSR sparse product + argpartition (on a subset of queries: it is slow);
  * the peers installed from the ``bench`` extra (``--peers``): pyseismic-lsr over a sweep of
    query_cut x heap_factor, the ``bmp`` package at three alpha/beta settings (see benchmarks/peers.py);
and writes a JSON record (git commit, CPU, threads, counts, parameters, percentiles, ratios, the
issue's targets as measured ratios), a Markdown table and a recall-vs-latency plot (PNG).
Data: a folder with ``docs.jsonl`` and ``queries.jsonl`` vectors (``shared/bench/synth_lsr.py``
writes one; ``lsr encode`` or ``benchmarks/encode_collection.sh`` makes one from a BEIR corpus).
``--data`` takes one folder, or several data sets as ``NAME=DIR`` pairs separated by commas; each
is measured in turn (indexes under ``--work/NAME``, default ``DIR/lsr_indexes``) and the JSON then
holds one section per data set under ``"datasets"``, with a Markdown table of the issue's targets
per data set (met / missed), and one plot per data set.

    python benchmarks/bench_search.py --data /path/to/synth_1m --output benchmarks/results/search_1m.json
    python benchmarks/bench_search.py --output benchmarks/results/search_real.json \
        --data scifact=/work/data/scifact_vec,real=/work/data/real300k_vec,synth1m=/tmp/synth_1m
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time

import numpy as np
from peers import SEISMIC_GRID  # benchmarks/peers.py (the script folder is on sys.path)

from lsr.eval.environment import cpu_name


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


def build_in_child(src, out, quantization, methods="all", threads=None, seismic=None):
    """Build in a child process so its peak RSS is measured alone; returns (seconds, peak RSS bytes).
    ``threads``: Numba/OpenMP threads the build may use (None: the environment's); ``seismic``: the
    seismic part's build parameters (None: its defaults)."""
    code = (
        "import sys,time,resource;from lsr.index import build_index;t=time.perf_counter();"
        f"build_index({src!r},{out!r},quantization={quantization!r},overwrite=True,methods={methods!r},"
        f"seismic={seismic!r});"
        "print(time.perf_counter()-t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss*1024)"
    )
    env = dict(os.environ)
    if threads:
        env.update(NUMBA_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    secs, rss = res.stdout.split()
    return float(secs), int(rss)


def dir_size(path):
    """Bytes of every file under ``path`` (sub-folders included: an index with every part)."""
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(path) for f in fs)


def parse_data(spec: str) -> list[tuple[str, str]]:
    """``--data``: one folder, or ``NAME=DIR`` pairs (a bare ``DIR`` is named by its base name)
    separated by commas -> [(name, folder)]. A missing folder or a repeated name is refused."""
    out: list[tuple[str, str]] = []
    for part in [p.strip() for p in spec.split(",") if p.strip()]:
        name, sep, path = part.partition("=")
        if not sep:
            name, path = os.path.basename(os.path.normpath(part)), part
        if not name or not path:
            raise SystemExit(f"bench_search: error: --data entry {part!r}: expected NAME=DIR or DIR")
        if not os.path.isdir(path):
            raise SystemExit(f"bench_search: error: --data {name}: {path} is not a folder")
        for f in ("docs.jsonl", "queries.jsonl"):
            if not os.path.exists(os.path.join(path, f)):
                raise SystemExit(f"bench_search: error: --data {name}: {path} has no {f}")
        if name in [n for n, _ in out]:
            raise SystemExit(f"bench_search: error: --data: data set name {name!r} given twice")
        out.append((name, path))
    if not out:
        raise SystemExit("bench_search: error: --data is empty")
    return out


def parse_per_dataset(spec: str, names: list[str], default: int) -> dict[str, int]:
    """An integer option given once for every data set (``"2000"``) or per data set
    (``"real=2000,synth1m=3500"``, ``default`` for the others) -> {name: value}."""
    spec = spec.strip()
    if "=" not in spec:
        try:
            return dict.fromkeys(names, int(spec))
        except ValueError:
            raise SystemExit(
                f"bench_search: error: expected an integer or NAME=N pairs, got {spec!r}"
            ) from None
    out = dict.fromkeys(names, default)
    for part in [p.strip() for p in spec.split(",") if p.strip()]:
        name, _, val = part.partition("=")
        if name not in out:
            raise SystemExit(
                f"bench_search: error: {part!r} names no data set of --data ({', '.join(names)})"
            )
        try:
            out[name] = int(val)
        except ValueError:
            raise SystemExit(f"bench_search: error: {part!r}: expected NAME=integer") from None
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--data",
        required=True,
        help="a vectors folder (docs.jsonl, queries.jsonl; synth_lsr.py's also has groundtruth.npz), "
        "or several as NAME=DIR,NAME=DIR (one JSON section per data set)",
    )
    ap.add_argument(
        "--work",
        default=None,
        help="where to build indexes (default: DATA/lsr_indexes; WORK/NAME per data set)",
    )
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--queries", type=int, default=1000, help="queries timed for lsr and naive")
    ap.add_argument("--scipy-queries", type=int, default=100, help="queries timed for scipy (slow)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quantizations", default="uint8,float32")
    ap.add_argument("--reuse", action="store_true", help="reuse indexes already built in --work")
    ap.add_argument("--output", default="benchmarks/results/search.json")
    ap.add_argument(
        "--sweep",
        default="default",
        help="lsr method settings to time on the first index: 'default', 'none', or a JSON list of "
        '[method, {params}] pairs, e.g. \'[["bmp", {"alpha": 0.9}]]\'',
    )
    ap.add_argument(
        "--peers", default="seismic,bmp", help="peer engines to build and time (seismic, bmp; '' for none)"
    )
    ap.add_argument(
        "--seismic-n-postings",
        default="3500",
        help="pyseismic-lsr n_postings: one number for every data set, or NAME=N pairs (e.g. "
        "scifact=1000,real=2000,synth1m=3500; 3500 for a data set not named)",
    )
    ap.add_argument(
        "--seismic-knn",
        default="0",
        help="neighbours per document of Seismic's kNN graph, built into lsr's index (seismic "
        "knn) and pyseismic's (nknn): one number, or NAME=N pairs (0, the default: no graph). With a "
        "graph, every Seismic setting is timed walking it and not (knn=0 / n_knn=0)",
    )
    ap.add_argument(
        "--peer-queries", type=int, default=None, help="queries timed for peers (default: --queries)"
    )
    ap.add_argument(
        "--approx-passes",
        type=int,
        default=5,
        help="alternating passes over the approximate targets' finalists (the fastest lsr settings "
        "and pyseismic configurations at each recall floor), whose medians decide those targets "
        "(0: the sweeps' single pass decides)",
    )
    ap.add_argument(
        "--build-threads",
        type=int,
        default=os.cpu_count() or 1,
        help="threads for lsr's index build (default: every core, as pyseismic-lsr builds)",
    )
    a = ap.parse_args()
    datasets = parse_data(a.data)
    n_postings = parse_per_dataset(a.seismic_n_postings, [n for n, _ in datasets], 3500)
    n_knn = parse_per_dataset(a.seismic_knn, [n for n, _ in datasets], 0)
    stem = os.path.splitext(a.output)[0]
    os.makedirs(os.path.dirname(os.path.abspath(a.output)), exist_ok=True)
    if len(datasets) == 1 and "=" not in a.data:  # one folder: the record as before, at the top level
        a.seismic_n_postings = n_postings[datasets[0][0]]
        a.seismic_knn = n_knn[datasets[0][0]]
        record = run_dataset(a, datasets[0][1], a.work or os.path.join(datasets[0][1], "lsr_indexes"), stem)
        with open(a.output, "w") as f:
            json.dump(record, f, indent=2)
        _plot(record, stem + ".png")
        md = _markdown(record) + "\n" + _targets_table({datasets[0][0]: record})
        with open(stem + ".md", "w") as f:
            f.write(md)
        print(md)
        return 0
    combined: dict = {
        "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
        "git_commit": _git_commit(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "datasets": {},
    }
    for name, path in datasets:
        print(f"=== data set {name}: {path}", flush=True)
        work = os.path.join(a.work, name) if a.work else os.path.join(path, "lsr_indexes")
        a.seismic_n_postings = n_postings[name]
        a.seismic_knn = n_knn[name]
        rec = run_dataset(a, path, work, f"{stem}_{name}")
        rec["name"] = name
        combined["datasets"][name] = rec
        with open(a.output, "w") as f:  # what is measured so far, should a later data set fail
            json.dump(combined, f, indent=2)
        _plot(rec, f"{stem}_{name}.png")
    combined["targets"] = {n: r["targets"] for n, r in combined["datasets"].items()}
    with open(a.output, "w") as f:
        json.dump(combined, f, indent=2)
    md = _targets_table(combined["datasets"]) + "".join(
        f"\n## {n}\n\n" + _markdown(r) for n, r in combined["datasets"].items()
    )
    with open(stem + ".md", "w") as f:
        f.write(md)
    print(md)
    return 0


def _git_commit() -> str:
    return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()


def run_dataset(a: argparse.Namespace, data: str, work: str, stem: str) -> dict:
    """Measure every system on one vectors folder ``data`` (indexes built under ``work``) and return
    its record (systems, targets); ``stem`` names the partial JSON written as peers finish."""
    import numba
    import scipy.sparse as sp

    from lsr.index import open_index
    from lsr.index.bench import benchmark_search
    from lsr.vectors import read_vectors

    numba.set_num_threads(1)
    os.makedirs(work, exist_ok=True)
    record: dict = {
        "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
        "git_commit": _git_commit(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "threads": 1,
        "python": platform.python_version(),
        "numba": numba.__version__,
        "data": os.path.abspath(data),
        "k": a.k,
        "systems": {},
    }
    meta_path = os.path.join(data, "meta.json")
    if os.path.exists(meta_path):
        record["data_meta"] = json.load(open(meta_path))

    qpath = os.path.join(data, "queries.jsonl")
    docs_path = os.path.join(data, "docs.jsonl")
    indexes = {}
    for quant in a.quantizations.split(","):
        out = os.path.join(work, f"index_{quant}")
        seismic_params = {"knn": a.seismic_knn} if a.seismic_knn else None
        if (
            a.reuse
            and os.path.exists(os.path.join(out, "manifest.json"))
            and _stored_knn(out) == a.seismic_knn
        ):
            build = {
                "seconds": open_index(out).manifest.get("build_seconds"),
                "peak_rss_bytes": None,
                "reused": True,
            }
        else:
            print(f"building {quant} index from {docs_path} ...", flush=True)
            secs, rss = build_in_child(docs_path, out, quant, threads=a.build_threads, seismic=seismic_params)
            build = {"seconds": secs, "peak_rss_bytes": rss, "threads": a.build_threads}
        if seismic_params:
            build["seismic"] = seismic_params
        index = open_index(out)
        index.prefault()  # see _time_lsr
        build["parts_seconds"] = index.parts.get("seconds")
        queries = read_vectors(qpath)
        queries = queries.select(range(min(a.queries, len(queries))))
        print(f"timing lsr exact ({quant}) ...", flush=True)
        rec = benchmark_search(
            index, queries, k=a.k, method="exact", threads=1, repeats=a.repeats, warmup=100
        )
        rec["build"] = build
        rec["engine"] = "lsr"
        rec["safe"] = True
        rec["index_bytes"] = dir_size(out)
        record["systems"][f"lsr exact {quant}"] = rec
        record.setdefault("n_docs", index.n_docs)
        record.setdefault("n_postings", index.n_postings)
        record.setdefault("queries", rec["queries"])
        indexes[quant] = index
        if quant == a.quantizations.split(",")[0]:
            first_index, first_queries = index, queries

    # every method of the first index over its settings, recall against its exact search
    index, queries = first_index, first_queries
    first_quant = a.quantizations.split(",")[0]
    exact_res = index.search(queries, k=a.k)
    for method, params in _sweep(a.sweep, index):
        label = f"lsr {method} {first_quant}" + (" " + _fmt_params(params) if params else "")
        print(f"timing {label} ...", flush=True)
        lat, found = _time_lsr(index, queries, a.k, method, params, a.repeats)
        record["systems"][label] = {
            "engine": "lsr",
            "method": method,
            "params": params,
            "latency_ms": stats(lat),
            "queries": len(found),
            "recall": _recall([f.ids for f in found], [e.ids for e in exact_res]),
            "safe": method in ("exact", "maxscore") or (method == "bmp" and not params),
        }

    # naive numba TAAT and scipy over the same float32 weights
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
    gt_path = os.path.join(data, "groundtruth.npz")
    if os.path.exists(gt_path) and a.k <= 10 and "float32" in indexes:
        gt = np.load(gt_path)
        res = indexes["float32"].search(first_queries, k=a.k)
        gt_scores = gt["scores"][:nq, : a.k] / 1600.0  # x40 doc weights, x40 query weights
        agree = [
            np.allclose(np.sort(r.scores)[::-1], gs, rtol=1e-4) for r, gs in zip(res, gt_scores, strict=True)
        ]
        # share of queries whose float32 exact top-k scores equal the generator's brute force
        record["groundtruth_score_agreement"] = float(np.mean(agree))

    # batch search over 1 and 2 threads (lsr exact, the first index), median of --repeats passes
    from lsr.index.bench import time_batch
    from lsr.vectors import SparseBatch

    batch = SparseBatch(indptr, terms, weights, index.vocab)
    qps = {}
    for th in (1, 2):
        secs = [time_batch(index, batch, a.k, "exact", th, warm=(r == 0))[1] for r in range(a.repeats)]
        qps[th] = nq / float(np.median(secs))
    record["batch_qps"] = {
        "method": f"exact {first_quant}",
        "queries": nq,
        "qps_1_thread": qps[1],
        "qps_2_threads": qps[2],
    }

    with open(stem + ".partial.json", "w") as f:
        json.dump(record, f, indent=2)
    peers = [p for p in a.peers.split(",") if p]
    if peers:
        _run_peers(a, record, index, queries, exact_res, data, docs_path, work, peers, stem)

    base = record["systems"]["naive numba TAAT"]["latency_ms"]["mean"]
    sci = record["systems"]["scipy CSR product + argpartition"]["latency_ms"]["mean"]
    for s in record["systems"].values():
        s["ratio_vs_naive_mean"] = s["latency_ms"]["mean"] / base
        s["ratio_vs_scipy_mean"] = s["latency_ms"]["mean"] / sci
    record["targets"] = _targets(record)
    return record


DEFAULT_SWEEP = [
    ["maxscore", {}],
    ["bmp", {}],
    ["bmp", {"alpha": 0.95}],
    ["bmp", {"alpha": 0.9}],
    ["bmp", {"alpha": 0.8}],
    ["bmp", {"alpha": 0.7}],
    ["bmp", {"alpha": 0.9, "beta": 0.8}],
    ["seismic", {}],
    # the grid pyseismic is timed on too (peers.SEISMIC_GRID)
    *(["seismic", {"query_cut": c, "heap_factor": h}] for c, h in SEISMIC_GRID),
]


def _sweep(spec, index):
    """[(method, params)] to time: with a kNN graph in the index, each Seismic setting that does not
    name ``knn`` is timed walking the graph (the default) and again with ``knn=0``."""
    if spec == "none":
        return []
    pairs = DEFAULT_SWEEP if spec == "default" else json.loads(spec)
    out = [(m, p) for m, p in pairs if m in index.methods]
    if int(((index.parts or {}).get("seismic") or {}).get("knn", 0) or 0) > 0:
        out += [(m, {**p, "knn": 0}) for m, p in out if m == "seismic" and "knn" not in p]
    return out


def _stored_knn(index_dir):
    """The kNN graph's neighbours per document in a built index's seismic part (0: none)."""
    with open(os.path.join(index_dir, "manifest.json")) as f:
        parts = json.load(f).get("parts") or {}
    seismic = parts.get("seismic")
    return int(seismic.get("knn", 0)) if isinstance(seismic, dict) else 0


def _fmt_params(params):
    return " ".join(f"{k}={v}" for k, v in params.items())


def _time_lsr(index, queries, k, method, params, repeats):
    """Per-query latency (median of ``repeats``) of ``index.search`` on single queries, and results."""
    from lsr.index.bench import single_queries

    indptr, terms, weights, _ = index.prepare_queries(queries)
    nq = len(indptr) - 1
    singles = single_queries(index, indptr, terms, weights)
    index.warmup([method])
    # the index's pages in the page cache, as pyseismic's index sits in memory: this machine pages
    # out file pages idle for a minute (DAMON pageout), e.g. while the peer is timed
    index.prefault()
    for i in range(min(100, nq)):
        index.search(singles[i], k=k, method=method, **params)
    found = [None] * nq

    def one(i):
        found[i] = index.search(singles[i], k=k, method=method, **params)[0]

    return time_per_query(one, nq, repeats), found


def _recall(found, truth):
    vals = [len(set(f) & set(t)) / len(t) for f, t in zip(found, truth, strict=False) if len(t)]
    return float(np.mean(vals)) if vals else 1.0


def _run_peers(a, record, index, queries, exact_res, data, docs_path, work, peers, stem):
    """Build each peer from the same docs.jsonl and time it on the same queries."""
    import importlib.util

    import peers as P  # benchmarks/peers.py (the script folder is on sys.path)

    qs = list(P.iter_jsonl(os.path.join(data, "queries.jsonl")))[: len(exact_res)]
    nq = min(len(qs), a.peer_queries or len(qs))
    truth = [e.ids for e in exact_res[:nq]]
    for name in peers:
        module = {"seismic": "seismic", "bmp": "bmp"}.get(name)
        if module is None:
            raise SystemExit(f"unknown peer {name!r} (known: seismic, bmp)")
        if importlib.util.find_spec(module) is None:
            print(f"peer {name}: not installed (pip install -e '.[bench]'); skipped", flush=True)
            record.setdefault("peers_skipped", []).append(name)
            continue
        pwork = os.path.join(work, f"peer_{name}")
        P.clean(pwork)
        print(f"building peer {name} ...", flush=True)
        if name == "seismic":
            peer = P.SeismicPeer(
                docs_path, qs[:nq], pwork, n_postings=a.seismic_n_postings, nknn=a.seismic_knn
            )
        else:
            order = np.asarray(index.doc_order) if len(index.doc_order) else None
            meta = record.get("data_meta", {})
            exact_scale = meta.get("int_weight_scale") if meta.get("max_int_doc_weight", 999) <= 255 else None
            peer = P.BmpPeer(docs_path, qs[:nq], pwork, order=order, scale=exact_scale)
        for cfg in peer.configs():
            label = f"{peer.name} " + _fmt_params(cfg)
            print(f"timing {label} ...", flush=True)
            for i in range(min(100, nq)):
                peer.search(i, a.k, **cfg)
            found = [None] * nq

            def one(i, cfg=cfg, found=found, peer=peer):
                found[i] = peer.search(i, a.k, **cfg)

            lat = time_per_query(one, nq, a.repeats)
            record["systems"][label] = {
                "engine": name,
                "params": cfg,
                "latency_ms": stats(lat),
                "queries": nq,
                "recall": _recall(found, truth),
                "build": {"seconds": peer.build_seconds, "params": peer.build_params},
                "index_bytes": peer.index_bytes,
            }
            with open(stem + ".partial.json", "w") as f:
                json.dump(record, f, indent=2)  # what is measured so far, should a long peer build fail
        if name == "seismic" and a.approx_passes > 0:
            record["approx_passes"] = _alternate(a, record, index, queries, peer, nq)
        del peer
        shutil.rmtree(pwork, ignore_errors=True)


APPROX_FLOORS = (0.95, 0.90)
APPROX_FINALISTS = 3  # per engine and recall floor


def _alternate(a, record, index, queries, peer, nq):
    """The approximate targets' finalists timed again in alternating passes: per recall floor, the
    ``APPROX_FINALISTS`` fastest lsr settings and pyseismic configurations of the sweeps that reach
    it, each pass timing every finalist once over the same queries (one repeat), the order rotating
    by one each pass. Why: each sweep runs for minutes, one engine after the other, and the
    machine's speed drifts in between (the same setting read 0.30 and 0.43 ms in runs minutes
    apart); alternating passes put both engines in the same machine state. Returns
    {"passes", "ms": {label: [mean ms per pass]}, "median_ms": {label: median}}."""
    sy = record["systems"]
    mean = lambda s: s["latency_ms"]["mean"]  # noqa: E731
    labels: list[str] = []
    for floor in APPROX_FLOORS:
        for engine in ("lsr", "seismic"):
            ok = [n for n, s in sy.items() if s.get("engine") == engine and s.get("recall", 0) >= floor]
            for n in sorted(ok, key=lambda n: mean(sy[n]))[:APPROX_FINALISTS]:
                if n not in labels:
                    labels.append(n)

    def time_one(label):
        s = sy[label]
        if s["engine"] == "lsr":
            lat, _ = _time_lsr(index, queries, a.k, s.get("method", "exact"), s.get("params") or {}, 1)
            return stats(lat)["mean"]

        def one(i, cfg=s["params"]):
            peer.search(i, a.k, **cfg)

        return stats(time_per_query(one, nq, 1))["mean"]

    ms: dict[str, list[float]] = {n: [] for n in labels}
    for p in range(a.approx_passes):
        print(f"alternating pass {p + 1}/{a.approx_passes} over {len(labels)} finalists ...", flush=True)
        for j in range(len(labels)):
            label = labels[(p + j) % len(labels)]
            ms[label].append(time_one(label))
    return {
        "passes": a.approx_passes,
        "ms": ms,
        "median_ms": {n: float(np.median(v)) for n, v in ms.items()},
    }


def _fastest(systems, pred):
    best = None
    for name, s in systems.items():
        if pred(name, s) and (best is None or s["latency_ms"]["mean"] < best[1]["latency_ms"]["mean"]):
            best = (name, s)
    return best


def _target(ratio, goal, ok, **detail):
    """One target's record: the measured ``ratio`` (None: a side is missing), its ``goal`` and ``met``."""
    return {"ratio": ratio, "goal": goal, "met": None if ratio is None else bool(ok(ratio)), **detail}


def _targets(r):
    """The issue's targets (issue 17) as measured ratios on one data set, each with ``met``
    (None where a side is missing, e.g. pyseismic never reached the recall):

    * ``approximate`` / ``approximate_090``: the fastest lsr setting with recall@k >= 0.95 / 0.90
      (lsr exact counts, recall 1) over the fastest pyseismic configuration at that recall, <= 0.8;
    * ``safe``: the fastest rank-safe lsr method over the naive TAAT, <= 0.5;
    * ``safe_vs_exact``: the slowest rank-safe lsr pruning method (maxscore, safe bmp) over lsr exact
      on the same index, <= 1.0 ("never slower than exact");
    * ``tails``: p99 / p50 of every lsr method at its default settings, each <= 4 (ratio: the worst);
    * ``build``: lsr's build time (first quantization, every method's parts) over pyseismic-lsr's,
      <= 1.0, and ``index_size``: the lsr index folder with every part over pyseismic's, <= 1.0;
    * ``batch_scaling``: batch QPS of lsr exact on 2 threads over 1 thread, >= 1.8.
    """
    sy = r["systems"]
    out = {}
    mean = lambda s: s["latency_ms"]["mean"]  # noqa: E731
    naive = sy.get("naive numba TAAT")
    safe = _fastest(sy, lambda n, s: s.get("engine") == "lsr" and s.get("safe"))
    if safe and naive:
        out["safe"] = _target(
            mean(safe[1]) / mean(naive), "<= 0.5", lambda x: x <= 0.5,
            ours=safe[0], ours_ms=mean(safe[1]), naive_ms=mean(naive),
        )  # fmt: skip
    exact_name = next((n for n, s in sy.items() if n.startswith("lsr exact")), None)
    pruning = [
        (n, s)
        for n, s in sy.items()
        if s.get("engine") == "lsr" and s.get("safe") and s.get("method") not in (None, "exact")
    ]
    if exact_name and pruning:
        worst = max(pruning, key=lambda p: mean(p[1]))
        out["safe_vs_exact"] = _target(
            mean(worst[1]) / mean(sy[exact_name]), "<= 1.0", lambda x: x <= 1.0,
            ours=worst[0], ours_ms=mean(worst[1]), exact=exact_name, exact_ms=mean(sy[exact_name]),
        )  # fmt: skip
    has_seismic = any(s.get("engine") == "seismic" for s in sy.values())
    alt = (r.get("approx_passes") or {}).get("median_ms") or {}
    for key, floor in (("approximate", 0.95), ("approximate_090", 0.90)):
        ours = _fastest(sy, lambda n, s, f=floor: s.get("engine") == "lsr" and s.get("recall", 0) >= f)
        seis = _fastest(sy, lambda n, s, f=floor: s.get("engine") == "seismic" and s.get("recall", 0) >= f)
        if ours and seis:
            one_pass = mean(ours[1]) / mean(seis[1])
            detail = {}
            ours_alt = [n for n in alt if sy[n].get("engine") == "lsr" and sy[n].get("recall", 0) >= floor]
            seis_alt = [
                n for n in alt if sy[n].get("engine") == "seismic" and sy[n].get("recall", 0) >= floor
            ]
            if ours_alt and seis_alt:  # the finalists' alternating passes decide (see _alternate)
                ours = (min(ours_alt, key=alt.get), None)
                seis = (min(seis_alt, key=alt.get), None)
                ratio, ours_ms, seis_ms = alt[ours[0]] / alt[seis[0]], alt[ours[0]], alt[seis[0]]
                detail = {"from": "alternating passes (median)", "one_pass_ratio": one_pass}
            else:
                ratio, ours_ms, seis_ms = one_pass, mean(ours[1]), mean(seis[1])
            out[key] = _target(
                ratio, "<= 0.8", lambda x: x <= 0.8, recall_floor=floor,
                ours=ours[0], ours_ms=ours_ms, ours_recall=sy[ours[0]]["recall"],
                seismic=seis[0], seismic_ms=seis_ms, seismic_recall=sy[seis[0]]["recall"], **detail,
            )  # fmt: skip
        elif has_seismic:
            out[key] = _target(
                None, "<= 0.8", None, recall_floor=floor,
                note=("no lsr setting" if not ours else "no pyseismic configuration") + f" reached recall {floor}",
            )  # fmt: skip
    tails = {
        n: s["latency_ms"]["p99"] / s["latency_ms"]["p50"]
        for n, s in sy.items()
        if s.get("engine") == "lsr" and not s.get("params") and s["latency_ms"]["p50"] > 0
    }
    if tails:
        worst_t = max(tails, key=tails.get)
        out["tails"] = _target(
            tails[worst_t], "<= 4 each", lambda x: x <= 4.0, worst=worst_t, per_method=tails
        )
    lsr_build = next((s for n, s in sy.items() if n.startswith("lsr exact") and "build" in s), None)
    seis_any = next((s for s in sy.values() if s.get("engine") == "seismic"), None)
    if lsr_build and seis_any and lsr_build["build"].get("seconds"):
        out["build"] = _target(
            lsr_build["build"]["seconds"] / seis_any["build"]["seconds"], "<= 1.0", lambda x: x <= 1.0,
            lsr_seconds=lsr_build["build"]["seconds"], seismic_seconds=seis_any["build"]["seconds"],
        )  # fmt: skip
        out["index_size"] = _target(
            lsr_build["index_bytes"] / max(1, seis_any["index_bytes"]), "<= 1.0", lambda x: x <= 1.0,
            lsr_bytes=lsr_build["index_bytes"], seismic_bytes=seis_any["index_bytes"],
        )  # fmt: skip
    bq = r.get("batch_qps")
    if bq:
        out["batch_scaling"] = _target(
            bq["qps_2_threads"] / bq["qps_1_thread"], ">= 1.8", lambda x: x >= 1.8,
            qps_1_thread=bq["qps_1_thread"], qps_2_threads=bq["qps_2_threads"], method=bq["method"],
        )  # fmt: skip
    return out


TARGET_ROWS = [
    ("approximate", "approximate, recall >= 0.95: fastest lsr / fastest pyseismic"),
    ("approximate_090", "approximate, recall >= 0.90: fastest lsr / fastest pyseismic"),
    ("safe", "safe: fastest rank-safe lsr / naive TAAT"),
    ("safe_vs_exact", "safe: slowest rank-safe lsr pruning / lsr exact"),
    ("tails", "tails: worst p99 / p50, lsr methods at defaults"),
    ("build", "build time: lsr / pyseismic"),
    ("index_size", "index size (every part): lsr / pyseismic"),
    ("batch_scaling", "batch QPS: 2 threads / 1 thread (lsr exact)"),
]


def _targets_table(records: dict) -> str:
    """Markdown: one row per target of the issue, one column per data set, each cell the measured
    ratio and met/missed (n/a where a side is missing)."""
    names = list(records)
    lines = [
        "Targets (issue 17), measured in this run (one thread unless said; k as run):",
        "",
        "| target | goal | " + " | ".join(names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    for key, label in TARGET_ROWS:
        goal = next((r["targets"][key]["goal"] for r in records.values() if key in r.get("targets", {})), "")
        cells = []
        for r in records.values():
            t = r.get("targets", {}).get(key)
            if t is None:
                cells.append("n/a")
            elif t["ratio"] is None:
                cells.append(f"n/a ({t.get('note', 'missing side')})")
            else:
                cells.append(f"{t['ratio']:.2f}x {'met' if t['met'] else '**missed**'}")
        lines.append(f"| {label} | {goal} | " + " | ".join(cells) + " |")
    lines.append("")
    for name, r in records.items():
        for key, t in r.get("targets", {}).items():
            if t.get("ratio") is None:
                continue
            who = ", ".join(
                f"{f}={t[f]:.3f}" if isinstance(t[f], float) else f"{f}={t[f]}"
                for f in (
                    "ours",
                    "ours_ms",
                    "ours_recall",
                    "seismic",
                    "seismic_ms",
                    "seismic_recall",
                    "naive_ms",
                    "exact_ms",
                    "worst",
                    "lsr_seconds",
                    "seismic_seconds",
                    "lsr_bytes",
                    "seismic_bytes",
                    "qps_1_thread",
                    "qps_2_threads",
                    "from",
                    "one_pass_ratio",
                )  # fmt: skip
                if f in t
            )
            lines.append(f"- {name} / {key}: {who}")
    return "\n".join(lines) + "\n"


def _plot(r, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot (pip install -e '.[bench]')")
        return
    groups: dict[str, list] = {}
    for name, s in r["systems"].items():
        if "recall" not in s:
            continue
        key = s.get("engine", "lsr") + (" " + s["method"] if s.get("method") else "")
        groups.setdefault(key, []).append((s["latency_ms"]["mean"], s["recall"], name))
    fig, ax = plt.subplots(figsize=(8, 5))
    for key, pts in sorted(groups.items()):
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=key)
    for name in ("naive numba TAAT",):
        if name in r["systems"]:
            ax.axvline(r["systems"][name]["latency_ms"]["mean"], color="grey", ls="--", label=name)
    ax.set_xscale("log")
    ax.set_xlabel("mean latency per query, ms (one thread, log scale)")
    ax.set_ylabel(f"recall@{r['k']} vs exact")
    ax.set_title(f"{r['n_docs']:,} docs, {r['queries']} queries, k={r['k']}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


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
