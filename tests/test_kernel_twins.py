"""Every search and build kernel against its plain-Python / numpy twin on random inputs, called
directly (no Index in between), float32 and uint8 impacts, with and without a document reordering.

The twins live beside the kernels (``*_reference`` / ``search_python``): exact, BMP-beta,
transpose and the top-k heap are checked in test_index.py / test_methods.py; here MaxScore, BMP at
any alpha and beta, Seismic (search, kept lists, block summaries), and the reordering kernels
(top terms, graph bisection). The search twins mirror the kernels' float32 arithmetic, so results
must agree to the bit: documents, order and scores."""

from __future__ import annotations

import numpy as np
import pytest

from lsr.index.kernels import bmp as bmp_k
from lsr.index.kernels import forward as forward_k
from lsr.index.kernels import maxscore as maxscore_k
from lsr.index.kernels import reorder as reorder_k
from lsr.index.kernels import seismic as seismic_k

from conftest import random_collection

# (seed, impacts dtype, reordered): every dtype and reordering once, on two collections
CASES = [(0, "float32", False), (0, "uint8", True), (1, "float32", True), (1, "uint8", False)]

NO_MASK = np.empty(0, np.uint8)  # the kernels' "no document masked"
NO_THR = np.empty(0, np.float32)  # the safe kernels' "no starting threshold"
NO_GRAPH = np.empty((0, 1), np.int32)  # seismic's "no kNN graph"


def random_arrays(seed: int, dtype: str, reordered: bool, n_docs: int = 200, n_terms: int = 50):
    """An inverted index of arbitrary float weights (quantized to uint8 by a plain round, scale =
    max / 255), its forward index, per-term maxima and an optional doc_order permutation."""
    m = random_collection(n_docs, n_terms, seed, density=0.12, exact_weights=False)
    scale = np.float32(1.0)
    data = m.data.astype(np.float32)
    if dtype == "uint8":
        scale = np.float32(float(data.max()) / 255.0)
        data = np.clip(np.rint(data.astype(np.float64) / float(scale)), 1, 255).astype(np.uint8)
    inv = m.copy()
    inv.data = data
    inv = inv.T.tocsr()
    inv.sort_indices()
    offsets = inv.indptr.astype(np.int64)
    docs = inv.indices.astype(np.uint32)
    imps = inv.data
    fptr, fterms, fimp = forward_k.transpose(offsets, docs, imps, n_docs, np.empty(0, np.int64))
    term_max = np.zeros(n_terms, np.float32)
    for t in range(n_terms):
        if offsets[t + 1] > offsets[t]:
            term_max[t] = np.float32(imps[offsets[t] : offsets[t + 1]].max()) * scale
    rng = np.random.default_rng(seed + 77)
    doc_order = rng.permutation(n_docs).astype(np.uint32) if reordered else np.empty(0, np.uint32)
    fterms16 = fterms.astype(np.uint16)  # what an opened index of <= 65,536 terms hands the searches
    for arr in (offsets, docs, imps, fptr, fterms, fterms16, fimp, term_max, doc_order):
        # read-only, as an opened index's memory maps: the kernels' production signatures (a
        # writable argument would make Numba compile every kernel again, minutes on a cold cache)
        arr.flags.writeable = False
    return dict(
        offsets=offsets, docs=docs, imps=imps, scale=scale, fptr=fptr, fterms=fterms, fimp=fimp,
        fterms16=fterms16, term_max=term_max, doc_order=doc_order, n_docs=n_docs, n_terms=n_terms,
    )  # fmt: skip


def _writable(*arrays):
    """Writable copies: what the index builder hands the build kernels (the arrays it just made)."""
    return tuple(np.array(x) for x in arrays)


def _readonly(arrays):
    """Built part arrays made read-only, as the index maps them when it opens (the search kernels'
    production signatures)."""
    for x in arrays:
        x.flags.writeable = False
    return arrays


def random_queries(seed: int, n_terms: int, fptr, fterms, n: int = 10):
    """CSR queries (terms ascending, unique, float32 weights > 0): random term sets of 1..12 terms,
    and a few made of a document's terms (many shared matches)."""
    rng = np.random.default_rng(seed + 5)
    rows = []
    for i in range(n):
        if i % 4 == 3:
            d = int(rng.integers(len(fptr) - 1))
            terms = np.unique(np.asarray(fterms[fptr[d] : fptr[d + 1]], np.int32))
        else:
            terms = np.unique(rng.choice(n_terms, size=int(rng.integers(1, 13)), replace=False)).astype(
                np.int32
            )
        if len(terms) == 0:
            terms = np.array([0], np.int32)
        rows.append((terms, rng.lognormal(0, 0.7, len(terms)).astype(np.float32)))
    rows.append((np.array([1, 2], np.int32), np.array([1.0, 1.0], np.float32)))  # equal weights
    indptr = np.zeros(len(rows) + 1, np.int64)
    np.cumsum([len(t) for t, _ in rows], out=indptr[1:])
    return indptr, np.concatenate([t for t, _ in rows]), np.concatenate([w for _, w in rows])


def _rows(indptr, terms, weights):
    for q in range(len(indptr) - 1):
        yield q, terms[indptr[q] : indptr[q + 1]], weights[indptr[q] : indptr[q + 1]]


@pytest.mark.parametrize("seed,dtype,reordered", CASES)
def test_maxscore_equals_its_twin(seed, dtype, reordered):
    a = random_arrays(seed, dtype, reordered)
    indptr, terms, weights = random_queries(seed, a["n_terms"], a["fptr"], a["fterms"])
    full_acc = np.zeros(a["n_docs"], np.float32)
    for k in (1, 7, 300):
        # 0: never fall back to exact search; 1: the method's default (one window here: no check)
        for fallback in (0.0, 1.0):
            nq = len(indptr) - 1
            got_d, got_s = np.full((nq, k), -1, np.int64), np.zeros((nq, k), np.float32)
            stats = np.zeros(1, np.int64)
            maxscore_k.search_range(
                a["offsets"], a["docs"], a["imps"], a["scale"], a["term_max"], a["doc_order"],
                a["fptr"], a["fterms16"], a["fimp"], a["n_docs"], indptr, terms, weights, k, 0, nq, got_d, got_s,
                NO_MASK, NO_THR, fallback, full_acc, stats,
            )  # fmt: skip
            assert stats[0] == 0
            for q, qt, qw in _rows(indptr, terms, weights):
                want_d, want_s = maxscore_k.search_reference(
                    a["fptr"], a["fterms"], a["fimp"], a["scale"], a["doc_order"], qt, qw, k, a["n_docs"]
                )
                assert got_d[q].tolist() == want_d.tolist(), (k, q, fallback)
                assert got_s[q].tobytes() == want_s.tobytes(), (k, q, fallback)


