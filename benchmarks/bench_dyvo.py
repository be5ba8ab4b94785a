"""DyVo on SciFact: the bundled SPLADE with and without entities, same run (issue #7's numbers).

1. Mine an entity store from the corpus (``lsr.entities.build_entity_store``: recurring multi-word
   terms and names, embedded with the model's input word-piece embeddings).
2. Encode the corpus with SPLADE (through ``lsr.eval.cache.encode_corpus_cached``: a second run, or
   ``lsr eval`` before it, reuses the vectors). DyVo's document vectors are those SPLADE vectors plus
   the entity weights of ``DyVoEncoder.encode_entity_weights`` (backbone + DyVo head, no vocabulary
   projection): DyVo's word-piece part *is* SPLADE's (tests/test_dyvo.py checks it within 1e-5), and
   the script checks the merge against a full ``DyVoEncoder.encode_documents`` on ``--check-docs``
   documents and records the largest difference. ``--full-dyvo`` encodes the corpus with DyVo end to end.
3. Encode the judged test queries one at a time with each encoder (full encoders, timed; the two
   encoders take turns query by query, so load changes on a shared machine hit both alike).
4. Build an exact-search index of each, time each query alone (``lsr.eval.timing.time_method``, after a warm-up),
   evaluate with ranx (nDCG@10, Recall@100, MRR@10), and measure the entity terms' share of each
   vector (of its non-zeros and of its weight mass; documents and queries).

    python benchmarks/bench_dyvo.py --output benchmarks/results/dyvo_scifact        # .json and .md
    python benchmarks/bench_dyvo.py --limit 300 --output /tmp/dyvo_quick       # a quick look (300 documents)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from typing import Any

import numpy as np

from lsr.eval.environment import cpu_name, git_commit


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="scifact", help="BEIR folder or bundled name (default scifact)")
    p.add_argument("--model", default="splade-tiny")
    p.add_argument(
        "--output", default="benchmarks/results/dyvo_scifact", help="writes OUTPUT.json and OUTPUT.md"
    )
    p.add_argument("--max-entities", type=int, default=20_000)
    p.add_argument("--min-df", type=int, default=3)
    p.add_argument("--top-n", type=int, default=32, help="candidate entities per text")
    p.add_argument("--k", type=int, default=1000)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--limit", type=int, default=None, help="only the first N documents (a quick look)")
    p.add_argument("--check-docs", type=int, default=64, help="documents encoded in full to check the merge")
    p.add_argument("--full-dyvo", action="store_true", help="encode the corpus with DyVo end to end")
    p.add_argument("--cache-dir", default=None, help="encoding cache (default: lsr eval's)")
    p.add_argument("--torch-threads", type=int, default=None)
    return p.parse_args(argv)


def entity_share(batch: Any, first_entity: int) -> dict[str, float]:
    """Mean over non-empty vectors of the entity terms' share of the non-zeros and of the weight mass,
    the share of vectors holding an entity, and the mean number of entity terms per vector."""
    nnz_share, mass_share, n_ent = [], [], []
    for i in range(len(batch)):
        idx, w = batch.row(i)
        if len(idx) == 0:
            continue
        ent = idx >= first_entity
        nnz_share.append(ent.mean())
        mass_share.append(w[ent].sum() / w.sum())
        n_ent.append(int(ent.sum()))
    return {
        "vectors": len(nnz_share),
        "nnz_share": float(np.mean(nnz_share)),
        "mass_share": float(np.mean(mass_share)),
        "with_entities": float(np.mean(np.array(n_ent) > 0)),
        "entities_per_vector": float(np.mean(n_ent)),
        "nnz_per_vector": float(np.mean(np.diff(batch.indptr))),
    }


def merge(splade_docs: Any, ent_docs: Any, vocab: Any) -> Any:
    """Row-wise union of word-piece rows (ids < V) and entity rows (ids >= V) over ``vocab``."""
    from lsr.vectors import SparseBatch

    n = len(splade_docs)
    lens = np.diff(splade_docs.indptr) + np.diff(ent_docs.indptr)
    indptr = np.zeros(n + 1, np.int64)
    np.cumsum(lens, out=indptr[1:])
    idx = np.empty(indptr[-1], np.int32)
    w = np.empty(indptr[-1], np.float32)
    for i in range(n):
        a_i, a_w = splade_docs.row(i)
        b_i, b_w = ent_docs.row(i)
        s = indptr[i]
        idx[s : s + len(a_i)], w[s : s + len(a_i)] = a_i, a_w
        idx[s + len(a_i) : indptr[i + 1]], w[s + len(a_i) : indptr[i + 1]] = b_i, b_w
    return SparseBatch(indptr, idx, w, vocab, list(splade_docs.ids))


def limited_dataset(dataset: str, limit: int, tmp: str) -> str:
    """A BEIR folder with the first ``limit`` documents of ``dataset`` (queries and qrels as they are)."""
    from lsr.eval.datasets import beir_folder
    from lsr.vectors import open_text

    f = beir_folder(dataset)
    os.makedirs(os.path.join(tmp, "qrels"))
    with open_text(f.corpus) as src, open(os.path.join(tmp, "corpus.jsonl"), "w", encoding="utf-8") as dst:
        for i, line in enumerate(src):
            if i >= limit:
                break
            dst.write(line)
    shutil.copy(f.queries, os.path.join(tmp, "queries.jsonl"))
    shutil.copy(f.qrels, os.path.join(tmp, "qrels", "test.tsv"))
    return tmp


def encode_queries_interleaved(encoders: dict[str, Any], texts: list[str]) -> dict[str, tuple[list, list]]:
    """Each query encoded alone by each encoder in turn (query 1 by all, then query 2, ...), so a
    change in the machine's load during the run weighs on every encoder alike: (singles, seconds)."""
    out: dict[str, tuple[list, list]] = {name: ([], []) for name in encoders}
    for enc in encoders.values():
        enc.encode_queries(texts[:1])  # warm-up
    for t in texts:
        for name, enc in encoders.items():
            t1 = time.perf_counter()
            out[name][0].append(enc.encode_queries([t]))
            out[name][1].append(time.perf_counter() - t1)
    return out


