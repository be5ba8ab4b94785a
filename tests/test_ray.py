"""The distributed pipeline on a local Ray (started once per pytest run, 2 CPUs): encoding on Ray =
`lsr encode`, resumable; shards built by Ray tasks = one index; shards in Ray actors = in-process
shards; a killed shard actor comes back (503 meanwhile, or a replica answers); bad input fails in
one line. Skips when ray is not installed."""

from __future__ import annotations

import time

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from lsr.cli.main import main  # noqa: E402
from lsr.errors import LsrError  # noqa: E402
from lsr.index import build_index, open_index  # noqa: E402
from lsr.index.shards import ShardUnavailableError  # noqa: E402
from lsr.vectors import SparseBatch, write_vectors  # noqa: E402

from conftest import random_collection, vocab_of  # noqa: E402
from test_index import random_queries  # noqa: E402

pytestmark = pytest.mark.system
PARTS = ["--bmp-block-size", "8", "--seismic-n-postings", "60", "--seismic-block-size", "8"]


@pytest.fixture(scope="session")
def local_ray():
    from lsr.distributed import init_ray

    started = not ray.is_initialized()
    init_ray("local", num_cpus=2)
    yield ray
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def vectors(tmp_path_factory):
    """A vector file of 300 random documents (weights k/8: exact ties) and its matrix."""
    docs = random_collection(300, 70, 3, density=0.07)
    path = tmp_path_factory.mktemp("vec") / "docs.jsonl"
    batch = SparseBatch.from_scipy(docs, vocab_of(70), [f"doc{i}" for i in range(300)])
    write_vectors(path, batch)
    return path, docs


@pytest.fixture(scope="module")
def built(local_ray, vectors, tmp_path_factory):
    """One index and a 2-shard index built on Ray from the same vector file (by the CLI)."""
    path, docs = vectors
    d = tmp_path_factory.mktemp("built")
    assert main(["index", "--input", str(path), "--output", str(d / "one"), *PARTS]) == 0
    assert (
        main(
            ["index", "--input", str(path), "--output", str(d / "sh"), "--ray", "--shards", "2"]
            + ["--block-size", "64", *PARTS]
        )
        == 0
    )
    return open_index(d / "one"), d / "sh", docs


def _same(a, b):
    assert [r.ids for r in a] == [r.ids for r in b]
    assert [r.scores for r in a] == [r.scores for r in b]


def test_built_on_ray_equals_one_index(built):
    one, sh_path, docs = built
    sh = open_index(sh_path)
    assert len(sh.shards) == 2 and sh.n_docs == 300 and sh.methods == one.methods
    assert [e["n_docs"] for e in sh.manifest["shards"]] == [192, 108]  # groups of 64-line blocks
    queries = random_queries(docs.shape[1], 20, 5)
    queries = SparseBatch.from_scipy(queries, vocab_of(docs.shape[1]))
    for method in ("exact", "maxscore", "bmp"):
        for k in (1, 10, 310):
            _same(one.search(queries, k=k, method=method), sh.search(queries, k=k, method=method))


def test_shards_in_ray_actors_equal_in_process(built):
    from lsr.distributed.search import open_on_ray

    one, sh_path, docs = built
    queries = SparseBatch.from_scipy(random_queries(docs.shape[1], 20, 6), vocab_of(docs.shape[1]))
    on_ray = open_on_ray(sh_path, "local")
    try:
        for method in ("exact", "maxscore", "bmp"):
            for k in (3, 10, 300):
                _same(one.search(queries, k=k, method=method), on_ray.search(queries, k=k, method=method))
    finally:
        on_ray.close()


def _wait_until_answers(index, queries, want, deadline_s=120.0):
    t0 = time.monotonic()
    while True:
        try:
            got = index.search(queries, k=10)
            _same(want, got)
            return
        except ShardUnavailableError:
            assert time.monotonic() - t0 < deadline_s, "the shard actor did not come back"
            time.sleep(0.5)


