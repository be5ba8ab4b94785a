"""The textbook SPLADE encoder, kept as the oracle for :class:`lsr.encoders.splade.SpladeEncoder`.

It pads every batch to its longest text, runs the full masked LM, applies log(1 + ReLU(x)) to the
whole batch x length x vocab logits tensor, masks padding and pools over the tokens: simple, slow,
obviously right. Used by the tests and by ``benchmarks/bench_encoder.py`` (as the speed baseline).
"""

from __future__ import annotations

import numpy as np
import torch


def naive_splade(model, tokenizer, texts, max_length=256, pooling="max", batch_size=32) -> np.ndarray:
    """Dense (len(texts), vocab) float32 SPLADE weights."""
    out = []
    with torch.inference_mode():
        for s in range(0, len(texts), batch_size):
            x = tokenizer(
                texts[s : s + batch_size],
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            )
            act = torch.log1p(torch.relu(model(**x).logits)) * x["attention_mask"].unsqueeze(-1)
            out.append(act.amax(dim=1) if pooling == "max" else act.sum(dim=1))
    return torch.cat(out).numpy() if out else np.zeros((0, model.config.vocab_size), np.float32)
