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


@njit(cache=True, nogil=True)
def top_terms(indptr, terms, weights, m):
    """Forward CSR keeping the ``m`` heaviest terms of each document (ascending term id within a
    document): (indptr int64, terms int32, weights). BP orders by these; Seismic's summaries are
    built from them."""
    n = indptr.shape[0] - 1
    out_ptr = np.zeros(n + 1, np.int64)
    for d in range(n):
        out_ptr[d + 1] = out_ptr[d] + min(m, indptr[d + 1] - indptr[d])
    out = np.empty(out_ptr[n], np.int32)
    out_w = np.empty(out_ptr[n], weights.dtype)
    for d in range(n):
        a, b = indptr[d], indptr[d + 1]
        o = out_ptr[d]
        if b - a <= m:
            for p in range(a, b):
                out[o + p - a] = terms[p]
                out_w[o + p - a] = weights[p]
        else:
            order = np.sort(np.argsort(-weights[a:b].astype(np.float64), kind="mergesort")[:m])
            for i in range(m):
                out[o + i] = terms[a + order[i]]
                out_w[o + i] = weights[a + order[i]]
    return out_ptr, out, out_w


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
