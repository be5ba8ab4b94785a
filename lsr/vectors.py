"""Sparse vectors: the in-memory batch type and the JSONL file format.

A :class:`SparseBatch` is a CSR matrix over a :class:`Vocabulary` (term id -> token string):
``indptr`` (int64, n + 1), ``indices`` (int32 term ids, ascending within each row) and ``data``
(float32 weights, all > 0). Encoders produce it, the index builder consumes it, searches take it.

On disk, vectors are JSON lines in the layout of pyserini's JsonVectorCollection and Seismic::

    {"id": "doc1", "content": "optional text", "vector": {"token": 1.25, "other": 0.5}}

gzipped when the file name ends in ``.gz``. Reading and writing stream line by line.
"""

from __future__ import annotations

import gzip
import io
import json
import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain, repeat
from typing import IO, Any

import numpy as np

from lsr.errors import LsrError


class Vocabulary:
    """Term ids <-> token strings. Ids are dense, 0 .. len - 1, in insertion order."""

    __slots__ = ("_tokens", "_ids")

    def __init__(self, tokens: Iterable[str] = ()) -> None:
        self._tokens: list[str] = []
        self._ids: dict[str, int] = {}
        for tok in tokens:
            self.add(tok)

    def __len__(self) -> int:
        return len(self._tokens)

    def __contains__(self, token: object) -> bool:
        return token in self._ids

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self._tokens == other._tokens

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} terms)"

    @property
    def tokens(self) -> list[str]:
        """The tokens in id order (do not modify)."""
        return self._tokens

    def add(self, token: str) -> int:
        """Return the id of ``token``, adding it at the end when new."""
        tid = self._ids.get(token)
        if tid is None:
            if not isinstance(token, str):
                raise LsrError(f"vocabulary tokens must be strings, got {token!r}")
            tid = len(self._tokens)
            self._tokens.append(token)
            self._ids[token] = tid
        return tid

    def get(self, token: str, default: int = -1) -> int:
        """The id of ``token``, or ``default`` when it is not in the vocabulary."""
        return self._ids.get(token, default)

    def token(self, term_id: int) -> str:
        return self._tokens[term_id]


