"""Ranking metrics computed as trec_eval / pytrec_eval do (used by the demo and the tests; the full
harness uses ranx)."""

from __future__ import annotations

import math
from collections.abc import Mapping


def ndcg_at_k(
    run: Mapping[str, Mapping[str, float]], qrels: Mapping[str, Mapping[str, int]], k: int = 10
) -> float:
    """Mean nDCG@k over the queries in ``qrels`` that have a positive judgment.

    Gains are the graded relevance (linear, as trec_eval's ``ndcg_cut``), discount ``log2(rank + 1)``;
    the run is ranked by score descending, ties by doc id descending (trec_eval's order). A judged
    query missing from the run scores 0.
    """
    total, n = 0.0, 0
    for qid, judged in qrels.items():
        ideal = sorted((g for g in judged.values() if g > 0), reverse=True)[:k]
        if not ideal:
            continue
        n += 1
        docs = run.get(qid, {})
        ranked = sorted(docs.items(), key=lambda x: (x[1], x[0]), reverse=True)[:k]
        dcg = sum(
            judged.get(d, 0) / math.log2(i + 2) for i, (d, _) in enumerate(ranked) if judged.get(d, 0) > 0
        )
        idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
        total += dcg / idcg
    return total / n if n else 0.0
