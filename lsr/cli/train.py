"""``lsr train``: a thin layer over :func:`lsr.training.train`."""

from __future__ import annotations

import json
from typing import Any

from lsr.cli.common import apply_threads, summary
from lsr.errors import LsrError


def _number_or(value: str, flag: str, words: tuple[str, ...]) -> float | str | None:
    """A flag that takes a number or one of ``words`` ("none" -> None)."""
    if value in words:
        return None if value == "none" else value
    try:
        return float(value)
    except ValueError:
        raise LsrError(f"{flag} must be a number or one of {', '.join(words)}, not {value!r}") from None


def run(args: Any) -> int:
    from lsr.training import TrainConfig, train

    threads = apply_threads(args.threads)
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
        temperature=_number_or(args.temperature, "--temperature", ("calibrate", "learn")),
        false_negatives_mask=not args.no_false_negative_mask,
        loss=args.loss,
        in_batch=not args.no_in_batch,
        batch_size=args.batch_size,
        steps=args.steps,
        epochs=args.epochs,
        lr=args.lr,
        warmup_steps=args.warmup_steps,
        embedding_lr_scale=args.embedding_lr_scale,
        grad_clip=args.grad_clip,
        reg=args.reg,
        lambda_q=args.lambda_q,
        lambda_d=args.lambda_d,
        reg_warmup_steps=args.reg_warmup_steps,
        target_doc_nnz=_number_or(args.target_doc_nnz, "--target-doc-nnz", ("start", "none")),
        checkpoint_every=args.checkpoint_every,
        resume=True if args.resume else (False if args.no_resume else None),
        threads=threads,
        seed=args.seed,
        device=args.device,
        dev_split=args.dev_split,
        dev_fraction=args.dev_fraction,
        dev_candidates=args.dev_candidates,
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
    if report["best"]:
        line += f"; temperature {report['temperature']:.3g}; best dev {json.dumps({k: round(v, 4) for k, v in report['best'].items()})} (written as the output)"
    summary(line)
    return 0
