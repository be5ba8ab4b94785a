"""``seismic``: approximate search the way Seismic does (kernel: :mod:`lsr.index.kernels.seismic`;
reference twins: ``seismic.search_python`` for the search, ``list_keep_reference``,
``kept_reference``, ``summary_reference`` and ``list_summaries_reference`` for the build, compared
in ``tests/test_kernel_twins.py``). The ``seismic`` part: each term's posting list statically
pruned to its heaviest entries (``pruning``: ``"global"``, Seismic's default, keeps the index's
heaviest ``n_postings`` x (terms with postings) postings, at most ``max_fraction`` x
``n_postings`` per list; ``"fixed"`` keeps ``n_postings`` per list), clustered into blocks of about ``block_size`` documents
(random k-means, Seismic's ``centroid_fraction`` = 1 / ``block_size``), each block with a summary
vector (the terms holding ``summary_energy`` of its L1 mass, at most ``summary_terms``, uint8 with
a per-block scale), the summaries of a list stored inverted (term -> blocks). With ``knn`` > 0 the
build also stores a kNN graph (``seismic_knn``: each document's ``knn`` nearest documents as the
index's own search finds them for its ``knn_doc_terms`` heaviest terms at query_cut
``knn_query_cut``, heap_factor 1), which the search walks after its blocks (Seismic's CIKM 2024
refinement: the neighbours of the top k are scored too; query parameter ``knn``).

Part layout 2 (this one; ``manifest["parts"]["seismic"]["layout"] == 2``). Layout 1 (lsr before
the inverted summaries: block-major ``seismic_summary_{offsets,terms,values,scale}``) is still
opened, for the other methods, but searching it with ``seismic`` asks for a rebuild."""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from lsr.errors import LsrError
from lsr.index import format as fmt
from lsr.index.batch import search_batch
from lsr.index.methods import BuildContext, Method, Param, Part, init_thr

LAYOUT = 2
ARRAYS = (
    "seismic_term_blocks",
    "seismic_block_docs_offsets",
    "seismic_block_docs",
    "seismic_block_scale",
    "seismic_list_groups",
    "seismic_group_terms",
    "seismic_group_offsets",
    "seismic_group_blocks",
    "seismic_group_values",
)
KNN = "seismic_knn"  # the kNN graph, int32[n_docs * knn] (rows by heap key, entries internal numbers)
MAX_LIST_BLOCKS = 1 << 16  # blocks of one list are numbered in uint16
MAX_KNN = 1024


class SeismicArrays(tuple):
    """The part's arrays in :data:`ARRAYS` order (what the kernels take), and ``graph``: the kNN
    graph as int32[n_docs, knn], or int32[0, 1] when the index has none."""

    graph: np.ndarray


class StalePart:
    """What :func:`open_part` returns for a seismic part of an older layout: the method stays
    listed (the index has the part) but searching it raises ``message``."""

    def __init__(self, message: str) -> None:
        self.message = message


def build(ctx: BuildContext, params: dict[str, Any]) -> dict[str, Any]:
    from lsr.index.kernels import reorder as reorder_k
    from lsr.index.kernels import seismic as seismic_k

    ctx.say("building Seismic blocks and summaries")
    # The build reads weights only as float32 values, and uint8/uint16 impacts convert to float32
    # exactly: handing it float32 copies gives the same structures and one compiled build for
    # every impact dtype (each specialization of the build costs ~20 s of numba compilation).
    fimp = ctx.fimp.astype(np.float32, copy=False)
    impacts = ctx.impacts.astype(np.float32, copy=False)
    # clustering compares documents by their heaviest terms only (Seismic's doc_cut)
    cptr, cterms, cw = reorder_k.top_terms(
        ctx.fptr, ctx.fterms, fimp, int(params["cluster_doc_terms"]), threads=ctx.threads
    )
    arrays = seismic_k.build(
        ctx.offsets,
        ctx.docs,
        impacts,
        ctx.fptr,
        ctx.fterms,
        fimp,
        cptr,
        cterms,
        cw,
        seismic_k.list_keep(
            ctx.offsets,
            ctx.impacts,
            int(params["n_postings"]),
            params["pruning"],
            float(params["max_fraction"]),
            _term_scale(ctx.index_dir),
        ),
        int(params["block_size"]),
        float(params["summary_energy"]),
        int(params["summary_terms"]),
        int(params["min_cluster_size"]),
        ctx.threads,
    )
    arrays = narrowed(arrays, ctx.n_terms)
    for name, arr in zip(ARRAYS, arrays, strict=True):
        ctx.save(name, arr)
    kappa = int(params["knn"])
    extra = {}
    if kappa > 0:
        t0 = time.perf_counter()
        ctx.say(f"building the kNN graph of Seismic ({kappa} neighbours per document)")
        qptr, qterms, qw = reorder_k.top_terms(
            ctx.fptr, ctx.fterms, fimp, int(params["knn_doc_terms"]), threads=ctx.threads
        )
        graph = seismic_k.knn_graph(
            arrays, ctx.fptr, ctx.fterms, fimp, qptr, qterms, qw, ctx.n_terms, kappa,
            int(params["knn_query_cut"]), 1.0, ctx.doc_order, threads=ctx.threads,
        )  # fmt: skip
        ctx.save(KNN, graph.reshape(-1))
        extra["knn_seconds"] = round(time.perf_counter() - t0, 3)  # part of the part's seconds
    tb, lg, goff = arrays[0], arrays[4], arrays[6]
    return {
        **params,
        "layout": LAYOUT,
        "n_blocks": int(tb[-1]),
        "n_groups": int(lg[-1]),
        "n_summary_entries": int(goff[-1]),
        "max_list_blocks": int(np.diff(tb).max()) if len(tb) > 1 else 0,
        **extra,
    }