@dataclass
class SparseBatch:
    """A batch of sparse vectors in CSR form over ``vocab``.

    ``ids`` optionally names each row (document or query id). Weights are float32 and positive;
    zero weights are never stored.
    """

    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray
    vocab: Vocabulary
    ids: list[str] | None = None
    # Tokens dropped because they were not in a fixed vocabulary (see from_dicts).
    unknown_tokens: int = field(default=0, compare=False)
    # Optional (title, text) of each row, kept by the index builder as the document store.
    documents: list[tuple[str, str]] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        self.indptr = np.ascontiguousarray(self.indptr, dtype=np.int64)
        self.indices = np.ascontiguousarray(self.indices, dtype=np.int32)
        self.data = np.ascontiguousarray(self.data, dtype=np.float32)
        if self.indptr.ndim != 1 or len(self.indptr) < 1 or self.indptr[0] != 0:
            raise LsrError("SparseBatch.indptr must be 1-D and start at 0")
        if self.indptr[-1] != len(self.indices) or len(self.indices) != len(self.data):
            raise LsrError("SparseBatch: indptr[-1], len(indices) and len(data) disagree")
        if self.ids is not None and len(self.ids) != len(self):
            raise LsrError(f"SparseBatch: {len(self.ids)} ids for {len(self)} rows")

    def __len__(self) -> int:
        return len(self.indptr) - 1

    @classmethod
    def from_rows(
        cls, indices: Sequence[np.ndarray], weights: Sequence[np.ndarray], vocab: Vocabulary
    ) -> SparseBatch:
        """A batch from per-row term ids (int32, ascending) and weights (float32), row i = vector i."""
        indptr = np.zeros(len(indices) + 1, np.int64)
        np.cumsum([len(r) for r in indices], out=indptr[1:])
        return cls(
            indptr,
            np.concatenate(indices) if len(indices) else np.zeros(0, np.int32),
            np.concatenate(weights) if len(weights) else np.zeros(0, np.float32),
            vocab,
        )

    @classmethod
    def trusted(
        cls, indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, vocab: Vocabulary
    ) -> SparseBatch:
        """A batch from arrays the caller guarantees are valid (int64 / int32 / float32, contiguous,
        consistent): no checks, for per-query hot paths where they cost more than the work."""
        b = object.__new__(cls)
        b.indptr, b.indices, b.data, b.vocab = indptr, indices, data, vocab
        b.ids, b.unknown_tokens, b.documents = None, 0, None
        return b

    @property
    def nnz(self) -> int:
        return int(self.indptr[-1])

    def row(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Term ids and weights of row ``i``."""
        s, e = self.indptr[i], self.indptr[i + 1]
        return self.indices[s:e], self.data[s:e]

    def to_dicts(self) -> list[dict[str, float]]:
        """Rows as ``{token: weight}`` dicts (weights as Python floats)."""
        toks = self.vocab.tokens
        out = []
        for i in range(len(self)):
            idx, w = self.row(i)
            out.append({toks[t]: float(x) for t, x in zip(idx.tolist(), w.tolist(), strict=True)})
        return out

    def to_scipy(self):
        """A ``scipy.sparse.csr_matrix`` of shape (rows, len(vocab))."""
        import scipy.sparse as sp

        return sp.csr_matrix((self.data, self.indices, self.indptr), shape=(len(self), len(self.vocab)))

    def select(self, rows: Sequence[int] | np.ndarray) -> SparseBatch:
        """A new batch holding ``rows`` in the given order."""
        rows = np.asarray(rows, dtype=np.int64)
        lens = self.indptr[rows + 1] - self.indptr[rows]
        indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lens, out=indptr[1:])
        take = (
            np.concatenate([np.arange(self.indptr[r], self.indptr[r + 1]) for r in rows])
            if len(rows)
            else np.zeros(0, np.int64)
        )
        ids = [self.ids[r] for r in rows] if self.ids is not None else None
        docs = [self.documents[r] for r in rows] if self.documents is not None else None
        return SparseBatch(indptr, self.indices[take], self.data[take], self.vocab, ids, documents=docs)

    @classmethod
    def from_dicts(
        cls,
        vectors: Sequence[Mapping[str, float]],
        vocab: Vocabulary | None = None,
        ids: list[str] | None = None,
        unknown: str = "skip",
    ) -> SparseBatch:
        """Build a batch from ``{token: weight}`` dicts.

        With ``vocab=None`` a new vocabulary is grown from the tokens seen. With a fixed ``vocab``,
        a token not in it is skipped and counted in ``unknown_tokens`` (``unknown="skip"``, the
        default: such a term matches no document, so skipping it leaves every score unchanged),
        refused (``"error"``), or added (``"add"``). Weights must be finite and >= 0; zeros are dropped.
        """
        if unknown not in ("skip", "error", "add"):
            raise LsrError(f"unknown= must be 'skip', 'error' or 'add', not {unknown!r}")
        grow = vocab is None or unknown == "add"
        vocab = Vocabulary() if vocab is None else vocab
        for i, vec in enumerate(vectors):
            if not isinstance(vec, Mapping):
                raise LsrError(f"vector {i}: expected a {{token: weight}} mapping, got {type(vec).__name__}")
        indptr, indices, data, unk = _dicts_to_csr(
            vectors, vocab, grow, unknown == "error", lambda i: f"vector {i}"
        )
        return cls(indptr, indices, data, vocab, ids, unknown_tokens=int(unk.sum()))

    @classmethod
    def from_scipy(cls, matrix: Any, vocab: Vocabulary, ids: list[str] | None = None) -> SparseBatch:
        """Wrap a scipy sparse matrix whose columns are ``vocab``'s term ids (zeros are dropped)."""
        import scipy.sparse as sp

        if not sp.issparse(matrix):
            raise LsrError("expected a scipy.sparse matrix")
        m = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
        if m.shape[1] > len(vocab):
            raise LsrError(f"matrix has {m.shape[1]} columns but the vocabulary has {len(vocab)} terms")
        m.eliminate_zeros()
        m.sort_indices()
        if m.nnz and (not np.all(np.isfinite(m.data)) or m.data.min() < 0):
            raise LsrError("weights must be finite and >= 0")
        return cls(m.indptr, m.indices, m.data, vocab, ids)


def _check_weights(vec: Mapping[str, Any], where: str) -> None:
    """Slow path: name the first weight that is not a finite number >= 0."""
    for tok, x in vec.items():
        if isinstance(x, bool) or not isinstance(x, (int, float)):
            raise LsrError(f"{where}: weight of {tok!r} is not a number: {x!r}")
        if not math.isfinite(x) or x < 0:
            raise LsrError(f"{where}: weight of {tok!r} must be finite and >= 0, got {x!r}")


def _dicts_to_csr(
    vecs: Sequence[Mapping[str, Any]],
    vocab: Vocabulary,
    grow: bool,
    strict: bool,
    where: Any,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Convert ``{token: weight}`` dicts to CSR arrays in one vectorised pass.

    Returns (indptr, term ids sorted within rows, float32 weights, unknown tokens per row).
    ``where(i)`` names vector i in error messages.
    """
    n = len(vecs)
    lens = np.fromiter(map(len, vecs), dtype=np.int64, count=n)
    total = int(lens.sum())
    try:
        w = np.fromiter(chain.from_iterable(v.values() for v in vecs), dtype=np.float64, count=total)
        bad = not np.all(np.isfinite(w)) or (total and w.min() < 0)
    except (TypeError, ValueError):
        bad = True
    if bad:
        for i, v in enumerate(vecs):
            _check_weights(v, where(i))
    # C-speed lookups straight into an array; -1 marks an unknown token
    idx = np.fromiter(map(vocab._ids.get, chain.from_iterable(vecs), repeat(-1)), dtype=np.int64, count=total)
    rows = np.repeat(np.arange(n, dtype=np.int64), lens)
    unknown = np.zeros(n, dtype=np.int64)
    known = idx >= 0
    if not known.all():
        if grow:
            miss = np.flatnonzero(~known)
            if len(miss) > 1024:
                # many new tokens (a first chunk): add the distinct ones in order of first
                # appearance (C-speed dict), then look every token up again, instead of one
                # Python call per posting
                for tok in dict.fromkeys(chain.from_iterable(vecs)):
                    if tok not in vocab._ids:
                        vocab.add(tok)
                idx = np.fromiter(map(vocab._ids.get, chain.from_iterable(vecs)), dtype=np.int64, count=total)
            else:
                toks = list(chain.from_iterable(vecs))
                for j in miss.tolist():
                    idx[j] = vocab.add(toks[j])
        else:
            if strict:
                r = int(rows[np.argmin(known)])
                tok = next(t for t in vecs[r] if t not in vocab)
                raise LsrError(f"{where(r)}: token {tok!r} is not in the vocabulary")
            unknown = np.bincount(rows[~known], minlength=n)
            idx, rows, w = idx[known], rows[known], w[known]
    w32 = w.astype(np.float32)
    keep = w32 > 0  # zeros, and tiny weights that float32 rounds to zero, carry no score
    if not keep.all():
        rows, idx, w32 = rows[keep], idx[keep], w32[keep]
    rows, idx, w32 = _row_order(rows, idx, w32)
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
    return indptr, idx.astype(np.int32), w32, unknown


def _row_order(rows: np.ndarray, idx: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, term ids, weights) in CSR order: rows ascending, term ids ascending within each, by
    one int64 key (row x id range + id), which sorts faster than a two-key lexsort; numpy's stable
    sort (timsort) is 2-3x its default here, the rows being sorted runs already. A term id that
    repeats within a row (two tokens of one id: a :class:`Vocabulary` never makes one, other
    vocabularies might) keeps its largest weight."""
    span = int(idx.max()) + 1 if len(idx) else 1
    order = np.argsort(rows * span + idx, kind="stable")
    rows, idx, w = rows[order], idx[order], w[order]
    if len(idx) > 1:
        dup = (idx[1:] == idx[:-1]) & (rows[1:] == rows[:-1])
        if dup.any():
            first = np.ones(len(idx), bool)
            first[1:] = ~dup
            starts = np.flatnonzero(first)
            w = np.maximum.reduceat(w, starts)
            rows, idx = rows[starts], idx[starts]
    return rows, idx, w


# ---------------------------------------------------------------------------------------------
# Files


def open_text(path: str | os.PathLike, mode: str = "r") -> IO[str]:
    """Open a text file, transparently gzipped when its name ends in ``.gz``.

    Raises :class:`LsrError` (not a traceback) for a missing or unreadable file.
    """
    path = os.fspath(path)
    try:
        if path.endswith(".gz"):
            return io.TextIOWrapper(gzip.open(path, mode.replace("t", "") + "b"), encoding="utf-8")
        return open(path, mode, encoding="utf-8")
    except FileNotFoundError:
        raise LsrError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise LsrError(f"{path}: is a directory, expected a file") from None
    except PermissionError:
        raise LsrError(f"{path}: permission denied") from None


try:  # orjson parses vector files several times faster; the standard library works too
    from orjson import loads as _loads
except ImportError:  # pragma: no cover
    _loads = json.loads


def iter_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, dict]]:
    """Yield ``(line_number, object)`` for every non-blank line of a JSONL file (1-based numbers).

    A line that is not a JSON object raises :class:`LsrError` naming the file and line.
    """
    path = os.fspath(path)
    with open_text(path) as f:
        lineno = 0
        try:
            for lineno, obj in _parse_lines(path, f, 0):  # noqa: B007 - used in the error below
                yield lineno, obj
        except (EOFError, gzip.BadGzipFile, UnicodeDecodeError, OSError) as e:
            if isinstance(e, LsrError):
                raise
            raise LsrError(f"{path}:{lineno + 1}: cannot read ({e})") from None


