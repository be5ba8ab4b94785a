"""Training losses and sparsity regularisers for learned sparse encoders (used by :mod:`lsr.train`).

Scores are dot products of non-negative (batch, vocab) representations. Every ranking loss takes the
student's scores of each query against its candidates: column 0 the positive, columns 1.. its hard
negatives (and, for the contrastive loss, every other query's documents as in-batch negatives).
"""

from __future__ import annotations

import numpy as np
import torch

LOSSES = ("contrastive", "margin_mse", "kl")
REGULARIZERS = ("flops", "l1", "idf_flops", "none")


def contrastive_scores(
    q: torch.Tensor, docs: torch.Tensor, n_per_query: int, in_batch: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw scores and target columns of a contrastive batch: (B, B*n) every query against every
    document with ``in_batch`` (target ``i * n``), else (B, n) against its own candidates (target 0)."""
    b = q.shape[0]
    if in_batch:
        return q @ docs.t(), torch.arange(b, device=q.device) * n_per_query
    scores = torch.einsum("bv,bnv->bn", q, docs.view(b, n_per_query, -1))
    return scores, torch.zeros(b, dtype=torch.long, device=q.device)


def contrastive(
    q: torch.Tensor,
    docs: torch.Tensor,
    n_per_query: int,
    in_batch: bool = True,
    temperature: float | torch.Tensor = 1.0,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """InfoNCE: cross-entropy of each query's positive against its hard negatives (and, with
    ``in_batch``, every other query's positive and negatives), scores divided by ``temperature``.

    ``q``: (B, V); ``docs``: (B * n_per_query, V), query i's documents at rows i*n .. i*n+n-1, positive
    first. ``mask`` (B, B * n) or (B, n), True where a document must not count as a negative of the
    query (an in-batch false negative, see :func:`false_negative_mask`); the target is never masked.
    Why a temperature: a SPLADE model's scores are dot products in the tens (splade-tiny's positives
    average ~29 on SciFact), where the softmax saturates; at tau = 1 the loss lowers every score,
    which SPLADE can only do by deleting terms. Mean over queries, in nats.
    """
    scores, target = contrastive_scores(q, docs, n_per_query, in_batch)
    scores = scores / temperature
    if mask is not None:
        scores = scores.masked_fill(mask.to(scores.device), float("-inf"))
    return torch.nn.functional.cross_entropy(scores, target)


def false_negative_mask(
    query_ids: list[str],
    doc_ids: list[str],
    relevant: dict[str, set[str]],
    n_per_query: int,
    in_batch: bool = True,
) -> torch.Tensor:
    """Bool mask of the in-batch false negatives of a contrastive batch: True at (i, j) when document
    ``doc_ids[j]`` is judged relevant to query ``query_ids[i]`` (another query's positive that is
    relevant to this one, or a second copy of its own positive) and ``j`` is not query i's own
    positive column ``i * n_per_query``. Shape (B, B * n) with ``in_batch``, else (B, n).
    """
    b = len(query_ids)
    cols = range(len(doc_ids)) if in_batch else None
    width = len(doc_ids) if in_batch else n_per_query
    out = torch.zeros(b, width, dtype=torch.bool)
    for i, qid in enumerate(query_ids):
        rel = relevant.get(qid, set())
        own = i * n_per_query
        if in_batch:
            for j in cols:  # type: ignore[union-attr]
                if j != own and doc_ids[j] in rel:
                    out[i, j] = True
        else:
            for j in range(1, n_per_query):
                if doc_ids[own + j] in rel:
                    out[i, j] = True
    return out


def calibrate_temperature(
    batches: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]],
    lo: float = 0.05,
    hi: float = 200.0,
    points: int = 400,
) -> float:
    """The temperature minimising the mean contrastive loss over ``batches`` of (scores, target, mask).

    ``scores``: (B, C) raw scores; ``target``: (B,) the positive's column of each row; ``mask``:
    (B, C) bool (True: not a negative) or None. Grid search over log tau in [lo, hi] (``points`` values), then a
    parabola through the best grid point and its neighbours. Deterministic; no gradient.
    """
    log_taus = np.linspace(np.log(lo), np.log(hi), points)
    taus = torch.exp(torch.tensor(log_taus, dtype=torch.float64))
    total = torch.zeros(points, dtype=torch.float64)
    for scores, target, mask in batches:
        s = scores.detach().to(torch.float64).cpu()
        b = s.shape[0]
        target = target.cpu()
        z = s.unsqueeze(0) / taus.view(-1, 1, 1)  # (T, B, C)
        if mask is not None:
            z = z.masked_fill(mask.cpu().unsqueeze(0), float("-inf"))
        logp = z - torch.logsumexp(z, dim=2, keepdim=True)
        total += -logp[:, torch.arange(b), target].mean(dim=1)
    k = int(torch.argmin(total))
    if 0 < k < points - 1:  # refine on the log scale with a parabola through three points
        y0, y1, y2 = (float(total[k - 1]), float(total[k]), float(total[k + 1]))
        den = y0 - 2 * y1 + y2
        shift = 0.5 * (y0 - y2) / den if den > 0 else 0.0
        step = float(log_taus[1] - log_taus[0])
        return float(np.exp(log_taus[k] + shift * step))
    return float(taus[k])


def own_scores(q: torch.Tensor, docs: torch.Tensor, n_per_query: int) -> torch.Tensor:
    """(B, n_per_query) scores of each query against its own candidates (positive first)."""
    b = q.shape[0]
    return torch.einsum("bv,bnv->bn", q, docs.view(b, n_per_query, -1))


def margin_mse(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """MarginMSE (Hofstaetter et al.): mean over (query, negative) of ((s+ - s-) - (t+ - t-))^2.

    ``student``, ``teacher``: (B, n) scores, column 0 the positive.
    """
    s = student[:, :1] - student[:, 1:]
    t = teacher[:, :1] - teacher[:, 1:]
    return ((s - t) ** 2).mean()


def kl_distillation(
    student: torch.Tensor,
    teacher: torch.Tensor,
    temperature: float | torch.Tensor = 1.0,
    teacher_temperature: float | None = None,
) -> torch.Tensor:
    """KL(teacher || student) over each query's candidates, both softmax-normalised (the student at
    ``temperature``, the teacher at ``teacher_temperature``, default the same); mean over queries."""
    log_s = torch.log_softmax(student / temperature, dim=1)
    t_temp = temperature if teacher_temperature is None else teacher_temperature
    log_t = torch.log_softmax(teacher / t_temp, dim=1)
    return (log_t.exp() * (log_t - log_s)).sum(dim=1).mean()


def flops(reps: torch.Tensor, term_weights: torch.Tensor | None = None) -> torch.Tensor:
    """FLOPS (Paria et al.): sum over terms of (mean over the batch of |w|)^2, optionally weighted per term.

    An estimate of the posting-list work a batch of such vectors costs; pushes rarely useful terms to 0.
    """
    per_term = reps.abs().mean(dim=0) ** 2
    if term_weights is not None:
        per_term = per_term * term_weights
    return per_term.sum()


def document_regularizer(
    kind: str, docs: torch.Tensor, n_per_query: int, term_weights: torch.Tensor | None = None
) -> torch.Tensor:
    """The document regulariser as naver/splade averages it: the mean of its value over the positives
    (rows ``i * n``) and over the hard negatives (all other rows), each pooled on its own, so that
    lambda_d means the same thing whatever the number of negatives per query."""
    if n_per_query <= 1:
        return regularizer(kind, docs, term_weights)
    b = docs.shape[0] // n_per_query
    grouped = docs.view(b, n_per_query, -1)
    pos = regularizer(kind, grouped[:, 0], term_weights)
    neg = regularizer(kind, grouped[:, 1:].reshape(b * (n_per_query - 1), -1), term_weights)
    return 0.5 * (pos + neg)


def l1(reps: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of the L1 norm of each vector."""
    return reps.abs().sum(dim=1).mean()