def test_killed_shard_actor_is_restarted(built):
    from lsr.distributed.search import open_on_ray

    one, sh_path, docs = built
    queries = SparseBatch.from_scipy(random_queries(docs.shape[1], 10, 7), vocab_of(docs.shape[1]))
    want = one.search(queries, k=10)
    idx = open_on_ray(sh_path, "local")
    try:
        actor = idx.backend.actors[1][0]
        pid = ray.get(actor.pid.remote())
        ray.kill(actor, no_restart=False)
        try:  # during the restart: a clear 503-style error, never a wrong answer
            _same(want, idx.search(queries, k=10))
        except ShardUnavailableError as e:
            assert "shard 1 (shard-0001) is unavailable" in str(e) and "\n" not in str(e)
        _wait_until_answers(idx, queries, want)
        assert ray.get(actor.pid.remote()) != pid  # a new process reopened the shard
    finally:
        idx.close()


def test_replica_answers_while_the_other_restarts(built):
    from lsr.distributed.search import open_on_ray

    one, sh_path, docs = built
    queries = SparseBatch.from_scipy(random_queries(docs.shape[1], 10, 8), vocab_of(docs.shape[1]))
    want = one.search(queries, k=10)
    idx = open_on_ray(sh_path, "local", replicas=2)
    try:
        for _ in range(2):  # whichever replica the round robin picks first
            ray.kill(idx.backend.actors[0][0], no_restart=False)
            ray.kill(idx.backend.actors[1][1], no_restart=False)
            _same(want, idx.search(queries, k=10))
    finally:
        idx.close()


def test_service_answers_503_while_a_shard_restarts(built):
    from fastapi.testclient import TestClient

    from lsr.service.app import create_app
    from lsr.service.settings import Settings

    one, sh_path, docs = built
    app = create_app(Settings(index=str(sh_path), ray="local", warmup=False))
    body = {"query": {"vector": {"t1": 1.0, "t5": 0.5}}, "k": 5}
    with TestClient(app) as client:
        r = client.post("/search", json=body)
        assert r.status_code == 200, r.text
        assert [h["id"] for h in r.json()["hits"]] == one.search([{"t1": 1.0, "t5": 0.5}], k=5)[0].ids
        backend = app.state.lsr.index.backend
        actor = backend.actors[0][0]
        ray.kill(actor, no_restart=False)
        seen = set()
        t0 = time.monotonic()
        while time.monotonic() - t0 < 120:
            r = client.post("/search", json=body)
            seen.add(r.status_code)
            if r.status_code == 503:
                detail = r.json()["detail"]
                assert "shard 0 (shard-0000) is unavailable" in detail and r.headers.get("retry-after") == "1"
            elif r.status_code == 200 and 503 in seen:
                break
            time.sleep(0.1)
        assert seen <= {200, 503} and 503 in seen and r.status_code == 200, seen
        assert [h["id"] for h in r.json()["hits"]] == one.search([{"t1": 1.0, "t5": 0.5}], k=5)[0].ids


def test_encode_on_ray_equals_lsr_encode_and_resumes(local_ray, tmp_path):
    import json

    corpus = tmp_path / "corpus.jsonl"
    words = "bone vitamin cell heart lipid fracture enzyme repair cold mitosis yeast".split()
    rng = np.random.default_rng(0)
    with open(corpus, "w") as f:
        for i in range(300):
            text = " ".join(rng.choice(words, int(rng.integers(3, 12))))
            f.write(json.dumps({"_id": f"d{i}", "title": "t" if i % 3 else "", "text": text}) + "\n")
    assert main(["encode", "--input", str(corpus), "--output", str(tmp_path / "one.jsonl")]) == 0
    out = tmp_path / "parts"
    args = ["encode", "--input", str(corpus), "--output", str(out), "--ray", "--block-size", "256"]
    assert main([*args, "--actors", "2"]) == 0
    rec = json.loads((out / "parts.json").read_text())
    assert rec["n_docs"] == 300 and len(rec["parts"]) == 2 and rec["encoded_now"] == 2
    joined = "".join((out / p["file"]).read_text() for p in rec["parts"])
    assert joined == (tmp_path / "one.jsonl").read_text()  # the same vectors, to the last digit
    assert main(args) == 0  # rerun: nothing to do
    assert json.loads((out / "parts.json").read_text())["encoded_now"] == 0
    (out / "part-00001.jsonl").write_text("truncated")  # a damaged part is encoded again
    assert main(args) == 0
    assert json.loads((out / "parts.json").read_text())["encoded_now"] == 1
    assert "".join((out / p["file"]).read_text() for p in rec["parts"]) == joined


