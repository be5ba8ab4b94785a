"""Batch search on threads (:mod:`lsr.index.batch`): every query range searched once, each thread on
its own scratch, errors raised, and the threads run the kernels the one-thread search compiled."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from lsr.index import build_index, open_index
from lsr.index.batch import PARTS_PER_THREAD, run_ranges

from conftest import random_collection, vocab_of


@pytest.mark.parametrize("nq", [0, 1, 3, 17, 100])
@pytest.mark.parametrize("n_chunks", [1, 2, 5])
def test_ranges_cover_every_query_once_and_chunks_are_exclusive(nq, n_chunks):
    seen = np.zeros(nq, np.int64)
    owner: dict[int, int] = {}
    busy: set[int] = set()
    lock = threading.Lock()
    calls = []

    def work(c: int, lo: int, hi: int) -> None:
        with lock:
            assert c not in busy  # a chunk's scratch is used by one thread at a time
            busy.add(c)
            assert owner.setdefault(c, threading.get_ident()) == threading.get_ident()
            calls.append((lo, hi))
        seen[lo:hi] += 1
        with lock:
            busy.discard(c)

    run_ranges(nq, n_chunks, work)
    assert seen.tolist() == [1] * nq
    assert all(0 <= c < n_chunks for c in owner)
    assert len(calls) <= max(1, PARTS_PER_THREAD * n_chunks)


def test_an_error_in_one_range_is_raised_and_stops_the_rest():
    started = []

    def work(c: int, lo: int, hi: int) -> None:
        started.append(lo)
        if lo == 0:
            raise ValueError("range 0 failed")

    with pytest.raises(ValueError, match="range 0 failed"):
        run_ranges(1000, 2, work)
    assert len(started) < 16  # 16 ranges in all: the failure stopped the handing out


@pytest.mark.parametrize("quantization", ["float32", "uint8"])
def test_threads_run_the_kernels_the_serial_search_compiled(tmp_path, quantization):
    """A batch on two threads equals the one-thread search and compiles nothing new: the numba
    ``prange`` batch kernels it replaced compiled again per dtype (2-6 s each)."""
    from numba.core import event

    docs = random_collection(300, 60, 1, density=0.1)
    idx = open_index(build_index(docs, tmp_path / "ix", vocab=vocab_of(60), quantization=quantization))
    queries = docs[:40]
    serial = {m: idx.search(queries, k=7, method=m, threads=1) for m in idx.methods}
    with event.install_recorder("numba:compile") as compiled:  # loads from numba's cache are not compiles
        for m in idx.methods:
            batch = idx.search(queries, k=7, method=m, threads=2)
            assert [r.ids for r in batch] == [r.ids for r in serial[m]], m
            assert [r.scores for r in batch] == [r.scores for r in serial[m]], m  # floats, compared exactly
    assert [e.data["dispatcher"].py_func.__qualname__ for _, e in compiled.buffer] == []


def test_concurrent_batches_from_several_threads_equal_one_thread(tmp_path):
    """The service searches from several threads at once; batches no longer take a process-wide lock
    (numba's thread count used to be set per call), so concurrent two-thread batches share the pool."""
    from concurrent.futures import ThreadPoolExecutor

    docs = random_collection(300, 60, 2, density=0.1)
    idx = open_index(build_index(docs, tmp_path / "ix", vocab=vocab_of(60), quantization="uint8"))
    queries = docs[:30]
    want = {
        m: [(r.ids, r.scores) for r in idx.search(queries, k=5, method=m, threads=1)] for m in idx.methods
    }

    def run(i: int) -> None:
        m = idx.methods[i % len(idx.methods)]
        for _ in range(5):
            got = idx.search(queries, k=5, method=m, threads=2)
            assert [(r.ids, r.scores) for r in got] == want[m], m

    with ThreadPoolExecutor(6) as ex:
        for f in [ex.submit(run, i) for i in range(12)]:
            f.result()


def test_batch_results_with_decoded_ids_equal_the_one_query_path(tmp_path, monkeypatch):
    """A batch's results come from the decoded-id list (:meth:`Index.doc_ids`) and a row view per
    query: the same ids (non-ASCII ones too), scores and doc numbers as one query at a time, which
    decodes each id anew; short rows are cut; above the size cap nothing is decoded ahead."""
    import lsr.index.searcher as searcher
    from lsr.vectors import SparseBatch

    x = random_collection(n_docs=300, n_terms=120, seed=5)
    ids = [f"dóc-{i}-\u00e9\u4e2d" if i % 3 else f"d{i}" for i in range(x.shape[0])]
    build_index(x, tmp_path / "ix", vocab=vocab_of(120), ids=ids, methods=["exact"])
    rng = np.random.default_rng(1)
    q = np.zeros((80, 120), np.float32)
    for row in q:
        row[rng.choice(120, 3, replace=False)] = rng.random(3) + 0.1
    q[5] = 0  # a query matching nothing: an empty row
    q[6, :] = 0
    q[6, int(np.argmin(np.asarray((x != 0).sum(axis=0)).ravel()))] = 1.0  # few matches: a short row
    import scipy.sparse as sp

    def as_batch(m):
        csr = sp.csr_matrix(m)
        return SparseBatch(csr.indptr.astype(np.int64), csr.indices.astype(np.int32), csr.data, vocab_of(120))

    batch = as_batch(q)
    one_by_one = open_index(tmp_path / "ix")
    singles = [one_by_one.search(as_batch(q[i : i + 1]), k=10)[0] for i in range(80)]
    assert one_by_one._id_strings is None  # one query at a time never decodes ahead
    ix = open_index(tmp_path / "ix")
    got = ix.search(batch, k=10)
    assert ix._id_strings == ids
    assert any(len(r) < 10 for r in got) and len(got[5]) == 0
    for r, s in zip(got, singles, strict=True):
        assert r.ids == s.ids and r.scores == s.scores and r.docs.tolist() == s.docs.tolist()
        assert r.ids == [ids[d] for d in r.docs.tolist()]

    monkeypatch.setattr(searcher, "ID_STRINGS_MAX_DOCS", 299)
    capped = open_index(tmp_path / "ix")
    capped.warmup(["exact"])
    assert capped._id_strings is None
    assert [r.ids for r in capped.search(batch, k=10)] == [r.ids for r in got]
