"""``exact``: term-at-a-time over every posting of every query term (kernel:
:mod:`lsr.index.kernels.exact`; reference twin: ``exact.search_reference``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from lsr.index.batch import search_batch
from lsr.index.methods import Method, init_thr, selected_docs


def search(
    index: Any,
    params: dict[str, Any],
    indptr: np.ndarray,
    terms: np.ndarray,
    weights: np.ndarray,
    k: int,
    scratch: Any,
    n_chunks: int,
    mask: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k; ``scratch.buffer("acc")`` holds one zeroed float32 accumulator per chunk (the
    kernel leaves it zeroed). ``params["init_thr"]`` (optional, see :func:`init_thr`): starting
    thresholds; ``params["selected"]`` (optional, see :func:`selected_docs`): the allowed documents
    as a list, read instead of scanning the accumulator."""
    from lsr.index.kernels import exact

    accs = scratch.buffer("acc", index.n_docs, np.float32)
    args = (*index.postings, index.doc_order, indptr, terms, weights, k)
    thr0 = init_thr(params)
    sel = selected_docs(params)
    if n_chunks == 1:
        return exact.search_serial(*args, accs[0], mask, thr0, sel)

    def work(c: int, lo: int, hi: int, out_d: np.ndarray, out_s: np.ndarray) -> None:
        exact.search_range(*args, accs[c], lo, hi, out_d, out_s, mask, thr0, sel)

    return search_batch(indptr, k, n_chunks, work)


METHOD = Method(
    name="exact",
    parts=(),
    params=(),
    search=search,
    doc="term-at-a-time over every posting of every query term",
    order=0,
)