def _record_id(obj: dict, path: str, lineno: int, keys: tuple[str, ...] = ("id", "_id")) -> str:
    for key in keys:
        if key in obj:
            v = obj[key]
            if isinstance(v, (str, int)) and not isinstance(v, bool) and str(v) != "":
                return str(v)
            raise LsrError(f"{path}:{lineno}: '{key}' must be a non-empty string, got {v!r}")
    raise LsrError(f"{path}:{lineno}: no 'id' field")


def iter_vector_chunks(
    path: str | os.PathLike,
    vocab: Vocabulary | None = None,
    chunk_size: int = 10_000,
    unknown: str = "add",
    workers: int = 1,
) -> Iterator[SparseBatch]:
    """Stream a JSONL vector file as :class:`SparseBatch` chunks of up to ``chunk_size`` rows.

    All chunks share one vocabulary: ``vocab`` (grown as new tokens appear when ``unknown="add"``)
    or a new one. Each chunk's ``ids`` are the records' ids.

    ``workers`` > 1 parses a large plain file (:data:`PARALLEL_MIN_BYTES` or more, growing the
    vocabulary, on Linux) in that many forked processes, a piece of :data:`PIECE_BYTES` each (see
    :func:`_parallel_vector_chunks`): the same rows in the same order with the same vocabulary and
    the same errors, only cut into chunks at other places. Parsing JSON holds the GIL, so threads
    would not help; it was the longest serial step of building an index from vectors.
    """
    path = os.fspath(path)
    if chunk_size <= 0:
        raise LsrError("chunk_size must be > 0")
    vocab = Vocabulary() if vocab is None else vocab
    pieces = _pieces(path) if workers > 1 and unknown == "add" else None
    if pieces is not None:
        yield from _parallel_vector_chunks(path, pieces, vocab, chunk_size, workers)
        return
    yield from _vector_chunks(iter_jsonl(path), path, vocab, chunk_size, unknown)


