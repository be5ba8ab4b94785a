"""``lsr eval``: the BEIR harness on tiny hand-made collections and a small SciFact slice (fast), and
on the full SciFact against a brute-force scipy reference (slow)."""

from __future__ import annotations

import gzip
import json
import math
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from lsr.errors import LsrError
from lsr.eval import harness
from lsr.index.searcher import METHODS

from conftest import SCIFACT

DOCS = [
    ("d1", "Vitamin D", "Vitamin D supplements reduce fractures in elderly people."),
    ("d2", "", "Deep sea fish live in darkness."),
    ("d3", "Empty", ""),  # title only
    ("d4", "", ""),  # empty document
    ("d5", "Bone health", "Calcium and vitamin D for bone density."),
    ("d6", "Fish oil", "Omega-3 fatty acids from fish oil and heart disease."),
    ("d7", "Vitamin D", "Vitamin D supplements reduce fractures in elderly people."),  # d1's twin: a tie
]
QUERIES = [
    ("q1", "does vitamin d prevent fractures"),
    ("q2", "fish in the deep sea"),
    ("q3", "heart disease and omega 3"),
    ("q4", "an unjudged query about bones"),
    ("q5", "only non relevant judgments"),
    ("q6", "   "),  # judged, but empty
]
QRELS = [  # graded; q5 has only a 0 grade; q9 is not in queries.jsonl
    ("q1", "d1", 2),
    ("q1", "d5", 1),
    ("q1", "d7", 1),
    ("q2", "d2", 1),
    ("q3", "d6", 3),
    ("q3", "d4", 1),
    ("q5", "d1", 0),
    ("q6", "d2", 1),
    ("q9", "d1", 1),
]


def make_beir(root: Path, docs=DOCS, queries=QUERIES, qrels=QRELS, gz: bool = False) -> Path:
    (root / "qrels").mkdir(parents=True, exist_ok=True)
    lines = "".join(json.dumps({"_id": i, "title": t, "text": x}) + "\n" for i, t, x in docs)
    if gz:
        with gzip.open(root / "corpus.jsonl.gz", "wt", encoding="utf-8") as f:
            f.write(lines)
    else:
        (root / "corpus.jsonl").write_text(lines, encoding="utf-8")
    (root / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": i, "text": x}) + "\n" for i, x in queries), encoding="utf-8"
    )
    (root / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t{s}\n" for q, d, s in qrels), encoding="utf-8"
    )
    return root


def quiet(_: str) -> None:
    pass


def ndcg10(run: dict, qrels: dict) -> float:
    """Reference nDCG@10 in the run's own order (linear graded gains, log2 discount, as trec_eval's
    ndcg_cut; trec_eval itself would re-break score ties by doc id descending)."""
    vals = []
    for q, judged in qrels.items():
        ranked = harness.ranked(run.get(q, {}).items())[:10]
        dcg = sum(judged.get(d, 0) / math.log2(i + 2) for i, (d, _) in enumerate(ranked))
        ideal = sorted((g for g in judged.values() if g > 0), reverse=True)[:10]
        vals.append(dcg / sum(g / math.log2(i + 2) for i, g in enumerate(ideal)))
    return sum(vals) / len(vals)


def reference_metrics(run: dict, qrels: dict) -> dict[str, float]:
    """Recall@100, Recall@1000, MRR@10 and MAP by hand from a run file (relevant = grade > 0; the run
    in its file order; a query with no hit scores 0)."""
    out: dict[str, list[float]] = {"recall@100": [], "recall@1000": [], "mrr@10": [], "map": []}
    for q, judged in qrels.items():
        rel = {d for d, g in judged.items() if g > 0}
        docs = [d for d, _ in run.get(q, [])]
        for k in (100, 1000):
            out[f"recall@{k}"].append(len(rel & set(docs[:k])) / len(rel))
        ranks = [i for i, d in enumerate(docs, 1) if d in rel]
        out["mrr@10"].append(1 / ranks[0] if ranks and ranks[0] <= 10 else 0.0)
        out["map"].append(sum(n / r for n, r in enumerate(ranks, 1)) / len(rel))
    return {m: sum(v) / len(v) for m, v in out.items()}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """One full run (BM25 with bm25s, both fusions, plots) and a second identical run, same cache."""
    base = tmp_path_factory.mktemp("tiny")
    data = make_beir(base / "data")
    cache = base / "cache"
    kw = dict(k=10, cache_dir=str(cache), bm25="bm25s", show_progress=False, log=quiet, warmup=2)
    r1 = harness.run_eval(str(data), "splade-tiny", str(base / "out1"), **kw)
    r2 = harness.run_eval(str(data), "splade-tiny", str(base / "out2"), plots=False, **kw)
    return base, r1, r2


