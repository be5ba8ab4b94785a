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
from contextlib import nullcontext
from typing import Any

import numpy as np

from lsr.encoders.base import ENCODER_CONFIG_FILE, Encoder, check_max_lengths, check_positive_ints
from lsr.errors import LsrError
from lsr.vectors import SparseBatch, Vocabulary

POOLINGS = ("max", "sum")
# "relu": log1p(relu(x)) as in SPLADE; "log1p_relu": log1p(log1p(relu(x))) (OpenSearch v3 models, and
# sentence-transformers' SpladePooling(activation_function="log1p_relu")).
ACTIVATIONS = ("relu", "log1p_relu")
PRECISIONS = ("float32", "bfloat16", "float16")
BACKENDS = ("torch", "onnx")
# How queries are encoded (speed only, same vectors): see SpladeEncoder and lsr.encoders.query_fast.
QUERY_PATHS = ("auto", "screen-torch", "screen-onnx", "reference")
FAST_MAX_QUERIES = 16  # the screened fast path encodes calls of at most this many queries, one by one
# query_path="auto" moves the backbone to ONNX Runtime once this many queries went the fast path (or at
# prepare_queries(), which the service's warm-up calls): the export costs ~0.5-1 s, which a one-off
# `lsr search` would never earn back.
AUTO_ONNX_AFTER = 64
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
    ``activation`` (``"relu"``, or ``"log1p_relu"``: one more log1p, as OpenSearch's v3 models and
    sentence-transformers' ``SpladePooling`` option) and ``drop_special`` (special tokens such as [CLS] get
    weight 0, as OpenSearch's document encoders do) come from the checkpoint layouts
    (:mod:`lsr.encoders.layouts`); they appear in :meth:`config` only when not the default.
    ``query_path`` (speed only, never in :meth:`config`; default ``$LSR_QUERY_PATH``, else ``"auto"``) is how
    calls of at most ``FAST_MAX_QUERIES`` queries are encoded: ``"auto"`` / ``"screen-torch"`` /
    ``"screen-onnx"``: the screened fast path of :mod:`lsr.encoders.query_fast` (same vectors to float32
    rounding; ``auto`` moves the backbone to ONNX Runtime after ``AUTO_ONNX_AFTER`` queries or at
    :meth:`prepare_queries` when onnxruntime is installed), ``"reference"``: the batched path.
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
        activation: str = "relu",
        drop_special: bool = False,
        max_batch_tokens: int | None = None,
        echo: bool = False,
        backbone: str | None = None,
        weights_dtype: str | None = None,
        query_path: str | None = None,
    ) -> None:
        import torch

        # A decoder-only LLM (Mistral, Llama, Qwen2...: AutoModelForCausalLM) works as a SPLADE backbone too:
        # its LM head is the vocabulary projection. ``echo`` repeats the text and pools over the second copy
        # only, so every pooled token has attended to the whole text (Echo-Mistral-SPLADE).
        causal = type(model).__name__.endswith("ForCausalLM")
        if backbone not in (None, "masked-lm", "causal-lm") or (
            backbone is not None and (backbone == "causal-lm") != causal
        ):
            raise LsrError(f"backbone {backbone!r} does not match the model ({type(model).__name__})")
        if echo and not causal:
            raise LsrError("echo=True needs a causal (decoder-only) LM backbone")
        if causal and backend == "onnx":
            raise LsrError('backend="onnx" supports masked-LM backbones only')
        self.causal = causal
        self.echo = bool(echo)
        self.weights_dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
        if activation not in ACTIVATIONS:
            raise LsrError(f"activation must be one of {ACTIVATIONS}, not {activation!r}")
        if backend == "onnx" and activation != "relu" and pooling == "sum":
            raise LsrError('backend="onnx" with sum pooling supports activation="relu" only')
        if pooling not in POOLINGS:
            raise LsrError(f"pooling must be one of {POOLINGS}, not {pooling!r}")
        if precision not in PRECISIONS:
            raise LsrError(f"precision must be one of {PRECISIONS}, not {precision!r}")
        if backend not in BACKENDS:
            raise LsrError(f"backend must be one of {BACKENDS}, not {backend!r}")
        query_path = query_path or os.environ.get("LSR_QUERY_PATH") or "auto"
        if query_path not in QUERY_PATHS:
            raise LsrError(f"query_path must be one of {QUERY_PATHS}, not {query_path!r}")
        if query_path == "screen-onnx":
            from lsr.encoders.onnx_backend import require_onnxruntime

            require_onnxruntime()
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
            {"doc_top_k": doc_top_k, "query_top_k": query_top_k, "max_batch_tokens": max_batch_tokens},
        )
        if not isinstance(threshold, (int, float)) or threshold < 0:
            raise LsrError(f"threshold must be a number >= 0, got {threshold!r}")
        check_max_lengths(model, doc_max_length, query_max_length)
        self.model = model.eval()
        # The device the weights are on (Encoder.to / load_encoder(device=...) moves them); GPU runs wrap the
        # network in autocast when precision is bfloat16 or float16.
        self._device = next(model.parameters()).device
        if precision == "float16" and self._device.type == "cpu":
            raise LsrError('precision="float16" runs on a GPU only (use "bfloat16" on a CPU)')
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
        self.max_batch_tokens = max_batch_tokens
        self.activation = activation
        self.drop_special = bool(drop_special)
        self._session: Any = None  # the ONNX Runtime session, built on first use (backend="onnx")
        self._session_lock = threading.Lock()
        self.query_path = query_path
        self._screen: Any = None  # query fast path: the int8 screen, built on first use
        self._query_session: Any = None  # query fast path: ONNX Runtime backbone session
        self._fast_queries = 0  # queries encoded by the fast path (query_path="auto" policy)
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
        self._bias = bias.detach() if bias is not None else torch.zeros(self.vocab_size, device=self._device)
        weight = self._decoder.weight.detach()
        dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16}.get(precision, torch.float32)
        # (first term id, tile weights, tile bias). float32 tiles are stored hidden x tile for addmm into a
        # reused buffer; bfloat16 tiles tile x hidden, the layout oneDNN's bf16 linear is fast with.
        self._tiles = [
            (
                v0,
                weight[v0 : v0 + VOCAB_TILE].to(dtype).contiguous()
                if precision != "float32"
                else weight[v0 : v0 + VOCAB_TILE].t().to(torch.float32).contiguous(),
                self._bias[v0 : v0 + VOCAB_TILE].to(dtype),
            )
            for v0 in range(0, self.vocab_size, VOCAB_TILE)
        ]
        self._local = threading.local()
        tokens = tokenizer.convert_ids_to_tokens(list(range(min(len(tokenizer), self.vocab_size))))
        tokens += [f"[unused_id_{i}]" for i in range(len(tokens), self.vocab_size)]
        seen: set[str] = set()
        for i, t in enumerate(tokens):  # a term id per row of the projection, even where two ids print alike
            if t in seen:
                tokens[i] = f"{t}[id_{i}]"
            seen.add(tokens[i])
        self._vocab = Vocabulary(tokens)
        self._echo_affixes: tuple[list[int], list[int]] | None = None
        specials = [i for i in getattr(tokenizer, "all_special_ids", []) if 0 <= i < self.vocab_size]
        self._special_ids = torch.as_tensor(sorted(set(specials)), dtype=torch.long, device=self._device)

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
            "activation",
            "drop_special",
            "max_batch_tokens",
            "echo",
            "backbone",
            "weights_dtype",
            "query_path",
        }
        unknown = sorted(set(settings) - known)
        if unknown:
            raise LsrError(
                f"unknown SPLADE setting(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})"
            )
        from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer
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
            config = AutoConfig.from_pretrained(path, **offline_kw)
            causal = settings.get("backbone") == "causal-lm" or (
                settings.get("backbone") is None
                and any(a.endswith("ForCausalLM") for a in (getattr(config, "architectures", None) or []))
            )
            wd = settings.get("weights_dtype")
            if wd not in (None, "float32", "bfloat16"):
                raise LsrError(f"weights_dtype must be 'float32' or 'bfloat16', not {wd!r}")
            load_kw = dict(offline_kw)
            if wd is not None:  # else the checkpoint's own dtype, as transformers loads it
                import torch

                load_kw["dtype"] = getattr(torch, wd)
            model = (AutoModelForCausalLM if causal else AutoModelForMaskedLM).from_pretrained(
                path, **load_kw
            )
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
        extra: dict[str, Any] = {}  # only when not the default: configs recorded before they existed match
        if self.causal:
            extra.update(backbone="causal-lm", echo=self.echo)
        if self.weights_dtype != "float32":
            extra["weights_dtype"] = self.weights_dtype
        if self.activation != "relu":
            extra["activation"] = self.activation
        if self.drop_special:
            extra["drop_special"] = True
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
            **extra,
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
            ids, p0, p1 = self._inputs(texts, max_length)
            lengths = np.fromiter(map(len, ids), dtype=np.int64, count=n)
            order = np.argsort(-lengths, kind="stable")  # longest first: the peak memory shows up at once
            if what == "queries":
                # A query with no usable token (an emoji, a zero-width space: only [CLS] [UNK] [SEP])
                # gets an empty vector, so it matches nothing: encoded, it would retrieve documents
                # by the expansion of [CLS] and [SEP] alone. (Documents keep that expansion.)
                special = set(self.tokenizer.all_special_ids)
                usable = np.fromiter((any(t not in special for t in row) for row in ids), bool, count=n)
                order = order[usable[order]]
            bar = None
            if show_progress:
                from tqdm.auto import tqdm

                bar = tqdm(total=n, desc=f"encoding {what}", unit="text", leave=False)
                bar.update(n - len(order))  # the texts with no usable token
            pad = self.tokenizer.pad_token_id or 0
            fast = self._fast_query_mode(len(order)) if what == "queries" else None
            with torch.inference_mode():
                for d in order if fast is not None else ():
                    rows_idx[d], rows_w[d] = self._screened_query(ids[d], top_k, fast)
                    if bar is not None:
                        bar.update(1)
                batches = (
                    _batches(order, lengths, self.batch_size, self.max_batch_tokens) if fast is None else []
                )
                for batch in batches:
                    lens = lengths[batch]
                    width = int(lens.max())
                    input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
                    mask = torch.zeros((len(batch), width), dtype=torch.long)
                    for r, d in enumerate(batch):
                        input_ids[r, : lens[r]] = torch.tensor(ids[d])
                        mask[r, : lens[r]] = 1
                    pooled = self._pool(input_ids, mask, lens, (p0[batch], p1[batch]) if self.echo else None)
                    self._sparsify(pooled, batch, top_k, rows_idx, rows_w)
                    if bar is not None:
                        bar.update(len(batch))
            if bar is not None:
                bar.close()
        return SparseBatch.from_rows(rows_idx, rows_w, self._vocab)

    # -- the query fast path (lsr.encoders.query_fast) ----------------------------------------------
    def _fast_query_mode(self, n: int) -> str | None:
        """How to encode a call of ``n`` queries: ``"torch"`` / ``"onnx"`` (the screened fast path with
        that backbone) or None (the reference batched path). The fast path needs max pooling, float32
        weights and projection, a CPU, an encoder-only backbone and an int8 GEMM in torch; anything
        else, ``query_path="reference"`` and calls of more than ``FAST_MAX_QUERIES`` queries go the
        reference way."""
        if (
            self.query_path == "reference"
            or n > FAST_MAX_QUERIES
            or self.pooling != "max"
            or self.precision != "float32"
            or self.weights_dtype != "float32"
            or self.causal
            or self._device.type != "cpu"
            or not _int8_gemm()
        ):
            return None
        if self.query_path == "screen-onnx" or (self.query_path == "auto" and self.backend == "onnx"):
            return "onnx"
        if self.query_path == "auto" and self._query_session is not None:
            return "onnx"
        if (
            self.query_path == "auto"
            and self._fast_queries >= AUTO_ONNX_AFTER
            and _onnxruntime_installed()
            and self._query_session is not False
        ):
            return "onnx"
        return "torch"

    def prepare_queries(self) -> None:
        """Build what the query fast path uses (the int8 screen and, with ``query_path="auto"`` and
        onnxruntime installed, the ONNX Runtime backbone) now rather than on first use: the service's
        warm-up calls this, so no request pays the ~0.5 s."""
        if self._fast_query_mode(1) is None:
            return
        self._get_screen()
        if self.query_path in ("auto", "screen-onnx") and _onnxruntime_installed():
            self._get_query_session()

    def _get_screen(self) -> Any:
        with self._session_lock:
            if self._screen is None:
                from lsr.encoders.query_fast import ScreenedProjection

                self._screen = ScreenedProjection(self._decoder.weight, self._bias)
            return self._screen

    def _get_query_session(self) -> Any:
        """The ONNX Runtime backbone session, or None where the export failed with ``query_path="auto"``
        (then the torch backbone serves; with ``"screen-onnx"`` the failure is raised)."""
        import torch

        with self._session_lock:
            if self._query_session is None:
                from lsr.encoders.query_fast import backbone_session

                try:
                    self._query_session = backbone_session(self, torch.get_num_threads())
                except LsrError:
                    if self.query_path != "auto":
                        raise
                    self._query_session = False  # tried and failed: torch backbone from now on
            return self._query_session or None

    def _screened_query(self, ids: list[int], top_k: int | None, mode: str) -> tuple[np.ndarray, np.ndarray]:
        """One query's sparse row (term ids int32 ascending, weights float32) by the screened fast path:
        the same terms and weights (to float32 rounding) as the reference path, threshold, top-k and
        special tokens handled alike."""
        import torch

        session = self._get_query_session() if mode == "onnx" else None
        if session is not None:
            (h,) = session.run(None, {"input_ids": np.asarray([ids], dtype=np.int64)})
            h = torch.from_numpy(h)
        else:
            t = torch.tensor([ids], dtype=torch.long)
            h = self._backbone(input_ids=t, attention_mask=torch.ones_like(t)).last_hidden_state[0]
            if self._transform is not None:
                h = self._transform(h)
        terms, logits = self._get_screen().pooled(h)
        self._fast_queries += 1
        w = torch.log1p(torch.relu(logits))
        if self.activation == "log1p_relu":
            w = torch.log1p(w)
        terms, w = terms.numpy(), w.numpy()
        keep = w > 0
        if self.drop_special and len(self._special_ids):
            keep &= ~np.isin(terms, self._special_ids.cpu().numpy())
        if self.threshold > 0:
            keep &= w > self.threshold
        terms, w = terms[keep], w[keep]
        if top_k is not None and len(terms) > top_k:
            sel = np.sort(np.argsort(-w, kind="stable")[:top_k])
            terms, w = terms[sel], w[sel]
        return terms.astype(np.int32), w.astype(np.float32)

    def _inputs(self, texts: list[str], max_length: int) -> tuple[list[list[int]], np.ndarray, np.ndarray]:
        """Token ids of each text, and the [start, end) positions pooled: all of them, except with ``echo``:
        prefix + text + text + suffix (each copy truncated so the whole fits ``max_length``), pooling over
        the second copy."""
        if not self.echo:
            ids = self.tokenizer(texts, truncation=True, max_length=max_length, add_special_tokens=True)[
                "input_ids"
            ]
            lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
            return ids, np.zeros(len(ids), np.int64), lengths
        prefix, suffix = self._affixes()
        room = max(1, (max_length - len(prefix) - len(suffix)) // 2)
        pieces = self.tokenizer(texts, truncation=True, max_length=room, add_special_tokens=False)[
            "input_ids"
        ]
        ids = [prefix + p + p + suffix for p in pieces]
        starts = np.fromiter((len(prefix) + len(p) for p in pieces), np.int64, count=len(pieces))
        ends = np.fromiter((len(prefix) + 2 * len(p) for p in pieces), np.int64, count=len(pieces))
        empty = starts == ends  # an empty text: pool over what there is
        starts[empty] = 0
        ends[empty] = [len(ids[i]) for i in np.flatnonzero(empty)]
        return ids, starts, ends

    def _affixes(self) -> tuple[list[int], list[int]]:
        """The special tokens the tokenizer puts before and after a text (e.g. Llama's <s>; none for Qwen2)."""
        if self._echo_affixes is None:
            plain = self.tokenizer("a", add_special_tokens=False)["input_ids"]
            full = self.tokenizer("a", add_special_tokens=True)["input_ids"]
            i = next((i for i in range(len(full)) if full[i : i + len(plain)] == plain), 0)
            self._echo_affixes = (full[:i], full[i + len(plain) :])
        return self._echo_affixes

    def _pool(
        self, input_ids: Any, mask: Any, lens: np.ndarray, pool: tuple[np.ndarray, np.ndarray] | None = None
    ) -> Any:
        """(batch, vocab) float32 SPLADE weights of one padded batch; ``pool`` = per-text [start, end) of
        the tokens pooled (echo), else every real token."""
        import torch

        if self.backend == "onnx":
            (out,) = self._onnx_session().run(
                None, {"input_ids": input_ids.numpy(), "attention_mask": mask.numpy()}
            )
            out = torch.from_numpy(out)
            return torch.log1p(out) if self.activation == "log1p_relu" else out
        dev = self._device
        input_ids, mask = input_ids.to(dev), mask.to(dev)
        amp = dev.type != "cpu" and self.precision != "float32"
        with torch.autocast(device_type=dev.type, dtype=self._tiles[0][1].dtype) if amp else nullcontext():
            hidden = self._backbone(input_ids=input_ids, attention_mask=mask).last_hidden_state
            if pool is not None:  # echo: only the second copy of each text
                pos = torch.arange(mask.shape[1], device=dev)
                p0 = torch.as_tensor(pool[0], device=dev).unsqueeze(1)
                p1 = torch.as_tensor(pool[1], device=dev).unsqueeze(1)
                h = hidden[(pos >= p0) & (pos < p1)]
                lens = pool[1] - pool[0]
            else:
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
        out = torch.empty((len(lens), self.vocab_size), dtype=torch.float32, device=h.device)
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
                if self.precision != "float32":
                    w = w_t.shape[0]
                    logits = torch.nn.functional.linear(hc, w_t, b_t)
                else:
                    w = w_t.shape[1]
                    logits = buf[: n * w].view(n, w)
                    torch.addmm(b_t, hc, w_t, out=logits)
                for r in range(d, e):
                    seg = logits[starts[r] - starts[d] : starts[r + 1] - starts[d]]
                    if self.pooling == "max":
                        out[r, v0 : v0 + w] = seg.amax(dim=0).float()
                    else:
                        act = torch.log1p(torch.relu(seg.float()))
                        if self.activation == "log1p_relu":
                            act = torch.log1p(act)
                        out[r, v0 : v0 + w] = act.sum(dim=0)
            d = e
        if self.pooling == "max":
            out = torch.log1p(torch.relu(out))  # monotone: the same as activating every token first
            if self.activation == "log1p_relu":
                out = torch.log1p(out)
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
        tok_ids, p0, p1 = self._inputs(list(texts), max_length)
        width = max(map(len, tok_ids))
        ids = torch.full((len(tok_ids), width), self.tokenizer.pad_token_id or 0, dtype=torch.long)
        for r, t in enumerate(tok_ids):
            ids[r, : len(t)] = torch.as_tensor(t)
        pos = torch.arange(width)
        mask = (pos < torch.as_tensor([len(t) for t in tok_ids]).unsqueeze(1)).long()
        pool_mask = (pos >= torch.as_tensor(p0).unsqueeze(1)) & (pos < torch.as_tensor(p1).unsqueeze(1))
        ids, mask, pool_mask = ids.to(device), mask.to(device), pool_mask.to(device)
        hidden = self._backbone(input_ids=ids, attention_mask=mask).last_hidden_state
        h = self._transform(hidden) if self._transform is not None else hidden
        mask = pool_mask.long()  # the tokens pooled (all real ones, or the echo copy)
        if self.pooling == "max":
            from lsr.encoders.maxpool import max_pool_projection

            pooled = max_pool_projection(h, mask, self._decoder.weight, self._live_bias())
            out = torch.log1p(torch.relu(pooled))
            if self.activation == "log1p_relu":
                out = torch.log1p(out)
        else:
            logits = torch.nn.functional.linear(h, self._decoder.weight, self._live_bias())
            act = torch.log1p(torch.relu(logits))
            if self.activation == "log1p_relu":
                act = torch.log1p(act)
            out = (act * mask.unsqueeze(-1)).sum(dim=1)
        if self.drop_special and len(self._special_ids):
            keep = torch.ones(out.shape[1], dtype=out.dtype, device=out.device)
            keep[self._special_ids.to(out.device)] = 0
            out = out * keep
        return out

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
            activation=self.activation,
            drop_special=self.drop_special,
            max_batch_tokens=self.max_batch_tokens,
            echo=self.echo,
            query_path=self.query_path,
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
        if buf is None or buf.numel() < need or buf.device != self._device:
            buf = self._local.buf = torch.empty(need, dtype=torch.float32, device=self._device)
        return buf

    def _sparsify(
        self, pooled: Any, rows: np.ndarray, top_k: int | None, rows_idx: list, rows_w: list
    ) -> None:
        """Turn (batch, vocab) weights into sorted sparse rows, applying threshold and top-k."""
        import torch

        if self.drop_special and len(self._special_ids):
            pooled[:, self._special_ids.to(pooled.device)] = 0
        if self.threshold > 0:
            pooled = torch.where(pooled > self.threshold, pooled, torch.zeros_like(pooled))
        if top_k is not None and top_k < pooled.shape[1]:
            vals, idx = torch.topk(pooled, top_k, dim=1)
            kept = torch.zeros_like(pooled)
            kept.scatter_(1, idx, vals)
            pooled = kept
        w = pooled.float().cpu().numpy()
        for r, d in enumerate(rows):
            nz = np.flatnonzero(w[r] > 0)
            rows_idx[d] = nz.astype(np.int32)
            rows_w[d] = w[r, nz].astype(np.float32)


_INT8_GEMM: bool | None = None


def _int8_gemm() -> bool:
    """Whether torch multiplies int8 matrices on this CPU (checked once per process)."""
    global _INT8_GEMM
    if _INT8_GEMM is None:
        from lsr.encoders.query_fast import int8_gemm_available

        _INT8_GEMM = int8_gemm_available()
    return _INT8_GEMM


def _onnxruntime_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None


def _batches(
    order: np.ndarray, lengths: np.ndarray, batch_size: int, max_tokens: int | None
) -> list[np.ndarray]:
    """Texts (``order``: longest first) cut into batches of at most ``batch_size`` texts and, with
    ``max_tokens``, at most that many padded tokens (texts x the batch's longest length; a text longer than
    ``max_tokens`` is a batch of its own): long texts go in small batches, short ones in large batches."""
    if max_tokens is None:
        return [order[s : s + batch_size] for s in range(0, len(order), batch_size)]
    out, s, n = [], 0, len(order)
    while s < n:
        width = int(lengths[order[s]])  # the longest of the batch: texts are sorted longest first
        take = max(1, min(batch_size, max_tokens // max(width, 1), n - s))
        out.append(order[s : s + take])
        s += take
    return out


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
