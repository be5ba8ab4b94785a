"""Models side by side on a BEIR dataset: effectiveness, sparsity, query-encoding latency, training cost.

For each ``NAME=MODEL`` it runs the same harness as ``lsr eval`` (exact search, encodings cached) and
collects nDCG@10 / recall@100, the mean non-zeros of document and query vectors, query encoding p50
(one query at a time, as a service sees them), exact search p50, the index size, and, for a model made
by ``lsr train``, its training report (steps, seconds, settings). BM25 runs once, with the first model.
Writes ``OUTPUT.json`` and ``OUTPUT.md``.

    python benchmarks/bench_models.py --dataset scifact --output benchmarks/results/models_scifact \\
        --model splade=splade-tiny --model inference-free-idf=runs/if-idf --model splade-ft=runs/splade-ft
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from lsr.errors import LsrError


def _row(name: str, model: str, report: dict[str, Any]) -> dict[str, Any]:
    exact = report["systems"]["exact"]
    enc = report["encoding"]
    row = {
        "name": name,
        "model": model,
        "kind": report["model"]["config"].get("kind"),
        "ndcg@10": exact["metrics"]["ndcg@10"],
        "recall@100": exact["metrics"]["recall@100"],
        "doc_nnz": enc["corpus"]["postings"] / enc["corpus"]["documents"],
        "query_nnz": report.get("query_nnz"),
        "query_encode_p50_ms": enc["queries"]["ms"]["p50"],
        "search_p50_ms": exact["efficiency"]["latency_ms"]["p50"],
        "index_bytes": report["index"]["size_bytes"],
        "train": None,
    }
    rep = os.path.join(model, "train_report.json") if os.path.isdir(model) else None
    if rep and os.path.isfile(rep):
        with open(rep, encoding="utf-8") as f:
            t = json.load(f)
        row["train"] = {
            "steps": t["steps"],
            "seconds": t["seconds"],
            "device": t["device"],
            "resumed_from": t.get("resumed_from"),
            "config": {k: v for k, v in t["config"].items() if k not in ("output",)},
        }
    return row


def markdown(result: dict[str, Any]) -> str:
    lines = [
        f"# Models on {result['dataset']} ({result['split']})",
        "",
        f"Command: `{result['command']}`",
        "",
        "| model | kind | nDCG@10 | R@100 | doc nnz | query nnz | query encode p50 | exact search p50 | index | trained |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in result["rows"]:
        t = r["train"]
        trained = f"{t['steps']} steps, {t['seconds'] / 60:.1f} min ({t['device']})" if t else "-"
        qn = f"{r['query_nnz']:.1f}" if r["query_nnz"] is not None else "-"
        lines.append(
            f"| {r['name']} | {r['kind']} | {r['ndcg@10']:.4f} | {r['recall@100']:.4f} | {r['doc_nnz']:.1f} | {qn} "
            f"| {r['query_encode_p50_ms']:.4f} ms | {r['search_p50_ms']:.3f} ms | {r['index_bytes'] / 1e6:.1f} MB | {trained} |"
        )
    if result.get("bm25") is not None:
        lines += ["", f"BM25 ({result['bm25']['backend']}): nDCG@10 {result['bm25']['ndcg@10']:.4f}"]
    lines += ["", f"Machine: {result['machine']}; {result['seconds']:.0f} s in all.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from lsr.eval import harness
    from lsr.eval.environment import cpu_name

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="scifact")
    ap.add_argument("--split", default="test")
    ap.add_argument("--model", action="append", required=True, metavar="NAME=MODEL")
    ap.add_argument("--output", required=True, help="path prefix of the .json and .md results")
    ap.add_argument(
        "--work", default=None, help="folder for the per-model eval outputs (default OUTPUT_runs)"
    )
    ap.add_argument("--bm25", default="auto", choices=["auto", "pyserini", "bm25s", "none"])
    ap.add_argument("--torch-threads", type=int, default=None)
    args = ap.parse_args(argv)
    work = args.work or args.output + "_runs"
    t0 = time.time()
    rows, bm25 = [], None
    for i, spec in enumerate(args.model):
        name, sep, model = spec.partition("=")
        if not sep or not name or not model:
            raise LsrError(f"--model {spec!r}: expected NAME=MODEL")
        report = harness.run_eval(
            args.dataset,
            model,
            os.path.join(work, name),
            methods="exact",
            k=1000,
            split=args.split,
            bm25=args.bm25 if i == 0 else "none",
            torch_threads=args.torch_threads,
            plots=False,
        )
        report["query_nnz"] = _query_nnz(report["index"]["path"], model, args.dataset, args.split)
        rows.append(_row(name, model, report))
        if "bm25" in report["systems"]:
            b = report["systems"]["bm25"]
            bm25 = {"backend": b.get("backend"), "ndcg@10": b["metrics"]["ndcg@10"]}
    result = {
        "dataset": args.dataset,
        "split": args.split,
        "command": "python benchmarks/bench_models.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "rows": rows,
        "bm25": bm25,
        "machine": cpu_name(),
        "seconds": time.time() - t0,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output + ".json", "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
    md = markdown(result)
    with open(args.output + ".md", "w", encoding="utf-8") as f:
        f.write(md)
    print(md)
    return 0


def _query_nnz(index_path: str, model: str, dataset: str, split: str) -> float:
    """Mean non-zeros of the encoded test queries (re-encoded: the harness keeps only the runs)."""
    import numpy as np

    from lsr.eval.datasets import load_dataset
    from lsr.index import open_index

    ds = load_dataset(dataset, split=split)
    texts = [q.text for q in ds.queries if q.id in ds.judged and q.text.strip()]
    index = open_index(index_path)
    return float(
        np.diff(index.encode_queries(texts, encoder=__import__("lsr").load_encoder(model)).indptr).mean()
    )


if __name__ == "__main__":
    sys.exit(main())