@pytest.mark.system  # a full harness run
def test_report_counts_on_an_odd_collection(tiny):
    base, r1, _ = tiny
    d = r1["dataset"]
    assert d["documents"] == 7
    assert d["empty_documents"] == 1  # d4 (still indexed: SPLADE gives it a vector from its special tokens)
    assert d["queries"] == 6
    assert d["judged_queries"] == 5  # q1 q2 q3 q6 q9 (q5 has no grade > 0)
    assert d["evaluated_queries"] == 3  # q1 q2 q3: q6 is empty, q9 has no text
    assert d["judged_queries_without_text"] == ["q9"]
    assert d["judged_queries_with_empty_text"] == ["q6"]
    assert d["fingerprints"]["corpus_sha256"] == harness.sha256_file(str(base / "data" / "corpus.jsonl"))
    assert set(r1["systems"]) == set(METHODS) | {"bm25", "fusion_rrf", "fusion_minmax_sum"}
    assert r1["bm25"]["backend"] in ("bm25s", "pyserini")
    qrels, runs = harness.load_eval_dir(str(base / "out1"))
    for name, s in r1["systems"].items():
        assert set(s["metrics"]) == set(harness.METRICS), name
        want = reference_metrics(runs[name], qrels)
        for m in ("recall@100", "recall@1000", "mrr@10", "map"):
            assert s["metrics"][m] == pytest.approx(want[m], abs=1e-9), (name, m)
    ex = r1["systems"]["exact"]
    assert ex["recall_vs_exact"] == 1.0
    assert ex["efficiency"]["latency_ms"]["p50"] > 0 and ex["efficiency"]["qps"] > 0
    assert r1["index"]["size_bytes"] > 0 and r1["peak_rss_bytes"] > 0
    env = r1["environment"]
    assert (
        env["cpu"]
        and env["versions"]["ranx"]
        and env["versions"]["torch"]
        and env["threads"]["search_batch"] == 1
    )
    for f in ("report.json", "report.md", "qrels.tsv", "recall_latency.png", "ndcg_per_query.png"):
        assert (base / "out1" / f).is_file(), f
    md = (base / "out1" / "report.md").read_text()
    assert "| lsr exact |" in md and "BM25" in md and "fusion rrf" in md
    assert (
        json.loads((base / "out1" / "report.json").read_text())["systems"]["exact"]["metrics"]
        == ex["metrics"]
    )


@pytest.mark.system  # a full harness run
def test_ranx_metrics_agree_with_the_reference_ndcg(tiny):
    base, r1, _ = tiny
    qrels, runs = harness.load_eval_dir(str(base / "out1"))
    assert set(qrels) == {"q1", "q2", "q3"}
    for name, run in runs.items():
        ref = ndcg10({q: dict(v) for q, v in run.items()}, qrels)
        assert r1["systems"][name]["metrics"]["ndcg@10"] == pytest.approx(ref, abs=1e-9), name


@pytest.mark.system  # a full harness run
def test_second_run_reads_the_cache_and_writes_identical_runs(tiny):
    base, r1, r2 = tiny
    assert r1["encoding"]["corpus"]["cached"] is False
    assert r2["encoding"]["corpus"]["cached"] is True
    assert r1["encoding"]["corpus"]["cache_key"] == r2["encoding"]["corpus"]["cache_key"]
    names = sorted(os.listdir(base / "out1" / "runs"))
    assert names == sorted(os.listdir(base / "out2" / "runs")) and len(names) >= 4
    for n in names:
        assert (base / "out1" / "runs" / n).read_bytes() == (base / "out2" / "runs" / n).read_bytes(), n
    assert (base / "out1" / "leaderboard" / "data.trec").read_bytes() == (
        base / "out2" / "leaderboard" / "data.trec"
    ).read_bytes()


