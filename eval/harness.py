"""The BEIR evaluation harness behind ``lsr eval``: effectiveness and efficiency in one report.

``run_eval(dataset, model, output)`` resolves the dataset (a BEIR folder, the bundled ``"scifact"``,
or an ir-datasets id such as ``"beir/scifact/test"``), encodes the corpus (cached under the cache
directory, keyed by the encoder's settings and weights and by the sha256 of the corpus file), builds
an index, encodes the queries one at a time (timed), searches with every method, evaluates with
ranx, runs a BM25 baseline and two fusions, and writes into ``output``:

- ``runs/<name>.trec``: one TREC run per system (``qid Q0 docid rank score tag``), ranked by score
  descending then doc id ascending, scores written as the shortest decimal that reads back exactly;
- ``qrels.tsv``: the judgments used (BEIR format), so ``lsr eval --compare`` needs nothing else;
- ``report.json``, ``report.md``, ``recall_latency.png``, ``ndcg_per_query.png``;
- ``leaderboard/``: the exact run and a metadata JSON for a BEIR leaderboard submission.

Evaluation follows BEIR: only queries that have a text and at least one judgment with a grade > 0 in
the split's qrels are searched and evaluated (the others are counted in the report and skipped); an
evaluated query with no hit scores 0 (ranx ``make_comparable``).

The jobs live in their own modules; this one only runs them in order: :mod:`lsr.eval.datasets` and
:mod:`lsr.eval.irds` (datasets), :mod:`lsr.eval.cache` (the encoding cache), :mod:`lsr.eval.runs`
(TREC runs), :mod:`lsr.eval.metrics` (ranx), :mod:`lsr.eval.bm25` (BM25 and fusion),
:mod:`lsr.eval.timing` (latency, on :mod:`lsr.index.bench`), :mod:`lsr.eval.report`,
:mod:`lsr.eval.plots`, :mod:`lsr.eval.environment` and :mod:`lsr.eval.compare` (``--compare``).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from lsr.errors import LsrError
from lsr.eval.bm25 import bm25_run, fuse_runs, pyserini_python, pyserini_status
from lsr.eval.cache import (
    corpus_cache_key,
    default_cache_dir,
    encode_corpus_cached,
    encoder_fingerprint,
    sha256_file,
)
from lsr.eval.cache import (
    torch_threads as current_torch_threads,
)
from lsr.eval.compare import compare_dirs, compare_table, load_eval_dir
from lsr.eval.datasets import EvalDataset, load_dataset
from lsr.eval.environment import environment
from lsr.eval.metrics import METRICS, evaluate_run
from lsr.eval.plots import write_plots
from lsr.eval.report import export_leaderboard, report_markdown, run_tag
from lsr.eval.runs import RUNS_DIR, Run, ranked, read_run, results_to_run, write_qrels, write_run
from lsr.eval.timing import latency_stats, peak_rss_bytes, recall_vs_exact, time_method

# The names this module has always offered (its API before the split), re-exported from their modules.
__all__ = [
    "METRICS", "RUNS_DIR", "EvalDataset", "Run", "bm25_run", "compare_dirs", "compare_table",
    "corpus_cache_key", "default_cache_dir", "encode_corpus_cached", "encoder_fingerprint",
    "evaluate_run", "export_leaderboard", "fuse_runs", "latency_stats", "load_dataset", "load_eval_dir",
    "peak_rss_bytes", "pyserini_python", "pyserini_status", "ranked", "read_run", "recall_vs_exact",
    "report_markdown", "results_to_run", "run_eval", "sha256_file", "write_plots", "write_qrels", "write_run",
]  # fmt: skip


def _parse_methods(methods: str | Sequence[str] | None) -> list[str]:
    """The methods to evaluate, in order, without repeats (default: every available one)."""
    from lsr.index.searcher import METHODS

    if methods is None:
        return list(METHODS)
    if isinstance(methods, str):
        methods = [m.strip() for m in methods.split(",")]
    out = []
    for m in methods:
        if not m:
            continue
        if m not in METHODS:
            raise LsrError(f"unknown or unavailable method {m!r} (available: {', '.join(METHODS)})")
        if m not in out:
            out.append(m)
    if not out:
        raise LsrError(f"no method given (available: {', '.join(METHODS)})")
    return out


def run_eval(
    dataset: str,
    model: str,
    output: str,
    methods: str | Sequence[str] | None = None,
    k: int = 1000,
    *,
    cache_dir: str | None = None,
    split: str = "test",
    threads: int = 1,
    batch_size: int = 256,
    method_params: dict[str, dict[str, Any]] | None = None,
    bm25: str = "auto",
    pyserini_python: str | None = None,
    torch_threads: int | None = None,
    warmup: int = 50,
    encoder_options: dict[str, Any] | None = None,
    plots: bool = True,
    show_progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Evaluate ``model`` on ``dataset`` with every method; write runs, report and plots to ``output``.

    Returns the report (the content of ``report.json``). ``bm25`` is ``auto`` (pyserini when it can
    run, else bm25s), ``pyserini``, ``bm25s`` or ``none``. ``method_params`` maps a method to its
    keyword parameters for ``Index.search``. ``torch_threads`` sets torch's intra-op threads
    (default: torch's own choice), for encoding the corpus and the queries.
    """
    import lsr
    from lsr.index import build_index, open_index
    from lsr.index.searcher import check_k, check_threads
    from lsr.vectors import concat_batches

    say = log or (lambda s: print(s, file=sys.stderr))
    k = check_k(k)
    threads = check_threads(threads)
    if bm25 not in ("auto", "pyserini", "bm25s", "none"):
        raise LsrError(f"bm25 must be auto, pyserini, bm25s or none, got {bm25!r}")
    method_list = _parse_methods(methods)
    method_params = dict(method_params or {})
    for m in method_params:
        if m not in method_list:
            raise LsrError(
                f"parameters given for method {m!r}, which is not evaluated ({', '.join(method_list)})"
            )
    cache_dir = os.path.abspath(cache_dir or default_cache_dir())
    if torch_threads is not None:
        import torch

        check_threads(torch_threads)
        torch.set_num_threads(torch_threads)
    started = time.time()

    say(f"[1/6] dataset {dataset}")
    ds = load_dataset(dataset, split=split, cache_dir=cache_dir)
    judged = ds.judged
    by_id = {q.id: q for q in ds.queries}
    missing_text = sorted(q for q in judged if q not in by_id)
    empty_text = sorted(q for q in judged if q in by_id and not by_id[q].text.strip())
    qids = sorted(q for q in judged if q in by_id and by_id[q].text.strip())
    if not qids:
        raise LsrError(f"{ds.root}: no query has both a text and a relevant judgment in qrels/{split}.tsv")

    say(f"[2/6] encoder {model}; corpus {ds.corpus}")
    enc = lsr.load_encoder(model, **(encoder_options or {}))
    enc_fp = encoder_fingerprint(enc)
    docs, enc_info = encode_corpus_cached(
        enc, ds, cache_dir, batch_size=batch_size, show_progress=show_progress, encoder_fp=enc_fp
    )
    say(
        f"      {len(docs)} documents "
        + ("from the cache" if enc_info["cached"] else f"encoded in {enc_info['seconds']:.1f} s")
    )

    say("[3/6] index")
    os.makedirs(output, exist_ok=True)
    runs_dir = os.path.join(output, RUNS_DIR)
    os.makedirs(runs_dir, exist_ok=True)
    index_dir = os.path.join(cache_dir, "indexes", corpus_cache_key(enc_fp, ds.fingerprints["corpus_sha256"]))
    os.makedirs(os.path.dirname(index_dir), exist_ok=True)
    t0 = time.perf_counter()
    build_index(docs, index_dir, encoder=enc, overwrite=True)
    build_s = time.perf_counter() - t0
    index = open_index(index_dir)
    from lsr.retriever import Retriever

    qenc = Retriever(index, enc).query_encoder  # inference-free: this index's IDF, enc unchanged

    say(f"[4/6] encoding {len(qids)} queries one at a time")
    texts = [by_id[q].text for q in qids]
    qenc.encode_queries(texts[:1])  # warm-up
    singles, q_times = [], []
    from tqdm.auto import tqdm

    for t in tqdm(texts, desc="encoding queries", unit="q", leave=False, disable=not show_progress):
        t1 = time.perf_counter()
        singles.append(qenc.encode_queries([t]))
        q_times.append(time.perf_counter() - t1)
    qbatch = concat_batches(singles)
    torch_threads_used = current_torch_threads()
    empty_vectors = int(np.count_nonzero(np.diff(qbatch.indptr) == 0))

    say(f"[5/6] searching: {', '.join(method_list)} (k={k})")
    runs: dict[str, Run] = {}
    systems: dict[str, dict[str, Any]] = {}
    for m in method_list:
        params = method_params.get(m, {})
        results, eff = time_method(index, singles, qbatch, k, m, params, warmup, threads, show_progress)
        runs[m] = results_to_run(qids, results)
        systems[m] = {"kind": "lsr", "method": m, "params": params, "efficiency": eff}
    exact = runs.get("exact")
    if exact is None:  # the reference for recall vs exact (not timed, not reported as a system)
        exact = results_to_run(qids, index.search(qbatch, k=k, method="exact", threads=threads))
    bm25_info = None
    if bm25 != "none":
        say("      BM25 baseline")
        runs["bm25"], bm25_info = bm25_run(ds, qids, k, backend=bm25, python=pyserini_python)
        systems["bm25"] = {"kind": "baseline", **bm25_info}
        base = "exact" if "exact" in runs else method_list[0]
        for name, meth, norm in (("fusion_rrf", "rrf", None), ("fusion_minmax_sum", "sum", "min-max")):
            fused = fuse_runs([runs[base], runs["bm25"]], meth, norm)
            runs[name] = {q: v[:k] for q, v in fused.items()}
            systems[name] = {"kind": "fusion", "method": meth, "norm": norm, "of": [base, "bm25"]}

    say("[6/6] evaluating")
    eval_qrels = {q: judged[q] for q in qids}
    per_query: dict[str, dict[str, float]] = {}
    for name, run in runs.items():
        means, pq = evaluate_run(run, eval_qrels)
        systems[name]["metrics"] = means
        per_query[name] = pq["ndcg@10"]
        if name in method_list and name != "exact":
            systems[name]["recall_vs_exact"] = recall_vs_exact(run, exact, k)
        elif name == "exact":
            systems[name]["recall_vs_exact"] = 1.0
        write_run(os.path.join(runs_dir, f"{name}.trec"), run, run_tag(name))
    write_qrels(os.path.join(output, "qrels.tsv"), eval_qrels)

    env = environment(threads)
    env["threads"]["torch"] = torch_threads_used  # as used for encoding (a later import may reset it)
    report: dict[str, Any] = {
        "lsr_eval_version": 1,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "dataset": {
            "name": ds.name,
            "source": ds.source,
            "root": ds.root,
            "split": split,
            "documents": len(docs),
            "empty_documents": ds.empty_docs,
            "empty_document_vectors": int(np.count_nonzero(np.diff(docs.indptr) == 0)),
            "queries": len(ds.queries),
            "qrels_queries": len(ds.qrels),
            "judged_queries": len(judged),
            "evaluated_queries": len(qids),
            "judged_queries_without_text": missing_text,
            "judged_queries_with_empty_text": empty_text,
            "queries_without_relevant_judgment": sum(1 for q in ds.queries if q.id not in judged),
            "queries_with_empty_vector": empty_vectors,
            "qrels": sum(len(v) for v in ds.qrels.values()),
            "fingerprints": ds.fingerprints,
        },
        "model": {"name": model, **enc_fp},
        "settings": {
            "k": k,
            "methods": method_list,
            "method_params": method_params,
            "metrics": list(METRICS),
            "bm25": bm25,
            "threads": threads,
            "batch_size": batch_size,
            "warmup": warmup,
            "tie_break": "score descending, then doc id ascending",
            "evaluated": "queries with a text and a judgment of grade > 0; a query with no hit scores 0",
        },
        "encoding": {
            "corpus": {
                "documents": len(docs),
                "postings": int(docs.indptr[-1]),
                "cached": enc_info["cached"],
                "seconds": enc_info["seconds"],
                "docs_per_second": enc_info["docs_per_second"],
                "torch_threads": enc_info.get("torch_threads"),
                "cache_key": enc_info["key"],
            },
            "queries": {"count": len(qids), "ms": latency_stats(q_times)},
        },
        "index": {
            "path": index_dir,
            "build_seconds": build_s,
            "size_bytes": index.size_bytes(),
            "postings": index.n_postings,
            "terms": index.n_terms,
            "quantization": index.quantization,
        },
        "systems": systems,
        "bm25": bm25_info,
        "peak_rss_bytes": peak_rss_bytes(),
        "environment": env,
        "runs": {name: os.path.join(RUNS_DIR, f"{name}.trec") for name in runs},
        "seconds": time.time() - started,
    }
    report["leaderboard"] = export_leaderboard(output, report, runs, method_list)
    with open(os.path.join(output, "report.json"), "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2, sort_keys=False)
        f.write("\n")
    with open(os.path.join(output, "report.md"), "w", encoding="utf-8") as f:
        f.write(report_markdown(report))
    if plots:
        report["plots"] = write_plots(output, report, per_query)
        with open(os.path.join(output, "report.json"), "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)
            f.write("\n")
    return report
