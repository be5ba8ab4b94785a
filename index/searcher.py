"""Opening an index (memory maps) and searching it: the :class:`Index` object.

``open_index(dir)`` maps the arrays described in :mod:`lsr.index.format`; ``Index.search`` accepts
queries as a :class:`~lsr.vectors.SparseBatch`, a scipy CSR matrix over the index vocabulary or a
list of ``{token: weight}`` dicts, and returns one :class:`SearchResult` per query: external doc ids and float scores in
descending order (ties by build order, whatever the internal numbering).

The index knows only vectors: nothing here imports an encoder. Text is :class:`lsr.Retriever`'s
job; for compatibility ``Index.search`` (and ``encode_queries``) still take a list of strings and
hand them to a Retriever made on the spot (the only place this package reaches ``lsr.retriever``).

Methods (``Index.methods`` lists those this index was built for):

- ``exact``: term-at-a-time over every posting of every query term.
- ``maxscore``: rank-safe MaxScore; same top-k and scores as exact.
- ``bmp``: Block-Max Pruning; ``alpha`` (default 1) < 1 over-estimates the threshold, ``beta``
  (default 1) < 1 drops the lightest query terms. alpha = beta = 1 is rank-safe.
- ``seismic``: approximate; ``query_cut`` (default 10) heaviest query terms drive the search,
  ``heap_factor`` (default 0.9) scales the k-th score that block summaries are compared with.

Every method scores a document with the same float32 additions in the same order (query terms
ascending by term id), so the safe methods return bit-identical scores to exact search.
"""

from __future__ import annotations

import contextlib
import copy
import json
import operator
import os
import queue
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any

import numpy as np

from lsr.errors import LsrError
from lsr.index import format as fmt
from lsr.index import methods as registry
from lsr.vectors import SparseBatch, Vocabulary

METHODS = registry.NAMES
# method -> {parameter: (default, low, high, integer?)}; bounds inclusive. Derived from the method
# registry (lsr.index.methods), kept for callers of the old table.
METHOD_PARAMS: dict[str, dict[str, tuple[float, float, float, bool]]] = {
    m.name: {p.name: (p.default, p.low, p.high, p.integer) for p in m.params}
    for m in registry.METHODS.values()
}
MAX_K = 1_000_000
# Index.doc_ids: decode every id once for indexes this small, when a call asks for this many ids
ID_STRINGS_MAX_DOCS = 1 << 20
ID_STRINGS_MIN_LOOKUP = 64


@dataclass
class SearchResult:
    """Top-k of one query: ``ids`` (external doc ids) and ``scores`` (floats), best first.

    ``docs`` are the internal doc numbers; ``unknown_tokens`` counts query tokens that are not in
    the index vocabulary (skipped: they match no document). Unpacks as ``ids, scores = result``.
    """

    ids: list[str]
    scores: list[float]
    docs: np.ndarray = field(repr=False)
    unknown_tokens: int = 0

    def __iter__(self) -> Iterator[Any]:
        return iter((self.ids, self.scores))

    def __len__(self) -> int:
        return len(self.ids)


class _Scratch:
    """Per-call working memory, pooled so searches reuse warm pages instead of page-faulting
    a fresh n_docs accumulator every time. Methods ask for named buffers, one row per chunk
    (:meth:`buffer`); what each holds between calls is the method's own invariant."""

    def __init__(self, n_docs: int, n_chunks: int) -> None:
        self.n_docs = n_docs
        self.n_chunks = n_chunks
        self._buffers: dict[str, np.ndarray] = {}

    def buffer(self, name: str, width: int, dtype: Any, fill: float | None = 0) -> np.ndarray:
        """The ``[n_chunks, >= width]`` buffer ``name``, made (filled with ``fill``; None: left
        uninitialised) on first use or when a wider one is needed."""
        buf = self._buffers.get(name)
        if buf is None or buf.shape[1] < width:
            shape = (self.n_chunks, max(int(width), 1))
            buf = np.empty(shape, dtype) if fill is None else np.full(shape, fill, dtype)
            self._buffers[name] = buf
        return buf