@pytest.mark.system  # a full harness run
def test_ties_are_broken_by_doc_id(tiny):
    base, _, _ = tiny
    lines = [ln.split() for ln in (base / "out1" / "runs" / "exact.trec").read_text().splitlines()]
    q1 = [(ln[2], float(ln[4]), int(ln[3])) for ln in lines if ln[0] == "q1"]
    scores = {d: s for d, s, _ in q1}
    assert scores["d1"] == scores["d7"]  # same text, same vector
    ranks = {d: r for d, _, r in q1}
    assert ranks["d1"] + 1 == ranks["d7"]
    assert [r for _, _, r in q1] == list(range(1, len(q1) + 1))
    assert harness.ranked([("b", 1.0), ("a", 1.0), ("c", 2.0)]) == [("c", 2.0), ("a", 1.0), ("b", 1.0)]


def test_run_files_round_trip_exactly(tmp_path):
    run = {"q2": [("x", 0.1), ("y", 1 / 3)], "q1": [("a", np.float32(0.7)), ("b", 1e-8)]}
    run = {q: harness.ranked(v) for q, v in run.items()}
    p = str(tmp_path / "r.trec")
    harness.write_run(p, run, "t")
    assert harness.read_run(p) == run
    assert open(p).read().splitlines()[0].startswith("q1 Q0 a 1 ")


@pytest.mark.system  # a full harness run
def test_fusion_rows_are_ranx_rrf_and_minmax_sum(tiny):
    base, r1, _ = tiny
    _, runs = harness.load_eval_dir(str(base / "out1"))
    a, b = runs["exact"], runs["bm25"]
    # RRF by hand: sum of 1 / (60 + rank)
    for q in a:
        want = {}
        for r in (a, b):
            for rank, (d, _) in enumerate(r.get(q, []), 1):
                want[d] = want.get(d, 0.0) + 1 / (60 + rank)
        got = dict(runs["fusion_rrf"][q])
        assert got.keys() == want.keys()
        for d in want:
            assert got[d] == pytest.approx(want[d], rel=1e-9)
    # min-max sum by hand
    for q in a:
        want = {}
        for r in (a, b):
            s = dict(r.get(q, []))
            if not s:
                continue
            lo, hi = min(s.values()), max(s.values())
            for d, v in s.items():
                want[d] = want.get(d, 0.0) + ((v - lo) / (hi - lo) if hi > lo else 0.0)
        got = dict(runs["fusion_minmax_sum"][q])
        assert got.keys() == want.keys()
        for d in want:
            assert got[d] == pytest.approx(want[d], abs=1e-9)
    assert r1["systems"]["fusion_rrf"]["of"] == ["exact", "bm25"]


