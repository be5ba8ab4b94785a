"""``lsr index``: vectors (or a corpus encoded on the fly) -> index directory."""

from __future__ import annotations

import time
from typing import Any

from lsr.cli.common import check_input, check_positive, encoder_options, human_bytes, summary


def run(args: Any) -> int:
    from lsr.index import build_index, open_index
    from lsr.texts import sniff_jsonl

    check_positive("batch-size", args.batch_size)
    check_input(args.input)
    kind = sniff_jsonl(args.input)
    encoder = None
    if kind == "text":
        if not args.model:
            from lsr.errors import LsrError

            raise LsrError(
                f"{args.input} holds texts (a BEIR corpus): pass --model to encode them, or encode first with `lsr encode`"
            )
        import lsr

        encoder = lsr.load_encoder(args.model, **encoder_options(args))
    elif args.model:
        from lsr.errors import LsrError

        raise LsrError(f"{args.input} already holds vectors: --model applies to a text corpus only")
    bmp = {"block_size": args.bmp_block_size} if args.bmp_block_size is not None else None
    seismic = {
        k: v
        for k, v in (("n_postings", args.seismic_n_postings), ("block_size", args.seismic_block_size))
        if v is not None
    } or None
    options = dict(
        quantization=args.quantization,
        overwrite=args.overwrite,
        show_progress=True,
        methods=args.methods,
        reorder=args.reorder,
        bmp=bmp,
        seismic=seismic,
    )
    t0 = time.perf_counter()
    if encoder is not None:  # text: encode and build through the one text-to-index path
        from lsr.retriever import Retriever

        out = Retriever.from_corpus(args.input, args.output, encoder, batch_size=256, **options).index.path
    else:
        out = build_index(args.input, args.output, **options)
    dt = time.perf_counter() - t0
    idx = open_index(out)
    summary(
        f"indexed {idx.n_docs} documents, {idx.n_postings} postings over {idx.n_terms} terms "
        f"({args.quantization}) in {dt:.1f} s -> {out} ({human_bytes(idx.size_bytes())}); "
        f"methods: {', '.join(idx.methods)}"
    )
    return 0
