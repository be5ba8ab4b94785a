"""Speed of the living index on a synthetic collection (run it on a quiet machine).

Measures, and writes as one JSON record (plus a Markdown table):

- adds: documents per second through ``index.add`` (vectors already in memory, one core), and the
  seconds of one ``commit()`` of 1,000 documents;
- search over 10 segments with 10% of the documents deleted vs the same documents force-merged
  into one segment (p50 / mean ms per query, per method); the ratio from alternating passes over
  both at once (a copy of the 10-segment index stays open beside the merged one), since single
  passes minutes apart move with the machine;
- filters on the merged index: a 10%- and a 1%-selective filter vs no filter (latency, and
  recall@10 of the approximate methods against exact search with the same filter);
- merge: force-merging the 10 segments vs building the collection from scratch (seconds).

    NUMBA_NUM_THREADS=1 python benchmarks/bench_living_index.py --docs 1000000 --json living.json

Issue 18's targets: 10 segments + 10% deleted <= 1.2x merged; exact with a 10% filter <= 1.0x
unfiltered; >= 50,000 adds/s; commit of 1,000 docs < 0.5 s; merge <= build from scratch.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
from typing import Any

import numpy as np


def collection(n_docs: int, n_terms: int, nnz: int, seed: int) -> tuple[Any, np.ndarray]:
    """A CSR matrix with Zipf-distributed terms (``nnz`` per document on average) and a bucket
    number 0..99 per document (the metadata the filters select on)."""
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    lens = rng.poisson(nnz, n_docs).clip(1, n_terms)
    indptr = np.zeros(n_docs + 1, np.int64)
    np.cumsum(lens, out=indptr[1:])
    terms = (rng.zipf(1.3, int(indptr[-1])) - 1) % n_terms
    weights = rng.gamma(2.0, 0.5, int(indptr[-1])).astype(np.float32) + 0.01
    m = sp.csr_matrix((weights, terms.astype(np.int32), indptr), shape=(n_docs, n_terms))
    m.sum_duplicates()
    return m, rng.integers(0, 100, n_docs)


SEGMENT_PASSES = 5  # alternating passes over the 10 segments and the merged index, per method
FILTER_PASSES = 5  # alternating passes of the filter target (unfiltered and 10%)


def latency(ix: Any, queries: list, method: str, flt: Any = None, k: int = 10) -> dict[str, float]:
    ix.search(queries[:5], k=k, method=method, filter=flt)  # warm
    times = []
    for q in queries:
        t0 = time.perf_counter()
        ix.search([q], k=k, method=method, filter=flt)
        times.append(time.perf_counter() - t0)
    return {"p50_ms": float(np.median(times) * 1e3), "mean_ms": float(np.mean(times) * 1e3)}


def work_counts(ix: Any, queries: list, method: str, flt: Any = None, k: int = 10) -> dict[str, float]:
    """Work counts (machine-independent, unlike latency): segments searched per query, and how
    the searched segments were answered (the method, exact, or exact over the filter's selected
    documents), from the plan the living index makes per segment."""
    from lsr.index import segments as seg_mod

    plans: list[str] = []
    real_search, real_plan = seg_mod.Snapshot._search_segment, seg_mod.plan_segment

    def plan(*a: Any, **kw: Any) -> str:
        plans.append(real_plan(*a, **kw))
        return plans[-1]

    seg_mod.plan_segment = plan
    try:
        for q in queries:
            ix.search([q], k=k, method=method, filter=flt)
    finally:
        seg_mod.plan_segment = real_plan
    assert seg_mod.Snapshot._search_segment is real_search
    n = len(queries)
    out = {"segments_searched_per_query": len(plans) / n}
    for how in sorted(set(plans)):
        out[f"segments_{how}_per_query"] = plans.count(how) / n
    return out


def recall(ix: Any, queries: list, method: str, flt: Any, k: int = 10) -> float:
    exact = ix.search(queries, k=k, method="exact", filter=flt)
    got = ix.search(queries, k=k, method=method, filter=flt)
    r = [len(set(g.ids) & set(e.ids)) / len(e.ids) for g, e in zip(got, exact, strict=True) if e.ids]
    return float(np.mean(r)) if r else 1.0


def run(n_docs: int, n_terms: int, nnz: int, n_queries: int, seed: int = 0) -> dict[str, Any]:
    from lsr.index import build_index, open_index
    from lsr.vectors import SparseBatch, Vocabulary

    work = tempfile.mkdtemp(prefix="lsr-living-bench-")
    vocab = Vocabulary([f"t{i}" for i in range(n_terms)])
    docs, bucket = collection(n_docs, n_terms, nnz, seed)
    ids = [f"d{i}" for i in range(n_docs)]
    qm, _ = collection(n_queries, n_terms, 20, seed + 1)
    queries = [
        {f"t{t}": float(w) for t, w in zip(qm.indices[a:b], qm.data[a:b], strict=True)}
        for a, b in zip(qm.indptr[:-1], qm.indptr[1:], strict=True)
    ]
    out: dict[str, Any] = {
        "docs": n_docs,
        "terms": n_terms,
        "nnz_per_doc": nnz,
        "queries": n_queries,
        "cpu": platform.processor() or platform.machine(),
        "numba_threads": int(os.environ.get("NUMBA_NUM_THREADS", "0") or 0),
    }
    try:
        out["commit"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        pass
    try:
        # build from scratch: the yardstick for adds and merges
        t0 = time.perf_counter()
        build_index(docs, os.path.join(work, "scratch"), vocab=vocab, ids=ids)
        out["build_seconds"] = time.perf_counter() - t0
        # 10 segments: a base of 10%, then 9 adds of 10% each, one commit each
        tenth = n_docs // 10
        base = os.path.join(work, "living")
        build_index(docs[:tenth], base, vocab=vocab, ids=ids[:tenth])
        ix = open_index(base, writable=True, merge_factor=1000, parts_min_docs=max(1, tenth // 2))
        meta = [{"bucket": int(b)} for b in bucket]
        add_s = commit_s = 0.0
        for s in range(1, 10):
            a, b = s * tenth, (s + 1) * tenth if s < 9 else n_docs
            m = docs[a:b]
            batch = SparseBatch(m.indptr, m.indices, m.data, vocab, ids[a:b])
            t0 = time.perf_counter()
            ix.add(batch, metadata=meta[a:b])
            add_s += time.perf_counter() - t0
            t0 = time.perf_counter()
            ix.commit()
            commit_s += time.perf_counter() - t0
        out["add_docs_per_s"] = (n_docs - tenth) / add_s
        out["commit_seconds_per_segment"] = commit_s / 9
        rng = np.random.default_rng(seed + 2)
        ix.delete([ids[i] for i in rng.choice(n_docs, n_docs // 10, replace=False)])
        ix.commit()
        out["segments_before_merge"] = len(ix.segments)
        out["search_10_segments_10pct_deleted"] = {m: latency(ix, queries, m) for m in ix.methods}
        out["work_10_segments_10pct_deleted"] = {m: work_counts(ix, queries, m) for m in ix.methods}
        # the 10 segments as committed, kept open beside the merged index for alternating passes
        shutil.copytree(base, os.path.join(work, "ten_segments"), ignore=shutil.ignore_patterns("write.lock"))
        ten = open_index(os.path.join(work, "ten_segments"))
        t0 = time.perf_counter()
        ix.merge(max_segments=1)
        out["merge_seconds"] = time.perf_counter() - t0
        out["search_merged"] = {m: latency(ix, queries, m) for m in ix.methods}
        # the segments target from alternating passes (10 segments, merged, then merged, 10
        # segments, ...), the median p50 of each: in one session single passes minutes apart read
        # exact search over the segments at 1.09, 1.20 and 1.24x the merged index with no change
        # to that code, while the machine's speed drifted (BENCHMARKS.md, 2026-12-01, night)
        seg_passes: dict[str, dict[str, list[float]]] = {}
        for m in ix.methods:
            seg_passes[m] = {"segments": [], "merged": []}
            order = [("segments", ten), ("merged", ix)]
            for r in range(SEGMENT_PASSES):
                for name, target in order if r % 2 == 0 else order[::-1]:
                    seg_passes[m][name].append(latency(target, queries, m)["p50_ms"])
        out["segment_passes_p50_ms"] = seg_passes
        ten.close()
        flt10, flt1 = {"bucket": {"lt": 10}}, {"bucket": 7}
        out["filters"] = {
            name: {
                m: {
                    **latency(ix, queries, m, flt),
                    **({"recall@10": recall(ix, queries, m, flt)} if m != "exact" else {}),
                }
                for m in ix.methods
            }
            for name, flt in (("none", None), ("10%", flt10), ("1%", flt1))
        }
        # the filter target from alternating passes (none, 10%, then 10%, none, ...), the median p50
        # of each: single passes minutes apart measured the same unfiltered search at 3.83 and
        # 4.30 ms (run q, BENCHMARKS.md), more than the target's margin
        passes: dict[str, list[float]] = {"none": [], "10%": []}
        for r in range(FILTER_PASSES):
            order = [("none", None), ("10%", flt10)]
            for name, flt in order if r % 2 == 0 else order[::-1]:
                passes[name].append(latency(ix, queries, "exact", flt)["p50_ms"])
        out["filter_passes_p50_ms"] = passes
        out["work_filters"] = {
            name: {m: work_counts(ix, queries, m, flt) for m in ix.methods}
            for name, flt in (("10%", flt10), ("1%", flt1))
        }
        small = docs[:1000]
        ix.add(SparseBatch(small.indptr, small.indices, small.data, vocab, [f"c{i}" for i in range(1000)]))
        t0 = time.perf_counter()
        ix.commit()
        out["commit_1000_seconds"] = time.perf_counter() - t0
        ix.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    seg, mer = out["search_10_segments_10pct_deleted"], out["search_merged"]
    sp = out["segment_passes_p50_ms"]
    out["ratios"] = {
        "segments_vs_merged_p50": {
            m: float(np.median(sp[m]["segments"])) / float(np.median(sp[m]["merged"])) for m in sp
        },
        # the single-pass ratio (the target's figure until 2026-12-01, night)
        "segments_vs_merged_p50_one_pass": {m: seg[m]["p50_ms"] / mer[m]["p50_ms"] for m in mer},
        "exact_10pct_filter_vs_none_p50": float(np.median(out["filter_passes_p50_ms"]["10%"]))
        / float(np.median(out["filter_passes_p50_ms"]["none"])),
        # the single-pass ratio of the table (the target's figure until 2026-12-01, afternoon)
        "exact_10pct_filter_vs_none_p50_one_pass": out["filters"]["10%"]["exact"]["p50_ms"]
        / out["filters"]["none"]["exact"]["p50_ms"],
        "merge_vs_build": out["merge_seconds"] / out["build_seconds"],
    }
    return out


def markdown(rec: dict[str, Any]) -> str:
    lines = [
        f"Living index, {rec['docs']:,} synthetic documents, {rec['queries']} queries",
        "",
        f"- adds: {rec['add_docs_per_s']:,.0f} docs/s; commit of 1,000 docs: {rec['commit_1000_seconds']:.3f} s",
        f"- merge of {rec['segments_before_merge']} segments: {rec['merge_seconds']:.1f} s vs build {rec['build_seconds']:.1f} s",
        f"- exact, 10% filter / unfiltered: {rec['ratios']['exact_10pct_filter_vs_none_p50']:.2f} (median p50s of "
        f"{len(rec['filter_passes_p50_ms']['none'])} alternating passes each; one pass, as in the table: "
        f"{rec['ratios']['exact_10pct_filter_vs_none_p50_one_pass']:.2f})",
        f"- 10 segments + 10% deleted / merged: the ratio of the median p50s of "
        f"{SEGMENT_PASSES} alternating passes over each (the target's figure); the p50s and the "
        "one-pass ratio are from one pass over each, minutes apart",
        "",
        "| method | 10 seg + 10% del p50 ms | merged p50 ms | ratio, one pass | ratio, alternating passes | 10% filter p50 | 1% filter p50 | recall@10 1% |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for m, v in rec["search_merged"].items():
        s = rec["search_10_segments_10pct_deleted"][m]
        f = rec["filters"]
        lines.append(
            f"| {m} | {s['p50_ms']:.2f} | {v['p50_ms']:.2f} | {s['p50_ms'] / v['p50_ms']:.2f} | "
            f"{rec['ratios']['segments_vs_merged_p50'][m]:.2f} | "
            f"{f['10%'][m]['p50_ms']:.2f} | {f['1%'][m]['p50_ms']:.2f} | {f['1%'][m].get('recall@10', 1.0):.3f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--docs", type=int, default=1_000_000)
    p.add_argument("--terms", type=int, default=30_000)
    p.add_argument("--nnz", type=int, default=60)
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    rec = run(args.docs, args.terms, args.nnz, args.queries)
    print(markdown(rec))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rec, f, indent=1)
        with open(os.path.splitext(args.json)[0] + ".md", "w") as f:
            f.write(markdown(rec))


if __name__ == "__main__":
    main()
