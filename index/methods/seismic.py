"""``seismic``: approximate search the way Seismic does (kernel: :mod:`lsr.index.kernels.seismic`;
reference twins: ``seismic.search_python`` for the search, ``kept_reference`` and
``summary_reference`` for the build, compared in ``tests/test_kernel_twins.py``). The ``seismic``
part: each term's posting list statically pruned to its ``n_postings`` heaviest entries, clustered
into blocks of about ``block_size`` documents, each block with a quantized summary vector (the
terms holding ``summary_energy`` of its mass, at most ``summary_terms``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from lsr.errors import LsrError
from lsr.index import format as fmt
from lsr.index.methods import BuildContext, Method, Param, Part, init_thr

ARRAYS = (
    "seismic_term_blocks",
    "seismic_block_docs_offsets",
    "seismic_block_docs",
    "seismic_summary_offsets",
    "seismic_summary_terms",
    "seismic_summary_values",
    "seismic_summary_scale",
)


def build(ctx: BuildContext, params: dict[str, Any]) -> dict[str, Any]:
    from lsr.index.kernels import reorder as reorder_k
    from lsr.index.kernels import seismic as seismic_k

    ctx.say("building Seismic blocks and summaries")
    # clustering compares documents by their heaviest terms only (Seismic's doc_cut)
    cptr, cterms, cw = reorder_k.top_terms(ctx.fptr, ctx.fterms, ctx.fimp, int(params["cluster_doc_terms"]))
    arrays = seismic_k.build(
        ctx.offsets,
        ctx.docs,
        ctx.impacts,
        ctx.fptr,
        ctx.fterms,
        ctx.fimp,
        cptr,
        cterms,
        cw,
        int(params["n_postings"]),
        int(params["block_size"]),
        float(params["summary_energy"]),
        int(params["summary_terms"]),
        ctx.threads,
    )
    for name, arr in zip(ARRAYS, arrays, strict=True):
        ctx.save(name, arr)
    tb, sptr = arrays[0], arrays[3]
    return {**params, "n_blocks": int(tb[-1]), "n_summary_entries": int(sptr[-1])}


def check(params: dict[str, Any]) -> None:
    if not 0 < float(params["summary_energy"]) <= 1:
        raise LsrError(f"seismic summary_energy must be in (0, 1], got {params['summary_energy']!r}")


def open_part(index: Any, record: dict[str, Any]) -> tuple:
    nb = int(record["n_blocks"])
    ns = int(record["n_summary_entries"])
    p, m = index.path, index.manifest
    tb = fmt.open_array(p, "seismic_term_blocks", m)
    bptr = fmt.open_array(p, "seismic_block_docs_offsets", m, nb + 1)
    return (
        tb,
        bptr,
        fmt.open_array(p, "seismic_block_docs", m, int(bptr[-1])),
        fmt.open_array(p, "seismic_summary_offsets", m, nb + 1),
        fmt.open_array(p, "seismic_summary_terms", m, ns),
        fmt.open_array(p, "seismic_summary_values", m, ns),
        fmt.open_array(p, "seismic_summary_scale", m, nb),
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
    """Seismic top-k; per chunk, ``scratch.buffer("stamps")`` (int32[n_docs], visited marks) and the
    next free stamp ``scratch.buffer("stamp_box")`` (every mark below it)."""
    from lsr.index.kernels import seismic

    args = (
        *index.seismic,
        *index.forward,
        index.scale,
        index.doc_order,
        index.n_terms,
        indptr,
        terms,
        weights,
        k,
        params["query_cut"],
        params["heap_factor"],
    )
    stamps = scratch.buffer("stamps", index.n_docs, np.int32)
    stamp_box = scratch.buffer("stamp_box", 1, np.int64, fill=1).reshape(-1)
    if n_chunks == 1:
        box = stamp_box[:1].copy()
        out = seismic.search_serial(*args, stamps[0], box, mask, init_thr(params))
        stamp_box[0] = box[0]
        return out
    return seismic.search_batch(*args, stamps, stamp_box, n_chunks, mask, init_thr(params))


PARTS = (
    Part(
        name="seismic",
        arrays={
            "seismic_term_blocks": ("int64", "n_terms+1"),
            "seismic_block_docs_offsets": ("int64", None),
            "seismic_block_docs": ("uint32", None),
            "seismic_summary_offsets": ("int64", None),
            "seismic_summary_terms": ("int32", None),
            "seismic_summary_values": ("uint8", None),
            "seismic_summary_scale": ("float32", None),
        },
        build=build,
        open=open_part,
        reorder=True,
        defaults={
            "n_postings": 2000,
            "block_size": 32,
            "summary_energy": 0.4,
            "summary_terms": 256,
            "cluster_doc_terms": 16,
        },
        check=check,
        order=20,
    ),
)

METHOD = Method(
    name="seismic",
    parts=("forward", "seismic"),
    params=(
        Param("query_cut", 10, 1, 1024, integer=True, doc="the heaviest query terms that drive the search"),
        Param(
            "heap_factor",
            0.9,
            1e-6,
            1.0,
            doc="a block is skipped when its summary score is under this x the k-th score",
        ),
    ),
    search=search,
    rank_safe=lambda p: False,
    doc="Seismic: statically pruned lists in clustered blocks with summary vectors (approximate)",
    order=30,
)
