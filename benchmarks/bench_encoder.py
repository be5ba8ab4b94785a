"""Encoder benchmark: SpladeEncoder against the textbook SPLADE implementation, and against the floor.

Same process, same texts (the first N SciFact documents, title + " " + text), same torch threads:
  * docs/s of the naive reference (``tests/splade_reference.py``: full logits, log1p over
    batch x length x vocab, masked max), of ``SpladeEncoder`` in float32 and bfloat16 (``--no-bf16`` skips it);
  * the largest difference between the float32 vectors and the reference (must be <= 1e-5);
  * bfloat16's agreement with float32 on each vector's top-64 terms;
  * the floor: docs/s if the vocabulary projection (2 x tokens x hidden x vocab FLOPs per document)
    ran at the matmul rate measured here on a (8192 x hidden) @ (hidden x vocab) product.
Medians over ``--repeats`` runs after a warm-up. Writes JSON (and prints a table).

    python benchmarks/bench_encoder.py --n-docs 256 --output benchmarks/results/encoder.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

from lsr.eval.environment import cpu_name

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests"))


def median_time(fn, repeats):
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts)), out


def matmul_rate(hidden, vocab, dtype, repeats=3):
    import torch

    a = torch.randn(8192, hidden, dtype=dtype)
    b = torch.randn(hidden, vocab, dtype=dtype)
    out = torch.empty(8192, vocab, dtype=dtype)
    torch.mm(a, b, out=out)
    t, _ = median_time(lambda: torch.mm(a, b, out=out), repeats)
    return 2 * 8192 * hidden * vocab / t


def top_overlap(a, b, k=64):
    vals = []
    for x, y in zip(a, b, strict=True):
        tx = np.argsort(-x)[:k]
        tx = set(tx[x[tx] > 0].tolist())
        ty = np.argsort(-y)[:k]
        ty = set(ty[y[ty] > 0].tolist())
        vals.append(len(tx & ty) / max(1, len(tx)))
    return float(np.mean(vals)), float(np.min(vals))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-docs", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--model", default="splade-tiny")
    ap.add_argument(
        "--bf16",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time precision=bfloat16 (default; --no-bf16 skips it: it is emulated, so several times "
        "slower, on CPUs without bf16 units)",
    )
    ap.add_argument("--output", default="benchmarks/results/encoder.json")
    a = ap.parse_args()

    import torch
    from splade_reference import naive_splade

    import lsr
    from lsr.eval.datasets import beir_folder
    from lsr.texts import iter_texts

    corpus = beir_folder("scifact").corpus
    texts = [r.full_text for r, _ in zip(iter_texts(corpus), range(a.n_docs), strict=False)]
    enc = lsr.load_encoder(a.model)
    hidden = int(enc._tiles[0][1].shape[0])
    vocab = enc.vocab_size
    tokens = np.array(
        [len(x) for x in enc.tokenizer(texts, truncation=True, max_length=enc.doc_max_length)["input_ids"]]
    )
    rec = {
        "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
        "git_commit": subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=REPO
        ).stdout.strip(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "cpu": cpu_name(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "model": a.model,
        "n_docs": len(texts),
        "doc_max_length": enc.doc_max_length,
        "mean_tokens_per_doc": float(tokens.mean()),
        "repeats": a.repeats,
    }
    # warm-up both paths on a few texts
    enc.encode_documents(texts[:8])
    naive_splade(enc.model, enc.tokenizer, texts[:8])
    t_naive, ref = median_time(
        lambda: naive_splade(enc.model, enc.tokenizer, texts, max_length=enc.doc_max_length), a.repeats
    )
    t_fast, fast = median_time(lambda: enc.encode_documents(texts), a.repeats)
    fast = fast.to_scipy().toarray()
    rec["naive_docs_per_s"] = len(texts) / t_naive
    rec["fast_float32_docs_per_s"] = len(texts) / t_fast
    rec["speedup_vs_naive"] = t_naive / t_fast
    rec["max_abs_diff_vs_naive"] = float(np.abs(fast - ref).max())
    rate32 = matmul_rate(hidden, vocab, torch.float32)
    flops_per_doc = 2 * tokens.mean() * hidden * vocab
    rec["matmul_gflops_float32"] = rate32 / 1e9
    rec["projection_floor_docs_per_s_float32"] = rate32 / flops_per_doc
    rec["fast_share_of_floor"] = rec["fast_float32_docs_per_s"] / rec["projection_floor_docs_per_s_float32"]
    if a.bf16:
        enc16 = lsr.load_encoder(a.model, precision="bfloat16")
        enc16.encode_documents(texts[:4])
        t16, v16 = median_time(lambda: enc16.encode_documents(texts), a.repeats)
        rec["fast_bfloat16_docs_per_s"] = len(texts) / t16
        rec["bfloat16_top64_overlap_mean"], rec["bfloat16_top64_overlap_min"] = top_overlap(
            fast, v16.to_scipy().toarray()
        )
        rate16 = matmul_rate(hidden, vocab, torch.bfloat16, 1)
        rec["matmul_gflops_bfloat16"] = rate16 / 1e9
        rec["projection_floor_docs_per_s_bfloat16"] = rate16 / flops_per_doc
        rec["bfloat16_speedup_vs_float32"] = t_fast / t16
    os.makedirs(os.path.dirname(os.path.abspath(a.output)), exist_ok=True)
    with open(a.output, "w") as f:
        json.dump(rec, f, indent=2)
    print(_table(rec))
    print(f"wrote {a.output}")
    return 0


def _table(r: dict) -> str:
    """A short human-readable summary of the record."""
    lines = [
        f"{r['n_docs']} SciFact docs, {r['mean_tokens_per_doc']:.1f} tokens/doc (max {r['doc_max_length']}), "
        f"{r['torch_threads']} threads, {r['cpu']}, torch {r['torch']}",
        f"{'path':<22}{'docs/s':>10}{'vs naive':>10}",
        f"{'naive reference':<22}{r['naive_docs_per_s']:>10.2f}{1.0:>9.2f}x",
        f"{'SpladeEncoder fp32':<22}{r['fast_float32_docs_per_s']:>10.2f}{r['speedup_vs_naive']:>9.2f}x",
    ]
    if "fast_bfloat16_docs_per_s" in r:
        x = r["fast_bfloat16_docs_per_s"] / r["naive_docs_per_s"]
        lines.append(f"{'SpladeEncoder bf16':<22}{r['fast_bfloat16_docs_per_s']:>10.2f}{x:>9.2f}x")
    lines.append(
        f"fp32 max |diff| vs naive {r['max_abs_diff_vs_naive']:.2e}; fp32 matmul "
        f"{r['matmul_gflops_float32']:.1f} GFLOP/s -> projection floor "
        f"{r['projection_floor_docs_per_s_float32']:.2f} docs/s (fast fp32 at {r['fast_share_of_floor']:.0%})"
    )
    if "fast_bfloat16_docs_per_s" in r:
        lines.append(
            f"bf16 top-64 overlap with fp32: mean {r['bfloat16_top64_overlap_mean']:.3f}, min "
            f"{r['bfloat16_top64_overlap_min']:.3f}; bf16 matmul {r['matmul_gflops_bfloat16']:.1f} GFLOP/s "
            f"-> 'floor' {r['projection_floor_docs_per_s_bfloat16']:.2f} docs/s (not a bound without bf16 "
            f"units: emulated bf16 speed depends on the product's shape, and the encoder's tiles run faster)"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