def test_index_on_ray_from_a_corpus_records_the_encoder(local_ray, tmp_path):
    """`lsr index --ray --shards 2 --model` = `lsr index --model`: same ids, scores, text queries."""
    import json

    corpus = tmp_path / "corpus.jsonl"
    with open(corpus, "w") as f:
        for i in range(300):  # 2 blocks of 256 (encoding blocks hold a multiple of 256 texts)
            f.write(
                json.dumps({"_id": f"d{i}", "text": f"document {i} about bone and vitamin {i % 7}"}) + "\n"
            )
    assert (
        main(["index", "--input", str(corpus), "--output", str(tmp_path / "one"), "--model", "splade-tiny"])
        == 0
    )
    args = ["index", "--input", str(corpus), "--output", str(tmp_path / "sh"), "--model", "splade-tiny"]
    assert main([*args, "--ray", "--shards", "2", "--block-size", "256", "--methods", "exact"]) == 0
    one, sh = open_index(tmp_path / "one"), open_index(tmp_path / "sh")
    assert sh.encoder_config == one.encoder_config and len(sh.shards) == 2
    q = ["vitamin 3 bone", "document 12", "document 280 about bone"]
    a, b = one.search(q, k=5), sh.search(q, k=5)
    assert [r.ids for r in a] == [r.ids for r in b]
    np.testing.assert_allclose([r.scores for r in a], [r.scores for r in b], rtol=1e-6)


def test_unknown_address_is_a_one_line_error(local_ray, built, capsys):
    from lsr.distributed import init_ray

    with pytest.raises(LsrError, match="cannot reach a Ray cluster at 127.0.0.1:1"):
        init_ray("127.0.0.1:1")
    with pytest.raises(LsrError, match="not HOST:PORT"):
        init_ray("nowhere")
    _, sh_path, _ = built
    assert main(["search", "--index", str(sh_path), "--queries", "x.jsonl", "--ray", "127.0.0.1:1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("lsr: error: ") and "\n" not in err


def test_bad_sharded_builds_are_one_line_errors(local_ray, vectors, tmp_path, capsys):
    path, _ = vectors
    code = main(["index", "--input", str(path), "--output", str(tmp_path / "x"), "--ray", "--shards", "9"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert "9 shards need at least 9 blocks, the input has 1" in err and "\n" not in err
    one = tmp_path / "one"
    build_index(path, one, methods=["exact"])
    assert main(["search", "--index", str(one), "--queries", str(path), "--ray"]) == 2
    assert "--ray needs a sharded index" in capsys.readouterr().err


def test_build_on_ray_resumes_by_content_hash(local_ray, vectors, tmp_path):
    """A rerun keeps shards built from the same blocks and settings, rebuilds the others."""
    import os

    path, _ = vectors
    out = tmp_path / "sh"
    args = ["index", "--input", str(path), "--output", str(out), "--ray", "--shards", "2"]
    args += ["--block-size", "64", "--methods", "exact"]
    assert main(args) == 0

    def stamps():
        return [os.stat(out / f"shard-000{i}" / "manifest.json").st_mtime_ns for i in range(2)]

    before = stamps()
    want = open_index(out).search([{"t1": 1.0, "t2": 2.0}], k=20)
    assert main([*args, "--overwrite"]) == 0
    assert stamps() == before  # nothing rebuilt
    (out / "shard-0001.key").write_text("something else")  # as if that build had been interrupted
    assert main([*args, "--overwrite"]) == 0
    after = stamps()
    assert after[0] == before[0] and after[1] != before[1]
    _same(want, open_index(out).search([{"t1": 1.0, "t2": 2.0}], k=20))
    assert main([*args, "--overwrite", "--quantization", "uint8"]) == 0  # other settings: all rebuilt
    assert all(a != b for a, b in zip(stamps(), after, strict=True))
