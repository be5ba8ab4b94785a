"""Every search method against the brute-force oracle: safe methods must return exactly its top-k
(ties by build order), approximate ones must clear a recall floor at their default settings."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from lsr.errors import LsrError
from lsr.index import build_index, open_index
from lsr.index import methods as registry
from lsr.index.kernels import bmp as bmp_k
from lsr.index.kernels import forward as forward_k
from lsr.index.kernels import reorder as reorder_k

from conftest import random_collection, spy, vocab_of
from test_index import oracle, random_queries

# every registered method that is rank-safe at its defaults, and bmp at its explicit safe setting
SAFE = [(m.name, {}) for m in registry.METHODS.values() if m.rank_safe(m.defaults())] + [
    ("bmp", {"alpha": 1.0, "beta": 1.0})
]
# recall@k floors at default settings, and for the documented speed knobs
APPROX = [("seismic", {}, 0.9), ("bmp", {"alpha": 0.9}, 0.8), ("bmp", {"beta": 0.8}, 0.6)]


def test_every_registered_method_is_tested():
    """A new method cannot slip past the oracle tests: safe ones run in SAFE (from the registry),
    approximate ones need a recall floor in APPROX."""
    assert SAFE[:3] == [("exact", {}), ("maxscore", {}), ("bmp", {})]
    approx_defaults = {m for m, p, _ in APPROX if not p}
    for m in registry.METHODS.values():
        assert m.rank_safe(m.defaults()) or m.name in approx_defaults, m.name
        assert set(m.parts) <= set(registry.PARTS)


def topical_collection(n_docs: int, n_terms: int, seed: int, n_topics: int = 12) -> sp.csr_matrix:
    """Documents drawn from a few topics (each a random subset of terms), in shuffled order: the
    structure that reordering and clustering exploit, which uniform random data lacks."""
    rng = np.random.default_rng(seed)
    topics = [rng.choice(n_terms, size=n_terms // 6, replace=False) for _ in range(n_topics)]
    rows, cols, vals = [], [], []
    for d in range(n_docs):
        t = topics[int(rng.integers(n_topics))]
        terms = np.unique(np.concatenate([rng.choice(t, 12), rng.integers(0, n_terms, 3)]))
        rows += [d] * len(terms)
        cols += terms.tolist()
        vals += (rng.integers(1, 64, len(terms)) / 8).tolist()
    return sp.csr_matrix((np.array(vals, np.float32), (rows, cols)), shape=(n_docs, n_terms))


def collections():
    out = []
    for seed in range(3):
        out.append(
            ("uniform", seed, random_collection(700 + 53 * seed, 150, seed, density=0.05 + 0.02 * seed))
        )
        out.append(("topical", seed, topical_collection(1500 + 101 * seed, 240, seed)))
    return out


COLLECTIONS = collections()
# small blocks and lists so that pruning happens on small collections; some BMP terms dense
SMALL_PARTS = {
    "bmp": {"block_size": 8, "dense_fraction": 0.3},
    "seismic": {"n_postings": 60, "block_size": 8},
}


@pytest.fixture(
    scope="module", params=[(q, i) for q in ("float32", "uint8") for i in range(len(COLLECTIONS))]
)
def built(request, tmp_path_factory):
    quantization, i = request.param
    kind, seed, docs = COLLECTIONS[i]
    path = tmp_path_factory.mktemp(f"{kind}{seed}{quantization}") / "ix"
    build_index(docs, path, vocab=vocab_of(docs.shape[1]), quantization=quantization, **SMALL_PARTS)
    return open_index(path), docs, seed


def _queries(docs, seed):
    q = random_queries(docs.shape[1], 30, seed + 500)
    # and queries made from documents (the realistic case: many matches share terms)
    rng = np.random.default_rng(seed)
    rows = docs[rng.choice(docs.shape[0], 10, replace=False)]
    return sp.vstack([q, rows]).tocsr()


@pytest.mark.parametrize("method,params", SAFE)
def test_safe_methods_equal_oracle(built, method, params):
    idx, docs, seed = built
    assert idx.methods == ("exact", "maxscore", "bmp", "seismic")
    assert len(idx.doc_order) == idx.n_docs  # reordered: results must still follow build order
    queries = _queries(docs, seed)
    for k in (1, 10, 50, docs.shape[0] + 3):
        want = oracle(idx, docs, queries, k)
        for threads in (1, 2):
            got = idx.search(queries, k=k, method=method, threads=threads, **params)
            for qi, ((wd, ws), g) in enumerate(zip(want, got, strict=True)):
                assert g.docs.tolist() == wd.tolist(), (method, k, qi)
                np.testing.assert_allclose(g.scores, ws, rtol=1e-6)


@pytest.mark.parametrize("method,params,floor", APPROX)
def test_approximate_methods_recall(built, method, params, floor):
    idx, docs, seed = built
    queries = _queries(docs, seed)
    k = 10
    want = oracle(idx, docs, queries, k)
    got = idx.search(queries, k=k, method=method, **params)
    recalls = [
        len(set(g.docs.tolist()) & set(wd.tolist())) / len(wd)
        for (wd, _), g in zip(want, got, strict=True)
        if len(wd)
    ]
    recall = float(np.mean(recalls))
    print(f"{method} {params} recall@{k} = {recall:.3f}")
    assert recall >= floor
    exact = idx.search(queries, k=k, threads=2)
    for g, e in zip(got, exact, strict=True):
        assert g.scores == sorted(g.scores, reverse=True)
        if "beta" in params:
            continue  # beta drops query terms from scoring too: partial scores
        # otherwise approximate results carry true scores
        s = dict(zip(e.ids, e.scores, strict=True))
        for doc_id, score in zip(g.ids, g.scores, strict=True):
            if doc_id in s:
                assert score == s[doc_id]


def test_methods_agree_bitwise_on_real_valued_weights(tmp_path):
    """Arbitrary float weights: the safe methods give the same scores as exact, to the last bit."""
    docs = random_collection(900, 120, 7, density=0.08, exact_weights=False)
    idx = open_index(build_index(docs, tmp_path / "ix", vocab=vocab_of(120), **SMALL_PARTS))
    q = random_queries(120, 40, 8, exact_weights=False)
    exact = idx.search(q, k=20)
    for method in ("maxscore", "bmp"):
        got = idx.search(q, k=20, method=method)
        for g, e in zip(got, exact, strict=True):
            assert g.ids == e.ids and g.scores == e.scores


def test_without_reordering_and_lean_index(tmp_path):
    docs = topical_collection(800, 100, 3)
    idx = open_index(build_index(docs, tmp_path / "a", vocab=vocab_of(100), reorder=False, **SMALL_PARTS))
    assert len(idx.doc_order) == 0
    q = _queries(docs, 3)
    want = oracle(idx, docs, q, 10)
    for method in ("exact", "maxscore", "bmp"):
        for g, (wd, _) in zip(idx.search(q, k=10, method=method), want, strict=True):
            assert g.docs.tolist() == wd.tolist()
    lean = open_index(build_index(docs, tmp_path / "b", vocab=vocab_of(100), methods=["exact"]))
    assert lean.methods == ("exact",)
    assert not any(
        f.startswith(("bmp", "seismic", "forward", "doc_order")) for f in __import__("os").listdir(lean.path)
    )
    with pytest.raises(LsrError, match="built without the bmp part"):
        lean.search(q, method="bmp")
    with pytest.raises(LsrError, match="unknown method"):
        lean.search(q, method="wand")


def test_method_parameters_are_checked(tmp_path):
    docs = topical_collection(300, 60, 1)
    idx = open_index(build_index(docs, tmp_path / "ix", vocab=vocab_of(60), **SMALL_PARTS))
    q = _queries(docs, 1)
    for method, params, msg in [
        ("bmp", {"alpha": 0}, "alpha must be in"),
        ("bmp", {"alpha": 1.5}, "alpha must be in"),
        ("bmp", {"beta": "x"}, "beta must be a number"),
        ("bmp", {"gamma": 1}, "takes no parameter gamma"),
        ("seismic", {"query_cut": 0}, "query_cut must be in"),
        ("seismic", {"query_cut": 2.5}, "query_cut must be an integer"),
        ("exact", {"alpha": 1}, "takes no parameter alpha"),
    ]:
        with pytest.raises(LsrError, match=msg):
            idx.search(q, method=method, **params)
    # every registered parameter: its bounds and type, from the registry record
    for m in registry.METHODS.values():
        assert idx.check_params(m.name, {}) == m.defaults()
        for p in m.params:
            span = p.high - p.low
            for bad in (p.low - max(1e-7, span * 1e-3), p.high + max(1e-7, span * 1e-3), float("nan"), True):
                with pytest.raises(LsrError, match=f"{p.name} must be"):
                    idx.search(q, method=m.name, **{p.name: bad})
            for ok in (p.low, p.high):
                assert idx.check_params(m.name, {p.name: ok})[p.name] == ok
            if p.integer:
                with pytest.raises(LsrError, match="must be an integer"):
                    idx.search(q, method=m.name, **{p.name: p.low + 0.5})
    with pytest.raises(LsrError, match="unknown method"):
        build_index(docs, tmp_path / "bad", vocab=vocab_of(60), methods=["bmp", "wand"])
    with pytest.raises(LsrError, match="unknown index part"):
        build_index(docs, tmp_path / "bad", vocab=vocab_of(60), bmq={"block_size": 8})
    with pytest.raises(LsrError, match="summary_energy must be in"):
        build_index(docs, tmp_path / "bad", vocab=vocab_of(60), seismic={"summary_energy": 1.5})
    assert not (tmp_path / "bad").exists()
    with pytest.raises(LsrError, match="unknown seismic parameter"):
        build_index(docs, tmp_path / "bad", vocab=vocab_of(60), seismic={"n_posting": 3})


def test_duplicate_and_unsorted_query_terms_are_canonicalised(tmp_path):
    docs = topical_collection(400, 50, 2)
    idx = open_index(build_index(docs, tmp_path / "ix", vocab=vocab_of(50), **SMALL_PARTS))
    unsorted = [{"t9": 1.0, "t3": 0.5, "t40": 2.0}, {"t3": 0.0, "t7": 1.0}]
    canonical = [{"t3": 0.5, "t9": 1.0, "t40": 2.0}, {"t7": 1.0}]
    for method in idx.methods:
        a = idx.search(unsorted, k=5, method=method)
        b = idx.search(canonical, k=5, method=method)
        assert [r.ids for r in a] == [r.ids for r in b]


# -- kernels against their numpy twins ----------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_transpose_equals_scipy(seed):
    m = random_collection(300, 80, seed, density=0.1)
    rng = np.random.default_rng(seed)
    row_map = rng.permutation(300).astype(np.int64)
    for rm in (np.empty(0, np.int64), row_map):
        got = forward_k.transpose(m.indptr.astype(np.int64), m.indices.astype(np.uint32), m.data, 80, rm)
        want = forward_k.transpose_reference(m.indptr, m.indices, m.data, 80, rm)
        for g, w in zip(got, want, strict=True):
            np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("dense_fraction", [0.3, 2.0])
def test_bmp_blocks_equal_numpy(seed, dense_fraction):
    m = random_collection(500, 60, seed, density=0.1).T.tocsr()  # term-major: an inverted index
    offsets, docs, imps = m.indptr.astype(np.int64), m.indices.astype(np.uint32), m.data
    bo, bb, bs, bm, drow, dmax, dstart = bmp_k.build_blocks(offsets, docs, imps, 16, 500, dense_fraction)
    nb = (500 + 15) // 16
    n_dense = 0
    for t in range(60):
        seg_docs = docs[offsets[t] : offsets[t + 1]]
        seg_imps = imps[offsets[t] : offsets[t + 1]]
        blocks = seg_docs // 16
        want_blocks = np.unique(blocks)
        want_max = [seg_imps[blocks == b].max() for b in want_blocks]
        if len(want_blocks) >= dense_fraction * nb:
            r = drow[t]
            assert r == n_dense and bo[t + 1] == bo[t]
            n_dense += 1
            row = np.zeros(nb, np.float32)
            row[want_blocks] = want_max
            np.testing.assert_array_equal(dmax[r * nb : (r + 1) * nb], row)
            np.testing.assert_array_equal(
                dstart[r * (nb + 1) : (r + 1) * (nb + 1)], np.searchsorted(blocks, np.arange(nb + 1))
            )
        else:
            assert drow[t] == -1
            got = slice(bo[t], bo[t + 1])
            np.testing.assert_array_equal(bb[got], want_blocks)
            np.testing.assert_array_equal(bs[got], np.searchsorted(blocks, want_blocks))
            np.testing.assert_array_equal(bm[got], want_max)
    assert n_dense == (drow >= 0).sum()
    if dense_fraction < 1:
        assert n_dense > 0


def test_bmp_beta_pruning_equals_reference(tmp_path):
    docs = random_collection(600, 90, 5, density=0.08)
    idx = open_index(
        build_index(docs, tmp_path / "ix", vocab=vocab_of(90), reorder=False, bmp={"block_size": 8})
    )
    q = random_queries(90, 20, 9)
    indptr, terms, weights, _ = idx.prepare_queries(q)
    got = idx.search(q, k=10, method="bmp", beta=0.6)
    for i, g in enumerate(got):
        a, b = indptr[i], indptr[i + 1]
        wd, _ = bmp_k.search_reference(
            idx.offsets,
            idx.postings_docs,
            idx.postings_impacts,
            1.0,
            terms[a:b],
            weights[a:b],
            10,
            idx.n_docs,
            0.6,
        )
        assert g.docs.tolist() == wd.tolist()


def _gap_cost(fptr, fterms, order, n_terms):
    """Sum over terms of log2 gaps between consecutive documents holding the term."""
    pos = np.empty(len(order), np.int64)
    pos[order] = np.arange(len(order))
    m = sp.csr_matrix((np.ones(len(fterms)), fterms, fptr), shape=(len(fptr) - 1, n_terms)).T.tocsr()
    cost = 0.0
    for t in range(n_terms):
        p = np.sort(pos[m.indices[m.indptr[t] : m.indptr[t + 1]]])
        if len(p) > 1:
            cost += np.log2(np.diff(p)).sum()
    return cost


def test_graph_bisection_is_a_permutation_that_lowers_gap_cost():
    docs = topical_collection(2000, 200, 4)
    fptr, fterms = docs.indptr.astype(np.int64), docs.indices.astype(np.int32)
    tp, tt, tw = reorder_k.top_terms(fptr, fterms, docs.data, 5)
    for d in range(0, 2000, 97):  # the 5 heaviest terms, ascending term id
        row = docs[d]
        keep = np.sort(row.indices[np.argsort(-row.data, kind="stable")[:5]])
        assert tt[tp[d] : tp[d + 1]].tolist() == keep.tolist()
        assert tw[tp[d] : tp[d + 1]].tolist() == [row[0, t] for t in keep]
    order = reorder_k.graph_bisection(fptr, fterms, 200, leaf=8, iterations=6, threads=2)
    assert sorted(order.tolist()) == list(range(2000))
    before = _gap_cost(fptr, fterms, np.arange(2000), 200)
    after = _gap_cost(fptr, fterms, order.astype(np.int64), 200)
    assert after < 0.8 * before, (before, after)


def test_seismic_part_of_an_older_layout_opens_but_asks_for_a_rebuild(tmp_path):
    """An index whose seismic part an older lsr built (layout 1: no "layout" in its record) still
    opens and searches with the other methods; seismic refuses with a one-line 'rebuild' error
    instead of reading arrays of another layout."""
    import json

    from lsr.index import format as fmt

    docs = topical_collection(300, 60, 5)
    path = build_index(docs, tmp_path / "ix", vocab=vocab_of(60), **SMALL_PARTS)
    m = json.loads(
        open(f"{path}/manifest.json", encoding="utf-8").read().rsplit(', "manifest_crc32"', 1)[0] + "}"
    )
    assert m["parts"]["seismic"]["layout"] == 2
    del m["parts"]["seismic"]["layout"]
    fmt.write_manifest(path, m)
    idx = open_index(path)
    q = [{"t1": 1.0, "t7": 0.5}]
    assert idx.search(q, k=5, method="bmp")[0].ids == idx.search(q, k=5)[0].ids
    with pytest.raises(LsrError, match="seismic part has layout 1 .*rebuild the index"):
        idx.search(q, k=5, method="seismic")


def test_forward_terms_are_uint16_and_an_older_uint32_forward_index_still_searches(tmp_path):
    """A vocabulary of <= 65,536 terms stores forward term ids as uint16; an index an older lsr
    wrote (uint32 ids) opens and gives the same results with every method that reads the forward
    index; a forward_terms.npy of another dtype is refused with a one-line error."""
    docs = topical_collection(400, 60, 7)
    # uint8: the uint32-id kernels it needs are the big-vocabulary tests' (no extra compiling)
    path = build_index(docs, tmp_path / "ix", vocab=vocab_of(60), quantization="uint8", **SMALL_PARTS)
    idx = open_index(path)
    assert idx.forward[1].dtype == np.uint16
    queries = random_queries(60, 8, 3)
    want = {m: idx.search(queries, k=10, method=m) for m in ("exact", "maxscore", "seismic")}
    f = f"{path}/forward_terms.npy"
    np.save(f, np.load(f).astype(np.uint32))
    old = open_index(path)
    assert old.forward[1].dtype == np.uint32
    for m, res in want.items():
        got = old.search(queries, k=10, method=m)
        assert [r.ids for r in got] == [r.ids for r in res], m
        assert [r.scores for r in got] == [r.scores for r in res], m
    np.save(f, np.load(f).astype(np.int64))
    with pytest.raises(LsrError, match="forward_terms.npy has dtype int64, expected uint16 or uint32"):
        open_index(path)


def test_seismic_pruning_choices_are_checked_and_recorded(tmp_path):
    """``pruning`` is "global" (the default, recorded in the manifest) or "fixed"; anything else is
    refused with one line before anything is written; fixed pruning keeps n_postings per list."""
    docs = topical_collection(300, 60, 5)
    for bad, msg in (("nope", "pruning must be one of global, fixed"), (3, "pruning must be a string")):
        with pytest.raises(LsrError, match=msg):
            build_index(docs, tmp_path / "bad", vocab=vocab_of(60), seismic={"pruning": bad})
    assert not (tmp_path / "bad").exists()
    with pytest.raises(LsrError, match="max_fraction must be >= 1"):
        build_index(docs, tmp_path / "bad", vocab=vocab_of(60), seismic={"max_fraction": 0.5})
    g = open_index(build_index(docs, tmp_path / "g", vocab=vocab_of(60), seismic={"n_postings": 10}))
    f = open_index(
        build_index(docs, tmp_path / "f", vocab=vocab_of(60), seismic={"n_postings": 10, "pruning": "fixed"})
    )
    assert g.parts["seismic"]["pruning"] == "global" and f.parts["seismic"]["pruning"] == "fixed"

    def kept(ix):
        tb, bptr = np.asarray(ix.seismic[0]), np.asarray(ix.seismic[1])
        return bptr[tb[1:]] - bptr[tb[:-1]]

    lens = np.diff(np.asarray(f.offsets))
    assert kept(f).tolist() == np.minimum(lens, 10).tolist()
    assert kept(g).max() == 15 and kept(g).sum() <= 10 * np.count_nonzero(lens) + 60  # ties at the cut


def test_global_pruning_compares_true_weights_under_the_per_term_quantizer(tmp_path):
    """With one quantization step per term, the stored integers of two terms are in different
    units: global pruning keeps what the twin keeps over the dequantized weights."""
    from lsr.index.kernels import seismic as seismic_k

    docs = topical_collection(300, 60, 5)
    ix = open_index(
        build_index(
            docs, tmp_path / "t", vocab=vocab_of(60), quantization="uint8", quantizer="term",
            seismic={"n_postings": 10},
        )
    )  # fmt: skip
    off, imps = np.asarray(ix.offsets), np.asarray(ix.postings_impacts)
    assert ix.term_scale is not None and len(imps) > 10 * np.count_nonzero(np.diff(off))  # it prunes
    weights = imps.astype(np.float64) * np.repeat(np.asarray(ix.term_scale, np.float64), np.diff(off))
    want = seismic_k.list_keep_reference(off, weights, 10, 1.5)
    tb, bptr = np.asarray(ix.seismic[0]), np.asarray(ix.seismic[1])
    assert (bptr[tb[1:]] - bptr[tb[:-1]]).tolist() == want.tolist()
    assert want.tolist() != seismic_k.list_keep_reference(off, imps, 10, 1.5).tolist()  # units matter


def test_seismic_refuses_lists_of_more_blocks_than_uint16_numbers(tmp_path):
    docs = topical_collection(50, 60, 5)
    with pytest.raises(LsrError, match="at most 65536 blocks per list"):
        build_index(
            docs, tmp_path / "bad", vocab=vocab_of(60), seismic={"n_postings": 10**6, "block_size": 1}
        )


def test_seismic_builds_uint8_and_float32_indexes_with_one_compiled_build(tmp_path):
    """The Seismic build and the reordering read weights as float32 only, so the index hands them
    float32 copies of uint8 impacts: one compiled build (~20 s of numba each) for every dtype, and
    the same structures as the kernel twins' (tested there on the original dtypes)."""
    from lsr.index.kernels import seismic as seismic_k

    docs = topical_collection(120, 60, 3)
    for quantization in ("float32", "uint8"):
        build_index(
            docs, tmp_path / quantization, vocab=vocab_of(60), quantization=quantization, **SMALL_PARTS
        )
    assert {(str(sig[4].dtype), str(sig[7].dtype)) for sig in seismic_k.build_terms.signatures} == {
        ("float32", "float32")
    }
    assert {str(sig[2].dtype) for sig in reorder_k._top_terms_range.signatures} <= {"float32"}


