"""Ranking metrics: :func:`evaluate_run` (ranx) is the one evaluation of ``lsr eval`` and ``lsr demo``;
:func:`ndcg_at_k` is a plain-Python nDCG@k in trec_eval's conventions (the tests' reference and
training's dev figure).

Both rank a run by score descending; they differ only on exact score ties: :func:`evaluate_run`
ranks tied documents by doc id ascending (the order of the run files, :func:`lsr.eval.runs.ranked`),
trec_eval and :func:`ndcg_at_k` by doc id descending.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from lsr.errors import LsrError
from lsr.eval.runs import Run, ranked

METRICS = ("ndcg@10", "recall@100", "recall@1000", "mrr@10", "map")


def _ndcg(docs: Sequence[str], judged: Mapping[str, int], k: int) -> float | None:
    """nDCG@k of one ranked list of doc ids (linear graded gains, log2 discount); None when the query
    has no positive judgment."""
    ideal = sorted((g for g in judged.values() if g > 0), reverse=True)[:k]
    if not ideal:
        return None
    dcg = sum(judged.get(d, 0) / math.log2(i + 2) for i, d in enumerate(docs[:k]) if judged.get(d, 0) > 0)
    return dcg / sum(g / math.log2(i + 2) for i, g in enumerate(ideal))


def ndcg_at_k(
    run: Mapping[str, Mapping[str, float]], qrels: Mapping[str, Mapping[str, int]], k: int = 10
) -> float:
    """Mean nDCG@k over the queries in ``qrels`` that have a positive judgment.

    Gains are the graded relevance (linear, as trec_eval's ``ndcg_cut``), discount ``log2(rank + 1)``;
    the run is ranked by score descending, ties by doc id descending (trec_eval's order). A judged
    query missing from the run scores 0.
    """
    vals = []
    for qid, judged in qrels.items():
        docs = sorted(run.get(qid, {}).items(), key=lambda x: (x[1], x[0]), reverse=True)
        v = _ndcg([d for d, _ in docs], judged, k)
        if v is not None:
            vals.append(v)
    return sum(vals) / len(vals) if vals else 0.0


@contextlib.contextmanager
def quiet_ranx() -> Iterator[None]:
    """Silence the ``NumbaTypeSafetyWarning`` ranx's own kernels raise when numba compiles them (e.g.
    "unsafe cast from uint64 to int64" in its RRF fusion): ranx's code, not ours, and noise on every
    ``lsr eval`` with a cold numba cache. Other warnings pass."""
    try:
        from numba.core.errors import NumbaTypeSafetyWarning
    except ImportError:  # pragma: no cover - numba is a core dependency
        yield
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NumbaTypeSafetyWarning)
        yield


CODE_WIDTH = 10  # digits of the doc-id codes ranx sees (up to 10**10 distinct documents)


def id_codes(*collections: Mapping[str, Any]) -> dict[str, str]:
    """A code for every doc id in ``collections`` (qrels, runs, or any mapping of query -> documents
    as a mapping or (doc, score) pairs): its position among the sorted ids as ``CODE_WIDTH`` digits.

    ranx stores doc ids in numpy string arrays whose dtype is as wide as the longest id, and numba
    compiles its kernels again for each width (~15 s for a qrels and a run on these machines, at
    every new collection, and in every fresh environment). Handing ranx fixed-width codes compiles
    them once; the codes sort as the ids do, so every order ranx derives from ids is unchanged.
    """
    ids: set[str] = set()
    for coll in collections:
        for docs in coll.values():
            ids.update(docs.keys() if isinstance(docs, Mapping) else (str(d) for d, _ in docs))
    if len(ids) >= 10**CODE_WIDTH:  # pragma: no cover - far beyond any collection
        raise LsrError(f"{len(ids)} distinct doc ids: more than ranx's codes can number")
    return {d: f"{i:0{CODE_WIDTH}d}" for i, d in enumerate(sorted(ids))}


def ranx_qrels(qrels: Mapping[str, Mapping[str, int]], codes: Mapping[str, str] | None = None) -> Any:
    """``qrels`` as a ranx Qrels, doc ids replaced by their ``codes`` (:func:`id_codes`) when given."""
    from ranx import Qrels

    if codes is not None:
        return Qrels({q: {codes[d]: g for d, g in docs.items()} for q, docs in qrels.items()})
    return Qrels({q: dict(d) for q, d in qrels.items()})


def ranx_run(run: Run, name: str, by_rank: bool = False, codes: Mapping[str, str] | None = None) -> Any:
    """``run`` as a ranx Run named ``name`` (queries with no hit are left out: ranx needs at least one
    document per query; ``make_comparable`` scores them 0), doc ids replaced by their ``codes``
    (:func:`id_codes`) when given.

    With ``by_rank`` each document's score is replaced by ``n - rank`` (rank from 1 in :func:`ranked`
    order): rank-based metrics are unchanged, and ranx, whose sort (numpy's quicksort) orders exact
    ties arbitrarily in lists longer than 16, sees no tie, so ties rank by doc id ascending exactly.
    """
    from ranx import Run as RanxRun

    def code(d: str) -> str:
        return codes[d] if codes is not None else d

    if by_rank:
        return RanxRun(
            {
                q: {code(d): float(len(v) - i) for i, (d, _) in enumerate(ranked(v))}
                for q, v in run.items()
                if v
            },
            name=name,
        )
    return RanxRun({q: {code(str(d)): s for d, s in dict(v).items()} for q, v in run.items() if v}, name=name)


def evaluate_run(
    run: Run, qrels: Mapping[str, Mapping[str, int]], metrics: Sequence[str] = METRICS
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """(mean of each metric, per-query values) over the queries of ``qrels`` (pass judged queries only).

    A query of ``qrels`` with no hit scores 0; exact score ties rank by doc id ascending. Uses ranx
    (the ``eval`` extra); without it, ``ndcg@k`` metrics are computed here with the same formula and
    tie order (so ``lsr demo`` runs on the core install), and any other metric is an error.
    """
    try:
        from ranx import evaluate
    except ImportError:
        return _evaluate_without_ranx(run, qrels, metrics)
    judged = {q: v for q, v in run.items() if q in qrels}
    codes = id_codes(qrels, judged)
    rq = ranx_qrels(qrels, codes)
    rr = ranx_run(judged, "run", by_rank=True, codes=codes)
    if len(rr) == 0:
        return {m: 0.0 for m in metrics}, {m: {q: 0.0 for q in qrels} for m in metrics}
    with quiet_ranx():
        means = evaluate(rq, rr, list(metrics), make_comparable=True)
    if len(metrics) == 1:
        means = {metrics[0]: means}
    per_query = {m: {q: float(v) for q, v in rr.scores[m].items()} for m in metrics}
    return {m: float(v) for m, v in means.items()}, per_query


def _evaluate_without_ranx(
    run: Run, qrels: Mapping[str, Mapping[str, int]], metrics: Sequence[str]
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    ks = {}
    for m in metrics:
        name, _, cut = m.partition("@")
        if name != "ndcg" or not cut.isdigit():
            raise LsrError(f"metric {m!r} needs ranx: pip install 'lsr[eval]'")
        ks[m] = int(cut)
    per_query: dict[str, dict[str, float]] = {m: {} for m in metrics}
    for q, judged in qrels.items():
        docs = [d for d, _ in ranked(run.get(q, []))]
        for m, k in ks.items():
            per_query[m][q] = _ndcg(docs, judged, k) or 0.0
    means = {m: sum(v.values()) / len(v) if v else 0.0 for m, v in per_query.items()}
    return means, per_query
