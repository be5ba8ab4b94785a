"""Block-Max Pruning (Mallia, Suel, Tonellotto, SIGIR 2024) over the inverted index.

The doc-number space is cut into blocks of ``block_size`` consecutive documents. For each term, one
*entry* per block its postings touch: the block number, where the term's postings of that block
start (relative to the term's first posting) and their largest impact. Per query:

1. block upper bounds ``ub[b] = sum_i w_i * max_i(b)`` by walking the entries of the query terms
   (remembering, per term and block, which entry it was: ``slot``);
2. blocks bucketed by bound (a counting sort into 4096 buckets), highest first;
3. each block evaluated exactly: per query term (ascending term id, the order exact search adds in),
   its postings inside the block go into a ``block_size`` accumulator; the positive scores go to the
   top-k heap;
4. stop once a whole bucket's bound is under the k-th score (``alpha`` < 1 divides that score by
   alpha: approximate). ``beta`` < 1 keeps only the heaviest query terms carrying that share of the
   query's weight (approximate too). alpha = beta = 1 is rank-safe: a block is skipped only when
   its bound, with a relative slack for float rounding, is strictly below the k-th score.

``slot`` is never cleared: an entry number read from it is trusted only if it lies in the term's
entry range and names the block asked for, which a stale value from another query cannot fake
(a term has at most one entry per block).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from lsr.index.kernels.topk import heap_finish, heap_push

N_BUCKETS = 4096
SLACK = np.float32(1.0001)  # bounds are sums in another order than scores: allow float rounding


@njit(cache=True, nogil=True)
def build_blocks(offsets, docs, impacts, block_size, n_docs, dense_fraction):
    """Per-term block maxima. A term present in at least ``dense_fraction`` of the blocks is stored
    *dense* (one max and one start per block: the bound pass over it is a vectorised row add);
    the others as sparse entries. Returns (entry offsets int64[n_terms + 1] (0 entries for dense
    terms), block uint32[], start uint32[], max [], dense row int32[n_terms] (-1: sparse),
    dense max [n_dense * n_blocks], dense start uint32[n_dense * (n_blocks + 1)]). Starts are
    relative to ``offsets[t]``; maxima are in the impacts' dtype."""
    n_terms = offsets.shape[0] - 1
    n_blocks = (n_docs + block_size - 1) // block_size
    counts = np.zeros(n_terms + 1, np.int64)
    dense_row = np.full(n_terms, -1, np.int32)
    n_dense = 0
    for t in range(n_terms):
        last = -1
        c = 0
        for p in range(offsets[t], offsets[t + 1]):
            b = docs[p] // block_size
            if b != last:
                c += 1
                last = b
        if c > 0 and c >= dense_fraction * n_blocks:
            dense_row[t] = n_dense
            n_dense += 1
            c = 0
        counts[t + 1] = c
    for t in range(n_terms):
        counts[t + 1] += counts[t]
    n = counts[n_terms]
    blk = np.empty(n, np.uint32)
    start = np.empty(n, np.uint32)
    mx = np.zeros(n, impacts.dtype)
    dmax = np.zeros(n_dense * n_blocks, impacts.dtype)
    dstart = np.zeros(n_dense * (n_blocks + 1), np.uint32)
    for t in range(n_terms):
        base = offsets[t]
        r = dense_row[t]
        if r >= 0:
            o = r * n_blocks
            so = r * (n_blocks + 1)
            nxt = 0  # next block whose start is still unset
            for p in range(base, offsets[t + 1]):
                b = docs[p] // block_size
                while nxt <= b:
                    dstart[so + nxt] = p - base
                    nxt += 1
                if impacts[p] > dmax[o + b]:
                    dmax[o + b] = impacts[p]
            while nxt <= n_blocks:
                dstart[so + nxt] = offsets[t + 1] - base
                nxt += 1
            continue
        j = counts[t] - 1
        last = -1
        for p in range(base, offsets[t + 1]):
            b = docs[p] // block_size
            if b != last:
                j += 1
                blk[j] = b
                start[j] = p - base
                mx[j] = impacts[p]
                last = b
            elif impacts[p] > mx[j]:
                mx[j] = impacts[p]
    return counts, blk, start, mx, dense_row, dmax, dstart


