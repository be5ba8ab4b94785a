"""The benchmark data recipes and the multi-data-set report of benchmarks/bench_search.py:
the real-text collection builder (passage packing, cleaning, man pages, BEIR output that is
reproducible and keeps queries out of the collection) and the issue's targets as met/missed ratios."""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
import shutil
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(BENCH))
    try:
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(str(BENCH))
    return mod


@pytest.fixture(scope="module")
def mrc():
    return _load("make_real_collection")


@pytest.fixture(scope="module")
def bs():
    return _load("bench_search")


# --------------------------------------------------------------------------- make_real_collection
def test_pack_passages_respects_word_bounds_and_order(mrc):
    def word(i: int, j: int) -> str:  # letters only (digits would not count as prose words)
        return "w" + "".join(chr(97 + int(c)) for c in f"{i}{j:03d}")

    lengths = [12, 15, 30, 7, 100, 5]
    sents = [" ".join(word(i, j) for j in range(n)) + "." for i, n in enumerate(lengths)]
    out = mrc.pack_passages([" ".join(sents)], 20, 45, 80)
    words = [p.split() for p in out]
    assert all(20 <= len(w) <= 80 for w in words)
    # in order, and nothing lost (the 5-word tail joins the previous passage)
    assert [w.rstrip(".") for p in words for w in p] == [
        word(i, j) for i, n in enumerate(lengths) for j in range(n)
    ]


def test_pack_passages_drops_short_texts_and_non_prose(mrc):
    assert mrc.pack_passages(["Too short to keep."], 20, 45, 80) == []
    numbers = " ".join(str(i) for i in range(40))
    assert mrc.pack_passages([numbers], 20, 45, 80) == []


def test_clean_lines_drops_code_and_markup(mrc):
    doc = """Compute the **norm** of a `vector`, see [the docs](https://example.org/x).

    >>> norm([3, 4])
    5.0

Example::

    x = norm(v)

```python
print("code")
```
Parameters
----------
.. note:: a directive
Returns the length."""
    paras = mrc.clean_lines(doc)
    text = " ".join(paras)
    assert "Compute the norm of a vector, see the docs." in text
    assert "Returns the length." in text
    for bad in (">>>", "print(", "x = norm", "https://", "----", "directive", "**", "`"):
        assert bad not in text


def test_man_paragraphs_reads_roff(mrc, tmp_path):
    page = tmp_path / "frob.1.gz"
    roff = r""".\" a comment
.TH FROB 1
.SH NAME
frob \- frobnicate the \fBwidgets\fR
.SH SYNOPSIS
.B frob
[\fIoptions\fR]
.SH DESCRIPTION
.B frob
reads widgets and writes them back \(em faster.
.PP
.nf
frob \-x file
.fi
.SH "SEE ALSO"
.BR grep (1)
"""
    with gzip.open(page, "wt") as f:
        f.write(roff)
    paras = mrc.man_paragraphs(page)
    assert paras == ["frob - frobnicate the widgets", "frob reads widgets and writes them back - faster."]
    redirect = tmp_path / "alias.1.gz"
    with gzip.open(redirect, "wt") as f:
        f.write(".so man1/frob.1\n")
    assert mrc.man_paragraphs(redirect) == []


SENT = "The {w} tool reads {w} files from the disk and writes a report about every {w} record it finds there."


def _fake_sources(root: Path) -> list[str]:
    lists = root / "lists"
    lists.mkdir()
    recs = []
    for i, w in enumerate(["alpha", "beta", "gamma", "delta", "alpha"]):  # the 5th repeats the 1st's text
        long = " " + SENT.format(w=w) + "\n .\n " + SENT.format(w=w + "x")
        recs.append(
            f"Package: pkg{i}\nDescription-md5: {i:032x}\nDescription-en: short tool number {i} for {w}\n{long}\n"
        )
    (lists / "x_Translation-en").write_text("\n".join(recs))
    site = root / "site"
    (site / "mod").mkdir(parents=True)
    (site / "mod" / "__init__.py").write_text(
        f'"""{SENT.format(w="module")}"""\n\ndef f():\n    """{SENT.format(w="function")} {SENT.format(w="other")}"""\n'
    )
    man = root / "man" / "man1"
    man.mkdir(parents=True)
    with gzip.open(man / "tool.1.gz", "wt") as f:
        f.write(f".TH T 1\n.SH DESCRIPTION\n{SENT.format(w='manual')}\n")
    return [
        "--apt-lists", str(lists), "--site-packages", str(site), "--man", str(root / "man"),
        "--min-passages", "1", "--n-queries", "3", "--seed", "7",
    ]  # fmt: skip


