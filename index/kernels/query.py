"""Query preparation in one compiled pass: the checks and the canonical form every search needs.

``Index.search`` on one query used to spend more time in numpy calls around the kernel (a dozen
reductions, sorts and copies at about a microsecond each) than a small collection's search takes.
These two kernels do the same work in one call each; their plain-numpy twins (``*_reference``)
are what the tests compare them with on random inputs.
"""

from __future__ import annotations

import numpy as np
from numba import njit

OK = 0  # canonical: terms ascending and unique within each query, weights > 0
NOT_CANONICAL = 1  # valid, but needs sorting / merging duplicates / dropping zero weights
BAD_TERM = 2  # a term id outside 0 .. n_terms - 1
BAD_WEIGHT = 3  # a weight that is NaN, infinite or negative


@njit(cache=True, nogil=True)
def check_queries(indptr, terms, weights, n_terms):
    """One pass over CSR queries: :data:`BAD_TERM` / :data:`BAD_WEIGHT` for the first problem
    found (terms are checked over the whole batch first), else :data:`NOT_CANONICAL` or :data:`OK`."""
    for i in range(terms.shape[0]):
        if terms[i] < 0 or terms[i] >= n_terms:
            return BAD_TERM
    canonical = True
    for i in range(weights.shape[0]):
        w = weights[i]
        if not (w >= 0 and w < np.inf):  # NaN fails both
            return BAD_WEIGHT
        if w == 0:
            canonical = False
    if canonical:
        for q in range(indptr.shape[0] - 1):
            for i in range(indptr[q] + 1, indptr[q + 1]):
                if terms[i] <= terms[i - 1]:
                    canonical = False
    return OK if canonical else NOT_CANONICAL


def check_queries_reference(indptr, terms, weights, n_terms):
    """numpy twin of :func:`check_queries`."""
    terms = np.asarray(terms, np.int64)
    weights = np.asarray(weights, np.float64)
    if len(terms) and (terms.min() < 0 or terms.max() >= n_terms):
        return BAD_TERM
    if len(weights) and not (np.all(np.isfinite(weights)) and weights.min() >= 0):
        return BAD_WEIGHT
    row = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
    same = row[1:] == row[:-1]
    ascending = bool(np.all(terms[1:][same] > terms[:-1][same]))
    return OK if ascending and (len(weights) == 0 or weights.min() > 0) else NOT_CANONICAL


@njit(cache=True, nogil=True)
def dict_query(ids, weights):
    """One ``{token: weight}`` query's term ids (int64, -1 for a token outside the vocabulary) and
    float64 weights, in the dict's order, as (ok, term ids int32 ascending, float32 weights,
    unknown-token count). Unknown tokens and weights that are 0 in float32 are dropped. ``ok`` is
    False when a weight is NaN, infinite or negative, or a term id repeats (the caller then takes
    the slow path that names the problem or merges the duplicates)."""
    n = ids.shape[0]
    unknown = 0
    m = 0
    for i in range(n):
        w = weights[i]
        if not (w >= 0 and w < np.inf):
            return False, np.empty(0, np.int32), np.empty(0, np.float32), 0
        if ids[i] < 0:
            unknown += 1
        elif np.float32(w) > 0:
            m += 1
    t = np.empty(m, np.int64)
    x = np.empty(m, np.float32)
    j = 0
    for i in range(n):
        if ids[i] >= 0 and np.float32(weights[i]) > 0:
            t[j] = ids[i]
            x[j] = np.float32(weights[i])
            j += 1
    order = np.argsort(t)
    out_t = np.empty(m, np.int32)
    out_w = np.empty(m, np.float32)
    for j in range(m):
        out_t[j] = t[order[j]]
        out_w[j] = x[order[j]]
        if j > 0 and out_t[j] == out_t[j - 1]:
            return False, np.empty(0, np.int32), np.empty(0, np.float32), 0
    return True, out_t, out_w, unknown


def dict_query_reference(ids, weights):
    """numpy twin of :func:`dict_query`."""
    ids = np.asarray(ids, np.int64)
    weights = np.asarray(weights, np.float64)
    if len(weights) and not (np.all(np.isfinite(weights)) and weights.min() >= 0):
        return False, np.empty(0, np.int32), np.empty(0, np.float32), 0
    w32 = weights.astype(np.float32)
    keep = (ids >= 0) & (w32 > 0)
    t, x = ids[keep], w32[keep]
    o = np.argsort(t, kind="stable")
    t, x = t[o], x[o]
    if len(t) > 1 and np.any(t[1:] == t[:-1]):
        return False, np.empty(0, np.int32), np.empty(0, np.float32), 0
    return True, t.astype(np.int32), x, int(np.count_nonzero(ids < 0))
