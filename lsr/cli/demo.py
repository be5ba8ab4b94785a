"""``lsr demo``: the bundled model over the bundled SciFact, end to end, with nDCG@10.

The run is written and evaluated as ``lsr eval`` does (:mod:`lsr.eval.runs`, :func:`lsr.eval.metrics.evaluate_run`):
the same queries (a text and a judgment of grade > 0), the same tie order (score descending, then
doc id ascending), the same nDCG@10.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from lsr.cli.common import apply_threads, check_positive, encoder_options, human_bytes, summary


def run(args: Any) -> int:
    import lsr
    from lsr.eval.datasets import beir_folder
    from lsr.eval.metrics import evaluate_run
    from lsr.eval.runs import results_to_run, write_run
    from lsr.retriever import Retriever
    from lsr.texts import iter_texts, read_qrels

    check_positive("limit", args.limit)
    threads = apply_threads(args.threads)
    folder = beir_folder(args.dataset)
    os.makedirs(args.output, exist_ok=True)
    print(f"[1/4] loading encoder {args.model}")
    enc = lsr.load_encoder(args.model, **encoder_options(args))
    n_docs = args.limit or sum(1 for _ in iter_texts(folder.corpus))
    print(f"[2/4] encoding and indexing {n_docs} documents of {folder.corpus}")
    t0 = time.perf_counter()
    retriever = Retriever.from_corpus(
        folder.corpus,
        os.path.join(args.output, "index"),
        enc,
        batch_size=256,
        limit=args.limit,
        overwrite=True,
        show_progress=True,
        threads=threads,
    )
    build_s = time.perf_counter() - t0
    index = retriever.index
    judged = {q: d for q, d in read_qrels(folder.qrels).items() if any(g > 0 for g in d.values())}
    queries = [q for q in iter_texts(folder.queries) if q.id in judged and q.text.strip()]
    print(f"[3/4] searching {len(queries)} test queries (exact, k=100)")
    t1 = time.perf_counter()
    results = retriever.search([q.text for q in queries], k=100, method="exact", threads=threads)
    search_s = time.perf_counter() - t1
    run_path = os.path.join(args.output, "run.trec")
    run = results_to_run([q.id for q in queries], results)
    write_run(run_path, run, "lsr-demo")
    print("[4/4] evaluating")
    ndcg = evaluate_run(run, {q.id: judged[q.id] for q in queries}, ("ndcg@10",))[0]["ndcg@10"]
    report = {
        "dataset": folder.root,
        "model": args.model,
        "documents": index.n_docs,
        "queries": len(queries),
        "ndcg@10": round(ndcg, 4),
        "encode_and_index_seconds": round(build_s, 1),
        "docs_per_second": round(index.n_docs / build_s, 1),
        "search_and_query_encoding_seconds": round(search_s, 2),
        "index_bytes": index.size_bytes(),
        "limit": args.limit,
    }
    with open(os.path.join(args.output, "results.json"), "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
    print(json.dumps(report, indent=2))
    partial = f" (first {args.limit} documents only)" if args.limit else ""
    summary(
        f"nDCG@10 = {ndcg:.4f} on {len(queries)} queries{partial}; {index.n_docs} docs encoded+indexed in {build_s:.0f} s "
        f"({human_bytes(index.size_bytes())}); run in {run_path}"
    )
    return 0