def test_seismic_summaries_keep_their_energy_on_long_documents(tmp_path):
    """At the default build parameters every block's summary holds >= summary_energy of the block's
    L1 mass, also for long documents (here ~300 terms each, as SciFact's real vectors): the old
    default cap of 256 summary terms cut those summaries short, which lowered their scores and
    cost recall (0.88 vs Seismic's 0.94 at query_cut 5 on SciFact vectors)."""
    docs = random_collection(120, 4000, 11, density=0.075, exact_weights=False)
    idx = open_index(build_index(docs, tmp_path / "ix", vocab=vocab_of(4000), methods=["seismic"]))
    tb, bptr, bdocs, scale, lg, gterms, goff, gblk, gval = idx.seismic
    fptr, fterms, fimp = idx.forward
    energy = idx.parts["seismic"]["summary_energy"]
    checked = 0
    for t in np.flatnonzero(np.diff(tb) > 1)[:40]:
        kept = np.zeros(int(tb[t + 1] - tb[t]))
        n_kept = np.zeros(len(kept))
        for e in range(int(goff[lg[t]]), int(goff[lg[t + 1]])):
            kept[int(gblk[e])] += float(gval[e])
            n_kept[int(gblk[e])] += 1
        for j in range(len(kept)):
            b = int(tb[t]) + j
            mx: dict[int, float] = {}
            for d in bdocs[bptr[b] : bptr[b + 1]]:
                for p in range(int(fptr[d]), int(fptr[d + 1])):
                    mx[int(fterms[p])] = max(mx.get(int(fterms[p]), 0.0), float(fimp[p]))
            # codes round to the nearest 1/255 of the block maximum: allow that much per kept term
            assert (
                kept[j] * float(scale[b]) >= energy * sum(mx.values()) - 0.5 * float(scale[b]) * n_kept[j]
            ), (t, j, n_kept[j])
            checked += 1
    assert checked > 20