@pytest.mark.system  # a full harness run
def test_compare_two_outputs(tiny, capsys):
    base, _, _ = tiny
    res = harness.compare_dirs(str(base / "out1"), str(base / "out2"))
    assert {r["run"] for r in res["rows"]} >= {"exact", "bm25"}
    assert all(r["diff"] == 0 and r["p_value"] == 1.0 and not r["significant"] for r in res["rows"])
    # a worse run in a third directory: dir2 - dir1 is negative
    worse = base / "out3"
    (worse / "runs").mkdir(parents=True)
    (worse / "qrels.tsv").write_bytes((base / "out1" / "qrels.tsv").read_bytes())
    _, runs = harness.load_eval_dir(str(base / "out1"))
    harness.write_run(
        str(worse / "runs" / "exact.trec"),
        {q: [(d, -s) for d, s in v] for q, v in runs["exact"].items()},
        "rev",
    )
    res = harness.compare_dirs(str(base / "out1"), str(worse))
    nd = next(r for r in res["rows"] if r["metric"] == "ndcg@10")
    assert nd["diff"] < 0
    from scipy.stats import ttest_rel

    from lsr.eval.metrics import evaluate_run

    qrels, worse_runs = harness.load_eval_dir(str(worse))
    a = evaluate_run(runs["exact"], qrels, ("ndcg@10",))[1]["ndcg@10"]
    b = evaluate_run(worse_runs["exact"], qrels, ("ndcg@10",))[1]["ndcg@10"]
    assert nd["p_value"] == pytest.approx(
        ttest_rel([b[q] for q in qrels], [a[q] for q in qrels]).pvalue, rel=1e-6
    )
    from lsr.cli.main import main

    assert main(["eval", "--compare", str(base / "out1"), str(worse)]) == 0
    out = capsys.readouterr().out
    assert "| exact | ndcg@10 |" in out and "p-value" in out
    # different qrels cannot be compared
    (worse / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    with pytest.raises(LsrError, match="different qrels"):
        harness.compare_dirs(str(base / "out1"), str(worse))
    assert main(["eval", "--compare", str(base / "out1"), str(base / "nope")]) == 2


@pytest.mark.system  # a full harness run
def test_leaderboard_export(tiny):
    base, r1, _ = tiny
    meta = json.loads((base / "out1" / "leaderboard" / "metadata.json").read_text())
    assert meta["model"] == "splade-tiny" and meta["dataset"] == "data"
    assert meta["metrics"] == r1["systems"]["exact"]["metrics"]
    assert meta["run_file"] == "data.trec"
    assert (base / "out1" / "leaderboard" / "data.trec").read_bytes() == (
        base / "out1" / "runs" / "exact.trec"
    ).read_bytes()


def test_bad_input_is_one_clear_error(tmp_path, capsys):
    data = make_beir(tmp_path / "data")
    with pytest.raises(LsrError, match=r"unknown or unavailable method 'nope' \(available: exact"):
        harness.run_eval(str(data), "splade-tiny", str(tmp_path / "o"), methods="exact,nope", log=quiet)
    with pytest.raises(LsrError, match="no such dataset directory"):
        harness.run_eval(str(tmp_path / "missing"), "splade-tiny", str(tmp_path / "o"), log=quiet)
    from lsr.cli.main import main

    assert main(["eval", "--dataset", str(data), "--output", str(tmp_path / "o"), "--methods", "nope"]) == 2
    assert "lsr: error: unknown or unavailable method 'nope'" in capsys.readouterr().err
    assert main(["eval", "--output", str(tmp_path / "o")]) == 2
    assert main(["eval", "--dataset", str(data), "--output", str(tmp_path / "o"), "--k", "0"]) == 2
    nojudged = make_beir(tmp_path / "nj", qrels=[("q5", "d1", 0)])
    with pytest.raises(LsrError, match="no query has both a text and a relevant judgment"):
        harness.run_eval(str(nojudged), "splade-tiny", str(tmp_path / "o"), log=quiet)


def test_cache_dir_honours_env(monkeypatch, tmp_path):
    monkeypatch.setenv("LSR_CACHE_DIR", str(tmp_path / "c"))
    assert harness.default_cache_dir() == str(tmp_path / "c")
    monkeypatch.delenv("LSR_CACHE_DIR")
    assert harness.default_cache_dir().endswith(os.path.join(".cache", "lsr", "eval"))


def _in_subprocess(code: str, home: Path, tmp: Path) -> dict:
    """Run ``code`` in a fresh interpreter with IR_DATASETS_HOME=home (ir_datasets fixes its paths
    when first imported, so each case needs its own process); the code prints one JSON line."""
    import subprocess
    import sys

    env = {**os.environ, "IR_DATASETS_HOME": str(home), "LSR_CACHE_DIR": str(tmp / "cache")}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


IRDS_LOAD = """
import json, time
from lsr.errors import LsrError
from lsr.eval import harness
out = {}
for name in ("beir/scifact/test", "beir/no-such-thing/test"):
    t0 = time.perf_counter()
    try:
        ds = harness.load_dataset(name)
        from lsr.texts import iter_texts
        out[name] = {"source": ds.source, "queries": [q.id for q in ds.queries], "qrels": ds.qrels,
                     "docs": [[d.id, d.title, d.text] for d in iter_texts(ds.corpus)],
                     "fp": harness.load_dataset(name).fingerprints == ds.fingerprints}
    except LsrError as e:
        out[name] = {"error": str(e), "seconds": time.perf_counter() - t0}
print(json.dumps(out))
"""


def test_ir_datasets_offline_fails_fast(tmp_path):
    pytest.importorskip("ir_datasets")
    out = _in_subprocess(IRDS_LOAD, tmp_path / "ird", tmp_path)
    err = out["beir/scifact/test"]
    assert "beir/scifact/test: not in the ir-datasets cache" in err["error"]
    assert "source.zip is missing" in err["error"] and err["seconds"] < 10
    assert "neither a directory nor a known ir-datasets id" in out["beir/no-such-thing/test"]["error"]


def test_ir_datasets_id_from_its_cache(tmp_path):
    """With the dataset's files in the ir-datasets cache (here a BEIR zip made from the tiny
    collection), an ir-datasets id loads offline and is exported to a BEIR folder once."""
    pytest.importorskip("ir_datasets")
    home = tmp_path / "ird"
    src = make_beir(tmp_path / "scifact")
    (home / "beir" / "scifact").mkdir(parents=True)
    with zipfile.ZipFile(home / "beir" / "scifact" / "source.zip", "w") as z:
        for f in ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv"):
            z.write(src / f, f"scifact/{f}")
    got = _in_subprocess(IRDS_LOAD, home, tmp_path)["beir/scifact/test"]
    assert got["source"] == "ir_datasets"
    assert got["queries"] == ["q1", "q2", "q3", "q5", "q6"]  # ir_datasets keeps the split's queries
    assert got["qrels"]["q1"] == {"d1": 2, "d5": 1, "d7": 1}
    assert [tuple(d) for d in got["docs"]] == DOCS
    assert got["fp"] is True


@pytest.fixture(scope="module")
def scifact_slice(tmp_path_factory):
    """The first 10 judged SciFact test queries, their relevant documents and 40 others."""
    from lsr.texts import iter_texts, read_qrels

    qrels = read_qrels(SCIFACT / "qrels" / "test.tsv")
    qids = sorted(qrels)[:10]
    rel = {d for q in qids for d in qrels[q]}
    docs, others = [], 0
    for r in iter_texts(SCIFACT / "corpus.jsonl.gz"):
        if r.id in rel or others < 40:
            docs.append((r.id, r.title, r.text))
            others += r.id not in rel
    queries = [(q.id, q.text) for q in iter_texts(SCIFACT / "queries.jsonl") if q.id in qids]
    root = make_beir(
        tmp_path_factory.mktemp("slice") / "scifact_slice",
        docs=docs,
        queries=queries,
        qrels=[(q, d, s) for q in qids for d, s in qrels[q].items()],
        gz=True,
    )
    return root


def _brute_force_ndcg(report: dict, cache_dir: str, ds_root: str, k: int, **options) -> float:
    """nDCG@10 of a scipy brute-force run (docs CSR @ query CSR.T) from the cached vectors."""
    import lsr

    enc = lsr.load_encoder("splade-tiny", **options)
    z = np.load(
        os.path.join(cache_dir, "encodings", report["encoding"]["corpus"]["cache_key"], "vectors.npz")
    )
    import scipy.sparse as sp

    n = len(enc.vocab)
    docs = sp.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=(len(z["ids"]), n))
    ids = z["ids"].tolist()
    ds = harness.load_dataset(ds_root, cache_dir=cache_dir)
    qids = sorted(q for q in ds.judged if any(x.id == q for x in ds.queries))
    text = {q.id: q.text for q in ds.queries}
    qb = enc.encode_queries([text[q] for q in qids])
    qm = sp.csr_matrix((qb.data, qb.indices, qb.indptr), shape=(len(qids), n))
    scores = (docs.astype(np.float64) @ qm.astype(np.float64).T).T.toarray()
    run = {}
    for i, q in enumerate(qids):
        top = np.argsort(-scores[i], kind="stable")[:k]
        run[q] = {ids[j]: float(scores[i, j]) for j in top if scores[i, j] > 0}
    return ndcg10(run, {q: ds.judged[q] for q in qids})


