"""``lsr search``: queries -> TREC run (``qid Q0 docid rank score tag``), written by
:func:`lsr.eval.runs.write_trec` (the writer ``lsr eval`` uses: same ranking, same score format)."""

from __future__ import annotations

import sys
import time
from typing import Any

from lsr.cli.common import apply_threads, check_input, check_positive, load_query_file, method_params, summary


def open_for_search(path: str, ray: str | None, replicas: int) -> Any:
    """Open an index; with ``ray`` (an address) its shards go into Ray actors."""
    from lsr.errors import LsrError
    from lsr.index import open_index

    check_positive("replicas", replicas)
    if ray is None:
        if replicas != 1:
            raise LsrError("--replicas applies with --ray only")
        return open_index(path)
    from lsr.index.shards import is_sharded

    if not is_sharded(path):
        raise LsrError(f"{path}: --ray needs a sharded index (build it with `lsr index --shards N`)")
    from lsr.distributed.search import open_on_ray

    return open_on_ray(path, ray, replicas)


def write_trec(f: Any, qids: list[str], results: list[Any], tag: str) -> None:
    """The run of ``results`` (one per query id, in the file's query order) in TREC format: ranked
    score descending then doc id ascending, scores as the shortest decimal that reads back exactly."""
    from lsr.eval.runs import ranked
    from lsr.eval.runs import write_trec as write_rows

    rows = ((q, ranked(zip(r.ids, r.scores, strict=True))) for q, r in zip(qids, results, strict=True))
    write_rows(f, rows, tag)


def run(args: Any) -> int:
    from lsr.errors import LsrError
    from lsr.index.searcher import check_k
    from lsr.texts import sniff_jsonl

    check_k(args.k)
    if not args.tag or any(c.isspace() for c in args.tag):
        raise LsrError("--tag must be one word")
    index = open_for_search(args.index, args.ray, args.replicas)
    if args.filter is not None:
        from lsr.index import SegmentedIndex

        if not isinstance(index, SegmentedIndex):
            index = SegmentedIndex(args.index)  # a plain index read as generation 0
    check_input(args.queries)
    threads = apply_threads(args.threads, torch=sniff_jsonl(args.queries) == "text")
    params = index.check_params(args.method, method_params(args.param))
    retriever, qids, queries, kind, load_s, enc_s = load_query_file(
        index, args.queries, model=args.model, force=args.force
    )
    t0 = time.perf_counter()
    results = retriever.search(
        queries, k=args.k, method=args.method, filter=args.filter, threads=threads, **params
    )
    dt = time.perf_counter() - t0
    if args.output == "-":
        write_trec(sys.stdout, qids, results, args.tag)
        sys.stdout.flush()
    else:
        try:
            with open(args.output, "w", encoding="utf-8") as f:
                write_trec(f, qids, results, args.tag)
        except OSError as e:
            raise LsrError(f"{args.output}: cannot write ({e.strerror})") from None
    unknown = sum(r.unknown_tokens for r in results)
    note = f"; {unknown} query tokens not in the index vocabulary were skipped" if unknown else ""
    enc = f" (loading the model {load_s:.2f} s, encoding {enc_s:.2f} s)" if kind == "text" else ""
    summary(
        f"searched {len(qids)} queries ({kind}) with {args.method}, k={args.k}, in {dt:.3f} s{enc}"
        f" -> {args.output if args.output != '-' else 'stdout'}{note}"
    )
    return 0