@pytest.mark.parametrize("method", ["maxscore", "bmp"])
def test_pruning_goes_to_exact_search_up_front_where_it_keeps_falling_back(tmp_path, monkeypatch, method):
    """An index whose queries keep making MaxScore (BMP) fall back answers them with exact search up
    front (probing the method POLICY_PROBE calls later, then at gaps that double while probes keep
    falling back), and returns to the method once probes stop falling back; the results equal the
    oracle's throughout."""
    import importlib

    ms_k = importlib.import_module(f"lsr.index.kernels.{method}")
    ms_m = importlib.import_module(f"lsr.index.methods.{method}")

    docs = random_collection(3000, 40, 9, density=0.2)
    idx = open_index(build_index(docs, tmp_path / "ix", vocab=vocab_of(40), methods=["exact", method]))
    queries = random_queries(40, 200, 3)
    queries = queries[np.flatnonzero(np.diff(queries.indptr) >= 3)[:120]]  # long enough to be checked
    assert queries.shape[0] == 120
    want = oracle(idx, docs, queries, 10)
    calls: list[int] = []
    real = ms_k.search_serial

    def spy(*a):
        calls.append(1)
        return real(*a)

    monkeypatch.setattr(ms_k, "search_serial", spy)

    def run(lo, hi):
        calls.clear()
        for q in range(lo, hi):
            got = idx.search(queries[q], k=10, method=method)[0]
            assert got.docs.tolist() == want[q][0].tolist(), q
            np.testing.assert_allclose(got.scores, want[q][1], rtol=1e-6)
        return len(calls)

    monkeypatch.setattr(registry, "POLICY_TIMED", False)  # decisions by the fallback share alone
    monkeypatch.setattr(registry, "POLICY_WORK", False)
    monkeypatch.setattr(
        ms_m, "FALLBACK", 1e-9
    )  # every query falls back (MaxScore at its first check, BMP up front)
    assert run(0, 14) == 14  # the share of fallbacks climbs past POLICY_SKIP: 1 - 0.9^14 = 0.77
    assert idx.adaptive[method].rate > registry.POLICY_SKIP
    assert registry.POLICY_PROBE == 8
    # exact search up front; probes at queries 21 and 37 (8, then 16 calls apart), both fall back
    assert run(14, 54) == 2
    assert idx.adaptive[method].gap == 32
    monkeypatch.setattr(ms_m, "FALLBACK", 1e9)  # nothing falls back any more
    # the next probe, 32 calls on (query 69), does not fall back: rate 0.815 * 0.9 < POLICY_SKIP,
    # so the method runs on every call from query 70 on
    assert run(54, 90) == 1 + 20
    assert idx.adaptive[method].rate < registry.POLICY_SKIP
    assert idx.adaptive[method].gap == registry.POLICY_PROBE
    assert run(90, 120) == 30  # the method on every call again
    monkeypatch.setattr(ms_m, "FALLBACK", 0.0)  # never falls back: no policy either
    idx.adaptive[method].rate = 1.0
    assert run(0, 20) == 20


