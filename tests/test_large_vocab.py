"""A DyVo-sized vocabulary (30,522 word pieces + 400,000 entity terms): index build, every search
method, JSONL and the service, against the brute-force oracle. Term ids above 65,535 must work
everywhere (no 16-bit term ids, issue #7)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import lsr
from lsr.index import build_index, open_index
from lsr.vectors import SparseBatch, Vocabulary

from test_index import oracle

N_WORD_PIECES = 30_522
N_TERMS = N_WORD_PIECES + 400_000
SMALL_PARTS = {
    "bmp": {"block_size": 8, "dense_fraction": 0.3},
    "seismic": {"n_postings": 60, "block_size": 8},
}


def big_vocab() -> Vocabulary:
    return Vocabulary(
        [f"wp{i}" for i in range(N_WORD_PIECES)] + [f"ENT:e{i}" for i in range(N_TERMS - N_WORD_PIECES)]
    )


def big_collection(n_docs: int, seed: int) -> sp.csr_matrix:
    """Documents over topics whose terms are spread across the whole id range, mostly entity ids
    above 65,535; weights are multiples of 1/8 so float32 sums are exact (unambiguous rankings)."""
    rng = np.random.default_rng(seed)
    pool = np.unique(
        np.concatenate([rng.integers(0, N_WORD_PIECES, 300), rng.integers(65_536, N_TERMS, 900)])
    )
    topics = [rng.choice(pool, 80, replace=False) for _ in range(10)]
    rows, cols = [], []
    for d in range(n_docs):
        t = topics[int(rng.integers(len(topics)))]
        terms = np.unique(np.concatenate([rng.choice(t, 14), rng.integers(0, N_TERMS, 2)]))
        if d % 100 == 0:
            terms = np.union1d(terms, [65_535, 65_536, N_TERMS - 1])  # the edges, in a few documents
        rows += [d] * len(terms)
        cols += terms.tolist()
    vals = (rng.integers(1, 64, len(cols)) / 8).astype(np.float32)
    m = sp.csr_matrix((vals, (rows, cols)), shape=(n_docs, N_TERMS))
    m.sum_duplicates()
    return m


def big_queries(docs: sp.csr_matrix, seed: int) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    from_docs = docs[rng.choice(docs.shape[0], 12, replace=False)]
    used = np.unique(docs.indices)
    rows, cols = [], []
    for q in range(12):
        terms = np.unique(rng.choice(used, 6))
        rows += [q] * len(terms)
        cols += terms.tolist()
    rows += [12]
    cols += [N_TERMS - 1]  # a single-term query on the last term id
    vals = (rng.integers(1, 64, len(cols)) / 8).astype(np.float32)
    rand = sp.csr_matrix((vals, (rows, cols)), shape=(13, N_TERMS))
    return sp.vstack([from_docs, rand]).tocsr()


@pytest.fixture(scope="module")
def collection():
    docs = big_collection(1500, 11)
    return docs, big_queries(docs, 12), big_vocab()


# float32 in the system tier: its uint32-id kernel variants cost ~10 s of compiling on a cold cache
@pytest.fixture(scope="module", params=[pytest.param("float32", marks=pytest.mark.system), "uint8"])
def built(request, collection, tmp_path_factory):
    docs, _, vocab = collection
    path = tmp_path_factory.mktemp(f"big{request.param}") / "ix"
    build_index(docs, path, vocab=vocab, quantization=request.param, **SMALL_PARTS)
    return open_index(path)


@pytest.mark.parametrize("method,params", [("exact", {}), ("maxscore", {}), ("bmp", {})])
def test_safe_methods_equal_oracle_on_a_big_vocabulary(built, collection, method, params):
    docs, queries, _ = collection
    assert built.n_terms == N_TERMS and built.methods == ("exact", "maxscore", "bmp", "seismic")
    assert built.forward[1].dtype == np.uint32  # too many terms for uint16 ids
    assert docs.indices.max() == N_TERMS - 1
    for k in (1, 10, 100):
        want = oracle(built, docs, queries, k)
        for threads in (1, 2):
            got = built.search(queries, k=k, method=method, threads=threads, **params)
            for qi, ((wd, ws), g) in enumerate(zip(want, got, strict=True)):
                assert g.docs.tolist() == wd.tolist(), (method, k, qi)
                np.testing.assert_allclose(g.scores, ws, rtol=1e-6)


def test_seismic_on_a_big_vocabulary(built, collection):
    docs, queries, _ = collection
    want = oracle(built, docs, queries, 10)
    got = built.search(queries, k=10, method="seismic")
    exact = built.search(queries, k=10)
    recalls = [
        len(set(g.docs.tolist()) & set(w.tolist())) / len(w) for (w, _), g in zip(want, got, strict=True)
    ]
    assert np.mean(recalls) >= 0.9
    for g, e in zip(got, exact, strict=True):  # approximate results carry true scores
        s = dict(zip(e.ids, e.scores, strict=True))
        assert all(score == s[i] for i, score in zip(g.ids, g.scores, strict=True) if i in s)


def test_ent_terms_through_jsonl_index_and_search(collection, tmp_path):
    """Vectors with ENT: tokens (ids > 65,535) -> JSONL -> index -> search by tokens: same ranking."""
    docs, queries, vocab = collection
    batch = SparseBatch.from_scipy(docs, vocab, ids=[f"d{i}" for i in range(docs.shape[0])])
    lsr.write_vectors(tmp_path / "docs.jsonl.gz", batch)
    back = lsr.read_vectors(tmp_path / "docs.jsonl.gz")
    assert back.to_dicts() == batch.to_dicts()
    assert sum(t.startswith("ENT:") for t in back.vocab.tokens) > 500
    from_matrix = open_index(build_index(batch, tmp_path / "a", methods=["exact"]))
    from_jsonl = open_index(build_index(tmp_path / "docs.jsonl.gz", tmp_path / "b"))
    qd = SparseBatch.from_scipy(queries, vocab).to_dicts()
    assert any(t.startswith("ENT:") for q in qd for t in q)
    want = from_matrix.search(qd, k=20)
    for method in ("exact", "maxscore", "bmp"):
        for w, g in zip(want, from_jsonl.search(qd, k=20, method=method), strict=True):
            assert g.ids == w.ids and g.scores == w.scores
    hit = from_jsonl.search([{f"ENT:e{N_TERMS - 1 - N_WORD_PIECES}": 1.0}], k=5)[0]
    holders = {f"d{d}" for d in np.flatnonzero(docs[:, N_TERMS - 1].toarray().ravel())}
    assert holders and set(hit.ids) <= holders


@pytest.mark.system  # the service warms every kernel for the big vocabulary's uint32 ids: ~20 s cold
def test_service_with_a_big_vocabulary(built):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from lsr.service.app import create_app
    from lsr.service.settings import Settings

    vec = {f"ENT:e{N_TERMS - 1 - N_WORD_PIECES}": 1.5, "ENT:e36000": 0.5, "wp17": 1.0, "nope": 1.0}
    want = built.search([vec], k=10)[0]
    with TestClient(create_app(Settings(index=built.path))) as client:
        for method in ("exact", "maxscore", "bmp"):
            r = client.post("/search", json={"query": {"vector": vec}, "k": 10, "method": method})
            assert r.status_code == 200, r.text
            body = r.json()
            assert [h["id"] for h in body["hits"]] == want.ids and body["unknown_tokens"] == 1
