"""The optional parts of an index that the pruning methods need, built after the postings are merged.

- ``doc_order``: documents renumbered by recursive graph bisection, so similar documents get
  neighbouring internal numbers (BMP's block maxima get tight, Seismic's blocks become clusters).
  The postings, forward index and blocks use internal numbers; ``doc_order[internal]`` is the
  build-order number, which is what results, doc ids, lengths and the store are keyed by.
- ``forward``: doc -> (terms, impacts), for MaxScore's and Seismic's exact scoring of candidates.
- ``bmp``: per-term block maxima over blocks of ``block_size`` internal doc numbers.
- ``seismic``: statically pruned posting lists cut into blocks with quantized summaries.

Which method needs what, and how each part is built and opened, is in the method registry
(:mod:`lsr.index.methods`: one module per method and part); this module runs the shared steps
(forward index, optional reordering) and then each needed part's builder. :data:`METHOD_PARTS`
and the ``DEFAULT_*`` tables are derived from the registry for older callers. The file layout is
in :mod:`lsr.index.format`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from lsr.errors import LsrError
from lsr.index import format as fmt
from lsr.index import methods as registry
from lsr.index.methods import BuildContext, check_methods
from lsr.index.npy import read_npy

METHOD_PARTS: dict[str, tuple[str, ...]] = {m.name: m.parts for m in registry.METHODS.values()}
ALL_METHODS = registry.NAMES

DEFAULT_BMP = dict(registry.PARTS["bmp"].defaults)
DEFAULT_SEISMIC = dict(registry.PARTS["seismic"].defaults)
DEFAULT_REORDER = {"terms": 32, "iterations": 8, "leaf": 16}

__all__ = ["ALL_METHODS", "METHOD_PARTS", "build_parts", "check_methods", "check_part_params"]


def check_part_params(given: dict[str, dict[str, Any] | None]) -> dict[str, dict[str, Any]]:
    """Build parameters of every part (the registry's defaults, overridden by ``given[part]``),
    checked; an unknown part name is refused."""
    unknown = sorted(set(given) - set(registry.PARTS))
    if unknown:
        raise LsrError(f"unknown index part(s) {', '.join(unknown)} (known: {', '.join(registry.PARTS)})")
    out = {}
    for name, part in registry.PARTS.items():
        params = _merged(dict(part.defaults), given.get(name), name, part.zero_ok)
        if part.check is not None:
            part.check(params)
        out[name] = params
    return out


def _merged(
    defaults: dict[str, Any], given: dict[str, Any] | None, what: str, zero_ok: tuple[str, ...] = ()
) -> dict[str, Any]:
    given = dict(given or {})
    bad = sorted(set(given) - set(defaults))
    if bad:
        raise LsrError(f"unknown {what} parameter(s) {', '.join(bad)} (known: {', '.join(defaults)})")
    out = {**defaults, **given}
    for key, val in out.items():
        if isinstance(defaults[key], str):  # a choice (e.g. seismic's pruning): the part's check says which
            if not isinstance(val, str):
                raise LsrError(f"{what} parameter {key} must be a string, got {val!r}")
            continue
        if isinstance(val, bool) or not isinstance(val, (int, float, np.integer, np.floating)):
            raise LsrError(f"{what} parameter {key} must be a positive number, got {val!r}")
        if not (val > 0 or (key in zero_ok and val == 0)):  # NaN fails both
            raise LsrError(
                f"{what} parameter {key} must be a {'non-negative' if key in zero_ok else 'positive'} number, got {val!r}"
            )
    return out


def build_threads(threads: int | None) -> int:
    """The threads (and vector-reading processes) a build uses: ``threads``, or every core, never
    more than Numba's thread count (``NUMBA_NUM_THREADS`` caps the whole build)."""
    from numba import config as nb_config

    return max(1, min(threads or os.cpu_count() or 1, nb_config.NUMBA_NUM_THREADS))


def build_parts(
    index_dir: str,
    n_docs: int,
    n_terms: int,
    methods: Sequence[str],
    reorder: bool,
    reorder_params: dict[str, Any] | None = None,
    threads: int | None = None,
    log: Callable[[str], None] | None = None,
    show_progress: bool = False,
    **part_params: dict[str, Any] | None,
) -> dict[str, Any]:
    """Reorder (optional) and build the parts ``methods`` need inside a finished postings directory.

    ``part_params`` maps a part name (``bmp=``, ``seismic=``, any registered part) to its build
    parameters. Rewrites ``postings_docs`` / ``postings_impacts`` when reordering. Returns the
    manifest's ``parts`` record (sizes, parameters and seconds of each step).
    """
    from lsr.index.kernels import forward as fwd_k
    from lsr.index.kernels import reorder as reorder_k

    methods = check_methods(methods)
    needed = registry.parts_needed(methods)
    params_of = check_part_params(part_params)
    reorder_p = _merged(DEFAULT_REORDER, reorder_params, "reorder")
    threads = build_threads(threads)
    say = log or (lambda _msg: None)
    record: dict[str, Any] = {"methods": list(methods), "seconds": {}}
    if not needed and not reorder:
        return record

    def save(name: str, arr: np.ndarray) -> None:
        np.save(fmt.array_path(index_dir, name), arr)

    offsets = read_npy(fmt.array_path(index_dir, "offsets"))
    docs = read_npy(fmt.array_path(index_dir, "postings_docs"))
    imps = read_npy(fmt.array_path(index_dir, "postings_impacts"))
    empty = np.empty(0, np.int64)
    t0 = time.perf_counter()
    fptr, fterms, fimp = fwd_k.transpose(offsets, docs, imps, n_docs, empty)
    record["seconds"]["forward"] = round(time.perf_counter() - t0, 3)
    if reorder and n_docs > 2 * int(reorder_p["leaf"]):
        t0 = time.perf_counter()
        say(f"reordering {n_docs} documents (graph bisection)")
        # float32 weights order exactly as uint8/uint16 ones do: one compiled top_terms for every dtype
        bp_ptr, bp_terms, _ = reorder_k.top_terms(
            fptr, fterms, fimp.astype(np.float32, copy=False), int(reorder_p["terms"]), threads=threads
        )
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
        doc_order = order
    else:
        record["doc_order"] = False
        doc_order = empty
    ctx = BuildContext(
        index_dir, n_docs, n_terms, offsets, docs, imps, fptr, fterms, fimp, threads, say, doc_order
    )
    for name in needed:
        t0 = time.perf_counter()
        record[name] = registry.PARTS[name].build(ctx, params_of[name])
        record["seconds"].setdefault(name, round(time.perf_counter() - t0, 3))  # forward: its transpose
    return record