def test_fallback_policy_probe_gaps_double_up_to_the_cap_and_reset():
    """The probe schedule alone: over POLICY_SKIP, probes come POLICY_PROBE calls apart, then at
    doubling gaps while every probe falls back, never more than POLICY_PROBE_MAX apart; a probe
    that does not fall back brings the gap back to POLICY_PROBE."""
    p = registry.FallbackPolicy()
    p.rate = 1.0
    probes = []
    for call in range(1, 3000):
        if not p.skip():
            probes.append(call)
            p.update(1, 1)
    gaps = np.diff([0, *probes]).tolist()
    assert gaps[:6] == [8, 16, 32, 64, 128, 256]
    assert set(gaps[6:]) == {registry.POLICY_PROBE_MAX}
    while p.skip():
        pass
    p.update(0, 1)  # a probe that did not fall back
    assert p.gap == registry.POLICY_PROBE and p.until == registry.POLICY_PROBE
    assert p.rate > registry.POLICY_SKIP  # one query does not bring the share down
    assert [p.skip() for _ in range(8)] == [True] * 7 + [False]


def test_fallback_policy_skips_a_method_whose_counted_work_exceeds_exact_searchs(monkeypatch):
    """A method that never falls back but whose kernel counts more work than exact search's estimate
    goes to exact search up front after its first call, is probed at doubling gaps while probes
    still count more, and runs again after a few probes that count less; with POLICY_WORK off only
    the share of fallbacks decides."""
    p = registry.FallbackPolicy(timed=False)
    ran = 0
    for _ in range(50):
        if p.skip():
            break
        p.update(0, 1, None, 130, 100)
        ran += 1
    assert ran == 1 and p.work == pytest.approx(1.3) and p.rate == 0.0
    probes = []
    for call in range(1, 300):
        if not p.skip():
            probes.append(call)
            p.update(0, 1, None, 130, 100)  # the probe still counts more than exact search
    assert np.diff(probes).tolist()[:3] == [16, 32, 64]
    n = 0
    for _ in range(500):
        if not p.costlier():
            break
        if not p.skip():
            p.update(0, 1, None, 50, 100)  # now it counts half of exact search's work
            n += 1
    assert n == 5 and p.gap == registry.POLICY_PROBE  # 1.3 - 0.8 (1 - 0.9^5) < 1
    assert not p.skip()
    monkeypatch.setattr(registry, "POLICY_WORK", False)
    q = registry.FallbackPolicy()
    q.update(0, 1, None, 500, 100)
    assert not q.costlier() and not q.skip()