def idf_flops_weights(idf: torch.Tensor) -> torch.Tensor:
    """Per-term weights of the IDF-aware FLOPS (Geng et al., "Towards Competitive Search Relevance for
    Inference-Free Learned Sparse Retrievers"): the penalty on term ``j`` is divided by its IDF, so
    documents keep informative (rare) terms and shed frequent ones, whose query weight is low anyway
    in an inference-free model. IDFs below 1e-3 are clipped so frequent terms get a large, finite cost.
    """
    return 1.0 / idf.clamp(min=1e-3)


def regularizer(kind: str, reps: torch.Tensor, term_weights: torch.Tensor | None = None) -> torch.Tensor:
    """The named sparsity regulariser of ``reps`` (see :data:`REGULARIZERS`)."""
    if kind == "flops":
        return flops(reps)
    if kind == "idf_flops":
        if term_weights is None:
            raise ValueError("idf_flops needs per-term IDF weights")
        return flops(reps, term_weights)
    if kind == "l1":
        return l1(reps)
    if kind == "none":
        return reps.new_zeros(())
    raise ValueError(f"unknown regularizer {kind!r} (known: {', '.join(REGULARIZERS)})")


def warmup_factor(step: int, warmup_steps: int) -> float:
    """Quadratic warm-up of a regulariser's weight: (step / warmup)^2 up to 1 (SPLADE's schedule)."""
    if warmup_steps <= 0:
        return 1.0
    return min(1.0, (step / warmup_steps) ** 2)


def linear_schedule(step: int, warmup_steps: int, total_steps: int) -> float:
    """Learning-rate factor: linear warm-up to 1, then linear decay to 0 at ``total_steps``."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if total_steps <= warmup_steps:
        return 1.0
    return max(0.0, (total_steps - step) / (total_steps - warmup_steps))


def bm25_idf(df: torch.Tensor, n_docs: int) -> torch.Tensor:
    """BM25's non-negative IDF, ``log(1 + (N - df + 0.5) / (df + 0.5))``, per term."""
    return torch.log1p((n_docs - df + 0.5) / (df + 0.5))


__all__ = [
    "LOSSES",
    "REGULARIZERS",
    "bm25_idf",
    "calibrate_temperature",
    "contrastive",
    "contrastive_scores",
    "document_regularizer",
    "false_negative_mask",
    "flops",
    "idf_flops_weights",
    "kl_distillation",
    "l1",
    "linear_schedule",
    "margin_mse",
    "own_scores",
    "regularizer",
    "warmup_factor",
]