@njit(cache=True, nogil=True)
def _kept_terms(q_weights, beta):
    """Mask of the heaviest query terms holding a ``beta`` share of the total weight (ties kept)."""
    n = q_weights.shape[0]
    keep = np.ones(n, np.bool_)
    if beta >= 1.0 or n == 0:
        return keep
    order = np.argsort(-q_weights)
    total = 0.0
    for i in range(n):
        total += q_weights[i]
    acc = 0.0
    cut = q_weights[order[n - 1]]
    for r in range(n):
        acc += q_weights[order[r]]
        if acc >= beta * total:
            cut = q_weights[order[r]]
            break
    for i in range(n):
        keep[i] = q_weights[i] >= cut
    return keep


@njit(cache=True, nogil=True)
def search_one(
    offsets,
    docs,
    impacts,
    scale,
    doc_order,
    bm_offsets,
    bm_block,
    bm_start,
    bm_max,
    dense_row,
    dense_max,
    dense_start,
    block_size,
    n_docs,
    q_terms,
    q_weights,
    k,
    alpha,
    beta,
    ub,
    slot,
    order,
    bucket_start,
    acc,
    hs,
    hd,
    out_d,
    out_s,
    mask,
    thr0,
):
    """BMP top-k of one query (``q_terms`` ascending) into out_d / out_s (-1 / 0 padding).

    Scratch: ``ub`` float32[n_blocks], ``slot`` int64[>= n_query_terms * n_blocks],
    ``order`` int32[n_blocks], ``bucket_start`` int64[N_BUCKETS + 1], ``acc`` float32[block_size].
    A document whose ``mask`` entry (uint8 by internal doc number; empty: none masked) is 0 never
    enters the heap (block bounds still count it: they stay upper bounds, so alpha = 1 is safe).
    ``thr0`` (raw score, >= 0): a starting threshold (blocks are pruned against it from the first
    one; a document scoring under it may be left out).
    """
    n_blocks = ub.shape[0]
    masked = mask.shape[0] > 0
    nq = q_terms.shape[0]
    keep = _kept_terms(q_weights, beta)
    reordered = doc_order.shape[0] > 0
    ub[:] = 0
    top = np.float32(0)
    for i in range(nq):
        if not keep[i]:
            continue
        t = q_terms[i]
        w = np.float32(q_weights[i])
        r = dense_row[t]
        if r >= 0:
            o = r * n_blocks
            for b in range(n_blocks):  # vectorised
                ub[b] += w * np.float32(dense_max[o + b])
            continue
        base = i * n_blocks
        for j in range(bm_offsets[t], bm_offsets[t + 1]):
            b = bm_block[j]
            ub[b] += w * np.float32(bm_max[j])
            slot[base + b] = j
    for b in range(n_blocks):
        if ub[b] > top:
            top = ub[b]
    size = 0
    if top > 0 and not (thr0 > 0 and top * np.float32(alpha) * SLACK < thr0):
        # counting sort of the blocks with a positive bound into buckets, highest bucket first
        bucket_start[:] = 0
        inv = np.float32(N_BUCKETS) / top
        for b in range(n_blocks):
            if ub[b] > 0:
                bk = min(N_BUCKETS - 1, int(ub[b] * inv))
                bucket_start[N_BUCKETS - bk] += 1
        for i in range(N_BUCKETS):
            bucket_start[i + 1] += bucket_start[i]
        fill = bucket_start[:N_BUCKETS].copy()
        for b in range(n_blocks):
            if ub[b] > 0:
                r = N_BUCKETS - 1 - min(N_BUCKETS - 1, int(ub[b] * inv))
                order[fill[r]] = b
                fill[r] += 1
        thr = thr0  # > 0 once pruning may start
        a = np.float32(alpha) * SLACK
        for r in range(N_BUCKETS):
            edge = np.float32(N_BUCKETS - r) / inv  # the bucket's upper bound
            if thr > 0 and edge * a < thr:
                break
            for oi in range(bucket_start[r], bucket_start[r + 1]):
                b = order[oi]
                if thr > 0 and ub[b] * a < thr:
                    continue
                lo = b * block_size
                hi = min(n_docs, lo + block_size)
                acc[: hi - lo] = 0
                for i in range(nq):
                    if not keep[i]:
                        continue
                    t = q_terms[i]
                    r = dense_row[t]
                    if r >= 0:
                        so = r * (n_blocks + 1) + b
                        p0 = offsets[t] + dense_start[so]
                        p1 = offsets[t] + dense_start[so + 1]
                    else:
                        j = slot[i * n_blocks + b]
                        e0 = bm_offsets[t]
                        e1 = bm_offsets[t + 1]
                        if j < e0 or j >= e1 or bm_block[j] != b:
                            continue
                        p0 = offsets[t] + bm_start[j]
                        p1 = offsets[t] + bm_start[j + 1] if j + 1 < e1 else offsets[t + 1]
                    w = np.float32(q_weights[i])
                    for p in range(p0, p1):
                        acc[docs[p] - lo] += w * np.float32(impacts[p])
                for x in range(hi - lo):
                    s = acc[x]
                    if s > 0 and s >= thr and not (masked and mask[lo + x] == 0):
                        key = np.int64(doc_order[lo + x]) if reordered else np.int64(lo + x)
                        size = heap_push(hs, hd, size, k, s, key)
                        if size == k:
                            thr = max(hs[0], thr0)
    heap_finish(hs, hd, size, scale, out_d, out_s)


