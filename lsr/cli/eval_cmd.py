"""``lsr eval``: the BEIR evaluation harness (:mod:`lsr.eval.harness`) from the command line."""

from __future__ import annotations

import json
import os
from typing import Any

from lsr.cli.common import apply_threads, check_positive, encoder_options, summary
from lsr.errors import LsrError


def run(args: Any) -> int:
    from lsr.eval import harness

    if args.compare:
        if args.dataset or args.output:
            raise LsrError("--compare DIR1 DIR2 takes no --dataset or --output")
        result = harness.compare_dirs(args.compare[0], args.compare[1])
        print(harness.compare_table(result), end="")
        n_sig = sum(1 for r in result["rows"] if r["significant"])
        summary(f"{len(result['rows'])} comparisons, {n_sig} significant at p < {result['max_p']}")
        return 0
    if not args.dataset or not args.output:
        raise LsrError("lsr eval needs --dataset and --output (or --compare DIR1 DIR2)")
    check_positive("batch-size", args.batch_size)
    check_positive("torch-threads", args.torch_threads)
    threads = apply_threads(args.threads)
    params: dict[str, dict[str, Any]] = {}
    if args.params:
        try:
            params = json.loads(args.params)
        except json.JSONDecodeError as e:
            raise LsrError(f"--params is not JSON: {e}") from None
        if not isinstance(params, dict) or not all(isinstance(v, dict) for v in params.values()):
            raise LsrError('--params must be a JSON object {"method": {"param": value}}')
    opts = encoder_options(args)
    opts.pop("batch_size", None)
    report = harness.run_eval(
        args.dataset,
        args.model,
        args.output,
        methods=args.methods,
        k=args.k,
        cache_dir=args.cache_dir,
        split=args.split,
        threads=threads,
        batch_size=args.batch_size,
        method_params=params,
        bm25=args.bm25,
        pyserini_python=args.pyserini_python,
        torch_threads=args.torch_threads or threads,
        warmup=args.warmup,
        encoder_options=opts,
        plots=not args.no_plots,
    )
    with open(os.path.join(args.output, "report.md"), encoding="utf-8") as f:
        print(f.read(), end="")
    first = report["settings"]["methods"][0]
    m = report["systems"][first]["metrics"]
    summary(
        f"{report['dataset']['name']}: {first} nDCG@10 = {m['ndcg@10']:.4f} on "
        f"{report['dataset']['evaluated_queries']} queries; report in {os.path.join(args.output, 'report.md')}"
    )
    return 0