def _vector_chunks(
    records: Iterable[tuple[int, dict]], path: str, vocab: Vocabulary, chunk_size: int, unknown: str
) -> Iterator[SparseBatch]:
    """The records ``(line number, object)`` of a vector file as SparseBatch chunks (see
    :func:`iter_vector_chunks`)."""
    grow = unknown == "add"
    ids: list[str] = []
    vecs: list[dict] = []
    lines: list[int] = []
    contents: list[str] = []  # the records' "content" text, kept as the document store when present

    def flush() -> SparseBatch:
        indptr, indices, data, unk = _dicts_to_csr(
            vecs, vocab, grow, unknown == "error", lambda i: f"{path}:{lines[i]}"
        )
        docs = [("", c) for c in contents] if any(contents) else None
        b = SparseBatch(
            indptr, indices, data, vocab, list(ids), unknown_tokens=int(unk.sum()), documents=docs
        )
        ids.clear()
        vecs.clear()
        lines.clear()
        contents.clear()
        return b

    for lineno, obj in records:
        rid = _record_id(obj, path, lineno)
        vec = obj.get("vector")
        if not isinstance(vec, dict):
            raise LsrError(
                f'{path}:{lineno}: no \'vector\' object (expected {{"id", "vector": {{token: weight}}}})'
            )
        ids.append(rid)
        vecs.append(vec)
        lines.append(lineno)
        content = obj.get("content")
        contents.append(content if isinstance(content, str) else "")
        if len(ids) >= chunk_size:
            yield flush()
    if ids:
        yield flush()


