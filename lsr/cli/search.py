"""``lsr search``: queries -> TREC run (``qid Q0 docid rank score tag``)."""

from __future__ import annotations

import sys
import time
from typing import Any

from lsr.cli.common import check_positive, load_query_file, method_params, summary


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
    for qid, res in zip(qids, results, strict=True):
        for rank, (doc, score) in enumerate(zip(res.ids, res.scores, strict=True), 1):
            f.write(f"{qid} Q0 {doc} {rank} {score:.6f} {tag}\n")


def run(args: Any) -> int:
    from lsr.errors import LsrError
    from lsr.index.searcher import _check_k

    _check_k(args.k)
    check_positive("threads", args.threads)
    if not args.tag or any(c.isspace() for c in args.tag):
        raise LsrError("--tag must be one word")
    index = open_for_search(args.index, args.ray, args.replicas)
    params = index.check_params(args.method, method_params(args.param))
    qids, queries, kind, enc_s = load_query_file(index, args.queries, force=args.force, model=args.model)
    t0 = time.perf_counter()
    results = index.search(
        queries, k=args.k, method=args.method, threads=args.threads, force=args.force, **params
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
    enc = f", encoding {enc_s:.2f} s" if kind == "text" else ""
    summary(
        f"searched {len(qids)} queries ({kind}) with {args.method}, k={args.k}, in {dt:.3f} s{enc}"
        f" -> {args.output if args.output != '-' else 'stdout'}{note}"
    )
    return 0