@pytest.mark.skipif(not os.path.exists("/usr/lib/apt/apt-helper"), reason="needs apt-helper (Debian)")
def test_make_real_collection_end_to_end_is_reproducible(mrc, tmp_path):
    args = _fake_sources(tmp_path)
    for run in ("a", "b"):
        assert mrc.main([*args, "--out", str(tmp_path / run)]) == 0
    for f in ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    corpus = [json.loads(line) for line in open(tmp_path / "a" / "corpus.jsonl")]
    queries = [json.loads(line) for line in open(tmp_path / "a" / "queries.jsonl")]
    ids = [d["_id"] for d in corpus]
    assert len(ids) == len(set(ids))
    texts = [d["text"] for d in corpus]
    assert len(texts) == len(set(texts))  # pkg4 repeats pkg0: deduplicated
    # 4 distinct Debian descriptions, 2 docstrings, 1 man page
    sources = sorted(d["metadata"]["source"] for d in corpus)
    assert (
        sources.count("debian") == 4 and sources.count("python-docstring") == 2 and sources.count("man") == 1
    )
    assert {d["title"] for d in corpus if d["metadata"]["source"] == "python-docstring"} == {"mod", "mod.f"}
    assert len(queries) == 3
    for q in queries:  # a query (a short description) is never in the collection
        assert q["text"].startswith("short tool number")
        assert not any(q["text"] in t for t in texts)
    qrels = (tmp_path / "a" / "qrels" / "test.tsv").read_text().splitlines()[1:]
    assert qrels and all(line.split("\t")[1] in set(ids) for line in qrels)


def test_make_real_collection_refuses_too_few_passages(mrc, tmp_path):
    if not os.path.exists("/usr/lib/apt/apt-helper"):
        pytest.skip("needs apt-helper (Debian)")
    args = _fake_sources(tmp_path)
    args[args.index("--min-passages") + 1] = "1000"
    with pytest.raises(SystemExit, match="only 7 passages"):
        mrc.main([*args, "--out", str(tmp_path / "o")])


# --------------------------------------------------------------------------- bench_search
def test_parse_data_single_pairs_and_errors(bs, tmp_path):
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        for f in ("docs.jsonl", "queries.jsonl"):
            (tmp_path / name / f).write_text("")
    one, two = str(tmp_path / "one"), str(tmp_path / "two")
    assert bs.parse_data(one) == [("one", one)]
    assert bs.parse_data(f"a={one}, b={two}") == [("a", one), ("b", two)]
    with pytest.raises(SystemExit, match="given twice"):
        bs.parse_data(f"a={one},a={two}")
    with pytest.raises(SystemExit, match="not a folder"):
        bs.parse_data(f"a={tmp_path / 'missing'}")
    os.remove(tmp_path / "two" / "queries.jsonl")
    with pytest.raises(SystemExit, match="has no queries.jsonl"):
        bs.parse_data(f"b={two}")
    shutil.rmtree(tmp_path / "two")


def test_per_dataset_option(bs):
    assert bs.parse_per_dataset("2000", ["a", "b"], 3500) == {"a": 2000, "b": 2000}
    assert bs.parse_per_dataset("b=1000", ["a", "b"], 3500) == {"a": 3500, "b": 1000}
    with pytest.raises(SystemExit, match="names no data set"):
        bs.parse_per_dataset("c=1000", ["a", "b"], 3500)
    with pytest.raises(SystemExit, match="expected NAME=integer"):
        bs.parse_per_dataset("a=x", ["a", "b"], 3500)


