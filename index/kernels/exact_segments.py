"""Exact search over several segments of a living index in one call.

The same work as searching the segments one after another from Python (``lsr.index.segments``):
per query, segments in decreasing order of their bound ``sum(w * term_max)``, each searched by
:func:`lsr.index.kernels.exact.search_one` from the k-th score held so far (lowered by a relative
``margin``, so a document tying it still reaches the merge), a segment whose bound (raised by the
margin) is under that score skipped, and each segment's top-k merged into the running top-k by
(score desc, segment position, doc) with :func:`lsr.index.kernels.topk.merge_runs`. The results are
those of the per-segment path, bit for bit; what goes is the Python work around each segment's
kernel (its threshold, its plan, the method's dispatch, the merge call: about 30-40 us a segment,
a tenth of a 10-segment search on 1M documents).

The arrays come as :class:`numba.typed.List` s with one entry per segment, all of one type.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from lsr.index.kernels.exact import search_one
from lsr.index.kernels.topk import merge_runs


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
    ``acc``: a zeroed float32 scratch of at least the largest segment's documents (zero again on
    return)."""
    n_seg = scales.shape[0]
    nq_terms = 0
    for q in range(q_lo, q_hi):
        nq_terms = max(nq_terms, q_indptr[q + 1] - q_indptr[q])
    hs = np.empty(k, np.float32)
    hd = np.empty(k, np.int64)
    ub = np.empty(n_seg, np.float64)
    tm = np.empty(nq_terms, q_terms.dtype)
    wt = np.empty(nq_terms, q_weights.dtype)
    no_sel = np.empty(0, np.int64)
    for q in range(q_lo, q_hi):
        a, b = q_indptr[q], q_indptr[q + 1]
        for s in range(n_seg):  # the best possible score of each segment for this query
            tmax = tmax_l[s]
            nt = tmax.shape[0]
            u = 0.0
            for i in range(a, b):
                if q_terms[i] < nt:
                    u += np.float64(tmax[q_terms[i]]) * np.float64(q_weights[i])
            ub[s] = u
        order = np.argsort(-ub, kind="mergesort")  # stable: ties keep the segments' order
        for oi in range(n_seg):
            s = order[oi]
            thr = np.float32(0)
            kth = best_s[q, k - 1]
            if kth > -np.inf:
                if ub[s] * (1 + margin) < kth:
                    continue  # no document of this segment can reach the top k
                thr = np.float32(max(np.float64(kth) / np.float64(scales[s]) * (1 - margin), 0.0))
            offsets = offsets_l[s]
            nt = offsets.shape[0] - 1
            n = 0
            for i in range(a, b):  # terms newer than the segment match nothing in it
                if q_terms[i] < nt:
                    tm[n] = q_terms[i]
                    wt[n] = q_weights[i]
                    n += 1
            kk = min(k, n_docs_a[s])
            out_d = np.empty((1, kk), np.int64)
            out_s = np.empty((1, kk), np.float32)
            search_one(
                offsets, docs_l[s], impacts_l[s], scales[s], order_l[s], tm[:n], wt[:n], kk, acc[: n_docs_a[s]],
                hs, hd, out_d[0], out_s[0], mask_l[s], thr, no_sel,
            )  # fmt: skip
            merge_runs(
                best_d[q : q + 1], best_s[q : q + 1], best_o[q : q + 1], out_d, out_s, nums[s], pos_a[s]
            )