class Index:
    """A memory-mapped index. Thread-safe for concurrent searches."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = os.path.abspath(os.fspath(path))
        self.manifest = fmt.read_manifest(self.path)
        m = self.manifest
        self.n_docs: int = int(m["n_docs"])
        self.n_terms: int = int(m["n_terms"])
        self.n_postings: int = int(m["n_postings"])
        self.quantization: str = m["quantization"]["dtype"]
        self.scale = np.float32(m["quantization"]["scale"])
        self.offsets = fmt.open_array(self.path, "offsets", m)
        self.postings_docs = fmt.open_array(self.path, "postings_docs", m)
        self.postings_impacts = fmt.open_array(self.path, "postings_impacts", m)
        self.term_max = fmt.open_array(self.path, "term_max", m)
        # per-term quantizer: query weights are multiplied by each term's step factor (format docs)
        self.term_scale: np.ndarray | None = (
            fmt.open_array(self.path, "term_scale", m)
            if m["quantization"].get("quantizer") == "term"
            else None
        )
        self.doc_lengths = fmt.open_array(self.path, "doc_lengths", m)
        self._doc_ids = fmt.open_array(self.path, "doc_ids", m)
        self._id_strings: list[str] | None = None  # every id decoded, once (:meth:`doc_ids`)
        if int(self.offsets[-1]) != self.n_postings or int(self.offsets[0]) != 0:
            raise LsrError(f"{self.path}: offsets.npy does not match the manifest (damaged index)")
        self.vocab = Vocabulary(m["vocab"])
        self.has_store = bool(m.get("store"))
        if self.has_store:
            self._store_offsets = fmt.open_array(self.path, "store_offsets", m)
            store_path = os.path.join(self.path, fmt.STORE)
            if not os.path.isfile(store_path) or os.path.getsize(store_path) != int(self._store_offsets[-1]):
                raise LsrError(f"{self.path}: {fmt.STORE} is missing or truncated (damaged index)")
            self._store = np.memmap(store_path, dtype=np.uint8, mode="r") if self._store_offsets[-1] else None
        self.parts: dict[str, Any] = m.get("parts") or {}
        self._open_parts()
        # Refuse a damaged-but-well-sized index here rather than bounds-check every kernel load: one
        # vectorised pass over the postings and parts at open, nothing per query (lsr.index.check).
        from lsr.index.check import validate

        validate(self.path, m)
        self._id_order: np.ndarray | None = None
        self._vocab_maps: dict[int, tuple[Vocabulary, np.ndarray | None, int]] = {}
        self._pool: queue.SimpleQueue[_Scratch] = queue.SimpleQueue()
        # per-method state learned from this index's searches (e.g. whether MaxScore pays here)
        self.adaptive: dict[str, Any] = {}
        self._retrievers: dict[tuple[int, bool], tuple[Any, Any]] = {}
        self._retriever_lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"Index({self.path!r}, docs={self.n_docs}, terms={self.n_terms}, postings={self.n_postings}, "
            f"quantization={self.quantization})"
        )

    def _open_parts(self) -> None:
        """Map the optional parts this index has (each part's own ``open``, from the registry) and
        list the methods whose parts are all here."""
        m, p = self.manifest, self.parts
        self.doc_order = fmt.open_array(self.path, "doc_order", m) if p.get("doc_order") else _NO_ORDER
        for name, part in registry.PARTS.items():
            setattr(self, name, part.open(self, p[name]) if p.get(name) else None)
        self.methods: tuple[str, ...] = tuple(
            name
            for name, method in registry.METHODS.items()
            if all(getattr(self, part) is not None for part in method.parts)
        )

    @property
    def postings(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.float32]:
        """(offsets, postings_docs, postings_impacts, scale): what every search kernel reads first."""
        return (self.offsets, self.postings_docs, self.postings_impacts, self.scale)

    @property
    def encoder_config(self) -> dict[str, Any] | None:
        return self.manifest.get("encoder")

    def doc_id(self, doc: int) -> str:
        """External id of internal doc number ``doc``."""
        return self._doc_ids[doc].decode("utf-8")

    def document(self, doc: int) -> dict[str, str]:
        """``{"id", "title", "text"}`` of internal doc number ``doc`` from the document store
        (empty title and text when the index keeps no text for it)."""
        out = {"id": self.doc_id(doc), "title": "", "text": ""}
        if self.has_store and self._store is not None:
            a, b = int(self._store_offsets[doc]), int(self._store_offsets[doc + 1])
            if b > a:
                rec = json.loads(bytes(self._store[a:b]))
                out["title"], out["text"] = rec.get("title", ""), rec.get("text", "")
        return out

    def lookup(self, doc_id: str) -> int | None:
        """Internal doc number of external id ``doc_id``, or None (binary search over a sorted
        permutation of the ids, built on first use: 8 bytes per document)."""
        if self._id_order is None:
            self._id_order = np.argsort(self._doc_ids, kind="stable")
        key = np.array(doc_id.encode("utf-8"), dtype=self._doc_ids.dtype)
        if len(doc_id.encode("utf-8")) > self._doc_ids.dtype.itemsize:
            return None
        pos = int(np.searchsorted(self._doc_ids, key, sorter=self._id_order))
        if pos < self.n_docs and self._doc_ids[self._id_order[pos]] == key:
            return int(self._id_order[pos])
        return None

    def doc_ids(self, docs: np.ndarray) -> list[str]:
        """External ids of internal doc numbers ``docs``.

        A batch of at least ``ID_STRINGS_MIN_LOOKUP`` ids (or :meth:`warmup`) first decodes every id
        of an index of at most ``ID_STRINGS_MAX_DOCS`` documents into a list kept for later calls:
        decoding each id anew was most of a batch's result building, the one part of a threaded
        batch search that runs on one thread (BENCHMARKS.md, "Session of 2026-12-01, late")."""
        docs = np.asarray(docs, dtype=np.int64)
        strings = self._id_strings
        if strings is None and len(docs) >= ID_STRINGS_MIN_LOOKUP:
            strings = self._decode_ids()
        if strings is None:
            return [b.decode("utf-8") for b in self._doc_ids[docs].tolist()]
        if len(docs) < 2:  # itemgetter of one index returns the item, not a tuple
            return [strings[i] for i in docs.tolist()]
        return list(operator.itemgetter(*docs.tolist())(strings))

    def _decode_ids(self) -> list[str] | None:
        """Decode every external id once (None above ``ID_STRINGS_MAX_DOCS`` documents: the list
        costs about 60-80 bytes per document). Two threads racing here both build the same list."""
        if self._id_strings is None and self.n_docs <= ID_STRINGS_MAX_DOCS:
            self._id_strings = [b.decode("utf-8") for b in self._doc_ids.tolist()]
        return self._id_strings

    def size_bytes(self) -> int:
        """Bytes on disk of every file of the index."""
        return sum(os.path.getsize(os.path.join(self.path, f)) for f in os.listdir(self.path))

    def prefault(self, chunk_bytes: int = 1 << 24) -> int:
        """Read every file of the index once (in ``chunk_bytes`` pieces, the data discarded) so
        that its pages sit in the page cache and a search maps them without waiting on the disk;
        returns the bytes read. The arrays are memory-mapped: a page nobody touched for a while
        may have been dropped by the kernel (memory pressure, or proactive reclaim such as DAMON's
        ``pageout``, which the benchmark machine runs on pages idle for a minute), and the next
        search to touch it waits for the disk. Call it after opening, or after an idle spell,
        before timing or serving."""
        total = 0
        for name in sorted(os.listdir(self.path)):
            path = os.path.join(self.path, name)
            if not os.path.isfile(path):
                continue
            with open(path, "rb", buffering=0) as f:
                while True:
                    got = f.read(chunk_bytes)
                    if not got:
                        break
                    total += len(got)
        return total

    # -- query conversion ------------------------------------------------------------------------
    def _vocab_map(self, vocab: Vocabulary) -> np.ndarray:
        """Array mapping term ids of ``vocab`` to this index's term ids (-1 when absent)."""
        if vocab is self.vocab or vocab.tokens is self.vocab.tokens:
            return None  # type: ignore[return-value]
        hit = self._vocab_maps.get(id(vocab))
        if hit is not None and hit[0] is vocab and hit[2] == len(vocab):  # vocabularies can grow
            return hit[1]
        get = self.vocab.get
        mapping = np.fromiter((get(t) for t in vocab.tokens), dtype=np.int64, count=len(vocab))
        if len(vocab) == len(self.vocab) and np.array_equal(mapping, np.arange(len(vocab))):
            mapping = None  # type: ignore[assignment]
        self._vocab_maps[id(vocab)] = (vocab, mapping, len(vocab))  # type: ignore[assignment]
        return mapping

    def prepare_queries(
        self,
        queries: Any,
        encoder: Any = None,
        force: bool = False,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Convert any accepted query form to CSR arrays over this index's term ids.

        Returns (indptr int64, term ids int32, weights float32, unknown-token count per query).
        """
        if type(queries) is list and queries and all(type(q) is dict for q in queries):
            # the service's and users' form, first: no ABC or scipy checks on the latency path
            return _dicts_to_queries(queries, self.vocab)
        batch: SparseBatch
        unknown_per_q: np.ndarray | None = None
        if isinstance(queries, SparseBatch):
            batch = queries
        elif isinstance(queries, Mapping):
            raise LsrError("queries must be a list: wrap a single {token: weight} dict in a list")
        elif isinstance(queries, str):
            raise LsrError("queries must be a list: wrap a single query text in a list")
        else:
            try:
                import scipy.sparse as sp

                if sp.issparse(queries):
                    if queries.shape[1] > self.n_terms:
                        raise LsrError(
                            f"query matrix has {queries.shape[1]} columns, the index vocabulary {self.n_terms} terms"
                        )
                    batch = SparseBatch.from_scipy(queries, self.vocab)
                    queries = None
            except ImportError:  # pragma: no cover
                pass
            if queries is not None:
                if not isinstance(queries, Sequence):
                    queries = list(queries)
                if len(queries) and all(isinstance(q, str) for q in queries):
                    batch = self.encode_queries(queries, encoder=encoder, force=force)  # via a Retriever
                elif all(isinstance(q, Mapping) for q in queries):
                    # already canonical over this index's term ids: no mapping, checks or sorting left
                    return _dicts_to_queries(queries, self.vocab)
                else:
                    raise LsrError(
                        "queries must be a SparseBatch, a scipy CSR matrix, a list of {token: weight} dicts or a list of strings"
                    )
        indptr, terms, weights = batch.indptr, batch.indices, batch.data
        if unknown_per_q is None:
            unknown_per_q = np.zeros(len(batch), np.int64)
        mapping = self._vocab_map(batch.vocab)
        if mapping is not None:
            if len(terms) and terms.max() >= len(mapping):
                raise LsrError("query term id outside its vocabulary")
            mapped = mapping[terms]
            keep = mapped >= 0
            if not keep.all():
                row_of = np.repeat(np.arange(len(batch)), np.diff(indptr))
                unknown_per_q += np.bincount(row_of[~keep], minlength=len(batch))
                lens = np.bincount(row_of[keep], minlength=len(batch))
                indptr = np.zeros(len(batch) + 1, np.int64)
                np.cumsum(lens, out=indptr[1:])
            terms, weights = mapped[keep].astype(np.int32), weights[keep]
        # one compiled pass checks ids and weights and says whether sorting is needed (a dozen
        # numpy reductions cost more than a small collection's search)
        indptr = np.asarray(indptr, np.int64)
        terms, weights = np.asarray(terms), np.asarray(weights)
        if terms.dtype not in (np.int32, np.int64):
            terms = terms.astype(np.int64)
        if weights.dtype not in (np.float32, np.float64):
            weights = weights.astype(np.float64)
        qk = _query_kernels()
        code = qk.check_queries(indptr, terms, weights, self.n_terms)
        if code == qk.BAD_TERM:
            raise LsrError(f"query term id outside the index vocabulary (0 .. {self.n_terms - 1})")
        if code == qk.BAD_WEIGHT:
            raise LsrError("query weights must be finite and >= 0")
        terms, weights = np.asarray(terms, np.int32), np.asarray(weights, np.float32)
        if code == qk.NOT_CANONICAL:
            indptr, terms, weights = _canonical(indptr, terms, weights)
        return (
            np.ascontiguousarray(indptr, np.int64),
            np.ascontiguousarray(terms, np.int32),
            np.ascontiguousarray(weights, np.float32),
            unknown_per_q,
        )

    # -- corpus statistics -------------------------------------------------------------------------
    def document_frequencies(self) -> np.ndarray:
        """int64[n_terms]: documents holding each index term (the length of its posting list)."""
        return np.diff(np.asarray(self.offsets, np.int64))

    # -- text (compatibility: the index knows only vectors; lsr.Retriever encodes) ------------------
    def _retriever(self, encoder: Any = None, force: bool = False) -> Any:
        """The :class:`lsr.Retriever` that encodes text queries for this index with ``encoder``
        (default: the recorded one), kept for reuse so the encoder loads and binds once."""
        from lsr.retriever import Retriever

        key = (id(encoder), bool(force))
        with self._retriever_lock:
            hit = self._retrievers.get(key)
            if hit is not None and hit[0] is encoder:
                return hit[1]
        retriever = Retriever(self, encoder, force=force)
        with self._retriever_lock:
            if len(self._retrievers) >= 8:
                self._retrievers.clear()
            self._retrievers[key] = (encoder, retriever)
        return retriever

    def load_encoder(self) -> Any:
        """The encoder recorded in the manifest (loaded once, then cached). Compatibility: see
        :attr:`lsr.Retriever.encoder`."""
        return self._retriever().encoder

    def check_encoder(self, encoder: Any, force: bool = False) -> None:
        """Refuse an encoder whose settings differ from the ones the index was built with.
        Compatibility: see :class:`lsr.Retriever`."""
        from lsr.retriever import check_encoder

        check_encoder(self.encoder_config, encoder, force)

    def encode_queries(self, texts: Sequence[str], encoder: Any = None, force: bool = False) -> SparseBatch:
        """Encode query texts with ``encoder`` (checked against the manifest) or the recorded one.
        Compatibility: see :meth:`lsr.Retriever.encode_queries`."""
        return self._retriever(encoder, force).encode_queries(texts)

    # -- search ----------------------------------------------------------------------------------
    def search(
        self,
        queries: Any,
        k: int = 10,
        method: str = "exact",
        threads: int = 1,
        encoder: Any = None,
        force: bool = False,
        **params: Any,
    ) -> list[SearchResult]:
        """Top-``k`` documents for each query (see the module docs for the accepted query forms).

        ``method`` picks the algorithm (``"exact"``); ``threads`` > 1 spreads a batch of queries over
        that many threads. ``encoder``/``force`` apply to text queries. Unknown ``params`` are refused.
        """
        return run_search(self, queries, k, method, threads, encoder, force, params)

    def check_params(self, method: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """Validate ``method`` for this index and fill in its parameters' defaults (bounds and
        types from the method's registry record)."""
        if method not in registry.METHODS:
            raise LsrError(f"unknown method {method!r} (available: {', '.join(self.methods)})")
        if method not in self.methods:
            missing = [p for p in registry.METHODS[method].parts if getattr(self, p) is None]
            raise LsrError(
                f"this index was built without the {' and '.join(missing)} part{'s' if len(missing) > 1 else ''} "
                f"that method {method!r} needs (available: {', '.join(self.methods)}); rebuild it with "
                f"methods including {method!r} (lsr index --methods {method})"
            )
        return registry.METHODS[method].check_params(params)

    def search_arrays(
        self,
        indptr: np.ndarray,
        terms: np.ndarray,
        weights: np.ndarray,
        k: int,
        threads: int = 1,
        method: str = "exact",
        mask: np.ndarray | None = None,
        **params: Any,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Low-level search over CSR query arrays already in index term ids, each query's terms
        ascending (as :meth:`prepare_queries` returns them); ``params`` already checked.

        ``mask`` (uint8 or bool [n_docs], by *internal* doc number) keeps the documents whose entry
        is 0 out of the results inside the kernel, so k allowed documents come back when k exist
        (the living index passes deletions and filters this way); None: every document.

        Returns (build-order doc numbers int64[nq, k] with -1 padding, scores float32[nq, k]).
        """
        if self.term_scale is not None:  # per-term steps folded into the query: kernels unchanged
            weights = weights * self.term_scale[terms]
        if mask is None:
            mask = _NO_MASK
        else:
            mask = np.ascontiguousarray(mask).view(np.uint8) if mask.dtype == np.bool_ else mask
            if mask.dtype != np.uint8 or mask.shape != (self.n_docs,):
                raise LsrError(f"mask must be uint8 or bool of shape ({self.n_docs},)")
        nq = len(indptr) - 1
        k_eff = max(1, min(k, self.n_docs))
        n_chunks = max(1, min(threads, nq))
        scratch = self._take_scratch(n_chunks)
        try:
            # more than one chunk: the method hands query ranges to threads (lsr.index.batch)
            d, s = self._run(method, params, indptr, terms, weights, k_eff, scratch, n_chunks, mask)
        finally:
            self._pool.put(scratch)
        if k_eff < k:
            d = np.pad(d, ((0, 0), (0, k - k_eff)), constant_values=-1)
            s = np.pad(s, ((0, 0), (0, k - k_eff)))
        return d, s

    def _run(
        self,
        method: str,
        params: dict[str, Any],
        indptr: np.ndarray,
        terms: np.ndarray,
        weights: np.ndarray,
        k: int,
        scratch: _Scratch,
        n_chunks: int,
        mask: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Call the method's kernel through its registry record: serial for one chunk, parallel
        otherwise (``mask``: uint8 [n_docs], 0 = never a hit, or empty for no mask)."""
        return registry.METHODS[method].search(
            self, params, indptr, terms, weights, k, scratch, n_chunks, mask
        )

    def _take_scratch(self, n_chunks: int) -> _Scratch:
        while True:
            try:
                sc = self._pool.get_nowait()
            except queue.Empty:
                return _Scratch(self.n_docs, n_chunks)
            if sc.n_chunks >= n_chunks:
                return sc
            # too small for this call: drop it and look further (a new one is made if none fits)

    def _results(self, docs: np.ndarray, scores: np.ndarray, unknown: np.ndarray) -> list[SearchResult]:
        return search_results(self.doc_ids, docs, scores, unknown)

    def warmup(self, methods: Sequence[str] | None = None) -> None:
        """Compile (or load from cache) the search kernels of ``methods`` (default: all this index
        has) with a tiny query, so no search pays for JIT. The method's own kernels run whatever
        its fallback policy would decide (``policy_decided``: after the first call the policy may
        send the tiny query to exact search, and the threaded kernel would never compile), and the
        policies are left as they were: warm-up queries say nothing about real ones. The external
        ids are decoded here too (:meth:`doc_ids`), so the first batch does not pay for that."""
        t = np.array([int(np.argmax(np.diff(self.offsets)))], dtype=np.int32)
        self._decode_ids()
        with self.policies_kept():
            for method in methods or self.methods:
                params = {**self.check_params(method, {}), "policy_decided": True}
                self.search_arrays(
                    np.array([0, 1], np.int64), t, np.ones(1, np.float32), 10, 1, method, **params
                )
                self.search_arrays(
                    np.array([0, 1, 2], np.int64),
                    np.repeat(t, 2),
                    np.ones(2, np.float32),
                    10,
                    2,
                    method,
                    **params,
                )

    @contextlib.contextmanager
    def policies_kept(self) -> Iterator[None]:
        """Run the body (a warm-up) with this index's fallback policies restored afterwards."""
        saved = {name: copy.copy(policy) for name, policy in self.adaptive.items()}
        try:
            yield
        finally:
            self.adaptive.clear()
            self.adaptive.update(saved)


_QUERY_KERNELS: Any = None


def _query_kernels() -> Any:
    """:mod:`lsr.index.kernels.query`, imported on first use (importing the package stays free of
    Numba) and then held here, so a search pays no import statement."""
    global _QUERY_KERNELS
    if _QUERY_KERNELS is None:
        from lsr.index.kernels import query

        _QUERY_KERNELS = query
    return _QUERY_KERNELS


_NO_MASK = np.empty(0, np.uint8)  # "no document masked": one kernel signature with and without a mask
# "not reordered": read-only like a mapped doc_order, so an index built without reordering runs the
# kernels the warm-up compiled (Numba compiles a separate version for a writable array argument)
_NO_ORDER = np.empty(0, np.uint32)
_NO_ORDER.flags.writeable = False


def search_results(
    doc_ids: Any, docs: np.ndarray, scores: np.ndarray, unknown: np.ndarray
) -> list[SearchResult]:
    """One :class:`SearchResult` per row of (docs int64[nq, k] with -1 padding, scores float32[nq, k]);
    ``doc_ids`` maps an array of document numbers to external ids (the index, segments or shards
    decide what a number means)."""
    found = (docs >= 0).sum(axis=1)  # -1 padding only at the end of a row
    unknown = unknown.tolist()
    if docs.shape[0] == 1:  # one query: the latency path
        n = int(found[0])
        dq = docs[0, :n]
        return [SearchResult(doc_ids(dq), scores[0, :n].tolist(), dq, unknown[0])]
    # a batch: every id looked up in one call, then cut per query (no numpy call per query)
    valid = docs >= 0
    ids = doc_ids(docs[valid])
    flat_scores = scores[valid].tolist()
    rows = list(docs)  # one view per row, made in C; cut only where a row is short
    k = docs.shape[1]
    out = []
    pos = 0
    for qi, n in enumerate(found.tolist()):
        row = rows[qi] if n == k else rows[qi][:n]
        out.append(SearchResult(ids[pos : pos + n], flat_scores[pos : pos + n], row, unknown[qi]))
        pos += n
    return out


def _dicts_to_queries(
    queries: Sequence[Mapping[str, Any]], vocab: Vocabulary
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``{token: weight}`` queries as canonical CSR arrays over ``vocab``'s term ids (what
    :meth:`Index.prepare_queries` returns): unknown tokens skipped and counted, zero weights dropped,
    terms ascending and unique. The common case (numeric weights, one id per token) is two
    ``np.fromiter`` and one compiled call per query (:func:`lsr.index.kernels.query.dict_query`):
    this is the latency path of every dict query. Anything else goes through
    :func:`lsr.vectors._dicts_to_csr` (as :meth:`SparseBatch.from_dicts`), which names the bad
    weight or merges repeated term ids."""
    from lsr.vectors import _dicts_to_csr

    nq = len(queries)
    if nq > 1:  # a batch: one vectorised conversion of all the queries (unknown tokens per row)
        indptr, terms, weights, unknown = _dicts_to_csr(queries, vocab, False, False, lambda i: f"vector {i}")
        return indptr, terms.astype(np.int32), weights.astype(np.float32), unknown.astype(np.int64)
    get = vocab._ids.get
    dict_query = _query_kernels().dict_query
    t_rows: list[np.ndarray] = []
    w_rows: list[np.ndarray] = []
    unknown = np.zeros(nq, np.int64)
    indptr = np.zeros(nq + 1, np.int64)
    for i, q in enumerate(queries):
        n = len(q)
        try:
            w = np.fromiter(q.values(), np.float64, n)
        except (TypeError, ValueError):
            ok = False
        else:
            ok, t, w32, unk = dict_query(np.fromiter(map(get, q, repeat(-1)), np.int64, n), w)
        if not ok:
            _, t, w32, u = _dicts_to_csr([q], vocab, False, False, lambda _, i=i: f"vector {i}")
            unk = int(u[0])
        t_rows.append(t)
        w_rows.append(w32)
        unknown[i] = unk
        indptr[i + 1] = indptr[i] + len(t)
    if nq == 1:
        terms, weights = t_rows[0], w_rows[0]
    elif nq:
        terms, weights = np.concatenate(t_rows), np.concatenate(w_rows)
    else:
        terms, weights = np.empty(0, np.int32), np.empty(0, np.float32)
    return indptr, np.asarray(terms, np.int32), np.asarray(weights, np.float32), unknown


def _canonical(indptr: np.ndarray, terms: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, ...]:
    """Each query's terms ascending and unique (duplicate weights summed), zero weights dropped:
    the order every kernel adds scores in, so all methods agree to the last bit."""
    nq = len(indptr) - 1
    row = np.repeat(np.arange(nq), np.diff(indptr))
    same = row[1:] == row[:-1]
    if np.all(terms[1:][same] > terms[:-1][same]) and (len(weights) == 0 or weights.min() > 0):
        return indptr, terms, weights
    order = np.lexsort((terms, row))
    terms, weights, row = terms[order], weights[order], row[order]
    first = np.ones(len(terms), bool)
    first[1:] = (terms[1:] != terms[:-1]) | (row[1:] != row[:-1])
    starts = np.flatnonzero(first)
    weights = np.add.reduceat(weights, starts) if len(starts) else weights[:0]
    terms, row = terms[starts], row[starts]
    keep = weights > 0
    terms, weights, row = terms[keep], weights[keep], row[keep]
    indptr = np.zeros(nq + 1, np.int64)
    np.cumsum(np.bincount(row, minlength=nq), out=indptr[1:])
    return indptr, terms, weights


def run_search(
    ix: Any,
    queries: Any,
    k: Any,
    method: str,
    threads: Any,
    encoder: Any,
    force: bool,
    params: dict[str, Any],
) -> list[SearchResult]:
    """The body of ``search`` shared by :class:`Index` and :class:`~lsr.index.shards.ShardedIndex`:
    check ``k``, ``threads`` and the method's parameters, turn the queries into CSR arrays, search,
    and build the results."""
    k = check_k(k)
    threads = check_threads(threads)
    params = ix.check_params(method, params)
    indptr, terms, weights, unknown = ix.prepare_queries(queries, encoder=encoder, force=force)
    docs, scores = ix.search_arrays(indptr, terms, weights, k, threads, method, **params)
    return ix._results(docs, scores, unknown)


def check_k(k: Any) -> int:
    """``k`` as an int in 1 .. MAX_K, or a clear LsrError."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise LsrError(f"k must be an integer, got {k!r}")
    if k <= 0:
        raise LsrError(f"k must be > 0, got {k}")
    if k > MAX_K:
        raise LsrError(f"k must be <= {MAX_K}, got {k}")
    return int(k)


def check_threads(threads: Any) -> int:
    """``threads`` as an int >= 1, or a clear LsrError."""
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise LsrError(f"threads must be an integer >= 1, got {threads!r}")
    return int(threads)


def open_index(path: str | os.PathLike, writable: bool = False, **options: Any) -> Any:
    """Open an index directory with memory maps (raises :class:`LsrError` when it is missing, truncated
    or of another format version). A sharded index root (``shards.json``, :mod:`lsr.index.shards`)
    opens as a :class:`~lsr.index.shards.ShardedIndex` with the same search API; with
    ``writable=True``, or once any shard has been written to, as a
    :class:`~lsr.index.living_shards.LivingShardedIndex` (writes routed to the shard owning each id).

    A plain index (no generation files) opens as an :class:`Index`. ``writable=True``, or a
    directory that has been written to as a living index, gives a
    :class:`~lsr.index.segments.SegmentedIndex` (add / delete / commit / merge, filters; see
    :mod:`lsr.index.segments`); ``options`` are its settings (``parts_min_docs``, ``merge_factor``,
    ``merge_min_docs``)."""
    from lsr.index import segments

    if os.path.isfile(os.path.join(os.fspath(path), "shards.json")):
        from lsr.index import living_shards

        if writable or living_shards.has_writes(path):
            # shards that take (or took) writes: each shard a living index, writes routed by id
            return living_shards.LivingShardedIndex(path, writable=writable, **options)
        from lsr.index.shards import open_sharded

        return open_sharded(path)  # type: ignore[return-value]
    if writable or segments.is_segmented(path):
        return segments.SegmentedIndex(path, writable=writable, **options)
    if options:
        raise LsrError(f"options {', '.join(sorted(options))} apply to a living index (writable=True)")
    return Index(path)
