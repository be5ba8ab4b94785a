"""The lean query path of ``Index.search`` (issue #17: per-call overhead) and BMP's fallback to
exact search, against their references.

- the query-preparation kernels (:mod:`lsr.index.kernels.query`) equal their numpy twins on random
  inputs (valid, unsorted, duplicated, zero, NaN, infinite, negative, out-of-range);
- ``{token: weight}`` queries convert exactly as :meth:`SparseBatch.from_dicts` (the old path)
  converts them, one query at a time and in batches, with the same errors;
- BMP with the fallback at its default stays equal to the brute-force oracle on an index, serial
  and batched, with and without a mask, and its twin agrees on which queries fall back.
"""

from __future__ import annotations

import numpy as np
import pytest

from lsr import LsrError
from lsr.index import build_index, open_index
from lsr.index.kernels import query as query_k
from lsr.vectors import SparseBatch, _dicts_to_csr

from conftest import random_collection, vocab_of


def _random_csr(rng, n_terms: int):
    """Random CSR queries with every kind of flaw the checker must see (or a clean one)."""
    nq = int(rng.integers(1, 5))
    lens = rng.integers(0, 8, nq)
    indptr = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    n = int(indptr[-1])
    terms = rng.integers(0, n_terms, n).astype(np.int64)
    weights = rng.lognormal(0, 1, n)
    kind = int(rng.integers(0, 7))
    if kind == 0:  # canonical
        for q in range(nq):
            a, b = indptr[q], indptr[q + 1]
            u = np.sort(rng.choice(n_terms, b - a, replace=False))
            terms[a:b] = u
    elif n and kind == 1:
        weights[rng.integers(n)] = 0.0
    elif n and kind == 2:
        weights[rng.integers(n)] = [np.nan, np.inf, -np.inf, -0.5][int(rng.integers(4))]
    elif n and kind == 3:
        terms[rng.integers(n)] = [-1, n_terms, n_terms + 5][int(rng.integers(3))]
    elif n > 1 and kind == 4:
        terms[1] = terms[0]
    return indptr, terms, weights


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("tdtype,wdtype", [(np.int32, np.float32), (np.int64, np.float64)])
def test_check_queries_equals_its_twin(seed, tdtype, wdtype):
    rng = np.random.default_rng(seed)
    seen = set()
    for _ in range(300):
        indptr, terms, weights = _random_csr(rng, 20)
        terms, weights = terms.astype(tdtype), weights.astype(wdtype)
        got = query_k.check_queries(indptr, terms, weights, 20)
        assert got == query_k.check_queries_reference(indptr, terms, weights, 20), (indptr, terms, weights)
        seen.add(int(got))
    assert seen == {query_k.OK, query_k.NOT_CANONICAL, query_k.BAD_TERM, query_k.BAD_WEIGHT}


@pytest.mark.parametrize("seed", range(3))
def test_dict_query_equals_its_twin(seed):
    rng = np.random.default_rng(seed)
    outcomes = set()
    for _ in range(300):
        n = int(rng.integers(0, 12))
        ids = rng.integers(-1, 15, n).astype(np.int64)  # -1: unknown token; repeats: aliases
        w = rng.lognormal(0, 1, n)
        if n and rng.random() < 0.3:
            w[rng.integers(n)] = [0.0, 1e-50, np.nan, np.inf, -1.0][int(rng.integers(5))]
        got = query_k.dict_query(ids, w)
        want = query_k.dict_query_reference(ids, w)
        assert got[0] == want[0] and got[3] == want[3]
        assert got[1].tolist() == want[1].tolist() and got[2].tobytes() == want[2].tobytes()
        assert got[1].dtype == np.int32 and got[2].dtype == np.float32
        outcomes.add(bool(got[0]))
    assert outcomes == {True, False}


def _index(tmp_path, n_docs=120, n_terms=40, methods=("exact", "bmp"), **kw):
    m = random_collection(n_docs, n_terms, 3, density=0.15)
    docs = SparseBatch.from_scipy(m, vocab_of(n_terms), [f"d{i}" for i in range(n_docs)])
    return open_index(build_index(docs, tmp_path / "ix", methods=list(methods), **kw))


