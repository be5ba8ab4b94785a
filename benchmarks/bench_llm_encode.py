"""Encode throughput of SPLADE over a decoder-only LLM backbone (kind ``splade``, ``backbone="causal-lm"``).

A random Llama-architecture model of about 100M parameters is built from a config (no hub: the weights are
random, which changes nothing about the arithmetic's cost) and saved with the bundled model's tokenizer
(30,522 word pieces; the head has ``--vocab`` rows, 32,000 by default as Mistral/Llama). It then encodes
the first ``--docs`` SciFact documents (title + " " + text) with and without echo, and prints docs/s (the
median of ``--repeats`` timed runs after one warm-up) as one JSON object. Run it on a quiet machine::

    python benchmarks/bench_llm_encode.py --docs 256 --repeats 3 --threads 16
    python benchmarks/bench_llm_encode.py --docs 1024 --device cuda --precision bfloat16   # on a GPU
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="float32")
    ap.add_argument("--weights-dtype", default="float32")
    ap.add_argument("--vocab", type=int, default=32_000)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=16)
    a = ap.parse_args()

    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    import lsr
    from lsr.encoders.base import BUNDLED_MODELS
    from lsr.texts import iter_texts

    if a.threads:
        torch.set_num_threads(a.threads)
    cfg = LlamaConfig(
        vocab_size=a.vocab,
        hidden_size=768,
        intermediate_size=2048,
        num_hidden_layers=10,
        num_attention_heads=12,
        num_key_value_heads=4,
        max_position_embeddings=2048,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg)
    n_params = sum(p.numel() for p in model.parameters())
    from lsr.eval.datasets import beir_folder

    corpus = beir_folder("scifact").corpus  # the bundled SciFact
    texts = [r.full_text for _, r in zip(range(a.docs), iter_texts(corpus), strict=False)]
    out: dict = {"params": n_params, "docs": len(texts), "device": a.device, "precision": a.precision,
                 "weights_dtype": a.weights_dtype, "threads": torch.get_num_threads(), "docs_per_s": {}}  # fmt: skip
    with tempfile.TemporaryDirectory() as d:
        model.save_pretrained(d)
        AutoTokenizer.from_pretrained(BUNDLED_MODELS["splade-tiny"]).save_pretrained(d)
        del model
        for echo in (False, True):
            enc = lsr.load_encoder(
                d,
                echo=echo,
                device=a.device,
                precision=a.precision,
                weights_dtype=a.weights_dtype,
                doc_max_length=a.max_length,
                query_max_length=a.max_length,
                batch_size=a.batch_size,
            )
            enc.encode_documents(texts[: a.batch_size])  # warm-up
            times = []
            for _ in range(a.repeats):
                t0 = time.perf_counter()
                enc.encode_documents(texts)
                times.append(time.perf_counter() - t0)
            out["docs_per_s"]["echo" if echo else "plain"] = round(len(texts) / statistics.median(times), 2)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
