"""The CLI end to end on a slice of the bundled SciFact, and every bad input's one-line error."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from lsr.cli.main import main

from conftest import SCIFACT

N_DOCS = 120
N_QUERIES = 12


@pytest.fixture(scope="module")
def slice_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("scifact_slice")
    with gzip.open(SCIFACT / "corpus.jsonl.gz", "rt", encoding="utf-8") as f:
        lines = [next(f) for _ in range(N_DOCS)]
    with gzip.open(d / "corpus.jsonl.gz", "wt", encoding="utf-8") as f:
        f.writelines(lines)
    with open(SCIFACT / "queries.jsonl", encoding="utf-8") as f:
        q = [next(f) for _ in range(N_QUERIES)]
    (d / "queries.jsonl").write_text("".join(q), encoding="utf-8")
    return d


def lsr(*args, expect=0):
    code = main([str(a) for a in args])
    assert code == expect, f"lsr {' '.join(map(str, args))} exited {code}"


def read_run(path):
    run = {}
    for line in open(path, encoding="utf-8"):
        qid, q0, doc, rank, score, tag = line.split()
        assert q0 == "Q0"
        run.setdefault(qid, []).append((doc, int(rank), float(score)))
    return run


@pytest.fixture(scope="module")
def built(slice_dir, tmp_path_factory):
    """Encode, index two ways, search two ways: every artefact of the pipeline."""
    w = tmp_path_factory.mktemp("cli")
    lsr(
        "encode",
        "--model",
        "splade-tiny",
        "--input",
        slice_dir / "corpus.jsonl.gz",
        "--output",
        w / "docs.jsonl.gz",
    )
    lsr(
        "encode",
        "--model",
        "splade-tiny",
        "--input",
        slice_dir / "queries.jsonl",
        "--output",
        w / "q.jsonl",
        "--queries",
    )
    lsr("index", "--input", w / "docs.jsonl.gz", "--output", w / "ix_vectors")
    lsr(
        "index", "--input", slice_dir / "corpus.jsonl.gz", "--model", "splade-tiny", "--output", w / "ix_text"
    )
    lsr(
        "search",
        "--index",
        w / "ix_vectors",
        "--queries",
        w / "q.jsonl",
        "--k",
        10,
        "--output",
        w / "run_vec.trec",
    )
    lsr(
        "search",
        "--index",
        w / "ix_text",
        "--queries",
        slice_dir / "queries.jsonl",
        "--k",
        10,
        "--output",
        w / "run_text.trec",
    )
    return w


def test_pipeline_outputs(built, slice_dir):
    from lsr.vectors import read_vectors

    docs = read_vectors(built / "docs.jsonl.gz")
    queries = read_vectors(built / "q.jsonl", vocab=docs.vocab, unknown="skip")
    assert len(docs) == N_DOCS and len(queries) == N_QUERIES
    assert 20 < docs.nnz / len(docs) < 2000  # real SPLADE expansions
    # brute force over the encoded vectors is the oracle for both indexes
    scores = (queries.to_scipy().astype(np.float64) @ docs.to_scipy().astype(np.float64).T).toarray()
    for run_file in ("run_vec.trec", "run_text.trec"):
        run = read_run(built / run_file)
        assert len(run) == N_QUERIES
        for qi, qid in enumerate(queries.ids):
            want = np.lexsort((np.arange(N_DOCS), -scores[qi]))[:10]
            got = run[qid]
            assert [r for _, r, _ in got] == list(range(1, len(got) + 1))
            assert [d for d, _, _ in got] == [docs.ids[i] for i in want]
            np.testing.assert_allclose([s for _, _, s in got], scores[qi, want], rtol=1e-5, atol=1e-6)


def test_info_and_bench(built, capsys):
    lsr("info", built / "ix_text", "--json")
    info = json.loads(capsys.readouterr().out)
    assert info["n_docs"] == N_DOCS and info["encoder"]["model"] == "splade-tiny"
    assert info["encoder"]["doc_max_length"] == 256
    lsr("info", built / "ix_vectors")
    assert "none recorded" in capsys.readouterr().out
    lsr("bench", "--index", built / "ix_vectors", "--queries", built / "q.jsonl", "--json", "--warmup", 2)
    rec = json.loads(capsys.readouterr().out)
    for key in ("method", "k", "queries", "threads", "params", "latency_ms", "qps", "recall"):
        assert key in rec
    assert set(rec["latency_ms"]) >= {"mean", "p50", "p99"}
    assert rec["recall"] == 1.0 and rec["queries"] == N_QUERIES and rec["method"] == "exact"


def test_methods_from_the_command_line(built, capsys):
    """`lsr index --methods`, `lsr search/bench --method --param`, `lsr info` listing the methods."""
    lsr(
        "index", "--input", built / "docs.jsonl.gz", "--output", built / "ix_bmp", "--methods", "bmp",
        "--bmp-block-size", 8,
    )  # fmt: skip
    lsr("info", built / "ix_bmp", "--json")
    info = json.loads(capsys.readouterr().out)
    assert info["methods"] == ["exact", "bmp"] and info["parts"]["bmp"]["block_size"] == 8
    lsr(
        "index", "--input", built / "docs.jsonl.gz", "--output", built / "ix_fixed", "--methods", "seismic",
        "--seismic-pruning", "fixed", "--seismic-n-postings", 30, "--seismic-knn", 4,
    )  # fmt: skip
    lsr("info", built / "ix_fixed", "--json")
    info = json.loads(capsys.readouterr().out)
    assert info["parts"]["seismic"]["pruning"] == "fixed" and info["parts"]["seismic"]["n_postings"] == 30
    assert info["parts"]["seismic"]["knn"] == 4 and (built / "ix_fixed" / "seismic_knn.npy").exists()
    for method, params in (("bmp", ["alpha=1", "beta=1"]), ("maxscore", []), ("seismic", ["query_cut=20"])):
        ix = built / ("ix_bmp" if method == "bmp" else "ix_vectors")
        args = [
            "search",
            "--index",
            ix,
            "--queries",
            built / "q.jsonl",
            "--output",
            built / f"run_{method}.trec",
        ]
        lsr(*args, "--method", method, *[x for p in params for x in ("--param", p)])
        got, want = read_run(built / f"run_{method}.trec"), read_run(built / "run_vec.trec")
        if method == "seismic":  # approximate: a high query_cut on 120 docs finds nearly all
            hits = [len({d for d, _, _ in got[q]} & {d for d, _, _ in want[q]}) / len(want[q]) for q in want]
            assert np.mean(hits) >= 0.9
        else:
            assert got == want
    lsr("bench", "--index", built / "ix_bmp", "--queries", built / "q.jsonl", "--json", "--warmup", 2,
        "--method", "bmp", "--param", "alpha=0.9")  # fmt: skip
    rec = json.loads(capsys.readouterr().out)
    assert rec["method"] == "bmp" and rec["params"] == {"alpha": 0.9, "beta": 1.0} and rec["recall"] >= 0.8
    capsys.readouterr()
    for bad, msg in (
        (["--method", "seismic"], "built without the forward and seismic parts"),
        (["--method", "bmp", "--param", "alpha"], "NAME=VALUE"),
        (["--method", "bmp", "--param", "alpha=x"], "not a number"),
        (["--method", "bmp", "--param", "alpha=2"], "alpha must be in"),
        (["--method", "bmp", "--param", "delta=1"], "no parameter delta"),
    ):
        lsr("search", "--index", built / "ix_bmp", "--queries", built / "q.jsonl", *bad, expect=2)
        assert msg in capsys.readouterr().err
    lsr(
        "index",
        "--input",
        built / "docs.jsonl.gz",
        "--output",
        built / "ix_bad",
        "--methods",
        "wand",
        expect=2,
    )
    assert "unknown method" in capsys.readouterr().err


def test_encoder_mismatch_is_refused(built, slice_dir, capsys):
    import lsr as lsr_pkg
    from lsr.index import open_index

    idx = open_index(built / "ix_text")
    other = lsr_pkg.load_encoder("splade-tiny", doc_max_length=128)
    from lsr.errors import LsrError

    with pytest.raises(LsrError, match="doc_max_length"):
        idx.search(["vitamin d"], encoder=other)
    assert idx.search(["vitamin d"], encoder=other, force=True)[0].ids
    # the same through the CLI: a saved encoder with other settings is refused, --force searches anyway
    other.save(built / "other_model")
    args = [
        "search",
        "--index",
        built / "ix_text",
        "--queries",
        slice_dir / "queries.jsonl",
        "--model",
        built / "other_model",
    ]
    lsr(*args, expect=2)
    assert "pass force=True / --force" in capsys.readouterr().err
    lsr(*args, "--force", "--output", built / "forced.trec")
    assert len(read_run(built / "forced.trec")) == N_QUERIES


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "case",
    [
        "malformed_line",
        "missing_file",
        "empty_query",
        "k_zero",
        "unknown_method",
        "no_model_for_text",
        "bad_index",
        "empty_vector",
    ],
)
def test_bad_input_one_line_error(case, built, tmp_path, capsys):
    ix = built / "ix_vectors"
    if case == "malformed_line":
        f = write(tmp_path / "v.jsonl", '{"id": "a", "vector": {"x": 1}}\n{"id": "b", "vector": {"x": 1}\n')
        args, msg = ["index", "--input", f, "--output", tmp_path / "o"], "v.jsonl:2: not valid JSON"
    elif case == "missing_file":
        args, msg = (
            ["search", "--index", ix, "--queries", tmp_path / "nope.jsonl"],
            "nope.jsonl: no such file",
        )
    elif case == "empty_query":
        f = write(tmp_path / "q.jsonl", '{"_id": "1", "text": "fine"}\n{"_id": "2", "text": "  "}\n')
        args, msg = ["search", "--index", built / "ix_text", "--queries", f], "query '2' is empty"
    elif case == "k_zero":
        args, msg = ["search", "--index", ix, "--queries", built / "q.jsonl", "--k", 0], "k must be > 0"
    elif case == "unknown_method":
        args, msg = (
            ["search", "--index", ix, "--queries", built / "q.jsonl", "--method", "nope"],
            "unknown method 'nope'",
        )
    elif case == "no_model_for_text":
        args, msg = (
            [
                "search",
                "--index",
                ix,
                "--queries",
                write(tmp_path / "t.jsonl", '{"_id": "1", "text": "x"}\n'),
            ],
            "records no encoder",
        )
    elif case == "bad_index":
        args, msg = ["info", tmp_path], "not an lsr index"
    else:
        f = write(tmp_path / "e.jsonl", '{"id": "q1", "vector": {}}\n')
        args, msg = ["search", "--index", ix, "--queries", f], "empty vector"
    lsr(*args, expect=2)
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("lsr: error: ") and msg in err[-1], err
    assert not any("Traceback" in line for line in err)
    assert not (tmp_path / "o").exists()


def test_help_is_light():
    """`lsr --help` must not import torch or numba (it has to answer at once)."""
    code = "import sys; from lsr.cli.main import build_parser; build_parser().format_help(); print('torch' in sys.modules, 'numba' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["False", "False", "False"]


def test_console_script_runs(built):
    exe = os.path.join(os.path.dirname(sys.executable), "lsr")
    res = subprocess.run(
        [
            exe,
            "search",
            "--index",
            str(built / "ix_vectors"),
            "--queries",
            str(built / "q.jsonl"),
            "--k",
            "3",
        ],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
    assert len(res.stdout.strip().splitlines()) == 3 * N_QUERIES
    assert "searched 12 queries" in res.stderr
    res = subprocess.run(
        [
            exe,
            "search",
            "--index",
            str(built / "ix_vectors"),
            "--queries",
            str(built / "q.jsonl"),
            "--k",
            "-3",
        ],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 2 and res.stderr.strip() == "lsr: error: k must be > 0, got -3"
