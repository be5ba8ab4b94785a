"""Sharded indexes in one process (no Ray): shards.json, the exact top-k merge (= one index over all
documents = the brute-force oracle, ties included), global statistics, and bad shards refused."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from lsr.errors import LsrError
from lsr.index import build_index, open_index
from lsr.index.shards import (
    SHARDS_FILE,
    ShardedIndex,
    build_sharded_index,
    merge_topk,
    split_contiguous,
    write_shards_manifest,
)

from conftest import random_collection, vocab_of
from test_index import oracle, random_queries

PARTS = {"bmp": {"block_size": 8, "dense_fraction": 0.3}, "seismic": {"n_postings": 60, "block_size": 8}}
SAFE = [("exact", {}), ("maxscore", {}), ("bmp", {})]


@pytest.fixture(scope="module", params=["float32", "uint8"])
def pair(request, tmp_path_factory):
    """(one index, the same documents in 3 shards, the document matrix) for a quantization."""
    q = request.param
    docs = random_collection(400, 90, 7, density=0.06)  # weights k/8: many exact ties
    d = tmp_path_factory.mktemp(f"shards-{q}")
    # shards share one global quantization step: compare with a one-index build of the same quantizer
    build_index(docs, d / "one", vocab=vocab_of(90), quantization=q, quantizer="global", **PARTS)
    build_sharded_index(docs, d / "sharded", 3, vocab=vocab_of(90), quantization=q, **PARTS)
    return open_index(d / "one"), open_index(d / "sharded"), docs


def test_layout_and_global_stats(pair):
    one, sh, docs = pair
    assert isinstance(sh, ShardedIndex)
    m = json.loads(open(os.path.join(sh.path, SHARDS_FILE)).read())
    assert [e["n_docs"] for e in m["shards"]] == [134, 133, 133]
    assert [e["first_doc"] for e in m["shards"]] == [0, 134, 267]
    assert m["n_docs"] == one.n_docs and m["n_postings"] == one.n_postings
    # global df = df of the unsharded index, term by term
    assert m["stats"]["df"] == np.diff(np.asarray(one.offsets, np.int64)).tolist()
    assert sh.methods == one.methods
    # every shard shares one quantization scale (the global one)
    assert {float(s.scale) for s in sh.shards} == {float(one.scale)}
    # build order is contiguous: global doc n is the unsharded doc n
    assert [sh.doc_id(i) for i in range(sh.n_docs)] == [one.doc_id(i) for i in range(one.n_docs)]
    assert sh.lookup("300") == 300 and sh.lookup("nope") is None


@pytest.mark.parametrize("method,params", SAFE)
def test_sharded_equals_unsharded_and_oracle(pair, method, params):
    one, sh, docs = pair
    queries = random_queries(90, 25, 11)
    for k in (1, 5, 10, 137, docs.shape[0] + 5):
        want = oracle(one, docs, queries, k)
        a = one.search(queries, k=k, method=method, **params)
        for threads in (1, 2):
            b = sh.search(queries, k=k, method=method, threads=threads, **params)
            for qi, ((wd, ws), x, y) in enumerate(zip(want, a, b, strict=True)):
                assert y.docs.tolist() == wd.tolist() == x.docs.tolist(), (method, k, qi)
                assert y.ids == x.ids and y.scores == x.scores  # bit-identical scores
                np.testing.assert_allclose(y.scores, ws, rtol=1e-6)


def test_sharded_seismic_is_sharded_exact_on_what_it_finds(pair):
    """Seismic is approximate per shard: its merged hits carry exact scores and a recall floor."""
    one, sh, docs = pair
    queries = random_queries(90, 25, 12)
    want = oracle(one, docs, queries, 10)
    got = sh.search(queries, k=10, method="seismic")
    exact = sh.search(queries, k=docs.shape[0], method="exact")
    recalls = []
    for (wd, _), g, e in zip(want, got, exact, strict=True):
        full = dict(zip(e.docs.tolist(), e.scores, strict=True))
        assert all(full[d] == s for d, s in zip(g.docs.tolist(), g.scores, strict=True))
        if len(wd):
            recalls.append(len(set(g.docs.tolist()) & set(wd.tolist())) / len(wd))
    assert np.mean(recalls) >= 0.9


def test_merge_topk_ties_by_global_doc():
    """Two shards of 3 docs; equal scores across shards must come out by global doc number."""
    d0, s0 = np.array([[2, 0, -1]]), np.array([[5.0, 1.0, 0.0]], np.float32)
    d1, s1 = np.array([[0, 1, 2]]), np.array([[5.0, 5.0, 1.0]], np.float32)
    docs, scores = merge_topk([(d1, s1), (d0, s0)], [3, 0], 4)  # given in any order of shards
    assert docs.tolist() == [[2, 3, 4, 0]] and scores.tolist() == [[5, 5, 5, 1]]
    docs, _ = merge_topk([(d0, s0), (d1, s1)], [0, 3], 8)
    assert docs.tolist() == [[2, 3, 4, 0, 5, -1, -1, -1]]


def test_split_contiguous():
    assert split_contiguous(10, 3) == [(0, 4), (4, 7), (7, 10)]
    with pytest.raises(LsrError, match="cannot fill"):
        split_contiguous(2, 3)


def test_missing_shard_is_a_one_line_error(pair, tmp_path):
    _, sh, _ = pair
    copy = tmp_path / "copy"
    shutil.copytree(sh.path, copy)
    shutil.rmtree(copy / "shard-0001")
    with pytest.raises(LsrError, match=r"shard shard-0001 listed in shards.json is missing") as e:
        open_index(copy)
    assert "\n" not in str(e.value)


def _encoded_docs():
    import lsr

    pytest.importorskip("torch")
    texts = [
        "vitamin d deficiency and bone fractures in older women",
        "statins lower ldl cholesterol and heart attack risk",
        "dna repair enzymes fix double strand breaks",
        "the cat sat on the mat",
        "bone density falls after menopause",
        "mitosis and cell division in yeast",
        "cholesterol transport by lipoproteins",
        "vitamin c and the common cold",
    ] * 3
    enc = lsr.load_encoder("splade-tiny", kind="inference-free")
    batch = enc.encode_documents([f"{t} {i}" for i, t in enumerate(texts)])
    batch.ids = [f"d{i}" for i in range(len(texts))]
    return enc, batch


def test_inference_free_uses_global_idf(tmp_path):
    """Text queries of an inference-free encoder take IDF from all shards: sharded = unsharded, while
    one shard's own IDF differs (so the test would catch per-shard statistics)."""
    import lsr

    enc, batch = _encoded_docs()
    build_index(batch, tmp_path / "one", encoder=enc, methods=["exact"])
    build_sharded_index(batch, tmp_path / "sh", 2, encoder=enc, methods=["exact"])
    one, sh = open_index(tmp_path / "one"), open_index(tmp_path / "sh")
    queries = ["vitamin bone fractures", "cholesterol heart", "cat mat dna"]
    a = one.search(queries, k=10)
    b = sh.search(queries, k=10)
    assert [r.ids for r in a] == [r.ids for r in b] and [r.scores for r in a] == [r.scores for r in b]
    q_global = sh.encode_queries(queries).to_dicts()
    local = lsr.load_encoder("splade-tiny", kind="inference-free")
    q_shard = sh.shards[1].encode_queries(queries, encoder=local).to_dicts()
    assert q_global != q_shard  # per-shard IDF would have weighted the queries differently
    assert q_global == one.encode_queries(queries).to_dicts()