@pytest.mark.system  # a full harness run
def test_exact_matches_scipy_brute_force_on_a_scifact_slice(scifact_slice, tmp_path):
    cache = str(tmp_path / "cache")
    rep = harness.run_eval(
        str(scifact_slice), "splade-tiny", str(tmp_path / "o"), methods="exact", k=100,
        cache_dir=cache, bm25="none", plots=False, show_progress=False, log=quiet,
        encoder_options={"doc_max_length": 64},  # short documents keep this test fast
    )  # fmt: skip
    assert rep["dataset"]["evaluated_queries"] == 10
    ref = _brute_force_ndcg(rep, cache, str(scifact_slice), 100, doc_max_length=64)
    assert rep["systems"]["exact"]["metrics"]["ndcg@10"] == pytest.approx(ref, abs=1e-6)
    assert rep["systems"]["exact"]["metrics"]["ndcg@10"] > 0.5


@pytest.mark.slow
def test_scifact_exact_within_0002_of_scipy_reference(tmp_path):
    """Full SciFact (encodes 5,183 documents unless the cache has them: ~3.5 min here)."""
    cache = harness.default_cache_dir()
    rep = harness.run_eval(
        "scifact", "splade-tiny", str(tmp_path / "o"), methods="exact", k=1000,
        cache_dir=cache, bm25="bm25s", show_progress=False, log=quiet,
    )  # fmt: skip
    got = rep["systems"]["exact"]["metrics"]["ndcg@10"]
    ref = _brute_force_ndcg(rep, cache, str(SCIFACT), 1000)
    assert abs(got - ref) <= 0.002
    assert got == pytest.approx(0.6436, abs=0.002)
    assert rep["dataset"]["evaluated_queries"] == 300 and rep["dataset"]["documents"] == 5183
    assert rep["systems"]["bm25"]["metrics"]["ndcg@10"] > 0.6