def _sys(mean, p50=None, p99=None, **kw):
    return {"latency_ms": {"mean": mean, "p50": p50 or mean, "p99": p99 or mean}, **kw}


def _record(seismic_recall=0.96):
    return {
        "systems": {
            "lsr exact uint8": _sys(
                1.0,
                1.0,
                3.0,
                engine="lsr",
                method="exact",
                params={},
                safe=True,
                recall=1.0,
                build={"seconds": 10.0},
                index_bytes=300,
            ),  # fmt: skip
            "lsr maxscore uint8": _sys(
                1.5, engine="lsr", method="maxscore", params={}, safe=True, recall=1.0
            ),
            "lsr bmp uint8": _sys(
                2.0, 1.0, 5.0, engine="lsr", method="bmp", params={}, safe=True, recall=1.0
            ),
            "lsr bmp uint8 alpha=0.9": _sys(
                0.4, 0.4, 9.0, engine="lsr", method="bmp", params={"alpha": 0.9}, safe=False, recall=0.92
            ),  # fmt: skip
            "naive numba TAAT": _sys(4.0),
            "seismic x": _sys(
                2.0, engine="seismic", recall=seismic_recall, build={"seconds": 20.0}, index_bytes=200
            ),
            "seismic y": _sys(0.25, engine="seismic", recall=0.91, build={"seconds": 20.0}, index_bytes=200),
        },
        "batch_qps": {"method": "exact uint8", "qps_1_thread": 100.0, "qps_2_threads": 190.0},
    }


def test_targets_are_the_measured_ratios(bs):
    t = bs._targets(_record())
    assert t["approximate"]["ratio"] == pytest.approx(1.0 / 2.0) and t["approximate"]["met"]
    assert t["approximate"]["ours"] == "lsr exact uint8"
    assert t["approximate_090"]["ratio"] == pytest.approx(0.4 / 0.25) and t["approximate_090"]["met"] is False
    assert t["safe"]["ratio"] == pytest.approx(1.0 / 4.0) and t["safe"]["met"]
    assert t["safe_vs_exact"]["ours"] == "lsr bmp uint8" and t["safe_vs_exact"]["ratio"] == pytest.approx(2.0)
    assert t["safe_vs_exact"]["met"] is False
    # tails: only methods at their defaults (the alpha=0.9 setting's 22x tail does not count)
    assert t["tails"]["worst"] == "lsr bmp uint8" and t["tails"]["ratio"] == pytest.approx(5.0)
    assert set(t["tails"]["per_method"]) == {"lsr exact uint8", "lsr maxscore uint8", "lsr bmp uint8"}
    assert t["build"]["ratio"] == pytest.approx(0.5) and t["build"]["met"]
    assert t["index_size"]["ratio"] == pytest.approx(1.5) and t["index_size"]["met"] is False
    assert t["batch_scaling"]["ratio"] == pytest.approx(1.9) and t["batch_scaling"]["met"]


def test_targets_table_marks_met_missed_and_missing_sides(bs):
    recs = {"real": {"targets": bs._targets(_record(seismic_recall=0.93))}, "none": {"targets": {}}}
    assert recs["real"]["targets"]["approximate"]["met"] is None
    md = bs._targets_table(recs)
    rows = {line.split(" | ")[0].lstrip("| "): line for line in md.splitlines() if line.startswith("| ")}
    assert (
        "n/a (no pyseismic configuration reached recall 0.95)"
        in rows["approximate, recall >= 0.95: fastest lsr / fastest pyseismic"]
    )
    assert "1.60x **missed**" in rows["approximate, recall >= 0.90: fastest lsr / fastest pyseismic"]
    assert "0.25x met" in rows["safe: fastest rank-safe lsr / naive TAAT"]
    assert rows["batch QPS: 2 threads / 1 thread (lsr exact)"].endswith("| 1.90x met | n/a |")