def test_maxscore_whose_work_exceeds_exact_searchs_is_left_for_exact_search(tmp_path, monkeypatch):
    """Through ``Index.search``: MaxScore whose queries cost more counted work than exact search's
    (each falls back after its first window: that window plus exact search) goes to exact search up
    front from its second call, although the share of fallbacks alone would never send it there
    (POLICY_SKIP raised out of reach); results equal the oracle's throughout."""
    from lsr.index.kernels import maxscore as ms_k
    from lsr.index.methods import maxscore as ms_m

    docs = random_collection(3000, 40, 9, density=0.2)
    idx = open_index(build_index(docs, tmp_path / "ix", vocab=vocab_of(40), methods=["exact", "maxscore"]))
    queries = random_queries(40, 200, 3)
    queries = queries[np.flatnonzero(np.diff(queries.indptr) >= 3)[:30]]
    want = oracle(idx, docs, queries, 10)
    calls = spy(monkeypatch, ms_k, "search_serial")
    monkeypatch.setattr(registry, "POLICY_TIMED", False)
    monkeypatch.setattr(registry, "POLICY_SKIP", 2.0)
    monkeypatch.setattr(ms_m, "FALLBACK", 1e-9)
    for q in range(queries.shape[0]):
        got = idx.search(queries[q], k=10, method="maxscore")[0]
        assert got.docs.tolist() == want[q][0].tolist(), q
    pol = idx.adaptive["maxscore"]
    assert pol.work is not None and pol.work > registry.POLICY_WORK_SKIP
    assert len(calls) == 1 + 2  # the first call, then probes at calls 9 and 25 (gaps 8, 16)