@pytest.mark.slow
def test_cranfield_graded_qrels_and_empty_documents(shared_dir, tmp_path):
    """Cranfield (shared data): graded qrels 1-4, two empty documents, 225 queries."""
    rep = harness.run_eval(
        str(shared_dir / "data" / "cranfield"), "splade-tiny", str(tmp_path / "o"), methods="exact", k=1000,
        cache_dir=harness.default_cache_dir(), bm25="bm25s", show_progress=False, log=quiet,
    )  # fmt: skip
    assert rep["dataset"]["documents"] == 1400 and rep["dataset"]["evaluated_queries"] == 225
    assert rep["dataset"]["empty_documents"] == 2
    assert 0.1 < rep["systems"]["exact"]["metrics"]["ndcg@10"] < 1


def test_recall_vs_exact():
    exact = {"q1": [("a", 3.0), ("b", 2.0)], "q2": [("c", 1.0)], "q3": []}
    approx = {"q1": [("a", 3.0), ("z", 1.0)], "q2": [("c", 1.0)]}
    assert harness.recall_vs_exact(approx, exact, 2) == pytest.approx((0.5 + 1.0) / 2)
    assert harness.recall_vs_exact(exact, exact, 2) == 1.0
    assert harness.recall_vs_exact({}, exact, 2) == 0.0


@pytest.mark.system  # a full harness run
def test_other_methods_report_recall_vs_exact(tiny):
    """Each method's recall vs exact is the overlap of its run file's top k with exact's, computed here
    from the files; QPS is queries over summed latency (1000 / mean ms); the warm-up is reported."""
    base, r1, _ = tiny
    _, runs = harness.load_eval_dir(str(base / "out1"))
    k = r1["settings"]["k"]
    for m in METHODS:
        vals = []
        for q, truth in runs["exact"].items():
            t = {d for d, _ in truth[:k]}
            if t:
                vals.append(len({d for d, _ in runs[m].get(q, [])[:k]} & t) / len(t))
        assert r1["systems"][m]["recall_vs_exact"] == pytest.approx(sum(vals) / len(vals), abs=1e-12), m
        eff = r1["systems"][m]["efficiency"]
        assert eff["qps"] == pytest.approx(1000 / eff["latency_ms"]["mean"], rel=1e-9), m
        assert eff["warmup_queries"] == min(2, r1["dataset"]["evaluated_queries"]), m