def _forward_topk_numpy(a, qt, qw, k, mask=None):
    """Vectorised twin of maxscore.search_reference: every document's float32 score summed over its
    terms in ascending term id (position by position across all documents at once), then the k best
    by (score desc, key asc); keys ``doc_order[d]`` when reordered. Returns (keys, scores x scale)."""
    dense = np.zeros(a["n_terms"], np.float32)
    dense[qt] = qw
    fptr, fterms, fimp = a["fptr"], a["fterms"], a["fimp"]
    n = a["n_docs"]
    lens = np.diff(fptr)
    s = np.zeros(n, np.float32)
    for j in range(int(lens.max())):
        has = np.flatnonzero(lens > j)
        p = fptr[has] + j
        s[has] = s[has] + dense[fterms[p]] * fimp[p].astype(np.float32)
    keys = a["doc_order"].astype(np.int64) if len(a["doc_order"]) else np.arange(n)
    ok = s > 0 if mask is None else (s > 0) & (mask > 0)
    cand = np.flatnonzero(ok)
    order = cand[np.lexsort((keys[cand], -s[cand]))][:k]
    out_d = np.full(k, -1, np.int64)
    out_s = np.zeros(k, np.float32)
    out_d[: len(order)] = keys[order]
    out_s[: len(order)] = s[order] * a["scale"]
    return out_d, out_s


@pytest.mark.parametrize("seed,dtype,reordered", [(2, "uint8", True), (3, "float32", False)])
def test_maxscore_fallback_to_exact_search_equals_the_numpy_twin(seed, dtype, reordered):
    """Over several windows (9,000 docs: the fallback is checked after each), MaxScore that falls
    back to exact search midway gives exact search's top-k bit for bit, and leaves the borrowed
    accumulator zeroed; without the fallback it gives the same."""
    a = random_arrays(seed, dtype, reordered, n_docs=9000, n_terms=40)
    indptr, terms, weights = random_queries(seed, a["n_terms"], a["fptr"], a["fterms"], n=12)
    full_acc = np.zeros(a["n_docs"], np.float32)
    rng = np.random.default_rng(seed)
    mask = (rng.random(a["n_docs"]) < 0.8).astype(np.uint8)
    fell_back = {}
    for k in (1, 10):
        for m in (NO_MASK, mask):
            want = [
                _forward_topk_numpy(a, qt, qw, k, None if len(m) == 0 else m)
                for _q, qt, qw in _rows(indptr, terms, weights)
            ]
            for fallback in (0.0, 1e-3, 1.0):  # never, nearly always, the default
                nq = len(indptr) - 1
                got_d, got_s = np.full((nq, k), -1, np.int64), np.zeros((nq, k), np.float32)
                stats = np.zeros(1, np.int64)
                maxscore_k.search_range(
                    a["offsets"], a["docs"], a["imps"], a["scale"], a["term_max"], a["doc_order"],
                    a["fptr"], a["fterms16"], a["fimp"], a["n_docs"], indptr, terms, weights, k, 0, nq,
                    got_d, got_s, m, NO_THR, fallback, full_acc, stats,
                )  # fmt: skip
                fell_back[fallback] = fell_back.get(fallback, 0) + int(stats[0])
                assert not full_acc.any()
                for q, (want_d, want_s) in enumerate(want):
                    assert got_d[q].tolist() == want_d.tolist(), (k, q, fallback)
                    assert got_s[q].tobytes() == want_s.tobytes(), (k, q, fallback)
    assert fell_back[0.0] == 0 and fell_back[1e-3] > 0  # both paths were taken


def _exact_work(offsets, n_docs, indptr, terms):
    """Exact search's work per the kernels' model (module docs of ``lsr.index.kernels.bmp``),
    computed here from the list lengths: P postings + (P if 16 P < n_docs else n_docs), summed."""
    total = 0
    for q in range(len(indptr) - 1):
        p = sum(int(offsets[t + 1] - offsets[t]) for t in terms[indptr[q] : indptr[q + 1]])
        total += p + (p if 16 * p < n_docs else n_docs)
    return total


@pytest.mark.parametrize("seed,dtype,reordered", [(2, "uint8", True), (3, "float32", False)])
def test_pruning_kernels_count_their_work_against_exact_searchs(seed, dtype, reordered):
    """With a 3-entry ``stats`` MaxScore and BMP add exact search's estimated work (recomputed here
    from the list lengths) to stats[2] and their own to stats[1]: a query that fell back counts both
    its own work spent and exact search's, so with every query falling back BMP (up front) counts
    exactly exact search's work and MaxScore (after its first window) more; never falling back,
    each counts its own. A 1-entry ``stats`` still counts only the fallbacks."""
    a = random_arrays(seed, dtype, reordered, n_docs=9000, n_terms=40)
    indptr, terms, weights = random_queries(seed, a["n_terms"], a["fptr"], a["fterms"], n=12)
    nq = len(indptr) - 1
    want_e = _exact_work(a["offsets"], a["n_docs"], indptr, terms)
    full_acc = np.zeros(a["n_docs"], np.float32)
    block_size = 8
    parts = _readonly(
        bmp_k.build_blocks(*_writable(a["offsets"], a["docs"], a["imps"]), block_size, a["n_docs"], 0.3)
    )
    n_blocks = (a["n_docs"] + block_size - 1) // block_size
    slots = np.empty(int(np.diff(indptr).max()) * n_blocks, np.int32)
    counted = {}
    for fallback in (0.0, 1e-9):
        for name in ("maxscore", "bmp"):
            for size in (3, 1):
                stats = np.zeros(size, np.int64)
                if name == "maxscore":
                    maxscore_k.search_serial(
                        a["offsets"], a["docs"], a["imps"], a["scale"], a["term_max"], a["doc_order"],
                        a["fptr"], a["fterms16"], a["fimp"], a["n_docs"], indptr, terms, weights, 10, NO_MASK,
                        NO_THR, fallback, full_acc, stats,
                    )  # fmt: skip
                else:
                    bmp_k.search_serial(
                        a["offsets"], a["docs"], a["imps"], a["scale"], a["doc_order"], *parts, block_size,
                        a["n_docs"], indptr, terms, weights, 10, 1.0, 1.0, fallback, slots, full_acc, NO_MASK,
                        NO_THR, stats,
                    )  # fmt: skip
                counted[(name, fallback, size)] = stats.tolist()
    for name in ("maxscore", "bmp"):
        never, always = counted[(name, 0.0, 3)], counted[(name, 1e-9, 3)]
        assert never[0] == 0 and never[2] == want_e and 0 < never[1]
        assert always[2] == want_e
        assert counted[(name, 0.0, 1)] == [0] and counted[(name, 1e-9, 1)] == [always[0]]
    assert counted[("bmp", 1e-9, 3)] == [nq, want_e, want_e]  # all up front: exact search's work alone
    ms = counted[("maxscore", 1e-9, 3)]
    assert ms[0] > 0 and ms[1] > ms[2]  # ... MaxScore's first window and then exact search


