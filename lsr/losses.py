"""Training losses and sparsity regularisers for learned sparse encoders (used by :mod:`lsr.train`).

Scores are dot products of non-negative (batch, vocab) representations. Every ranking loss takes the
student's scores of each query against its candidates: column 0 the positive, columns 1.. its hard
negatives (and, for the contrastive loss, every other query's documents as in-batch negatives).
"""

from __future__ import annotations

import torch

LOSSES = ("contrastive", "margin_mse", "kl")
REGULARIZERS = ("flops", "l1", "idf_flops", "none")


def contrastive(q: torch.Tensor, docs: torch.Tensor, n_per_query: int, in_batch: bool = True) -> torch.Tensor:
    """InfoNCE: cross-entropy of each query's positive against its hard negatives (and, with
    ``in_batch``, every other query's positive and negatives).

    ``q``: (B, V); ``docs``: (B * n_per_query, V), query i's documents at rows i*n .. i*n+n-1, positive
    first. Mean over queries, in nats.
    """
    b = q.shape[0]
    if in_batch:
        scores = q @ docs.t()  # (B, B*n)
        target = torch.arange(b, device=q.device) * n_per_query
    else:
        scores = torch.einsum("bv,bnv->bn", q, docs.view(b, n_per_query, -1))
        target = torch.zeros(b, dtype=torch.long, device=q.device)
    return torch.nn.functional.cross_entropy(scores, target)


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


def kl_distillation(student: torch.Tensor, teacher: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """KL(teacher || student) over each query's candidates, both softmax-normalised; mean over queries."""
    log_s = torch.log_softmax(student / temperature, dim=1)
    log_t = torch.log_softmax(teacher / temperature, dim=1)
    return (log_t.exp() * (log_t - log_s)).sum(dim=1).mean()


def flops(reps: torch.Tensor, term_weights: torch.Tensor | None = None) -> torch.Tensor:
    """FLOPS (Paria et al.): sum over terms of (mean over the batch of |w|)^2, optionally weighted per term.

    An estimate of the posting-list work a batch of such vectors costs; pushes rarely useful terms to 0.
    """
    per_term = reps.abs().mean(dim=0) ** 2
    if term_weights is not None:
        per_term = per_term * term_weights
    return per_term.sum()


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
    "contrastive",
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