def test_shards_with_different_encoders_are_refused(tmp_path):
    import lsr

    enc, batch = _encoded_docs()
    build_sharded_index(batch, tmp_path / "sh", 2, encoder=enc, methods=["exact"])
    other = lsr.load_encoder("splade-tiny", kind="inference-free", doc_max_length=64)
    half = batch.select(np.arange(12, 24))
    shutil.rmtree(tmp_path / "sh" / "shard-0001")
    build_index(half, tmp_path / "sh" / "shard-0001", encoder=other, methods=["exact"])
    with pytest.raises(LsrError, match="different encoders") as e:
        open_index(tmp_path / "sh")
    assert "\n" not in str(e.value)
    with pytest.raises(LsrError, match="built with different encoders"):
        write_shards_manifest(tmp_path / "sh", ["shard-0000", "shard-0001"])


def test_an_id_in_two_shards_is_refused_as_one_index_refuses_it(tmp_path, capsys):
    """Each shard's builder sees only its own documents: before the check, a duplicate id in two
    shards built an index holding both copies, where `lsr index` refuses the same input."""
    from lsr.cli.main import main
    from lsr.vectors import SparseBatch, write_vectors

    docs = random_collection(90, 30, 4, density=0.3)
    ids = [f"d{i}" for i in range(90)]
    ids[75] = "d10"  # shard 0 and shard 2 of 3
    batch = SparseBatch.from_scipy(docs, vocab_of(30), ids)
    with pytest.raises(LsrError, match="duplicate document id 'd10'") as e:
        build_index(batch, tmp_path / "one", methods=["exact"])
    with pytest.raises(
        LsrError, match=r"duplicate document id 'd10' \(in shards shard-0000 and shard-0002\)"
    ) as e:
        build_sharded_index(batch, tmp_path / "sh", 3, methods=["exact"])
    assert "\n" not in str(e.value) and not os.path.exists(tmp_path / "sh" / SHARDS_FILE)
    vec = tmp_path / "docs.jsonl"
    write_vectors(vec, batch)
    args = ["index", "--input", str(vec), "--output", str(tmp_path / "cli"), "--methods", "exact"]
    assert main([*args, "--shards", "3"]) == 2
    assert "duplicate document id 'd10'" in capsys.readouterr().err