@njit(cache=True, nogil=True)
def search_range(
    offsets, docs, impacts, scale, doc_order, bm_offsets, bm_block, bm_start, bm_max, dense_row,
    dense_max, dense_start, block_size,
    n_docs, q_indptr, q_terms, q_weights, k, alpha, beta, slot, q_lo, q_hi, out_d, out_s, mask, thr0,
):  # fmt: skip
    """BMP for queries q_lo..q_hi-1 of a CSR batch into out_d / out_s rows, with ``slot``
    (int64[>= max query terms * n_blocks]) as this thread's scratch; ``thr0`` float32[nq]
    starting thresholds (raw scores) or empty."""
    has_thr = thr0.shape[0] > 0
    n_blocks = (n_docs + block_size - 1) // block_size
    ub = np.zeros(n_blocks, np.float32)
    order = np.empty(n_blocks, np.int32)
    bucket_start = np.zeros(N_BUCKETS + 1, np.int64)
    acc = np.zeros(block_size, np.float32)
    hs = np.empty(k, dtype=np.float32)
    hd = np.empty(k, dtype=np.int64)
    for q in range(q_lo, q_hi):
        a, b = q_indptr[q], q_indptr[q + 1]
        search_one(
            offsets, docs, impacts, scale, doc_order, bm_offsets, bm_block, bm_start, bm_max, dense_row,
            dense_max, dense_start,
            block_size, n_docs, q_terms[a:b], q_weights[a:b], k, alpha, beta, ub, slot, order,
            bucket_start, acc, hs, hd, out_d[q], out_s[q], mask,
            np.float32(thr0[q]) if has_thr else np.float32(0),
        )  # fmt: skip


@njit(cache=True, nogil=True)
def search_serial(
    offsets, docs, impacts, scale, doc_order, bm_offsets, bm_block, bm_start, bm_max, dense_row,
    dense_max, dense_start, block_size,
    n_docs, q_indptr, q_terms, q_weights, k, alpha, beta, slot, mask, thr0,
):  # fmt: skip
    """BMP for every query of a CSR batch, one after the other. Returns (docs int64[nq, k],
    scores float32[nq, k]), -1 / 0 past the matches."""
    nq = q_indptr.shape[0] - 1
    out_d = np.full((nq, k), -1, dtype=np.int64)
    out_s = np.zeros((nq, k), dtype=np.float32)
    search_range(
        offsets, docs, impacts, scale, doc_order, bm_offsets, bm_block, bm_start, bm_max, dense_row,
    dense_max, dense_start, block_size,
        n_docs, q_indptr, q_terms, q_weights, k, alpha, beta, slot, 0, nq, out_d, out_s, mask, thr0,
    )  # fmt: skip
    return out_d, out_s


@njit(cache=True, nogil=True, parallel=True)
def search_batch(
    offsets, docs, impacts, scale, doc_order, bm_offsets, bm_block, bm_start, bm_max, dense_row,
    dense_max, dense_start, block_size,
    n_docs, q_indptr, q_terms, q_weights, k, alpha, beta, slots, n_chunks, mask, thr0,
):  # fmt: skip
    """Like :func:`search_serial` with the queries in ``n_chunks`` parallel chunks, chunk c using
    ``slots[c]``."""
    nq = q_indptr.shape[0] - 1
    out_d = np.full((nq, k), -1, dtype=np.int64)
    out_s = np.zeros((nq, k), dtype=np.float32)
    per = (nq + n_chunks - 1) // n_chunks
    for c in prange(n_chunks):
        search_range(
            offsets, docs, impacts, scale, doc_order, bm_offsets, bm_block, bm_start, bm_max, dense_row,
            dense_max, dense_start,
            block_size, n_docs, q_indptr, q_terms, q_weights, k, alpha, beta, slots[c],
            c * per, min(nq, (c + 1) * per), out_d, out_s, mask, thr0,
        )  # fmt: skip
    return out_d, out_s