# Parallel parsing of big vector files (see iter_vector_chunks): files under PARALLEL_MIN_BYTES stay
# in one process (forking and shipping results back would cost more than they save); a worker
# parses PIECE_BYTES (cut at a line end) at a time, and at most 2 pieces per worker are in flight.
PARALLEL_MIN_BYTES = 64 << 20
PIECE_BYTES = 32 << 20


def _pieces(path: str) -> list[tuple[int, int]] | None:
    """(start byte, end byte) of each piece of a plain vector file, every piece cut after a
    newline; None where the file is parsed in one process instead: compressed, small, or not on
    Linux (workers are forked: spawned ones would run the caller's script again)."""
    import sys

    if path.endswith(".gz") or not sys.platform.startswith("linux"):
        return None
    try:
        size = os.path.getsize(path)
    except OSError:
        return None  # the serial reader says what is wrong
    if size < PARALLEL_MIN_BYTES:
        return None
    pieces = []
    with open(path, "rb") as f:
        start = 0
        while start < size:
            f.seek(start + PIECE_BYTES)
            end = min(size, start + PIECE_BYTES + len(f.readline()))
            pieces.append((start, end))
            start = end
    return pieces


def _count_lines(path: str, end: int) -> int:
    """Lines in bytes [0, end) of ``path`` as the text reader counts them (universal newlines:
    ``\\n``, ``\\r\\n`` and ``\\r`` each end one), ``end`` being just after a newline."""
    n = 0
    with open(path, "rb") as f:
        left = end
        tail = b""
        while left > 0:
            data = tail + f.read(min(left, 64 << 20))
            left -= len(data) - len(tail)
            tail = data[-1:] if data.endswith(b"\r") and left > 0 else b""  # a \r\n across reads
            body = data[: len(data) - len(tail)]
            n += _newlines(body)
    return n


