"""ONNX Runtime backend for :class:`lsr.encoders.splade.SpladeEncoder` (``backend="onnx"``).

The masked LM (backbone, MLM transform, vocabulary projection) and the pooling are exported to one ONNX
graph that takes ``input_ids`` and ``attention_mask`` (batch, length) and returns the (batch, vocab)
SPLADE weights, so no batch x length x vocab tensor ever leaves ONNX Runtime:

* padding tokens get [CLS]'s hidden state (max pooling): their logits equal [CLS]'s, so they can never
  raise a maximum; for sum pooling their activations are multiplied by the mask;
* the vocabulary projection runs in tiles of ``VOCAB_TILE`` terms, each pooled at once, so the peak
  intermediate is batch x length x tile;
* ``log1p(relu(.))`` runs after the max (monotone), as in the torch fast path.

float32 only: the vectors equal the torch path's to float32 rounding (max |diff| ~1e-5,
``benchmarks/bench_cpu_inference.py``). Needs ``onnxruntime`` (``pip install onnxruntime``); imported lazily.
"""

from __future__ import annotations

import io
import warnings
from typing import Any

from lsr.errors import LsrError

VOCAB_TILE = 2048


def require_onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise LsrError(
            'backend="onnx" needs onnxruntime, which is not installed: pip install onnxruntime '
            '(or use the default backend="torch")'
        ) from None
    return onnxruntime


def _pooled_module(enc: Any, with_hidden: bool = False) -> Any:
    """The exported module: (input_ids, attention_mask) -> SPLADE weights, and with ``with_hidden`` also
    the MLM-transformed token states (batch, length, hidden) that DyVo's entity head reads."""
    import torch

    class Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = enc._backbone
            self.transform = enc._transform
            self.sum = enc.pooling == "sum"
            w = enc._decoder.weight.detach()
            self.n_tiles = 0
            for v0 in range(0, enc.vocab_size, VOCAB_TILE):
                self.register_buffer(f"w{self.n_tiles}", w[v0 : v0 + VOCAB_TILE].t().contiguous())
                self.register_buffer(f"b{self.n_tiles}", enc._bias[v0 : v0 + VOCAB_TILE].clone().float())
                self.n_tiles += 1

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            h = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            if self.transform is not None:
                h = self.transform(h)
            states = h
            real = attention_mask.unsqueeze(-1).bool()
            if not self.sum:
                h = torch.where(real, h, h[:, :1, :])
            cols = []
            for i in range(self.n_tiles):
                logits = h @ getattr(self, f"w{i}") + getattr(self, f"b{i}")
                if self.sum:
                    cols.append((torch.log1p(torch.relu(logits)) * real.to(logits.dtype)).sum(dim=1))
                else:
                    cols.append(logits.amax(dim=1))
            out = torch.cat(cols, dim=1)
            out = out if self.sum else torch.log1p(torch.relu(out))
            return (out, states) if with_hidden else out

    return Pooled().eval()


def build_session(enc: Any, threads: int, with_hidden: bool = False) -> Any:
    """Export ``enc``'s network (current weights) and open an ONNX Runtime session on it; with
    ``with_hidden`` the graph has a second output, ``hidden`` (the transformed token states)."""
    require_onnxruntime()  # the clear "not installed" error before the export
    import torch

    module = _pooled_module(enc, with_hidden)
    outputs = ["weights", "hidden"] if with_hidden else ["weights"]
    out_axes = {"weights": {0: "batch"}, "hidden": {0: "batch", 1: "length"}}
    ids = torch.tensor([[101, 2023, 2003, 1037, 3231, 102, 0], [101, 2178, 3231, 102, 0, 0, 0]])
    ids = ids.clamp(max=enc.vocab_size - 1)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 0, 0, 0]])
    axes = {"input_ids": {0: "batch", 1: "length"}, "attention_mask": {0: "batch", 1: "length"}}
    buf = io.BytesIO()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                (ids, mask),
                buf,
                input_names=["input_ids", "attention_mask"],
                output_names=outputs,
                dynamic_axes={**axes, **{k: out_axes[k] for k in outputs}},
                opset_version=17,
                dynamo=False,
            )
    except Exception as e:  # the exporter raises many kinds; the model is the cause, not the user
        raise LsrError(f'backend="onnx": cannot export model {enc.name!r} to ONNX ({e})') from None
    return cpu_session(buf.getvalue(), threads)


def cpu_session(model: bytes, threads: int) -> Any:
    """An ONNX Runtime CPU session over a serialized model: ``threads`` intra-op threads, one
    inter-op thread, sequential execution, every graph optimisation."""
    ort = require_onnxruntime()
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