def _term_scale(index_dir: str) -> np.ndarray | None:
    """The per-term quantizer's factors of the index being built (written before its parts), or None."""
    path = fmt.array_path(index_dir, "term_scale")
    return np.load(path) if os.path.exists(path) else None


# the narrowest dtype each of these may take (the build picks it; the kernels compile for each)
DTYPES = {
    "seismic_group_terms": ("uint16", "int32"),  # uint16 when the vocabulary has <= 65,536 terms
    "seismic_group_offsets": ("uint32", "int64"),  # uint32 when the entries fit
    "seismic_group_blocks": ("uint8", "uint16"),  # uint8 when no list has more than 256 blocks
}


def narrowed(arrays: tuple, n_terms: int) -> tuple:
    """The build's arrays with group terms, offsets and block numbers in the narrowest dtype that
    holds them (see :data:`DTYPES`): most of the part's bytes are per group and per entry."""
    tb, bptr, bdocs, scale, lg, gterms, goff, gblk, gval = arrays
    if n_terms <= 1 << 16:
        gterms = gterms.astype(np.uint16)
    if goff[-1] < 1 << 32:
        goff = goff.astype(np.uint32)
    if len(tb) < 2 or int(np.diff(tb).max()) <= 1 << 8:
        gblk = gblk.astype(np.uint8)
    return tb, bptr, bdocs, scale, lg, gterms, goff, gblk, gval


PRUNINGS = ("global", "fixed")


def longest_list(params: dict[str, Any]) -> int:
    """The most postings one list may keep: ``n_postings``, x ``max_fraction`` for global pruning."""
    if params["pruning"] == "global":
        return int(int(params["n_postings"]) * float(params["max_fraction"]))
    return int(params["n_postings"])