def test_alternating_passes_decide_the_approximate_targets(bs):
    """With the finalists' alternating passes recorded, their medians decide the approximate
    targets (the sweeps' single-pass ratio kept beside); finalists below a floor do not count."""
    r = _record()
    r["approx_passes"] = {
        "passes": 3,
        "ms": {},
        "median_ms": {
            "lsr exact uint8": 0.9,
            "lsr bmp uint8 alpha=0.9": 0.3,
            "seismic x": 1.8,
            "seismic y": 0.5,
        },
    }
    t = bs._targets(r)
    assert t["approximate"]["ratio"] == pytest.approx(0.9 / 1.8) and t["approximate"]["met"]
    assert t["approximate"]["one_pass_ratio"] == pytest.approx(1.0 / 2.0)
    assert (
        t["approximate_090"]["ours"] == "lsr bmp uint8 alpha=0.9"
        and t["approximate_090"]["seismic"] == "seismic y"
    )
    assert t["approximate_090"]["ratio"] == pytest.approx(0.3 / 0.5) and t["approximate_090"]["met"]
    assert t["approximate_090"]["one_pass_ratio"] == pytest.approx(0.4 / 0.25)
    assert "from=alternating passes (median)" in bs._targets_table({"x": {"targets": t}})


def test_sweep_times_seismic_with_and_without_the_graph(bs):
    class Ix:
        methods = ("exact", "seismic")
        parts = {"seismic": {"knn": 10}}

    spec = '[["seismic", {}], ["seismic", {"query_cut": 3}], ["seismic", {"knn": 2}], ["bmp", {}]]'
    assert bs._sweep(spec, Ix()) == [
        ("seismic", {}),
        ("seismic", {"query_cut": 3}),
        ("seismic", {"knn": 2}),
        ("seismic", {"knn": 0}),
        ("seismic", {"query_cut": 3, "knn": 0}),
    ]
    Ix.parts = {"seismic": {"n_postings": 10}}
    assert len(bs._sweep(spec, Ix())) == 3


def test_alternating_passes_time_each_finalist_once_per_pass(bs, tmp_path):
    """``_alternate`` on a real (tiny) index and a stand-in peer: per floor the fastest finalists of
    each engine, every one timed once per pass, in rotating order."""
    import types

    import numpy as np

    from lsr.index import build_index, open_index

    from conftest import random_collection, vocab_of

    ix = open_index(
        build_index(random_collection(80, 30, 1), tmp_path / "ix", vocab=vocab_of(30), methods=["seismic"])
    )
    queries = [{"t1": 1.0, "t2": 0.5}, {"t3": 2.0}]
    calls: list[dict] = []

    class Peer:
        def search(self, i, k, **cfg):
            calls.append(cfg)
            return []

    sys_ = {
        "lsr exact float32": _sys(1.0, engine="lsr", method="exact", params={}, recall=1.0),
        "lsr seismic float32 query_cut=2": _sys(
            0.5, engine="lsr", method="seismic", params={"query_cut": 2}, recall=0.93
        ),
        "lsr seismic float32 query_cut=1": _sys(
            0.2, engine="lsr", method="seismic", params={"query_cut": 1}, recall=0.5
        ),
        "seismic a": _sys(0.9, engine="seismic", params={"query_cut": 5}, recall=0.97),
        "seismic b": _sys(0.4, engine="seismic", params={"query_cut": 3}, recall=0.91),
    }
    a = types.SimpleNamespace(k=3, approx_passes=2)
    out = bs._alternate(a, {"systems": sys_}, ix, queries, Peer(), len(queries))
    want = {"lsr exact float32", "lsr seismic float32 query_cut=2", "seismic a", "seismic b"}
    assert set(out["ms"]) == want and out["passes"] == 2
    assert all(len(v) == 2 and all(x > 0 for x in v) for v in out["ms"].values())
    assert out["median_ms"]["seismic a"] == pytest.approx(float(np.median(out["ms"]["seismic a"])))
    assert calls.count({"query_cut": 5}) == 2 * len(queries) and calls.count({"query_cut": 3}) == 2 * len(
        queries
    )
