"""Inference-free SPLADE: SPLADE documents, queries as a table look-up (no model at query time).

Documents go through a masked LM exactly as :class:`~lsr.encoders.splade.SpladeEncoder` does. A query
is tokenized and each distinct word piece gets the weight ``table[piece]``:

* ``query_weights="idf"`` (default for a model without a table): the BM25 IDF,
  ``log(1 + (N - df + 0.5) / (df + 0.5))``, of each term in the *indexed* corpus, taken from the posting
  lists of the index being searched, handed in as corpus statistics by :class:`lsr.Retriever`
  (:meth:`InferenceFreeEncoder.with_corpus_stats`: a per-index view; the encoder itself is not changed);
* ``query_weights="table"``: a per-term table saved with the model (``query_weights.npy``, float32 over
  the vocabulary), e.g. the corpus IDF or a table learned by ``lsr train``.

Query encoding is a gather from the table after a pure-Python BERT WordPiece (the tokenizer's own
vocabulary; words cached) for ASCII text: microseconds, where a call into the tokenizer library costs
tens of microseconds. Texts it does not cover (non-ASCII, control characters, special-token strings
such as ``[SEP]``, non-BERT tokenizers) take the tokenizer; tests check both give the same pieces.
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from lsr.encoders.base import ENCODER_CONFIG_FILE, Encoder
from lsr.errors import LsrError
from lsr.vectors import SparseBatch, Vocabulary

QUERY_WEIGHTS_FILE = "query_weights.npy"
QUERY_WEIGHTS = ("idf", "table")
_CACHE_LIMIT = 200_000
# ASCII characters BERT's normaliser deletes or Python's str.split() treats differently (\v, \f, \x1c-\x1f).
_UNSAFE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# BERT's pre-tokenizer on ASCII: runs of letters and digits, and every other non-space character alone
# (all ASCII symbols count as punctuation).
_ASCII_WORDS = re.compile(r"[A-Za-z0-9]+|[^\sA-Za-z0-9]")


def bm25_idf(df: np.ndarray, n_docs: int) -> np.ndarray:
    """BM25's non-negative IDF per term, float32 (terms with df 0 get 0: they match nothing)."""
    df = np.asarray(df, np.float64)
    idf = np.log1p((n_docs - df + 0.5) / (df + 0.5))
    idf[df <= 0] = 0.0
    return idf.astype(np.float32)