def check(params: dict[str, Any]) -> None:
    if not 0 < float(params["summary_energy"]) <= 1:
        raise LsrError(f"seismic summary_energy must be in (0, 1], got {params['summary_energy']!r}")
    if params["pruning"] not in PRUNINGS:
        raise LsrError(f"seismic pruning must be one of {', '.join(PRUNINGS)}, got {params['pruning']!r}")
    if not float(params["max_fraction"]) >= 1:
        raise LsrError(f"seismic max_fraction must be >= 1, got {params['max_fraction']!r}")
    if int(params["knn"]) != params["knn"] or not 0 <= int(params["knn"]) <= MAX_KNN:
        raise LsrError(f"seismic knn must be a whole number in 0 .. {MAX_KNN}, got {params['knn']!r}")
    if -(-longest_list(params) // int(params["block_size"])) > MAX_LIST_BLOCKS:
        raise LsrError(
            f"seismic n_postings / block_size must be at most {MAX_LIST_BLOCKS} blocks per list, got "
            f"{longest_list(params)} / {params['block_size']}"
        )


def open_part(index: Any, record: dict[str, Any]) -> tuple | StalePart:
    if not isinstance(record, dict) or record.get("layout") != LAYOUT:
        return StalePart(
            f"{index.path}: its seismic part has layout {record.get('layout', 1) if isinstance(record, dict) else 1} "
            f"from an older lsr (this one reads layout {LAYOUT}): rebuild the index to search it with seismic"
        )
    nb, ng, ns = int(record["n_blocks"]), int(record["n_groups"]), int(record["n_summary_entries"])
    p, m = index.path, index.manifest
    bptr = fmt.open_array(p, "seismic_block_docs_offsets", m, nb + 1)
    out = (
        fmt.open_array(p, "seismic_term_blocks", m),
        bptr,
        fmt.open_array(p, "seismic_block_docs", m, int(bptr[-1])),
        fmt.open_array(p, "seismic_block_scale", m, nb),
        fmt.open_array(p, "seismic_list_groups", m),
        fmt.open_array(p, "seismic_group_terms", m, ng),
        fmt.open_array(p, "seismic_group_offsets", m, ng + 1),
        fmt.open_array(p, "seismic_group_blocks", m, ns),
        fmt.open_array(p, "seismic_group_values", m, ns),
    )
    for name, arr in zip(ARRAYS, out, strict=True):
        if name in DTYPES and arr.dtype.name not in DTYPES[name]:
            raise LsrError(
                f"{p}: {name}.npy has dtype {arr.dtype}, expected one of {', '.join(DTYPES[name])}"
            )
    arrays = SeismicArrays(out)
    kappa = int(record.get("knn", 0))
    if kappa > 0:
        # its entries are checked at open with the other parts (lsr.index.check.validate)
        arrays.graph = fmt.open_array(p, KNN, m, index.n_docs * kappa).reshape(index.n_docs, kappa)
    else:
        arrays.graph = NO_GRAPH
    return arrays


NO_GRAPH = np.empty((0, 1), np.int32)
NO_GRAPH.setflags(write=False)  # read-only as a mapped graph is: one compiled search for both


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

    if isinstance(index.seismic, StalePart):
        raise LsrError(index.seismic.message)
    args = (
        *index.seismic,
        *index.forward,
        index.scale,
        index.doc_order,
        index.n_terms,
        int(index.parts["seismic"]["max_list_blocks"]),
        indptr,
        terms,
        weights,
        k,
        params["query_cut"],
        params["heap_factor"],
    )
    graph, knn = getattr(index.seismic, "graph", NO_GRAPH), int(params["knn"])
    stamps = scratch.buffer("stamps", index.n_docs, np.int32)
    stamp_box = scratch.buffer("stamp_box", 1, np.int64, fill=1).reshape(-1)
    if n_chunks == 1:
        box = stamp_box[:1].copy()
        out = seismic.search_serial(*args, stamps[0], box, mask, init_thr(params), graph, knn)
        stamp_box[0] = box[0]
        return out
    thr0 = init_thr(params)

    def work(c: int, lo: int, hi: int, out_d: np.ndarray, out_s: np.ndarray) -> None:
        stamp_box[c] = seismic.search_range(
            *args, stamps[c], stamp_box[c], lo, hi, out_d, out_s, mask, thr0, graph, knn
        )

    return search_batch(indptr, k, n_chunks, work)


PARTS = (
    Part(
        name="seismic",
        arrays={
            "seismic_term_blocks": ("int64", "n_terms+1"),
            "seismic_block_docs_offsets": ("int64", None),
            "seismic_block_docs": ("uint32", None),
            "seismic_block_scale": ("float32", None),
            "seismic_list_groups": ("int64", "n_terms+1"),
            "seismic_group_terms": (None, None),  # dtype: one of DTYPES' (checked at open)
            "seismic_group_offsets": (None, None),
            "seismic_group_blocks": (None, None),
            "seismic_group_values": ("uint8", None),
            KNN: ("int32", None),  # with knn > 0
            # layout 1 (older lsr), still known so that such an index opens and checks
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
            "pruning": "global",
            "max_fraction": 1.5,
            "block_size": 10,
            "summary_energy": 0.4,
            "summary_terms": 4096,
            "cluster_doc_terms": 15,
            "min_cluster_size": 2,
            "knn": 0,
            "knn_query_cut": 5,
            "knn_doc_terms": 32,
        },
        zero_ok=("knn",),
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
        Param(
            "knn",
            MAX_KNN,
            0,
            MAX_KNN,
            integer=True,
            doc="neighbours of each top-k document scored after the blocks, from the kNN graph an "
            "index built with seismic knn > 0 stores (at most its knn; 0: none)",
        ),
    ),
    search=search,
    rank_safe=lambda p: False,
    doc="Seismic: statically pruned lists in clustered blocks with summary vectors (approximate)",
    order=30,
)