def search_reference(offsets, docs, impacts, scale, q_terms, q_weights, k, n_docs, beta=1.0):
    """numpy twin for the rank-safe setting (alpha = 1): exhaustive scores over the kept terms."""
    from lsr.index.kernels.topk import topk_reference

    w = np.asarray(q_weights, np.float64)
    keep = np.ones(len(w), bool)
    if beta < 1 and len(w):
        o = np.argsort(-w, kind="stable")
        c = np.cumsum(w[o])
        cut = w[o][min(len(w) - 1, int(np.searchsorted(c, beta * w.sum() - 1e-12)))]
        keep = w >= cut
    acc = np.zeros(n_docs, np.float64)
    for t, x in zip(np.asarray(q_terms)[keep], w[keep], strict=True):
        s, e = offsets[t], offsets[t + 1]
        np.add.at(acc, docs[s:e].astype(np.int64), x * impacts[s:e].astype(np.float64))
    d, s = topk_reference(acc, k)
    return d, s * scale


def search_python(
    offsets, docs, impacts, scale, doc_order, bm_offsets, bm_block, bm_start, bm_max, dense_row,
    dense_max, dense_start, block_size, n_docs, q_terms, q_weights, k, alpha=1.0, beta=1.0,
):  # fmt: skip
    """Plain-Python twin of :func:`search_one` for any ``alpha`` and ``beta``: the same block bounds,
    buckets, visiting order, stopping rule and float32 block scoring, written without the
    scratch-array tricks (a dict of each term's entries, a sorted list for the top-k). Returns
    (keys int64[k], scores float32[k]), -1 / 0 padded, equal to the kernel bit for bit."""
    from lsr.index.kernels.topk import TopKReference

    f32 = np.float32
    n_blocks = (n_docs + block_size - 1) // block_size
    w = [f32(x) for x in q_weights]
    keep = [True] * len(w)
    if beta < 1.0 and len(w):  # the heaviest terms holding a beta share of the weight (ties kept)
        total = sum(float(x) for x in w)
        running, cut = 0.0, min(w)
        for x in sorted(w, key=lambda v: -float(v)):
            running += float(x)
            if running >= beta * total:
                cut = x
                break
        keep = [x >= cut for x in w]
    terms = [(int(t), x) for t, x, kp in zip(q_terms, w, keep, strict=True) if kp]
    ub = np.zeros(n_blocks, np.float32)
    entry: dict[tuple[int, int], int] = {}
    for t, x in terms:
        r = int(dense_row[t])
        if r >= 0:
            ub += x * dense_max[r * n_blocks : (r + 1) * n_blocks].astype(np.float32)
            continue
        for j in range(int(bm_offsets[t]), int(bm_offsets[t + 1])):
            b = int(bm_block[j])
            ub[b] = f32(ub[b] + f32(x * f32(bm_max[j])))
            entry[(t, b)] = j
    heap = TopKReference(k)
    top = ub.max() if n_blocks else f32(0)
    if top > 0:
        inv = f32(N_BUCKETS) / top
        rank = {
            b: N_BUCKETS - 1 - min(N_BUCKETS - 1, int(f32(ub[b] * inv))) for b in range(n_blocks) if ub[b] > 0
        }
        a = f32(f32(alpha) * SLACK)
        for r in range(N_BUCKETS):
            edge = f32(f32(N_BUCKETS - r) / inv)
            if heap.size == k and f32(edge * a) < heap.threshold:
                break
            for b in sorted(b for b, rb in rank.items() if rb == r):
                if heap.size == k and f32(ub[b] * a) < heap.threshold:
                    continue
                lo, hi = b * block_size, min(n_docs, (b + 1) * block_size)
                acc = np.zeros(hi - lo, np.float32)
                for t, x in terms:
                    r_t = int(dense_row[t])
                    if r_t >= 0:
                        so = r_t * (n_blocks + 1) + b
                        p0, p1 = offsets[t] + dense_start[so], offsets[t] + dense_start[so + 1]
                    elif (t, b) in entry:
                        j = entry[(t, b)]
                        p0 = offsets[t] + bm_start[j]
                        p1 = offsets[t] + bm_start[j + 1] if j + 1 < bm_offsets[t + 1] else offsets[t + 1]
                    else:
                        continue
                    for p in range(int(p0), int(p1)):
                        acc[docs[p] - lo] = f32(acc[docs[p] - lo] + f32(x * f32(impacts[p])))
                for i in range(hi - lo):
                    if acc[i] > 0:
                        heap.push(acc[i], int(doc_order[lo + i]) if len(doc_order) else lo + i)
    return heap.finish(scale)
