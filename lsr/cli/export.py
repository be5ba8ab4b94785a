"""``lsr export`` (an encoder as a sentence-transformers SparseEncoder folder) and ``lsr export-ciff``
(an index as a CIFF file, for PISA, BMP, Anserini)."""

from __future__ import annotations

import os
from typing import Any

from lsr.cli.common import summary
from lsr.errors import LsrError


def run(args: Any) -> int:
    if args.command == "export-ciff":
        from lsr.ciff import export_ciff

        if not os.path.isdir(args.index):
            raise LsrError(f"{args.index}: no such index directory")
        info = export_ciff(args.index, args.output, bits=args.bits, show_progress=True)
        summary(
            f"wrote {info['n_terms']} postings lists, {info['n_postings']} postings, {info['n_docs']} documents "
            f"-> {args.output} (impact = tf x {info['scale']:.6g})"
        )
        return 0
    import lsr
    from lsr.encoders.layouts import export_sentence_transformers

    if args.format != "sentence-transformers":  # argparse's choices already say so; kept for API callers
        raise LsrError(f"unknown export format {args.format!r}")
    enc = lsr.load_encoder(args.model)
    export_sentence_transformers(enc, args.output)
    summary(
        f"wrote {enc.kind} encoder {args.model} as a sentence-transformers SparseEncoder -> {args.output}"
    )
    return 0