def _old_prepare(idx, dicts):
    """The conversion the fast path replaced: from_dicts one query at a time."""
    rows = [_dicts_to_csr([q], idx.vocab, False, False, lambda i: f"vector {i}") for q in dicts]
    indptr = np.concatenate([[0], np.cumsum([len(r[1]) for r in rows])]).astype(np.int64)
    terms = np.concatenate([r[1] for r in rows]) if rows else np.empty(0, np.int32)
    weights = np.concatenate([r[2] for r in rows]) if rows else np.empty(0, np.float32)
    return indptr, terms, weights, np.array([int(r[3][0]) for r in rows], np.int64)


def test_dict_queries_convert_as_from_dicts(tmp_path):
    idx = _index(tmp_path, methods=("exact",))
    rng = np.random.default_rng(7)
    toks = idx.vocab.tokens
    dicts = []
    for i in range(60):
        q = {toks[int(t)]: float(rng.lognormal()) for t in rng.choice(len(toks), int(rng.integers(0, 9)))}
        if i % 3 == 0:
            q["not-a-token"] = 1.0  # unknown: skipped and counted
        if i % 4 == 1 and q:
            q[next(iter(q))] = 0.0  # zero: dropped
        if i % 5 == 2:
            q[toks[0]] = 1e-50  # float32 rounds it to 0: dropped
        if i % 7 == 3:
            q[toks[1]] = True  # a bool is a number (1.0), as before
        dicts.append(q)
    for batch in ([d] for d in dicts):  # one query at a time (the latency path)
        got, want = idx.prepare_queries(batch), _old_prepare(idx, batch)
        for g, w in zip(got, want, strict=True):
            assert g.tolist() == w.tolist() and g.dtype == w.dtype
    got, want = idx.prepare_queries(dicts), _old_prepare(idx, dicts)  # a batch
    for g, w in zip(got, want, strict=True):
        assert g.tolist() == w.tolist() and g.dtype == w.dtype
    res = idx.search(dicts[:5], k=5)
    assert [r.unknown_tokens for r in res] == [1, 0, 0, 1, 0]
    assert all(isinstance(s, float) for r in res for s in r.scores)
    assert idx.search([], k=5) == []


@pytest.mark.parametrize(
    "query,message",
    [
        ({"t1": -1.0}, "must be finite and >= 0"),
        ({"t1": float("nan")}, "must be finite and >= 0"),
        ({"t1": float("inf")}, "must be finite and >= 0"),
        ({"t1": "x"}, "is not a number"),
    ],
)
def test_dict_queries_refuse_bad_weights_naming_the_query(tmp_path, query, message):
    idx = _index(tmp_path, methods=("exact",))
    with pytest.raises(LsrError, match=message) as e:
        idx.search([{"t2": 1.0}, query], k=3)
    assert "vector 1" in str(e.value)  # the position of the bad query in the list


def test_sparse_batch_queries_are_checked_and_canonicalised(tmp_path):
    idx = _index(tmp_path, methods=("exact",))
    v = idx.vocab
    bad_term = SparseBatch(np.array([0, 1]), np.array([idx.n_terms], np.int32), np.ones(1, np.float32), v)
    with pytest.raises(LsrError, match="outside the index vocabulary"):
        idx.search(bad_term)
    bad_w = SparseBatch(np.array([0, 1]), np.array([1], np.int32), np.array([np.nan], np.float32), v)
    with pytest.raises(LsrError, match="finite and >= 0"):
        idx.search(bad_w)
    # unsorted, duplicated and zero entries: the same result as the canonical query
    messy = SparseBatch(
        np.array([0, 4]), np.array([5, 2, 5, 7], np.int32), np.array([0.5, 1.0, 0.5, 0.0], np.float32), v
    )
    clean = SparseBatch(np.array([0, 2]), np.array([2, 5], np.int32), np.array([1.0, 1.0], np.float32), v)
    a, b = idx.search(messy, k=10)[0], idx.search(clean, k=10)[0]
    assert a.ids == b.ids and a.scores == b.scores
    ip, t, w, _ = idx.prepare_queries(messy)
    assert ip.tolist() == [0, 2] and t.tolist() == [2, 5] and w.tolist() == [1.0, 1.0]


