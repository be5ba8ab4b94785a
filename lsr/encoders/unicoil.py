"""uniCOIL: a BERT backbone and a linear head giving one weight per input token; no expansion.

``w(token) = relu(tok_proj(h_token))``; a term's weight is the max over its occurrences; special tokens
([CLS], [SEP], [PAD]) carry none. The checkpoint layout is castorini's (pyserini ``UniCoilEncoder``):
``config.json`` of a BERT model and weights named ``bert.*`` and ``tok_proj.{weight,bias}`` (an optional
``coil_encoder.`` prefix is accepted). A BERT or masked-LM checkpoint without ``tok_proj`` (such as the
bundled ``splade-tiny``) loads its backbone and starts the head at weight ~0, bias 1 (every token
weighs ~1, a bag of words), ready for ``lsr train``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from lsr.encoders.base import ENCODER_CONFIG_FILE, Encoder, check_max_lengths, check_positive_ints
from lsr.errors import LsrError
from lsr.vectors import SparseBatch, Vocabulary

WEIGHTS_FILES = ("model.safetensors", "pytorch_model.bin")


def _load_state(path: str) -> dict[str, Any]:
    import torch

    for name in WEIGHTS_FILES:
        p = os.path.join(path, name)
        if os.path.isfile(p):
            if name.endswith(".safetensors"):
                from safetensors.torch import load_file

                return load_file(p)
            return torch.load(p, map_location="cpu", weights_only=True)
    raise LsrError(f"{path}: no model weights ({' or '.join(WEIGHTS_FILES)})")


def _modern_key(key: str) -> str:
    """TF-era LayerNorm names (``gamma``/``beta``, as in old BERT checkpoints) -> ``weight``/``bias``."""
    if ".LayerNorm." in key:
        return key.replace(".LayerNorm.gamma", ".LayerNorm.weight").replace(
            ".LayerNorm.beta", ".LayerNorm.bias"
        )
    return key


class UniCoilModel:
    """Factory for the torch module (kept out of module scope so importing lsr does not import torch)."""

    @staticmethod
    def build(config: Any) -> Any:
        import torch
        from transformers import BertModel

        class _UniCoil(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.config = config
                self.bert = BertModel(config, add_pooling_layer=False)
                self.tok_proj = torch.nn.Linear(config.hidden_size, 1)

            def forward(self, input_ids: Any, attention_mask: Any) -> Any:
                h = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
                return torch.relu(self.tok_proj(h)).squeeze(-1)  # (batch, length)

        return _UniCoil()


class UniCoilEncoder(Encoder):
    """uniCOIL over a BERT backbone (see the module docs). Settings: ``doc_max_length``,
    ``query_max_length`` (tokens), ``batch_size`` (texts per forward pass)."""

    kind = "unicoil"

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        name: str,
        path: str,
        doc_max_length: int = 256,
        query_max_length: int = 256,
        batch_size: int = 32,
    ) -> None:
        check_positive_ints(
            {
                "doc_max_length": doc_max_length,
                "query_max_length": query_max_length,
                "batch_size": batch_size,
            },
        )
        check_max_lengths(model, doc_max_length, query_max_length)
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name
        self.path = path
        self.doc_max_length = doc_max_length
        self.query_max_length = query_max_length
        self.batch_size = batch_size
        n = len(tokenizer)
        self._vocab = Vocabulary(tokenizer.convert_ids_to_tokens(list(range(n))))
        self._special = np.zeros(n, bool)
        self._special[[i for i in tokenizer.all_special_ids if i < n]] = True

    @classmethod
    def from_pretrained(cls, path: str, name: str | None = None, **settings: Any) -> UniCoilEncoder:
        known = {"doc_max_length", "query_max_length", "batch_size"}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise LsrError(
                f"unknown uniCOIL setting(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})"
            )
        if not os.path.isdir(path):
            raise LsrError(f"model {path!r}: uniCOIL loads from a local directory (castorini layout)")
        import torch
        from transformers import AutoTokenizer, BertConfig
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        try:
            config = BertConfig.from_pretrained(path)
            tokenizer = AutoTokenizer.from_pretrained(path)
        except Exception as e:  # transformers raises OSError, ValueError...
            raise LsrError(f"model {path!r}: cannot load a BERT config and tokenizer ({e})") from None
        model = UniCoilModel.build(config)
        state = _load_state(path)
        state = {_modern_key(k.removeprefix("coil_encoder.")): v for k, v in state.items()}
        if not any(k.startswith("tok_proj.") for k in state):
            # a BERT / masked-LM checkpoint: its backbone, and a fresh head (seeded, so builds repeat)
            state = {k: v for k, v in state.items() if k.startswith("bert.")}
            g = torch.Generator().manual_seed(0)
            with torch.no_grad():
                model.tok_proj.weight.copy_(torch.randn(model.tok_proj.weight.shape, generator=g) * 0.02)
                model.tok_proj.bias.fill_(1.0)
        else:
            state = {k: v for k, v in state.items() if k.startswith(("bert.", "tok_proj."))}
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.startswith("tok_proj.") and "position_ids" not in k]
        if missing:
            raise LsrError(
                f"model {path!r}: not a BERT/uniCOIL checkpoint (missing {', '.join(missing[:3])}...)"
            )
        return cls(model, tokenizer, name=name or path, path=os.path.abspath(path), **settings)

    def save(self, path: str | os.PathLike) -> None:
        from safetensors.torch import save_file

        path = os.fspath(path)
        os.makedirs(path, exist_ok=True)
        self.model.config.save_pretrained(path)
        self.tokenizer.save_pretrained(path)
        state = {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        save_file(state, os.path.join(path, "model.safetensors"))
        old = os.path.join(path, "pytorch_model.bin")
        if os.path.isfile(old):
            os.remove(old)
        cfg = {k: v for k, v in self.config().items() if k not in ("model", "model_path")}
        with open(os.path.join(path, ENCODER_CONFIG_FILE), "w", encoding="utf-8") as f:
            json.dump(cfg, f, indent=2)

    def config(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "model": self.name,
            "model_path": self.path,
            "doc_max_length": self.doc_max_length,
            "query_max_length": self.query_max_length,
        }

    @property
    def vocab(self) -> Vocabulary:
        return self._vocab

    # -- encoding --------------------------------------------------------------------------------
    def encode_documents(self, texts: Sequence[str], show_progress: bool = False) -> SparseBatch:
        return self._encode(texts, self.doc_max_length, show_progress, "documents")

    def encode_queries(self, texts: Sequence[str], show_progress: bool = False) -> SparseBatch:
        return self._encode(texts, self.query_max_length, show_progress, "queries")

    def _token_weights(self, texts: Sequence[str], max_length: int) -> tuple[Any, Any, Any]:
        import torch

        device = next(self.model.parameters()).device
        enc = self.tokenizer(
            list(texts), truncation=True, max_length=max_length, padding=True, return_tensors="pt"
        )
        ids, mask = enc["input_ids"].to(device), enc["attention_mask"].to(device)
        w = self.model(ids, mask)
        keep = mask.bool() & ~torch.as_tensor(self._special, device=device)[ids]
        return ids, w * keep, keep

    def _encode(self, texts: Sequence[str], max_length: int, show_progress: bool, what: str) -> SparseBatch:
        import torch

        if isinstance(texts, str):
            raise LsrError("encode_*() takes a list of texts; wrap a single text in a list")
        texts = list(texts)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise LsrError(f"text {i} is a {type(t).__name__}, expected str")
        n = len(texts)
        rows_i: list[np.ndarray] = [np.zeros(0, np.int32)] * n
        rows_w: list[np.ndarray] = [np.zeros(0, np.float32)] * n
        order = np.argsort([-len(t) for t in texts], kind="stable")
        bar = None
        if show_progress and n:
            from tqdm.auto import tqdm

            bar = tqdm(total=n, desc=f"encoding {what}", unit="text", leave=False)
        with torch.inference_mode():
            for s in range(0, n, self.batch_size):
                batch = order[s : s + self.batch_size]
                ids, w, keep = self._token_weights([texts[i] for i in batch], max_length)
                ids, w, keep = ids.cpu().numpy(), w.float().cpu().numpy(), keep.cpu().numpy()
                for r, d in enumerate(batch):
                    t, v = ids[r][keep[r]], w[r][keep[r]]
                    uniq, inv = np.unique(t, return_inverse=True)
                    best = np.zeros(len(uniq), np.float32)
                    np.maximum.at(best, inv, v)
                    nz = best > 0
                    rows_i[d] = uniq[nz].astype(np.int32)
                    rows_w[d] = best[nz]
                if bar is not None:
                    bar.update(len(batch))
        if bar is not None:
            bar.close()
        return SparseBatch.from_rows(rows_i, rows_w, self._vocab)

    # -- training (lsr train) ---------------------------------------------------------------------
    def train_module(self) -> Any:
        return self.model

    def forward_train(self, texts: Sequence[str], what: str) -> Any:
        """Differentiable dense (batch, vocab) weights: max over each term's occurrences."""
        import torch

        max_length = self.query_max_length if what == "query" else self.doc_max_length
        ids, w, _ = self._token_weights(texts, max_length)
        out = torch.zeros((len(texts), len(self._vocab)), dtype=w.dtype, device=w.device)
        return out.scatter_reduce(1, ids, w, reduce="amax", include_self=True)
