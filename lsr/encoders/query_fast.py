"""The fast path for encoding a few SPLADE queries on the CPU: an int8 screen, then exact float32.

One query has few tokens (SciFact: ~23), so its cost is the vocabulary projection, T x hidden x vocab
multiply-adds (23 x 128 x 30,522 for the bundled model) plus a pass over the T x vocab logits, and the
per-op framework overhead of the backbone. But a max-pooled SPLADE weight is non-zero only where the
max logit over the tokens is positive: ~50 of 30,522 terms for a query. :class:`ScreenedProjection`
finds a small superset of those terms cheaply and computes only them exactly:

1. **Screen** (int8, exact integer arithmetic). The decoder weights are quantized once per term
   ``W_v = s_v q_v + e_v`` (``q_v`` int8, ``s_v = max|W_v| / 127``) and the query's token states with one
   scale ``h_t = sigma p_t + r_t``. Then ``h_t . W_v = sigma s_v (p_t . q_v) + s_v (r_t . q_v) + h_t . e_v``,
   and by Cauchy-Schwarz every logit is at most
   ``ub_v = sigma s_v max_t(p_t . q_v) + R ||s_v q_v|| + H ||e_v|| + b_v`` with ``R = max_t ||r_t||`` and
   ``H = max_t ||h_t||``. The integer products come from one int8 GEMM (``torch._int_mm``, 4x the float32
   rate); ``||s_v q_v||`` and ``||e_v||`` are precomputed in float64.
2. **Exact**: the terms with ``ub_v + margin_v > 0`` (on the bundled model ~100 of 30,522) get their
   logits from a float32 product of ``h`` with only their rows, pooled by max; ``log1p(relu(.))`` runs
   on the pooled vector (monotone, so it commutes with the max).

Every other term's max logit is provably <= 0, so its SPLADE weight is exactly 0 as in the reference
path; the margin (``2 x hidden + MARGIN_ULPS`` float32 rounding steps of the largest possible |logit|) covers the
float rounding of the screen and that of the reference's own float32 sums, so a term the screen drops
is <= 0 in the reference's arithmetic too. The weights kept are the reference's up to float32
rounding (a different summation order: ~1e-6 absolute; the tests assert <= 1e-5).

``backbone_session`` exports the backbone + MLM transform (not the projection) to ONNX Runtime: for
one short sequence its per-op overhead is ~3x lower than eager PyTorch's. The encoder uses it when
``onnxruntime`` is installed (``query_path="auto"``); the token states then differ from torch's by float
rounding only (same tolerance).
"""

from __future__ import annotations

import io
import warnings
from typing import Any

# Float32 rounding steps (2^-24 relative) of the largest possible |logit| added to each bound, on top
# of 2 x hidden: covers our own float32 evaluation of the bound (a few steps) and the reference's
# float32 dot products of length hidden (at most hidden + 1 steps, Wilkinson), with room to spare.
MARGIN_ULPS = 64.0


def int8_gemm_available() -> bool:
    """Whether this torch can multiply int8 matrices on the CPU (``torch._int_mm``, torch >= 2.2)."""
    import torch

    mm = getattr(torch, "_int_mm", None)
    if mm is None:
        return False
    try:
        a = torch.ones((17, 32), dtype=torch.int8)
        b = torch.ones((32, 24), dtype=torch.int8)
        return bool((mm(a, b) == 32).all())
    except (RuntimeError, NotImplementedError):
        return False


