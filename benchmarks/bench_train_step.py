"""Cost of one SPLADE training step: the tiled max-pool projection with a sparse backward
(``lsr.encoders.maxpool``, what ``lsr train`` uses) against plain autograd over the full
(batch, length, vocabulary) logits, on the same batch, in one process, runs interleaved.

A step = forward of ``--queries`` SciFact train queries and ``--docs`` SciFact documents, an in-batch
contrastive loss, backward. Median seconds over ``--repeats``; also checks both give the same gradient.

    python benchmarks/bench_train_step.py --queries 16 --docs 32 --repeats 3 --output benchmarks/results/train_step.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np


def plain_forward(enc, texts, max_length):
    """Textbook SPLADE with autograd: full logits, masked max over tokens, log1p(relu)."""
    import torch

    device = next(enc.model.parameters()).device
    x = enc.tokenizer(list(texts), truncation=True, max_length=max_length, padding=True, return_tensors="pt")
    ids, mask = x["input_ids"].to(device), x["attention_mask"].to(device)
    logits = enc.model(input_ids=ids, attention_mask=mask).logits
    logits = logits.masked_fill(~mask.bool().unsqueeze(-1), float("-inf"))
    return torch.log1p(torch.relu(logits.max(dim=1).values))


def main(argv: list[str] | None = None) -> int:
    import torch

    import lsr
    from lsr.eval.datasets import beir_folder
    from lsr.eval.environment import cpu_name
    from lsr.losses import contrastive
    from lsr.texts import iter_texts

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--queries", type=int, default=16)
    ap.add_argument("--docs", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--output", default="benchmarks/results/train_step.json")
    a = ap.parse_args(argv)
    f = beir_folder("scifact")
    docs = [r.full_text for r, _ in zip(iter_texts(f.corpus), range(a.docs), strict=False)]
    qpath = os.path.join(f.root, "queries.train.jsonl")
    queries = [r.text for r, _ in zip(iter_texts(qpath), range(a.queries), strict=False)]
    enc = lsr.load_encoder("splade-tiny")
    enc.model.eval()  # no dropout: both paths see the same network
    per = a.docs // a.queries

    def step(fwd):
        enc.model.zero_grad(set_to_none=True)
        t = time.perf_counter()
        q = fwd(queries, "query")
        d = fwd(docs[: per * a.queries], "document")
        contrastive(q, d, per).backward()
        return time.perf_counter() - t

    sparse = lambda t, w: enc.forward_train(t, w)  # noqa: E731
    plain = lambda t, w: plain_forward(enc, t, enc.query_max_length if w == "query" else enc.doc_max_length)  # noqa: E731
    step(sparse)
    g_sparse = [p.grad.clone() for p in enc.model.parameters() if p.grad is not None]
    step(plain)
    g_plain = [p.grad.clone() for p in enc.model.parameters() if p.grad is not None]
    max_diff = max(float((x - y).abs().max()) for x, y in zip(g_sparse, g_plain, strict=True))
    times: dict[str, list[float]] = {"sparse_backward": [], "plain_autograd": []}
    for _ in range(a.repeats):
        times["sparse_backward"].append(step(sparse))
        times["plain_autograd"].append(step(plain))
    rec = {
        "command": "python benchmarks/bench_train_step.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "cpu": cpu_name(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "queries": len(queries),
        "docs": per * a.queries,
        "seconds": {k: float(np.median(v)) for k, v in times.items()},
        "all_seconds": times,
        "max_abs_grad_diff": max_diff,
    }
    rec["speedup"] = rec["seconds"]["plain_autograd"] / rec["seconds"]["sparse_backward"]
    os.makedirs(os.path.dirname(os.path.abspath(a.output)), exist_ok=True)
    with open(a.output, "w", encoding="utf-8") as fh:
        json.dump(rec, fh, indent=2)
    print(json.dumps({k: rec[k] for k in ("seconds", "speedup", "max_abs_grad_diff", "torch_threads")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
