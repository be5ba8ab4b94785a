"""A bounded top-k heap for Numba kernels, ordered by (score desc, doc asc).

The heap keeps the k best (score, doc) pairs seen so far with the *worst* at the root: a pair is
worse when its score is lower, or equal with a larger doc number (ties go to the smaller doc).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True, inline="always")
def worse(s1, d1, s2, d2):
    """True when (s1, d1) ranks below (s2, d2)."""
    return s1 < s2 or (s1 == s2 and d1 > d2)


@njit(cache=True, nogil=True)
def _sift_down(hs, hd, size, i):
    while True:
        left = 2 * i + 1
        if left >= size:
            return
        c = left
        right = left + 1
        if right < size and worse(hs[right], hd[right], hs[left], hd[left]):
            c = right
        if worse(hs[c], hd[c], hs[i], hd[i]):
            hs[i], hs[c] = hs[c], hs[i]
            hd[i], hd[c] = hd[c], hd[i]
            i = c
        else:
            return


@njit(cache=True, nogil=True)
def heap_push(hs, hd, size, k, s, d):
    """Offer (s, d) to a heap holding ``size`` of at most ``k`` items; returns the new size."""
    if size < k:
        i = size
        hs[i] = s
        hd[i] = d
        size += 1
        while i > 0:  # sift up
            p = (i - 1) // 2
            if worse(hs[i], hd[i], hs[p], hd[p]):
                hs[i], hs[p] = hs[p], hs[i]
                hd[i], hd[p] = hd[p], hd[i]
                i = p
            else:
                break
        return size
    if worse(hs[0], hd[0], s, d):
        hs[0] = s
        hd[0] = d
        _sift_down(hs, hd, size, 0)
    return size


@njit(cache=True, nogil=True)
def heap_drain(hs, hd, size, out_s, out_d):
    """Write the heap's items best-first into out_s/out_d[:size] (the heap is consumed)."""
    while size > 0:
        size -= 1
        out_s[size] = hs[0]
        out_d[size] = hd[0]
        hs[0] = hs[size]
        hd[0] = hd[size]
        _sift_down(hs, hd, size, 0)


@njit(cache=True, nogil=True)
def heap_finish(hs, hd, size, scale, out_d, out_s):
    """Drain the heap best-first into out_d / out_s, multiply the scores by ``scale`` (the
    quantization step) and pad the rest of the row with -1 / 0."""
    heap_drain(hs, hd, size, out_s, out_d)
    for i in range(size):
        out_s[i] = out_s[i] * scale
    for i in range(size, out_d.shape[0]):
        out_d[i] = -1
        out_s[i] = 0


@njit(cache=True, nogil=True)
def merge_row(best_d, best_s, best_o, q, run_h, run_s, run_o, n, md, ms, mo):
    """Merge a run of ``n`` (handle, score, order key) triples, sorted by (score desc, key asc),
    into row ``q`` of the running top-k (``best_*``: see :func:`merge_runs`), in place; ``md`` /
    ``ms`` / ``mo``: scratch of the row's length. A two-pointer merge: O(k), no sort."""
    k = best_d.shape[1]
    i = 0
    j = 0
    for r in range(k):
        take_new = False
        if j < n:
            if i >= k or best_d[q, i] < 0:
                take_new = True
            elif run_s[j] > best_s[q, i] or (run_s[j] == best_s[q, i] and run_o[j] < best_o[q, i]):
                take_new = True
        if take_new:
            md[r] = run_h[j]
            ms[r] = run_s[j]
            mo[r] = run_o[j]
            j += 1
        elif i < k and best_d[q, i] >= 0:
            md[r] = best_d[q, i]
            ms[r] = best_s[q, i]
            mo[r] = best_o[q, i]
            i += 1
        else:
            md[r] = -1
            ms[r] = -np.inf
            mo[r] = np.iinfo(np.int64).max
    best_d[q, :] = md
    best_s[q, :] = ms
    best_o[q, :] = mo