class InferenceFreeEncoder(Encoder):
    """Inference-free SPLADE (see the module docs). ``doc_encoder`` is a SpladeEncoder over the MLM."""

    kind = "inference-free"

    def __init__(
        self,
        doc_encoder: Any,
        query_weights: str = "idf",
        table: np.ndarray | None = None,
        query_max_length: int = 256,
    ) -> None:
        if query_weights not in QUERY_WEIGHTS:
            raise LsrError(f"query_weights must be one of {QUERY_WEIGHTS}, not {query_weights!r}")
        if query_weights == "table" and table is None:
            raise LsrError(f"query_weights='table' needs a {QUERY_WEIGHTS_FILE} beside the model")
        self.doc_encoder = doc_encoder
        self.tokenizer = doc_encoder.tokenizer
        self.name = doc_encoder.name
        self.path = doc_encoder.path
        self.query_weights = query_weights
        self.query_max_length = int(query_max_length)
        n = len(doc_encoder.vocab)
        if table is not None:
            table = np.ascontiguousarray(table, np.float32)
            if table.shape != (n,) or not np.all(np.isfinite(table)) or table.min() < 0:
                raise LsrError(f"query weight table must be {n} finite weights >= 0, got shape {table.shape}")
        self.table = table
        self._special = np.zeros(n, bool)
        self._special_ids = frozenset(i for i in getattr(self.tokenizer, "all_special_ids", []) if i < n)
        self._special[list(self._special_ids)] = True
        self._cache: dict[str, tuple[int, ...]] = {}
        self._setup_wordpiece()
        self._set_skip()
        self._trainable_table: Any = None

    # -- loading and saving ----------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path: str, name: str | None = None, **settings: Any) -> InferenceFreeEncoder:
        from lsr.encoders.splade import SpladeEncoder

        query_weights = settings.pop("query_weights", None)
        qmax = settings.pop("query_max_length", 256)
        want_sha = settings.pop("table_sha256", None)  # recorded in an index manifest
        table = None
        table_path = os.path.join(path, QUERY_WEIGHTS_FILE)
        if os.path.isfile(table_path):
            table = np.load(table_path, allow_pickle=False)
        if query_weights is None:
            query_weights = "table" if table is not None else "idf"
        doc = SpladeEncoder.from_pretrained(path, name=name, **settings)
        enc = cls(doc, query_weights=query_weights, table=table, query_max_length=qmax)
        got = enc.config().get("table_sha256")
        if want_sha is not None and got != want_sha:
            raise LsrError(
                f"model {path!r}: its query weight table ({got}) is not the recorded one ({want_sha})"
            )
        return enc

    def save(self, path: str | os.PathLike) -> None:
        path = os.fspath(path)
        self.doc_encoder.save(path)
        table = self.current_table()
        if self.query_weights == "table" and table is not None:
            np.save(os.path.join(path, QUERY_WEIGHTS_FILE), table)
        cfg = {k: v for k, v in self.config().items() if k not in ("model", "model_path", "table_sha256")}
        with open(os.path.join(path, ENCODER_CONFIG_FILE), "w", encoding="utf-8") as f:
            json.dump(cfg, f, indent=2)

    def config(self) -> dict[str, Any]:
        import hashlib

        cfg = dict(self.doc_encoder.config())
        cfg.update(kind=self.kind, query_weights=self.query_weights, query_max_length=self.query_max_length)
        cfg.pop("query_top_k", None)
        table = self.current_table()
        if self.query_weights == "table" and table is not None:
            cfg["table_sha256"] = hashlib.sha256(table.tobytes()).hexdigest()[:16]
        return cfg

    @property
    def vocab(self) -> Vocabulary:
        return self.doc_encoder.vocab

    # -- the query table -------------------------------------------------------------------------
    def _set_skip(self) -> None:
        """Word pieces a query vector never holds: special tokens, and terms the table weighs 0 (absent
        from the corpus), as one Python set so a query is filtered by one set difference."""
        zero = np.flatnonzero(self.table <= 0).tolist() if self.table is not None else []
        self._skip = self._special_ids.union(zero)

    def current_table(self) -> np.ndarray | None:
        """The query weights in use (the trainable copy's values while training)."""
        if self._trainable_table is not None:
            import torch

            with torch.no_grad():
                self.table = (
                    torch.nn.functional.softplus(self._trainable_table).cpu().numpy().astype(np.float32)
                )
        return self.table

    def set_table(self, table: np.ndarray) -> None:
        """Use ``table`` (float32 per vocabulary term) as the query weights from now on."""
        self.__init__(self.doc_encoder, "table", table, self.query_max_length)  # type: ignore[misc]

    def with_corpus_stats(self, stats: Any) -> InferenceFreeEncoder:
        """With IDF query weights: a query-side view whose table is the BM25 IDF of ``stats``
        (:class:`~lsr.encoders.base.CorpusStats` of the indexed corpus). The view shares the
        tokenizer, word cache and document model, owns its table, and leaves ``self`` unchanged, so
        one encoder serves any number of indexes at once. With a saved table: ``self``."""
        if self.query_weights != "idf":
            return self
        view = copy.copy(self)
        view.table = bm25_idf(stats.df_over(self.vocab), int(stats.n_docs))
        view._trainable_table = None
        view._set_skip()
        return view

    def bind_index(self, index: Any) -> None:
        """Explicitly fix this encoder's IDF query weights to ``index``'s corpus (no-op for a saved
        table). Searching never calls this: :class:`lsr.Retriever` uses :meth:`with_corpus_stats`,
        which leaves the encoder as it is."""
        if self.query_weights != "idf":
            return
        from lsr.encoders.base import CorpusStats

        stats = CorpusStats(index.vocab, index.document_frequencies(), index.n_docs)
        view = self.with_corpus_stats(stats)
        self.table = view.table
        self._set_skip()

    @property
    def idf(self) -> np.ndarray | None:
        """The per-term weights queries use (for the IDF-aware FLOPS during training)."""
        return self.current_table()

    # -- encoding --------------------------------------------------------------------------------
    def encode_documents(self, texts: Sequence[str], show_progress: bool = False) -> SparseBatch:
        return self.doc_encoder.encode_documents(texts, show_progress)

    def query_pieces(self, text: str) -> list[int]:
        """Word-piece ids of ``text`` without special tokens, truncated to the query max length."""
        limit = self.query_max_length - 2  # the [CLS] and [SEP] a model input would carry
        if self._wordpiece is None or not text.isascii() or self._needs_tokenizer.search(text):
            return self.tokenizer(text, add_special_tokens=False)["input_ids"][:limit]
        cache = self._cache
        out: list[int] = []
        for word in _ASCII_WORDS.findall(text.lower() if self._lowercase else text):
            pieces = cache.get(word)
            if pieces is None:
                if len(cache) >= _CACHE_LIMIT:
                    cache.clear()
                pieces = cache[word] = self._wordpiece(word)
            out.extend(pieces)
        return out[:limit]

    def _setup_wordpiece(self) -> None:
        """A pure-Python BERT WordPiece for ASCII text (the tokenizer's own vocabulary and rules), used
        when the tokenizer is a BERT WordPiece one; anything else always takes the tokenizer."""
        self._wordpiece = None
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        model = getattr(backend, "model", None)
        if type(model).__name__ != "WordPiece" or type(getattr(backend, "pre_tokenizer", None)).__name__ != (
            "BertPreTokenizer"
        ):
            return
        lowercase = getattr(backend.normalizer, "lowercase", None)
        if lowercase is None:
            return
        self._lowercase = bool(lowercase)
        vocab = self.tokenizer.get_vocab()
        unk = vocab.get(model.unk_token)
        prefix = model.continuing_subword_prefix
        longest = model.max_input_chars_per_word
        # control characters, and special-token strings (the tokenizer maps "[SEP]" in a text to [SEP])
        specials = "|".join(re.escape(str(t)) for t in self.tokenizer.all_special_tokens)
        self._needs_tokenizer = re.compile(_UNSAFE.pattern + (f"|{specials}" if specials else ""))

        def wordpiece(word: str) -> tuple[int, ...]:
            if len(word) > longest:
                return (unk,)
            pieces, start, n = [], 0, len(word)
            while start < n:
                end = n
                while end > start:
                    piece = vocab.get(word[start:end] if start == 0 else prefix + word[start:end])
                    if piece is not None:
                        break
                    end -= 1
                else:
                    return (unk,)
                pieces.append(piece)
                start = end
            return tuple(pieces)

        self._wordpiece = wordpiece

    def encode_queries(self, texts: Sequence[str], show_progress: bool = False) -> SparseBatch:
        if isinstance(texts, str):
            raise LsrError("encode_queries() takes a list of texts; wrap a single text in a list")
        table = self.current_table()
        if table is None:
            raise LsrError(
                "this inference-free model weights queries by the IDF of the indexed corpus: search through an "
                "index (lsr.Retriever(index, encoder), Index.search, lsr search) or give it a table "
                "(set_table, or bind_index(index))"
            )
        skip, vocab = self._skip, self.vocab
        if len(texts) == 1 and isinstance(texts[0], str):  # the service's and the benchmark's case
            ids = sorted(set(self.query_pieces(texts[0])).difference(skip))
            indices = np.array(ids, np.int32)
            return SparseBatch.trusted(np.array([0, len(ids)], np.int64), indices, table.take(indices), vocab)
        flat: list[int] = []
        ends = [0]
        for r, t in enumerate(texts):
            if not isinstance(t, str):
                raise LsrError(f"text {r} is a {type(t).__name__}, expected str")
            flat.extend(sorted(set(self.query_pieces(t)).difference(skip)))
            ends.append(len(flat))
        indices = np.array(flat, np.int32)
        return SparseBatch.trusted(np.array(ends, np.int64), indices, table.take(indices), vocab)

    # -- training (lsr train) ---------------------------------------------------------------------
    def prepare_training(self, corpus_texts: Sequence[str], learn_table: bool = False) -> None:
        """Before training: without a table, use the training corpus's BM25 IDF over its word pieces
        (saved with the model, so search uses the weights training used); ``learn_table`` makes it a
        trainable parameter (softplus of a free vector, initialised at the table)."""
        if self.table is None or self.query_weights == "idf":
            from lsr.encoders.bm25 import bm25_vectors

            docs, _ = bm25_vectors(self.tokenizer, corpus_texts)
            df = np.bincount(docs.indices, minlength=len(self.vocab))
            self.set_table(bm25_idf(df, len(docs)))
        if learn_table:
            import torch

            t = torch.as_tensor(self.table, dtype=torch.float32).clamp(min=1e-4)
            self._trainable_table = torch.nn.Parameter(torch.log(torch.expm1(t)))  # softplus^-1

    def train_module(self) -> Any:
        import torch

        module = torch.nn.Module()
        module.mlm = self.doc_encoder.model
        if self._trainable_table is not None:
            module.query_table = self._trainable_table
        return module

    def forward_train(self, texts: Sequence[str], what: str) -> Any:
        import torch

        if what != "query":
            return self.doc_encoder.forward_train(texts, what)
        device = next(self.doc_encoder.model.parameters()).device
        table = (
            torch.nn.functional.softplus(self._trainable_table)
            if self._trainable_table is not None
            else torch.as_tensor(self.current_table(), device=device)
        )
        out = torch.zeros((len(texts), len(self.vocab)), dtype=torch.float32, device=device)
        for r, t in enumerate(texts):
            ids = np.unique(np.array(self.query_pieces(t), np.int64))
            ids = torch.as_tensor(ids[~self._special[ids]], device=device)
            out[r, ids] = 1.0
        return out * table.to(device)

    def refresh(self) -> None:
        self.current_table()
        self._set_skip()
        self.doc_encoder.refresh()
