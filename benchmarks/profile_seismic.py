"""Seismic per document: lsr's ``seismic`` method against pyseismic on the same lists.

Why: on real vectors lsr's Seismic is slower than pyseismic at equal recall (issue 17). Two causes
are possible: lsr scores more documents, or it scores each one at a higher cost. This script tells
them apart. It builds pyseismic over the same vectors with lsr's own term numbering
(``input_token_to_id_map``), so list ``t`` of both engines belongs to the same term, and it compares:

* the lists: for each query, the length of its heaviest term's list and the size of the union of
  its ``--union-terms`` heaviest terms' lists, in both engines (equal lists: equal pruning);
* ``heap_factor = 0``: no block is ever skipped, so every document of the visited lists is scored
  (query_cut 1: the first list; query_cut 8: eight lists). The time per query over the documents
  scored is each engine's cost per document;
* the usual settings (query_cut 3/5/8 x heap_factor 0.9/0.7): mean ms and recall@k against lsr's
  exact search, for both engines.

lsr is timed through ``Index.search_arrays`` (one query per call, one thread), pyseismic through
its ``search`` (one query per call). Each query runs ``--repeats`` times and the median counts.

    python benchmarks/profile_seismic.py --index /work/data/bench/real/index_float32 \\
        --data /work/data/real300k_vec --queries 500 --work /work/data/profile_seismic \\
        --output benchmarks/results/profile_seismic_real

Writes ``OUTPUT.json`` and ``OUTPUT.md``. pyseismic (``pip install -e '.[bench]'``) is required.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

CONFIGS = [(1, 0.0), (8, 0.0), (3, 0.9), (5, 0.9), (8, 0.9), (3, 0.7), (5, 0.7)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--index", required=True, help="an lsr index with the seismic part")
    ap.add_argument("--data", required=True, help="vectors folder: docs.jsonl and queries.jsonl")
    ap.add_argument("--work", required=True, help="folder for pyseismic's input copy")
    ap.add_argument("--output", required=True, help="output stem (.json and .md are added)")
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--union-terms", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2, help="pyseismic's build threads")
    a = ap.parse_args()

    import bench_search as B
    import numba
    import peers as P
    import seismic

    from lsr.index import open_index
    from lsr.vectors import read_vectors

    numba.set_num_threads(1)
    index = open_index(a.index)
    if "seismic" not in index.methods:
        raise SystemExit(f"{a.index} has no seismic part")
    part = index.parts["seismic"]
    tok2id = {t: i for i, t in enumerate(index.vocab.tokens)}
    os.makedirs(a.work, exist_ok=True)
    src = P._with_content(os.path.join(a.data, "docs.jsonl"), a.work)
    build = {
        "n_postings": int(part["n_postings"]),
        "max_fraction": float(part.get("max_fraction", 1.5)),
        "centroid_fraction": 1.0 / int(part["block_size"]),
        "summary_energy": float(part["summary_energy"]),
    }
    t0 = time.perf_counter()
    pidx = seismic.SeismicIndex.build(src, **build, input_token_to_id_map=tok2id, num_threads=a.threads)
    build_s = time.perf_counter() - t0
    print(f"pyseismic built in {build_s:.1f} s", flush=True)

    queries = read_vectors(os.path.join(a.data, "queries.jsonl"))
    indptr, terms, weights, _ = index.prepare_queries(queries)
    nq = min(a.queries, len(indptr) - 1)
    indptr = indptr[: nq + 1]
    exd, _ = index.search_arrays(indptr, terms, weights, a.k, method="exact")
    truth = [set(index.doc_ids(r[r >= 0])) for r in exd]
    st = seismic.get_seismic_string()
    pq = []  # pyseismic's queries: the same (known) tokens and weights
    for i in range(nq):
        t, w = terms[indptr[i] : indptr[i + 1]], weights[indptr[i] : indptr[i + 1]]
        pq.append((str(i), np.array([index.vocab.tokens[x] for x in t], dtype=st), np.asarray(w, np.float32)))

    # the lists of both engines, per query: the heaviest term's, and the union of the heaviest few
    tb, bptr, bdocs = (np.asarray(x) for x in index.seismic[:3])

    def lsr_list(t: int) -> np.ndarray:
        return bdocs[bptr[tb[t]] : bptr[tb[t + 1]]]

    first, union = {"lsr": [], "pyseismic": []}, {"lsr": [], "pyseismic": []}
    for i in range(nq):
        t, w = terms[indptr[i] : indptr[i + 1]], weights[indptr[i] : indptr[i + 1]]
        top = [int(t[j]) for j in np.argsort(-w, kind="stable")[: a.union_terms]]
        mine = [lsr_list(x) for x in top]
        theirs = [np.asarray(pidx.get_doc_ids_in_postings(x)) for x in top]
        first["lsr"].append(len(mine[0]) if mine else 0)
        first["pyseismic"].append(len(theirs[0]) if theirs else 0)
        union["lsr"].append(len(np.unique(np.concatenate(mine))) if mine else 0)
        union["pyseismic"].append(len(np.unique(np.concatenate(theirs))) if theirs else 0)

    def time_it(fn) -> tuple[float, list]:  # bench_search's timing: per-query medians of passes
        found = [None] * nq

        def one(i: int) -> None:
            found[i] = fn(i)

        return float(B.time_per_query(one, nq, a.repeats).mean() * 1e3), found

    def recall(found) -> float:  # bench_search's recall@k against exact search
        return B._recall(found, truth)

    index.warmup(["seismic"])
    rows = []
    for qc, hf in CONFIGS:
        params = index.check_params("seismic", {"query_cut": qc, "heap_factor": max(hf, 1e-6)})
        if hf == 0.0:
            params["heap_factor"] = 0.0  # below the method's floor on purpose: no block skipped

        def lsr_one(i, params=params):
            a_, b_ = indptr[i], indptr[i + 1]
            d, _ = index.search_arrays(
                np.array([0, b_ - a_], np.int64), terms[a_:b_], weights[a_:b_], a.k, 1, "seismic", **params
            )
            return index.doc_ids(d[0][d[0] >= 0])

        def peer_one(i, qc=qc, hf=hf):
            qid, c, w = pq[i]
            return [r[2] for r in pidx.search(qid, c, w, a.k, qc, hf)]

        for i in range(min(50, nq)):
            lsr_one(i)
            peer_one(i)
        ms_l, f_l = time_it(lsr_one)
        ms_p, f_p = time_it(peer_one)
        row = {
            "query_cut": qc,
            "heap_factor": hf,
            "lsr_ms": ms_l,
            "lsr_recall": recall(f_l),
            "pyseismic_ms": ms_p,
            "pyseismic_recall": recall(f_p),
            "ratio": ms_l / ms_p,
        }
        if hf == 0.0:
            docs = np.mean(first["lsr"] if qc == 1 else union["lsr"]) if qc in (1, a.union_terms) else None
            if docs:
                row["docs_scored"] = float(docs)
                row["lsr_ns_per_doc"] = ms_l * 1e6 / docs
                row["pyseismic_ns_per_doc"] = ms_p * 1e6 / docs
        rows.append(row)
        print(json.dumps(row), flush=True)

    record = {
        "command": " ".join(["python"] + sys.argv),
        "index": os.path.abspath(a.index),
        "data": os.path.abspath(a.data),
        "queries": nq,
        "k": a.k,
        "repeats": a.repeats,
        "pyseismic_build": {"seconds": build_s, "params": build, "threads": a.threads},
        "lists": {
            "first_list_mean": {e: float(np.mean(v)) for e, v in first.items()},
            f"union_of_{a.union_terms}_mean": {e: float(np.mean(v)) for e, v in union.items()},
            "first_list_equal_share": float(np.mean(np.equal(first["lsr"], first["pyseismic"]))),
        },
        "rows": rows,
    }
    with open(a.output + ".json", "w") as f:
        json.dump(record, f, indent=2)
    md = [
        f"# Seismic per document: lsr vs pyseismic ({nq} queries, k={a.k}, one thread)",
        "",
        f"Command: `{record['command']}`",
        "",
        f"Lists (means per query): first list lsr {record['lists']['first_list_mean']['lsr']:.1f}, "
        f"pyseismic {record['lists']['first_list_mean']['pyseismic']:.1f}; union of the "
        f"{a.union_terms} heaviest terms' lists lsr {record['lists'][f'union_of_{a.union_terms}_mean']['lsr']:.1f}, "
        f"pyseismic {record['lists'][f'union_of_{a.union_terms}_mean']['pyseismic']:.1f}.",
        "",
        "| query_cut | heap_factor | lsr ms | lsr recall | pyseismic ms | pyseismic recall | lsr / pyseismic | ns per doc (lsr / pyseismic) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        per = f"{r['lsr_ns_per_doc']:.0f} / {r['pyseismic_ns_per_doc']:.0f}" if "lsr_ns_per_doc" in r else "-"
        md.append(
            f"| {r['query_cut']} | {r['heap_factor']} | {r['lsr_ms']:.3f} | {r['lsr_recall']:.3f} | "
            f"{r['pyseismic_ms']:.3f} | {r['pyseismic_recall']:.3f} | {r['ratio']:.2f} | {per} |"
        )
    md += [
        "",
        "heap_factor 0 skips no block: every document of the visited lists is scored, so ms over the",
        "documents of those lists is each engine's cost per document (queries' heaviest list for",
        "query_cut 1, the union of the heaviest lists for the larger query_cut).",
    ]
    with open(a.output + ".md", "w") as f:
        f.write("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