def test_cli_shards_without_ray(tmp_path, capsys):
    """`lsr index --shards 2` (in-process) = `lsr index`; `lsr search` and `lsr info` read it."""
    from lsr.cli.main import main
    from lsr.vectors import SparseBatch, write_vectors

    docs = random_collection(120, 40, 9, density=0.3)
    vec = tmp_path / "docs.jsonl"
    write_vectors(vec, SparseBatch.from_scipy(docs, vocab_of(40), [f"d{i}" for i in range(120)]))
    assert main(["index", "--input", str(vec), "--output", str(tmp_path / "one"), "--methods", "exact"]) == 0
    args = ["index", "--input", str(vec), "--output", str(tmp_path / "sh"), "--methods", "exact"]
    assert main([*args, "--shards", "2"]) == 0
    runs = []
    for name in ("one", "sh"):
        out = tmp_path / f"{name}.run"
        assert (
            main(["search", "--index", str(tmp_path / name), "--queries", str(vec), "--output", str(out)])
            == 0
        )
        runs.append(out.read_text())
    assert runs[0] == runs[1] and len(runs[0].splitlines()) > 100
    capsys.readouterr()
    assert main(["info", str(tmp_path / "sh")]) == 0
    assert "2 shards" in capsys.readouterr().out
    assert main([*args, "--shards", "0", "--overwrite"]) == 2
    assert "--shards must be > 0" in capsys.readouterr().err


def test_group_blocks_contiguous_and_balanced():
    """Shards take contiguous runs of blocks (build order), every shard at least one block."""
    from lsr.distributed.blocks import Block
    from lsr.distributed.build import group_blocks

    def nos(sizes, n):
        blocks = [Block(i, "x.jsonl", 0, 1, s, "") for i, s in enumerate(sizes)]
        return [[b.no for b in g] for g in group_blocks(blocks, n)]

    assert nos([10] * 8, 3) == [[0, 1, 2], [3, 4, 5], [6, 7]]
    assert nos([10] * 8, 8) == [[i] for i in range(8)]
    assert nos([5, 5, 5, 5, 5, 5, 100], 3) == [[0, 1, 2, 3, 4], [5], [6]]
    with pytest.raises(LsrError, match="3 shards need at least 3 blocks, the input has 2"):
        nos([1, 1], 3)
    with pytest.raises(LsrError, match="a .gz input is read as one block"):
        group_blocks([Block(0, "x.jsonl.gz", 0, -1, 10, "")], 2)