def run_system(
    name: str,
    enc: Any,
    docs: Any,
    qids: list[str],
    encoded: tuple[list, list],
    ds: Any,
    args: Any,
    tmp: str,
) -> dict[str, Any]:
    """Index ``docs``, time each (already encoded) query's exact search alone, evaluate."""
    from lsr.eval.metrics import evaluate_run
    from lsr.eval.runs import results_to_run
    from lsr.eval.timing import latency_stats, time_method
    from lsr.index import build_index, open_index
    from lsr.vectors import concat_batches

    t0 = time.perf_counter()
    path = build_index(docs, os.path.join(tmp, f"ix-{name}"), encoder=enc, methods=["exact"])
    build_s = time.perf_counter() - t0
    index = open_index(path)
    singles, q_times = encoded
    qbatch = concat_batches(singles)
    results, eff = time_method(
        index, singles, qbatch, args.k, "exact", {}, args.warmup, 1, show_progress=False
    )
    run = results_to_run(qids, results)
    metrics, per_query = evaluate_run(
        run, {q: ds.judged[q] for q in qids}, ("ndcg@10", "recall@100", "mrr@10")
    )
    out: dict[str, Any] = {
        "metrics": metrics,
        "latency_ms": eff["latency_ms"],
        "qps": eff["qps"],
        "query_encoding_ms": latency_stats(q_times),
        "index_bytes": index.size_bytes(),
        "index_terms": index.n_terms,
        "index_postings": index.n_postings,
        "build_seconds": build_s,
        "_per_query": per_query["ndcg@10"],
        "_queries": qbatch,
    }
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    import lsr
    from lsr.encoders.dyvo import DyVoEncoder
    from lsr.entities import build_entity_store
    from lsr.eval.cache import default_cache_dir, encode_corpus_cached
    from lsr.eval.datasets import load_dataset
    from lsr.texts import iter_texts

    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    torch_threads = torch.get_num_threads()  # read now: a library may change it later in the run
    started = time.time()
    tmp = tempfile.mkdtemp(prefix="bench-dyvo-")
    say = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    try:
        dataset = (
            limited_dataset(args.dataset, args.limit, os.path.join(tmp, "data"))
            if args.limit
            else args.dataset
        )
        cache_dir = os.path.abspath(args.cache_dir or default_cache_dir())
        ds = load_dataset(dataset, cache_dir=cache_dir)
        by_id = {q.id: q for q in ds.queries}
        qids = sorted(q for q in ds.judged if q in by_id and by_id[q].text.strip())
        texts = [by_id[q].text for q in qids]
        splade = lsr.load_encoder(args.model)

        say(f"[1/4] mining entities from {ds.corpus}")
        t0 = time.perf_counter()
        store = build_entity_store(
            (r.full_text for r in iter_texts(ds.corpus)),
            splade,
            max_entities=args.max_entities,
            min_df=args.min_df,
        )
        mine_s = time.perf_counter() - t0
        dyvo = DyVoEncoder.from_splade(splade, store, entity_top_n=args.top_n)
        V = dyvo.vocab_size
        say(
            f"      {len(store)} entities in {mine_s:.1f} s; e.g. {', '.join(e.name for e in store.entities[:8])}"
        )

        say("[2/4] SPLADE corpus vectors (cached after the first run)")
        sp_docs, sp_info = encode_corpus_cached(splade, ds, cache_dir)
        where = "from the cache" if sp_info["cached"] else "encoded in {:.0f} s".format(sp_info["seconds"])
        say(f"      {where}")
        say("[3/4] DyVo corpus vectors")
        corpus = list(iter_texts(ds.corpus))
        full_texts = [r.full_text for r in corpus]
        t0 = time.perf_counter()
        if args.full_dyvo:
            dv_docs = dyvo.encode_documents(full_texts, show_progress=True)
            dv_docs.ids = [r.id for r in corpus]
            how = "full DyVoEncoder.encode_documents"
        else:
            ents = dyvo.encode_entity_weights(full_texts)
            sp_on_dv = lsr.SparseBatch(sp_docs.indptr, sp_docs.indices, sp_docs.data, dyvo.vocab, sp_docs.ids)
            dv_docs = merge(sp_on_dv, ents, dyvo.vocab)
            how = "SPLADE corpus vectors + DyVoEncoder.encode_entity_weights"
        dv_seconds = time.perf_counter() - t0
        if sp_docs.ids != [r.id for r in corpus]:
            raise SystemExit("cached SPLADE vectors are not in corpus order")
        n_check = min(args.check_docs, len(corpus))
        check = dyvo.encode_documents(full_texts[:n_check])
        diff = np.abs(check.to_scipy().toarray() - dv_docs.select(range(n_check)).to_scipy().toarray()).max()
        say(f"      {how}: {dv_seconds:.0f} s; max |full encode - merged| on {n_check} docs = {diff:.2e}")

        say(f"[4/4] indexes, {len(qids)} queries, exact search, evaluation")
        encoded = encode_queries_interleaved({"splade": splade, "dyvo": dyvo}, texts)
        systems = {
            "splade": run_system("splade", splade, sp_docs, qids, encoded["splade"], ds, args, tmp),
            "dyvo": run_system("dyvo", dyvo, dv_docs, qids, encoded["dyvo"], ds, args, tmp),
        }
        dq = systems["dyvo"]["_queries"]
        share = {"documents": entity_share(dv_docs, V), "queries": entity_share(dq, V)}
        pq_s, pq_d = systems["splade"].pop("_per_query"), systems["dyvo"].pop("_per_query")
        for s in systems.values():
            s.pop("_queries")
        delta = np.array([pq_d.get(q, 0.0) - pq_s.get(q, 0.0) for q in qids])
        report = {
            "dataset": args.dataset if not args.limit else f"{args.dataset} (first {args.limit} documents)",
            "model": args.model,
            "documents": len(corpus),
            "queries": len(qids),
            "k": args.k,
            "entity_store": {
                "entities": len(store),
                "dim": store.dim,
                "fingerprint": store.fingerprint(),
                "mine_seconds": mine_s,
                "max_entities": args.max_entities,
                "min_df": args.min_df,
                "examples": [e.name for e in store.entities[:20]],
            },
            "dyvo": {
                "config": {k: v for k, v in dyvo.config().items() if k != "model_path"},
                "head": "untrained (entity embedding = mean input word-piece embedding; b_e = mean decoder bias)",
                "document_vectors": how,
                "document_entity_seconds": dv_seconds,
                "merge_check": {"documents": n_check, "max_abs_diff": float(diff)},
            },
            "splade_corpus_encoding": {k: sp_info.get(k) for k in ("cached", "seconds", "docs_per_second")},
            "systems": systems,
            "entity_share": share,
            "ndcg10_per_query_delta": {
                "better": int((delta > 1e-9).sum()),
                "worse": int((delta < -1e-9).sum()),
                "same": int((np.abs(delta) <= 1e-9).sum()),
            },
            "environment": {
                "cpu": cpu_name(),
                "torch_threads": torch_threads,
                "git_commit": git_commit(),
                "command": "python benchmarks/bench_dyvo.py "
                + " ".join(argv if argv is not None else sys.argv[1:]),
                "seconds": time.time() - started,
            },
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output + ".json", "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    md = markdown(report)
    with open(args.output + ".md", "w", encoding="utf-8") as f:
        f.write(md)
    print(md)
    return 0


def markdown(r: dict[str, Any]) -> str:
    s, d = r["systems"]["splade"], r["systems"]["dyvo"]
    es = r["entity_store"]
    lines = [
        f"# DyVo on {r['dataset']}: {r['model']} with and without entities",
        "",
        f"{r['documents']} documents, {r['queries']} judged test queries, exact search, top {r['k']}. "
        f"Entities mined from the corpus: {es['entities']} (min_df {es['min_df']}, embeddings = mean input "
        f"word-piece embedding, dim {es['dim']}, {es['mine_seconds']:.0f} s); DyVo head untrained; "
        f"top-{r['dyvo']['config']['entity_top_n']} candidates per text.",
        "",
        "| system | nDCG@10 | Recall@100 | MRR@10 | index MB | terms | postings | exact p50 ms | p99 ms | query enc. ms (p50) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, x in (("SPLADE (no entities)", s), ("DyVo (SPLADE + entities)", d)):
        m = x["metrics"]
        lines.append(
            f"| {name} | {m['ndcg@10']:.4f} | {m['recall@100']:.4f} | {m['mrr@10']:.4f} | "
            f"{x['index_bytes'] / 1e6:.1f} | {x['index_terms']} | {x['index_postings']} | "
            f"{x['latency_ms']['p50']:.3f} | {x['latency_ms']['p99']:.3f} | {x['query_encoding_ms']['p50']:.1f} |"
        )
    lines += ["", "Entity terms' share of each DyVo vector (mean over vectors):", ""]
    lines += [
        "| vectors | share of non-zeros | share of weight mass | with >= 1 entity | entities per vector | non-zeros per vector |"
    ]
    lines += ["|---|---|---|---|---|---|"]
    for kind in ("documents", "queries"):
        x = r["entity_share"][kind]
        lines.append(
            f"| {kind} | {x['nnz_share']:.3f} | {x['mass_share']:.3f} | {x['with_entities']:.3f} | "
            f"{x['entities_per_vector']:.1f} | {x['nnz_per_vector']:.1f} |"
        )
    pq = r["ndcg10_per_query_delta"]
    lines += [
        "",
        f"Per query nDCG@10, DyVo vs SPLADE: {pq['better']} better, {pq['worse']} worse, {pq['same']} the same.",
        f"DyVo document vectors: {r['dyvo']['document_vectors']} ({r['dyvo']['document_entity_seconds']:.0f} s); "
        f"checked against a full encode on {r['dyvo']['merge_check']['documents']} documents: max difference "
        f"{r['dyvo']['merge_check']['max_abs_diff']:.1e}.",
        f"Machine: {r['environment']['cpu']}, {r['environment']['torch_threads']} torch threads; commit "
        f"{r['environment']['git_commit'][:10]}; `{r['environment']['command']}`.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
