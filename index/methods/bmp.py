"""``bmp``: Block-Max Pruning (kernel: :mod:`lsr.index.kernels.bmp`; reference twins:
``bmp.search_python`` at any alpha and beta, ``bmp.search_reference`` (numpy, rank-safe setting)
and a numpy twin of ``build_blocks`` in the tests). The ``bmp`` part holds per-term block maxima
over blocks of ``block_size`` internal doc numbers (dense rows for terms in >= ``dense_fraction``
of the blocks)."""

from __future__ import annotations

from typing import Any

import numpy as np

from lsr.index import format as fmt
from lsr.index.methods import BuildContext, Method, Param, Part, init_thr

ARRAYS = (
    "bmp_offsets",
    "bmp_blocks",
    "bmp_starts",
    "bmp_max",
    "bmp_dense_rows",
    "bmp_dense_max",
    "bmp_dense_starts",
)


def build(ctx: BuildContext, params: dict[str, Any]) -> dict[str, Any]:
    from lsr.index.kernels import bmp as bmp_k

    bs = int(params["block_size"])
    arrays = bmp_k.build_blocks(
        ctx.offsets, ctx.docs, ctx.impacts, bs, ctx.n_docs, float(params["dense_fraction"])
    )
    for name, arr in zip(ARRAYS, arrays, strict=True):
        ctx.save(name, arr)
    bo, drow = arrays[0], arrays[4]
    return {**params, "n_entries": int(bo[-1]), "n_dense": int((drow >= 0).sum())}


def open_part(index: Any, record: dict[str, Any]) -> tuple:
    n = int(record["n_entries"])
    nd = int(record.get("n_dense", 0))
    bs = int(record["block_size"])
    nb = (index.n_docs + bs - 1) // bs
    p, m = index.path, index.manifest
    index.bmp_block_size = bs
    return (
        fmt.open_array(p, "bmp_offsets", m),
        fmt.open_array(p, "bmp_blocks", m, n),
        fmt.open_array(p, "bmp_starts", m, n),
        fmt.open_array(p, "bmp_max", m, n),
        fmt.open_array(p, "bmp_dense_rows", m),
        fmt.open_array(p, "bmp_dense_max", m, nd * nb),
        fmt.open_array(p, "bmp_dense_starts", m, nd * (nb + 1)),
    )


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
    """BMP top-k; ``scratch.buffer("bmp_slots")`` holds one int64 row of (query terms x blocks)
    per chunk."""
    from lsr.index.kernels import bmp

    n_blocks = (index.n_docs + index.bmp_block_size - 1) // index.bmp_block_size
    max_nq = int(np.diff(indptr).max()) if len(indptr) > 1 else 0
    slots = scratch.buffer("bmp_slots", max(max_nq * n_blocks, 1), np.int64, fill=None)
    args = (
        *index.postings,
        index.doc_order,
        *index.bmp,
        index.bmp_block_size,
        index.n_docs,
        indptr,
        terms,
        weights,
        k,
        params["alpha"],
        params["beta"],
    )
    if n_chunks == 1:
        return bmp.search_serial(*args, slots[0], mask, init_thr(params))
    return bmp.search_batch(*args, slots, n_chunks, mask, init_thr(params))


PARTS = (
    Part(
        name="bmp",
        arrays={
            "bmp_offsets": ("int64", "n_terms+1"),
            "bmp_blocks": ("uint32", None),
            "bmp_starts": ("uint32", None),
            "bmp_max": ("impacts", None),
            "bmp_dense_rows": ("int32", "n_terms"),
            "bmp_dense_max": ("impacts", None),
            "bmp_dense_starts": ("uint32", None),
        },
        build=build,
        open=open_part,
        reorder=True,
        defaults={"block_size": 16, "dense_fraction": 0.25},
        order=10,
    ),
)

METHOD = Method(
    name="bmp",
    parts=("bmp",),
    params=(
        Param("alpha", 1.0, 1e-6, 1.0, doc="< 1 over-estimates the threshold: stops earlier (approximate)"),
        Param(
            "beta",
            1.0,
            1e-6,
            1.0,
            doc="< 1 keeps only the heaviest query terms holding that share of the weight",
        ),
    ),
    search=search,
    rank_safe=lambda p: p["alpha"] == 1.0 and p["beta"] == 1.0,
    doc="Block-Max Pruning: blocks visited by decreasing upper bound until it falls under the k-th score",
    order=20,
)
