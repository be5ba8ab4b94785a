"""The index against a brute-force scipy oracle: every result must be the oracle's top-k."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest
import scipy.sparse as sp

from lsr.errors import LsrError
from lsr.index import build_index, open_index
from lsr.index.builder import quantization_scale, quantize
from lsr.index.kernels import exact
from lsr.index.kernels.topk import topk_reference
from lsr.vectors import SparseBatch, read_vectors, write_vectors

from conftest import random_collection, vocab_of


def own_quantize(weights: np.ndarray, dtype: str) -> tuple[list[int], float]:
    """The documented global quantizer, written here independently of the engine's ``quantize``: the
    step maps the largest weight to the dtype's top value, each weight becomes ``round(w / step)``
    (Python's round: half to even) and never less than 1."""
    top = {"uint8": 255, "uint16": 65535}[dtype]
    step = float(max(float(w) for w in weights)) / top
    return [min(top, max(1, round(float(w) / step))) for w in weights], step


def own_term_factor(term_max: float, max_weight: float) -> float:
    """The documented per-term step factor, written independently: term_max / max_weight (at least
    2^-60) rounded up to 4 significant bits (k / 8 x 2^e with k in 8..16), 1 for a term without
    postings."""
    if term_max <= 0:
        return 1.0
    ratio = max(term_max / max_weight, 2.0**-60)
    mant, exp = math.frexp(ratio)  # ratio = mant x 2^exp, mant in [0.5, 1)
    unit = 2.0 ** (exp - 1 - 3)  # 2^e with e = exp - 1, three bits after the leading one
    return min(1.0, math.ceil(ratio / unit) * unit)


def own_quantize_per_term(docs_matrix, dtype: str) -> tuple[sp.csr_matrix, float]:
    """The documented per-term quantizer (independent code): term t's step is ``step x f_t`` with
    ``step`` the global quantizer's and ``f_t`` from :func:`own_term_factor`. Returns the matrix of
    ``impact x f_t`` (what the index scores with, before the global step) and the step."""
    top = {"uint8": 255, "uint16": 65535}[dtype]
    csc = sp.csc_matrix(docs_matrix, dtype=np.float64)
    gmax = float(csc.data.max())
    step = gmax / top
    data = csc.data.copy()
    for t in range(csc.shape[1]):
        a, b = csc.indptr[t], csc.indptr[t + 1]
        if a == b:
            continue
        f = own_term_factor(float(max(csc.data[a:b])), gmax)
        for i in range(a, b):
            data[i] = min(top, max(1, round(float(csc.data[i]) / (step * f)))) * f
    out = sp.csc_matrix((data, csc.indices, csc.indptr), shape=csc.shape).tocsr()
    return out, step


def dequantized(index, docs_matrix):
    """The document matrix the index actually scores with (impacts x term factor, before the global
    step) and the step, from the oracle's own quantizer (so a rounding bug in the engine cannot hide
    in the oracle)."""
    q = index.quantization
    if q == "float32":
        return docs_matrix.astype(np.float64)
    if index.manifest["quantization"].get("quantizer") == "term":
        m, step = own_quantize_per_term(docs_matrix, q)
    else:
        m = docs_matrix.copy().astype(np.float64)
        values, step = own_quantize(docs_matrix.data, q)
        m.data = np.array(values, np.float64)
    assert index.manifest["quantization"]["scale"] == pytest.approx(step, rel=1e-12)
    return m, index.manifest["quantization"]["scale"]


def oracle(index, docs_matrix, queries, k):
    """scipy brute force: (doc numbers, scores) per query, ties by doc number, positive scores only."""
    if index.quantization == "float32":
        scores = (queries.astype(np.float64) @ docs_matrix.astype(np.float64).T).toarray()
        scale = 1.0
    else:
        m, scale = dequantized(index, docs_matrix)
        scores = (queries.astype(np.float64) @ m.T).toarray()
    out = []
    for row in scores:
        d, s = topk_reference(row, k)
        out.append((d, s * scale))
    return out


def random_queries(n_terms, n, seed, exact_weights=True):
    rng = np.random.default_rng(seed)
    q = sp.random(n, n_terms, density=0.08, random_state=rng, format="lil", dtype=np.float32)
    q[0, :] = 0  # an empty query
    q[1, :] = 0
    q[1, int(rng.integers(n_terms))] = 1.0  # a single-term query
    q = q.tocsr()
    q.eliminate_zeros()
    if exact_weights:
        q.data = (rng.integers(1, 64, q.nnz) / 8).astype(np.float32)
    else:
        q.data = rng.lognormal(0, 1, q.nnz).astype(np.float32)
    return q


@pytest.mark.parametrize(
    "quantization,quantizer",
    [("float32", "term"), ("uint16", "term"), ("uint8", "term"), ("uint16", "global"), ("uint8", "global")],
)
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("threads", [1, 2])
def test_exact_equals_oracle(tmp_path, quantization, quantizer, seed, threads):
    n_docs, n_terms = 600 + 37 * seed, 200
    docs = random_collection(n_docs, n_terms, seed, density=0.04 + 0.02 * seed)
    queries = random_queries(n_terms, 25, seed + 100)
    idx = open_index(
        build_index(
            docs,
            tmp_path / "ix",
            vocab=vocab_of(n_terms),
            quantization=quantization,
            quantizer=quantizer,
            run_postings=500,
        )
    )
    assert (idx.term_scale is not None) == (quantization != "float32" and quantizer == "term")
    for k in (1, 10, 100, n_docs + 5):
        want = oracle(idx, docs, queries, k)
        got = idx.search(queries, k=k, threads=threads)
        assert len(got) == queries.shape[0]
        for (wd, ws), g in zip(want, got, strict=True):
            assert g.docs.tolist() == wd.tolist()
            assert g.ids == [str(d) for d in wd]
            np.testing.assert_allclose(g.scores, ws, rtol=1e-6)
    assert got[0].ids == [] and got[0].scores == []  # the empty query


@pytest.mark.parametrize("quantization", ["float32", "uint8"])
def test_exact_arbitrary_floats(tmp_path, quantization):
    """With arbitrary float weights, float32 accumulation may swap near-ties; scores still match."""
    docs = random_collection(800, 150, 7, exact_weights=False)
    queries = random_queries(150, 30, 8, exact_weights=False)
    idx = open_index(build_index(docs, tmp_path / "ix", vocab=vocab_of(150), quantization=quantization))
    want = oracle(idx, docs, queries, 20)
    for (wd, ws), g in zip(want, idx.search(queries, k=20), strict=True):
        np.testing.assert_allclose(g.scores, ws, rtol=1e-5)
        same = g.docs.tolist() == wd.tolist()
        if not same:  # only where neighbouring oracle scores are within float32 rounding
            diff = np.flatnonzero(g.docs != wd)
            assert np.all(np.abs(np.diff(ws))[np.clip(diff - 1, 0, len(ws) - 2)] < 1e-4 * ws[0])


def test_kernel_equals_numpy_reference():
    rng = np.random.default_rng(5)
    for trial in range(20):
        n_docs, n_terms = int(rng.integers(1, 400)), int(rng.integers(1, 60))
        docs = random_collection(n_docs, n_terms, trial, density=0.1)
        csc = docs.tocsc()
        offsets = csc.indptr.astype(np.int64)
        pdocs = csc.indices.astype(np.uint32)
        imp = csc.data.astype(np.float32)
        nt = int(rng.integers(0, n_terms + 1))
        terms = np.sort(rng.choice(n_terms, nt, replace=False)).astype(np.int32)
        weights = (rng.integers(1, 64, nt) / 8).astype(np.float32)
        k = int(rng.integers(1, n_docs + 3))
        acc = np.zeros(n_docs, np.float32)
        no_order = np.empty(0, np.uint32)
        for x in (offsets, pdocs, imp, no_order):  # read-only, as the index maps them: the kernel
            x.setflags(write=False)  # specialization searches compile, not one more
        d, s = exact.search_serial(
            offsets,
            pdocs,
            imp,
            np.float32(1),
            no_order,
            np.array([0, nt]),
            terms,
            weights,
            k,
            acc,
            np.empty(0, np.uint8),
            np.empty(0, np.float32),
            np.empty(0, np.int64),
        )
        rd, rs = exact.search_reference(offsets, pdocs, imp, 1.0, terms, weights, k, n_docs)
        n = len(rd)
        assert d[0, :n].tolist() == rd.tolist() and np.all(d[0, n:] == -1)
        np.testing.assert_allclose(s[0, :n], rs, rtol=1e-6)
        assert not acc.any()  # the accumulator is handed back clean


def test_topk_heap_ties_and_order():
    rng = np.random.default_rng(0)
    from lsr.index.kernels.topk import heap_drain, heap_push

    for _ in range(50):
        n = int(rng.integers(1, 200))
        scores = rng.integers(0, 6, n).astype(np.float32)  # many ties
        k = int(rng.integers(1, n + 2))
        hs, hd = np.empty(k, np.float32), np.empty(k, np.int64)
        size = 0
        for d in rng.permutation(n):  # any arrival order
            if scores[d] > 0:
                size = heap_push(hs, hd, size, k, scores[d], d)
        od, os_ = np.empty(size, np.int64), np.empty(size, np.float32)
        heap_drain(hs, hd, size, os_, od)
        rd, rs = topk_reference(scores, k)
        assert od.tolist() == rd.tolist()


def test_quantization_never_zeroes_positive_weights():
    w = np.array([1e-9, 1e-4, 0.5, 3.0, 10.0], np.float32)
    for dtype in ("uint8", "uint16"):
        q = quantize(w, dtype, quantization_scale(float(w.max()), dtype))
        assert q.min() >= 1 and q[-1] == np.iinfo(dtype).max
        assert np.all(np.diff(q.astype(int)) >= 0)


def test_build_sources_agree(tmp_path):
    """JSONL file, gzipped JSONL, SparseBatch, list of dicts and scipy give the same index."""
    docs = random_collection(300, 80, 3)
    vocab = vocab_of(80)
    ids = [f"doc-{i}" for i in range(300)]
    batch = SparseBatch.from_scipy(docs, vocab, ids)
    write_vectors(tmp_path / "v.jsonl.gz", batch)
    write_vectors(tmp_path / "v.jsonl", batch)
    dirs = [
        build_index(tmp_path / "v.jsonl.gz", tmp_path / "a", run_postings=100),
        build_index(tmp_path / "v.jsonl", tmp_path / "b"),
        build_index(batch, tmp_path / "c"),
        build_index(batch.to_dicts(), tmp_path / "d", ids=ids),
        build_index(docs, tmp_path / "e", vocab=vocab, ids=ids),
    ]
    queries = [{"t1": 1.0, "t5": 0.5, "t77": 2.0}, {"t3": 1.0}]
    results = [[(r.ids, r.scores) for r in open_index(d).search(queries, k=20)] for d in dirs]
    for r in results[1:]:
        assert r == results[0]
    assert results[0][0][0]  # non-empty


def test_jsonl_round_trip(tmp_path):
    docs = random_collection(50, 40, 9, exact_weights=False)
    b = SparseBatch.from_scipy(docs, vocab_of(40), [f"d{i}" for i in range(50)])
    for name in ("x.jsonl", "x.jsonl.gz"):
        write_vectors(tmp_path / name, b, contents=[f"text {i}" for i in range(50)])
        back = read_vectors(tmp_path / name, vocab=vocab_of(40), unknown="error")
        assert back.ids == b.ids
        assert np.array_equal(back.indptr, b.indptr) and np.array_equal(back.indices, b.indices)
        assert np.array_equal(back.data, b.data)  # float32 exactly
    line = json.loads(open(tmp_path / "x.jsonl").readline())
    assert set(line) == {"id", "content", "vector"} and line["content"] == "text 0"


def test_unknown_query_tokens_are_skipped_and_counted(tmp_path):
    docs = random_collection(100, 20, 1)
    idx = open_index(build_index(docs, tmp_path / "ix", vocab=vocab_of(20)))
    a = idx.search([{"t1": 1.0, "t2": 2.0}], k=5)[0]
    b = idx.search([{"t1": 1.0, "t2": 2.0, "nope": 3.0, "zzz": 1.0}], k=5)[0]
    assert (a.ids, a.scores) == (b.ids, b.scores) and b.unknown_tokens == 2 and a.unknown_tokens == 0


def test_bad_inputs(tmp_path):
    docs = random_collection(50, 10, 1)
    d = build_index(docs, tmp_path / "ix", vocab=vocab_of(10))
    idx = open_index(d)
    q = [{"t1": 1.0}]
    for bad_k in (0, -1, 1.5, "3", True):
        with pytest.raises(LsrError, match="k must"):
            idx.search(q, k=bad_k)
    with pytest.raises(LsrError, match="unknown method"):
        idx.search(q, method="magic")
    with pytest.raises(LsrError, match="alpha must be in"):
        idx.search(q, method="bmp", alpha=2)
    with pytest.raises(LsrError, match=">= 0"):
        idx.search([{"t1": -1.0}])
    with pytest.raises(LsrError, match="not a number"):
        idx.search([{"t1": "x"}])
    with pytest.raises(LsrError, match="list"):
        idx.search({"t1": 1.0})
    with pytest.raises(LsrError, match="no encoder"):
        idx.search(["some text"])
    with pytest.raises(LsrError, match="already exists"):
        build_index(docs, d, vocab=vocab_of(10))
    with pytest.raises(LsrError, match="quantization"):
        build_index(docs, tmp_path / "q", vocab=vocab_of(10), quantization="int4")
    with pytest.raises(LsrError, match="empty"):
        build_index([], tmp_path / "empty")
    assert not os.path.exists(tmp_path / "empty")
    with pytest.raises(LsrError, match="duplicate document id"):
        build_index(docs[:3], tmp_path / "dup", vocab=vocab_of(10), ids=["a", "b", "a"])
    assert not any(p.name.startswith("dup") for p in tmp_path.iterdir())  # nothing half-built left


def test_damaged_indexes_are_refused(tmp_path):
    docs = random_collection(200, 30, 2)
    d = build_index(docs, tmp_path / "ix", vocab=vocab_of(30))
    with pytest.raises(LsrError, match="no such index"):
        open_index(tmp_path / "nothing")
    # truncated array
    p = os.path.join(d, "postings_docs.npy")
    data = open(p, "rb").read()
    open(p, "wb").write(data[: len(data) // 2])
    with pytest.raises(LsrError, match="postings_docs"):
        open_index(d)
    open(p, "wb").write(data)
    open_index(d)
    # missing file
    os.rename(p, p + ".bak")
    with pytest.raises(LsrError, match="missing postings_docs"):
        open_index(d)
    os.rename(p + ".bak", p)
    # other format version
    mp = os.path.join(d, "manifest.json")
    m = json.load(open(mp))
    m["format_version"] = 99
    json.dump(m, open(mp, "w"))
    with pytest.raises(LsrError, match="format version 99"):
        open_index(d)
    # no manifest: an unfinished build
    os.remove(mp)
    with pytest.raises(LsrError, match="not an lsr index"):
        open_index(d)


def test_memory_mapped_and_streaming_build(tmp_path):
    """Arrays are memory maps, and a build over many small runs equals a one-run build."""
    docs = random_collection(2000, 300, 4)
    a = open_index(build_index(docs, tmp_path / "a", vocab=vocab_of(300), run_postings=97))
    b = open_index(build_index(docs, tmp_path / "b", vocab=vocab_of(300)))
    assert isinstance(a.postings_docs.base, np.memmap) or hasattr(a.postings_docs.base, "_mmap")
    for name in ("offsets", "postings_docs", "postings_impacts", "term_max", "doc_lengths"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    csc = docs.tocsc()
    plain = open_index(build_index(docs, tmp_path / "c", vocab=vocab_of(300), reorder=False))
    assert np.array_equal(plain.offsets, csc.indptr) and np.array_equal(plain.postings_docs, csc.indices)
    np.testing.assert_array_equal(a.term_max, np.asarray(csc.max(axis=0).todense()).ravel())
    # reordered: the same postings once internal numbers are mapped back to build order
    assert np.array_equal(a.offsets, csc.indptr)
    for t in range(300):
        seg = slice(a.offsets[t], a.offsets[t + 1])
        back = a.doc_order[a.postings_docs[seg]]
        order = np.argsort(back)
        assert np.array_equal(back[order], csc.indices[seg])
        assert np.array_equal(a.postings_impacts[seg][order], csc.data[seg])


def test_document_store_and_id_lookup(tmp_path):
    from lsr.vectors import SparseBatch

    docs = random_collection(30, 10, 5)
    b = SparseBatch.from_scipy(docs, vocab_of(10), [f"id-{i}" for i in range(30)])
    b.documents = [(f"title {i}", f"text {i} ünï") for i in range(30)]
    b.documents[3] = ("", "")
    idx = open_index(build_index(b, tmp_path / "ix", run_postings=50))
    assert idx.has_store
    assert idx.document(7) == {"id": "id-7", "title": "title 7", "text": "text 7 ünï"}
    assert idx.document(3) == {"id": "id-3", "title": "", "text": ""}
    for i in (0, 7, 29):
        assert idx.lookup(f"id-{i}") == i
    assert idx.lookup("nope") is None and idx.lookup("x" * 100) is None
    # vectors JSONL: "content" becomes the stored text; no content, no store
    write_vectors(tmp_path / "v.jsonl", b, contents=[f"c{i}" for i in range(30)])
    assert open_index(build_index(tmp_path / "v.jsonl", tmp_path / "iv")).document(2)["text"] == "c2"
    b.documents = None
    assert not open_index(build_index(b, tmp_path / "nostore")).has_store


def test_prefault_reads_every_file_of_the_index(tmp_path):
    """``Index.prefault`` reads each file once (the bytes it returns are the index's size) and
    leaves searches as they were."""
    docs = sp.random(
        50, 20, density=0.2, random_state=np.random.default_rng(3), format="csr", dtype=np.float32
    )
    from lsr.index import build_index, open_index

    from conftest import vocab_of

    idx = open_index(build_index(docs, tmp_path / "ix", vocab=vocab_of(20)))
    before = idx.search([{"t1": 1.0, "t2": 0.5}], k=5)[0]
    assert idx.prefault(chunk_bytes=1000) == idx.size_bytes() > 0
    after = idx.search([{"t1": 1.0, "t2": 0.5}], k=5)[0]
    assert list(after.docs) == list(before.docs)
