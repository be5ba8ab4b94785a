"""Sharded indexes: N ordinary index directories under one root, described by ``shards.json``.

A sharded index splits the documents, *contiguously in build order*, over N index directories
(``shard-0000``, ``shard-0001``, ...), each an ordinary index (:mod:`lsr.index.format`) built with
the **same vocabulary** and, for quantized indexes, the **same quantization scale** (the global
maximum weight), so a document scores bit-for-bit the same in its shard as in one index over all
documents. ``shards.json`` at the root records::

    {"format": "lsr-shards", "format_version": 1,
     "n_docs": N, "n_terms": T, "n_postings": P, "quantization": "float32",
     "encoder": {...} | null,
     "shards": [{"dir": "shard-0000", "n_docs": n0, "first_doc": 0, "n_postings": p0}, ...],
     "stats": {"n_docs": N, "df": [df of term 0, df of term 1, ...]},
     "routing": {"hash": "blake2b-64", "key": "utf-8 external id", "owner": "..."}}

``routing`` (optional: manifests written before writes existed lack it, and get it on the first
writable open) is where writes of new external ids go (:func:`route_shard`). Counts and ``stats``
describe the build: once shards take writes (:mod:`lsr.index.living_shards`), each shard is a
living index and the live counts and statistics come from the shards' generations, not from here
(commits never rewrite this file).

``stats`` are the *global* corpus statistics (per-term document frequency over all shards, and
the total document count): inference-free encoders weight queries by IDF from these, never from
one shard (a per-shard IDF ranks differently from the unsharded index).

Search scatters the query to every shard and merges the per-shard top-k exactly: by score, ties
by global build order (shard order, then the doc number inside the shard), which is the tie order
of one index over all documents. Shards are searched by threads in this process by default; a
*backend* (:class:`ShardBackend`) can hold them elsewhere (``lsr.distributed`` holds them in Ray
actors). Nothing here imports Ray or an encoder. This static reader opens only shards that were
never written to; ``open_index`` opens written ones as a
:class:`~lsr.index.living_shards.LivingShardedIndex`.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import numpy as np

from lsr.errors import LsrError
from lsr.index.builder import DEFAULT_RUN_POSTINGS, IndexBuilder
from lsr.index.npy import read_npy
from lsr.index.parts import ALL_METHODS
from lsr.index.searcher import (
    METHOD_PARAMS,
    Index,
    SearchResult,
    run_search,
    search_results,
)
from lsr.vectors import SparseBatch, Vocabulary

SHARDS_FILE = "shards.json"
SHARDS_FORMAT = "lsr-shards"
SHARDS_VERSION = 1
# Where a write of a *new* external id goes (an id a shard holds stays in that shard): the first 8
# bytes of BLAKE2b of the id's UTF-8 bytes, read big-endian, modulo the shard count. Recorded in
# shards.json ("routing"); a manifest without it (written before writes existed) gets it on the first
# writable open. Never Python's hash(), which is randomized per process.
ROUTING = {
    "hash": "blake2b-64",
    "key": "utf-8 external id",
    "owner": "shard holding the id, else hash mod shards",
}


def route_shard(doc_id: str, n_shards: int) -> int:
    """The shard a new external id ``doc_id`` is written to under :data:`ROUTING` (stable across
    processes, machines and Python versions)."""
    import hashlib

    h = hashlib.blake2b(doc_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(h, "big") % int(n_shards)


class ShardUnavailableError(LsrError):
    """A shard cannot answer right now (its Ray actor died and is being restarted); retry shortly.
    The HTTP service answers 503 for it."""


def is_sharded(path: str | os.PathLike) -> bool:
    """True when ``path`` is the root of a sharded index (holds ``shards.json``)."""
    return os.path.isfile(os.path.join(os.fspath(path), SHARDS_FILE))


def shard_dir_name(i: int) -> str:
    return f"shard-{i:04d}"


def split_contiguous(n_docs: int, n_shards: int) -> list[tuple[int, int]]:
    """[start, end) document ranges of ``n_shards`` contiguous shards of near-equal size (the first
    ``n_docs % n_shards`` shards hold one more document)."""
    if n_shards < 1:
        raise LsrError(f"shards must be >= 1, got {n_shards}")
    if n_docs < n_shards:
        raise LsrError(f"{n_docs} documents cannot fill {n_shards} shards")
    base, extra = divmod(n_docs, n_shards)
    out, start = [], 0
    for i in range(n_shards):
        end = start + base + (1 if i < extra else 0)
        out.append((start, end))
        start = end
    return out


# -- building -----------------------------------------------------------------------------------
def build_shard(
    chunks: Iterable[SparseBatch],
    output_dir: str | os.PathLike,
    vocab: Vocabulary,
    max_weight: float,
    *,
    quantization: str = "float32",
    encoder_config: dict[str, Any] | None = None,
    methods: Sequence[str] = ALL_METHODS,
    reorder: bool | None = None,
    bmp: dict[str, Any] | None = None,
    seismic: dict[str, Any] | None = None,
    run_postings: int = DEFAULT_RUN_POSTINGS,
    overwrite: bool = False,
    source: str = "",
) -> str:
    """Build one shard from ``chunks`` over the global ``vocab`` with the global ``max_weight``
    (the quantization scale of every shard is taken from it, so scores match one big index).

    Runs in any process (a Ray task calls it); returns the shard directory."""
    builder = IndexBuilder(
        output_dir,
        quantization=quantization,
        vocab=vocab,
        encoder_config=encoder_config,
        run_postings=run_postings,
        overwrite=overwrite,
        source=source,
        methods=methods,
        reorder=reorder,
        bmp=bmp,
        seismic=seismic,
        quantizer="global",  # one step shared by every shard (per-term steps would need global maxima)
    )
    try:
        for chunk in chunks:
            if chunk.vocab is not vocab and len(chunk.vocab) != len(vocab):
                raise LsrError("every chunk of a shard must use the global vocabulary")
            chunk.vocab = vocab
            builder.add(chunk)
        if builder.max_weight > max_weight:
            raise LsrError(
                f"a document weight {builder.max_weight} exceeds the global maximum {max_weight} given"
            )
        builder.max_weight = float(max_weight)  # the global scale: same quantized impacts in every shard
    except BaseException:
        builder.abort()
        raise
    return builder.finish()


def _slice_chunks(chunks: Iterable[SparseBatch], start: int, end: int) -> Iterator[SparseBatch]:
    """Rows [start, end) of a stream of chunks (counted over the whole stream)."""
    pos = 0
    for c in chunks:
        a, b = pos, pos + len(c)
        pos = b
        if b <= start:
            continue
        if a >= end:
            break
        lo, hi = max(start, a) - a, min(end, b) - a
        yield c if (lo == 0 and hi == len(c)) else c.select(np.arange(lo, hi))


def scan_vectors(path: str | os.PathLike, chunk_size: int = 10_000) -> tuple[Vocabulary, int, float, int]:
    """One pass over a JSONL vector file: (vocabulary in first-appearance order, documents, max weight,
    postings). The vocabulary is the one ``build_index`` would grow over the same file."""
    from lsr.vectors import iter_vector_chunks

    vocab = Vocabulary()
    n = nnz = 0
    top = 0.0
    for c in iter_vector_chunks(path, vocab, chunk_size=chunk_size, unknown="add"):
        n += len(c)
        nnz += c.nnz
        if c.nnz:
            top = max(top, float(c.data.max()))
    return vocab, n, top, nnz


def build_sharded_index(
    source: Any,
    output_dir: str | os.PathLike,
    shards: int,
    *,
    vocab: Vocabulary | list[str] | None = None,
    ids: list[str] | None = None,
    quantization: str = "float32",
    encoder: Any = None,
    methods: Sequence[str] = ALL_METHODS,
    reorder: bool | None = None,
    bmp: dict[str, Any] | None = None,
    seismic: dict[str, Any] | None = None,
    overwrite: bool = False,
    chunk_size: int = 10_000,
    show_progress: bool = False,
) -> str:
    """Build a sharded index in this process (shard after shard) and return its root.

    ``source`` is a :class:`SparseBatch`, a scipy CSR matrix (with ``vocab``) or a JSONL vector
    file; the documents are split into ``shards`` contiguous ranges of build order. ``lsr.distributed``
    builds the same layout with Ray tasks in parallel."""
    import scipy.sparse as sp

    if isinstance(vocab, list):
        vocab = Vocabulary(vocab)
    if encoder is not None and vocab is None:
        vocab = encoder.vocab
    root = _prepare_root(output_dir, overwrite)
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        scanned, n_docs, top, _ = scan_vectors(path, chunk_size)
        if vocab is None:
            vocab = scanned
        else:
            for t in scanned.tokens:
                vocab.add(t)

        def chunks() -> Iterator[SparseBatch]:
            from lsr.vectors import iter_vector_chunks

            return iter_vector_chunks(path, vocab, chunk_size=chunk_size, unknown="error")

        desc = f"vectors:{path}"
    else:
        if sp.issparse(source):
            if vocab is None:
                raise LsrError("building from a scipy matrix needs vocab= (the token of each column)")
            m = sp.csr_matrix(source, dtype=np.float32)
            doc_ids = ids if ids is not None else [str(i) for i in range(m.shape[0])]
            batch = SparseBatch.from_scipy(m, vocab, doc_ids)
        elif isinstance(source, SparseBatch):
            batch = source
            if batch.ids is None:
                batch = SparseBatch(
                    batch.indptr,
                    batch.indices,
                    batch.data,
                    batch.vocab,
                    ids or [str(i) for i in range(len(batch))],
                )
            vocab = vocab or batch.vocab
        else:
            raise LsrError(f"cannot build a sharded index from a {type(source).__name__}")
        n_docs = len(batch)
        top = float(batch.data.max()) if batch.nnz else 0.0

        def chunks() -> Iterator[SparseBatch]:
            for s in range(0, len(batch), chunk_size):
                yield batch.select(np.arange(s, min(len(batch), s + chunk_size)))

        desc = type(source).__name__
    assert vocab is not None
    ranges = split_contiguous(n_docs, shards)
    cfg = encoder.config() if encoder is not None else None
    it = ranges
    if show_progress:
        from tqdm.auto import tqdm

        it = tqdm(ranges, desc="building shards", unit="shard")
    dirs = []
    for i, (a, b) in enumerate(it):
        d = os.path.join(root, shard_dir_name(i))
        build_shard(
            _slice_chunks(chunks(), a, b),
            d,
            vocab,
            top,
            quantization=quantization,
            encoder_config=cfg,
            methods=methods,
            reorder=reorder,
            bmp=bmp,
            seismic=seismic,
            source=f"{desc}[{a}:{b}]",
        )
        dirs.append(shard_dir_name(i))
    write_shards_manifest(root, dirs)
    return root


def _prepare_root(output_dir: str | os.PathLike, overwrite: bool) -> str:
    root = os.path.abspath(os.fspath(output_dir))
    if os.path.exists(root):
        if not overwrite:
            raise LsrError(f"{root} already exists (pass overwrite=True / --overwrite to replace it)")
        shutil.rmtree(root)
    if not os.path.isdir(os.path.dirname(root)):
        raise LsrError(f"{os.path.dirname(root)}: no such directory for the index")
    os.makedirs(root)
    return root


def write_shards_manifest(root: str | os.PathLike, shard_dirs: Sequence[str]) -> dict[str, Any]:
    """Read every shard's manifest, check they fit together (one vocabulary, one encoder, one
    quantization scale) and write ``shards.json`` with the global statistics; returns it."""
    from lsr.index import format as fmt

    root = os.fspath(root)
    entries, df, first = [], None, 0
    ref: dict[str, Any] | None = None
    id_parts: list[np.ndarray] = []
    for name in shard_dirs:
        d = os.path.join(root, name)
        m = fmt.read_manifest(d)
        if ref is None:
            ref = m
        else:
            _check_compatible(ref, m, shard_dirs[0], name)
        id_parts.append(np.asarray(read_npy(fmt.array_path(d, "doc_ids"), mmap=True)))
        offsets = read_npy(fmt.array_path(d, "offsets"), mmap=True)
        part_df = np.diff(np.asarray(offsets, np.int64))
        df = part_df if df is None else df + part_df
        entries.append(
            {"dir": name, "n_docs": int(m["n_docs"]), "first_doc": first, "n_postings": int(m["n_postings"])}
        )
        first += int(m["n_docs"])
    if ref is None:
        raise LsrError("a sharded index needs at least one shard")
    _check_unique_ids(id_parts, shard_dirs)
    manifest = {
        "format": SHARDS_FORMAT,
        "format_version": SHARDS_VERSION,
        "n_docs": first,
        "n_terms": int(ref["n_terms"]),
        "n_postings": int(sum(e["n_postings"] for e in entries)),
        "quantization": ref["quantization"]["dtype"],
        "encoder": ref.get("encoder"),
        "shards": entries,
        "stats": {"n_docs": first, "df": [int(x) for x in df]},  # type: ignore[union-attr]
        "routing": dict(ROUTING),
    }
    save_shards_manifest(root, manifest)
    return manifest


def save_shards_manifest(root: str | os.PathLike, manifest: dict[str, Any]) -> None:
    """Write ``shards.json`` atomically (temporary file, fsync, rename)."""
    root = os.fspath(root)
    tmp = os.path.join(root, SHARDS_FILE + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(manifest, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, os.path.join(root, SHARDS_FILE))


def _check_unique_ids(id_parts: Sequence[np.ndarray], shard_dirs: Sequence[str]) -> None:
    """Refuse an id held by two shards, as one index refuses a duplicate id (each shard's builder
    sees only its own documents): a sharded index of the same input as ``lsr index`` must hold the
    same documents. One sort of all ids (the shards' S<w> arrays, widened to the widest)."""
    if len(id_parts) < 2:
        return
    ids = np.concatenate(id_parts)
    order = np.argsort(ids, kind="stable")
    srt = ids[order]
    same = np.flatnonzero(srt[1:] == srt[:-1])
    if len(same):
        bounds = np.cumsum([len(p) for p in id_parts])
        a, b = (int(np.searchsorted(bounds, order[j], side="right")) for j in (same[0], same[0] + 1))
        dup = srt[same[0]].decode("utf-8")
        raise LsrError(
            f"duplicate document id {dup!r} (in shards {shard_dirs[a]} and {shard_dirs[b]}): "
            "document ids must be unique"
        )


def _check_compatible(a: dict[str, Any], b: dict[str, Any], name_a: str, name_b: str) -> None:
    """Refuse shards that were built apart: another encoder, vocabulary or quantization scale."""
    if (a.get("encoder") or None) != (b.get("encoder") or None):
        ea, eb = a.get("encoder") or {}, b.get("encoder") or {}
        keys = sorted(k for k in set(ea) | set(eb) if ea.get(k) != eb.get(k))
        raise LsrError(
            f"shards {name_a} and {name_b} were built with different encoders (differ in {', '.join(keys)})"
        )
    if a["vocab"] != b["vocab"]:
        raise LsrError(f"shards {name_a} and {name_b} have different vocabularies")
    qa, qb = a["quantization"], b["quantization"]
    if qa["dtype"] != qb["dtype"] or qa["scale"] != qb["scale"]:
        raise LsrError(
            f"shards {name_a} and {name_b} have different quantization ({qa['dtype']} scale {qa['scale']} "
            f"vs {qb['dtype']} scale {qb['scale']})"
        )


def read_shards_manifest(root: str | os.PathLike) -> dict[str, Any]:
    path = os.path.join(os.fspath(root), SHARDS_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            m = json.load(f)
    except FileNotFoundError:
        raise LsrError(f"{root}: no {SHARDS_FILE} (not a sharded index)") from None
    except (OSError, ValueError) as e:
        raise LsrError(f"{path}: unreadable ({e})") from None
    if not isinstance(m, dict) or m.get("format") != SHARDS_FORMAT:
        raise LsrError(f"{path}: not an lsr shards file")
    if m.get("format_version") != SHARDS_VERSION:
        raise LsrError(
            f"{path}: shards format version {m.get('format_version')} (this lsr reads {SHARDS_VERSION})"
        )
    return m


# -- searching ----------------------------------------------------------------------------------
class ShardBackend(Protocol):
    """Where the shards' postings are searched. ``search`` returns one (doc numbers local to the
    shard, int64[nq, k] with -1 padding; scores float32[nq, k]) per shard, in shard order."""

    def search(
        self,
        indptr: np.ndarray,
        terms: np.ndarray,
        weights: np.ndarray,
        k: int,
        threads: int,
        method: str,
        params: dict[str, Any],
    ) -> list[tuple[np.ndarray, np.ndarray]]: ...

    def close(self) -> None: ...


class ThreadBackend:
    """Shards searched by threads of this process (the Numba kernels release the GIL)."""

    def __init__(self, shards: Sequence[Index]) -> None:
        self.shards = list(shards)
        self._pool = ThreadPoolExecutor(max_workers=max(1, len(self.shards)), thread_name_prefix="lsr-shard")

    def search(
        self,
        indptr: np.ndarray,
        terms: np.ndarray,
        weights: np.ndarray,
        k: int,
        threads: int,
        method: str,
        params: dict[str, Any],
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        if len(self.shards) == 1:
            return [self.shards[0].search_arrays(indptr, terms, weights, k, threads, method, **params)]
        # the shards already run side by side: each gets its share of the threads (a parallel kernel
        # run holds a process-wide lock, so full-width runs per shard would only queue)
        per_shard = max(1, threads // len(self.shards))
        futures = [
            self._pool.submit(s.search_arrays, indptr, terms, weights, k, per_shard, method, **params)
            for s in self.shards
        ]
        return [f.result() for f in futures]

    def close(self) -> None:
        self._pool.shutdown(wait=False)


def merge_topk(
    parts: Sequence[tuple[np.ndarray, np.ndarray]], first_docs: Sequence[int], k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Exact merge of per-shard top-k lists: global doc numbers (shard's first doc + local doc)
    int64[nq, k] with -1 padding and scores float32[nq, k], by score descending, ties by global doc
    number (= build order). Exact because each shard's list is its own top-k under the same order."""
    nq = parts[0][0].shape[0]
    docs = np.concatenate(
        [
            np.where(d >= 0, d.astype(np.int64) + int(f), -1)
            for (d, _), f in zip(parts, first_docs, strict=True)
        ],
        axis=1,
    )
    scores = np.concatenate([s.astype(np.float32) for _, s in parts], axis=1)
    key = np.where(docs >= 0, -scores.astype(np.float64), np.inf)  # padding sorts last
    gdoc = np.where(docs >= 0, docs, np.iinfo(np.int64).max)
    order = np.lexsort((gdoc, key), axis=-1)[:, :k]
    out_d = np.take_along_axis(docs, order, axis=1)
    out_s = np.take_along_axis(scores, order, axis=1)
    out_s[out_d < 0] = 0
    if out_d.shape[1] < k:
        out_d = np.pad(out_d, ((0, 0), (0, k - out_d.shape[1])), constant_values=-1)
        out_s = np.pad(out_s, ((0, 0), (0, k - out_s.shape[1])))
    return out_d.reshape(nq, k), out_s.reshape(nq, k)


class ShardedIndex:
    """A sharded index with the :class:`~lsr.index.Index` search API (``search``, ``search_arrays``,
    ``prepare_queries``, ``methods``, ``doc_id``, ``document``, ``lookup``...).

    The shards' metadata (ids, stored text, vocabulary) is memory-mapped here; their postings are
    searched by ``backend`` (default: threads over shards opened in this process)."""

    def __init__(
        self, path: str | os.PathLike, backend: Callable[[ShardedIndex], ShardBackend] | None = None
    ) -> None:
        self.path = os.path.abspath(os.fspath(path))
        self.manifest = read_shards_manifest(self.path)
        m = self.manifest
        entries = m.get("shards") or []
        if not entries:
            raise LsrError(f"{self.path}: {SHARDS_FILE} lists no shards")
        self.shard_dirs = [os.path.join(self.path, e["dir"]) for e in entries]
        for e, d in zip(entries, self.shard_dirs, strict=True):
            if not os.path.isdir(d):
                raise LsrError(f"{self.path}: shard {e['dir']} listed in {SHARDS_FILE} is missing")
        from lsr.index.segments import is_segmented

        if any(is_segmented(d) for d in self.shard_dirs):
            raise LsrError(
                f"{self.path}: its shards have been written to (lsr add / delete): open it with "
                "lsr.index.open_index; the --ray backend serves only shards that were never written"
            )
        self.shards = [Index(d) for d in self.shard_dirs]
        for e, s in zip(entries, self.shards, strict=True):
            if s.n_docs != int(e["n_docs"]):
                raise LsrError(
                    f"{self.path}: shard {e['dir']} holds {s.n_docs} documents, {SHARDS_FILE} says {e['n_docs']}"
                )
            _check_compatible(
                {
                    "encoder": m.get("encoder"),
                    "vocab": self.shards[0].manifest["vocab"],
                    "quantization": self.shards[0].manifest["quantization"],
                },
                s.manifest,
                SHARDS_FILE,
                e["dir"],
            )
        self.first_docs = np.array([int(e["first_doc"]) for e in entries], np.int64)
        self.n_docs = int(m["n_docs"])
        self.n_terms = int(m["n_terms"])
        self.n_postings = int(m["n_postings"])
        self.quantization = self.shards[0].quantization
        self.scale = self.shards[0].scale
        self.vocab = self.shards[0].vocab
        self.parts = self.shards[0].parts
        self.has_store = any(s.has_store for s in self.shards)
        self.methods: tuple[str, ...] = tuple(
            x for x in self.shards[0].methods if all(x in s.methods for s in self.shards)
        )
        stats = m.get("stats") or {}
        df = np.asarray(stats.get("df", []), np.int64)
        if len(df) != self.n_terms:
            raise LsrError(f"{self.path}: {SHARDS_FILE} global statistics do not cover the vocabulary")
        self._global_df = df
        self.offsets = np.zeros(len(df) + 1, np.int64)  # global df as posting offsets (compatibility)
        np.cumsum(df, out=self.offsets[1:])
        self._encoder = None
        self._retrievers: dict[tuple[int, bool], tuple[Any, Any]] = {}
        self.backend: ShardBackend = backend(self) if backend is not None else ThreadBackend(self.shards)

    def __repr__(self) -> str:
        return f"ShardedIndex({self.path!r}, shards={len(self.shards)}, docs={self.n_docs}, terms={self.n_terms})"

    @property
    def encoder_config(self) -> dict[str, Any] | None:
        return self.manifest.get("encoder")

    def close(self) -> None:
        self.backend.close()

    # -- documents -------------------------------------------------------------------------------
    def _locate(self, doc: int) -> tuple[int, int]:
        if not 0 <= doc < self.n_docs:
            raise IndexError(f"document {doc} out of range (0 .. {self.n_docs - 1})")
        s = int(np.searchsorted(self.first_docs, doc, side="right")) - 1
        return s, int(doc - self.first_docs[s])

    def doc_id(self, doc: int) -> str:
        s, d = self._locate(int(doc))
        return self.shards[s].doc_id(d)

    def doc_ids(self, docs: np.ndarray) -> list[str]:
        """External ids of global doc numbers ``docs`` (one vectorised lookup per shard)."""
        docs = np.asarray(docs, np.int64)
        if len(docs) and (docs.min() < 0 or docs.max() >= self.n_docs):
            raise IndexError(f"document numbers out of range (0 .. {self.n_docs - 1})")
        which = np.searchsorted(self.first_docs, docs, side="right") - 1
        out: list[str] = [""] * len(docs)
        for s in np.unique(which):
            rows = np.flatnonzero(which == s)
            for j, doc_id in zip(rows, self.shards[s].doc_ids(docs[rows] - self.first_docs[s]), strict=True):
                out[j] = doc_id
        return out

    def document(self, doc: int) -> dict[str, str]:
        s, d = self._locate(int(doc))
        return self.shards[s].document(d)

    def lookup(self, doc_id: str) -> int | None:
        for s, f in zip(self.shards, self.first_docs, strict=True):
            d = s.lookup(doc_id)
            if d is not None:
                return int(f) + d
        return None

    def size_bytes(self) -> int:
        return sum(s.size_bytes() for s in self.shards) + os.path.getsize(
            os.path.join(self.path, SHARDS_FILE)
        )

    # -- queries ---------------------------------------------------------------------------------
    def load_encoder(self) -> Any:
        if self._encoder is None:
            self._encoder = self.shards[0].load_encoder()
        return self._encoder

    def check_encoder(self, encoder: Any, force: bool = False) -> None:
        self.shards[0].check_encoder(encoder, force)

    def document_frequencies(self) -> np.ndarray:
        """int64[n_terms]: documents of all shards holding each term (the global statistics of
        shards.json): what a Retriever hands inference-free encoders, never one shard's."""
        return self._global_df

    def encode_queries(self, texts: Sequence[str], encoder: Any = None, force: bool = False) -> SparseBatch:
        """Encode query texts once (with the recorded encoder, or ``encoder`` checked against it)
        through a :class:`lsr.Retriever` (kept per encoder): inference-free encoders take IDF from the
        global statistics, and the encoder itself is never changed."""
        from lsr.retriever import Retriever

        if encoder is None:  # the recorded encoder: nothing to check it against
            encoder, force = self.load_encoder(), True
        key = (id(encoder), bool(force))
        hit = self._retrievers.get(key)
        if hit is None or hit[0] is not encoder:
            hit = (encoder, Retriever(self, encoder, force=force))
            self._retrievers[key] = hit
        return hit[1].encode_queries(texts)

    def prepare_queries(
        self, queries: Any, encoder: Any = None, force: bool = False
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """As :meth:`Index.prepare_queries` (every shard shares the vocabulary); text is encoded once."""
        if isinstance(queries, (list, tuple)) and len(queries) and all(isinstance(q, str) for q in queries):
            queries = self.encode_queries(queries, encoder=encoder, force=force)
        return self.shards[0].prepare_queries(queries, encoder=encoder, force=force)

    def check_params(self, method: str, params: Any) -> dict[str, Any]:
        if method in METHOD_PARAMS and method not in self.methods:
            raise LsrError(
                f"method {method!r} is not built in every shard (available: {', '.join(self.methods)})"
            )
        return self.shards[0].check_params(method, params)

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
        """Top-``k`` per query over all shards: the same results, scores and tie order as one index
        over all documents (see :meth:`Index.search` for the arguments)."""
        return run_search(self, queries, k, method, threads, encoder, force, params)

    def search_arrays(
        self,
        indptr: np.ndarray,
        terms: np.ndarray,
        weights: np.ndarray,
        k: int,
        threads: int = 1,
        method: str = "exact",
        **params: Any,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Scatter CSR query arrays (index term ids, each query's terms ascending) to every shard and
        merge: global build-order doc numbers int64[nq, k] (-1 padding), scores float32[nq, k]."""
        parts = self.backend.search(indptr, terms, weights, k, threads, method, dict(params))
        return merge_topk(parts, self.first_docs, k)

    def _results(self, docs: np.ndarray, scores: np.ndarray, unknown: np.ndarray) -> list[SearchResult]:
        return search_results(self.doc_ids, docs, scores, unknown)

    def warmup(self, methods: Sequence[str] | None = None) -> None:
        """Compile the kernels once (in-process shards share them)."""
        t = np.array([int(np.argmax(self._global_df))], np.int32)
        for method in methods or self.methods:
            params = self.check_params(method, {})
            self.search_arrays(np.array([0, 1], np.int64), t, np.ones(1, np.float32), 10, 1, method, **params)


def open_sharded(
    path: str | os.PathLike, backend: Callable[[ShardedIndex], ShardBackend] | None = None
) -> ShardedIndex:
    """Open a sharded index root (``shards.json``); ``backend`` makes the shard searcher (default:
    threads in this process)."""
    return ShardedIndex(path, backend)
