"""Block-Max Pruning (Mallia, Suel, Tonellotto, SIGIR 2024) over the inverted index.

The doc-number space is cut into blocks of ``block_size`` consecutive documents. For each term, one
*entry* per block its postings touch: the block number, where the term's postings of that block
start (relative to the term's first posting) and their largest impact. Per query:

1. block upper bounds ``ub[b] = sum_i w_i * max_i(b)`` by walking the entries of the query terms
   (remembering, per term and block, which of the term's entries it was: ``slot``, int32, the
   entry's number counted from the term's first entry, so it fits whatever the index's size);
2. blocks bucketed by bound (a counting sort into 4096 buckets), highest first; with a starting
   threshold (a living index's segment searched after others) only the blocks whose bound can beat
   it are sorted, into buckets spanning [threshold, top bound];
3. each block evaluated exactly: per query term (ascending term id, the order exact search adds in),
   its postings inside the block go into a ``block_size`` accumulator; the positive scores go to the
   top-k heap;
4. stop once a whole bucket's bound is under the k-th score (``alpha`` < 1 divides that score by
   alpha: approximate). ``beta`` < 1 keeps only the heaviest query terms carrying that share of the
   query's weight (approximate too). alpha = beta = 1 is rank-safe: a block is skipped only when
   its bound, with a relative slack for float rounding, is strictly below the k-th score.

``slot`` is never cleared: an entry number read from it is trusted only if it lies in the term's
entry range and names the block asked for, which a stale value from another query cannot fake
(a term has at most one entry per block). It holds 4 bytes per (query term, block), not 8: the
bound pass writes one per sparse entry of the query's terms, scattered over an array of query
terms x blocks, and at 1M documents (30 query terms, 62,500 blocks) that array is 7.5 MB as int32
against 15 MB as int64; BMP took 0.83-0.86x exact search's time against 0.99-1.09x with int64
slots on the 1M synthetic set of ``bench_search.py``, in two A/Bs (BENCHMARKS.md, session of
2026-12-01, night).

**Fallback to exact search** (``fallback`` > 0, the method's default 1): pruning must never cost
more than exhaustive search, and on short real vectors (whose query terms touch most blocks) it
can. Work is counted in *array touches*, the same unit for both methods:

- exact search costs ``E = P + (P if 16 P < n_docs else n_docs)``: P postings of the (kept) query
  terms accumulated, then a replay of them or a scan of the accumulator;
- BMP's fixed cost is ``F = 1.5 (sum over kept terms of (n_blocks if the term is dense else its
  block entries) + 3 n_blocks + 2 n_buckets)`` (the bound pass, the max and the two counting-sort
  passes; ``FIXED_HALVES`` / 2 per touch: scattered adds into the bounds, not a stream);
  visiting a block costs ``2 block_size + PROBE n_kept_terms + POSTING x its postings``
  (``PROBE`` = 120: a term's probe of a block is a few cache misses; ``POSTING`` = 8: a block's
  postings are short runs far apart, where exact search streams whole lists; calibrated by
  timing, see ``PROBE``).

Up front, ``F >= fallback * E`` runs exact search instead. While blocks are visited, at work
checkpoints (every ``E / 32`` after ``F``) the blocks still to visit are bounded by the buckets
whose bound can beat the current k-th score (a binary search over the bucket edges and a look at
the bucket counts, an upper bound since the k-th score only rises); their estimated work (each such block at the
per-block cost plus the query's average postings per positive block) over ``fallback * E``
switches to exact search, which starts over (the heap is discarded). The result is exact search's,
over the kept terms: with alpha = beta = 1 the same top-k and scores bit for bit, so the method
stays rank-safe; with alpha < 1 it can only be better. Only the work *left* counts: the work
already spent is paid whichever way the query goes on. (Until 2026-12-01 the work spent over
``fallback * E`` switched too: on the 1M synthetic set 29 of 500 queries then fell back, most near
their end; weighing only the work left, 7 fall back, and BMP's mean went from 0.89x to 0.79x exact
search's, p99 4.49 -> 3.46 ms; on the real set no change, 1.14x; BENCHMARKS.md, evening session.)
Since the blocks left are an upper bound and only shrink, a query pays at most about
``F + fallback E`` plus one checkpoint's step (a bounded tail instead of BMP's worst case);
``fallback = 0`` never falls back.

Buckets: ``n_buckets = clip(n_blocks, 16, 4096)`` (no more buckets than blocks: their reset and
prefix sum are a fixed cost per query).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from lsr.index.kernels import exact as exact_k
from lsr.index.kernels.topk import heap_finish, heap_push

N_BUCKETS = 4096  # at most; see n_buckets
CHECKS = 32  # fallback checkpoints every 1/CHECKS of exact search's work
# The weights of BMP's work, in exact search's unit (one posting added; 0.33-0.50 ns on this
# project's machine). Fitted, by least squares, to the times of BMP without fallback against
# its counts per query (fixed touches, (term, block) probes, postings in visited blocks) on three
# collections, 300-500 queries each, one thread (BENCHMARKS.md, session of 2026-12-01, closing):
#   real 300k (short SPLADE vectors): fixed 1.6, probe 99, posting 0.2 units;
#   1M synthetic (the living benchmark's): fixed 1.1, probe 121, posting 19 units;
#   SciFact (5k documents, whose slot array stays in cache): fixed 3.3, probe 24, posting 1.9.
# The model before (fixed 1, probe 48, posting 1) counted BMP at 0.82x exact search's work on the
# real set where it took 1.63x the time, and 0.35x on the synthetic set where it took 1.11x, so
# queries that did not pay ran BMP to the end. A probe is a slot, a block entry and the start of
# a run of postings far from the last one (cache misses), against exact search's streaming scan of
# whole posting lists; the slot array (terms x blocks, several MB) is what outgrows the cache.
FIXED_HALVES = 3  # fixed work weighs FIXED_HALVES / 2 per touch
PROBE = 120
POSTING = 8


@njit(cache=True, nogil=True)
def fixed_work(touches):
    """BMP's fixed work (bound pass, max, bucket sort) in exact search's unit, from its touches."""
    return (FIXED_HALVES * touches) // 2


@njit(cache=True, nogil=True)
def block_work(block_size, n_kept, n_post, n_pos):
    """The estimated work of visiting one block, in exact search's unit: its accumulator (twice),
    a probe per kept query term and the query's average postings per positive block."""
    return 2 * block_size + PROBE * n_kept + POSTING * (n_post // max(n_pos, 1))


@njit(cache=True, nogil=True)
def n_buckets(n_blocks):
    """Buckets of the counting sort for ``n_blocks`` blocks: no more than blocks, 16 .. 4096."""
    return max(16, min(N_BUCKETS, n_blocks))


@njit(cache=True, nogil=True)
def work_estimate(offsets, bm_offsets, dense_row, n_blocks, n_docs, q_terms, keep):
    """(exact search's work E, BMP's fixed work F, postings P, kept terms) of one query, in array
    touches (see the module docs)."""
    p = 0
    fixed = 3 * n_blocks + 2 * n_buckets(n_blocks)
    n_kept = 0
    for i in range(q_terms.shape[0]):
        if not keep[i]:
            continue
        t = q_terms[i]
        n_kept += 1
        p += offsets[t + 1] - offsets[t]
        if dense_row[t] >= 0:
            fixed += n_blocks
        else:
            fixed += bm_offsets[t + 1] - bm_offsets[t]
    exact_work = p + (p if p * 16 < n_docs else n_docs)
    return exact_work, fixed_work(fixed), p, n_kept


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
def _live_max(docs, impacts, lo, hi, live, out, i):
    """``out[i]`` = the largest impact of postings ``lo:hi`` among the live documents (``live``
    uint8 by internal doc), 0 when none is live."""
    out[i] = 0
    for p in range(lo, hi):
        if live[docs[p]] and impacts[p] > out[i]:
            out[i] = impacts[p]


@njit(cache=True, nogil=True)
def live_block_maxima(
    offsets, docs, impacts, block_size, n_blocks, bm_offsets, blocks, starts, dense_row, dense_max, live
):
    """The block maxima of :func:`build_blocks` (sparse ``max[]``, dense ``dense max[]``) taken over
    the documents ``live`` (uint8[n_docs] by internal doc number) keeps: tighter bounds on a
    living index's segment with deleted documents (a block's bound then counts no deleted
    document's impacts; 0 for a block none of whose postings of the term is live). Same entries,
    same order as the stored maxima; one pass over the postings."""
    n_terms = offsets.shape[0] - 1
    mx = np.zeros(blocks.shape[0], impacts.dtype)
    dm = np.zeros(dense_max.shape[0], impacts.dtype)
    for t in range(n_terms):
        base = offsets[t]
        r = dense_row[t]
        if r >= 0:
            o = r * n_blocks
            for p in range(base, offsets[t + 1]):
                d = docs[p]
                if live[d] and impacts[p] > dm[o + d // block_size]:
                    dm[o + d // block_size] = impacts[p]
            continue
        for j in range(bm_offsets[t], bm_offsets[t + 1]):
            hi = base + starts[j + 1] if j + 1 < bm_offsets[t + 1] else offsets[t + 1]
            _live_max(docs, impacts, base + starts[j], hi, live, mx, j)
    return mx, dm


@njit(cache=True, nogil=True)
def update_live_maxima(
    offsets, docs, impacts, block_size, n_blocks, bm_offsets, blocks, starts, dense_row, dense_starts,
    fwd_offsets, fwd_terms, gone, live, mx, dm,
):  # fmt: skip
    """Bring live block maxima (``mx``, ``dm``: :func:`live_block_maxima` under an older mask) up to
    date in place after the documents ``gone`` (int64 internal doc numbers) were deleted, ``live``
    the new mask: only the (term, block) pairs those documents touch are recomputed, found through
    the forward index (``fwd_offsets``, ``fwd_terms``: internal doc -> terms). Costs the deleted
    documents' terms x one block's postings each, not a pass over the index."""
    for i in range(gone.shape[0]):
        d = gone[i]
        b = d // block_size
        for f in range(fwd_offsets[d], fwd_offsets[d + 1]):
            t = fwd_terms[f]
            base = offsets[t]
            r = dense_row[t]
            if r >= 0:
                so = r * (n_blocks + 1)
                lo, hi = base + dense_starts[so + b], base + dense_starts[so + b + 1]
                _live_max(docs, impacts, lo, hi, live, dm, r * n_blocks + b)
                continue
            lo = bm_offsets[t]
            hi = bm_offsets[t + 1]
            while lo < hi:  # the term's entry for block b (it has one: d holds the term)
                mid = (lo + hi) // 2
                if blocks[mid] < b:
                    lo = mid + 1
                else:
                    hi = mid
            end = base + starts[lo + 1] if lo + 1 < bm_offsets[t + 1] else offsets[t + 1]
            _live_max(docs, impacts, base + starts[lo], end, live, mx, lo)


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
def _exact_fallback(
    offsets, docs, impacts, scale, doc_order, q_terms, q_weights, keep, k, full_acc, hs, hd, out_d, out_s, mask,
    thr0,
):  # fmt: skip
    """Exact search (:func:`lsr.index.kernels.exact.search_one`) over the kept query terms, from the
    starting threshold ``thr0``."""
    n_kept = 0
    for i in range(keep.shape[0]):
        if keep[i]:
            n_kept += 1
    if n_kept == keep.shape[0]:
        exact_k.search_one(
            offsets, docs, impacts, scale, doc_order, q_terms, q_weights, k, full_acc, hs, hd, out_d, out_s, mask,
            thr0, np.empty(0, np.int64),
        )  # fmt: skip
    else:
        exact_k.search_one(
            offsets, docs, impacts, scale, doc_order, q_terms[keep], q_weights[keep], k, full_acc, hs, hd,
            out_d, out_s, mask, thr0, np.empty(0, np.int64),
        )  # fmt: skip


@njit(cache=True, nogil=True)
def sort_blocks(ub, n_blocks, alpha, thr0, nbk, bucket_start, order):
    """Bucket the blocks ``0 .. n_blocks - 1`` by bound ``ub``, highest bucket first: a counting sort
    into ``nbk`` buckets of the blocks whose bound can beat the starting threshold ``thr0`` (all
    blocks with a positive bound when there is none). The buckets span [low, top], so a segment
    searched after others sorts only the blocks it may visit, at a finer bucket width (0.999: a
    block a rounding away from the cut is sorted too; sorting one more costs nothing). Fills
    ``bucket_start[: nbk + 1]`` and ``order``; returns (top bound, blocks with a positive bound,
    low, inverse bucket width, whether any block can beat ``thr0``)."""
    top = np.float32(0)
    n_pos = 0
    for b in range(n_blocks):
        if ub[b] > top:
            top = ub[b]
        if ub[b] > 0:
            n_pos += 1
    low = thr0 / (np.float32(alpha) * SLACK) * np.float32(0.999) if thr0 > 0 else np.float32(0)
    inv = np.float32(nbk) / (top - low) if top > low else np.float32(0)
    if top <= 0 or (thr0 > 0 and top * np.float32(alpha) * SLACK < thr0):
        return top, n_pos, low, inv, False
    bucket_start[: nbk + 1] = 0
    for b in range(n_blocks):
        if ub[b] > 0 and ub[b] >= low:
            bk = min(nbk - 1, int((ub[b] - low) * inv))
            bucket_start[nbk - bk] += 1
    for i in range(nbk):
        bucket_start[i + 1] += bucket_start[i]
    fill = bucket_start[:nbk].copy()
    for b in range(n_blocks):
        if ub[b] > 0 and ub[b] >= low:
            r = nbk - 1 - min(nbk - 1, int((ub[b] - low) * inv))
            order[fill[r]] = b
            fill[r] += 1
    return top, n_pos, low, inv, True


@njit(cache=True, nogil=True)
def last_bucket(r, nbk, low, inv, top, a, thr):
    """The last bucket (from bucket ``r`` on) whose upper edge, times ``a``, can beat ``thr``: the
    blocks BMP may still visit are those of the buckets up to it (edges fall with the bucket)."""
    if thr <= 0:
        return nbk - 1
    lo_r, hi_r = r, nbk - 1
    while lo_r < hi_r:
        mid = (lo_r + hi_r + 1) // 2
        if (low + np.float32(nbk - mid) / inv if inv > 0 else top) * a >= thr:
            lo_r = mid
        else:
            hi_r = mid - 1
    return lo_r


@njit(cache=True, nogil=True)
def score_block(
    offsets, docs, impacts, bmo, bmb, bms, drow, dstart, slot, nb, total, g, b, lo, hi, q_terms, q_weights, keep, acc
):  # fmt: skip
    """The raw scores of block ``b`` (documents ``lo .. hi - 1``) into ``acc[: hi - lo]``, query terms
    ascending (exact search's order of additions, so the same float32 sums); returns the postings
    read. A sparse term's entry for the block is ``bmo[t] + slot[i * total + g]`` (``g``: the block's
    number among ``total`` blocks of all the slot rows; ``g = b``, ``total = nb`` for one index),
    trusted only if it names this block; terms past the index's vocabulary match nothing."""
    nt = offsets.shape[0] - 1
    acc[: hi - lo] = 0
    ulo = np.uint64(lo)
    spent = 0
    for i in range(q_terms.shape[0]):
        t = q_terms[i]
        if not keep[i] or t >= nt:
            continue
        dr = drow[t]
        if dr >= 0:
            so = dr * (nb + 1) + b
            p0 = offsets[t] + dstart[so]
            p1 = offsets[t] + dstart[so + 1]
        else:
            e0 = bmo[t]
            e1 = bmo[t + 1]
            r = np.int64(slot[i * total + g])
            j = e0 + r
            if r < 0 or j >= e1 or bmb[j] != b:
                continue
            p0 = offsets[t] + bms[j]
            p1 = offsets[t] + bms[j + 1] if j + 1 < e1 else offsets[t + 1]
        w = np.float32(q_weights[i])
        spent += p1 - p0
        for p in range(np.uint64(p0), np.uint64(p1)):  # unsigned: see kernels.exact
            acc[np.uint64(docs[p]) - ulo] += w * np.float32(impacts[p])
    return spent


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
    fallback,
    ub,
    slot,
    order,
    bucket_start,
    acc,
    full_acc,
    hs,
    hd,
    out_d,
    out_s,
    mask,
    thr0,
    stats,
):
    """BMP top-k of one query (``q_terms`` ascending) into out_d / out_s (-1 / 0 padding); returns 1
    when it fell back to exact search, else 0. With ``stats`` of 3+ entries it adds the work this
    query took (array touches, the exact search's too when it fell back) to ``stats[1]`` and exact
    search's estimated work to ``stats[2]``: what :class:`lsr.index.methods.FallbackPolicy` weighs.

    Scratch: ``ub`` float32[n_blocks], ``slot`` int32[>= n_query_terms * n_blocks],
    ``order`` int32[n_blocks], ``bucket_start`` int64[N_BUCKETS + 1], ``acc`` float32[block_size],
    ``full_acc`` a zeroed float32[n_docs] for the exact fallback (left zeroed; may be empty when
    ``fallback`` <= 0, which never falls back; see the module docs).
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
    exact_work, fixed, n_post, n_kept = work_estimate(
        offsets, bm_offsets, dense_row, n_blocks, n_docs, q_terms, keep
    )
    budget = fallback * exact_work
    counted = stats.shape[0] > 2
    if counted:
        stats[2] += exact_work
    if fallback > 0 and fixed >= budget:
        _exact_fallback(offsets, docs, impacts, scale, doc_order, q_terms, q_weights, keep, k, full_acc, hs, hd,
                        out_d, out_s, mask, thr0)  # fmt: skip
        if counted:
            stats[1] += exact_work
        return 1
    nbk = n_buckets(n_blocks)
    ub[:] = 0
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
        base = np.uint64(i * n_blocks)
        e0 = np.uint64(bm_offsets[t])
        for j in range(e0, np.uint64(bm_offsets[t + 1])):  # unsigned: kernels.exact
            b = bm_block[j]
            ub[b] += w * np.float32(bm_max[j])
            slot[base + b] = j - e0
    size = 0
    top, n_pos, low, inv, go = sort_blocks(ub, n_blocks, alpha, thr0, nbk, bucket_start, order)
    spent = fixed  # work so far, in the units of exact_work
    if go:
        per_block = block_work(block_size, n_kept, n_post, n_pos)
        step = max(1, exact_work // CHECKS)
        check_at = fixed + step
        thr = thr0  # > 0 once pruning may start
        a = np.float32(alpha) * SLACK
        for r in range(nbk):
            edge = low + np.float32(nbk - r) / inv if inv > 0 else top  # the bucket's upper bound
            if thr > 0 and edge * a < thr:
                break
            for oi in range(bucket_start[r], bucket_start[r + 1]):
                b = order[oi]
                if thr > 0 and ub[b] * a < thr:
                    continue
                if fallback > 0 and spent >= check_at:
                    # blocks that may still be visited: the rest of the buckets whose bound can beat thr
                    left = bucket_start[last_bucket(r, nbk, low, inv, top, a, thr) + 1] - oi
                    if left * per_block > budget:
                        _exact_fallback(offsets, docs, impacts, scale, doc_order, q_terms, q_weights, keep, k,
                                        full_acc, hs, hd, out_d, out_s, mask, thr0)  # fmt: skip
                        if counted:
                            stats[1] += spent + exact_work
                        return 1
                    check_at += step
                lo = b * block_size
                hi = min(n_docs, lo + block_size)
                spent += POSTING * score_block(
                    offsets, docs, impacts, bm_offsets, bm_block, bm_start, dense_row, dense_start, slot, n_blocks,
                    n_blocks, b, b, lo, hi, q_terms, q_weights, keep, acc,
                )  # fmt: skip
                spent += 2 * (hi - lo) + PROBE * n_kept
                for x in range(hi - lo):
                    s = acc[x]
                    if s > 0 and s >= thr and not (masked and mask[lo + x] == 0):
                        key = np.int64(doc_order[lo + x]) if reordered else np.int64(lo + x)
                        size = heap_push(hs, hd, size, k, s, key)
                        if size == k:
                            thr = max(hs[0], thr0)
    heap_finish(hs, hd, size, scale, out_d, out_s)
    if counted:
        stats[1] += spent
    return 0


@njit(cache=True, nogil=True)
def search_range(
    offsets, docs, impacts, scale, doc_order, bm_offsets, bm_block, bm_start, bm_max, dense_row,
    dense_max, dense_start, block_size,
    n_docs, q_indptr, q_terms, q_weights, k, alpha, beta, fallback, slot, full_acc, q_lo, q_hi, out_d, out_s,
    mask, thr0, stats,
):  # fmt: skip
    """BMP for queries q_lo..q_hi-1 of a CSR batch into out_d / out_s rows, with ``slot``
    (int32[>= max query terms * n_blocks]) and ``full_acc`` (zeroed float32[n_docs], or empty when
    ``fallback`` <= 0) as this thread's scratch; ``thr0`` float32[nq] starting thresholds (raw
    scores) or empty; ``stats[0]`` is raised by the number of queries that fell back to exact
    search."""
    has_thr = thr0.shape[0] > 0
    n_blocks = (n_docs + block_size - 1) // block_size
    ub = np.zeros(n_blocks, np.float32)
    order = np.empty(n_blocks, np.int32)
    bucket_start = np.zeros(n_buckets(n_blocks) + 1, np.int64)
    acc = np.zeros(block_size, np.float32)
    hs = np.empty(k, dtype=np.float32)
    hd = np.empty(k, dtype=np.int64)
    for q in range(q_lo, q_hi):
        a, b = q_indptr[q], q_indptr[q + 1]
        t0 = np.float32(thr0[q]) if has_thr else np.float32(0)
        stats[0] += search_one(
            offsets, docs, impacts, scale, doc_order, bm_offsets, bm_block, bm_start, bm_max, dense_row,
            dense_max, dense_start,
            block_size, n_docs, q_terms[a:b], q_weights[a:b], k, alpha, beta, fallback, ub, slot, order,
            bucket_start, acc, full_acc, hs, hd, out_d[q], out_s[q], mask,
            t0, stats,
        )  # fmt: skip


@njit(cache=True, nogil=True)
def search_serial(
    offsets, docs, impacts, scale, doc_order, bm_offsets, bm_block, bm_start, bm_max, dense_row,
    dense_max, dense_start, block_size,
    n_docs, q_indptr, q_terms, q_weights, k, alpha, beta, fallback, slot, full_acc, mask, thr0, stats,
):  # fmt: skip
    """BMP for every query of a CSR batch, one after the other. Returns (docs int64[nq, k],
    scores float32[nq, k]), -1 / 0 past the matches. ``fallback`` and ``full_acc``: see
    :func:`search_one`; ``stats`` (int64[1]) as in :func:`search_range`."""
    nq = q_indptr.shape[0] - 1
    out_d = np.full((nq, k), -1, dtype=np.int64)
    out_s = np.zeros((nq, k), dtype=np.float32)
    # np.int64(0), not 0: a literal would compile a second search_range beside the one that
    # batch threads call (lsr.index.batch)
    search_range(
        offsets, docs, impacts, scale, doc_order, bm_offsets, bm_block, bm_start, bm_max, dense_row,
    dense_max, dense_start, block_size,
        n_docs, q_indptr, q_terms, q_weights, k, alpha, beta, fallback, slot, full_acc, np.int64(0), nq, out_d, out_s, mask,
        thr0, stats,
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
    dense_max, dense_start, block_size, n_docs, q_terms, q_weights, k, alpha=1.0, beta=1.0, fallback=0.0,
    trace=None, checks=None,
):  # fmt: skip
    """Plain-Python twin of :func:`search_one` for any ``alpha``, ``beta`` and ``fallback``: the same
    block bounds, buckets, visiting order, stopping rule, work counts and float32 block scoring,
    written without the scratch-array tricks (a dict of each term's entries, a sorted list for the
    top-k; the exact fallback as a float32 dense accumulator). Returns (keys int64[k], scores
    float32[k]), -1 / 0 padded, equal to the kernel bit for bit. ``trace`` (a list) gets what
    happened: ``"up front"`` or ``"midway"`` (fell back to exact search) or ``"bmp"``; ``checks`` (a
    list) gets (work spent, estimated work left, budget) at each fallback checkpoint."""
    trace = [] if trace is None else trace
    checks = [] if checks is None else checks
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

    def exact_top():
        acc_full = np.zeros(n_docs, np.float32)
        touched = set()
        for t, x in terms:
            for p in range(int(offsets[t]), int(offsets[t + 1])):
                d = int(docs[p])
                acc_full[d] = f32(acc_full[d] + f32(x * f32(impacts[p])))
                touched.add(d)
        top_k = TopKReference(k)
        for d in sorted(touched):
            if acc_full[d] > 0:
                top_k.push(acc_full[d], int(doc_order[d]) if len(doc_order) else d)
        return top_k.finish(scale)

    n_post = sum(int(offsets[t + 1] - offsets[t]) for t, _ in terms)
    exact_work = n_post + (n_post if n_post * 16 < n_docs else n_docs)
    nbk = max(16, min(N_BUCKETS, n_blocks))
    fixed = 3 * n_blocks + 2 * nbk
    fixed += sum(n_blocks if dense_row[t] >= 0 else int(bm_offsets[t + 1] - bm_offsets[t]) for t, _ in terms)
    fixed = (FIXED_HALVES * fixed) // 2
    budget = fallback * exact_work
    if fallback > 0 and fixed >= budget:
        trace.append("up front")
        return exact_top()
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
        inv = f32(nbk) / top
        rank = {b: nbk - 1 - min(nbk - 1, int(f32(ub[b] * inv))) for b in range(n_blocks) if ub[b] > 0}
        n_pos = len(rank)
        per_block = 2 * block_size + PROBE * len(terms) + POSTING * (n_post // max(n_pos, 1))
        step = max(1, exact_work // CHECKS)
        spent, check_at = fixed, fixed + step
        taken = 0  # blocks taken from the visiting order so far (the kernel's position oi)
        a = f32(f32(alpha) * SLACK)
        for r in range(nbk):
            edge = f32(f32(nbk - r) / inv)
            if heap.size == k and f32(edge * a) < heap.threshold:
                break
            for b in sorted(b for b, rb in rank.items() if rb == r):
                taken += 1
                if heap.size == k and f32(ub[b] * a) < heap.threshold:
                    continue
                if fallback > 0 and spent >= check_at:
                    last = r  # the last bucket whose edge can beat the threshold (a linear walk)
                    if heap.size == k:
                        while last + 1 < nbk and f32(f32(f32(nbk - last - 1) / inv) * a) >= heap.threshold:
                            last += 1
                    else:
                        last = nbk - 1
                    left = sum(1 for rb in rank.values() if rb <= last) - (taken - 1)
                    checks.append((spent, left * per_block, budget))
                    if left * per_block > budget:
                        trace.append("midway")
                        return exact_top()
                    check_at += step
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
                    spent += POSTING * int(p1 - p0)
                    for p in range(int(p0), int(p1)):
                        acc[docs[p] - lo] = f32(acc[docs[p] - lo] + f32(x * f32(impacts[p])))
                spent += 2 * (hi - lo) + PROBE * len(terms)
                for i in range(hi - lo):
                    if acc[i] > 0:
                        heap.push(acc[i], int(doc_order[lo + i]) if len(doc_order) else lo + i)
    trace.append("bmp")
    return heap.finish(scale)