class ScreenedProjection:
    """Exact max-pooled SPLADE logits of few tokens (see the module docs).

    ``weight``: (vocab, hidden) float32 decoder weights; ``bias``: (vocab,) float32. Built once per
    encoder (~0.1 s, ~4 MB of int8 weights besides the float32 ones it reads rows of).
    """

    def __init__(self, weight: Any, bias: Any) -> None:
        import torch

        w = weight.detach().float().contiguous()
        b = bias.detach().float().contiguous()
        w64 = w.double()
        amax = w64.abs().amax(dim=1)
        scale = torch.where(amax > 0, amax / 127.0, torch.ones_like(amax))  # s_v, float64
        q = torch.round(w64 / scale[:, None]).clamp(-127, 127)
        resid = (w64 - scale[:, None] * q).norm(dim=1)  # ||e_v||, exact to float64
        qnorm = scale * q.norm(dim=1)  # ||s_v q_v||
        hidden = w.shape[1]
        self.weight = w  # (vocab, hidden): the rows gathered for the exact step
        self.bias = b
        self.q_t = q.to(torch.int8).t()  # (hidden, vocab) view of a (vocab, hidden) int8 matrix
        self.scale = scale.float()
        self.hidden = hidden
        # Bound terms, rounded up: ub_v = sigma s_v Imax_v + R A_v + H E_v + B_v, where E_v also carries
        # the margin's part proportional to H (H ||W_v|| bounds every |h_t . W_v|) and B_v = b_v + its
        # part proportional to |b_v|.
        eps = (2.0 * hidden + MARGIN_ULPS) * 2.0**-24
        up = 1.0 + 1e-6
        self.a = (qnorm * up).float()
        self.e = ((resid * up + eps * w64.norm(dim=1)) * up).float()
        self.b_up = (b.double() + eps * b.double().abs()).float()

    def pooled(self, h: Any) -> tuple[Any, Any]:
        """``(terms, max_logits)``: int64 term ids (ascending) and the float32 max over the rows of ``h``
        ((tokens, hidden) float32, the MLM-transformed token states) of ``h @ weight.T + bias`` for those
        terms; every term left out has a max logit <= 0."""
        import torch

        h = h.float().contiguous()
        h64 = h.double()
        peak = float(h64.abs().max()) if h.numel() else 0.0
        sigma = peak / 127.0 if peak > 0 else 1.0
        p = torch.round(h64 / sigma).clamp(-127, 127)
        big_r = float((h64 - sigma * p).norm(dim=1).max()) * (1 + 1e-6)
        big_h = float(h64.norm(dim=1).max()) * (1 + 1e-6)
        imax = torch._int_mm(p.to(torch.int8), self.q_t).amax(dim=0)
        ub = torch.add(self.b_up, self.e, alpha=big_h)
        ub.add_(self.a, alpha=big_r)
        # |sigma s_v Imax_v| <= H ||W_v|| + R A_v: its float32 rounding is far inside the margin.
        ub.addcmul_(imax.float(), self.scale, value=sigma)
        terms = torch.nonzero(ub > 0).squeeze(1)
        if not len(terms):
            return terms, torch.zeros(0, dtype=torch.float32)
        logits = torch.addmm(self.bias[terms], h, self.weight[terms].t())
        return terms, logits.amax(dim=0)


def backbone_session(enc: Any, threads: int) -> Any:
    """An ONNX Runtime session on ``enc``'s backbone + MLM transform (current weights): ``input_ids``
    (1, length) int64 -> ``states`` (length, hidden) float32, the token states the projection reads."""
    from lsr.encoders.onnx_backend import cpu_session, require_onnxruntime

    require_onnxruntime()  # the clear "not installed" error before the export
    import torch

    class States(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = enc._backbone
            self.transform = enc._transform

        def forward(self, input_ids: Any) -> Any:
            mask = torch.ones_like(input_ids)
            h = self.backbone(input_ids=input_ids, attention_mask=mask).last_hidden_state[0]
            return self.transform(h) if self.transform is not None else h

    buf = io.BytesIO()
    try:
        # Called from inside the encoder's inference_mode: the exporter traces, so it needs normal tensors.
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")
            ids = torch.tensor([[101, 2023, 2003, 1037, 3231, 102]]).clamp(max=enc.vocab_size - 1)
            torch.onnx.export(
                States().eval(),
                (ids,),
                buf,
                input_names=["input_ids"],
                output_names=["states"],
                dynamic_axes={"input_ids": {1: "length"}, "states": {0: "length"}},
                opset_version=17,
                dynamo=False,
            )
    except Exception as e:  # the exporter raises many kinds; the model is the cause, not the user
        from lsr.errors import LsrError

        raise LsrError(f"query fast path: cannot export model {enc.name!r} to ONNX ({e})") from None
    return cpu_session(buf.getvalue(), threads)
