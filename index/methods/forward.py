"""The ``forward`` part: doc -> (terms ascending, impacts) by internal doc number, for exact
scoring of candidates (MaxScore, Seismic). Built by :func:`lsr.index.kernels.forward.transpose`
(reference twin: ``transpose_reference``), which the parts builder runs anyway (reordering and
Seismic read it), so building it here only saves the arrays."""

from __future__ import annotations

from typing import Any

from lsr.index import format as fmt
from lsr.index.methods import BuildContext, Part

ARRAYS = ("forward_offsets", "forward_terms", "forward_impacts")


def build(ctx: BuildContext, params: dict[str, Any]) -> bool:
    ctx.save("forward_offsets", ctx.fptr)
    ctx.save("forward_terms", ctx.fterms)
    ctx.save("forward_impacts", ctx.fimp)
    return True


def open_part(index: Any, record: Any) -> tuple:
    return tuple(fmt.open_array(index.path, name, index.manifest) for name in ARRAYS)


PARTS = (
    Part(
        name="forward",
        arrays={
            "forward_offsets": ("int64", "n_docs+1"),
            "forward_terms": ("uint32", "n_postings"),
            "forward_impacts": ("impacts", "n_postings"),
        },
        build=build,
        open=open_part,
        order=0,
    ),
)
