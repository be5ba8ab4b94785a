"""Issue 12's index defects: --overwrite never deletes a user's files, damaged-but-well-sized
files are refused at open (never a segfault), builds killed mid-way leave nothing behind for long."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from lsr.cli.main import main
from lsr.errors import LsrError
from lsr.index import build_index, open_index
from lsr.index.builder import remove_stale_builds
from lsr.vectors import SparseBatch, write_vectors

from conftest import REPO, random_collection, vocab_of

ENV = {**os.environ, "NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "tests")}


# -- --overwrite ---------------------------------------------------------------------------------
def test_overwrite_refuses_a_folder_that_is_not_an_index(tmp_path):
    docs = random_collection(40, 20, 0)
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("precious")
    with pytest.raises(LsrError, match="not an lsr index"):
        build_index(docs, folder, vocab=vocab_of(20), overwrite=True)
    assert (folder / "notes.txt").read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]  # no build folder left either
    # an index with a user's file inside is not replaced either
    ix = build_index(docs, tmp_path / "ix", vocab=vocab_of(20))
    open(os.path.join(ix, "notes.txt"), "w").write("mine")
    with pytest.raises(LsrError, match=r"not part of an lsr index \(notes.txt\)"):
        build_index(docs, ix, vocab=vocab_of(20), overwrite=True)
    os.remove(os.path.join(ix, "notes.txt"))
    # a real index is replaced
    build_index(docs[:10], ix, vocab=vocab_of(20), overwrite=True)
    assert open_index(ix).n_docs == 10
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ix", "mine"]
    # an empty folder holds nothing to lose: replaced
    (tmp_path / "empty").mkdir()
    build_index(docs[:10], tmp_path / "empty", vocab=vocab_of(20), overwrite=True)
    assert open_index(tmp_path / "empty").n_docs == 10
    # a regular file: refused, kept
    f = tmp_path / "file"
    f.write_text("data")
    with pytest.raises(LsrError, match="is a file"):
        build_index(docs, f, vocab=vocab_of(20), overwrite=True)
    assert f.read_text() == "data"


def test_cli_overwrite_one_line_errors(tmp_path, capsys):
    b = SparseBatch.from_scipy(random_collection(30, 12, 1), vocab_of(12), [f"d{i}" for i in range(30)])
    write_vectors(tmp_path / "v.jsonl", b)
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("precious")
    rc = main(["index", "--input", str(tmp_path / "v.jsonl"), "--output", str(folder), "--overwrite"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("lsr: error: ") and "not an lsr index" in err
    assert len(err.strip().splitlines()) == 1
    assert (folder / "notes.txt").read_text() == "precious"
    f = tmp_path / "file"
    f.write_text("data")
    rc = main(["index", "--input", str(tmp_path / "v.jsonl"), "--output", str(f), "--overwrite"])
    err = capsys.readouterr().err
    assert rc == 2 and "is a file" in err and len(err.strip().splitlines()) == 1
    assert f.read_text() == "data"


# -- stale build folders -------------------------------------------------------------------------
def test_build_killed_by_sigkill_is_cleaned_by_the_next_build(tmp_path):
    out = tmp_path / "ix"
    script = textwrap.dedent(
        f"""
        import os, signal
        from conftest import random_collection, vocab_of
        from lsr.index.builder import IndexBuilder
        from lsr.vectors import SparseBatch
        b = SparseBatch.from_scipy(random_collection(50, 20, 0), vocab_of(20), [str(i) for i in range(50)])
        builder = IndexBuilder({str(out)!r}, run_postings=10)
        builder.add(b)  # runs written into <out>.tmp-<pid>
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], env=ENV, stderr=subprocess.PIPE, text=True)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL, err
    dead = tmp_path / f"ix.tmp-{proc.pid}"
    assert dead.is_dir() and any(p.name.startswith("run") for p in dead.iterdir())
    # a build running now (its pid is alive) and a user's folder that merely looks like one stay
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        alive = tmp_path / f"ix.tmp-{sleeper.pid}"
        alive.mkdir()
        (alive / "doc_ids.tmp.jsonl").write_text("")
        users = tmp_path / f"ix.tmp-{proc.pid + 1_000_000}"  # no such pid; not a build folder
        users.mkdir()
        (users / "notes.txt").write_text("mine")
        build_index(random_collection(30, 20, 1), out, vocab=vocab_of(20))
        assert not dead.exists()
        assert alive.is_dir() and users.is_dir()
        assert remove_stale_builds(str(out)) == []
    finally:
        sleeper.kill()
        sleeper.wait()
    assert remove_stale_builds(str(out)) == [str(alive)]  # its process is gone now