def _oracle(idx, indptr, terms, weights, k, mask=None):
    """Brute force over the postings (float64): per query the top-k (build-order key, score) by
    score descending, then key ascending (the index's tie rule, whatever its internal numbering)."""
    keys_of = np.asarray(idx.doc_order, np.int64) if len(idx.doc_order) else np.arange(idx.n_docs)
    out = []
    for q in range(len(indptr) - 1):
        acc = np.zeros(idx.n_docs)
        for t, w in zip(terms[indptr[q] : indptr[q + 1]], weights[indptr[q] : indptr[q + 1]], strict=True):
            s, e = idx.offsets[t], idx.offsets[t + 1]
            np.add.at(acc, idx.postings_docs[s:e].astype(np.int64), float(w) * idx.postings_impacts[s:e])
        if mask is not None:
            acc[mask == 0] = 0
        cand = np.flatnonzero(acc > 0)
        best = cand[np.lexsort((keys_of[cand], -acc[cand]))][:k]
        out.append((keys_of[best].tolist(), acc[best] * float(idx.scale)))
    return out


@pytest.mark.parametrize("fallback", [0.0, 0.3, 1.0, 1e9])
def test_bmp_with_its_fallback_equals_the_oracle(tmp_path, monkeypatch, fallback):
    import lsr.index.methods.bmp as bmp_method

    monkeypatch.setattr(bmp_method, "FALLBACK", fallback)
    idx = _index(tmp_path, n_docs=300, n_terms=30, methods=("exact", "bmp"), bmp={"block_size": 8})
    rng = np.random.default_rng(1)
    dicts = [  # weights in 1/8 steps: float32 sums are exact, so the float64 oracle sees the same ties
        {
            idx.vocab.tokens[int(t)]: int(rng.integers(1, 16)) / 8
            for t in rng.choice(30, int(rng.integers(1, 12)))
        }
        for _ in range(40)
    ]
    indptr, terms, weights, _ = idx.prepare_queries(dicts)
    mask = (rng.random(idx.n_docs) < 0.8).astype(np.uint8)
    for threads in (1, 2):
        for m in (None, mask):
            want = _oracle(idx, indptr, terms, weights, 10, m)
            got_d, got_s = idx.search_arrays(
                indptr, terms, weights, 10, threads, "bmp", mask=m, alpha=1.0, beta=1.0
            )
            ex_d, ex_s = idx.search_arrays(indptr, terms, weights, 10, threads, "exact", mask=m)
            assert got_d.tolist() == ex_d.tolist() and got_s.tobytes() == ex_s.tobytes()  # bit for bit
            for q, (wd, ws) in enumerate(want):
                n = len(wd)
                assert got_d[q, :n].tolist() == wd, (q, threads)
                np.testing.assert_allclose(got_s[q, :n], ws, rtol=1e-5)
    # the accumulator the fallback borrows from exact search is left zeroed for the next search
    sc = idx._take_scratch(1)
    assert not sc.buffer("acc", idx.n_docs, np.float32).any()


@pytest.mark.parametrize("grow", [False, True])
def test_dicts_to_csr_matches_a_plain_python_oracle(grow):
    """The vectorised dict conversion (one fromiter of term ids, one single-key sort) against a
    dict-by-dict Python oracle: unknown tokens counted (or added to the vocabulary in order of
    first appearance when growing), weights float32, zeros dropped, term ids ascending per row."""
    from lsr.vectors import Vocabulary

    rng = np.random.default_rng(11)
    base = [f"t{i}" for i in range(50)]
    vecs = []
    for i in range(80):
        toks = list(
            rng.choice(base + [f"new{j}" for j in range(10)], int(rng.integers(0, 12)), replace=False)
        )
        q = {t: float(rng.lognormal()) for t in toks}
        if i % 6 == 1 and q:
            q[next(iter(q))] = 0.0
        vecs.append(q)
    vocab = Vocabulary(list(base))
    ids = dict(zip(base, range(len(base)), strict=True))
    want_rows, want_unknown = [], []
    for q in vecs:
        row, unk = [], 0
        for tok, w in q.items():
            if tok not in ids:
                if not grow:
                    unk += 1
                    continue
                ids[tok] = len(ids)
            if np.float32(w) > 0:
                row.append((ids[tok], np.float32(w)))
        want_rows.append(sorted(row))
        want_unknown.append(unk)
    indptr, terms, weights, unknown = _dicts_to_csr(vecs, vocab, grow, False, lambda i: f"vector {i}")
    assert unknown.tolist() == want_unknown
    got_rows = [
        list(zip(terms[a:b].tolist(), weights[a:b].tolist(), strict=True))
        for a, b in zip(indptr[:-1], indptr[1:], strict=True)
    ]
    assert got_rows == [[(t, float(w)) for t, w in r] for r in want_rows]
    if grow:
        assert vocab.tokens == list(ids)
