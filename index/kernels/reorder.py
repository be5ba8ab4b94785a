"""Document reordering by recursive graph bisection (BP: Dhulipala et al., KDD 2016; Mackenzie et
al., "Tradeoff options for bipartite graph partitioning", 2021).

Documents that share terms are moved next to each other, so posting lists get dense runs and the
per-block maxima of Block-Max Pruning get tight. The collection (a permutation of doc numbers) is
split in halves; for a few iterations every document gets a *move gain* (how much the log-gap cost
of its terms drops if it switched halves), both halves are sorted by gain and pairs with a positive
summed gain swap sides. Then each half is split again, down to segments of ``leaf`` documents.
All segments of one level are independent and run in parallel.

The cost of term t in a split of sizes (nL, nR) with degrees (dL, dR) is
``dL * log2(nL / (dL + 1)) + dR * log2(nR / (dR + 1))``: the bits of its gaps in each half.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


def top_terms(indptr, terms, weights, m, threads=1):
    """Forward CSR keeping the ``m`` heaviest terms of each document (ascending term id within a
    document; ties: the earlier position): (indptr int64, terms int32, weights). BP orders by
    these; Seismic clusters by them. ``threads``: documents are cut into ranges that up to that
    many threads fill (:func:`lsr.index.batch.run_ranges`)."""
    from lsr.index.batch import run_ranges

    n = indptr.shape[0] - 1
    out_ptr = np.zeros(n + 1, np.int64)
    np.cumsum(np.minimum(np.diff(indptr), m), out=out_ptr[1:])
    out = np.empty(out_ptr[n], np.int32)
    out_w = np.empty(out_ptr[n], weights.dtype)
    run_ranges(
        n,
        threads,
        lambda _c, lo, hi: _top_terms_range(indptr, terms, weights, m, lo, hi, out_ptr, out, out_w),
    )
    return out_ptr, out, out_w


@njit(cache=True, nogil=True)
def _top_terms_range(indptr, terms, weights, m, lo, hi, out_ptr, out, out_w):
    """:func:`top_terms` for documents lo..hi-1, into their places of the outputs: a document's
    m-th largest weight ``v`` by a partial sort (linear time), then in one pass in position order
    every weight above ``v`` and the earliest ones equal to it, m in all."""
    for d in range(lo, hi):
        a, b = indptr[d], indptr[d + 1]
        o = out_ptr[d]
        if b - a <= m:
            for p in range(a, b):
                out[o + p - a] = terms[p]
                out_w[o + p - a] = weights[p]
            continue
        n = b - a
        v = np.partition(weights[a:b], n - m)[n - m]
        above = 0
        for p in range(a, b):
            if weights[p] > v:
                above += 1
        ties = m - above  # equal to v: the earliest ones are kept
        j = o
        for p in range(a, b):
            w = weights[p]
            if w > v or (w == v and ties > 0):
                if w == v:
                    ties -= 1
                out[j] = terms[p]
                out_w[j] = w
                j += 1


@njit(cache=True, nogil=True)
def _cost(a, b, lg, lnl, lnr):
    return a * (lnl - lg[a + 1]) + b * (lnr - lg[b + 1])


@njit(cache=True, nogil=True)
def _bisect(perm, s, e, fptr, fterms, deg_l, deg_r, lg, iterations):
    """Split perm[s:e] into two halves of related documents (in place)."""
    mid = s + (e - s) // 2
    n_l = mid - s
    n_r = e - mid
    lnl = lg[n_l]
    lnr = lg[n_r]
    gains = np.empty(e - s, np.float64)
    for _it in range(iterations):
        for i in range(s, e):
            d = perm[i]
            for p in range(fptr[d], fptr[d + 1]):
                if i < mid:
                    deg_l[fterms[p]] += 1
                else:
                    deg_r[fterms[p]] += 1
        for i in range(s, e):
            d = perm[i]
            g = 0.0
            for p in range(fptr[d], fptr[d + 1]):
                t = fterms[p]
                a = deg_l[t]
                b = deg_r[t]
                if i < mid:
                    g += _cost(a, b, lg, lnl, lnr) - _cost(a - 1, b + 1, lg, lnl, lnr)
                else:
                    g += _cost(a, b, lg, lnl, lnr) - _cost(a + 1, b - 1, lg, lnl, lnr)
            gains[i - s] = g
        for i in range(s, e):  # degrees back to zero for the next iteration / segment
            d = perm[i]
            for p in range(fptr[d], fptr[d + 1]):
                deg_l[fterms[p]] = 0
                deg_r[fterms[p]] = 0
        ol = np.argsort(-gains[:n_l], kind="mergesort")
        orr = np.argsort(-gains[n_l:], kind="mergesort")
        left = perm[s:mid].copy()
        right = perm[mid:e].copy()
        swaps = 0
        for j in range(min(n_l, n_r)):
            if gains[ol[j]] + gains[n_l + orr[j]] <= 0:
                break
            perm[s + ol[j]] = right[orr[j]]
            perm[mid + orr[j]] = left[ol[j]]
            swaps += 1
        if swaps == 0:
            break


@njit(cache=True, nogil=True, parallel=True)
def _level(perm, starts, ends, fptr, fterms, n_terms, lg, iterations, n_chunks):
    """Bisect every segment perm[starts[i]:ends[i]], ``n_chunks`` groups of segments in parallel."""
    n_seg = starts.shape[0]
    per = (n_seg + n_chunks - 1) // n_chunks
    for c in prange(n_chunks):
        deg_l = np.zeros(n_terms, np.int64)
        deg_r = np.zeros(n_terms, np.int64)
        for i in range(c * per, min(n_seg, (c + 1) * per)):
            _bisect(perm, starts[i], ends[i], fptr, fterms, deg_l, deg_r, lg, iterations)


def graph_bisection(
    fptr: np.ndarray,
    fterms: np.ndarray,
    n_terms: int,
    leaf: int = 16,
    iterations: int = 8,
    threads: int = 1,
    progress=None,
) -> np.ndarray:
    """An order of the documents of forward CSR (fptr, fterms): ``order[new] = old`` (uint32).

    ``leaf`` stops the recursion at segments that small; ``iterations`` caps the swap rounds per
    split. Costs about ``iterations x postings`` operations per level (log2(n / leaf) levels).
    ``progress(level, n_levels)`` is called after each level.
    """
    n = len(fptr) - 1
    perm = np.arange(n, dtype=np.int64)
    lg = np.zeros(n + 2, np.float64)
    lg[1:] = np.log2(np.arange(1, n + 2, dtype=np.float64))
    n_levels = max(0, int(np.ceil(np.log2(max(1, n) / max(1, leaf)))))
    bounds = np.array([0, n], np.int64)
    for level in range(n_levels):
        starts, ends = bounds[:-1], bounds[1:]
        work = (ends - starts) >= 2 * leaf  # smaller segments are done
        if not work.any():
            break
        s, e = starts[work].copy(), ends[work].copy()
        _level(perm, s, e, fptr, fterms, n_terms, lg, iterations, max(1, min(threads, len(s))))
        bounds = np.unique(np.concatenate([bounds, s + (e - s) // 2]))
        if progress is not None:
            progress(level + 1, n_levels)
    return perm.astype(np.uint32)


# -- plain-Python twins (tests compare the kernels with them on random inputs) -------------------
def top_terms_reference(indptr, terms, weights, m):
    """Twin of :func:`top_terms`: each document's ``m`` heaviest terms (ties: earlier position),
    kept in their original (ascending term) order."""
    out_ptr, out_t, out_w = [0], [], []
    for d in range(len(indptr) - 1):
        a, b = int(indptr[d]), int(indptr[d + 1])
        pos = sorted(sorted(range(a, b), key=lambda p: (-float(weights[p]), p))[:m])
        out_t += [int(terms[p]) for p in pos]
        out_w += [weights[p] for p in pos]
        out_ptr.append(len(out_t))
    return np.array(out_ptr, np.int64), np.array(out_t, np.int32), np.array(out_w, weights.dtype)


def graph_bisection_reference(fptr, fterms, leaf=16, iterations=8):
    """Twin of :func:`graph_bisection` in plain Python, one segment at a time: per split, the
    degrees of every term in each half, each document's move gain (float64, its terms in order),
    both halves sorted by gain (stable), pairs with a positive summed gain swapped; segments
    split until under ``2 * leaf`` documents."""
    n = len(fptr) - 1
    perm = list(range(n))
    lg = [0.0] + [float(x) for x in np.log2(np.arange(1, n + 2, dtype=np.float64))]

    def cost(a, b, lnl, lnr):
        return a * (lnl - lg[a + 1]) + b * (lnr - lg[b + 1])

    def bisect(s, e):
        mid = s + (e - s) // 2
        n_l, n_r = mid - s, e - mid
        lnl, lnr = lg[n_l], lg[n_r]
        for _ in range(iterations):
            deg_l: dict[int, int] = {}
            deg_r: dict[int, int] = {}
            for i in range(s, e):
                side = deg_l if i < mid else deg_r
                for p in range(int(fptr[perm[i]]), int(fptr[perm[i] + 1])):
                    side[int(fterms[p])] = side.get(int(fterms[p]), 0) + 1
            gains = []
            for i in range(s, e):
                g = 0.0
                for p in range(int(fptr[perm[i]]), int(fptr[perm[i] + 1])):
                    t = int(fterms[p])
                    a, b = deg_l.get(t, 0), deg_r.get(t, 0)
                    moved = (a - 1, b + 1) if i < mid else (a + 1, b - 1)
                    g += cost(a, b, lnl, lnr) - cost(*moved, lnl, lnr)
                gains.append(g)
            ol = sorted(range(n_l), key=lambda j: -gains[j])
            orr = sorted(range(n_r), key=lambda j: -gains[n_l + j])
            left, right = perm[s:mid], perm[mid:e]
            swaps = 0
            for j in range(min(n_l, n_r)):
                if gains[ol[j]] + gains[n_l + orr[j]] <= 0:
                    break
                perm[s + ol[j]], perm[mid + orr[j]] = right[orr[j]], left[ol[j]]
                swaps += 1
            if swaps == 0:
                break

    n_levels = max(0, int(np.ceil(np.log2(max(1, n) / max(1, leaf)))))
    bounds = [0, n]
    for _level_no in range(n_levels):
        segs = [(s, e) for s, e in zip(bounds[:-1], bounds[1:], strict=True) if e - s >= 2 * leaf]
        if not segs:
            break
        for s, e in segs:
            bisect(s, e)
        bounds = sorted(set(bounds) | {s + (e - s) // 2 for s, e in segs})
    return np.array(perm, np.uint32)