# -- damaged-but-well-sized files ----------------------------------------------------------------
DAMAGE_SCRIPT = textwrap.dedent(
    """
    import json, shutil, sys
    import numpy as np
    from lsr.errors import LsrError
    from lsr.index import open_index
    from lsr.index.searcher import METHODS
    pristine, work, cases = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    for name, pos, value in cases:
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(pristine, work)
        path = f"{work}/{name}.npy"
        arr = np.load(path)
        size = len(open(path, "rb").read())
        arr[pos] = value
        np.save(path, arr)
        assert len(open(path, "rb").read()) == size  # well-sized: only one value differs
        try:
            idx = open_index(work)
        except LsrError as e:
            print(json.dumps([name, "refused", str(e)]), flush=True)
            continue
        print(json.dumps([name, "opened", ""]), flush=True)
        rng = np.random.default_rng(0)
        queries = [{f"t{t}": 1.0 for t in rng.choice(idx.n_terms, 8, replace=False)} for _ in range(30)]
        for method in METHODS:
            res = idx.search(queries, k=10, method=method)
            print(json.dumps([name, method, [r.ids for r in res][:2]]), flush=True)
    """
)


def test_damaged_arrays_are_refused_at_open_in_a_subprocess(tmp_path):
    from test_methods import SMALL_PARTS, topical_collection

    docs = topical_collection(900, 120, 4)
    pristine = build_index(docs, tmp_path / "ix", vocab=vocab_of(120), **SMALL_PARTS)
    idx = open_index(pristine)
    assert idx.parts["bmp"]["n_dense"] > 0 and idx.methods == ("exact", "maxscore", "bmp", "seismic")
    n_docs = idx.n_docs
    d = idx.postings_docs
    off = idx.offsets
    # a posting inside a term (not its first) whose predecessor is > 0: setting it to 0 breaks order
    t = int(np.argmax(np.diff(off)))
    inner = int(off[t]) + 3
    bmp_dense_term = int(np.flatnonzero(idx.bmp[4] >= 0)[0])
    sparse_entry = int(idx.bmp[0][int(np.flatnonzero(np.diff(idx.bmp[0]) > 1)[0])]) + 1
    big = 2**31 - 5
    cases = [
        ("postings_docs", len(d) // 2, n_docs + 7),  # the case: segfault in exact and bmp
        ("postings_docs", inner, 0),  # in range, but out of order: MaxScore/BMP windows
        ("offsets", t + 1, int(off[-1]) + 100),
        ("offsets", t + 1, int(off[t]) - 1),
        ("doc_order", 5, n_docs),
        ("forward_offsets", 10, 10**12),
        ("forward_terms", 3, 120),
        ("bmp_offsets", 4, 10**9),
        ("bmp_blocks", sparse_entry, int(idx.bmp[1][sparse_entry]) + 1),
        ("bmp_blocks", sparse_entry, big),
        ("bmp_starts", sparse_entry, big),
        ("bmp_dense_rows", bmp_dense_term, 10**6),
        ("bmp_dense_rows", int(np.flatnonzero(idx.bmp[4] < 0)[0]), 0),  # a sparse term read as dense
        ("bmp_dense_starts", 3, big),
        ("seismic_term_blocks", t + 1, 10**9),
        ("seismic_block_docs_offsets", 2, 10**9),
        ("seismic_block_docs", 4, n_docs + 1),
        ("seismic_list_groups", t + 1, 10**9),
        ("seismic_group_offsets", 2, 10**9),
        ("seismic_group_blocks", 1, 255),  # a block number past its list's blocks
        ("term_max", 2, np.nan),
    ]
    cases = [(n, int(p), float(v) if isinstance(v, float) else int(v)) for n, p, v in cases]
    proc = subprocess.run(
        [sys.executable, "-c", DAMAGE_SCRIPT, pristine, str(tmp_path / "work"), json.dumps(cases)],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = [json.loads(x) for x in proc.stdout.splitlines()]
    assert proc.returncode not in (-11, 139), f"segfault after {lines[-1:]}"
    assert proc.returncode == 0, proc.stderr[-2000:]
    outcome = [(name, how) for name, how, _ in lines]
    assert outcome == [(name, "refused") for name, _, _ in cases]
    for (name, _, _), (_, _, msg) in zip(cases, lines, strict=True):
        assert "damaged index" in msg and "lsr check" in msg, (name, msg)
        assert len(msg.splitlines()) == 1


# -- --threads -----------------------------------------------------------------------------------
THREADS_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import numba, torch, uvicorn
    import lsr, lsr.index, lsr.eval.harness, lsr.training
    from lsr.cli.common import auto_threads
    from lsr.cli.main import main
    from lsr.index.searcher import Index

    seen = {}

    class Stop(Exception):
        pass

    def recorder(name, keys=()):
        def record(*args, **kwargs):
            seen[name] = {"torch": torch.get_num_threads(), "numba": numba.get_num_threads(),
                          **{k: kwargs.get(k) for k in keys}, "env": os.environ.get("LSR_TORCH_THREADS")}
            raise Stop
        return record

    lsr.load_encoder = recorder("load_encoder")
    lsr.index.build_index = recorder("build_index", ["threads"])
    Index.search = recorder("search", ["threads"])
    lsr.eval.harness.run_eval = recorder("run_eval", ["threads", "torch_threads"])
    lsr.training.train = recorder("train")
    uvicorn.run = recorder("uvicorn")
    vec, qvec, ix, out, n = sys.argv[1:6]
    runs = {
        "encode": ["encode", "--input", vec, "--output", f"{out}/e.jsonl"],
        "demo": ["demo", "--output", f"{out}/demo", "--limit", "5"],
        "index": ["index", "--input", vec, "--output", f"{out}/ix2"],
        "search": ["search", "--index", ix, "--queries", qvec],
        "eval": ["eval", "--dataset", "scifact", "--output", f"{out}/ev"],
        "train": ["train", "--data", "scifact", "--output", f"{out}/tr"],
        "serve": ["serve", "--index", ix],
    }
    report = {"auto": auto_threads()}
    for cmd, argv in runs.items():
        for threads in (n, None):
            seen.clear()
            torch.set_num_threads(1)
            numba.set_num_threads(1)
            os.environ.pop("LSR_TORCH_THREADS", None)
            try:
                rc = main(argv + (["--threads", threads] if threads else []))
                report[f"{cmd} {threads}"] = f"rc {rc}"
            except Stop:
                report[f"{cmd} {threads}"] = next(iter(seen.values()))
    print(json.dumps(report))
    """
)


def test_threads_flag_reaches_torch_and_numba(tmp_path):
    b = SparseBatch.from_scipy(random_collection(30, 12, 1), vocab_of(12), [f"d{i}" for i in range(30)])
    write_vectors(tmp_path / "v.jsonl", b)
    (tmp_path / "q.jsonl").write_text('{"id": "q1", "vector": {"t1": 1.0, "t3": 0.5}}\n')
    ix = build_index(tmp_path / "v.jsonl", tmp_path / "ix")
    env = {**ENV, "NUMBA_NUM_THREADS": "3"}
    args = [str(tmp_path / "v.jsonl"), str(tmp_path / "q.jsonl"), ix, str(tmp_path), "3"]
    proc = subprocess.run(
        [sys.executable, "-c", THREADS_SCRIPT, *args], env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rep = json.loads(proc.stdout.splitlines()[-1])
    auto = rep.pop("auto")
    for key, got in rep.items():
        cmd, threads = key.split()
        n = 3 if threads == "3" else auto
        assert isinstance(got, dict), (key, got)
        assert got["numba"] == min(n, 3), (key, got)
        if cmd in ("encode", "demo", "train"):  # encoders load after the threads are set
            assert got["torch"] == n, (key, got)
        if cmd in ("index", "search"):
            assert got["threads"] == n, (key, got)
        if cmd == "eval":
            assert got["threads"] == n and got["torch_threads"] == n, (key, got)
        if cmd == "serve":
            assert got["env"] == str(n), (key, got)


# -- queries with no usable token ----------------------------------------------------------------
def test_queries_without_usable_tokens_match_nothing(tmp_path):
    import lsr

    enc = lsr.load_encoder("splade-tiny")  # the bundled model (in the package)
    texts = ["🙂", "\u200b", "🙂 \u200b 🙃", "vitamin d deficiency"]
    ids = enc.tokenizer(texts)["input_ids"]
    assert all(set(row) <= set(enc.tokenizer.all_special_ids) for row in ids[:3])  # [CLS] ([UNK]) [SEP]
    batch = enc.encode_queries(texts)
    assert [int(x) for x in np.diff(batch.indptr)][:3] == [0, 0, 0]
    assert batch.indptr[4] > batch.indptr[3]
    # the same through an index built with the encoder: no hits, not documents matched by [CLS]/[SEP]
    corpus = ["vitamin d and bone health", "deficiency of iron", "a smiling face emoji"]
    b = enc.encode_documents(corpus)
    b.ids = ["a", "b", "c"]
    idx = open_index(build_index(b, tmp_path / "ix", encoder=enc))
    res = idx.search(texts, k=3)
    assert [len(r) for r in res[:3]] == [0, 0, 0] and len(res[3]) > 0


# -- first-use reports and errors of the CLI -----------------------------------------------------
@pytest.fixture(scope="module")
def text_setup(tmp_path_factory):
    """A tiny corpus and queries, a text index (encoder recorded) and a vector index (none)."""
    import lsr

    d = tmp_path_factory.mktemp("text")
    docs = ["vitamin d and bone health", "deficiency of iron in diet", "sleep and memory", "bone density"]
    (d / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": f"d{i}", "title": "", "text": t}) + "\n" for i, t in enumerate(docs))
    )
    (d / "queries.jsonl").write_text(
        json.dumps({"_id": "q1", "text": "vitamin d"})
        + "\n"
        + json.dumps({"_id": "q2", "text": "iron"})
        + "\n"
    )
    enc = lsr.load_encoder("splade-tiny")
    b = enc.encode_documents(docs)
    b.ids = [f"d{i}" for i in range(len(docs))]
    write_vectors(d / "vectors.jsonl", b)
    build_index(b, d / "text_ix", encoder=enc)
    build_index(d / "vectors.jsonl", d / "vec_ix")
    return d


def test_search_reports_model_loading_apart_from_encoding(text_setup, capsys):
    d = text_setup
    assert main(["search", "--index", str(d / "text_ix"), "--queries", str(d / "queries.jsonl")]) == 0
    err = capsys.readouterr().err
    assert "loading the model" in err and "s, encoding " in err


def test_text_queries_on_a_vector_index_name_model(text_setup, capsys):
    d = text_setup
    rc = main(["search", "--index", str(d / "vec_ix"), "--queries", str(d / "queries.jsonl")])
    err = capsys.readouterr().err
    assert rc == 2 and "--model" in err and len(err.strip().splitlines()) == 1
    q = str(d / "queries.jsonl")
    assert main(["search", "--index", str(d / "vec_ix"), "--queries", q, "--model", "splade-tiny"]) == 0
    # lsr bench takes --model too
    argv = ["bench", "--index", str(d / "vec_ix"), "--queries", q, "--model", "splade-tiny", "--warmup", "1"]
    assert main([*argv, "--json"]) == 0
    rec = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rec["query_kind"] == "text" and rec["queries"] == 2


def test_duplicate_ids_found_before_encoding(text_setup, tmp_path, capsys, monkeypatch):
    import lsr

    lines = (text_setup / "corpus.jsonl").read_text().splitlines()
    lines.append(lines[1])  # d1 again, on line 5
    corpus = tmp_path / "dup.jsonl"
    corpus.write_text("\n".join(lines) + "\n")
    loaded = []
    real = lsr.load_encoder
    monkeypatch.setattr(lsr, "load_encoder", lambda *a, **k: loaded.append(a) or real(*a, **k))
    rc = main(["index", "--input", str(corpus), "--output", str(tmp_path / "ix"), "--model", "splade-tiny"])
    err = capsys.readouterr().err
    assert rc == 2 and f"{corpus}:5: duplicate document id 'd1' (first on line 2)" in err
    assert loaded == []  # refused before the model was loaded, let alone the corpus encoded
    assert not os.path.exists(tmp_path / "ix")
    # lsr encode warns (and writes the vectors)
    assert main(["encode", "--input", str(corpus), "--output", str(tmp_path / "v.jsonl")]) == 0
    err = capsys.readouterr().err
    assert f"lsr: warning: {corpus}:5: duplicate id 'd1' (first on line 2)" in err


# -- first-use JIT -------------------------------------------------------------------------------
@pytest.mark.system  # compiles every kernel for every impact type: 75 s of a cold default tier
def test_warm_kernels_compiles_every_method_and_impact_type():
    from lsr.index.kernels import bmp, exact, maxscore, seismic
    from lsr.index.warmup import warm_kernels

    seconds = warm_kernels()
    assert set(seconds) == {"float32", "uint16", "uint8"}
    # (kernel, position of an impacts array in its arguments)
    kernels = [
        (exact.search_serial, 2),
        (exact.search_range, 2),
        (maxscore.search_serial, 2),
        (maxscore.search_range, 2),
        (bmp.search_serial, 2),
        (bmp.search_range, 2),
        (bmp.build_blocks, 2),
        (seismic.search_serial, 11),
        (seismic.search_range, 11),
    ]
    for kernel, pos in kernels:
        dtypes = {str(sig[pos].dtype) for sig in kernel.signatures}
        assert {"float32", "uint16", "uint8"} <= dtypes, (kernel, dtypes)


def test_an_index_built_without_reordering_runs_the_warmed_kernels(tmp_path):
    """Its empty doc_order used to be a writable array where a reordered index maps a read-only
    one: Numba compiled every search kernel again for it, after the warm-up (seconds per method
    on the first search)."""
    from lsr.index.kernels import exact

    docs = random_collection(60, 20, 3)
    b = SparseBatch.from_scipy(docs, vocab_of(20), [f"d{i}" for i in range(60)])
    with_order = open_index(build_index(b, tmp_path / "r", methods=["exact"], reorder=True))
    without = open_index(build_index(b, tmp_path / "n", methods=["exact"], reorder=False))
    assert len(with_order.doc_order) == 60 and len(without.doc_order) == 0
    q = [{"t1": 1.0, "t3": 0.5}]
    with_order.search(q, k=3)
    n_sigs = len(exact.search_serial.signatures)
    without.search(q, k=3)
    assert len(exact.search_serial.signatures) == n_sigs  # no new compilation


def test_first_build_or_search_warms_once(tmp_path, monkeypatch, capsys):
    import lsr.index.warmup as warmup

    calls = []
    monkeypatch.setattr(warmup, "warm_kernels", lambda q, **k: calls.append(k) or {x: 0.0 for x in q})
    monkeypatch.setenv("LSR_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("LSR_NO_WARMUP")
    b = SparseBatch.from_scipy(random_collection(30, 12, 1), vocab_of(12), [f"d{i}" for i in range(30)])
    write_vectors(tmp_path / "v.jsonl", b)
    argv = ["index", "--input", str(tmp_path / "v.jsonl"), "--output", str(tmp_path / "ix"), "--quantization"]
    argv += ["uint8", "--methods", "exact"]
    assert main(argv) == 0
    assert "first uint8 run here: compiling" in capsys.readouterr().err
    assert calls == [{"show_progress": True}]
    assert main([*argv, "--overwrite"]) == 0
    assert "run here" not in capsys.readouterr().err and len(calls) == 1  # once, not per command
    # searching that uint8 index needs no more warming; a float32 build warms float32
    q = tmp_path / "q.jsonl"
    q.write_text('{"id": "q1", "vector": {"t1": 1.0}}\n')
    assert main(["search", "--index", str(tmp_path / "ix"), "--queries", str(q)]) == 0 and len(calls) == 1
    argv[argv.index("uint8")] = "float32"
    assert main([*argv, "--overwrite"]) == 0 and len(calls) == 2
    assert "first float32 run here" in capsys.readouterr().err
    # lsr warmup does it ahead, for the types asked (default all three)
    monkeypatch.setenv("LSR_CACHE_DIR", str(tmp_path / "cache3"))
    assert main(["warmup", "--quantization", "uint16"]) == 0 and len(calls) == 3
    assert "kernels ready" in capsys.readouterr().err
    assert warmup.needs_warmup() == ["float32", "uint8"]
    monkeypatch.setenv("LSR_NO_WARMUP", "1")
    monkeypatch.setenv("LSR_CACHE_DIR", str(tmp_path / "cache2"))
    assert main([*argv, "--overwrite"]) == 0 and len(calls) == 3  # LSR_NO_WARMUP: never


def test_readme_documents_the_first_minutes():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "nDCG@10 = 0.6436" in readme and "5 min 29 s" in readme  # the demo's figure and time
    assert '-e ".[serve,eval]"' in readme  # "install everything" includes the service
    for text in ("lsr check my_index", "lsr warmup", "--threads N|auto", "LSR_NO_WARMUP", "manifest_crc32"):
        assert text in readme, text
    from lsr.cli.main import COMMANDS

    for cmd in COMMANDS:  # the extras table names every command
        assert f"`{cmd}`" in readme, cmd
