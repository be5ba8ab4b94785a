"""Where text meets the index: :class:`Retriever`.

An :class:`~lsr.index.Index` knows only vectors. A ``Retriever(index, encoder=None)`` pairs it with
the encoder that turns query texts into vectors:

* with no encoder it loads the one the index records (lazily, on the first text query);
* a given encoder is checked against the index's recorded config (model, max lengths, pooling,
  pruning): a mismatch raises :class:`~lsr.errors.LsrError` unless ``force=True``;
* encoders whose query weights depend on the indexed corpus (inference-free IDF) get the corpus
  statistics the index computes from its postings (:class:`~lsr.encoders.base.CorpusStats`:
  document frequencies and the document count) through ``encoder.with_corpus_stats``, which
  returns a per-index view: the shared encoder is never changed, so one encoder can serve many
  indexes or shards at once;
* texts are encoded once, then the index is searched with the vectors.

The CLI (``lsr search``, ``lsr bench``, ``lsr index --model``, ``lsr serve``), the HTTP service,
``lsr eval``, ``lsr train`` and ``lsr demo`` all go through this class; :meth:`Index.search` with
texts makes one internally (compatibility).

:meth:`Retriever.from_corpus` is the build side: encode a BEIR corpus (:mod:`lsr.corpus`) and
build an index recording the encoder.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from lsr.encoders.base import CorpusStats, Encoder, configs_match, load_encoder, load_recorded_encoder
from lsr.errors import LsrError
from lsr.vectors import SparseBatch


def check_encoder(recorded: dict[str, Any] | None, encoder: Any, force: bool = False) -> None:
    """Refuse ``encoder`` when its settings differ from ``recorded`` (an index manifest's encoder
    config) in a way that changes the vectors; ``force`` or no recorded config accepts it."""
    if recorded is None or force:
        return
    current = encoder.config()
    diff = configs_match(recorded, current)
    if diff:
        detail = ", ".join(f"{k}: index {recorded.get(k)!r} vs encoder {current.get(k)!r}" for k in diff)
        raise LsrError(
            f"encoder differs from the one this index was built with ({detail}); pass force=True / --force to search anyway"
        )


def corpus_stats(index: Any) -> CorpusStats:
    """The statistics of ``index``'s corpus that query encoders may need (document frequency of
    every index term, from its posting lists, and the document count)."""
    return CorpusStats(index.vocab, index.document_frequencies(), int(index.n_docs))


def is_text_queries(queries: Any) -> bool:
    """Whether ``queries`` is a non-empty list of strings (or holds strings among vector dicts)."""
    if isinstance(queries, (str, SparseBatch, Mapping)) or not isinstance(queries, Sequence):
        return False
    return any(isinstance(q, str) for q in queries)


class Retriever:
    """Text and vector search over one index (see the module docs).

    ``index`` is an :class:`~lsr.index.Index` or an index directory; ``encoder`` an
    :class:`~lsr.encoders.Encoder` or a model name (default: the encoder the index records).
    Thread-safe: the service shares one Retriever between its worker threads.
    """

    def __init__(self, index: Any, encoder: Encoder | str | None = None, *, force: bool = False) -> None:
        if isinstance(index, (str, os.PathLike)):
            from lsr.index import open_index

            index = open_index(index)
        self.index = index
        self.force = bool(force)
        if isinstance(encoder, str):
            encoder = load_encoder(encoder)
        if encoder is not None:
            check_encoder(index.encoder_config, encoder, self.force)
        self._encoder = encoder
        self._query_encoder: Any = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        name = getattr(self._encoder, "name", None) or (self.index.encoder_config or {}).get("model")
        return f"Retriever({self.index!r}, encoder={name!r})"

    # -- the encoder -------------------------------------------------------------------------------
    @property
    def has_encoder(self) -> bool:
        """Whether text queries can be encoded (an encoder was given or the index records one)."""
        return self._encoder is not None or bool(self.index.encoder_config)

    @property
    def encoder(self) -> Encoder:
        """The encoder (the index's recorded one, loaded on first use, when none was given)."""
        if self._encoder is None:
            with self._lock:
                if self._encoder is None:
                    cfg = self.index.encoder_config
                    if not cfg:
                        raise LsrError(
                            f"{self.index.path}: the index records no encoder, so text queries cannot be encoded; "
                            "pass query vectors"
                        )
                    self._encoder = load_recorded_encoder(cfg)
        return self._encoder

    @property
    def query_encoder(self) -> Encoder:
        """The encoder queries go through: :attr:`encoder` given this index's corpus statistics
        (``encoder.with_corpus_stats``; the encoder itself for kinds that ignore them)."""
        # A living index changes its statistics with each committed generation: the view is rebuilt
        # when the generation it was made for is no longer the index's.
        generation = getattr(self.index, "generation", None)
        cached = self._query_encoder
        if cached is None or cached[0] != generation:
            encoder = self.encoder
            with self._lock:
                cached = self._query_encoder
                if cached is None or cached[0] != generation:
                    cached = (generation, encoder.with_corpus_stats(corpus_stats(self.index)))
                    self._query_encoder = cached
        return cached[1]

    def encode_queries(self, texts: Sequence[str]) -> SparseBatch:
        """Encode query texts into a SparseBatch over the encoder's vocabulary (refuses empty ones)."""
        if isinstance(texts, str):
            raise LsrError("queries must be a list: wrap a single query text in a list")
        texts = list(texts)
        for i, t in enumerate(texts):
            if not isinstance(t, str) or not t.strip():
                raise LsrError(f"query {i} is empty")
        return self.query_encoder.encode_queries(texts)

    def encode_documents(self, texts: Sequence[str]) -> SparseBatch:
        """Encode document texts with the encoder (as the index's documents were)."""
        return self.encoder.encode_documents(list(texts))

    def vectors(self, queries: Any) -> Any:
        """Queries in a form :meth:`Index.search` takes: texts encoded (once), vectors unchanged.

        A list mixing texts and ``{token: weight}`` dicts becomes a list of dicts."""
        if not is_text_queries(queries):
            return queries
        if all(isinstance(q, str) for q in queries):
            return self.encode_queries(queries)
        texts = [q for q in queries if isinstance(q, str)]
        encoded = iter(self.encode_queries(texts).to_dicts())
        return [next(encoded) if isinstance(q, str) else q for q in queries]

    # -- search --------------------------------------------------------------------------------------
    def search(
        self,
        queries: Any,
        k: int = 10,
        method: str = "exact",
        filter: Any = None,
        threads: int = 1,
        **params: Any,
    ) -> list[Any]:
        """Top-``k`` documents of each query: a list of :class:`~lsr.index.SearchResult`.

        ``queries``: texts (encoded once), or anything :meth:`Index.search` takes (SparseBatch,
        scipy CSR over the index vocabulary, ``{token: weight}`` dicts), passed through. ``method``
        and its ``params`` are checked against the method registry before any encoding.
        ``filter``: a metadata filter (living indexes: see :mod:`lsr.index.metadata`), applied inside
        the kernels.
        """
        from lsr.index.searcher import check_k, check_threads

        k = check_k(k)
        threads = check_threads(threads)
        params = self.index.check_params(method, params)
        if filter is None:
            return self.index.search(self.vectors(queries), k=k, method=method, threads=threads, **params)
        if not hasattr(self.index, "fields"):  # a living index (its snapshot or itself)
            raise LsrError(
                "filter: this index has no metadata fields; documents get metadata through a living "
                "index (lsr.index.open_index(dir, writable=True), index.add(..., metadata=...))"
            )
        return self.index.search(
            self.vectors(queries), k=k, method=method, threads=threads, filter=filter, **params
        )

    def add_texts(
        self,
        texts: Sequence[str],
        ids: Sequence[str],
        metadata: Sequence[Mapping[str, Any] | None] | None = None,
        titles: Sequence[str] | None = None,
        batch_size: int = 256,
    ) -> int:
        """Encode document texts with this retriever's encoder and add them to a living index
        (opened with ``open_index(dir, writable=True)``); an id that exists is replaced. Nothing is
        durable before ``index.commit()``. Returns the number added."""
        add = getattr(self.index, "add_texts", None)
        if add is None:
            raise LsrError(
                f"{self.index.path} is open read-only: open it with lsr.index.open_index(dir, writable=True) to add documents"
            )
        return add(texts, ids, metadata, titles=titles, encoder=self.encoder, batch_size=batch_size)

    def warmup(self, methods: Sequence[str] | None = None) -> None:
        """Compile the search kernels (see :meth:`Index.warmup`) and run the query encoder once."""
        self.index.warmup(methods)
        if self.has_encoder:
            prepare = getattr(self.query_encoder, "prepare_queries", None)
            if prepare is not None:  # SPLADE's query fast path: build it now, not in the first request
                prepare()
            self.encode_queries(["warm up the encoder"])

    # -- build -----------------------------------------------------------------------------------------
    @classmethod
    def from_corpus(
        cls,
        corpus: str | os.PathLike,
        output_dir: str | os.PathLike,
        encoder: Encoder | str,
        *,
        batch_size: int = 256,
        limit: int | None = None,
        show_progress: bool = False,
        **build_options: Any,
    ) -> Retriever:
        """Encode a BEIR corpus file with ``encoder`` and build an index recording it; returns a
        Retriever over the new index.

        ``batch_size``: documents encoded per chunk; ``limit``: index only the first N documents;
        ``build_options`` go to :func:`lsr.index.build_index` (``quantization``, ``methods``,
        ``overwrite``, ``reorder``, ``bmp``, ``seismic``, ...).
        """
        from lsr.corpus import encode_corpus
        from lsr.index import build_index

        if isinstance(encoder, str):
            encoder = load_encoder(encoder)
        if isinstance(corpus, os.PathLike):
            corpus = os.fspath(corpus)
        if not isinstance(corpus, str):
            raise LsrError(f"corpus must be a BEIR corpus file path, got {type(corpus).__name__}")
        if not os.path.isfile(corpus):
            raise LsrError(f"{corpus}: no such file")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0):
            raise LsrError(f"limit must be a positive integer, got {limit!r}")
        chunks: Iterator[SparseBatch] = encode_corpus(encoder, corpus, batch_size)
        if limit is not None:
            chunks = _limit_chunks(chunks, limit)
        build_options.setdefault("source_name", f"corpus:{corpus}")
        path = build_index(chunks, output_dir, encoder=encoder, show_progress=show_progress, **build_options)
        return cls(path, encoder)


def _limit_chunks(chunks: Iterator[SparseBatch], limit: int) -> Iterator[SparseBatch]:
    """The first ``limit`` documents of a chunk stream."""
    left = limit
    for c in chunks:
        if len(c) > left:
            c = c.select(range(left))  # keeps ids and documents
        left -= len(c)
        yield c
        if left <= 0:
            return