@pytest.mark.parametrize("seed,dtype,reordered", CASES)
@pytest.mark.parametrize("dense_fraction", [0.3, 2.0])
def test_bmp_at_any_alpha_and_beta_equals_its_twin(seed, dtype, reordered, dense_fraction):
    a = random_arrays(seed, dtype, reordered)
    block_size = 8
    parts = _readonly(
        bmp_k.build_blocks(
            *_writable(a["offsets"], a["docs"], a["imps"]), block_size, a["n_docs"], dense_fraction
        )
    )
    n_blocks = (a["n_docs"] + block_size - 1) // block_size
    indptr, terms, weights = random_queries(seed, a["n_terms"], a["fptr"], a["fterms"])
    slots = np.empty(int(np.diff(indptr).max()) * n_blocks, np.int32)
    full_acc = np.zeros(a["n_docs"], np.float32)
    trace: list[str] = []
    for alpha, beta in ((1.0, 1.0), (0.9, 1.0), (0.5, 1.0), (1.0, 0.7), (0.8, 0.5)):
        for k in (1, 10):
            for fallback in (0.0, 0.2, 1.0, 1.5, 3.0):  # 0: never fall back to exact search
                stats = np.zeros(1, np.int64)
                got_d, got_s = bmp_k.search_serial(
                    a["offsets"], a["docs"], a["imps"], a["scale"], a["doc_order"], *parts, block_size,
                    a["n_docs"], indptr, terms, weights, k, alpha, beta, fallback, slots, full_acc, NO_MASK,
                    NO_THR, stats,
                )  # fmt: skip
                seen = len(trace)
                assert not full_acc.any()  # left zeroed for the next call
                for q, qt, qw in _rows(indptr, terms, weights):
                    want_d, want_s = bmp_k.search_python(
                        a["offsets"], a["docs"], a["imps"], a["scale"], a["doc_order"], *parts, block_size,
                        a["n_docs"], qt, qw, k, alpha, beta, fallback, trace,
                    )  # fmt: skip
                    assert got_d[q].tolist() == want_d.tolist(), (alpha, beta, k, fallback, q)
                    assert got_s[q].tobytes() == want_s.tobytes(), (alpha, beta, k, fallback, q)
                # the kernel counts the queries that fell back, as the twin traced them
                assert stats[0] == sum(t != "bmp" for t in trace[seen:]), (alpha, beta, k, fallback)
    assert {"up front", "midway", "bmp"} <= set(trace)  # every path of the fallback was taken


@pytest.mark.parametrize("seed,dtype,reordered", CASES[:2])
def test_bmp_trusts_no_stale_slot(seed, dtype, reordered):
    """The slot scratch (int32, each sparse entry's number counted from its term's first entry) is
    never cleared: a (term, block) the query's terms do not touch keeps whatever an earlier query
    or the allocator left there. Filled beforehand with negative numbers, numbers past every term's
    entries and numbers that name another block of the same term, BMP (fallback off) still equals
    the twin bit for bit."""
    a = random_arrays(seed, dtype, reordered)
    block_size = 8
    parts = _readonly(  # dense_fraction 2: no dense rows, every term's blocks go through slots
        bmp_k.build_blocks(*_writable(a["offsets"], a["docs"], a["imps"]), block_size, a["n_docs"], 2.0)
    )
    n_blocks = (a["n_docs"] + block_size - 1) // block_size
    indptr, terms, weights = random_queries(seed, a["n_terms"], a["fptr"], a["fterms"])
    size = int(np.diff(indptr).max()) * n_blocks
    rng = np.random.default_rng(seed)
    most = int(np.diff(parts[0]).max())  # the most entries one term has
    fills = {
        "negative": rng.integers(-(2**31), 0, size),
        "past the entries": rng.integers(most, 2**31 - 1, size),
        "other blocks": rng.integers(0, most, size),
    }
    for name, fill in fills.items():
        slots = fill.astype(np.int32)
        got_d, got_s = bmp_k.search_serial(
            a["offsets"], a["docs"], a["imps"], a["scale"], a["doc_order"], *parts, block_size, a["n_docs"],
            indptr, terms, weights, 10, 1.0, 1.0, 0.0, slots, np.zeros(a["n_docs"], np.float32), NO_MASK,
            NO_THR, np.zeros(1, np.int64),
        )  # fmt: skip
        for q, qt, qw in _rows(indptr, terms, weights):
            want_d, want_s = bmp_k.search_python(
                a["offsets"], a["docs"], a["imps"], a["scale"], a["doc_order"], *parts, block_size,
                a["n_docs"], qt, qw, 10,
            )  # fmt: skip
            assert got_d[q].tolist() == want_d.tolist(), (name, q)
            assert got_s[q].tobytes() == want_s.tobytes(), (name, q)