def test_warmup_runs_the_methods_kernels_whatever_their_policy_says_and_keeps_the_policy(
    tmp_path, monkeypatch
):
    """Warm-up compiles a method's one-thread and threaded kernels even where its policy would send
    the tiny query to exact search (it did, once the policy also weighed counted work: MaxScore's
    and BMP's threaded kernels were left uncompiled), and leaves the policy as it found it."""
    from lsr.index.kernels import maxscore as ms_k
    from lsr.index.methods import maxscore as ms_m

    docs = random_collection(3000, 40, 9, density=0.2)
    idx = open_index(build_index(docs, tmp_path / "ix", vocab=vocab_of(40), methods=["exact", "maxscore"]))
    queries = random_queries(40, 60, 3)
    monkeypatch.setattr(ms_m, "FALLBACK", 1e-9)  # every query falls back: the policy skips MaxScore
    for q in range(20):
        idx.search(queries[q], k=10, method="maxscore")
    pol = idx.adaptive["maxscore"]
    assert pol.costlier() or pol.rate > registry.POLICY_SKIP
    before = {name: getattr(pol, name) for name in pol.__slots__}
    serial = spy(monkeypatch, ms_k, "search_serial")
    threaded = spy(monkeypatch, ms_k, "search_range")
    idx.warmup(["maxscore"])
    assert serial and threaded
    after = idx.adaptive["maxscore"]
    assert {name: getattr(after, name) for name in after.__slots__} == before


