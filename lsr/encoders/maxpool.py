"""Max-pooled vocabulary projection with a sparse backward: the training-time core of SPLADE.

SPLADE's document weight for term ``v`` is ``log1p(relu(max_t (h_t . W_v + b_v)))``. Written with
plain autograd, the (batch, length, vocab) logits tensor is built, kept for the backward and multiplied
back through twice (gradients of ``h`` and ``W``): ~3x the inference FLOPs and a GB of memory per batch.
But the gradient of a max reaches only the arg-max token, and ``relu`` zeroes it for every term whose
max logit is <= 0: of the batch x vocab pooled entries only the few hundred active terms per text carry
a gradient. :class:`MaxPoolProjection` therefore computes the forward pass in vocabulary tiles (never the
whole logits tensor), keeps only the arg-max token per (text, term), and in the backward scatters the
non-zero output gradients into ``h``, ``W`` and ``b`` with ``index_add`` — exact, not an approximation.
"""

from __future__ import annotations

from typing import Any

import torch

TILE = 2048  # vocabulary columns per forward tile


class MaxPoolProjection(torch.autograd.Function):
    """``out[b, v] = max over valid t of (h[b, t] . weight[v] + bias[v])``; backward through the arg-max only.

    ``h``: (batch, length, hidden) float; ``mask``: (batch, length) bool, at least one True per row;
    ``weight``: (vocab, hidden); ``bias``: (vocab,). Returns (batch, vocab) raw max logits.
    """

    @staticmethod
    def forward(
        ctx: Any, h: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor
    ) -> torch.Tensor:
        n, length, _ = h.shape
        vocab = weight.shape[0]
        out = torch.empty((n, vocab), dtype=h.dtype, device=h.device)
        arg = torch.empty((n, vocab), dtype=torch.long, device=h.device)
        pad = torch.zeros((n, length, 1), dtype=h.dtype, device=h.device)
        pad.masked_fill_(~mask.bool().unsqueeze(-1), float("-inf"))
        for v0 in range(0, vocab, TILE):
            logits = torch.matmul(h, weight[v0 : v0 + TILE].t())
            logits += pad
            vals, idx = logits.max(dim=1)
            out[:, v0 : v0 + TILE] = vals + bias[v0 : v0 + TILE]
            arg[:, v0 : v0 + TILE] = idx
        ctx.save_for_backward(h, weight, arg)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        h, weight, arg = ctx.saved_tensors
        n, length, hidden = h.shape
        rows, terms = torch.nonzero(grad, as_tuple=True)
        g = grad[rows, terms].unsqueeze(1)  # (pairs, 1)
        tokens = rows * length + arg[rows, terms]  # flat token index of each pair's arg-max
        h_flat = h.reshape(n * length, hidden)
        grad_h = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_h = torch.zeros_like(h_flat).index_add_(0, tokens, g * weight[terms]).view_as(h)
        if ctx.needs_input_grad[2]:
            grad_w = torch.zeros_like(weight).index_add_(0, terms, g * h_flat[tokens])
        if ctx.needs_input_grad[3]:
            grad_b = grad.sum(dim=0)
        return grad_h, None, grad_w, grad_b


def max_pool_projection(
    h: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
) -> torch.Tensor:
    """(batch, vocab) max over the valid tokens of ``h @ weight.T + bias`` (see :class:`MaxPoolProjection`)."""
    if bias is None:
        bias = torch.zeros(weight.shape[0], dtype=h.dtype, device=h.device)
    return MaxPoolProjection.apply(h, mask, weight, bias)
