"""Exact search over several segments of a living index in one call.

The results are those of searching the segments one after another from Python
(``lsr.index.segments``), bit for bit: per document the same float32 additions in the same order
(query terms ascending), scores multiplied by the segment's quantization step as
:func:`lsr.index.kernels.topk.heap_finish` does, and the top-k merged by (score desc, segment
position, doc).

How, per query:

1. each segment's bound ``sum(w * term_max)``; a segment whose bound (raised by a relative
   ``margin``) is under the k-th score the rows already hold is skipped;
2. the postings of every other segment go into **one** accumulator over all of them (segment ``s``
   at ``base[s]``), query term by query term and, within a term, segment by segment: the
   accumulator is then swept in one rising pass per term, as in a merged index. Accumulating each
   segment on its own (a tenth of the accumulator per run) cost 1.26x for the same postings on the
   1M living benchmark's 10 segments (mid-length lists 0.47 -> 0.63 ns per posting; BENCHMARKS.md,
   session of 2026-12-01, closing);
3. one scan of that accumulator into one top-k heap keyed ``position << 32 | build-order doc``,
   starting from the k-th score the rows hold; a block of 32 entries whose maximum cannot reach
   the threshold is skipped after a vectorised pass; the heap is merged into the rows.

The arrays come as :class:`numba.typed.List` s with one entry per segment, all of one type.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from lsr.index.kernels.topk import heap_drain, heap_push, merge_row

SCAN_BLOCK = 32  # accumulator entries checked at once by a vectorised max before any heap work


@njit(cache=True, nogil=True)
def _scan_segment(acc, lo, n, sc, order, mask, hi_key, hs, hd, size, k, thr):
    """Offer the scaled scores ``acc[lo + d] * sc`` (d < n) of one segment to the heap (keys
    ``hi_key | build-order doc``; masked documents never), zeroing those entries; returns (heap
    size, threshold). An entry equal to the threshold is offered too: the key decides its tie."""
    reordered = order.shape[0] > 0
    masked = mask.shape[0] > 0
    d = 0
    while d < n:
        e = min(d + SCAN_BLOCK, n)
        look = True  # a partial block (the segment's last) is looked at entry by entry
        if e - d == SCAN_BLOCK:  # a whole block: its max first, in one vectorised pass
            base = np.uint64(lo + d)
            m = acc[base]
            for j in range(base + np.uint64(1), base + np.uint64(SCAN_BLOCK)):
                m = max(m, acc[j])
            look = m > 0 and m * sc >= thr
        if look:
            for x in range(d, e):
                v = acc[lo + x]
                if v > 0:
                    v = v * sc
                    if v >= thr and not (masked and mask[x] == 0):
                        key = hi_key | (np.int64(order[x]) if reordered else np.int64(x))
                        size = heap_push(hs, hd, size, k, v, key)
                        if size == k:
                            thr = max(thr, hs[0])
        for j in range(np.uint64(lo + d), np.uint64(lo + e)):
            acc[j] = 0
        d = e
    return size, thr


@njit(cache=True, nogil=True)
def search_range(
    offsets_l, docs_l, impacts_l, order_l, tmax_l, mask_l, scales, n_docs_a, pos_a, nums, margin,
    q_indptr, q_terms, q_weights, k, acc, q_lo, q_hi, best_d, best_s, best_o,
):  # fmt: skip
    """Exact top-k of queries q_lo..q_hi-1 of a CSR batch (terms ascending) over every segment of
    the lists, merged into the rows of ``best_d`` (handles ``nums[s] << 32 | build-order doc``,
    -1 padding), ``best_s`` (scores, -inf padding) and ``best_o`` (``pos_a[s] << 32 | doc``, int64
    max padding), which may already hold other segments' results. Per segment ``s``:
    ``tmax_l[s]`` its per-term maximum impacts (float32), ``mask_l[s]`` uint8 by internal doc (0:
    never returned) or empty, ``scales[s]`` its quantization step, ``n_docs_a[s]`` its documents.
    ``acc``: a zeroed float32 scratch of at least the segments' documents together (zero again on
    return)."""
    n_seg = scales.shape[0]
    base = np.zeros(n_seg + 1, np.int64)
    for s in range(n_seg):
        base[s + 1] = base[s] + n_docs_a[s]
    hs = np.empty(k, np.float32)
    hd = np.empty(k, np.int64)
    run_s = np.empty(k, np.float32)
    run_o = np.empty(k, np.int64)
    run_h = np.empty(k, np.int64)
    md = np.empty(k, np.int64)
    ms = np.empty(k, np.float32)
    mo = np.empty(k, np.int64)
    live = np.empty(n_seg, np.bool_)
    for q in range(q_lo, q_hi):
        a, b = q_indptr[q], q_indptr[q + 1]
        kth = best_s[q, k - 1]
        any_live = False
        for s in range(n_seg):  # the best possible score of each segment for this query
            tmax = tmax_l[s]
            nt = tmax.shape[0]
            u = 0.0
            for i in range(a, b):
                if q_terms[i] < nt:
                    u += np.float64(tmax[q_terms[i]]) * np.float64(q_weights[i])
            live[s] = not (kth > -np.inf and u * (1 + margin) < kth)
            any_live = any_live or live[s]
        if not any_live:
            continue
        for i in range(a, b):  # term by term, each segment's postings of the term in turn
            t = q_terms[i]
            w = np.float32(q_weights[i])
            for s in range(n_seg):
                offsets = offsets_l[s]
                if not live[s] or t >= offsets.shape[0] - 1:
                    continue  # terms newer than the segment match nothing in it
                docs = docs_l[s]
                impacts = impacts_l[s]
                lo = np.uint64(base[s])
                for j in range(np.uint64(offsets[t]), np.uint64(offsets[t + 1])):  # unsigned: kernels.exact
                    acc[lo + np.uint64(docs[j])] += w * np.float32(impacts[j])
        thr = np.float32(kth) if kth > -np.inf else np.float32(0)
        size = 0
        for s in range(n_seg):
            if live[s]:
                hi_key = np.int64(pos_a[s]) << 32
                size, thr = _scan_segment(
                    acc, base[s], n_docs_a[s], np.float32(scales[s]), order_l[s], mask_l[s], hi_key, hs, hd, size,
                    k, thr,
                )  # fmt: skip
        heap_drain(hs, hd, size, run_s, run_o)
        for j in range(size):  # the handle of each: its segment's number << 32 | doc
            p = run_o[j] >> 32
            for s in range(n_seg):
                if pos_a[s] == p:
                    run_h[j] = (np.int64(nums[s]) << 32) | (run_o[j] & 0xFFFFFFFF)
        merge_row(best_d, best_s, best_o, q, run_h, run_s, run_o, size, md, ms, mo)
