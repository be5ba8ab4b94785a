"""BM25 impact vectors over a tokenizer's word pieces (Anserini's k1 0.9, b 0.4).

Used for BM25 hard negatives in :mod:`lsr.training` and for the inference-free encoder's starting
IDF table. It lives beside the encoders (it needs only a tokenizer) so that neither the encoders
nor the index import :mod:`lsr.training`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from lsr.vectors import SparseBatch, Vocabulary


def bm25_vectors(
    tokenizer: Any, texts: Sequence[str], k1: float = 0.9, b: float = 0.4
) -> tuple[SparseBatch, Vocabulary]:
    """BM25 impact vectors of ``texts`` over the tokenizer's word pieces (special tokens dropped)."""
    vocab = Vocabulary(tokenizer.convert_ids_to_tokens(list(range(len(tokenizer)))))
    special = set(getattr(tokenizer, "all_special_ids", []))
    ids = tokenizer(list(texts), add_special_tokens=False, truncation=False)["input_ids"]
    counts = [Counter(t for t in row if t not in special) for row in ids]
    n = len(counts)
    lengths = np.array([sum(c.values()) for c in counts], np.float64)
    avg = lengths.mean() if n and lengths.mean() > 0 else 1.0
    df = Counter(t for c in counts for t in c)
    indptr = np.zeros(n + 1, np.int64)
    indices, data = [], []
    for i, c in enumerate(counts):
        terms = np.array(sorted(c), np.int32)
        tf = np.array([c[t] for t in terms], np.float64)
        dfs = np.array([df[t] for t in terms], np.float64)
        idf = np.log1p((n - dfs + 0.5) / (dfs + 0.5))
        w = idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * lengths[i] / avg))
        keep = w > 0
        indices.append(terms[keep])
        data.append(w[keep].astype(np.float32))
        indptr[i + 1] = indptr[i] + int(keep.sum())
    batch = SparseBatch(
        indptr,
        np.concatenate(indices) if indices else np.zeros(0, np.int32),
        np.concatenate(data) if data else np.zeros(0, np.float32),
        vocab,
    )
    return batch, vocab
