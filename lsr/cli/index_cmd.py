"""``lsr index``: vectors (or a corpus encoded on the fly) -> index directory."""

from __future__ import annotations

import time
from typing import Any

from lsr.cli.common import (
    apply_threads,
    check_input,
    check_positive,
    duplicate_ids,
    encoder_options,
    human_bytes,
    summary,
)


def run(args: Any) -> int:
    from lsr.index import build_index, open_index
    from lsr.index.builder import check_output
    from lsr.texts import sniff_jsonl

    check_positive("batch-size", args.batch_size)
    check_input(args.input)
    if args.ray is not None or args.shards is not None:
        return _run_sharded(args)
    check_output(args.output, args.overwrite)  # at once, not after a model load or an encoding
    if args.input.endswith(".ciff"):
        return _index_ciff(args)
    kind = sniff_jsonl(args.input)
    threads = apply_threads(args.threads, torch=kind == "text")
    encoder = None
    if kind == "text":
        if not args.model:
            from lsr.errors import LsrError

            raise LsrError(
                f"{args.input} holds texts (a BEIR corpus): pass --model to encode them, or encode first with `lsr encode`"
            )
        import lsr
        from lsr.errors import LsrError

        # before the model loads and the corpus is encoded (minutes to hours): a clash found at the
        # end of the build would waste all of it
        dups, n_dup = duplicate_ids(args.input, limit=1)
        if dups:
            rid, line, first = dups[0]
            more = f" ({n_dup} duplicates in all)" if n_dup > 1 else ""
            raise LsrError(
                f"{args.input}:{line}: duplicate document id {rid!r} (first on line {first}){more}: "
                "document ids must be unique"
            )
        encoder = lsr.load_encoder(args.model, **encoder_options(args))

    elif args.model:
        from lsr.errors import LsrError

        raise LsrError(f"{args.input} already holds vectors: --model applies to a text corpus only")
    bmp, seismic = _part_params(args)
    options = dict(
        quantization=args.quantization,
        quantizer=args.quantizer or "global",
        overwrite=args.overwrite,
        show_progress=True,
        methods=args.methods,
        reorder=args.reorder,
        bmp=bmp,
        seismic=seismic,
        threads=threads,
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


def _index_ciff(args: Any) -> int:
    """``lsr index --input x.ciff``: a CIFF file (PISA, Anserini, BMP, `lsr export-ciff`) -> index."""
    from lsr.ciff import index_from_ciff
    from lsr.errors import LsrError
    from lsr.index import open_index

    if args.model:
        raise LsrError(f"{args.input} already holds an index: --model applies to a text corpus only")
    t0 = time.perf_counter()
    out = index_from_ciff(
        args.input,
        args.output,
        quantization=args.quantization,
        quantizer=args.quantizer or "global",
        overwrite=args.overwrite,
        show_progress=True,
        methods=args.methods,
        reorder=args.reorder,
    )
    idx = open_index(out)
    summary(
        f"indexed {idx.n_docs} documents, {idx.n_postings} postings over {idx.n_terms} terms from CIFF "
        f"in {time.perf_counter() - t0:.1f} s -> {out} ({human_bytes(idx.size_bytes())})"
    )
    return 0


def _part_params(args: Any) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    bmp = {"block_size": args.bmp_block_size} if args.bmp_block_size is not None else None
    seismic = {
        k: v
        for k, v in (
            ("n_postings", args.seismic_n_postings),
            ("block_size", args.seismic_block_size),
            ("pruning", args.seismic_pruning),
            ("knn", args.seismic_knn),
        )
        if v is not None
    } or None
    return bmp, seismic


def _run_sharded(args: Any) -> int:
    """``lsr index --shards N [--ray [ADDRESS]]``: a sharded index (Ray tasks build the shards with --ray)."""
    import os

    from lsr.errors import LsrError
    from lsr.index import open_index

    shards = args.shards if args.shards is not None else 1
    check_positive("shards", shards)
    if args.quantizer == "term":
        raise LsrError("--quantizer term: shards share one quantization step; use --quantizer global")
    check_positive("block-size", args.block_size)
    bmp, seismic = _part_params(args)
    methods = args.methods
    t0 = time.perf_counter()
    if args.ray is not None:
        from lsr.distributed.build import build_on_ray

        out = build_on_ray(
            args.input,
            args.output,
            shards,
            model=args.model,
            encoder_options=encoder_options(args),
            address=args.ray,
            actors=args.actors,
            threads=args.threads_per_actor,
            block_size=args.block_size,
            quantization=args.quantization,
            methods=methods,
            reorder=args.reorder,
            bmp=bmp,
            seismic=seismic,
            overwrite=args.overwrite,
        )
    else:
        from lsr.index.shards import build_sharded_index
        from lsr.texts import sniff_jsonl

        if os.path.isdir(args.input) or sniff_jsonl(args.input) != "vectors":
            raise LsrError(
                "without --ray, --shards builds from a vectors file: encode first (`lsr encode`), or add --ray"
            )
        if args.model:
            raise LsrError(f"{args.input} already holds vectors: --model applies to a text corpus only")
        out = build_sharded_index(
            args.input,
            args.output,
            shards,
            quantization=args.quantization,
            methods=methods,
            reorder=args.reorder,
            bmp=bmp,
            seismic=seismic,
            overwrite=args.overwrite,
            show_progress=True,
        )
    dt = time.perf_counter() - t0
    idx = open_index(out)
    summary(
        f"indexed {idx.n_docs} documents in {len(idx.shards)} shards, {idx.n_postings} postings over "
        f"{idx.n_terms} terms ({args.quantization}) in {dt:.1f} s -> {out} ({human_bytes(idx.size_bytes())}); "
        f"methods: {', '.join(idx.methods)}"
    )
    return 0
