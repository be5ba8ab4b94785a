"""``lsr train``: a thin layer over :func:`lsr.training.train`."""

from __future__ import annotations

import json
from typing import Any

from lsr.cli.common import apply_threads, summary


def run(args: Any) -> int:
    from lsr.training import TrainConfig, train

    apply_threads(args.threads)
    opts: dict[str, Any] = {}
    if args.doc_max_length is not None:
        opts["doc_max_length"] = args.doc_max_length
    if args.query_max_length is not None:
        opts["query_max_length"] = args.query_max_length
    cfg = TrainConfig(
        model=args.model,
        data=args.data,
        output=args.output,
        kind=args.kind,
        split=args.split,
        negatives=args.negatives,
        n_negatives=args.n_negatives,
        negatives_depth=args.negatives_depth,
        teacher=args.teacher,
        loss=args.loss,
        in_batch=not args.no_in_batch,
        batch_size=args.batch_size,
        steps=args.steps,
        epochs=args.epochs,
        lr=args.lr,
        warmup_steps=args.warmup_steps,
        reg=args.reg,
        lambda_q=args.lambda_q,
        lambda_d=args.lambda_d,
        reg_warmup_steps=args.reg_warmup_steps,
        checkpoint_every=args.checkpoint_every,
        resume=not args.no_resume,
        seed=args.seed,
        device=args.device,
        dev_split=args.dev_split,
        dev_fraction=args.dev_fraction,
        eval_every=args.eval_every,
        learn_query_weights=args.learn_query_weights,
        encoder_options=opts,
    )
    report = train(cfg, show_progress=True)
    last = report["last"]
    line = (
        f"trained {report['steps']} steps in {report['seconds']:.0f} s on {report['device']}: "
        f"loss {last.get('loss', float('nan')):.4f}, doc nnz {last.get('d_nnz', 0):.0f}, "
        f"query nnz {last.get('q_nnz', 0):.0f} -> {args.output}"
    )
    if report["dev"]:
        line += f"; dev {json.dumps({k: round(v, 4) for k, v in report['dev'][-1].items()})}"
    summary(line)
    return 0