def test_fallback_policy_prefers_whichever_is_faster_per_query(monkeypatch):
    """With both times measured, a method slower per query than exact search is skipped (probed
    at doubling gaps) although it never falls back, and preferred again once probes show it
    faster; while it is preferred, exact search is sampled at doubling gaps. The first timed call
    of each kind is not used (a cold call). (POLICY_TIMED is off by default.)"""
    monkeypatch.setattr(registry, "POLICY_TIMED", True)
    p = registry.FallbackPolicy()
    ran = []
    while not p.slower():  # the method runs, slowly; exact search is sampled on calls 8 and 24
        if p.skip():
            ran.append("exact")
            p.exact_ran(1, 1e-3 if ran.count("exact") > 1 else 1.0)  # the first: a cold call
        else:
            ran.append("method")
            p.update(0, 1, 2e-3)
        assert len(ran) < 100
    assert ran == ["method"] * 7 + ["exact"] + ["method"] * 15 + ["exact"]
    assert p.t_exact == 1e-3 and p.t_method == 2e-3
    assert p.slower()
    probes = []
    for call in range(1, 200):
        if not p.skip():
            probes.append(call)
            p.update(0, 1, 2e-3)  # still slower: the probe does not pay
        else:
            p.exact_ran(1, 1e-3)
    assert np.diff([0, *probes]).tolist()[:4] == [8, 16, 32, 64]
    n_fast = 0
    while p.slower():  # the method got faster: each probe pulls its average down
        if not p.skip():
            p.update(0, 1, 0.2e-3)
            n_fast += 1
        else:
            p.exact_ran(1, 1e-3)
    assert 1 <= n_fast <= 20 and p.gap == registry.POLICY_PROBE
    assert not p.skip()  # the method runs again


