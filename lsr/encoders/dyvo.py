"""DyVo: SPLADE word-piece weights plus entity weights, in one vector over vocabulary + entities.

"DyVo: Dynamic Vocabularies for Learned Sparse Retrieval with Entities" (Nguyen et al.) extends the
word-piece vocabulary with entities. For a text, :class:`~lsr.entities.EntityMatcher` picks up to
``entity_top_n`` candidate entities (names and aliases found in the text, exactly or fuzzily, plus
optional BM25 hits); the DyVo head scores each candidate ``e`` from the masked LM's transformed
hidden states ``h_t`` (BERT: ``cls.predictions.transform``, the input of the vocabulary projection)::

    w_e = max_t log(1 + relu(scale * (h_t . P E_e) + b_e))

with the same max pooling and log-saturation as the word pieces' ``max_t log(1 + relu(h_t . W_v + b_v))``.
``E_e`` is the entity's embedding (frozen), ``P`` a learnable projection when the embedding
dimension differs from the hidden size (identity otherwise), ``scale`` (init 1) and ``b_e`` learnable.
With the store's embeddings made as the mean input word-piece embedding of the name and a model whose
decoder is tied to its input embeddings (BERT, the bundled ``splade-tiny``), ``b_e`` starts as the mean
decoder bias of the name's word pieces, so an untrained head gives each candidate the mean of its word
pieces' logits: already a meaningful weight. Entities that are not candidates of the text get 0.

Vocabulary: the word pieces (term ids ``0 .. V-1``, exactly SPLADE's), then ``ENT:<entity id>`` for
every entity of the store, in store order (term ids ``V .. V+N-1``). Pruning (``threshold``, then
``doc_top_k`` / ``query_top_k``) applies to the merged vector. The candidate entities are matched in the
part of the text that survives truncation to the max length, so the head never scores a mention the
model cannot see.

A saved DyVo encoder is a directory: the masked LM and tokenizer files, ``entities.jsonl`` and
``entity_embeddings.npy`` (the store), ``dyvo_head.safetensors`` (scale, entity biases, projection) and
``lsr_encoder.json`` (``{"kind": "dyvo", ...}``); :func:`lsr.load_encoder` loads it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from lsr.encoders.base import ENCODER_CONFIG_FILE, Encoder, check_max_lengths, check_positive_ints
from lsr.entities import ENTITY_PREFIX, EntityMatcher, EntityStore
from lsr.errors import LsrError
from lsr.vectors import SparseBatch, Vocabulary

HEAD_FILE = "dyvo_head.safetensors"
# Settings that from_pretrained accepts (the keys of config() other than kind/model/model_path, and the
# speed-only batch_size and backend, which config() does not record).
SETTINGS = (
    "doc_max_length",
    "query_max_length",
    "pooling",
    "doc_top_k",
    "query_top_k",
    "threshold",
    "batch_size",
    "precision",
    "backend",
    "entity_top_n",
    "entity_fuzzy",
    "entity_max_edits",
    "entity_min_fuzzy_len",
    "entity_bm25",
    "entity_bm25_k",
)
_CHECK_ONLY = ("entities", "n_entities")  # recorded in config(); checked against the loaded store


def _head_module() -> Any:
    import torch

    class DyVoHead(torch.nn.Module):
        """Scores candidate entities against token states: ``scale * (h . P E_e) + b_e`` (see module docs)."""

        def __init__(self, embeddings: np.ndarray, hidden: int, bias: np.ndarray) -> None:
            super().__init__()
            # Frozen, and not in the state dict: the store's .npy holds them.
            self.register_buffer(
                "embeddings", torch.from_numpy(np.array(embeddings, np.float32)), persistent=False
            )
            dim = embeddings.shape[1]
            self.proj = torch.nn.Linear(dim, hidden, bias=False) if dim != hidden else None
            self.scale = torch.nn.Parameter(torch.ones(()))
            self.bias = torch.nn.Parameter(torch.from_numpy(np.array(bias, np.float32)))

        def forward(self, h: torch.Tensor, cand: torch.Tensor) -> torch.Tensor:
            """Logits (tokens, candidates) of the entities ``cand`` (row numbers) for token states ``h``."""
            e = self.embeddings[cand]
            if self.proj is not None:
                e = self.proj(e)
            return self.scale * (h @ e.t()) + self.bias[cand]

    return DyVoHead


class DyVoEncoder(Encoder):
    """SPLADE + DyVo entity weights over a masked LM and an :class:`~lsr.entities.EntityStore`.

    Settings (recorded in :meth:`config`): ``doc_max_length`` / ``query_max_length`` (tokens),
    ``doc_top_k`` / ``query_top_k`` and ``threshold`` (pruning of the merged vector),
    ``entity_top_n`` (candidates per text), ``entity_fuzzy`` / ``entity_max_edits`` /
    ``entity_min_fuzzy_len`` (fuzzy matching), ``entity_bm25`` / ``entity_bm25_k`` (BM25 retriever).
    ``batch_size`` only changes speed, and so does ``backend``: ``"torch"`` (default) or ``"onnx"``
    (needs ``onnxruntime``: the network and the word-piece pooling run as SPLADE's ONNX graph, which
    also hands the token states to the entity head; same vectors to float32 rounding). ``pooling``
    must be ``"max"`` and ``precision`` ``"float32"``.
    """

    kind = "dyvo"

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        store: EntityStore,
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
        backend: str = "torch",
        entity_top_n: int = 32,
        entity_fuzzy: bool = True,
        entity_max_edits: int = 1,
        entity_min_fuzzy_len: int = 5,
        entity_bm25: bool = False,
        entity_bm25_k: int = 8,
        head_state: dict[str, Any] | None = None,
    ) -> None:
        import torch

        if pooling != "max":
            raise LsrError(f"DyVo supports pooling='max' only, not {pooling!r}")
        if precision != "float32":
            raise LsrError(f"DyVo supports precision='float32' only, not {precision!r}")
        if backend not in ("torch", "onnx"):
            raise LsrError(f"backend must be one of ('torch', 'onnx'), not {backend!r}")
        if backend == "onnx":
            from lsr.encoders.onnx_backend import require_onnxruntime

            require_onnxruntime()
        check_positive_ints(
            {
                "doc_max_length": doc_max_length,
                "query_max_length": query_max_length,
                "batch_size": batch_size,
            },
            {"doc_top_k": doc_top_k, "query_top_k": query_top_k},
        )
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or threshold < 0:
            raise LsrError(f"threshold must be a number >= 0, got {threshold!r}")
        if not isinstance(store, EntityStore):
            raise LsrError(f"store must be an EntityStore, got {type(store).__name__}")
        if len(store) == 0:
            raise LsrError("the entity store is empty")
        check_max_lengths(model, doc_max_length, query_max_length)
        if not getattr(tokenizer, "is_fast", False):
            raise LsrError("DyVo needs a fast (Rust) tokenizer: it maps truncated tokens back to characters")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.store = store
        self.name = name
        self.path = path
        self.doc_max_length = doc_max_length
        self.query_max_length = query_max_length
        self.pooling = pooling
        self.precision = precision
        self.doc_top_k = doc_top_k
        self.query_top_k = query_top_k
        self.threshold = float(threshold)
        self.batch_size = batch_size
        self.backend = backend
        self.matcher = EntityMatcher(
            store,
            top_n=entity_top_n,
            fuzzy=entity_fuzzy,
            max_edits=entity_max_edits,
            min_fuzzy_len=entity_min_fuzzy_len,
            bm25=entity_bm25,
            bm25_k=entity_bm25_k,
        )
        self._backbone = model.base_model
        predictions = getattr(getattr(model, "cls", None), "predictions", None)
        self._transform = getattr(predictions, "transform", None)
        self._decoder = model.get_output_embeddings()
        if self._decoder is None:
            raise LsrError(f"model {name!r} has no output (vocabulary) projection: not a masked LM")
        self.vocab_size = int(self._decoder.weight.shape[0])
        hidden = int(self._decoder.weight.shape[1])
        self._bias_param = getattr(self._decoder, "bias", None)
        if self._bias_param is None and predictions is not None:
            self._bias_param = getattr(predictions, "bias", None)
        head_cls = _head_module()
        self.head = head_cls(store.embeddings, hidden, self._initial_entity_bias())
        if head_state is not None:
            try:
                self.head.load_state_dict({k: torch.as_tensor(v) for k, v in head_state.items()})
            except (RuntimeError, KeyError) as e:
                raise LsrError(f"DyVo head weights do not fit this store and model ({e})") from None
        self.head.eval()
        self._module = torch.nn.ModuleDict({"mlm": self.model, "dyvo_head": self.head})
        tokens = tokenizer.convert_ids_to_tokens(list(range(min(len(tokenizer), self.vocab_size))))
        tokens += [f"[unused_id_{i}]" for i in range(len(tokens), self.vocab_size)]
        self._vocab = Vocabulary(tokens + [ENTITY_PREFIX + e.id for e in store.entities])
        if len(self._vocab) != self.vocab_size + len(store):
            raise LsrError("an entity token ENT:<id> collides with a word piece of the model's vocabulary")

    def _initial_entity_bias(self) -> np.ndarray:
        """b_e at initialisation: the mean decoder bias of the entity name's word pieces (0 without one)."""
        n = len(self.store)
        if self._bias_param is None:
            return np.zeros(n, np.float32)
        b = self._bias_param.detach().float().numpy()
        out = np.zeros(n, np.float32)
        names = [e.name for e in self.store.entities]
        for s in range(0, n, 4096):
            ids = self.tokenizer(names[s : s + 4096], add_special_tokens=False)["input_ids"]
            for r, row in enumerate(ids):
                row = [t for t in row if t < len(b)]
                if row:
                    out[s + r] = b[row].mean()
        return out

    # -- loading and saving ----------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path: str, name: str | None = None, **settings: Any) -> DyVoEncoder:
        """Load a saved DyVo directory (masked LM, tokenizer, entity store, head, ``lsr_encoder.json``)."""
        expected = {k: settings.pop(k) for k in _CHECK_ONLY if k in settings}
        unknown = sorted(set(settings) - set(SETTINGS))
        if unknown:
            raise LsrError(f"unknown DyVo setting(s): {', '.join(unknown)} (known: {', '.join(SETTINGS)})")
        if not os.path.isdir(path):
            raise LsrError(f"model {path!r}: a DyVo encoder is a local directory (see `lsr entities dyvo`)")
        if not os.path.isfile(os.path.join(path, "entities.jsonl")):
            raise LsrError(
                f"model {path!r}: not a saved DyVo encoder (no entities.jsonl); save one with "
                "DyVoEncoder.save or `lsr entities dyvo`, or pass the encoder object"
            )
        store = EntityStore.load(path)
        if "entities" in expected and expected["entities"] != store.fingerprint():
            raise LsrError(
                f"{path}: entity store fingerprint {store.fingerprint()} differs from the recorded {expected['entities']}"
            )
        head_path = os.path.join(path, HEAD_FILE)
        head_state = None
        if os.path.isfile(head_path):
            from safetensors.torch import load_file

            try:
                head_state = load_file(head_path)
            except Exception as e:  # safetensors raises its own error types
                raise LsrError(f"{head_path}: unreadable DyVo head ({e})") from None
        base = _load_masked_lm(path)
        return cls(base.model, base.tokenizer, store, name=name or path, path=os.path.abspath(path),
                   head_state=head_state, **settings)  # fmt: skip

    @classmethod
    def from_splade(cls, model: str | Any, store: EntityStore | str, **settings: Any) -> DyVoEncoder:
        """A DyVo encoder (untrained head) over a SPLADE model (name, directory or loaded encoder) and a
        store (an :class:`EntityStore` or its directory). SPLADE's max lengths carry over unless given."""
        from lsr.encoders.base import load_encoder

        base = load_encoder(model) if isinstance(model, str) else model
        if not hasattr(base, "model") or not hasattr(base, "tokenizer"):
            raise LsrError("from_splade needs a SPLADE encoder (or its name)")
        if isinstance(store, (str, os.PathLike)):
            store = EntityStore.load(store)
        for key in ("doc_max_length", "query_max_length"):
            settings.setdefault(key, getattr(base, key, 256))
        name = getattr(base, "name", "model")
        return cls(
            base.model, base.tokenizer, store, name=f"{name}+dyvo", path=getattr(base, "path", ""), **settings
        )

    def save(self, path: str | os.PathLike) -> None:
        """Write the masked LM, tokenizer, entity store, head and ``lsr_encoder.json`` to ``path``."""
        from safetensors.torch import save_file

        path = os.fspath(path)
        os.makedirs(path, exist_ok=True)
        self.model.save_pretrained(path)
        self.tokenizer.save_pretrained(path)
        self.store.save(path)
        save_file(
            {k: v.detach().contiguous() for k, v in self.head.state_dict().items()},
            os.path.join(path, HEAD_FILE),
        )
        cfg = {k: v for k, v in self.config().items() if k not in ("model", "model_path")}
        with open(os.path.join(path, ENCODER_CONFIG_FILE), "w", encoding="utf-8") as f:
            json.dump(cfg, f, indent=2)

    def config(self) -> dict[str, Any]:
        m = self.matcher.config()
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
            "entities": self.store.fingerprint(),
            "n_entities": len(self.store),
            "entity_top_n": m["top_n"],
            "entity_fuzzy": m["fuzzy"],
            "entity_max_edits": m["max_edits"],
            "entity_min_fuzzy_len": m["min_fuzzy_len"],
            "entity_bm25": m["bm25"],
            "entity_bm25_k": m["bm25_k"],
        }

    @property
    def vocab(self) -> Vocabulary:
        return self._vocab

    # -- the model -------------------------------------------------------------------------------
    def _check_texts(self, texts: Sequence[str]) -> list[str]:
        if isinstance(texts, str):
            raise LsrError("encode_*() takes a list of texts; wrap a single text in a list")
        texts = list(texts)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise LsrError(f"text {i} is a {type(t).__name__}, expected str")
        return texts

    def _forward(
        self, texts: list[str], max_length: int, grad: bool, word_pieces: bool = True
    ) -> tuple[Any, list[tuple[Any, Any]]]:
        """Word-piece weights (batch, V) and, per text, (candidate rows, their weights), as tensors.

        Runs under the caller's grad mode; ``grad`` picks the live (trainable) bias over a detached one.
        ``word_pieces=False`` skips the vocabulary projection (the word-piece weights come back None).
        """
        import torch

        device = self._decoder.weight.device
        enc = self.tokenizer(
            texts,
            truncation=True,
            max_length=max_length,
            padding=True,
            return_tensors="pt",
            return_offsets_mapping=True,
        )
        ids, mask = enc["input_ids"].to(device), enc["attention_mask"].to(device)
        offsets = enc["offset_mapping"]
        lens = mask.sum(dim=1).tolist()
        real = mask.bool()  # the text's tokens, wherever the tokenizer pads
        wp = None
        if word_pieces and not grad and self.backend == "onnx":  # SPLADE's ONNX graph, + token states
            wp_np, h_np = self._onnx_session().run(
                None, {"input_ids": ids.cpu().numpy(), "attention_mask": mask.cpu().numpy()}
            )
            wp, h = torch.from_numpy(wp_np).to(device), torch.from_numpy(h_np).to(device)
        else:
            hidden = self._backbone(input_ids=ids, attention_mask=mask).last_hidden_state
            h = self._transform(hidden) if self._transform is not None else hidden
        if word_pieces and grad:  # training: tiled projection with a sparse backward (lsr.encoders.maxpool)
            from lsr.encoders.maxpool import max_pool_projection

            bias = self._bias_param
            if bias is None:
                bias = torch.zeros(self.vocab_size, device=device)
            wp = torch.log1p(torch.relu(max_pool_projection(h, mask, self._decoder.weight, bias)))
        elif word_pieces and wp is None:  # encoding: SPLADE's own head (tiled projection), on the CPU
            wp = self._splade_head().project_pool(h[real].float().cpu(), np.asarray(lens)).to(device)
        ents = []
        for b, text in enumerate(texts):
            hb = h[b][real[b]]
            cut = int(offsets[b][real[b].cpu()][:, 1].max()) if lens[b] else 0
            cands = self.matcher.match(text[:cut])
            if cands:
                rows = torch.tensor(sorted(c.entity for c in cands), dtype=torch.long, device=device)
                ew = torch.log1p(torch.relu(self.head(hb, rows).amax(dim=0)))
            else:
                rows = torch.zeros(0, dtype=torch.long, device=device)
                ew = torch.zeros(0, device=device)
            ents.append((rows, ew))
        return wp, ents

    def _splade_head(self) -> Any:
        """A :class:`~lsr.encoders.splade.SpladeEncoder` over the same masked LM, whose head
        (:meth:`~lsr.encoders.splade.SpladeEncoder.project_pool`: vocabulary tiles, max pooling,
        ``log1p(relu)``) computes the word-piece weights, so they are SPLADE's by construction. Its
        tiles copy the decoder weights: rebuilt whenever the decoder weight or bias changed (an
        optimiser step bumps their version counters).

        With ``backend="onnx"`` the word pieces come from SPLADE's ONNX graph instead
        (:meth:`_onnx_session`), which also returns the token states the entity head reads.
        """
        w, b = self._decoder.weight, self._bias_param
        key = (w.data_ptr(), w._version, w.device, None if b is None else (b.data_ptr(), b._version))
        cached = getattr(self, "_splade_cache", None)
        if cached is None or cached[0] != key:
            from lsr.encoders.splade import SpladeEncoder

            training = self.model.training  # SpladeEncoder() puts the model in eval mode: keep the caller's
            head = SpladeEncoder(
                self.model, self.tokenizer, self.name, self.path,
                doc_max_length=self.doc_max_length, query_max_length=self.query_max_length,
                pooling="max", batch_size=self.batch_size, precision="float32",
            )  # fmt: skip
            self.model.train(training)
            cached = self._splade_cache = (key, head, None)
        return cached[1]

    def _onnx_session(self) -> Any:
        """SPLADE's ONNX Runtime graph (:func:`lsr.encoders.onnx_backend.build_session`) over this model,
        with a second output, the transformed token states; exported on first use and again after the
        weights changed, with as many intra-op threads as torch uses."""
        import threading

        import torch

        head = self._splade_head()
        with self.__dict__.setdefault("_onnx_lock", threading.Lock()):
            key, head, session = self._splade_cache
            if session is None:
                from lsr.encoders.onnx_backend import build_session

                with torch.inference_mode(False):
                    session = build_session(head, torch.get_num_threads(), with_hidden=True)
                self._splade_cache = (key, head, session)
            return session

    # -- training interface (lsr train) ----------------------------------------------------------
    def train_module(self) -> Any:
        """The ``torch.nn.Module`` whose parameters training optimises: the masked LM (``"mlm"``) and
        the DyVo head (``"dyvo_head"``: scale, entity biases, projection), in one ``ModuleDict``."""
        return self._module

    def forward_train(self, texts: list[str], what: str) -> Any:
        """Differentiable dense weights, float32 (len(texts), len(vocab)), >= 0: word pieces then entities.

        ``what`` is ``"query"`` or ``"document"`` (which max length applies). The values are the ones
        :meth:`encode_queries` / :meth:`encode_documents` give before threshold and top-k (in the
        module's current train/eval mode: dropout is on in train mode). Scores are dot products.
        """
        import torch

        if what not in ("query", "document"):
            raise LsrError(f"what must be 'query' or 'document', got {what!r}")
        texts = self._check_texts(texts)
        if not texts:
            return torch.zeros(0, len(self._vocab))
        max_length = self.query_max_length if what == "query" else self.doc_max_length
        wp, ents = self._forward(texts, max_length, grad=True)
        n_ent = len(self.store)
        rows = []
        for b, (cand, ew) in enumerate(ents):
            er = torch.zeros(n_ent, dtype=wp.dtype, device=wp.device).index_put((cand,), ew.to(wp.dtype))
            rows.append(torch.cat([wp[b], er]))
        return torch.stack(rows)

    # -- encoding --------------------------------------------------------------------------------
    def encode_documents(self, texts: Sequence[str], show_progress: bool = False) -> SparseBatch:
        return self._encode(texts, self.doc_max_length, self.doc_top_k, show_progress, "documents")

    def encode_queries(self, texts: Sequence[str], show_progress: bool = False) -> SparseBatch:
        return self._encode(texts, self.query_max_length, self.query_top_k, show_progress, "queries")

    def _encode(
        self, texts: Sequence[str], max_length: int, top_k: int | None, show_progress: bool, what: str
    ) -> SparseBatch:
        import torch

        texts = self._check_texts(texts)
        n = len(texts)
        rows_idx: list[np.ndarray] = [np.zeros(0, np.int32)] * n
        rows_w: list[np.ndarray] = [np.zeros(0, np.float32)] * n
        if n:
            order = np.argsort([-len(t) for t in texts], kind="stable")  # similar lengths share a batch
            bar = None
            if show_progress:
                from tqdm.auto import tqdm

                bar = tqdm(total=n, desc=f"encoding {what}", unit="text", leave=False)
            V = self.vocab_size
            with torch.inference_mode():
                for s in range(0, n, self.batch_size):
                    batch = order[s : s + self.batch_size]
                    wp, ents = self._forward([texts[d] for d in batch], max_length, grad=False)
                    wp = wp.float().cpu().numpy()
                    for r, d in enumerate(batch):
                        nz = np.flatnonzero(wp[r] > 0)
                        cand, ew = ents[r]
                        ew = ew.float().cpu().numpy()
                        keep = ew > 0
                        idx = np.concatenate([nz, V + cand.cpu().numpy()[keep]]).astype(np.int32)
                        w = np.concatenate([wp[r, nz], ew[keep]]).astype(np.float32)
                        rows_idx[d], rows_w[d] = _prune(idx, w, self.threshold, top_k)
                    if bar is not None:
                        bar.update(len(batch))
            if bar is not None:
                bar.close()
        return SparseBatch.from_rows(rows_idx, rows_w, self._vocab)

    def encode_entity_weights(self, texts: Sequence[str], what: str = "document") -> SparseBatch:
        """Only the entity part of the vectors (no pruning), over :attr:`vocab`: the backbone and the
        DyVo head without the vocabulary projection, several times cheaper than a full encode. The
        full vector before pruning is this plus the word pieces, which are exactly SPLADE's."""
        import torch

        if what not in ("query", "document"):
            raise LsrError(f"what must be 'query' or 'document', got {what!r}")
        texts = self._check_texts(texts)
        max_length = self.query_max_length if what == "query" else self.doc_max_length
        rows_idx, rows_w = [], []
        with torch.inference_mode():
            for s in range(0, len(texts), self.batch_size):
                _, ents = self._forward(texts[s : s + self.batch_size], max_length, False, word_pieces=False)
                for cand, ew in ents:
                    ew = ew.float().cpu().numpy()
                    keep = ew > 0
                    rows_idx.append((self.vocab_size + cand.cpu().numpy()[keep]).astype(np.int32))
                    rows_w.append(ew[keep].astype(np.float32))
        return SparseBatch.from_rows(rows_idx, rows_w, self._vocab)

    def entity_candidates(self, text: str) -> list[str]:
        """Ids of the entities the head scores for ``text`` (before its truncation to a max length)."""
        return self.matcher.match_ids(text)


def _prune(
    idx: np.ndarray, w: np.ndarray, threshold: float, top_k: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """Drop weights <= threshold, keep the top_k heaviest (ties: the lower term id), ids ascending."""
    if threshold > 0:
        keep = w > threshold
        idx, w = idx[keep], w[keep]
    if top_k is not None and len(w) > top_k:
        sel = np.lexsort((idx, -w))[:top_k]
        sel.sort()
        idx, w = idx[sel], w[sel]
    return idx, w


def _load_masked_lm(path: str) -> Any:
    """Tokenizer and masked LM of a local directory, through SPLADE's loader (its error messages)."""
    from lsr.encoders.splade import SpladeEncoder

    return SpladeEncoder.from_pretrained(path)