def _newlines(data: bytes) -> int:
    """Line ends in ``data`` as the text reader counts them: ``\\n``, ``\\r\\n`` and ``\\r`` each one."""
    return data.count(b"\n") + data.count(b"\r") - data.count(b"\r\n")


def _parse_piece(
    path: str, start: int, end: int, line0: int, chunk_size: int, known: list[str]
) -> tuple[list[str], list[tuple]]:
    """A worker's share of :func:`_parallel_vector_chunks`: the records of bytes [start, end) of
    ``path`` parsed as :func:`_vector_chunks` does, lines numbered from ``line0 + 1``, over a copy
    of the vocabulary ``known`` (the reader's tokens when the piece was handed out): (the tokens
    this piece added to it, in order of first appearance, and per chunk (indptr, term ids, weights,
    ids, documents)). Lines split as the text reader splits them (universal newlines)."""
    with open(path, "rb") as f:
        f.seek(start)
        data = f.read(end - start)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = line0 + _newlines(data[: e.start]) + 1
        raise LsrError(f"{path}:{line}: cannot read ({e})") from None
    del data
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    local = Vocabulary(known)
    records = _parse_lines(path, text.split("\n"), line0)
    chunks = [
        (b.indptr, b.indices, b.data, b.ids, b.documents)
        for b in _vector_chunks(records, path, local, chunk_size, "add")
    ]
    return local.tokens[len(known) :], chunks


def _parse_lines(path: str, lines: Iterable[str], line0: int) -> Iterator[tuple[int, dict]]:
    """``(line number, object)`` for the non-blank ``lines``, numbered from ``line0 + 1``; a line
    that is not a JSON object raises :class:`LsrError` naming ``path`` and the line."""
    for lineno, line in enumerate(lines, line0 + 1):
        if not line.strip():
            continue
        try:
            obj = _loads(line)
        except ValueError as e:  # json.JSONDecodeError and orjson.JSONDecodeError
            raise LsrError(f"{path}:{lineno}: not valid JSON ({getattr(e, 'msg', e)})") from None
        if not isinstance(obj, dict):
            raise LsrError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
        yield lineno, obj


def _parallel_vector_chunks(
    path: str, pieces: list[tuple[int, int]], vocab: Vocabulary, chunk_size: int, workers: int
) -> Iterator[SparseBatch]:
    """The chunks of ``pieces`` (see :func:`_pieces`), parsed by ``workers`` forked processes and
    taken in file order.

    A piece is handed out with the tokens ``vocab`` holds then (a prefix of what it will hold: it
    only grows), so its term ids are ``vocab``'s except for the tokens it added; those join
    ``vocab`` in their order of first appearance, as one reader would add them. When they keep
    their relative order (the common case once the vocabulary has filled), the rows' term ids
    stay ascending and nothing is sorted again. Workers number lines from the piece's start; on an
    error the piece is parsed again here with the file's line numbers, so the message is the one
    reader's."""
    import multiprocessing
    from collections import deque
    from concurrent.futures import ProcessPoolExecutor

    ex = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork"))
    try:
        todo = iter(pieces)
        pending: deque = deque()

        def submit(piece: tuple[int, int]) -> None:
            known = list(vocab.tokens)
            pending.append((piece, known, ex.submit(_parse_piece, path, *piece, 0, chunk_size, known)))

        for p in todo:
            submit(p)
            if len(pending) >= 2 * workers:
                break
        while pending:
            (start, end), known, fut = pending.popleft()
            try:
                added, chunks = fut.result()
            except LsrError:
                _parse_piece(path, start, end, _count_lines(path, start), chunk_size, known)
                raise  # not reached: the same piece raises the same error with the file's lines
            nxt = next(todo, None)
            if nxt is not None:
                submit(nxt)
            base = len(known)
            new_ids = np.fromiter(map(vocab.add, added), dtype=np.int64, count=len(added))
            gmap = np.concatenate([np.arange(base, dtype=np.int64), new_ids])
            in_order = bool(np.all(np.diff(new_ids) > 0))
            for indptr, ids_local, data, ids, docs in chunks:
                idx = gmap[ids_local]
                if not in_order:
                    rows = np.repeat(np.arange(len(indptr) - 1, dtype=np.int64), np.diff(indptr))
                    _, idx, data = _row_order(rows, idx, data)
                yield SparseBatch(indptr, idx.astype(np.int32), data, vocab, ids, documents=docs)
    finally:
        ex.shutdown(wait=True, cancel_futures=True)


