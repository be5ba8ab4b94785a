"""SPLADE: a masked-LM's logits -> log(1 + ReLU(x)) -> pooled over the tokens -> sparse vector.

The fast path computes exactly what the textbook implementation computes
(``max_t log1p(relu(logits[t])) * mask``) at a fraction of the cost:

* ``log1p`` and ``ReLU`` are monotone, so for max pooling ``max_t log1p(relu(x_t)) =
  log1p(relu(max_t x_t))``: the activation runs on a (batch, vocab) matrix, never on
  batch x length x vocab;
* the vocabulary projection (the dominant cost: 2 x tokens x hidden x vocab FLOPs) runs only on the
  real tokens, never on padding, in chunks of ``token_chunk`` tokens so memory stays bounded;
* texts are sorted by length before batching, so batches carry little padding through the backbone.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from lsr.encoders.base import ENCODER_CONFIG_FILE, Encoder, check_max_lengths, check_positive_ints
from lsr.errors import LsrError
from lsr.vectors import SparseBatch, Vocabulary

POOLINGS = ("max", "sum")
PRECISIONS = ("float32", "bfloat16")
BACKENDS = ("torch", "onnx")
VOCAB_TILE = 2048  # vocabulary columns per projection tile (x token_chunk x 4 bytes = the logits buffer)


class SpladeEncoder(Encoder):
    """SPLADE over any masked-LM checkpoint (BERT-style MLM head or any ``get_output_embeddings``).

    Settings (all recorded in :meth:`config`): ``doc_max_length`` / ``query_max_length`` (tokens,
    truncation), ``pooling`` (``"max"`` as in SPLADE v2+, or ``"sum"``), ``doc_top_k`` /
    ``query_top_k`` (keep only the k heaviest terms of each vector), ``threshold`` (drop weights
    <= it), ``precision`` (``"float32"``, or ``"bfloat16"`` for the vocabulary projection: faster only
    on CPUs with bf16 units (avx512_bf16, AMX); several times slower on AVX2-only CPUs). ``batch_size`` (texts per
    forward pass) and ``token_chunk`` (tokens per projection chunk) only change speed and memory, and so
    does ``backend``: ``"torch"`` (default) or ``"onnx"`` (opt-in, float32 only, needs ``onnxruntime``:
    the network and the pooling run as one ONNX Runtime graph on the CPU, exported on first use; same
    vectors to float32 rounding, see :mod:`lsr.encoders.onnx_backend` and ``benchmarks/bench_cpu_inference.py``).
    """

    kind = "splade"

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        name: str,
        path: str,
        doc_max_length: int = 256,
        query_max_length: int = 256,
        pooling: str = "max",
        doc_top_k: int | None = None,
        query_top_k: int | None = None,
        threshold: float = 0.0,
        batch_size: int = 32,
        precision: str = "float32",
        token_chunk: int = 1024,
        backend: str = "torch",
    ) -> None:
        import torch

        if pooling not in POOLINGS:
            raise LsrError(f"pooling must be one of {POOLINGS}, not {pooling!r}")
        if precision not in PRECISIONS:
            raise LsrError(f"precision must be one of {PRECISIONS}, not {precision!r}")
        if backend not in BACKENDS:
            raise LsrError(f"backend must be one of {BACKENDS}, not {backend!r}")
        if backend == "onnx":
            if precision != "float32":
                raise LsrError(f'backend="onnx" runs in float32: precision={precision!r} is not supported')
            from lsr.encoders.onnx_backend import require_onnxruntime

            require_onnxruntime()
        check_positive_ints(
            {
                "doc_max_length": doc_max_length,
                "query_max_length": query_max_length,
                "batch_size": batch_size,
                "token_chunk": token_chunk,
            },
            {"doc_top_k": doc_top_k, "query_top_k": query_top_k},
        )
        if not isinstance(threshold, (int, float)) or threshold < 0:
            raise LsrError(f"threshold must be a number >= 0, got {threshold!r}")
        check_max_lengths(model, doc_max_length, query_max_length)
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name
        self.path = path
        self.doc_max_length = doc_max_length
        self.query_max_length = query_max_length
        self.pooling = pooling
        self.doc_top_k = doc_top_k
        self.query_top_k = query_top_k
        self.threshold = float(threshold)
        self.batch_size = batch_size
        self.precision = precision
        self.token_chunk = token_chunk
        self.backend = backend
        self._session: Any = None  # the ONNX Runtime session, built on first use (backend="onnx")
        self._session_lock = threading.Lock()
        self._backbone = model.base_model
        head = getattr(model, "cls", None)
        predictions = getattr(head, "predictions", None)
        self._transform = getattr(predictions, "transform", None)  # BERT: dense + GELU + LayerNorm
        self._decoder = model.get_output_embeddings()
        if self._decoder is None:
            raise LsrError(f"model {name!r} has no output (vocabulary) projection: not a masked LM")
        self.vocab_size = int(self._decoder.weight.shape[0])
        bias = getattr(self._decoder, "bias", None)
        if bias is None and predictions is not None:
            bias = getattr(predictions, "bias", None)
        self._bias = bias.detach() if bias is not None else torch.zeros(self.vocab_size)
        weight = self._decoder.weight.detach()
        dtype = torch.bfloat16 if precision == "bfloat16" else torch.float32
        # (first term id, tile weights, tile bias). float32 tiles are stored hidden x tile for addmm into a
        # reused buffer; bfloat16 tiles tile x hidden, the layout oneDNN's bf16 linear is fast with.
        self._tiles = [
            (
                v0,
                weight[v0 : v0 + VOCAB_TILE].to(dtype).contiguous()
                if precision == "bfloat16"
                else weight[v0 : v0 + VOCAB_TILE].t().contiguous(),
                self._bias[v0 : v0 + VOCAB_TILE].to(dtype),
            )
            for v0 in range(0, self.vocab_size, VOCAB_TILE)
        ]
        self._local = threading.local()
        tokens = tokenizer.convert_ids_to_tokens(list(range(min(len(tokenizer), self.vocab_size))))
        tokens += [f"[unused_id_{i}]" for i in range(len(tokens), self.vocab_size)]
        self._vocab = Vocabulary(tokens)

    # -- loading and saving ----------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path: str, name: str | None = None, **settings: Any) -> SpladeEncoder:
        """Load tokenizer and masked LM from a local directory or a Hugging Face id."""
        known = {
            "doc_max_length",
            "query_max_length",
            "pooling",
            "doc_top_k",
            "query_top_k",
            "threshold",
            "batch_size",
            "precision",
            "token_chunk",
            "backend",
        }
        unknown = sorted(set(settings) - known)
        if unknown:
            raise LsrError(
                f"unknown SPLADE setting(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})"
            )
        from transformers import AutoModelForMaskedLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        local = os.path.isdir(path)
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()  # our own commands show one progress bar, not transformers'
        # HF_HUB_OFFLINE is read here, at call time (huggingface_hub reads it once, at import). A hub id
        # with the hub unreachable loads from the local cache only: transformers would otherwise retry
        # for ~45 s before giving up on a machine without network.
        offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
        if not local and not offline and not _hub_reachable():
            offline = True
        offline_kw = {"local_files_only": True} if offline else {}
        try:
            tokenizer = AutoTokenizer.from_pretrained(path, **offline_kw)
            model = AutoModelForMaskedLM.from_pretrained(path, **offline_kw)
        except Exception as e:  # transformers raises OSError, ValueError, HTTP errors...
            if local:
                raise LsrError(
                    f"model {path!r}: cannot load a masked-LM checkpoint from this directory ({_first_line(e)})"
                ) from None
            if offline:
                raise LsrError(
                    f"model {path!r}: not found locally (no such directory, bundled name or Hugging Face cache "
                    f"entry) and the Hugging Face hub could not be reached (offline?)"
                ) from None
            raise LsrError(
                f"model {path!r}: not a local directory nor a bundled name, and it could not be loaded from the "
                f"Hugging Face hub (offline, or no such model): {_first_line(e)}"
            ) from None
        return cls(
            model, tokenizer, name=name or path, path=os.path.abspath(path) if local else path, **settings
        )

    def save(self, path: str | os.PathLike) -> None:
        path = os.fspath(path)
        os.makedirs(path, exist_ok=True)
        self.model.save_pretrained(path)
        self.tokenizer.save_pretrained(path)
        cfg = {k: v for k, v in self.config().items() if k not in ("model", "model_path")}
        with open(os.path.join(path, ENCODER_CONFIG_FILE), "w", encoding="utf-8") as f:
            json.dump(cfg, f, indent=2)

    def config(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "model": self.name,
            "model_path": self.path,
            "pooling": self.pooling,
            "doc_max_length": self.doc_max_length,
            "query_max_length": self.query_max_length,
            "doc_top_k": self.doc_top_k,
            "query_top_k": self.query_top_k,
            "threshold": self.threshold,
            "precision": self.precision,
        }

    @property
    def vocab(self) -> Vocabulary:
        return self._vocab

    # -- encoding --------------------------------------------------------------------------------
    def encode_documents(self, texts: Sequence[str], show_progress: bool = False) -> SparseBatch:
        return self._encode(texts, self.doc_max_length, self.doc_top_k, show_progress, "documents")

    def encode_queries(self, texts: Sequence[str], show_progress: bool = False) -> SparseBatch:
        return self._encode(texts, self.query_max_length, self.query_top_k, show_progress, "queries")

    def _encode(
        self, texts: Sequence[str], max_length: int, top_k: int | None, show_progress: bool, what: str
    ) -> SparseBatch:
        import torch

        if isinstance(texts, str):
            raise LsrError("encode_*() takes a list of texts; wrap a single text in a list")
        texts = list(texts)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise LsrError(f"text {i} is a {type(t).__name__}, expected str")
        n = len(texts)
        rows_idx: list[np.ndarray] = [np.zeros(0, np.int32)] * n
        rows_w: list[np.ndarray] = [np.zeros(0, np.float32)] * n
        if n:
            enc = self.tokenizer(texts, truncation=True, max_length=max_length, add_special_tokens=True)
            ids = enc["input_ids"]
            lengths = np.fromiter(map(len, ids), dtype=np.int64, count=n)
            order = np.argsort(-lengths, kind="stable")  # longest first: the peak memory shows up at once
            bar = None
            if show_progress:
                from tqdm.auto import tqdm

                bar = tqdm(total=n, desc=f"encoding {what}", unit="text", leave=False)
            pad = self.tokenizer.pad_token_id or 0
            with torch.inference_mode():
                for s in range(0, n, self.batch_size):
                    batch = order[s : s + self.batch_size]
                    lens = lengths[batch]
                    width = int(lens.max())
                    input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
                    mask = torch.zeros((len(batch), width), dtype=torch.long)
                    for r, d in enumerate(batch):
                        input_ids[r, : lens[r]] = torch.tensor(ids[d])
                        mask[r, : lens[r]] = 1
                    pooled = self._pool(input_ids, mask, lens)
                    self._sparsify(pooled, batch, top_k, rows_idx, rows_w)
                    if bar is not None:
                        bar.update(len(batch))
            if bar is not None:
                bar.close()
        return SparseBatch.from_rows(rows_idx, rows_w, self._vocab)

    def _pool(self, input_ids: Any, mask: Any, lens: np.ndarray) -> Any:
        """(batch, vocab) float32 SPLADE weights of one padded batch."""
        import torch

        if self.backend == "onnx":
            (out,) = self._onnx_session().run(
                None, {"input_ids": input_ids.numpy(), "attention_mask": mask.numpy()}
            )
            return torch.from_numpy(out)
        hidden = self._backbone(input_ids=input_ids, attention_mask=mask).last_hidden_state
        h = hidden[mask.bool()]  # (real tokens, hidden), document after document
        if self._transform is not None:
            h = self._transform(h)
        return self.project_pool(h, lens)

    def project_pool(self, h: Any, lens: np.ndarray) -> Any:
        """SPLADE's head on token states: (len(lens), vocab) float32 weights, before top-k and threshold.

        ``h`` is (tokens, hidden): the real tokens' states after the MLM transform, document after
        document, ``lens[i]`` tokens for document ``i``. The vocabulary projection runs in tiles on
        chunks of whole documents (see the module docs); DyVo's word-piece part calls this too.
        """
        import torch

        h = h.to(self._tiles[0][1].dtype)
        out = torch.empty((len(lens), self.vocab_size), dtype=torch.float32)
        starts = np.concatenate([[0], np.cumsum(lens)])
        d = 0
        while d < len(lens):  # chunks of whole documents, at most token_chunk tokens (or one document)
            e = d + 1
            while e < len(lens) and starts[e + 1] - starts[d] <= self.token_chunk:
                e += 1
            hc = h[starts[d] : starts[e]]
            n = hc.shape[0]
            buf = self._buffer(n) if self.precision == "float32" else None
            # Vocabulary tiles keep each logits block small enough to stay in cache between the
            # matrix product that writes it and the pooling that reads it.
            for v0, w_t, b_t in self._tiles:
                if self.precision == "bfloat16":
                    w = w_t.shape[0]
                    logits = torch.nn.functional.linear(hc, w_t, b_t)
                else:
                    w = w_t.shape[1]
                    logits = buf[: n * w].view(n, w)
                    torch.addmm(b_t, hc, w_t, out=logits)
                for r in range(d, e):
                    seg = logits[starts[r] - starts[d] : starts[r + 1] - starts[d]]
                    if self.pooling == "max":
                        out[r, v0 : v0 + w] = seg.amax(dim=0)
                    else:
                        out[r, v0 : v0 + w] = torch.log1p(torch.relu(seg.float())).sum(dim=0)
            d = e
        if self.pooling == "max":
            out = torch.log1p(torch.relu(out))  # monotone: the same as activating every token first
        return out

    # -- training (lsr train) ---------------------------------------------------------------------
    def train_module(self) -> Any:
        """The ``torch.nn.Module`` whose parameters training updates (the whole masked LM)."""
        return self.model

    def forward_train(self, texts: Sequence[str], what: str) -> Any:
        """Differentiable dense SPLADE weights, (batch, vocab) float32 on the model's device.

        ``what`` is ``"query"`` or ``"document"`` (which max length applies). The values are the ones
        :meth:`encode_queries` / :meth:`encode_documents` give before top-k and threshold, computed on
        vocabulary tiles with a sparse backward for max pooling (:mod:`lsr.encoders.maxpool`), on the
        plain logits for sum pooling.
        """
        import torch

        max_length = self.query_max_length if what == "query" else self.doc_max_length
        device = next(self.model.parameters()).device
        enc = self.tokenizer(
            list(texts), truncation=True, max_length=max_length, padding=True, return_tensors="pt"
        )
        ids, mask = enc["input_ids"].to(device), enc["attention_mask"].to(device)
        hidden = self._backbone(input_ids=ids, attention_mask=mask).last_hidden_state
        h = self._transform(hidden) if self._transform is not None else hidden
        if self.pooling == "max":
            from lsr.encoders.maxpool import max_pool_projection

            pooled = max_pool_projection(h, mask, self._decoder.weight, self._live_bias())
            return torch.log1p(torch.relu(pooled))
        logits = torch.nn.functional.linear(h, self._decoder.weight, self._live_bias())
        return (torch.log1p(torch.relu(logits)) * mask.unsqueeze(-1)).sum(dim=1)

    def _live_bias(self) -> Any:
        """The decoder bias as a parameter (trainable), not the detached copy encoding uses."""
        bias = getattr(self._decoder, "bias", None)
        if bias is None:
            predictions = getattr(getattr(self.model, "cls", None), "predictions", None)
            bias = getattr(predictions, "bias", None)
        return bias

    def refresh(self) -> None:
        """Rebuild the encoding caches (vocabulary tiles, bias) from the current weights: call after
        the weights changed (training) and before encoding with the fast path."""
        self.__init__(  # type: ignore[misc]
            self.model,
            self.tokenizer,
            self.name,
            self.path,
            doc_max_length=self.doc_max_length,
            query_max_length=self.query_max_length,
            pooling=self.pooling,
            doc_top_k=self.doc_top_k,
            query_top_k=self.query_top_k,
            threshold=self.threshold,
            batch_size=self.batch_size,
            precision=self.precision,
            token_chunk=self.token_chunk,
            backend=self.backend,
        )

    def _onnx_session(self) -> Any:
        """The ONNX Runtime session (backend="onnx"), exported from the current weights on first use, with
        as many intra-op threads as torch uses."""
        import torch

        with self._session_lock:
            if self._session is None:
                from lsr.encoders.onnx_backend import build_session

                with torch.inference_mode(False):
                    self._session = build_session(self, torch.get_num_threads())
            return self._session

    def _buffer(self, n_tokens: int) -> Any:
        """A reused logits buffer: allocating ~100 MB per chunk costs more in page faults than it saves."""
        import torch

        need = max(n_tokens, self.token_chunk) * VOCAB_TILE
        buf = getattr(self._local, "buf", None)  # one per thread: the service encodes concurrently
        if buf is None or buf.numel() < need:
            buf = self._local.buf = torch.empty(need, dtype=torch.float32)
        return buf

    def _sparsify(
        self, pooled: Any, rows: np.ndarray, top_k: int | None, rows_idx: list, rows_w: list
    ) -> None:
        """Turn (batch, vocab) weights into sorted sparse rows, applying threshold and top-k."""
        import torch

        if self.threshold > 0:
            pooled = torch.where(pooled > self.threshold, pooled, torch.zeros_like(pooled))
        if top_k is not None and top_k < pooled.shape[1]:
            vals, idx = torch.topk(pooled, top_k, dim=1)
            kept = torch.zeros_like(pooled)
            kept.scatter_(1, idx, vals)
            pooled = kept
        w = pooled.numpy()
        for r, d in enumerate(rows):
            nz = np.flatnonzero(w[r] > 0)
            rows_idx[d] = nz.astype(np.int32)
            rows_w[d] = w[r, nz].astype(np.float32)


def _hub_reachable(timeout_s: float = 3.0) -> bool:
    """Whether a TCP connection to the Hugging Face endpoint (``HF_ENDPOINT``) opens within ``timeout_s``.

    With a proxy configured the direct probe says nothing, so it reports True and lets transformers try.
    """
    import socket
    from urllib.parse import urlparse

    if any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    if not url.hostname:
        return True
    port = url.port or (80 if url.scheme == "http" else 443)
    try:
        socket.create_connection((url.hostname, port), timeout=timeout_s).close()
        return True
    except OSError:
        return False


def _first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__
