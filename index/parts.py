"""The optional parts of an index that the pruning methods need, built after the postings are merged.

- ``doc_order``: documents renumbered by recursive graph bisection, so similar documents get
  neighbouring internal numbers (BMP's block maxima get tight, Seismic's blocks become clusters).
  The postings, forward index and blocks use internal numbers; ``doc_order[internal]`` is the
  build-order number, which is what results, doc ids, lengths and the store are keyed by.
- ``forward``: doc -> (terms, impacts), for MaxScore's and Seismic's exact scoring of candidates.
- ``bmp``: per-term block maxima over blocks of ``block_size`` internal doc numbers.
- ``seismic``: statically pruned posting lists cut into blocks with quantized summaries.

Which method needs what: :data:`METHOD_PARTS`. The file layout is in :mod:`lsr.index.format`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from lsr.errors import LsrError
from lsr.index import format as fmt

METHOD_PARTS: dict[str, tuple[str, ...]] = {
    "exact": (),
    "maxscore": ("forward",),
    "bmp": ("bmp",),
    "seismic": ("forward", "seismic"),
}
ALL_METHODS = tuple(METHOD_PARTS)

DEFAULT_BMP = {"block_size": 16, "dense_fraction": 0.25}
DEFAULT_SEISMIC = {
    "n_postings": 2000,
    "block_size": 32,
    "summary_energy": 0.4,
    "summary_terms": 256,
    "cluster_doc_terms": 16,
}
DEFAULT_REORDER = {"terms": 32, "iterations": 8, "leaf": 16}


def check_methods(methods: Sequence[str]) -> tuple[str, ...]:
    """Validate a list of method names (``"all"`` means every method)."""
    if isinstance(methods, str):
        methods = [m.strip() for m in methods.split(",") if m.strip()]
    if "all" in methods:
        return ALL_METHODS
    bad = [m for m in methods if m not in METHOD_PARTS]
    if bad:
        raise LsrError(f"unknown method(s) {', '.join(bad)} (available: {', '.join(ALL_METHODS)})")
    out = tuple(dict.fromkeys(["exact", *methods]))  # exact needs nothing and is always there
    return out


def _merged(defaults: dict[str, Any], given: dict[str, Any] | None, what: str) -> dict[str, Any]:
    given = dict(given or {})
    bad = sorted(set(given) - set(defaults))
    if bad:
        raise LsrError(f"unknown {what} parameter(s) {', '.join(bad)} (known: {', '.join(defaults)})")
    out = {**defaults, **given}
    for key, val in out.items():
        if isinstance(val, bool) or not isinstance(val, (int, float, np.integer, np.floating)) or val <= 0:
            raise LsrError(f"{what} parameter {key} must be a positive number, got {val!r}")
    if "summary_energy" in out and not 0 < float(out["summary_energy"]) <= 1:
        raise LsrError(f"{what} summary_energy must be in (0, 1], got {out['summary_energy']!r}")
    return out


def build_parts(
    index_dir: str,
    n_docs: int,
    n_terms: int,
    methods: Sequence[str],
    reorder: bool,
    bmp: dict[str, Any] | None = None,
    seismic: dict[str, Any] | None = None,
    reorder_params: dict[str, Any] | None = None,
    threads: int | None = None,
    log: Callable[[str], None] | None = None,
    show_progress: bool = False,
) -> dict[str, Any]:
    """Reorder (optional) and build the parts ``methods`` need inside a finished postings directory.

    Rewrites ``postings_docs`` / ``postings_impacts`` when reordering. Returns the manifest's
    ``parts`` record (sizes, parameters and seconds of each step).
    """
    from numba import config as nb_config

    from lsr.index.kernels import bmp as bmp_k
    from lsr.index.kernels import forward as fwd_k
    from lsr.index.kernels import reorder as reorder_k
    from lsr.index.kernels import seismic as seismic_k

    methods = check_methods(methods)
    needed = {p for m in methods for p in METHOD_PARTS[m]}
    bmp_p = _merged(DEFAULT_BMP, bmp, "bmp")
    seismic_p = _merged(DEFAULT_SEISMIC, seismic, "seismic")
    reorder_p = _merged(DEFAULT_REORDER, reorder_params, "reorder")
    threads = max(1, min(threads or os.cpu_count() or 1, nb_config.NUMBA_NUM_THREADS))
    say = log or (lambda _msg: None)
    record: dict[str, Any] = {"methods": list(methods), "seconds": {}}
    if not needed and not reorder:
        return record

    def save(name: str, arr: np.ndarray) -> None:
        np.save(fmt.array_path(index_dir, name), arr)

    offsets = np.load(fmt.array_path(index_dir, "offsets"))
    docs = np.load(fmt.array_path(index_dir, "postings_docs"))
    imps = np.load(fmt.array_path(index_dir, "postings_impacts"))
    empty = np.empty(0, np.int64)
    t0 = time.perf_counter()
    fptr, fterms, fimp = fwd_k.transpose(offsets, docs, imps, n_docs, empty)
    record["seconds"]["forward"] = round(time.perf_counter() - t0, 3)
    if reorder and n_docs > 2 * int(reorder_p["leaf"]):
        t0 = time.perf_counter()
        say(f"reordering {n_docs} documents (graph bisection)")
        bp_ptr, bp_terms, _ = reorder_k.top_terms(fptr, fterms, fimp, int(reorder_p["terms"]))
        bar = None
        if show_progress:
            from tqdm.auto import tqdm

            bar = tqdm(desc="reordering (graph bisection)", unit="level", leave=False)

        def progress(level: int, n_levels: int) -> None:
            if bar is not None:
                bar.total = n_levels
                bar.update(1)

        try:
            order = reorder_k.graph_bisection(
                bp_ptr,
                bp_terms,
                n_terms,
                leaf=int(reorder_p["leaf"]),
                iterations=int(reorder_p["iterations"]),
                threads=threads,
                progress=progress,
            )
        finally:
            if bar is not None:
                bar.close()
        del bp_ptr, bp_terms
        new_of_old = np.empty(n_docs, np.int64)
        new_of_old[order] = np.arange(n_docs)
        offsets2, docs, imps = fwd_k.transpose(fptr, fterms, fimp, n_terms, new_of_old)
        assert np.array_equal(offsets2, offsets)
        fptr, fterms, fimp = fwd_k.transpose(offsets, docs, imps, n_docs, empty)
        save("postings_docs", docs)
        save("postings_impacts", imps)
        save("doc_order", order)
        record["doc_order"] = True
        record["reorder"] = reorder_p
        record["seconds"]["reorder"] = round(time.perf_counter() - t0, 3)
    else:
        record["doc_order"] = False
    if "forward" in needed:
        save("forward_offsets", fptr)
        save("forward_terms", fterms)
        save("forward_impacts", fimp)
        record["forward"] = True
    if "bmp" in needed:
        t0 = time.perf_counter()
        bs = int(bmp_p["block_size"])
        bo, bb, bst, bmx, drow, dmax, dstart = bmp_k.build_blocks(
            offsets, docs, imps, bs, n_docs, float(bmp_p["dense_fraction"])
        )
        save("bmp_offsets", bo)
        save("bmp_blocks", bb)
        save("bmp_starts", bst)
        save("bmp_max", bmx)
        save("bmp_dense_rows", drow)
        save("bmp_dense_max", dmax)
        save("bmp_dense_starts", dstart)
        record["bmp"] = {**bmp_p, "n_entries": int(bo[-1]), "n_dense": int((drow >= 0).sum())}
        record["seconds"]["bmp"] = round(time.perf_counter() - t0, 3)
    if "seismic" in needed:
        t0 = time.perf_counter()
        say("building Seismic blocks and summaries")
        # summaries from each document's heaviest terms only: they hold the mass a summary keeps,
        # at a fraction of the build time
        # clustering compares documents by their heaviest terms only (Seismic's doc_cut)
        cptr, cterms, cw = reorder_k.top_terms(fptr, fterms, fimp, int(seismic_p["cluster_doc_terms"]))
        tb, bptr, bdocs, sptr, sterms, svals, sscale = seismic_k.build(
            offsets,
            docs,
            imps,
            fptr,
            fterms,
            fimp,
            cptr,
            cterms,
            cw,
            int(seismic_p["n_postings"]),
            int(seismic_p["block_size"]),
            float(seismic_p["summary_energy"]),
            int(seismic_p["summary_terms"]),
            threads,
        )
        for name, arr in (
            ("seismic_term_blocks", tb),
            ("seismic_block_docs_offsets", bptr),
            ("seismic_block_docs", bdocs),
            ("seismic_summary_offsets", sptr),
            ("seismic_summary_terms", sterms),
            ("seismic_summary_values", svals),
            ("seismic_summary_scale", sscale),
        ):
            save(name, arr)
        record["seismic"] = {**seismic_p, "n_blocks": int(tb[-1]), "n_summary_entries": int(sptr[-1])}
        record["seconds"]["seismic"] = round(time.perf_counter() - t0, 3)
    return record