def read_vectors(
    path: str | os.PathLike, vocab: Vocabulary | None = None, unknown: str = "add"
) -> SparseBatch:
    """Read a whole JSONL vector file into one :class:`SparseBatch` (ids from the records)."""
    chunks = list(iter_vector_chunks(path, vocab, chunk_size=1 << 20, unknown=unknown))
    if not chunks:
        v = Vocabulary() if vocab is None else vocab
        return SparseBatch(np.zeros(1, np.int64), np.zeros(0, np.int32), np.zeros(0, np.float32), v, [])
    if len(chunks) == 1:
        return chunks[0]
    return concat_batches(chunks)


def concat_batches(batches: Sequence[SparseBatch]) -> SparseBatch:
    """Stack batches that share one vocabulary."""
    vocab = batches[0].vocab
    for b in batches:
        if b.vocab is not vocab and b.vocab != vocab:
            raise LsrError("cannot concatenate batches over different vocabularies")
    lens = np.concatenate([np.diff(b.indptr) for b in batches])
    indptr = np.zeros(len(lens) + 1, np.int64)
    np.cumsum(lens, out=indptr[1:])
    ids = None
    if all(b.ids is not None for b in batches):
        ids = [i for b in batches for i in b.ids]  # type: ignore[union-attr]
    return SparseBatch(
        indptr,
        np.concatenate([b.indices for b in batches]),
        np.concatenate([b.data for b in batches]),
        vocab,
        ids,
        unknown_tokens=sum(b.unknown_tokens for b in batches),
        documents=[d for b in batches for d in (b.documents or [("", "")] * len(b))]
        if any(b.documents is not None for b in batches)
        else None,
    )


class VectorWriter:
    """Append sparse vectors to a JSONL file (gzipped for ``.gz``), as a context manager.

    Weights are written with float32 precision (``repr`` of the float32 value), so a round trip
    through the file gives back the same float32 weights.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = os.fspath(path)
        parent = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(parent):
            raise LsrError(f"{self.path}: directory {parent} does not exist")
        self._f = open_text(self.path, "w")
        self.count = 0

    def write(
        self, batch: SparseBatch, ids: Sequence[str] | None = None, contents: Sequence[str] | None = None
    ) -> None:
        ids = ids if ids is not None else batch.ids
        if ids is None:
            raise LsrError("writing vectors needs an id per row")
        toks = batch.vocab.tokens
        for i in range(len(batch)):
            idx, w = batch.row(i)
            # float(np.float32) -> shortest repr that round-trips through float32
            vec = {toks[t]: float(repr_f32(x)) for t, x in zip(idx.tolist(), w, strict=True)}
            rec = {"id": ids[i], "content": contents[i] if contents is not None else "", "vector": vec}
            self._f.write(json.dumps(rec, ensure_ascii=False))
            self._f.write("\n")
        self.count += len(batch)

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> VectorWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def repr_f32(x: np.float32) -> str:
    """Shortest decimal string that reads back as the same float32."""
    return np.format_float_positional(np.float32(x), unique=True, trim="-")


def write_vectors(
    path: str | os.PathLike,
    batch: SparseBatch,
    ids: Sequence[str] | None = None,
    contents: Sequence[str] | None = None,
) -> int:
    """Write ``batch`` to a JSONL vector file; returns the number of rows written."""
    with VectorWriter(path) as w:
        w.write(batch, ids, contents)
        return w.count
