"""One TREC writer and one evaluation: ``lsr search``, ``lsr eval`` and ``lsr demo`` write the same
run files (ranking, score format) and ``lsr demo`` evaluates them as ``lsr eval`` does."""

from __future__ import annotations

import io
import json
import math
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from lsr.eval.metrics import evaluate_run, ndcg_at_k
from lsr.eval.runs import ranked, read_run, results_to_run, write_run


def make_beir(root, docs, queries, qrels):
    """A BEIR folder: corpus.jsonl, queries.jsonl, qrels/test.tsv."""
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": i, "title": t, "text": x}) + "\n" for i, t, x in docs)
    )
    (root / "queries.jsonl").write_text("".join(json.dumps({"_id": i, "text": x}) + "\n" for i, x in queries))
    (root / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t{g}\n" for q, d, g in qrels)
    )
    return root


def _result(ids, scores):
    return SimpleNamespace(ids=list(ids), scores=np.asarray(scores, dtype=np.float32))


def test_lsr_search_writes_what_lsr_eval_writes(tmp_path):
    """``lsr search``'s writer and the harness's give the same lines for the same results, and the
    scores read back exactly (a float32 score such as 0.1 is not a 6-decimal number)."""
    from lsr.cli.search import write_trec

    results = [_result(["d2", "d1", "d3"], [0.1, 0.1, 1 / 3]), _result(["x"], [123.456789])]
    qids = ["q1", "q2"]
    buf = io.StringIO()
    write_trec(buf, qids, results, "t")
    p = tmp_path / "r.trec"
    run = results_to_run(qids, results)
    write_run(str(p), run, "t")
    assert buf.getvalue() == p.read_text()
    assert buf.getvalue().splitlines()[0] == f"q1 Q0 d3 1 {float(np.float32(1 / 3))!r} t"
    assert [ln.split()[2] for ln in buf.getvalue().splitlines()[:3]] == ["d3", "d1", "d2"]  # tie: d1 < d2
    back = read_run(str(p))
    assert back == run
    assert back["q1"][1][1] == float(np.float32(0.1))  # exact, not 0.1 nor 0.100000


def test_search_keeps_the_query_file_order():
    from lsr.cli.search import write_trec

    buf = io.StringIO()
    write_trec(buf, ["b", "a"], [_result(["d"], [1.0]), _result(["e"], [2.0])], "t")
    assert [ln.split()[0] for ln in buf.getvalue().splitlines()] == ["b", "a"]


TIE_QRELS = {"q": {"a": 1}}
TIE_RUN = {"q": [("a", 1.0), ("b", 1.0)]}  # a tie: lsr ranks a first, trec_eval b first


def test_evaluation_breaks_ties_by_doc_id_ascending():
    assert evaluate_run(TIE_RUN, TIE_QRELS, ("ndcg@10",))[0]["ndcg@10"] == pytest.approx(1.0)
    # the trec_eval-order reference ranks b first
    assert ndcg_at_k({"q": dict(TIE_RUN["q"])}, TIE_QRELS, 10) == pytest.approx(1 / math.log2(3))


def test_evaluation_without_ranx_is_the_same(monkeypatch):
    """The core install has no ranx: ``evaluate_run`` computes nDCG itself, same formula, same ties."""
    rng = np.random.default_rng(0)
    docs = [f"d{i}" for i in range(30)]
    run = {f"q{j}": ranked((d, float(rng.integers(0, 5))) for d in docs) for j in range(20)}
    qrels = {f"q{j}": {d: int(rng.integers(1, 4)) for d in rng.choice(docs, 4)} for j in range(20)}
    qrels["q_missing"] = {"d1": 2}  # judged, not in the run: scores 0
    metrics = ("ndcg@10", "ndcg@5")
    with_ranx = evaluate_run(run, qrels, metrics)
    monkeypatch.setitem(sys.modules, "ranx", None)  # import ranx now raises ImportError
    without = evaluate_run(run, qrels, metrics)
    for m in metrics:
        assert without[0][m] == pytest.approx(with_ranx[0][m], abs=1e-12)
        for q in qrels:
            assert without[1][m][q] == pytest.approx(with_ranx[1][m].get(q, 0.0), abs=1e-12)
    assert evaluate_run(TIE_RUN, TIE_QRELS, ("ndcg@10",))[0]["ndcg@10"] == pytest.approx(1.0)
    with pytest.raises(Exception, match="needs ranx"):
        evaluate_run(run, qrels, ("map",))


