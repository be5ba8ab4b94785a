"""Rank-safe MaxScore (Turtle and Flood, 1995), processed in windows of doc numbers.

Query terms are sorted by their upper bound ``w * max impact``. Once the top-k heap is full with
k-th score ``thr``, the longest prefix of low-bound terms whose bounds sum below ``thr`` is
*non-essential*: a document matching only those cannot enter the top-k, so their posting lists are
never read. The *essential* lists are walked window by window (``WINDOW`` doc numbers at a time,
a sixteenth of the collection on one under 16 windows, at least ``MIN_WINDOW``,
Lucene's MaxScoreBulkScorer layout): their partial scores go into a small accumulator. The
documents whose partial score plus the non-essential bound can still reach ``thr`` are the
window's candidates; each non-essential term in turn (largest bound first) adds its impacts to
them through a galloping cursor that only moves forward, and candidates whose bound falls under
``thr`` drop out. A survivor is scored exactly from the forward index (its own terms, ascending term id: the same float additions, in the
same order, as exact search, so scores are bit-identical and ties fall the same way).
Between windows the threshold has risen, so more terms become non-essential.

**Fallback to exact search** (``fallback`` > 0, the method's default 1): when the query terms'
bounds are close to one another (long real queries, Zipf-heavy synthetic ones) few lists ever
become non-essential and MaxScore walks every posting *plus* its candidate bookkeeping and forward
scoring, several times exact search's cost (BENCHMARKS.md, issue 17). Work is counted in the unit of
:mod:`lsr.index.kernels.bmp` (array touches; exact search costs ``E = P + (P if 16 P < n_docs else
n_docs)`` for P postings of the query terms): an essential posting ``STEP`` (a loop step with a
compare and a window-accumulator add: measured about twice exact search's add), a window's
accumulator scan 1 per entry (a data-dependent branch each, unlike exact search's vectorised scan), a non-essential lookup ``SEEK``, a candidate scored from the
forward index ``STEP`` per non-zero + ``SEEK``. After each window, once ``CHECK_AFTER`` of the doc space is done, the work
still to come is projected at the rate of the last ``CHECK_AFTER`` of the doc space (pruning only
improves as the threshold rises, so the recent rate bounds what is left better than the average);
spent + projected over ``fallback x E`` switches to exact search, which starts over (the heap is
discarded) from the starting threshold: the same top-k and scores bit for bit (exact search adds in
the same order), so the method stays rank-safe, and a query costs at most about
``(1 + fallback) E`` instead of several E. ``fallback = 0`` never falls back.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from lsr.index.kernels import exact as exact_k
from lsr.index.kernels.topk import heap_finish, heap_push

WINDOW = 4096
MIN_WINDOW = 256  # on a small collection windows are n_docs / 16 (so the fallback checks early), not less
SEEK = 8  # a non-essential lookup (a gallop from the last position): a few cache misses, in postings
CHECK_AFTER = 1 / 64  # fallback checks: every this share of the doc space, projecting at its rate
STEP = 2  # an essential posting or a forward-index non-zero: a loop step with a compare, twice exact's add
SLACK = np.float32(1.0001)  # bounds are summed in another order than scores: allow float rounding


@njit(cache=True, nogil=True, inline="always")
def forward_score(fptr, fterms, fimp, d, qw):
    """sum over the terms of doc d, ascending term id, of qw[term] * impact (float32)."""
    s = np.float32(0)
    for p in range(np.uint64(fptr[d]), np.uint64(fptr[d + 1])):  # unsigned: see kernels.exact
        w = qw[fterms[p]]
        if w > 0:
            s += w * np.float32(fimp[p])
    return s


@njit(cache=True, nogil=True, inline="always")
def _seek(docs, p, e, target):
    """First position >= p in docs[p:e] (ascending) holding a doc >= target (galloping search)."""
    if p >= e or docs[p] >= target:
        return p
    step = 1
    lo = p
    while p + step < e and docs[p + step] < target:
        lo = p + step
        step *= 2
    hi = min(e, p + step)
    # docs[lo] < target; answer in (lo, hi]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if docs[mid] < target:
            lo = mid
        else:
            hi = mid
    return hi


@njit(cache=True, nogil=True)
def search_one(
    offsets,
    docs,
    impacts,
    scale,
    term_max,
    doc_order,
    fptr,
    fterms,
    fimp,
    n_docs,
    q_terms,
    q_weights,
    k,
    qw,
    acc,
    cx,
    cpart,
    hs,
    hd,
    out_d,
    out_s,
    mask,
    thr0,
    fallback,
    full_acc,
    stats,
):
    """MaxScore top-k of one query into out_d / out_s (-1 / 0 padding).

    Scratch: ``qw`` float32[n_terms] zeros (zero again on return), ``acc`` float32[WINDOW] zeros,
    ``cx`` int64[WINDOW], ``cpart`` float32[WINDOW]. A document whose ``mask`` entry (uint8 by
    internal doc number; empty: none masked) is 0 is never a candidate. ``thr0`` (raw score, >= 0):
    a starting threshold; a document scoring under it may be left out, and it prunes (non-essential
    lists, candidates) from the first window, before the heap is full. ``fallback`` (>= 0; 0:
    never) and ``full_acc`` (a zeroed float32[n_docs], left zeroed; may be empty when ``fallback``
    is 0): the fallback to exact search (module docs); ``stats[0]`` counts the queries that fell back;
    with 3+ entries, ``stats[1]`` adds the work this query took (the exact search's too when it fell
    back) and ``stats[2]`` exact search's estimated work (what
    :class:`lsr.index.methods.FallbackPolicy` weighs).
    """
    nq = q_terms.shape[0]
    reordered = doc_order.shape[0] > 0
    masked = mask.shape[0] > 0
    ubs = np.empty(nq, np.float32)
    for i in range(nq):
        w = np.float32(q_weights[i])
        qw[q_terms[i]] = w
        ubs[i] = w * (term_max[q_terms[i]] / scale)
    order = np.argsort(ubs)
    prefix = np.zeros(nq + 1, np.float32)
    for r in range(nq):
        prefix[r + 1] = prefix[r] + ubs[order[r]]
    pos = np.empty(nq, np.int64)
    for i in range(nq):
        pos[i] = offsets[q_terms[i]]
    size = 0
    thr = thr0  # > 0 once pruning may start: a starting threshold, or the full heap's k-th score
    n_ne = 0
    for r in range(nq):  # zero-weight terms never matter
        if ubs[order[r]] > 0:
            break
        n_ne += 1
    while thr > 0 and n_ne < nq and prefix[n_ne + 1] * SLACK < thr:  # a starting threshold prunes now
        n_ne += 1
    p_all = 0
    for i in range(nq):
        p_all += offsets[q_terms[i] + 1] - offsets[q_terms[i]]
    exact_work = p_all + (p_all if p_all * 16 < n_docs else n_docs)
    budget = fallback * exact_work
    counted = stats.shape[0] > 2
    if counted:
        stats[2] += exact_work
    win = min(WINDOW, max(MIN_WINDOW, n_docs // 16))  # 16 windows at least, so the first check comes early
    span = max(win, int(CHECK_AFTER * n_docs))  # doc numbers per rate measurement
    spent = 0
    mark_lo = 0
    mark_spent = 0
    lo = 0
    while lo < n_docs and n_ne < nq:
        hi = min(n_docs, lo + win)
        # essential lists, term at a time, into the window's accumulator
        for r in range(n_ne, nq):
            i = order[r]
            t = q_terms[i]
            w = np.float32(q_weights[i])
            p = pos[i]
            e = offsets[t + 1]
            p0 = p
            while p < e and docs[p] < hi:
                acc[docs[p] - lo] += w * np.float32(impacts[p])
                p += 1
            spent += STEP * (p - p0)
            pos[i] = p
        # candidates: documents whose partial score plus the non-essential bound can reach thr
        bound = prefix[n_ne]
        full = thr > 0
        nc = 0
        spent += hi - lo
        for x in range(hi - lo):
            part = acc[x]
            if part == 0:
                continue
            acc[x] = 0
            if (full and (part + bound) * SLACK < thr) or (masked and mask[lo + x] == 0):
                continue
            cx[nc] = x
            cpart[nc] = part
            nc += 1
        if full:
            # non-essential terms, largest bound first, each over all candidates in doc order (its
            # cursor gallops forward through the list); candidates that cannot make it drop out
            rem = bound
            for r in range(n_ne - 1, -1, -1):
                if nc == 0:
                    break
                i = order[r]
                t = q_terms[i]
                w = np.float32(q_weights[i])
                rem -= ubs[i]
                p = pos[i]
                e = offsets[t + 1]
                spent += SEEK * nc
                for c in range(nc):
                    target = lo + cx[c]
                    p = _seek(docs, p, e, target)
                    if p < e and docs[p] == target:
                        cpart[c] += w * np.float32(impacts[p])
                pos[i] = p
                m = 0
                for c in range(nc):
                    if (cpart[c] + rem) * SLACK >= thr:
                        cx[m] = cx[c]
                        cpart[m] = cpart[c]
                        m += 1
                nc = m
        for c in range(nc):
            # after the non-essential pass cpart is the whole score (summed in another order)
            if thr > 0 and (cpart[c] + (0 if full else bound)) * SLACK < thr:
                continue
            d = lo + cx[c]
            spent += SEEK + STEP * (fptr[d + 1] - fptr[d])
            s = forward_score(fptr, fterms, fimp, d, qw)  # the exact score, in exact search's order
            if s > 0 and s >= thr:
                key = np.int64(doc_order[d]) if reordered else np.int64(d)
                size = heap_push(hs, hd, size, k, s, key)
                if size == k:
                    thr = max(hs[0], thr0)
        if thr > 0:
            while n_ne < nq and prefix[n_ne + 1] * SLACK < thr:
                n_ne += 1
        lo = hi
        if fallback > 0 and lo < n_docs and lo - mark_lo >= span:
            # project the rest at the rate of the last span (see the module docs)
            left = (spent - mark_spent) / (lo - mark_lo) * (n_docs - lo) if n_ne < nq else 0.0
            if spent + left > budget:
                for i in range(nq):
                    qw[q_terms[i]] = 0
                stats[0] += 1
                if counted:
                    stats[1] += spent + exact_work
                exact_k.search_one(
                    offsets, docs, impacts, scale, doc_order, q_terms, q_weights, k, full_acc, hs, hd, out_d,
                    out_s, mask, thr0, np.empty(0, np.int64),
                )  # fmt: skip
                return
            mark_lo, mark_spent = lo, spent
    for i in range(nq):
        qw[q_terms[i]] = 0
    if counted:
        stats[1] += spent
    heap_finish(hs, hd, size, scale, out_d, out_s)


@njit(cache=True, nogil=True)
def search_range(
    offsets, docs, impacts, scale, term_max, doc_order, fptr, fterms, fimp, n_docs,
    q_indptr, q_terms, q_weights, k, q_lo, q_hi, out_d, out_s, mask, thr0, fallback, full_acc, stats,
):  # fmt: skip
    """MaxScore for queries q_lo..q_hi-1 of a CSR batch into rows of out_d / out_s; ``thr0``
    float32[nq] starting thresholds or empty; ``fallback``, ``full_acc``, ``stats`` as in
    :func:`search_one`."""
    has_thr = thr0.shape[0] > 0
    qw = np.zeros(term_max.shape[0], np.float32)
    acc = np.zeros(WINDOW, np.float32)
    cx = np.empty(WINDOW, np.int64)
    cpart = np.empty(WINDOW, np.float32)
    hs = np.empty(k, dtype=np.float32)
    hd = np.empty(k, dtype=np.int64)
    for q in range(q_lo, q_hi):
        a, b = q_indptr[q], q_indptr[q + 1]
        t0 = np.float32(thr0[q]) if has_thr else np.float32(0)
        search_one(
            offsets, docs, impacts, scale, term_max, doc_order, fptr, fterms, fimp, n_docs,
            q_terms[a:b], q_weights[a:b], k, qw, acc, cx, cpart, hs, hd, out_d[q], out_s[q], mask,
            t0, fallback, full_acc, stats,
        )  # fmt: skip


@njit(cache=True, nogil=True)
def search_serial(
    offsets, docs, impacts, scale, term_max, doc_order, fptr, fterms, fimp, n_docs,
    q_indptr, q_terms, q_weights, k, mask, thr0, fallback, full_acc, stats,
):  # fmt: skip
    """MaxScore for every query of a CSR batch: (docs int64[nq, k], scores float32[nq, k]);
    ``mask`` uint8[n_docs] (0: never returned) or empty; ``thr0`` float32[nq] starting thresholds
    (raw scores) or empty; ``fallback`` and ``full_acc`` (a zeroed float32[n_docs]) as in
    :func:`search_one`; ``stats[0]`` (int64[1]) is raised by the number of queries that fell back
    to exact search."""
    nq = q_indptr.shape[0] - 1
    out_d = np.full((nq, k), -1, dtype=np.int64)
    out_s = np.zeros((nq, k), dtype=np.float32)
    # np.int64(0), not 0: a literal would compile a second search_range beside the one that
    # batch threads call (lsr.index.batch)
    search_range(
        offsets, docs, impacts, scale, term_max, doc_order, fptr, fterms, fimp, n_docs,
        q_indptr, q_terms, q_weights, k, np.int64(0), nq, out_d, out_s, mask, thr0, fallback, full_acc, stats,
    )  # fmt: skip
    return out_d, out_s


def search_reference(fptr, fterms, fimp, scale, doc_order, q_terms, q_weights, k, n_docs, mask=None):
    """Plain-Python twin of :func:`search_one`: every document scored from the forward index in
    float32, its terms ascending (the additions MaxScore gives its survivors and exact search gives
    every document), the k best by (score desc, key asc) with keys ``doc_order[d]`` when reordered.
    Returns (keys int64[k], scores float32[k]), -1 / 0 padded: equal to the kernel, bit for bit.
    Documents whose ``mask`` entry is 0 are left out (the twin of every safe kernel's mask)."""
    from lsr.index.kernels.topk import TopKReference

    qw = {int(t): np.float32(w) for t, w in zip(q_terms, q_weights, strict=True)}
    heap = TopKReference(k)
    for d in range(n_docs):
        if mask is not None and len(mask) and not mask[d]:
            continue
        s = np.float32(0)
        for p in range(int(fptr[d]), int(fptr[d + 1])):
            w = qw.get(int(fterms[p]), np.float32(0))
            if w > 0:
                s = np.float32(s + np.float32(w * np.float32(fimp[p])))
        if s > 0:
            heap.push(s, int(doc_order[d]) if len(doc_order) else d)
    return heap.finish(scale)