def _live_maxima_twin(offsets, docs, imps, block_size, n_blocks, bo, blk, drow, n_dense, live):
    """Plain-numpy twin of ``bmp.live_block_maxima``: per (term, block) the largest impact among the
    live documents, by a scatter-max over the postings (not the kernel's walk over entries)."""
    n_terms = len(offsets) - 1
    full = np.zeros((n_terms, n_blocks), np.float64)
    term_of = np.repeat(np.arange(n_terms), np.diff(offsets))
    keep = np.asarray(live, bool)[np.asarray(docs, np.int64)]
    np.maximum.at(
        full,
        (term_of[keep], np.asarray(docs, np.int64)[keep] // block_size),
        np.asarray(imps, np.float64)[keep],
    )
    mx = np.zeros(len(blk), np.float64)
    dm = np.zeros(n_dense * n_blocks, np.float64)
    for t in range(n_terms):
        if drow[t] >= 0:
            dm[drow[t] * n_blocks : (drow[t] + 1) * n_blocks] = full[t]
        else:
            mx[bo[t] : bo[t + 1]] = full[t, np.asarray(blk[bo[t] : bo[t + 1]], np.int64)]
    return mx, dm


@pytest.mark.parametrize(("seed", "dtype", "reordered"), CASES)
@pytest.mark.parametrize("dense_fraction", [0.3, 1.1])
def test_bmp_live_block_maxima_equal_their_twin(seed, dtype, reordered, dense_fraction):
    """Block maxima over the live documents (the bounds BMP over a living index's segments uses
    where documents were deleted) equal a numpy scatter-max, computed in one pass and, for a
    later bitmap with more documents deleted, updated in place from the earlier one through the
    forward index; every bound is at most the stored one."""
    a = random_arrays(seed, dtype, reordered)
    block_size = 8
    n_docs = a["n_docs"]
    n_blocks = (n_docs + block_size - 1) // block_size
    parts = _readonly(
        bmp_k.build_blocks(*_writable(a["offsets"], a["docs"], a["imps"]), block_size, n_docs, dense_fraction)
    )
    bo, blk, st, mx0, drow, dmax0, dst = parts
    n_dense = int((drow >= 0).sum())
    rng = np.random.default_rng(seed + 11)
    live = (rng.random(n_docs) > 0.2).astype(np.uint8)
    live[: 2 * block_size] = 0  # whole blocks gone: their bounds drop to 0
    got_mx, got_dm = bmp_k.live_block_maxima(
        a["offsets"], a["docs"], a["imps"], block_size, n_blocks, bo, blk, st, drow, dmax0, live
    )
    want_mx, want_dm = _live_maxima_twin(
        a["offsets"], a["docs"], a["imps"], block_size, n_blocks, bo, blk, drow, n_dense, live
    )
    assert got_mx.dtype == mx0.dtype and got_dm.dtype == dmax0.dtype
    np.testing.assert_array_equal(got_mx.astype(np.float64), want_mx)
    np.testing.assert_array_equal(got_dm.astype(np.float64), want_dm)
    assert (got_mx <= mx0).all() and (got_dm <= dmax0).all()
    assert (got_mx < mx0).any() or (got_dm < dmax0).any()  # the deletions did lower some bounds
    # more documents deleted: an in-place update of the documents gone since equals a fresh pass
    later = live.copy()
    later[rng.choice(n_docs, size=n_docs // 4, replace=False)] = 0
    gone = np.flatnonzero(live & ~later).astype(np.int64)
    upd_mx, upd_dm = got_mx.copy(), got_dm.copy()
    for fterms in (a["fterms"], a["fterms16"]):
        upd_mx, upd_dm = got_mx.copy(), got_dm.copy()
        bmp_k.update_live_maxima(
            a["offsets"], a["docs"], a["imps"], block_size, n_blocks, bo, blk, st, drow, dst, a["fptr"], fterms,
            gone, later, upd_mx, upd_dm,
        )  # fmt: skip
        want_mx, want_dm = _live_maxima_twin(
            a["offsets"], a["docs"], a["imps"], block_size, n_blocks, bo, blk, drow, n_dense, later
        )
        np.testing.assert_array_equal(upd_mx.astype(np.float64), want_mx)
        np.testing.assert_array_equal(upd_dm.astype(np.float64), want_dm)


def test_bmp_falls_back_on_the_work_left_not_the_work_spent():
    """At a fallback checkpoint BMP compares only the work still to come with exact search's: work
    already spent is paid either way. A query past its budget whose remaining blocks cost less goes
    on with BMP (it used to switch there and pay exact search on top: on the 1M synthetic set such
    queries cost about twice exact search); one whose remaining blocks cost more still switches."""
    # one light term in every document, one heavy term in the first 10 blocks: BMP visits those
    # and stops (k = 5: the first block fills the heap), but at fallback 0.6-0.65 its bound pass
    # and visits pass the budget on the way
    rng = np.random.default_rng(0)
    n_docs, block_size = 4000, 8
    offsets = np.array([0, n_docs, n_docs + 80], np.int64)
    docs = np.concatenate([np.arange(n_docs), np.arange(80)]).astype(np.uint32)
    imps = np.concatenate([rng.random(n_docs) * 0.1 + 0.01, rng.random(80) + 1]).astype(np.float32)
    parts = _readonly(bmp_k.build_blocks(offsets, docs, imps, block_size, n_docs, 0.3))
    offsets, docs, imps = _readonly((offsets, docs, imps))
    order = np.empty(0, np.uint32)
    order.flags.writeable = False
    qt, qw = np.array([0, 1], np.int32), np.array([1.0, 0.9], np.float32)
    n_blocks = n_docs // block_size
    slots = np.empty(2 * n_blocks, np.int32)
    full_acc = np.zeros(n_docs, np.float32)
    want_d, want_s = bmp_k.search_reference(offsets, docs, imps, np.float32(1), qt, qw, 5, n_docs)
    for fallback in (0.6, 0.65):
        trace: list[str] = []
        checks: list[tuple[float, float, float]] = []
        bmp_k.search_python(
            offsets, docs, imps, np.float32(1), order, *parts, block_size, n_docs, qt, qw, 5, 1.0, 1.0,
            fallback, trace, checks,
        )  # fmt: skip
        assert any(spent > budget for spent, _left, budget in checks)  # past its budget ...
        assert trace == ["bmp"]  # ... and on to the end, since what was left was cheap
        stats = np.zeros(1, np.int64)
        got_d, got_s = bmp_k.search_serial(
            offsets, docs, imps, np.float32(1), order, *parts, block_size, n_docs, np.array([0, 2], np.int64),
            qt, qw, 5, 1.0, 1.0, fallback, slots, full_acc, NO_MASK, NO_THR, stats,
        )  # fmt: skip
        assert stats[0] == 0
        assert got_d[0].tolist() == want_d.tolist()
        np.testing.assert_allclose(got_s[0], want_s, rtol=1e-6)
    # random collections (BMP prunes little there): the remaining blocks cost more, so it switches
    switched = 0
    a = random_arrays(1, "float32", True, n_docs=4000, n_terms=30)
    parts = _readonly(bmp_k.build_blocks(*_writable(a["offsets"], a["docs"], a["imps"]), 8, 4000, 0.3))
    indptr, terms, weights = random_queries(1, a["n_terms"], a["fptr"], a["fterms"], n=12)
    for _q, qt, qw in _rows(indptr, terms, weights):
        trace, checks = [], []
        bmp_k.search_python(
            a["offsets"], a["docs"], a["imps"], a["scale"], a["doc_order"], *parts, 8, 4000, qt, qw, 10, 1.0,
            1.0, 1.0, trace, checks,
        )  # fmt: skip
        if trace[-1] == "midway":
            switched += 1
            assert checks[-1][1] > checks[-1][2]
    assert switched > 0


def _seismic(a, n_postings=24, block_size=6, energy=0.5, max_terms=12, min_size=1, threads=1, keep=None):
    from lsr.index.methods.seismic import narrowed

    # the build takes float32 weights (the index converts uint8/uint16 impacts, exactly); the twins
    # read the original dtype
    fwd = _writable(a["fptr"], a["fterms"], a["fimp"].astype(np.float32))
    cptr, cterms, cw = reorder_k.top_terms(*fwd, 6)
    if keep is None:
        keep = seismic_k.list_keep(a["offsets"], a["imps"], n_postings, "fixed")
    arrays = seismic_k.build(
        *_writable(a["offsets"], a["docs"], a["imps"].astype(np.float32)), *fwd, cptr, cterms, cw,
        keep, block_size, energy, max_terms, min_size, threads,
    )  # fmt: skip
    return _readonly(tuple(np.array(x) for x in narrowed(arrays, a["n_terms"]))) if threads == 1 else arrays


def test_global_pruning_keeps_what_seismics_loop_keeps():
    """Global pruning's per-list counts equal Seismic's loop (heaviest postings of the whole index
    first, each list capped), with ties, a budget over the whole index, and empty lists."""
    for seed, dtype in ((0, "float32"), (1, "uint8"), (2, "uint8")):
        a = random_arrays(seed, dtype, False)
        off, imps = a["offsets"], a["imps"]
        for n_postings, max_fraction in ((8, 1.5), (3, 1.0), (20, 1.5), (100, 2.0)):
            got = seismic_k.list_keep(off, imps, n_postings, "global", max_fraction)
            want = seismic_k.list_keep_reference(off, imps, n_postings, max_fraction)
            assert got.tolist() == want.tolist(), (seed, n_postings, max_fraction)
        lens = np.diff(off)
        assert seismic_k.list_keep(off, imps, 5, "fixed").tolist() == np.minimum(lens, 5).tolist()
    # 8 x 50 terms = 400 of ~1,200 postings (float weights: no ties): global pruning keeps
    # long lists for heavy terms only
    a = random_arrays(0, "float32", False)
    keep = seismic_k.list_keep(a["offsets"], a["imps"], 8, "global", 1.5)
    assert keep.sum() <= 400 and keep.max() == 12 and keep.min() < 8


@pytest.mark.parametrize("seed,dtype,reordered", CASES)
@pytest.mark.parametrize("pruning", ["fixed", "global"])
def test_seismic_blocks_and_summaries_equal_their_twins(seed, dtype, reordered, pruning):
    """Each term's blocks hold exactly its kept postings (its heaviest: n_postings of them, or as
    many as global pruning keeps, from the twin of Seismic's loop), no block empty, each block's
    documents ascending, and each list's inverted summaries (groups, block numbers, codes, scales)
    equal the twin's over the same blocks. (Which documents share a block is the clustering's
    choice: checked as a partition, not as a twin.)"""
    a = random_arrays(seed, dtype, reordered)
    n_postings, block_size, energy, max_terms = 24, 6, 0.5, 12
    if pruning == "fixed":
        keep = np.full(a["n_terms"], n_postings, np.int64)
    else:
        keep = seismic_k.list_keep_reference(a["offsets"], a["imps"], 10, 1.5)
    arrays = _seismic(a, n_postings, block_size, energy, max_terms, keep=keep)
    tb, bptr, bdocs, scale, lg, gterms, goff, gblk, gval = arrays
    assert gblk.dtype == np.uint8 and gterms.dtype == np.uint16 and goff.dtype == np.uint32
    for t in range(a["n_terms"]):
        kept = seismic_k.kept_reference(a["offsets"], a["docs"], a["imps"], t, int(keep[t]))
        assert tb[t + 1] - tb[t] <= (len(kept) + block_size - 1) // block_size
        blocks = []
        for b in range(tb[t], tb[t + 1]):
            block = bdocs[bptr[b] : bptr[b + 1]].astype(np.int64)
            assert len(block) > 0 and np.all(np.diff(block) > 0)
            blocks.append(block.tolist())
        assert sorted(sum(blocks, [])) == kept.tolist()
        w_terms, w_off, w_blk, w_val, w_scale = seismic_k.list_summaries_reference(
            blocks, a["fptr"], a["fterms"], a["fimp"], energy, max_terms
        )
        g0, g1 = lg[t], lg[t + 1]
        assert gterms[g0:g1].tolist() == w_terms.tolist(), t
        assert (goff[g0 : g1 + 1].astype(np.int64) - int(goff[g0])).tolist() == w_off.tolist(), t
        e0, e1 = int(goff[g0]), int(goff[g1])
        assert gblk[e0:e1].tolist() == w_blk.tolist() and gval[e0:e1].tolist() == w_val.tolist(), t
        assert scale[tb[t] : tb[t + 1]].tolist() == w_scale.tolist(), t
    # the parallel build makes the same structures
    for x, y in zip(_seismic(a, threads=3, keep=keep), arrays, strict=True):
        np.testing.assert_array_equal(x, y)


def test_seismic_summary_keeps_the_energy_with_the_fewest_terms():
    """The summary is the shortest prefix, heaviest first, holding >= energy of the block's L1 mass
    (the old 256-bucket histogram kept whole buckets: up to a bucket too many terms)."""
    fptr = np.array([0, 4, 7], np.int64)
    fterms = np.array([0, 1, 2, 3, 1, 4, 5], np.uint32)
    fimp = np.array([4.0, 1.0, 2.0, 0.5, 3.0, 0.25, 1.0], np.float32)  # maxima: 4, 3, 2, .5, .25, 1
    mx, seen = np.zeros(6, np.float32), np.zeros(6, np.int32)
    total = 4 + 3 + 2 + 0.5 + 0.25 + 1
    for energy, want in (
        (0.3, [0]),
        (0.4, [0, 1]),
        (0.65, [0, 1]),
        (0.7, [0, 1, 2]),
        (1.0, [0, 1, 2, 5, 3, 4]),
    ):
        terms, vals = seismic_k._summary(np.array([0, 1]), fptr, fterms, fimp, energy, 256, mx, seen)
        assert terms.tolist() == want, energy
        assert float(vals.sum()) >= energy * total
        assert seismic_k.summary_reference([0, 1], fptr, fterms, fimp, energy, 256)[0].tolist() == want
    assert not mx.any()


def test_seismic_clusters_dissolve_small_ones():
    """Clusters of at most min_size documents are dissolved: with min_size 2 no block of a list
    holds fewer than 3 documents (unless the whole list is that short)."""
    a = random_arrays(3, "float32", False, n_docs=400, n_terms=30)
    tb, bptr = _seismic(a, 80, 8, 0.5, 12, min_size=2)[:2]
    for t in range(a["n_terms"]):
        sizes = np.diff(bptr[tb[t] : tb[t + 1] + 1])
        if sizes.sum() > 2 and len(sizes) > 1:
            assert sizes.min() >= 3, (t, sizes)


@pytest.mark.parametrize("seed,dtype,reordered", CASES)
def test_seismic_search_equals_its_twin(seed, dtype, reordered):
    a = random_arrays(seed, dtype, reordered)
    structures = _seismic(a)
    max_blocks = int(np.diff(structures[0]).max())
    indptr, terms, weights = random_queries(seed, a["n_terms"], a["fptr"], a["fterms"])
    stamps = np.zeros(a["n_docs"], np.int32)
    box = np.ones(1, np.int64)
    nq = len(indptr) - 1
    # starting thresholds (what the living index passes from other segments): none, and per query
    # 0, a third and two thirds of its best score (raw, before the quantization scale)
    first = seismic_k.search_serial(
        *structures, a["fptr"], a["fterms16"], a["fimp"], np.float32(1), a["doc_order"], a["n_terms"],
        max_blocks, indptr, terms, weights, 1, 50, 1.0, stamps, box, NO_MASK, NO_THR, NO_GRAPH, 0,
    )[1][:, 0]  # fmt: skip
    some = (first * np.array([0, 1 / 3, 2 / 3] * nq)[:nq]).astype(np.float32)
    for thr0 in (NO_THR, some):
        for query_cut, heap_factor in ((1, 0.9), (3, 0.5), (10, 0.9), (50, 2.0)):
            for k in (1, 10):
                got_d, got_s = seismic_k.search_serial(
                    *structures, a["fptr"], a["fterms16"], a["fimp"], a["scale"], a["doc_order"], a["n_terms"],
                    max_blocks, indptr, terms, weights, k, query_cut, heap_factor, stamps, box, NO_MASK, thr0,
                    NO_GRAPH, 0,
                )  # fmt: skip
                for q, qt, qw in _rows(indptr, terms, weights):
                    want_d, want_s = seismic_k.search_python(
                        *structures, a["fptr"], a["fterms"], a["fimp"], a["scale"], a["doc_order"],
                        qt, qw, k, query_cut, heap_factor, thr0=float(thr0[q]) if len(thr0) else 0.0,
                    )  # fmt: skip
                    assert got_d[q].tolist() == want_d.tolist(), (query_cut, heap_factor, k, q, len(thr0))
                    assert got_s[q].tobytes() == want_s.tobytes(), (query_cut, heap_factor, k, q, len(thr0))


@pytest.mark.parametrize("seed,dtype,reordered", CASES)
def test_seismic_knn_graph_and_refinement_equal_their_twins(seed, dtype, reordered):
    """The kNN graph (each document's neighbours as the index's own search finds them for its cut
    vector, itself left out), on one thread and on three, against its twin; then the search that
    walks it (the neighbours of the top k after the blocks), against the search twin with the same
    graph, for a few neighbour counts and starting thresholds."""
    a = random_arrays(seed, dtype, reordered)
    structures = _seismic(a)
    max_blocks = int(np.diff(structures[0]).max())
    f32 = np.asarray(a["fimp"]).astype(np.float32)
    fwd = _writable(a["fptr"], a["fterms"], f32)
    cptr, cterms, cw = reorder_k.top_terms(*fwd, 5)
    kappa = 4
    rows = [(cterms[cptr[d] : cptr[d + 1]], cw[cptr[d] : cptr[d + 1]]) for d in range(a["n_docs"])]
    want = seismic_k.knn_graph_reference(
        (*structures, a["fptr"], a["fterms"], f32, np.float32(1), np.empty(0, np.int64)), rows, kappa, 3, 1.0
    )
    if len(a["doc_order"]):
        keyed = np.empty_like(want)
        keyed[np.asarray(a["doc_order"])] = want
        want = keyed
    assert (want >= 0).sum() > a["n_docs"] * kappa // 2  # most documents found neighbours
    for threads in (1, 3):
        got = seismic_k.knn_graph(
            structures, *fwd, cptr, cterms, cw, a["n_terms"], kappa, 3, 1.0, a["doc_order"], threads=threads
        )
        np.testing.assert_array_equal(got, want)
    graph = want.copy()
    graph.setflags(write=False)
    indptr, terms, weights = random_queries(seed, a["n_terms"], a["fptr"], a["fterms"])
    stamps = np.zeros(a["n_docs"], np.int32)
    box = np.ones(1, np.int64)
    nq = len(indptr) - 1
    some = np.full(nq, 0.5, np.float32)
    grew = 0
    for thr0 in (NO_THR, some):
        for query_cut, heap_factor in ((1, 1.0), (3, 0.9)):
            for knn in (0, 1, kappa, 1000):
                got_d, got_s = seismic_k.search_serial(
                    *structures, a["fptr"], a["fterms16"], a["fimp"], a["scale"], a["doc_order"], a["n_terms"],
                    max_blocks, indptr, terms, weights, 10, query_cut, heap_factor, stamps, box, NO_MASK, thr0,
                    graph, knn,
                )  # fmt: skip
                for q, qt, qw in _rows(indptr, terms, weights):
                    counts: dict = {}
                    want_d, want_s = seismic_k.search_python(
                        *structures, a["fptr"], a["fterms"], a["fimp"], a["scale"], a["doc_order"],
                        qt, qw, 10, query_cut, heap_factor, counts, float(thr0[q]) if len(thr0) else 0.0,
                        graph, knn,
                    )  # fmt: skip
                    assert got_d[q].tolist() == want_d.tolist(), (query_cut, heap_factor, knn, q)
                    assert got_s[q].tobytes() == want_s.tobytes(), (query_cut, heap_factor, knn, q)
                    if knn == kappa and query_cut == 1:
                        base: dict = {}
                        seismic_k.search_python(
                            *structures, a["fptr"], a["fterms"], a["fimp"], a["scale"], a["doc_order"],
                            qt, qw, 10, query_cut, heap_factor, base, float(thr0[q]) if len(thr0) else 0.0,
                        )  # fmt: skip
                        grew += counts["docs"] > base["docs"]
    assert grew > 0  # the graph added documents to score


@pytest.mark.parametrize("seed", [0, 1])
def test_top_terms_equals_its_twin(seed):
    """Each document's m heaviest terms, ties to the earlier position, on distinct weights and on
    weights rounded to a few levels (many ties at the cut), on one thread and on three."""
    a = random_arrays(seed, "float32", False)
    fimp = np.asarray(a["fimp"], np.float64)
    coarse = np.ceil(fimp / fimp.max() * 4).astype(np.float32)  # four levels: 1, 2, 3, 4
    assert set(np.unique(coarse).tolist()) <= {1.0, 2.0, 3.0, 4.0}
    for weights in (a["fimp"], coarse):
        for m in (1, 3, 8, 100):
            want = reorder_k.top_terms_reference(a["fptr"], a["fterms"], weights, m)
            for threads in (1, 3):
                got = reorder_k.top_terms(a["fptr"], a["fterms"], weights, m, threads=threads)
                for g, w in zip(got, want, strict=True):
                    np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("seed", [0, 1])
def test_graph_bisection_equals_its_twin(seed):
    a = random_arrays(seed, "float32", False, n_docs=200, n_terms=40)
    fptr, fterms, _ = reorder_k.top_terms(a["fptr"], a["fterms"], a["fimp"], 8)
    want = reorder_k.graph_bisection_reference(fptr, fterms, leaf=8, iterations=4)
    assert sorted(want.tolist()) == list(range(200))
    for threads in (1, 3):
        got = reorder_k.graph_bisection(fptr, fterms, 40, leaf=8, iterations=4, threads=threads)
        np.testing.assert_array_equal(got, want)


def _safe_kernels(a, indptr, terms, weights, k, mask, thr0):
    """Every safe kernel (exact scanning or gathering, exact over selected documents, MaxScore, BMP at alpha = beta = 1)
    on the same queries, mask and starting thresholds: {name: (docs, scores)}."""
    from lsr.index.kernels import exact as exact_k

    block_size = 8
    parts = _readonly(
        bmp_k.build_blocks(*_writable(a["offsets"], a["docs"], a["imps"]), block_size, a["n_docs"], 0.3)
    )
    n_blocks = (a["n_docs"] + block_size - 1) // block_size
    slots = np.empty(int(np.diff(indptr).max()) * n_blocks, np.int32)
    acc = np.zeros(a["n_docs"], np.float32)
    sel = np.arange(a["n_docs"]) if len(mask) == 0 else np.flatnonzero(mask).astype(np.int64)
    qw = np.zeros(a["n_terms"], np.float32)
    post = (a["offsets"], a["docs"], a["imps"], a["scale"])
    return {
        "exact": exact_k.search_serial(
            *post, a["doc_order"], indptr, terms, weights, k, acc, mask, thr0, np.empty(0, np.int64)
        ),
        # selection by reading only the allowed documents' accumulator entries (a selective filter)
        "exact_gather": exact_k.search_serial(*post, a["doc_order"], indptr, terms, weights, k, acc, mask, thr0, sel),
        "selected": exact_k.search_selected(
            a["fptr"], a["fterms16"], a["fimp"], a["scale"], a["doc_order"], sel, indptr, terms, weights, k, qw,
            thr0,
        ),
        "maxscore": maxscore_k.search_serial(
            *post, a["term_max"], a["doc_order"], a["fptr"], a["fterms16"], a["fimp"], a["n_docs"],
            indptr, terms, weights, k, mask, thr0, 1.0, np.zeros(a["n_docs"], np.float32), np.zeros(1, np.int64),
        ),
        "bmp": bmp_k.search_serial(
            *post, a["doc_order"], *parts, block_size, a["n_docs"], indptr, terms, weights, k, 1.0, 1.0,
            1.0, slots, np.zeros(a["n_docs"], np.float32), mask, thr0, np.zeros(1, np.int64),
        ),
    }  # fmt: skip


@pytest.mark.parametrize("seed,dtype,reordered", CASES)
def test_safe_kernels_with_a_mask_and_a_starting_threshold_equal_the_twin(seed, dtype, reordered):
    """The living index's two kernel inputs: a document mask (deletes, filters) and a starting
    threshold (the k-th score other segments hold). With a mask, every safe kernel (and exact over
    the selected documents only) equals the twin over the allowed documents, bit for bit. With a
    starting threshold t, the documents scoring above t are exactly the twin's, and none under t
    comes back (ties with t may or may not: the caller lowers t by a margin)."""
    a = random_arrays(seed, dtype, reordered)
    indptr, terms, weights = random_queries(seed, a["n_terms"], a["fptr"], a["fterms"])
    nq = len(indptr) - 1
    rng = np.random.default_rng(seed + 11)
    no_scale = np.float32(1.0)
    for density in (1.0, 0.5, 0.05):
        mask = NO_MASK if density == 1.0 else (rng.random(a["n_docs"]) < density).astype(np.uint8)
        for k in (1, 7, 40):
            want, raw = [], []
            for _q, qt, qw in _rows(indptr, terms, weights):
                ref = maxscore_k.search_reference(
                    a["fptr"], a["fterms"], a["fimp"], a["scale"], a["doc_order"], qt, qw, a["n_docs"],
                    a["n_docs"], mask,
                )  # fmt: skip
                ref_raw = maxscore_k.search_reference(
                    a["fptr"], a["fterms"], a["fimp"], no_scale, a["doc_order"], qt, qw, a["n_docs"],
                    a["n_docs"], mask,
                )  # fmt: skip
                want.append(ref)
                raw.append({int(d): s for d, s in zip(*ref_raw, strict=True) if d >= 0})
            # no threshold: equal to the twin's top k, bit for bit
            for name, (got_d, got_s) in _safe_kernels(a, indptr, terms, weights, k, mask, NO_THR).items():
                for q in range(nq):
                    assert got_d[q].tolist() == want[q][0][:k].tolist(), (name, density, k, q)
                    assert got_s[q].tobytes() == want[q][1][:k].tobytes(), (name, density, k, q)
            # starting thresholds: at a twin's score (a tie), between two scores, above them all, 0
            thr = np.zeros(nq, np.float32)
            for q in range(nq):
                scores = sorted(set(raw[q].values()), reverse=True)
                pick = q % 4
                if pick == 0 and scores:
                    thr[q] = scores[min(len(scores) - 1, k // 2)]
                elif pick == 1 and len(scores) > 1:
                    j = min(len(scores) - 2, k // 3)
                    thr[q] = np.float32((float(scores[j]) + float(scores[j + 1])) / 2)
                elif pick == 2 and scores:
                    thr[q] = np.float32(float(scores[0]) * 1.5)
            for name, (got_d, got_s) in _safe_kernels(a, indptr, terms, weights, k, mask, thr).items():
                for q in range(nq):
                    top = [(int(d), s) for d, s in zip(*want[q], strict=True) if d >= 0][:k]
                    above = [(d, s) for d, s in top if raw[q][d] > thr[q]]
                    got = [(int(d), s) for d, s in zip(got_d[q], got_s[q], strict=True) if d >= 0]
                    assert all(raw[q][d] >= thr[q] for d, _ in got), (name, density, k, q)  # none under t
                    got_above = [(d, s) for d, s in got if raw[q][d] > thr[q]]
                    assert [d for d, _ in got_above] == [d for d, _ in above], (name, density, k, q, thr[q])
                    assert np.array_equal(
                        np.array([s for _, s in got_above], np.float32),
                        np.array([s for _, s in above], np.float32),
                    ), (name, density, k, q)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_merge_runs_equals_its_twin(seed):
    """The running top-k over segments: a kernel's merge of one segment's sorted rows (many equal
    scores, short rows, padding) equals concatenate + lexsort, ties to the earlier segment."""
    from lsr.index.kernels.topk import merge_runs, merge_runs_reference

    rng = np.random.default_rng(seed)
    nq, k = 6, 9
    best = (
        np.full((nq, k), -1, np.int64),
        np.full((nq, k), -np.inf, np.float32),
        np.full((nq, k), np.iinfo(np.int64).max, np.int64),
    )
    want = tuple(a.copy() for a in best)
    for pos in rng.permutation(8):  # segments merged in any order, as the shared threshold visits them
        kk = int(rng.integers(1, k + 3))
        s = np.zeros((nq, kk), np.float32)
        d = np.full((nq, kk), -1, np.int64)
        for q in range(nq):
            n = int(rng.integers(0, kk + 1))
            docs = rng.choice(50, n, replace=False)
            sc = rng.integers(1, 5, n).astype(np.float32)  # few distinct scores: ties across segments
            order = np.lexsort((docs, -sc))
            d[q, :n], s[q, :n] = docs[order], sc[order]
        num = int(pos) + 100
        merge_runs(*best, d, s, num, int(pos))
        want = merge_runs_reference(*want, d, s, num, int(pos))
        for got_a, want_a in zip(best, want, strict=True):
            assert np.array_equal(got_a, want_a)


def test_prefetch_is_a_hint_that_changes_nothing():
    """The prefetch intrinsic compiles for the forward index's dtypes and leaves every value as its
    twin (doing nothing) does: a sum over arrays read after prefetching each line equals numpy's."""
    from numba import njit

    from lsr.index.kernels.prefetch import prefetch, prefetch_reference

    @njit
    def prefetched_sum(a):
        for i in range(0, a.shape[0], 7):
            prefetch(a, i)
        s = 0.0
        for i in range(a.shape[0]):
            s += a[i]
        return s

    rng = np.random.default_rng(0)
    for dtype in (np.uint16, np.uint32, np.uint8, np.float32):
        a = (rng.random(1000) * 200).astype(dtype)
        assert prefetch_reference(a, 3) is None
        assert prefetched_sum(a) == pytest.approx(float(a.astype(np.float64).sum()))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_seismic_clustering_equals_its_twin(seed):
    """Each document joins the centroid its twin picks (dense float32 dot products, ties to the
    smaller centroid), small clusters dissolved alike: on term lists (every centroid shares the
    list's term: the kernel reads all scores back in one pass) and on random document sets with
    many centroids and two terms per document (it walks the touched entries again)."""
    a = random_arrays(seed, "float32", False, n_docs=300, n_terms=40)
    fimp = np.asarray(a["fimp"], np.float32)
    rng = np.random.default_rng(seed)
    checked = 0
    for doc_terms, min_size in ((5, 0), (5, 2), (2, 0), (2, 1)):
        cptr, cterms, cw = reorder_k.top_terms(a["fptr"], a["fterms"], fimp, doc_terms)
        lists = [
            a["docs"][a["offsets"][t] : a["offsets"][t + 1]].astype(np.int64) for t in range(a["n_terms"])
        ]
        lists += [np.sort(rng.choice(a["n_docs"], size, replace=False)) for size in (40, 90, 150)]
        for i, kept in enumerate(lists):
            n_c = max(1, len(kept) // (3 if i < a["n_terms"] else 2))
            slot = np.full(a["n_terms"], -1, np.int64)
            acc = np.zeros(n_c + 2, np.float32)
            got = seismic_k._cluster(
                kept, n_c, a["fptr"], a["fterms"], fimp, cptr, cterms, cw, i, min_size, slot, acc
            )
            cents = seismic_k.draw_centroids(len(kept), n_c, i) if n_c > 1 else np.zeros(0, np.int64)
            want = seismic_k.cluster_reference(
                kept, cents, a["n_terms"], a["fptr"], a["fterms"], fimp, cptr, cterms, cw, min_size
            )
            assert got.tolist() == want.tolist(), (doc_terms, min_size, i)
            assert not acc.any() and (slot == -1).all()
            checked += n_c > 1
    assert checked > 100
