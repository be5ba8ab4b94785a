"""Writes to a sharded index (lsr.index.living_shards) against an independent oracle.

The oracle keeps, per shard, the live documents as plain dicts in the order they were (last) added
there, routes a new id with its own BLAKE2b-64 (an id a shard holds, or held before a delete not yet
committed, stays there), quantizes with its own code (test_living_index.Oracle), scores with float64
dot products and breaks ties by (shard, order in the shard): the order the sharded index promises."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from test_living_index import FILTERS, SMALL_PARTS, Oracle, _meta, _vec

from lsr.errors import LsrError
from lsr.index import open_index
from lsr.index.living_shards import LivingShardedIndex
from lsr.index.shards import SHARDS_FILE, ShardedIndex, build_sharded_index, open_sharded, route_shard

from conftest import random_collection, vocab_of

N_TERMS = 50
N_SHARDS = 3


def oracle_route(doc_id: str, n: int) -> int:
    """The routing rule, written out again (not imported from the code under test)."""
    return int.from_bytes(hashlib.blake2b(doc_id.encode("utf-8"), digest_size=8).digest(), "big") % n


class ShardOracle:
    """Per shard an :class:`Oracle` (insertion-ordered live documents); ``home`` maps the ids live or
    deleted since the last commit to their shard."""

    def __init__(self, n: int, quantization: str, scale: float) -> None:
        self.shards = [Oracle(quantization, scale) for _ in range(n)]
        self.home: dict[str, int] = {}

    def add(self, doc_id: str, vec: dict, meta: dict | None) -> None:
        s = self.home.get(doc_id)
        if s is None:
            s = oracle_route(doc_id, len(self.shards))
        self.shards[s].add(doc_id, vec, meta)
        self.home[doc_id] = s

    def delete(self, doc_id: str) -> None:
        for o in self.shards:
            o.delete(doc_id)

    def commit(self) -> None:
        self.home = {i: s for s, o in enumerate(self.shards) for i in o.docs}

    def live(self) -> list[str]:
        return [i for o in self.shards for i in o.docs]

    def search(self, q: dict, k: int, flt: dict | None = None) -> list[tuple[str, float]]:
        hits = []
        for s, o in enumerate(self.shards):
            for pos, (d, sc) in enumerate(o.search(q, len(o.docs) + 1, flt)):
                hits.append((-sc, s, pos, d))
        hits.sort()
        return [(d, -sc) for sc, _, _, d in hits[:k]]

    def df(self, token: str) -> int:
        return sum(1 for o in self.shards for v, _ in o.docs.values() if token in v)


def _check(ix, oracle: ShardOracle, rng: np.random.Generator, tokens: list[str]) -> None:
    live = oracle.live()
    assert ix.n_live_docs == len(live)
    # every live id is held by its oracle shard and by no other (no duplicates, nothing lost)
    for s, o in enumerate(oracle.shards):
        assert ix.shards[s].n_live_docs == len(o.docs)
    for i in rng.choice(live, size=min(60, len(live)), replace=False).tolist():
        held = [s for s, sh in enumerate(ix.shards) if sh.lookup(i) is not None]
        assert held == [oracle.home[i]], i
    queries = [_vec(rng, tokens) for _ in range(6)]
    for i in rng.choice(len(live), size=min(3, len(live)), replace=False).tolist():
        queries.append(dict(oracle.shards[oracle.home[live[i]]].docs[live[i]][0]))
    flts = [None] + ([FILTERS[int(rng.integers(len(FILTERS)))]] if ix.fields else [])
    for flt in flts:
        for k in (1, 7, 40):
            want = [oracle.search(q, k, flt) for q in queries]
            for method in ix.methods:
                got = ix.search(queries, k=k, method=method, filter=flt)
                for qi, (w, g) in enumerate(zip(want, got, strict=True)):
                    if method == "seismic":  # approximate: true scores, live and passing, enough of them
                        full = dict(oracle.search(queries[qi], len(live) + 1, flt))
                        assert len(g.ids) == min(k, len(full)) and len(set(g.ids)) == len(g.ids)
                        for doc_id, score in zip(g.ids, g.scores, strict=True):
                            assert score == pytest.approx(full[doc_id], rel=1e-6)
                        continue
                    assert g.ids == [d for d, _ in w], (method, k, qi, flt)
                    np.testing.assert_allclose(g.scores, [s for _, s in w], rtol=1e-6)
    # global statistics over the live documents of all shards
    df = ix.document_frequencies()
    assert len(df) == len(ix.vocab)
    for t in tokens:
        assert (df[ix.vocab.get(t)] if t in ix.vocab else 0) == oracle.df(t), t


def _build(tmp_path, quantization: str, n_base: int = 150, seed: int = 0, **kw):
    base = random_collection(n_base, N_TERMS, seed, density=0.08)
    root = build_sharded_index(
        base,
        tmp_path / f"sh-{quantization}",
        N_SHARDS,
        vocab=vocab_of(N_TERMS),
        quantization=quantization,
        **kw,
    )
    return root, base


def _base_oracle(base, quantization: str, scale: float) -> ShardOracle:
    """The built shards: contiguous ranges of build order, the first n % 3 one longer."""
    oracle = ShardOracle(N_SHARDS, quantization, scale)
    tokens = vocab_of(N_TERMS).tokens
    n = base.shape[0]
    sizes = [n // N_SHARDS + (1 if s < n % N_SHARDS else 0) for s in range(N_SHARDS)]
    d = 0
    for s, size in enumerate(sizes):
        for _ in range(size):
            row = base.getrow(d)
            oracle.shards[s].add(
                str(d), {tokens[t]: float(w) for t, w in zip(row.indices, row.data, strict=True)}, None
            )
            d += 1
    oracle.commit()
    return oracle


@pytest.mark.parametrize("quantization", ["float32", "uint8"])
def test_random_writes_equal_oracle(tmp_path, quantization):
    rng = np.random.default_rng(7)
    root, base = _build(tmp_path, quantization, **SMALL_PARTS)
    ix = open_index(root, writable=True, parts_min_docs=40, merge_factor=3, merge_min_docs=10)
    assert isinstance(ix, LivingShardedIndex)
    oracle = _base_oracle(base, quantization, float(ix.scale))
    tokens = vocab_of(N_TERMS).tokens
    next_id, checks, moved_back = 0, 0, 0
    for _op in range(70):
        r = rng.random()
        if r < 0.4:  # new ids, updates of live ids, and ids deleted since the last commit
            n = int(rng.integers(1, 25))
            live = oracle.live()
            gone = [i for i in oracle.home if i not in live]
            ids = []
            for _ in range(n):
                x = rng.random()
                if live and x < 0.3:
                    ids.append(live[int(rng.integers(len(live)))])
                elif gone and x < 0.4:
                    ids.append(gone[int(rng.integers(len(gone)))])
                    moved_back += oracle.home[ids[-1]] != oracle_route(ids[-1], N_SHARDS)
                else:
                    ids.append(f"n{next_id}")
                    next_id += 1
            ids = list(dict.fromkeys(ids))
            if rng.random() < 0.15:  # the vocabulary grows (in every shard)
                tokens = tokens + [f"new{len(tokens)}"]
            vecs = [_vec(rng, tokens) for _ in ids]
            metas = [_meta(rng) for _ in ids]
            assert ix.add(vecs, ids=ids, metadata=metas) == len(ids)
            for i, v, m in zip(ids, vecs, metas, strict=True):
                oracle.add(i, v, m)
        elif r < 0.6:
            live = oracle.live()
            ids = rng.choice(live, size=min(int(rng.integers(1, 10)), len(live)), replace=False).tolist()
            assert ix.delete(ids + ["never-added"]) == {"deleted": len(ids), "not_found": 1}
            for i in ids:
                oracle.delete(i)
        elif r < 0.85:
            ix.commit()
        else:
            ix.merge(max_segments=int(rng.integers(1, 3)) if rng.random() < 0.4 else None)
        if r >= 0.6:
            oracle.commit()
            _check(ix, oracle, rng, tokens)
            checks += 1
    ix.commit()
    oracle.commit()
    _check(ix, oracle, rng, tokens)
    assert checks > 8 and moved_back > 0  # the interesting routing case happened
    # a reader opened now sees every committed write, its vocabulary and fields included
    ro = open_index(root)
    assert isinstance(ro, LivingShardedIndex) and ro.generations == ix.generations
    _check(ro, oracle, rng, tokens)
    with pytest.raises(LsrError, match="read-only"):
        ro.add([{"t1": 1.0}], ids=["x"])


def test_update_lands_in_owning_shard_and_reader_refreshes(tmp_path):
    root, _ = _build(tmp_path, "float32", n_base=30, methods=["exact"])
    reader = open_index(root)
    assert isinstance(reader, ShardedIndex)  # never written: the static sharded index
    ix = open_index(root, writable=True)
    # "3" was built into shard 0 (ids 0..9), but routes elsewhere as a new id
    assert route_shard("3", N_SHARDS) != 0
    ix.add([{"t1": 7.0}], ids=["3"])
    ix.add([{"t1": 8.0}], ids=["3"])  # twice before a commit: still one document
    ix.commit()
    assert [s.lookup("3") is not None for s in ix.shards] == [True, False, False]
    assert ix.n_live_docs == 30 and ix.search([{"t1": 1.0}], k=1)[0].ids == ["3"]
    # a new id goes by the hash, the same in any process
    ix.add([{"t2": 1.0}], ids=["brand-new"])
    ix.commit()
    assert ix.lookup("brand-new") >> 53 == oracle_route("brand-new", N_SHARDS)
    # the open reader moves to the new generations on refresh; a fresh open sees them at once
    r2 = open_index(root)
    assert r2.lookup("brand-new") is not None and r2.n_live_docs == 31
    doc = r2.document(r2.lookup("3"))
    assert doc["id"] == "3"
    ix.delete(["brand-new"])
    ix.add([{"t3": 1.0}], ids=["later"])
    ix.commit()
    assert r2.lookup("brand-new") is not None and r2.lookup("later") is None  # pinned until refresh
    assert r2.refresh() == ix.generation
    assert r2.lookup("brand-new") is None and r2.lookup("later") is not None and r2.n_live_docs == 31
    # the static reader of before cannot see writes; opened again it is a living one
    with pytest.raises(LsrError, match="have been written to"):
        open_sharded(root)


def test_routing_is_pinned_and_stable_across_processes():
    # pinned values: changing the rule would send ids of existing indexes to other shards
    assert [route_shard(i, 3) for i in ("doc-1", "doc-2", "0", "é")] == PINNED
    assert [route_shard(i, 7) for i in ("doc-1", "doc-2", "0", "é")] == PINNED7
    assert [oracle_route(i, 3) for i in ("doc-1", "doc-2", "0", "é")] == PINNED  # the rule as documented
    assert hashlib.blake2b(b"doc-1", digest_size=8).hexdigest() == "56f47a285f34f541"
    code = "from lsr.index.shards import route_shard; print([route_shard(i, 3) for i in ('doc-1','doc-2','0','é')])"
    for seed in ("1", "2"):
        out = subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        )
        assert out.stdout.strip() == str(PINNED)


PINNED = [1, 2, 1, 0]
PINNED7 = [3, 6, 2, 2]


def test_bad_input_changes_no_shard(tmp_path):
    root, _ = _build(tmp_path, "float32", n_base=30, methods=["exact"])
    ix = open_index(root, writable=True)
    ix.add([{"t1": 1.0}], ids=["m"], metadata=[{"lang": "en", "year": 2000}])
    gens = (ix.commit(), ix.generations)
    # ids chosen so that every batch spans several shards
    ids = ["a", "b", "c", "f", "g", "h"]
    assert len({route_shard(i, N_SHARDS) for i in ids}) == N_SHARDS
    ok = [{"t1": 1.0}] * 5
    bad = [
        (lambda: ix.add(ok + [{"t2": 1.0}], ids=ids[:5] + ["a"]), "duplicate document id 'a'"),
        (lambda: ix.add(ok + [{"t2": -1.0}], ids=ids), ">= 0"),
        (lambda: ix.add(ok + [{"t2": 1.0}], ids=ids, metadata=[None] * 5 + [{"year": "x"}]), "number field"),
        (lambda: ix.add(ok + [{"t2": 1.0}], ids=ids, metadata=[None] * 5), "5 metadata objects for 6"),
        (lambda: ix.add(ok + [{"zz": 1.0}], ids=ids[:5] + [""]), "invalid document id"),
        (lambda: ix.add(ok, ids=ids), "6 ids for 5 documents"),
        (lambda: ix.search([{"t1": 1.0}], filter={"nope": 1}), "unknown metadata field 'nope'"),
    ]
    for call, message in bad:
        with pytest.raises(LsrError, match=message):
            call()
        assert ix.pending == 0 and all(s.pending == 0 for s in ix.shards)
    assert "zz" not in ix.vocab and all("zz" not in s._pending_vocab for s in ix.shards)
    assert (ix.commit(), ix.generations) == gens  # nothing half-applied anywhere
    with pytest.raises(LsrError, match="another writer"):
        open_index(root, writable=True)
    # uncommitted writes are invisible and roll back in every shard
    ix.add([{"t1": 50.0}] * 6, ids=ids)
    assert ix.search([{"t1": 1.0}], k=1)[0].ids != ["a"]
    ix.rollback()
    assert ix.pending == 0 and (ix.commit(), ix.generations) == gens


def test_fixed_vocabulary_refused_in_every_shard(tmp_path):
    class Enc:  # records an encoder in shards.json: the vocabulary is then fixed
        vocab = vocab_of(N_TERMS)

        def config(self):
            return {"kind": "splade", "model": "probe"}

    base = random_collection(30, N_TERMS, 1, density=0.1)
    root = build_sharded_index(base, tmp_path / "sh", N_SHARDS, encoder=Enc(), methods=["exact"])
    ix = open_index(root, writable=True)
    with pytest.raises(LsrError, match="not in the index vocabulary|another vocabulary"):
        ix.add([{"t1": 1.0}, {"t2": 1.0}, {"unknown-token": 1.0}], ids=["a", "b", "c"])
    assert ix.pending == 0 and ix.commit() == 0 and ix.generations == [0, 0, 0]


def test_old_manifest_opens_and_gets_routing(tmp_path):
    root, _ = _build(tmp_path, "float32", n_base=30, methods=["exact"])
    path = os.path.join(root, SHARDS_FILE)
    m = json.load(open(path))
    assert m["routing"]["hash"] == "blake2b-64"
    del m["routing"]  # as written before sharded writes existed
    json.dump(m, open(path, "w"))
    assert isinstance(open_index(root), ShardedIndex)
    ix = open_index(root, writable=True)
    assert json.load(open(path))["routing"]["hash"] == "blake2b-64"
    ix.close()
    m["routing"] = {"hash": "crc32"}
    json.dump(m, open(path, "w"))
    with pytest.raises(LsrError, match="routes ids by 'crc32'"):
        open_index(root, writable=True)


def test_cli_add_delete_merge_info_on_sharded_root(tmp_path, capsys):
    from lsr.cli.main import main

    root, _ = _build(tmp_path, "float32", n_base=30, methods=["exact"])
    rows = [{"id": f"x{i}", "vector": {"t1": 10.0 + i}, "metadata": {"c": "red"}} for i in range(5)]
    rows.append({"id": "3", "vector": {"t2": 9.0}})  # an update: stays in shard 0
    (tmp_path / "add.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["add", "--index", str(root), "--input", str(tmp_path / "add.jsonl")]) == 0
    assert main(["delete", "--index", str(root), "--id", "x0", "nope"]) == 0
    assert main(["merge", "--index", str(root), "--max-segments", "1"]) == 0
    capsys.readouterr()
    assert main(["info", str(root), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["n_docs"] == 34 and len(info["shards"]) == N_SHARDS
    assert sum(s["live"] for s in info["shards"]) == 34
    assert all(len(s["segments"]) == 1 for s in info["shards"])
    assert main(["info", str(root)]) == 0
    out = capsys.readouterr().out
    assert "shard-0000" in out and "generation" in out
    ix = open_index(root)
    assert [s.lookup("3") is not None for s in ix.shards] == [True, False, False]
    assert ix.search([{"t1": 1.0}], k=1, filter={"c": "red"})[0].ids == ["x4"]


def test_crash_between_shard_commits_leaves_shards_consistent_and_level(tmp_path):
    """A commit that stops after one shard (a crash between shard commits): every shard is whole,
    readers see the committed part, and the next writer brings the vocabularies level again."""
    root, _ = _build(tmp_path, "float32", n_base=30, methods=["exact"])
    ix = open_index(root, writable=True)
    s_foo = route_shard("foo-doc", N_SHARDS)
    assert s_foo != 0  # shard 0 (the one add() validates against) is left behind
    ix.add([{"foo": 5.0}, {"t1": 100.0}], ids=["foo-doc", "3"])  # "3" is shard 0's (an update)
    ix.shards[s_foo].commit()  # ... and the process dies here
    ix.close()
    ro = open_index(root)
    assert ro.lookup("foo-doc") is not None and ro.search([{"t1": 1.0}], k=1)[0].ids != ["3"]
    assert len(ro.shards[0].vocab) == N_TERMS and len(ro.shards[s_foo].vocab) == N_TERMS + 1
    assert ro.search([{"foo": 1.0}], k=5)[0].ids == ["foo-doc"]  # terms newer than a shard: no match there
    assert ro.document_frequencies()[ro.vocab.get("foo")] == 1
    ix = open_index(root, writable=True)
    bar_id = next(i for i in (f"b{j}" for j in range(100)) if route_shard(i, N_SHARDS) == 0)
    ix.add([{"bar": 2.0, "foo": 1.0}], ids=[bar_id])
    ix.commit()
    want = vocab_of(N_TERMS).tokens + ["foo", "bar"]
    assert [s.vocab.tokens for s in ix.shards] == [want] * N_SHARDS  # every shard, docs or not
    got = ix.search([{"foo": 1.0, "bar": 1.0}], k=5)[0]
    assert got.ids == ["foo-doc", bar_id] and got.scores == [5.0, 3.0]


def test_global_statistics_reach_query_encoders(tmp_path):
    """A Retriever over shards that took writes hands inference-free encoders the live df and
    document count of all shards, refreshed after each commit."""
    from lsr.retriever import Retriever

    seen = []

    class Probe:
        def config(self):
            return {"kind": "probe"}

        def with_corpus_stats(self, stats):
            seen.append((stats.n_docs, int(stats.df[stats.vocab.get("t1")])))
            return self

        def encode_queries(self, texts):
            from lsr.vectors import SparseBatch

            return SparseBatch.from_dicts([{"t1": 1.0}] * len(texts), ix.vocab)

    root, base = _build(tmp_path, "float32", n_base=30, methods=["exact"])
    ix = open_index(root, writable=True)
    df_t1 = int((base[:, 1] > 0).sum())
    ix.add([{"t1": 1.0}] * 3, ids=["p", "q", "r"])
    ix.commit()
    r = Retriever(ix, Probe(), force=True)
    r.search(["x"], k=3)
    gone = [str(d) for d in range(30) if base[d, 1] > 0][:2] + ["p"]
    ix.delete(gone)
    ix.commit()
    r.search(["x"], k=3)
    assert seen == [(33, df_t1 + 3), (30, df_t1)]


def test_service_writes_to_a_sharded_index(tmp_path):
    from fastapi.testclient import TestClient

    from lsr.service.app import create_app
    from lsr.service.settings import Settings

    root, _ = _build(tmp_path, "float32", n_base=30, methods=["exact"])
    with TestClient(create_app(Settings(index=root, writable=True, warmup=False))) as c:
        docs = [
            {"id": "3", "vector": {"t1": 90.0}},
            {"id": "new", "vector": {"t1": 80.0}, "metadata": {"c": "x"}},
        ]
        r = c.post("/documents", json={"documents": docs})
        assert r.status_code == 200 and r.json()["added"] == 2
        hits = c.post("/search", json={"query": {"vector": {"t1": 1.0}}, "k": 2}).json()["hits"]
        assert [h["id"] for h in hits] == ["3", "new"]
        f = c.post("/search", json={"query": {"vector": {"t1": 1.0}}, "k": 2, "filter": {"c": "x"}}).json()
        assert [h["id"] for h in f["hits"]] == ["new"]
        bad = c.post("/documents", json={"documents": [docs[0], docs[0]]})
        assert bad.status_code == 400 and "duplicate document id" in bad.json()["detail"]
        assert c.delete("/documents/new").json()["deleted"] == 1
        assert c.get("/documents/new").status_code == 404 and c.get("/documents/3").status_code == 200
    ix = open_index(root)
    assert [s.lookup("3") is not None for s in ix.shards] == [True, False, False] and ix.n_live_docs == 30
    # shards in Ray actors stay read-only: a clear error before any actor starts
    with pytest.raises(LsrError, match="read-only"):
        with TestClient(create_app(Settings(index=root, writable=True, ray="local", warmup=False))):
            pass


def test_ray_refuses_written_shards_before_starting(tmp_path, monkeypatch):
    pytest.importorskip("ray")
    import lsr.distributed.search as ds

    root, _ = _build(tmp_path, "float32", n_base=30, methods=["exact"])
    ix = open_index(root, writable=True)
    ix.add([{"t1": 1.0}], ids=["w"])
    ix.commit()
    monkeypatch.setattr(ds, "init_ray", lambda address: pytest.fail("Ray started"))
    with pytest.raises(LsrError, match="have been written to.*--ray backend"):
        ds.open_on_ray(root, "local")


def test_serve_ray_with_writes_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    from lsr.cli.main import main

    root, _ = _build(tmp_path, "float32", n_base=30, methods=["exact"])
    for key in ("LSR_INDEX", "LSR_TORCH_THREADS", "LSR_DEVICE", "LSR_RAY", "LSR_REPLICAS"):
        monkeypatch.delenv(key, raising=False)  # restored after the test (serve sets some)
    monkeypatch.setenv("LSR_WRITABLE", "1")
    args = ["serve", "--index", str(root), "--ray", "local", "--port", "58731", "--threads", "1"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("lsr: error: --ray serves shards read-only")


def test_an_id_a_static_build_left_in_two_shards_ends_up_held_once(tmp_path, monkeypatch):
    import lsr.index.shards as shards_mod

    # builds now refuse an id in two shards; indexes built before that can still hold one
    monkeypatch.setattr(shards_mod, "_check_unique_ids", lambda *a: None)
    base = random_collection(30, N_TERMS, 3, density=0.1)
    ids = [f"d{i}" for i in range(30)]
    ids[15] = "d0"  # shard 0 holds d0 (rows 0..9), and so does shard 1 (rows 10..19)
    root = build_sharded_index(
        base, tmp_path / "sh", N_SHARDS, vocab=vocab_of(N_TERMS), ids=ids, methods=["exact"]
    )
    ix = open_index(root, writable=True)
    assert [s.lookup("d0") is not None for s in ix.shards] == [True, True, False]
    ix.add([{"t1": 99.0}], ids=["d0"])  # an update: the lowest shard owns it, the other copy goes
    ix.commit()
    assert [s.lookup("d0") is not None for s in ix.shards] == [True, False, False]
    assert ix.n_live_docs == 29 and ix.search([{"t1": 1.0}], k=1)[0].ids == ["d0"]
    ids[16] = "d1"
    root2 = build_sharded_index(
        base, tmp_path / "sh2", N_SHARDS, vocab=vocab_of(N_TERMS), ids=ids, methods=["exact"]
    )
    ix2 = open_index(root2, writable=True)
    assert ix2.delete(["d1", "d1", "nope"]) == {"deleted": 1, "not_found": 1}
    ix2.commit()
    assert all(s.lookup("d1") is None for s in ix2.shards) and ix2.n_live_docs == 28


def test_add_texts_routes_and_keeps_the_text(tmp_path):
    from lsr.vectors import SparseBatch

    root, _ = _build(tmp_path, "float32", n_base=30, methods=["exact"])
    ix = open_index(root, writable=True)

    class Enc:  # a document encoder: weight of t1 = length of the text
        def config(self):
            return {"kind": "probe"}

        def encode_documents(self, texts):
            return SparseBatch.from_dicts([{"t1": 10.0 + len(t)} for t in texts], ix.vocab)

    assert ix.add_texts(["hello", "hi"], ids=["3", "h2"], titles=["T", ""], encoder=Enc()) == 2
    ix.commit()
    assert [s.lookup("3") is not None for s in ix.shards] == [True, False, False]
    hit = ix.search([{"t1": 1.0}], k=2)[0]
    assert hit.ids == ["3", "h2"] and hit.scores == [17.0, 12.0]  # "T hello" is 7 characters
    assert ix.document(hit.docs[0])["text"] == "hello" and ix.document(hit.docs[0])["title"] == "T"
    assert ix.lookup("h2") >> 53 == oracle_route("h2", N_SHARDS)
