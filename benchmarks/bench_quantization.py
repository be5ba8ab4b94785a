"""What uint8 / uint16 impacts cost against float32: quality numbers, not timings (issue #17).

For each quantization (float32, then uint16 and uint8 with the ``global`` quantizer of format
versions 1-2, still the default, and the per-term ``term`` quantizer of version 3) the script builds an
exact-search lsr index of the same document vectors, searches every query with ``method="exact"`` at
k = 10, and reports against the float32 index's exact top-10:

* ``recall@10 vs float32``: mean share of the float32 top-10 found in the quantized top-10;
* ``same top-10``: share of queries whose top-10 *set* is unchanged;
* ``nDCG@10`` (ranx, as ``lsr eval``: judged queries of the split, ties by doc id) and its cost
  (float32's nDCG@10 minus this one), when qrels are given;
* ``seismic recall@10`` at ``query_cut`` 5 and 10 (other parameters default) against the float32
  exact top-10: what the quantizer does to the approximate method (the per-term quantizer folds
  its steps into the query weights, which Seismic also uses to rank query terms).

Two collections: the real vectors given (``--docs``/``--queries``, e.g. SciFact encoded by the
bundled model with ``lsr encode``; ``--qrels`` BEIR qrels of the queries), and a synthetic
heavy-tailed one (log-normal weights, ``--synthetic-docs`` documents; recall only), where one outlier
weight sets the global quantizer's step.

    python benchmarks/bench_quantization.py --docs /work/data/scifact_vec/docs.jsonl \\
        --queries /work/data/scifact_vec/queries.jsonl \\
        --qrels eval/data/scifact/qrels/test.tsv \\
        --output benchmarks/results/quantization_scifact          # writes .json and .md

Deterministic (no timing): one thread is enough and the numbers do not depend on the machine's load.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from typing import Any

import numpy as np

SEISMIC_CUTS = (5, 10)
CONFIGS = (
    ("float32", "global"),
    ("uint16", "global"),
    ("uint8", "global"),
    ("uint16", "term"),
    ("uint8", "term"),
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--docs", default="/work/data/scifact_vec/docs.jsonl", help="document vectors (JSONL)")
    p.add_argument("--queries", default="/work/data/scifact_vec/queries.jsonl", help="query vectors (JSONL)")
    p.add_argument(
        "--qrels",
        default=os.path.join(os.path.dirname(__file__), "..", "eval", "data", "scifact", "qrels", "test.tsv"),
        help="BEIR qrels of the queries for nDCG@10 (default: the bundled SciFact test split, as lsr eval "
        "uses; skipped when the file is absent)",
    )
    p.add_argument("--name", default="scifact", help="name of the real collection in the report")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--synthetic-docs", type=int, default=20_000, help="0: no synthetic collection")
    p.add_argument("--synthetic-terms", type=int, default=2_000)
    p.add_argument("--synthetic-queries", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--output", default="benchmarks/results/quantization_scifact", help="writes OUTPUT.json/.md"
    )
    return p.parse_args(argv)


def top_k(index: Any, queries: Any, k: int) -> list[list[str]]:
    """Exact top-k doc ids of every query (one thread)."""
    return [r.ids for r in index.search(queries, k=k, method="exact", threads=1)]


def compare(run: list[list[str]], ref: list[list[str]], k: int) -> dict[str, float]:
    """recall@k of ``run`` against ``ref`` (the float32 top-k) and the share of identical top-k sets."""
    rec, same = [], []
    for a, b in zip(run, ref, strict=True):
        if not b:
            continue
        rec.append(len(set(a) & set(b)) / len(b))
        same.append(set(a) == set(b))
    return {"recall_vs_float32": float(np.mean(rec)), "same_topk": float(np.mean(same)), "queries": len(rec)}


def ndcg10(index: Any, queries: Any, qids: list[str], qrels: dict[str, dict[str, int]]) -> float:
    """nDCG@10 with ranx over the judged queries, as ``lsr eval`` computes it."""
    from lsr.eval.metrics import evaluate_run

    res = index.search(queries, k=10, method="exact", threads=1)
    run = {q: list(zip(r.ids, r.scores, strict=True)) for q, r in zip(qids, res, strict=True)}
    judged = {q: d for q, d in qrels.items() if any(g > 0 for g in d.values())}
    means, _ = evaluate_run(run, judged, ["ndcg@10"])
    return float(means["ndcg@10"])


def evaluate_collection(
    docs: Any, queries: Any, qids: list[str], qrels: dict | None, k: int, work: str, label: str
) -> list[dict[str, Any]]:
    """Build one exact index per configuration of ``docs``; the rows of the report."""
    from lsr.index import build_index, open_index

    rows: list[dict[str, Any]] = []
    ref = None
    base_ndcg = None
    for quantization, quantizer in CONFIGS:
        path = os.path.join(work, f"{label}-{quantization}-{quantizer}")
        t0 = time.perf_counter()
        build_index(
            docs,
            path,
            quantization=quantization,
            quantizer=quantizer,
            methods=["exact", "seismic"],
            overwrite=True,
        )
        idx = open_index(path)
        run = top_k(idx, queries, k)
        if ref is None:
            ref = run
        row: dict[str, Any] = {
            "quantization": quantization,
            "quantizer": "-" if quantization == "float32" else quantizer,
            **compare(run, ref, k),
            "index_bytes": idx.size_bytes(),
        }
        for qc in SEISMIC_CUTS:
            res = idx.search(queries, k=k, method="seismic", threads=1, query_cut=qc)
            row[f"seismic_recall_qc{qc}"] = compare([r.ids for r in res], ref, k)["recall_vs_float32"]
        if qrels is not None:
            row["ndcg@10"] = ndcg10(idx, queries, qids, qrels)
            if base_ndcg is None:
                base_ndcg = row["ndcg@10"]
            row["ndcg@10_cost"] = base_ndcg - row["ndcg@10"]
        print(
            f"{label}: {quantization}/{row['quantizer']} {json.dumps(row)} ({time.perf_counter() - t0:.1f} s)",
            file=sys.stderr,
            flush=True,
        )
        rows.append(row)
    return rows


def synthetic(n_docs: int, n_terms: int, n_queries: int, seed: int) -> tuple[Any, Any, Any]:
    """A random collection with log-normal(0, 1) weights (heavy-tailed: the largest of millions of
    weights is ~100x the median), 1% density, and log-normal queries of ~8% of the terms."""
    import scipy.sparse as sp

    from lsr.vectors import SparseBatch, Vocabulary

    rng = np.random.default_rng(seed)
    vocab = Vocabulary([f"t{i}" for i in range(n_terms)])
    d = sp.random(n_docs, n_terms, density=0.01, random_state=rng, format="csr", dtype=np.float32)
    d.data = rng.lognormal(0, 1, d.nnz).astype(np.float32)
    q = sp.random(n_queries, n_terms, density=0.08, random_state=rng, format="csr", dtype=np.float32)
    q.data = rng.lognormal(0, 1, q.nnz).astype(np.float32)
    docs = SparseBatch.from_scipy(d, vocab, [str(i) for i in range(n_docs)])
    queries = SparseBatch.from_scipy(q, vocab, [f"q{i}" for i in range(n_queries)])
    return docs, queries, d


def weight_stats(data: np.ndarray) -> dict[str, float]:
    w = np.asarray(data, np.float64)
    p = np.percentile(w, [50, 99, 99.9, 99.99])
    return {
        "max": float(w.max()),
        "p50": float(p[0]),
        "p99": float(p[1]),
        "p99.9": float(p[2]),
        "p99.99": float(p[3]),
    }


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    from lsr.eval.environment import cpu_name, git_commit
    from lsr.texts import read_qrels
    from lsr.vectors import read_vectors

    collections: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-quant-") as work:
        docs = read_vectors(a.docs)
        queries = read_vectors(a.queries, docs.vocab, unknown="skip")
        qrels = read_qrels(a.qrels) if a.qrels and os.path.isfile(a.qrels) else None
        collections[a.name] = {
            "docs": len(docs),
            "queries": len(queries),
            "postings": int(docs.nnz),
            "weights": weight_stats(docs.data),
            "qrels": os.path.abspath(a.qrels) if qrels is not None else None,
            "rows": evaluate_collection(docs, queries, list(queries.ids), qrels, a.k, work, a.name),
        }
        if a.synthetic_docs > 0:
            sd, sq, _ = synthetic(a.synthetic_docs, a.synthetic_terms, a.synthetic_queries, a.seed)
            collections["lognormal-synthetic"] = {
                "docs": len(sd),
                "queries": len(sq),
                "postings": int(sd.nnz),
                "weights": weight_stats(sd.data),
                "qrels": None,
                "rows": evaluate_collection(sd, sq, list(sq.ids), None, a.k, work, "synthetic"),
            }
    record = {
        "benchmark": "quantization",
        "k": a.k,
        "collections": collections,
        "inputs": {"docs": os.path.abspath(a.docs), "queries": os.path.abspath(a.queries)},
        "synthetic": {
            "docs": a.synthetic_docs,
            "terms": a.synthetic_terms,
            "queries": a.synthetic_queries,
            "seed": a.seed,
            "density": 0.01,
            "weights": "lognormal(0, 1)",
        },
        "environment": {"cpu": cpu_name(), "git_commit": git_commit(), "command": " ".join(sys.argv)},
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    os.makedirs(os.path.dirname(os.path.abspath(a.output)), exist_ok=True)
    with open(a.output + ".json", "w", encoding="utf-8") as f:
        json.dump(record, f, indent=2)
        f.write("\n")
    with open(a.output + ".md", "w", encoding="utf-8") as f:
        f.write(markdown(record))
    print(f"wrote {a.output}.json and {a.output}.md", file=sys.stderr)
    return 0


def markdown(r: dict[str, Any]) -> str:
    """The report as Markdown tables, one per collection."""
    k = r["k"]
    out = [
        "# Quantization cost against float32 (exact search)",
        "",
        f"recall@{k} vs float32 = mean share of the float32 exact top-{k} kept; same top-{k} = share of "
        f"queries whose top-{k} set is unchanged. `global`: one step for all terms (the default); "
        "`term`: one step per term (`--quantizer term`, format version 3). Index sizes include the "
        "Seismic part. Generated by "
        "`benchmarks/bench_quantization.py`; quality numbers, independent of the machine.",
        "",
    ]
    for name, c in r["collections"].items():
        w = c["weights"]
        out += [
            f"## {name}",
            "",
            f"{c['docs']:,} documents, {c['queries']:,} queries, {c['postings']:,} postings; document weights: "
            f"max {w['max']:.3g}, median {w['p50']:.3g}, p99 {w['p99']:.3g}, p99.9 {w['p99.9']:.3g}, "
            f"p99.99 {w['p99.99']:.3g}.",
            "",
        ]
        has_ndcg = any("ndcg@10" in row for row in c["rows"])
        head = f"| impacts | quantizer | recall@{k} vs float32 | same top-{k} |"
        sep = "|---|---|---|---|"
        if has_ndcg:
            head += " nDCG@10 | nDCG@10 cost |"
            sep += "---|---|"
        head += "".join(f" seismic recall@{k} qc={qc} |" for qc in SEISMIC_CUTS) + " index MiB |"
        sep += "---|" * (len(SEISMIC_CUTS) + 1)
        out += [head, sep]
        for row in c["rows"]:
            line = (
                f"| {row['quantization']} | {row['quantizer']} | {row['recall_vs_float32']:.4f} | "
                f"{row['same_topk']:.3f} |"
            )
            if has_ndcg:
                line += f" {row['ndcg@10']:.4f} | {row['ndcg@10_cost']:+.4f} |"
            line += "".join(f" {row[f'seismic_recall_qc{qc}']:.4f} |" for qc in SEISMIC_CUTS)
            line += f" {row['index_bytes'] / 2**20:.1f} |"
            out.append(line)
        out.append("")
    e = r["environment"]
    out.append(f"Commit {e['git_commit'][:10]}, {r['created']}; `{e['command']}`.")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.exit(main())