@njit(cache=True, nogil=True)
def merge_runs(best_d, best_s, best_o, d, s, num, pos):
    """Merge one segment's top-k rows into the running top-k over segments, in place.

    ``best_d`` (document handles, -1 padding), ``best_s`` (scores, -inf padding), ``best_o`` (order
    keys: segment position << 32 | doc number, int64 max padding): int64/float32/int64 [nq, k],
    each row sorted by (score desc, key asc). ``d`` / ``s`` [nq, kk]: the segment's build-order doc
    numbers (-1 padding) and scores, each row sorted by (score desc, doc asc), as every kernel
    returns them; ``num`` the segment's number (handles are num << 32 | doc) and ``pos`` its
    position in the generation (the tie order). A two-pointer merge per row (:func:`merge_row`)."""
    nq, k = best_d.shape
    kk = d.shape[1]
    md = np.empty(k, np.int64)
    ms = np.empty(k, np.float32)
    mo = np.empty(k, np.int64)
    run_h = np.empty(kk, np.int64)
    run_o = np.empty(kk, np.int64)
    for q in range(nq):
        n = 0
        while n < kk and d[q, n] >= 0:
            run_h[n] = (np.int64(num) << 32) | d[q, n]
            run_o[n] = (np.int64(pos) << 32) | d[q, n]
            n += 1
        merge_row(best_d, best_s, best_o, q, run_h, s[q], run_o, n, md, ms, mo)


def merge_runs_reference(best_d, best_s, best_o, d, s, num, pos):
    """numpy twin of :func:`merge_runs` (concatenate, lexsort by (score desc, key asc), cut to k):
    returns the new (best_d, best_s, best_o)."""
    k = best_d.shape[1]
    valid = d >= 0
    big = np.iinfo(np.int64).max
    cat_d = np.concatenate([best_d, np.where(valid, (np.int64(num) << 32) | np.maximum(d, 0), -1)], 1)
    cat_s = np.concatenate([best_s, np.where(valid, s, -np.inf).astype(np.float32)], 1)
    cat_o = np.concatenate([best_o, np.where(valid, (np.int64(pos) << 32) | np.maximum(d, 0), big)], 1)
    order = np.lexsort((cat_o, -cat_s), axis=-1)[:, :k]
    return tuple(np.take_along_axis(a, order, axis=1) for a in (cat_d, cat_s, cat_o))


def topk_reference(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Plain numpy: the k best positive entries of ``scores`` by (score desc, index asc)."""
    cand = np.flatnonzero(scores > 0)
    order = np.lexsort((cand, -scores[cand]))[:k]
    return cand[order], scores[cand[order]]


class TopKReference:
    """Plain-Python twin of the heap (:func:`heap_push` / :func:`heap_finish`): keeps the ``k`` best
    (score, key) pairs by score descending, then key ascending. For the kernels' reference twins."""

    def __init__(self, k: int) -> None:
        self.k = k
        self.items: list[tuple[np.float32, int]] = []

    @property
    def size(self) -> int:
        return len(self.items)

    @property
    def threshold(self) -> np.float32:
        """The k-th best score once k items are kept, else 0 (what the kernels call ``thr``)."""
        return min(s for s, _ in self.items) if len(self.items) == self.k else np.float32(0)

    def push(self, score: np.float32, key: int) -> None:
        self.items.append((np.float32(score), int(key)))
        if len(self.items) > self.k:
            self.items.sort(key=lambda it: (-float(it[0]), it[1]))
            self.items.pop()

    def finish(self, scale: np.float32) -> tuple[np.ndarray, np.ndarray]:
        """(keys int64[k], scores float32[k] x scale) best first, padded with -1 / 0."""
        best = sorted(self.items, key=lambda it: (-float(it[0]), it[1]))
        keys = np.full(self.k, -1, np.int64)
        scores = np.zeros(self.k, np.float32)
        for i, (s, d) in enumerate(best):
            keys[i] = d
            scores[i] = np.float32(s) * np.float32(scale)
        return keys, scores
