"""Block-Max Pruning over several segments of a living index at once.

Searched one after another, each segment's BMP starts from the k-th score the segments before it
hold: the first segment's own top-k, about the collection's top ``k x n_segments``. The bound pass
is as cheap as the merged index's, but every segment then visits the blocks that can beat a
threshold well under the collection's k-th score: on the 1M synthetic index split into 10 segments
BMP cost 2.5-3x the merged index's search (BENCHMARKS.md, issue 18).

Here the segments' blocks are bucketed together and visited in one order of decreasing bound, into
one top-k heap, as if the segments were one index: the threshold rises as fast as in the merged
index. Per query:

1. per segment, its block bounds ``sum_i w_i * max_i(b)`` (scaled by the segment's quantization
   step) into one array over the blocks of all segments (block ``g`` of segment ``s`` is
   ``base[s] + b``); terms past a segment's vocabulary match nothing there;
2. every block bucketed by bound (a counting sort into :func:`lsr.index.kernels.bmp.n_buckets`
   buckets over the total), highest first; within a bucket the blocks stay in segment order, so a
   segment's arrays are fetched from the lists once per run of its blocks;
3. each block evaluated as :func:`lsr.index.kernels.bmp.search_one` does (query terms ascending,
   a ``block_size`` accumulator, masked documents never enter the heap); heap scores are the
   *scaled* scores (``raw * scale``: what :func:`lsr.index.kernels.topk.heap_finish` returns) and
   keys ``position << 32 | build-order doc number``: the living index's merge order across
   segments (score desc, segment position, doc);
4. stop once a bucket's bound is under the k-th score (divided by ``alpha``).

**Fallback.** The work model is BMP's (:mod:`lsr.index.kernels.bmp`), summed over the segments:
exact search's work ``E`` (each segment's postings plus its replay or scan), BMP's fixed work
``F``. Where ``F >= fallback x E`` up front, or the blocks still to visit would take the work past
``fallback x E`` at a checkpoint, the query returns 1 and the caller searches it exactly, segment
by segment (with alpha = beta = 1 the same results, so the method stays rank-safe).

:func:`search_range` writes the living index's running top-k rows directly. The arrays come as
:class:`numba.typed.List` s with one entry per segment (``lsr.index.segments``
builds them once per generation), all of one type (read-only, the impacts' dtype).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from lsr.index.kernels.bmp import (
    CHECKS,
    POSTING,
    PROBE,
    SLACK,
    _kept_terms,
    block_work,
    fixed_work,
    last_bucket,
    n_buckets,
    score_block,
    sort_blocks,
)
from lsr.index.kernels.topk import heap_drain, heap_push


@njit(cache=True, nogil=True)
def _segment_of(g, base):
    """The segment holding global block ``g`` (``base``: int64[n_seg + 1] first blocks)."""
    lo = 0
    hi = base.shape[0] - 2
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if base[mid] <= g:
            lo = mid
        else:
            hi = mid - 1
    return lo


@njit(cache=True, nogil=True)
def _bounds(offsets, bmo, bmb, bmm, drow, dmax, g0, nb, total, q_terms, q_weights, keep, sc, ub, slot):
    """One segment's block bounds into ``ub[g0 : g0 + nb]`` (scaled by ``sc``), and its sparse
    entries' numbers (from the term's first entry) into ``slot`` (row ``i`` of query term ``i`` spans
    all blocks)."""
    nt = offsets.shape[0] - 1
    ubs = ub[g0 : g0 + nb]  # a view: the loops below are lsr.index.kernels.bmp's, which vectorise
    for i in range(q_terms.shape[0]):
        t = q_terms[i]
        if not keep[i] or t >= nt:
            continue
        w = np.float32(q_weights[i])
        r = drow[t]
        if r >= 0:
            o = r * nb
            for b in range(nb):
                ubs[b] += w * np.float32(dmax[o + b])
            continue
        row = np.uint64(i * total + g0)
        e0 = np.uint64(bmo[t])
        for j in range(e0, np.uint64(bmo[t + 1])):  # unsigned: see kernels.exact
            b = bmb[j]
            ubs[b] += w * np.float32(bmm[j])
            slot[row + b] = j - e0  # counted from the term's first entry (kernels.bmp)
    if sc != np.float32(1):
        for b in range(nb):
            ubs[b] *= sc


@njit(cache=True, nogil=True)
def search_one(
    offsets_l, docs_l, impacts_l, order_l, bmo_l, bmb_l, bms_l, bmm_l, drow_l, dmax_l, dstart_l, mask_l,
    scales, block_sizes, n_docs_a, base, pos_a,
    q_terms, q_weights, k, alpha, beta, fallback, thr0,
    ub, slot, order, bucket_start, acc, hs, hd, out_k, out_s, work,
):  # fmt: skip
    """BMP top-k of one query (``q_terms`` ascending) over every segment of the lists into
    ``out_k`` (keys ``pos << 32 | build-order doc``, -1 padding) / ``out_s`` (scaled scores, 0
    padding); returns 1 when the query should be searched exactly instead (see the module docs),
    else 0. Adds the work the query takes (the exact search's too when it returns 1) to ``work[0]``
    and exact search's estimated work to ``work[1]`` (int64[2]; the fallback policy weighs them).

    Per segment ``s``: ``scales[s]`` (float32 quantization step), ``block_sizes[s]``,
    ``n_docs_a[s]``, ``base[s]`` (its first global block; ``base[-1]`` = all blocks) and ``pos_a[s]``
    (its position in the generation: the tie order). ``mask_l[s]``: uint8 by internal doc number, 0
    = never returned, or empty. ``thr0``: a starting threshold (scaled score, >= 0).
    Scratch: ``ub`` float32[all blocks], ``slot`` int32[>= n_query_terms * all blocks], ``order``
    int64[all blocks], ``bucket_start`` int64[n_buckets + 1], ``acc`` float32[max block size].
    """
    n_seg = scales.shape[0]
    total = base[n_seg]
    nq = q_terms.shape[0]
    keep = _kept_terms(q_weights, beta)
    # the work model of lsr.index.kernels.bmp, summed over the segments
    exact_work = 0
    fixed = 0
    n_post = 0
    n_kept = 0
    for i in range(nq):
        if keep[i]:
            n_kept += 1
    for s in range(n_seg):
        offsets = offsets_l[s]
        bmo = bmo_l[s]
        drow = drow_l[s]
        nb = base[s + 1] - base[s]
        nt = offsets.shape[0] - 1
        p = 0
        fixed += 3 * nb
        for i in range(nq):
            t = q_terms[i]
            if not keep[i] or t >= nt:
                continue
            p += offsets[t + 1] - offsets[t]
            if drow[t] >= 0:
                fixed += nb
            else:
                fixed += bmo[t + 1] - bmo[t]
        n_post += p
        exact_work += p + (p if p * 16 < n_docs_a[s] else n_docs_a[s])
    nbk = n_buckets(total)
    fixed = fixed_work(fixed + 2 * nbk)
    budget = fallback * exact_work
    work[1] += exact_work
    if fallback > 0 and fixed >= budget:
        work[0] += exact_work
        return 1
    # 1. bounds
    ub[:total] = 0
    for s in range(n_seg):
        _bounds(
            offsets_l[s], bmo_l[s], bmb_l[s], bmm_l[s], drow_l[s], dmax_l[s], base[s], base[s + 1] - base[s], total,
            q_terms, q_weights, keep, scales[s], ub, slot,
        )  # fmt: skip
    # 2. every block bucketed by bound, highest first (within a bucket in segment order)
    size = 0
    top, n_pos, low, inv, go = sort_blocks(ub, total, alpha, thr0, nbk, bucket_start, order)
    spent = fixed
    if go:
        # acc holds the largest block (search_range sizes it so)
        per_block = block_work(acc.shape[0], n_kept, n_post, n_pos)
        step = max(1, exact_work // CHECKS)
        check_at = fixed + step
        thr = thr0
        a = np.float32(alpha) * SLACK
        # the current segment's arrays (refetched when the next block is another segment's)
        cur = 0
        offsets = offsets_l[0]
        docs = docs_l[0]
        impacts = impacts_l[0]
        dord = order_l[0]
        bmo = bmo_l[0]
        bmb = bmb_l[0]
        bms = bms_l[0]
        drow = drow_l[0]
        dstart = dstart_l[0]
        mask = mask_l[0]
        for r in range(nbk):
            edge = low + np.float32(nbk - r) / inv if inv > 0 else top
            if thr > 0 and edge * a < thr:
                break
            for oi in range(bucket_start[r], bucket_start[r + 1]):
                g = order[oi]
                if thr > 0 and ub[g] * a < thr:
                    continue
                if fallback > 0 and spent >= check_at:
                    left = bucket_start[last_bucket(r, nbk, low, inv, top, a, thr) + 1] - oi
                    if left * per_block > budget:
                        work[0] += spent + exact_work
                        return 1
                    check_at += step
                if g < base[cur] or g >= base[cur + 1]:
                    cur = _segment_of(g, base)
                    offsets = offsets_l[cur]
                    docs = docs_l[cur]
                    impacts = impacts_l[cur]
                    dord = order_l[cur]
                    bmo = bmo_l[cur]
                    bmb = bmb_l[cur]
                    bms = bms_l[cur]
                    drow = drow_l[cur]
                    dstart = dstart_l[cur]
                    mask = mask_l[cur]
                nt = offsets.shape[0] - 1
                bs = block_sizes[cur]
                nd = n_docs_a[cur]
                nb = base[cur + 1] - base[cur]
                b = g - base[cur]
                lo = b * bs
                hi = min(nd, lo + bs)
                spent += POSTING * score_block(
                    offsets, docs, impacts, bmo, bmb, bms, drow, dstart, slot, nb, total, g, b, lo, hi, q_terms,
                    q_weights, keep, acc,
                )  # fmt: skip
                spent += 2 * (hi - lo) + PROBE * n_kept
                masked = mask.shape[0] > 0
                reordered = dord.shape[0] > 0
                sc = scales[cur]
                hi_key = np.int64(pos_a[cur]) << 32
                for x in range(hi - lo):
                    v = acc[x]
                    if v > 0 and not (masked and mask[lo + x] == 0):
                        v = v * sc  # the scaled score, as heap_finish returns it
                        if v >= thr:
                            key = hi_key | (np.int64(dord[lo + x]) if reordered else np.int64(lo + x))
                            size = heap_push(hs, hd, size, k, v, key)
                            if size == k:
                                thr = max(hs[0], thr0)
    work[0] += spent
    heap_drain(hs, hd, size, out_s, out_k)
    for i in range(size, out_k.shape[0]):
        out_k[i] = -1
        out_s[i] = 0
    return 0


@njit(cache=True, nogil=True)
def search_range(
    offsets_l, docs_l, impacts_l, order_l, bmo_l, bmb_l, bms_l, bmm_l, drow_l, dmax_l, dstart_l, mask_l,
    scales, block_sizes, n_docs_a, base, pos_a, nums,
    q_indptr, q_terms, q_weights, k, alpha, beta, fallback, thr0, slot, ub, order, q_lo, q_hi, best_d, best_s,
    best_o, fell, work,
):  # fmt: skip
    """:func:`search_one` for queries q_lo..q_hi-1 of a CSR batch, into the rows of the living
    index's running top-k (``lsr.index.segments``): ``best_d`` document handles (segment number
    ``nums[s]`` << 32 | build-order doc; -1 padding), ``best_s`` scaled scores (-inf padding),
    ``best_o`` keys (position << 32 | doc; int64 max padding). ``fell[q]`` = 1 for a query to be
    searched exactly instead (its row is left as it was). ``thr0``: float32[nq] starting thresholds
    (scaled scores) or empty. This thread's scratch, kept by the caller (fresh arrays of several
    hundred KB cost their page faults on every call): ``slot`` int32[>= max query terms x all
    blocks], ``ub`` float32[all blocks], ``order`` int64[all blocks]. ``work`` (int64[2]): this
    thread's work counts (see :func:`search_one`)."""
    n_seg = scales.shape[0]
    total = base[n_seg]
    max_bs = 1
    for s in range(n_seg):
        max_bs = max(max_bs, block_sizes[s])
    by_pos = np.zeros(pos_a.max() + 1, np.int64)
    for s in range(n_seg):
        by_pos[pos_a[s]] = nums[s]
    bucket_start = np.zeros(n_buckets(total) + 1, np.int64)
    acc = np.zeros(max_bs, np.float32)
    hs = np.empty(k, np.float32)
    hd = np.empty(k, np.int64)
    out_k = np.empty(k, np.int64)
    out_s = np.empty(k, np.float32)
    has_thr = thr0.shape[0] > 0
    for q in range(q_lo, q_hi):
        a, b = q_indptr[q], q_indptr[q + 1]
        t0 = np.float32(thr0[q]) if has_thr else np.float32(0)
        fell[q] = search_one(
            offsets_l, docs_l, impacts_l, order_l, bmo_l, bmb_l, bms_l, bmm_l, drow_l, dmax_l, dstart_l, mask_l,
            scales, block_sizes, n_docs_a, base, pos_a,
            q_terms[a:b], q_weights[a:b], k, alpha, beta, fallback, t0,
            ub, slot, order, bucket_start, acc, hs, hd, out_k, out_s, work,
        )  # fmt: skip
        if fell[q]:
            continue
        for r in range(k):
            key = out_k[r]
            if key >= 0:
                best_d[q, r] = (by_pos[key >> 32] << 32) | (key & 0xFFFFFFFF)
                best_s[q, r] = out_s[r]
                best_o[q, r] = key
            else:
                best_d[q, r] = -1
                best_s[q, r] = -np.inf
                best_o[q, r] = np.iinfo(np.int64).max
