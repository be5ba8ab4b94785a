"""Transposing between the inverted index (term -> docs) and the forward index (doc -> terms).

Both are CSR layouts: ``offsets`` (int64, one more than rows), ``cols`` (column numbers, ascending
within each row) and ``vals``. A transpose is two passes (count, then place) and keeps columns
ascending in every output row because rows are visited in order.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def transpose(offsets, cols, vals, n_cols, row_map):
    """CSR (rows x n_cols) -> CSR (n_cols x rows), rows renumbered by ``row_map``.

    ``row_map[r]`` is the new number of row r (an empty array means "unchanged"); output rows keep
    their entries sorted by the new row number. Returns (offsets int64, cols uint32, vals).
    """
    n_rows = offsets.shape[0] - 1
    nnz = offsets[n_rows]
    counts = np.zeros(n_cols + 1, np.int64)
    for p in range(nnz):
        counts[cols[p] + 1] += 1
    for c in range(n_cols):
        counts[c + 1] += counts[c]
    out_offsets = counts.copy()
    fill = counts[:n_cols].copy()
    out_cols = np.empty(nnz, np.uint32)
    out_vals = np.empty(nnz, vals.dtype)
    # visit rows in the order of their new numbers, so each output row comes out sorted
    inv = np.empty(n_rows, np.int64)
    for r in range(n_rows):
        inv[row_map[r] if row_map.shape[0] > 0 else r] = r
    for nr in range(n_rows):
        r = inv[nr]
        for p in range(offsets[r], offsets[r + 1]):
            c = cols[p]
            q = fill[c]
            out_cols[q] = nr
            out_vals[q] = vals[p]
            fill[c] = q + 1
    return out_offsets, out_cols, out_vals


def transpose_reference(offsets, cols, vals, n_cols, row_map=None):
    """scipy twin of :func:`transpose`."""
    import scipy.sparse as sp

    n_rows = len(offsets) - 1
    m = sp.csr_matrix((vals, cols.astype(np.int64), offsets), shape=(n_rows, n_cols))
    if row_map is not None and len(row_map):
        inv = np.empty(n_rows, np.int64)
        inv[np.asarray(row_map, np.int64)] = np.arange(n_rows)
        m = m[inv]
    t = m.T.tocsr()
    t.sort_indices()
    return t.indptr.astype(np.int64), t.indices.astype(np.uint32), t.data
