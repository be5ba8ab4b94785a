"""Exact top-k search: term-at-a-time into a dense float32 accumulator.

Per query: for each query term t with weight w, ``acc[doc] += w * impact`` over t's postings; then
the positive accumulator entries go through a top-k heap (ties to the smaller doc number) and the
accumulator is reset. Selection either scans the whole accumulator (when the query touched a large
share of the collection), replays the touched postings (when it touched few), so short queries do
not pay for a full pass over ``n_docs``, or, under a selective filter, reads only the allowed
documents' entries. Scores are ``scale * sum(w * impact)``.

Hot loops index arrays with *unsigned* loop variables (``range(np.uint64(a), np.uint64(b))``): with
a signed index Numba guards every array access against a negative index (Python's wraparound), and
those guards kept the accumulation loop from running at full speed: 25-30% slower on the real and
SciFact postings (BENCHMARKS.md, "Session of 2026-12-01, late"). An unsigned loop variable is only
used to index: mixed with a signed integer in arithmetic, Numba would compute in float64.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from lsr.index.kernels.topk import heap_finish, heap_push, topk_reference

SCAN_BLOCK = 32  # accumulator entries checked at once by a vectorised max before any heap work


@njit(cache=True, nogil=True)
def scan_topk(acc, start, end, k, hs, hd, size, doc_order, mask, thr0):
    """Offer acc[start:end] (doc numbers start..end-1, ascending) to the top-k heap, and zero those
    entries; returns the heap's size.

    ``mask`` (uint8[n_docs] by internal doc number, or empty for "every document") keeps a document
    with mask 0 (deleted, or filtered out) from ever entering the heap. ``thr0`` (raw score, >= 0)
    is a starting threshold (the k-th score other segments already hold): documents scoring under
    it may be left out.

    Heap keys are ``doc_order[d]`` (the build-order number of internal doc d) when the index was
    reordered, else d. A doc enters only when its score beats the current threshold (``thr0`` until
    the heap is full, then the worst kept score): with keys ascending, an equal score loses its tie,
    as it must; with reordered keys an equal score is offered too and the heap decides the tie.
    Blocks whose max is under the threshold are skipped after one vectorisable pass, so the scan
    costs a fraction of a nanosecond per document instead of a mispredicted branch each. With a
    mask, a block that passes on its plain max is checked again on its max over the allowed
    documents only (a select, no branch): a filter that hides the best documents would otherwise
    send most blocks through the per-document loop, while the masked max on every block (which
    does not vectorise as well) slowed searches with only deletes (see BENCHMARKS.md, issue 18).
    """
    reordered = doc_order.shape[0] > 0
    masked = mask.shape[0] > 0
    zero = np.float32(0)
    thr = max(hs[0], thr0) if size == k else thr0
    d = start
    while d + SCAN_BLOCK <= end:
        m = acc[d]
        for j in range(np.uint64(d + 1), np.uint64(d + SCAN_BLOCK)):
            m = max(m, acc[j])
        if masked and (m > thr or (reordered and m == thr and m > 0)):
            # only for a block that passes on its plain max (a vectorised pass): its max over the
            # allowed documents, so hidden documents do not send it through the per-document loop
            m = acc[d] if mask[d] != 0 else zero
            for j in range(d + 1, d + SCAN_BLOCK):
                m = max(m, acc[j] if mask[j] != 0 else zero)
        if m > thr or (reordered and m == thr and m > 0):
            for j in range(d, d + SCAN_BLOCK):
                s = acc[j]
                if (s > thr or (reordered and s == thr and s > 0)) and not (masked and mask[j] == 0):
                    key = np.int64(doc_order[j]) if reordered else np.int64(j)
                    size = heap_push(hs, hd, size, k, s, key)
                    if size == k:
                        thr = max(hs[0], thr0)
        for j in range(d, d + SCAN_BLOCK):  # zeroed while in cache: no second pass over acc
            acc[j] = 0
        d += SCAN_BLOCK
    for j in range(d, end):
        s = acc[j]
        if (s > thr or (reordered and s == thr and s > 0)) and not (masked and mask[j] == 0):
            key = np.int64(doc_order[j]) if reordered else np.int64(j)
            size = heap_push(hs, hd, size, k, s, key)
            if size == k:
                thr = max(hs[0], thr0)
        acc[j] = 0
    return size


@njit(cache=True, nogil=True)
def gather_topk(acc, sel, k, hs, hd, size, doc_order, thr0):
    """Offer acc[d] for the documents ``sel`` only (int64 internal doc numbers, ascending) to the
    top-k heap; returns its size. The selection of a filtered search: a filter keeping a few
    percent of the documents reads those entries instead of scanning all ``n_docs`` (its mask is
    then not needed: ``sel`` holds only allowed documents). Ties and ``thr0`` as in
    :func:`scan_topk`."""
    reordered = doc_order.shape[0] > 0
    thr = max(hs[0], thr0) if size == k else thr0
    for i in range(sel.shape[0]):
        d = sel[i]
        s = acc[d]
        if s > thr or (reordered and s == thr and s > 0):
            key = np.int64(doc_order[d]) if reordered else np.int64(d)
            size = heap_push(hs, hd, size, k, s, key)
            if size == k:
                thr = max(hs[0], thr0)
    return size


@njit(cache=True, nogil=True)
def search_one(
    offsets, docs, impacts, scale, doc_order, q_terms, q_weights, k, acc, hs, hd, out_d, out_s, mask, thr0, sel
):  # fmt: skip
    """Exact top-k of one query into out_d / out_s (length k; -1 / 0 past the matches).

    ``acc`` is a zeroed float32[n_docs] scratch array and is zero again on return. Results are
    keyed by ``doc_order[d]`` when it is not empty (see :func:`scan_topk`). A document whose
    ``mask`` entry is 0 never enters the heap (empty ``mask``: no document is masked). A document
    scoring under ``thr0`` (raw score) may be left out (see :func:`scan_topk`). ``sel`` (int64,
    ascending, or empty): the allowed documents as a list, when the caller has them and they are
    few; then selection reads only them (:func:`gather_topk`) instead of scanning the accumulator.
    """
    n_docs = acc.shape[0]
    masked = mask.shape[0] > 0
    touched = 0
    for i in range(q_terms.shape[0]):
        t = q_terms[i]
        w = np.float32(q_weights[i])
        s0 = offsets[t]
        e0 = offsets[t + 1]
        touched += e0 - s0
        for j in range(np.uint64(s0), np.uint64(e0)):  # unsigned: see the module docstring
            acc[docs[j]] += w * np.float32(impacts[j])
    size = 0
    if touched * 16 < n_docs:
        # replay: visit each touched doc once (the first visit zeroes it)
        for i in range(q_terms.shape[0]):
            t = q_terms[i]
            for j in range(np.uint64(offsets[t]), np.uint64(offsets[t + 1])):
                d = docs[j]
                s = acc[d]
                if s > 0:
                    if s >= thr0 and not (masked and mask[d] == 0):
                        key = np.int64(doc_order[d]) if doc_order.shape[0] > 0 else np.int64(d)
                        size = heap_push(hs, hd, size, k, s, key)
                    acc[d] = 0
    elif sel.shape[0] > 0:
        size = gather_topk(acc, sel, k, hs, hd, size, doc_order, thr0)
        acc[:] = 0
    else:
        size = scan_topk(acc, 0, n_docs, k, hs, hd, size, doc_order, mask, thr0)  # zeroes acc
    heap_finish(hs, hd, size, scale, out_d, out_s)


@njit(cache=True, nogil=True)
def search_range(
    offsets, docs, impacts, scale, doc_order, q_indptr, q_terms, q_weights, k, acc, q_lo, q_hi, out_d, out_s,
    mask, thr0, sel,
):  # fmt: skip
    """Exact top-k for queries q_lo..q_hi-1 of a CSR batch into rows of out_d / out_s, reusing the
    zeroed accumulator ``acc``; ``mask`` as in :func:`search_one`; ``thr0`` float32[nq] starting
    thresholds (raw scores) or empty for none."""
    hs = np.empty(k, dtype=np.float32)
    hd = np.empty(k, dtype=np.int64)
    has_thr = thr0.shape[0] > 0
    for q in range(q_lo, q_hi):
        a, b = q_indptr[q], q_indptr[q + 1]
        t0 = np.float32(thr0[q]) if has_thr else np.float32(0)
        search_one(
            offsets, docs, impacts, scale, doc_order, q_terms[a:b], q_weights[a:b], k, acc, hs, hd,
            out_d[q], out_s[q], mask, t0, sel,
        )  # fmt: skip


@njit(cache=True, nogil=True)
def search_serial(
    offsets, docs, impacts, scale, doc_order, q_indptr, q_terms, q_weights, k, acc, mask, thr0, sel
):
    """Exact top-k for every query of a CSR batch, one after the other, reusing ``acc``.
    Returns (doc numbers int64[nq, k], scores float32[nq, k]). ``mask``: uint8[n_docs] (0: never
    returned) or empty; ``thr0``: float32[nq] starting thresholds (raw scores) or empty; ``sel``:
    the allowed documents (int64, ascending; a subset of the mask's) or empty (see
    :func:`search_one`)."""
    nq = q_indptr.shape[0] - 1
    out_d = np.full((nq, k), -1, dtype=np.int64)
    out_s = np.zeros((nq, k), dtype=np.float32)
    # np.int64(0), not 0: a literal would compile a second search_range beside the one that
    # batch threads call (lsr.index.batch)
    search_range(
        offsets, docs, impacts, scale, doc_order, q_indptr, q_terms, q_weights, k, acc, np.int64(0), nq, out_d, out_s,
        mask, thr0, sel,
    )  # fmt: skip
    return out_d, out_s


@njit(cache=True, nogil=True)
def search_selected(fptr, fterms, fimp, scale, doc_order, sel, q_indptr, q_terms, q_weights, k, qw, thr0):
    """Exact top-k over the documents ``sel`` only (int64 internal doc numbers, ascending): each
    one scored from the forward index against a dense query ``qw`` (float32[n_terms] zeros, zero
    again on return), its terms ascending: the same float32 additions in the same order as the
    term-at-a-time kernel, so the same scores to the bit. Costs the selected documents' non-zeros
    instead of the query terms' postings: what a selective filter should cost. ``thr0`` as in
    :func:`search_serial`. Returns (doc numbers int64[nq, k], scores float32[nq, k])."""
    nq = q_indptr.shape[0] - 1
    reordered = doc_order.shape[0] > 0
    has_thr = thr0.shape[0] > 0
    out_d = np.full((nq, k), -1, dtype=np.int64)
    out_s = np.zeros((nq, k), dtype=np.float32)
    hs = np.empty(k, dtype=np.float32)
    hd = np.empty(k, dtype=np.int64)
    for q in range(nq):
        a, b = q_indptr[q], q_indptr[q + 1]
        for i in range(a, b):
            qw[q_terms[i]] = np.float32(q_weights[i])
        t0 = np.float32(thr0[q]) if has_thr else np.float32(0)
        size = 0
        thr = t0
        for i in range(sel.shape[0]):
            d = sel[i]
            s = np.float32(0)
            for p in range(np.uint64(fptr[d]), np.uint64(fptr[d + 1])):
                # no branch: a term outside the query adds 0 * impact = +0.0, which leaves s
                # unchanged to the bit (s >= +0.0), so the sum is exact search's
                s += qw[fterms[p]] * np.float32(fimp[p])
            if s > 0 and (s > thr or (s == thr and (reordered or size < k))):
                key = np.int64(doc_order[d]) if reordered else np.int64(d)
                size = heap_push(hs, hd, size, k, s, key)
                if size == k:
                    thr = max(hs[0], t0)
        for i in range(a, b):
            qw[q_terms[i]] = 0
        heap_finish(hs, hd, size, scale, out_d[q], out_s[q])
    return out_d, out_s


def search_reference(offsets, docs, impacts, scale, q_terms, q_weights, k, n_docs, mask=None):
    """Plain numpy twin of :func:`search_one` and :func:`search_selected` (float64 accumulation):
    (doc numbers, scores); documents whose ``mask`` entry is 0 are left out."""
    acc = np.zeros(n_docs, dtype=np.float64)
    for t, w in zip(q_terms, q_weights, strict=True):
        s, e = offsets[t], offsets[t + 1]
        np.add.at(acc, docs[s:e].astype(np.int64), float(w) * impacts[s:e].astype(np.float64))
    if mask is not None and len(mask):
        acc[np.asarray(mask) == 0] = 0
    d, s = topk_reference(acc, k)
    return d, s * scale