@pytest.mark.parametrize("method", ["maxscore", "bmp"])
def test_a_method_slower_than_exact_search_is_left_for_exact_search(tmp_path, monkeypatch, method):
    """A method that never falls back but costs more per query than exact search (here made slow
    on purpose) runs only on probes after a few calls; every result equals the oracle's."""
    import importlib
    import time as time_mod

    monkeypatch.setattr(registry, "POLICY_TIMED", True)
    ms_k = importlib.import_module(f"lsr.index.kernels.{method}")
    docs = random_collection(2000, 40, 5, density=0.2)
    idx = open_index(build_index(docs, tmp_path / "ix", vocab=vocab_of(40), methods=["exact", method]))
    queries = random_queries(40, 120, 4)
    want = oracle(idx, docs, queries, 10)
    calls: list[int] = []
    real = ms_k.search_serial

    def slow(*a):
        calls.append(1)
        time_mod.sleep(0.003)
        return real(*a)

    monkeypatch.setattr(ms_k, "search_serial", slow)
    for q in range(queries.shape[0]):
        got = idx.search(queries[q], k=10, method=method)[0]
        assert got.docs.tolist() == want[q][0].tolist(), q
    # at most 22 calls until exact search has been timed twice (its samples on calls 8 and 24;
    # the first is not used), then probes only, at calls 32, 48 and 80 (of 120)
    assert len(calls) <= 25, len(calls)
    key = method
    assert idx.adaptive[key].slower()


def test_calls_with_a_mask_or_a_starting_threshold_are_not_timed(tmp_path, monkeypatch):
    """A living index's segment calls (a deletion mask, the k-th score of other segments as a
    starting threshold) cost more or less with their place in the search order: they neither
    feed the policy's times nor sample exact search; plain single-thread calls do both."""
    monkeypatch.setattr(registry, "POLICY_TIMED", True)
    docs = random_collection(800, 40, 6, density=0.2)
    idx = open_index(build_index(docs, tmp_path / "ix", vocab=vocab_of(40), methods=["exact", "bmp"]))
    queries = random_queries(40, 60, 7)
    ip, t, w, _ = idx.prepare_queries(queries)
    params = idx.check_params("bmp", {})
    mask = np.ones(idx.n_docs, np.uint8)
    for q in range(60):
        one = (np.array([0, ip[q + 1] - ip[q]]), t[ip[q] : ip[q + 1]], w[ip[q] : ip[q + 1]])
        idx.search_arrays(*one, 10, 1, "bmp", mask=mask, **params)
        idx.search_arrays(*one, 10, 1, "bmp", **params, init_thr=np.zeros(1, np.float32))
    pol = idx.adaptive["bmp"]
    assert pol.timed_calls == [0, 0] and pol.t_method is None and pol.t_exact is None
    assert pol.calls == 120 and pol.sample_gap == registry.POLICY_PROBE  # no exact sample taken
    for q in range(60):
        idx.search(queries[q], k=10, method="bmp")
    assert pol.timed_calls[0] > 0 and pol.timed_calls[1] > 0


def test_seismic_knn_graph_adds_recall_and_is_checked(tmp_path):
    """``seismic={"knn": n}`` stores each document's n neighbours; the search then scores the
    neighbours of its top k too (query parameter ``knn``, default: all stored). That can only add
    documents, so recall against exact search never drops, and here it rises; ``knn=0`` searches
    as the index without a graph does. Bad build parameters are refused before anything is
    written, and a graph naming a document outside the index is refused at open."""
    from lsr.index.check import check_index

    docs = topical_collection(600, 80, 21)
    queries = random_queries(80, 40, 22)
    plain = open_index(build_index(docs, tmp_path / "plain", vocab=vocab_of(80), methods=["seismic"]))
    path = build_index(docs, tmp_path / "knn", vocab=vocab_of(80), methods=["seismic"], seismic={"knn": 6})
    ix = open_index(path)
    assert ix.parts["seismic"]["knn"] == 6 and ix.seismic.graph.shape == (600, 6)
    assert check_index(path) == []
    exact = [set(r.docs.tolist()) for r in ix.search(queries, k=10, method="exact")]
    params = {"query_cut": 1, "heap_factor": 1.0}

    def recall(index, **extra):
        res = index.search(queries, k=10, method="seismic", **params, **extra)
        return [len(set(r.docs.tolist()) & e) / max(1, len(e)) for r, e in zip(res, exact, strict=True)]

    from lsr.index.kernels import seismic as seismic_k

    without = recall(plain)
    n_sigs = len(seismic_k.search_serial.signatures)
    walked = recall(ix)
    assert len(seismic_k.search_serial.signatures) == n_sigs  # no second compilation for the graph
    assert all(w >= o for w, o in zip(walked, without, strict=True))
    assert sum(walked) > sum(without)
    for a, b in zip(
        plain.search(queries, k=10, method="seismic", **params),
        ix.search(queries, k=10, method="seismic", **params, knn=0),
        strict=True,
    ):
        assert list(a.docs) == list(b.docs) and list(a.scores) == list(b.scores)
    for bad in (-1, 2.5, 4096):
        with pytest.raises(LsrError, match="seismic (parameter )?knn must be"):
            build_index(docs, tmp_path / "bad", vocab=vocab_of(80), methods=["seismic"], seismic={"knn": bad})
        assert not (tmp_path / "bad").exists()
    graph = np.load(tmp_path / "knn" / "seismic_knn.npy")
    graph[7] = 600
    np.save(tmp_path / "knn" / "seismic_knn.npy", graph)
    with pytest.raises(LsrError, match="seismic_knn.npy holds a document outside"):
        open_index(path)
    assert any("seismic_knn.npy holds a document outside" in p for p in check_index(path))
