"""``lsr encode``: BEIR texts -> JSONL sparse vectors, streamed in chunks."""

from __future__ import annotations

import time
from typing import Any

from lsr.cli.common import (
    apply_threads,
    check_input,
    check_positive,
    duplicate_ids,
    encoder_options,
    summary,
    warn,
)


def _count_records(path: str) -> int:
    from lsr.vectors import open_text

    with open_text(path) as f:
        return sum(1 for line in f if line.strip())


def run(args: Any) -> int:
    import lsr
    from lsr.texts import iter_texts
    from lsr.vectors import VectorWriter

    check_positive("batch-size", args.batch_size)
    check_positive("max-length", args.max_length)
    check_positive("top-k", args.top_k)
    check_input(args.input)
    opts = encoder_options(args)
    if args.max_length:
        opts["query_max_length" if args.queries else "doc_max_length"] = args.max_length
    if args.top_k:
        opts["query_top_k" if args.queries else "doc_top_k"] = args.top_k
    if args.ray is not None:
        return _run_on_ray(args, opts)
    total = _count_records(args.input)
    dups, n_dup = duplicate_ids(args.input, limit=3)
    for rid, line, first in dups:
        warn(f"{args.input}:{line}: duplicate id {rid!r} (first on line {first})")
    if n_dup:
        warn(
            f"{args.input}: {n_dup} duplicate id{'s' if n_dup > 1 else ''}; the vectors are written, "
            "but `lsr index` refuses duplicate document ids"
        )
    apply_threads(args.threads)
    enc = lsr.load_encoder(args.model, **opts)
    encode = enc.encode_queries if args.queries else enc.encode_documents
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    n = nnz = 0
    chunk_ids: list[str] = []
    chunk_texts: list[str] = []
    with VectorWriter(args.output) as out, tqdm(total=total, desc="encoding", unit="text") as bar:

        def flush() -> None:
            nonlocal n, nnz
            b = encode(chunk_texts)
            out.write(b, ids=chunk_ids, contents=chunk_texts)
            n += len(b)
            nnz += b.nnz
            bar.update(len(b))
            chunk_ids.clear()
            chunk_texts.clear()

        for rec in iter_texts(args.input):
            chunk_ids.append(rec.id)
            chunk_texts.append(rec.text if args.queries else rec.full_text)
            if len(chunk_texts) >= 256:
                flush()
        if chunk_texts:
            flush()
    dt = time.perf_counter() - t0
    what = "queries" if args.queries else "documents"
    summary(
        f"encoded {n} {what} in {dt:.1f} s ({n / max(dt, 1e-9):.1f}/s), "
        f"{nnz / max(n, 1):.1f} non-zeros per vector -> {args.output}"
    )
    return 0


def _run_on_ray(args: Any, opts: dict[str, Any]) -> int:
    """``lsr encode --ray``: encode on a Ray cluster into a directory of vector parts (resumable)."""
    from lsr.distributed.encode import encode_on_ray

    check_positive("actors", args.actors)
    check_positive("threads-per-actor", args.threads_per_actor)
    check_positive("block-size", args.block_size)
    t0 = time.perf_counter()
    rec = encode_on_ray(
        args.input,
        args.output,
        args.model,
        options=opts,
        queries=args.queries,
        address=args.ray,
        actors=args.actors,
        threads=args.threads_per_actor,
        block_size=args.block_size,
    )
    dt = time.perf_counter() - t0
    what = "queries" if args.queries else "documents"
    summary(
        f"encoded {rec['n_docs']} {what} on Ray in {len(rec['parts'])} parts "
        f"({rec['encoded_now']} encoded now, the rest already done) in {dt:.1f} s -> {args.output}"
    )
    return 0