def test_ranx_compiles_once_whatever_the_doc_id_lengths():
    """ranx sizes its numba-compiled id arrays by the longest doc id, so each new length compiled its
    kernels again (~15 s); ``evaluate_run`` hands it fixed-width codes that sort as the ids do, so a
    collection with longer ids reuses what is compiled, and ties still rank by doc id ascending."""
    from ranx.data_structures import common

    from lsr.eval.metrics import id_codes

    assert evaluate_run(TIE_RUN, TIE_QRELS, ("ndcg@10",))[0]["ndcg@10"] == pytest.approx(1.0)
    compiled = len(common.create_and_sort.signatures)
    long_run = {"q": [("doc-00000000a", 1.0), ("doc-00000000b", 1.0), ("z" * 40, 2.0)]}
    long_qrels = {"q": {"doc-00000000a": 1}, "q2": {"x": 1}}
    means, per_query = evaluate_run(long_run, long_qrels, ("ndcg@10",))
    assert len(common.create_and_sort.signatures) == compiled
    want = ndcg_at_k({"q": {"z" * 40: 2.0, "doc-00000000a": 1.1, "doc-00000000b": 1.0}}, long_qrels, 10)
    assert means["ndcg@10"] == pytest.approx(want)
    assert per_query["ndcg@10"] == {"q": pytest.approx(want * 2), "q2": 0.0}
    codes = id_codes({"q": {"b": 1, "a10": 1}}, {"q": [("a9", 1.0)]})
    assert sorted(codes, key=codes.get) == ["a10", "a9", "b"] and {len(c) for c in codes.values()} == {10}


@pytest.mark.system  # an lsr demo run
def test_demo_evaluates_like_lsr_eval(tmp_path, capsys):
    """Two identical documents tie; only the later id is relevant. ``lsr demo`` ranks the tie as the run
    files do (doc id ascending) and reports the nDCG@10 of its own run file."""
    from lsr.cli.main import main

    docs = [
        ("d1", "Vitamin D", "Vitamin D supplements reduce fractures in elderly people."),
        ("d2", "", "Deep sea fish live in darkness."),
        ("d7", "Vitamin D", "Vitamin D supplements reduce fractures in elderly people."),
    ]
    data = make_beir(
        tmp_path / "data",
        docs=docs,
        queries=[("q1", "vitamin d supplements fractures elderly"), ("q2", "fish")],
        qrels=[("q1", "d7", 1), ("q2", "d2", 1)],
    )
    assert main(["demo", "--dataset", str(data), "--output", str(tmp_path / "out")]) == 0
    rep = json.loads((tmp_path / "out" / "results.json").read_text())
    run = read_run(str(tmp_path / "out" / "run.trec"))
    q1 = [d for d, _ in run["q1"]]
    assert q1[:2] == ["d1", "d7"] and run["q1"][0][1] == run["q1"][1][1]  # tied, d1 first
    want = (1 / math.log2(3) + 1.0) / 2  # d7 at rank 2; d2 first for "fish"
    assert run["q2"][0][0] == "d2"
    assert rep["ndcg@10"] == round(want, 4)
    capsys.readouterr()


def test_benchmarks_live_outside_the_package():
    """The benchmark scripts are a top-level folder the package never imports; the index layer does
    not import the evaluation package (its timing code is the low-level one ``lsr.eval`` builds on)."""
    import pkgutil
    import re
    from pathlib import Path

    import lsr.eval

    repo = Path(__file__).resolve().parent.parent
    assert not [m.name for m in pkgutil.iter_modules(lsr.eval.__path__) if m.name.startswith("bench")]
    assert sorted(p.name for p in (repo / "benchmarks").glob("bench_*.py"))
    imports = re.compile(r"^\s*(from|import)\s+(benchmarks|bench_\w+|peers)\b", re.M)
    for folder in ("lsr", "index", "eval", "service"):
        for py in (repo / folder).rglob("*.py"):
            assert not imports.search(py.read_text(encoding="utf-8")), py
    for py in (repo / "index").rglob("*.py"):
        assert "lsr.eval" not in py.read_text(encoding="utf-8"), py
