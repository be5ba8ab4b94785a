"""Writable sharded indexes: each shard of a ``shards.json`` root is a living index.

``open_index(root, writable=True)`` on a sharded root gives a :class:`LivingShardedIndex`, with the
write API of a writable single index (:class:`~lsr.index.segments.SegmentedIndex`): ``add``,
``delete``, ``commit``, ``rollback``, ``merge``, ``segments``. A read-only ``open_index(root)``
gives one too as soon as any shard has been written to (it has generation files); a root whose
shards were never written still opens as the static :class:`~lsr.index.shards.ShardedIndex`.

**Routing.** Every live external id is held by exactly one shard. A write of an id a shard holds
(live, or deleted by a change not yet committed) goes to that shard: an update is a delete + add
inside that one shard, which that shard's commit publishes atomically, so an id is never held
twice nor lost, even when a crash falls between two shards' commits. A new id goes to
:func:`~lsr.index.shards.route_shard` (BLAKE2b-64 of its UTF-8 bytes modulo the shard count), the
rule recorded in ``shards.json`` under ``"routing"``. (An id in two shards, which builds refuse
since ``write_shards_manifest`` checks ids across shards but an index built before that may hold,
is owned by the lower one; a write of it deletes the other copy.)

**Validation first.** A batch is checked whole (ids, weights, vocabulary, metadata types) before
any shard is touched: a bad batch raises :class:`LsrError` and changes no shard.

**One vocabulary, one field schema.** All shards keep one vocabulary (each shard's is a prefix of
the newest one) and one set of metadata fields: a batch that grows either grows it in every shard,
and each shard's next commit publishes it (a shard that got no documents commits a generation with
only the new vocabulary).

**Commit.** ``commit()`` commits the shards one after the other; each shard's commit is atomic
(:mod:`lsr.index.segments`: its generation file's rename), the set of shards is not. A crash (or
an error) between two shards' commits leaves every shard consistent, the earlier ones at their new
generation and the later ones at their old one: part of the batch visible, no id duplicated, and
the vocabularies still prefixes of one another (the next writer brings them level). ``shards.json``
is not rewritten by commits: the live counts and statistics come from the shards' generations.

**Reading.** Each search pins every shard's current generation, searches the shards (threads),
and merges their top-k by **(score descending, shard number, the shard's own order)**, the shard's
own order being its segment order, then the doc number (the order documents were last added in).
For a root never written this is the static sharded index's order (build order). Document handles
in results are ``shard << 53 | segment << 32 | doc`` (:meth:`document` reads them). Corpus
statistics (``document_frequencies``, the document count handed to inference-free query encoders
and BM25) are summed over the live documents of all shards. A reader opened after a commit sees
it; an open reader moves to the newest generations with :meth:`refresh`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from lsr.errors import LsrError
from lsr.index import metadata as md
from lsr.index.searcher import Index, SearchResult, check_k, check_threads, search_results
from lsr.index.segments import SegmentedIndex, Snapshot, is_segmented
from lsr.index.shards import (
    ROUTING,
    SHARDS_FILE,
    read_shards_manifest,
    route_shard,
    save_shards_manifest,
)
from lsr.vectors import SparseBatch, Vocabulary

SHARD_SHIFT = 53  # document handle: shard << 53 | segment number << 32 | doc number
SHARD_BITS = 10  # at most 1024 shards
SEGMENT_LIMIT = 1 << (SHARD_SHIFT - 32)  # segment numbers that fit a handle


def has_writes(root: str | os.PathLike) -> bool:
    """True when any shard of the sharded root ``root`` has been written to (has generations)."""
    m = read_shards_manifest(root)
    return any(is_segmented(os.path.join(os.fspath(root), e["dir"])) for e in m.get("shards") or [])


class _View:
    """The global vocabulary, fields and statistics of one set of pinned shard generations (what a
    search needs to stay consistent while writers commit)."""

    prepare_queries = Index.prepare_queries
    _vocab_map = Index._vocab_map

    def __init__(self, owner: LivingShardedIndex, snaps: list[Snapshot]) -> None:
        self.owner = owner
        self.snaps = snaps
        self.key = tuple(s.generation for s in snaps)
        longest = max(snaps, key=lambda s: s.n_terms)
        self.vocab: Vocabulary = longest.vocab
        self.n_terms = len(self.vocab)
        for i, s in enumerate(snaps):
            if s.vocab.tokens != self.vocab.tokens[: s.n_terms]:
                raise LsrError(
                    f"{owner.path}: shard {i}'s vocabulary is not a prefix of the others' (shards written apart)"
                )
        self.fields = _union_fields(owner.path, [s.fields for s in snaps])
        self._vocab_maps: dict[int, Any] = {}
        self._df: np.ndarray | None = None
        self._lock = threading.Lock()

    def encode_queries(self, texts: Sequence[str], encoder: Any = None, force: bool = False) -> SparseBatch:
        return self.owner.encode_queries(texts, encoder=encoder, force=force)

    @property
    def n_live_docs(self) -> int:
        return sum(s.n_live_docs for s in self.snaps)

    def document_frequencies(self) -> np.ndarray:
        with self._lock:
            if self._df is None:
                df = np.zeros(self.n_terms, np.int64)
                for s in self.snaps:
                    d = s.document_frequencies()
                    df[: len(d)] += d
                self._df = df
            return self._df

    def doc_ids(self, handles: np.ndarray) -> list[str]:
        handles = np.asarray(handles, np.int64)
        which = handles >> SHARD_SHIFT
        local = handles & ((1 << SHARD_SHIFT) - 1)
        out: list[str] = [""] * len(handles)
        for s in np.unique(which).tolist():
            rows = np.flatnonzero(which == s)
            for j, doc_id in zip(rows.tolist(), self.snaps[s].doc_ids(local[rows]), strict=True):
                out[j] = doc_id
        return out


def _union_fields(path: str, schemas: Sequence[Mapping[str, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for sch in schemas:
        for k, v in sch.items():
            if out.setdefault(k, v) != v:
                raise LsrError(f"{path}: metadata field {k!r} is {out[k]} in one shard and {v} in another")
    return out


class LivingShardedIndex:
    """A sharded index whose shards are living indexes (see the module docs): the search API of
    :class:`~lsr.index.shards.ShardedIndex` (plus ``filter=``), and with ``writable=True`` the
    write API of :class:`~lsr.index.segments.SegmentedIndex`. ``options`` (``parts_min_docs``,
    ``merge_factor``, ``merge_min_docs``) apply to every shard."""

    def __init__(self, path: str | os.PathLike, writable: bool = False, **options: Any) -> None:
        self.path = os.path.abspath(os.fspath(path))
        m = read_shards_manifest(self.path)
        entries = m.get("shards") or []
        if not entries:
            raise LsrError(f"{self.path}: {SHARDS_FILE} lists no shards")
        if len(entries) > 1 << SHARD_BITS:
            raise LsrError(
                f"{self.path}: {len(entries)} shards (a living sharded index takes at most {1 << SHARD_BITS})"
            )
        routing = m.get("routing")
        if routing is not None and routing.get("hash") != ROUTING["hash"]:
            raise LsrError(
                f"{self.path}: {SHARDS_FILE} routes ids by {routing.get('hash')!r}; this lsr routes by {ROUTING['hash']!r}"
            )
        self.shard_dirs = [os.path.join(self.path, e["dir"]) for e in entries]
        for e, d in zip(entries, self.shard_dirs, strict=True):
            if not os.path.isdir(d):
                raise LsrError(f"{self.path}: shard {e['dir']} listed in {SHARDS_FILE} is missing")
        self.writable = writable
        self.shards: list[SegmentedIndex] = []
        try:
            for d in self.shard_dirs:
                self.shards.append(SegmentedIndex(d, writable=writable, **options))
            self._check_shards()
        except BaseException:
            self.close()
            raise
        self.manifest = m
        self._wlock = threading.RLock()
        self._view_cache: _View | None = None
        self._encoder = None
        self._retrievers: dict[tuple[int, bool], tuple[Any, Any]] = {}
        self._pool: ThreadPoolExecutor | None = None
        if writable:
            if routing is None:  # a manifest from before writes: record the rule once
                self.manifest = {**m, "routing": dict(ROUTING)}
                save_shards_manifest(self.path, self.manifest)
            self._reset_pending()
            self._level_shards()

    def _check_shards(self) -> None:
        """Refuse shards that do not fit together (encoder, quantization)."""
        ref = self.shards[0]
        for i, s in enumerate(self.shards[1:], start=1):
            if (s.encoder_config or None) != (ref.encoder_config or None):
                raise LsrError(f"{self.path}: shards 0 and {i} were built with different encoders")
            if s.quantization != ref.quantization or float(s.scale) != float(ref.scale):
                raise LsrError(
                    f"{self.path}: shards 0 and {i} have different quantization ({ref.quantization} scale "
                    f"{float(ref.scale)} vs {s.quantization} scale {float(s.scale)})"
                )

    def __repr__(self) -> str:
        return (
            f"LivingShardedIndex({self.path!r}, shards={len(self.shards)}, live_docs={self.n_live_docs}, "
            f"writable={self.writable})"
        )

    def close(self) -> None:
        """Release the shards' write locks (pending changes are dropped) and the search threads."""
        for s in self.shards:
            s.close()
        self.writable = False
        if getattr(self, "_pool", None) is not None:
            self._pool.shutdown(wait=False)  # type: ignore[union-attr]
            self._pool = None

    def __enter__(self) -> LivingShardedIndex:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- the current view --------------------------------------------------------------------------
    def _view(self) -> _View:
        snaps = [s.snapshot() for s in self.shards]
        v = self._view_cache
        if v is None or any(a is not b for a, b in zip(v.snaps, snaps, strict=True)):
            v = _View(self, snaps)
            self._view_cache = v
        return v

    def refresh(self) -> int:
        """Readers: move every shard to its newest committed generation; returns :attr:`generation`."""
        for s in self.shards:
            s.refresh()
        return self.generation

    @property
    def generation(self) -> int:
        """The sum of the shards' generations: grows with every commit or merge of any shard (what a
        Retriever watches to refresh its statistics). Per shard: :attr:`generations`."""
        return sum(s.generation for s in self.shards)

    @property
    def generations(self) -> list[int]:
        return [s.generation for s in self.shards]

    @property
    def segments(self) -> list[dict[str, Any]]:
        """The segments of every shard, flattened in shard order, each with ``"shard"`` (its number)
        added to the single index's keys (name, docs, deleted, live, parts)."""
        return [{"shard": i, **seg} for i, s in enumerate(self.shards) for seg in s.segments]

    @property
    def n_live_docs(self) -> int:
        return self._view().n_live_docs

    @property
    def n_docs(self) -> int:
        """Live documents over all shards (what a search can return)."""
        return self.n_live_docs

    @property
    def vocab(self) -> Vocabulary:
        return self._view().vocab

    @property
    def n_terms(self) -> int:
        return self._view().n_terms

    @property
    def n_postings(self) -> int:
        return int(self.document_frequencies().sum())

    @property
    def fields(self) -> dict[str, str]:
        return dict(self._view().fields)

    @property
    def methods(self) -> tuple[str, ...]:
        first = self.shards[0].methods
        return tuple(x for x in first if all(x in s.methods for s in self.shards))

    @property
    def quantization(self) -> str:
        return self.shards[0].quantization

    @property
    def scale(self) -> np.float32:
        return self.shards[0].scale

    @property
    def encoder_config(self) -> dict[str, Any] | None:
        return self.shards[0].encoder_config

    @property
    def has_store(self) -> bool:
        return any(s.has_store for s in self.shards)

    @property
    def pending_merges(self) -> int:
        return sum(s.pending_merges for s in self.shards)

    def document_frequencies(self) -> np.ndarray:
        """int64[n_terms]: live documents of all shards holding each term (global statistics)."""
        return self._view().document_frequencies()

    def size_bytes(self) -> int:
        return sum(s.size_bytes() for s in self.shards) + os.path.getsize(
            os.path.join(self.path, SHARDS_FILE)
        )

    # -- documents ---------------------------------------------------------------------------------
    def _split(self, handle: int) -> tuple[int, int]:
        h = int(handle)
        s = h >> SHARD_SHIFT
        if h < 0 or s >= len(self.shards):
            raise LsrError(f"no document {handle} in this index")
        return s, h & ((1 << SHARD_SHIFT) - 1)

    def doc_id(self, handle: int) -> str:
        s, d = self._split(handle)
        return self.shards[s].doc_id(d)

    def doc_ids(self, handles: np.ndarray) -> list[str]:
        return self._view().doc_ids(handles)

    def document(self, handle: int) -> dict[str, Any]:
        s, d = self._split(handle)
        return self.shards[s].document(d)

    def lookup(self, doc_id: str) -> int | None:
        """Handle of the live document with external id ``doc_id``, or None."""
        for i, s in enumerate(self.shards):
            d = s.lookup(doc_id)
            if d is not None:
                return (i << SHARD_SHIFT) | d
        return None

    # -- queries -----------------------------------------------------------------------------------
    def load_encoder(self) -> Any:
        if self._encoder is None:
            self._encoder = self.shards[0].load_encoder()
        return self._encoder

    def check_encoder(self, encoder: Any, force: bool = False) -> None:
        self.shards[0].check_encoder(encoder, force)

    def encode_queries(self, texts: Sequence[str], encoder: Any = None, force: bool = False) -> SparseBatch:
        """Encode query texts once through a :class:`lsr.Retriever` over this index (inference-free
        encoders take IDF from the global live statistics, never one shard's)."""
        from lsr.retriever import Retriever

        if encoder is None:
            encoder, force = self.load_encoder(), True
        key = (id(encoder), bool(force))
        hit = self._retrievers.get(key)
        if hit is None or hit[0] is not encoder:
            hit = (encoder, Retriever(self, encoder, force=force))
            self._retrievers[key] = hit
        return hit[1].encode_queries(texts)

    def prepare_queries(self, queries: Any, encoder: Any = None, force: bool = False) -> Any:
        """As :meth:`Index.prepare_queries`, over the global vocabulary."""
        return self._view().prepare_queries(queries, encoder=encoder, force=force)

    def check_params(self, method: str, params: Mapping[str, Any]) -> dict[str, Any]:
        return self.shards[0].check_params(method, params)

    # -- search ------------------------------------------------------------------------------------
    def search(
        self,
        queries: Any,
        k: int = 10,
        method: str = "exact",
        threads: int = 1,
        encoder: Any = None,
        force: bool = False,
        filter: Any = None,
        **params: Any,
    ) -> list[SearchResult]:
        """Top-``k`` live documents of all shards (passing ``filter``) per query, ordered by (score
        desc, shard, the shard's own order); ``docs`` are handles :meth:`document` reads."""
        k = check_k(k)
        threads = check_threads(threads)
        params = self.check_params(method, params)
        view = self._view()
        flt = filter if isinstance(filter, md.Filter) else md.parse_filter(filter, view.fields)
        indptr, terms, weights, unknown = view.prepare_queries(queries, encoder=encoder, force=force)
        docs, scores = self._search_view(view, indptr, terms, weights, k, threads, method, flt, params)
        return search_results(view.doc_ids, docs, scores, unknown)

    def search_arrays(
        self,
        indptr: np.ndarray,
        terms: np.ndarray,
        weights: np.ndarray,
        k: int,
        threads: int = 1,
        method: str = "exact",
        filter: Any = None,
        **params: Any,
    ) -> tuple[np.ndarray, np.ndarray]:
        """CSR query arrays over the global term ids -> (handles int64[nq, k] with -1 padding,
        scores float32[nq, k])."""
        view = self._view()
        flt = filter if isinstance(filter, md.Filter) else md.parse_filter(filter, view.fields)
        return self._search_view(view, indptr, terms, weights, k, threads, method, flt, dict(params))

    def _search_view(
        self,
        view: _View,
        indptr: np.ndarray,
        terms: np.ndarray,
        weights: np.ndarray,
        k: int,
        threads: int,
        method: str,
        flt: md.Filter | None,
        params: dict[str, Any],
    ) -> tuple[np.ndarray, np.ndarray]:
        nq = len(indptr) - 1
        n = len(view.snaps)
        per = max(1, threads // n)

        def one(snap: Snapshot) -> tuple[np.ndarray, np.ndarray]:
            ip, tm, wt = indptr, terms, weights
            if len(tm) and int(tm.max()) >= snap.n_terms:
                # terms newer than this shard's vocabulary (a crash between shard commits) match
                # nothing in it
                keep = tm < snap.n_terms
                row = np.repeat(np.arange(nq), np.diff(indptr))[keep]
                ip = np.zeros(nq + 1, np.int64)
                np.cumsum(np.bincount(row, minlength=nq), out=ip[1:])
                tm, wt = np.ascontiguousarray(tm[keep]), np.ascontiguousarray(wt[keep])
            return snap.search_arrays(ip, tm, wt, k, per, method, snap.allowed(flt), **params)

        if n == 1 or nq == 0:
            parts = [one(s) for s in view.snaps]
        else:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="lsr-shard")
            parts = [f.result() for f in [self._pool.submit(one, s) for s in view.snaps]]
        return merge_shard_topk(parts, k)

    def warmup(self, methods: Sequence[str] | None = None) -> None:
        for s in self.shards:
            s.warmup(methods)

    # -- writing -----------------------------------------------------------------------------------
    def _need_writer(self) -> None:
        if not self.writable:
            raise LsrError(f"{self.path}: opened read-only; open_index(path, writable=True) to change it")

    @property
    def write_lock(self) -> threading.RLock:
        """Held by every write: hold it to make several calls (add + commit) one unit."""
        return self._wlock

    @property
    def pending(self) -> int:
        """Adds and deletes not yet committed, over all shards."""
        return sum(s.pending for s in self.shards) if self.writable else 0

    def _reset_pending(self) -> None:
        # external id -> shard, for ids written since the last commit (added, or deleted: a deleted
        # id written again in the same commit goes back to its shard, so the change stays in one
        # shard's atomic commit); which of them are live (added last)
        self._home: dict[str, int] = {}
        self._live_pending: set[str] = set()

    def _level_shards(self) -> None:
        """Give every shard the global pending vocabulary and metadata fields (a shard behind, after
        a crash between shard commits, catches up at its next commit)."""
        longest = max((s._pending_vocab for s in self.shards), key=len)
        fields = _union_fields(self.path, [s._pending_fields for s in self.shards])
        for s in self.shards:
            if s._pending_vocab.tokens != longest.tokens:
                if s._pending_vocab.tokens != longest.tokens[: len(s._pending_vocab)]:
                    raise LsrError(f"{self.path}: the shards' vocabularies are not prefixes of one another")
                s._pending_vocab = Vocabulary(longest.tokens)
            if s._pending_fields != fields:
                s._pending_fields = dict(fields)

    def _committed_holders(self, ids: Sequence[str]) -> np.ndarray:
        """bool[n_shards, len(ids)]: which shards hold each id live in their committed generation
        (one at most, unless a static build put one id in two shards)."""
        held = np.zeros((len(self.shards), len(ids)), bool)
        for si, shard in enumerate(self.shards):
            for seg in shard.snapshot().segments:
                if seg.n_live == 0:
                    continue
                d = seg.lookup_many(ids)
                hit = d >= 0
                if seg.live is not None:
                    hit[hit] = seg.live[d[hit]]
                held[si] |= hit
        return held

    def _route(self, ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray, dict[int, list[str]]]:
        """(shard each id is written to, whether it exists now, {shard: ids to delete there}).

        The last is for ids an older build left in two shards (builds now refuse them): the lowest
        shard holding one owns it, and writes to it delete the others, so afterwards it is held
        once."""
        home = np.full(len(ids), -1, np.int64)
        exists = np.zeros(len(ids), bool)
        extra: dict[int, list[str]] = {}
        unresolved = []
        for j, i in enumerate(ids):
            h = self._home.get(i) if self.writable else None
            if h is not None:
                home[j] = h
                exists[j] = i in self._live_pending
            else:
                unresolved.append(j)
        if unresolved:
            held = self._committed_holders([ids[j] for j in unresolved])
            for col, j in enumerate(unresolved):
                where = np.flatnonzero(held[:, col]).tolist()
                if where:
                    home[j], exists[j] = where[0], True
                    for t in where[1:]:
                        extra.setdefault(t, []).append(ids[j])
        for j in np.flatnonzero(home < 0).tolist():
            home[j] = route_shard(ids[j], len(self.shards))
        return home, exists, extra

    def owner(self, ids: Sequence[str]) -> np.ndarray:
        """int64[len(ids)]: the shard a write of each id goes to (routing, see the module docs)."""
        return self._route(ids)[0]

    def add(
        self,
        batch_or_dicts: Any,
        ids: Sequence[str] | None = None,
        metadata: Sequence[Mapping[str, Any] | None] | None = None,
        documents: Sequence[tuple[str, str]] | None = None,
    ) -> int:
        """Add documents (a :class:`SparseBatch` or ``{token: weight}`` dicts) under external ``ids``,
        each to the shard that owns its id (an existing id is replaced in its shard). Everything is
        checked before any shard changes. Visible and durable after :meth:`commit`. Returns the
        count added."""
        self._need_writer()
        with self._wlock:
            # every shard on the global vocabulary first: a batch grows it past its newest token,
            # never past one shard's shorter view of it
            self._level_shards()
            ref = self.shards[0]
            b, ids, docs, vocab = ref._to_batch(batch_or_dicts, ids, documents)
            if metadata is not None and len(metadata) != len(ids):
                raise LsrError(f"{len(metadata)} metadata objects for {len(ids)} documents")
            metas = list(metadata) if metadata is not None else [None] * len(ids)
            _cols, fields = md.columns_from_records(metas, ref._pending_fields, ids)
            home, _exists, extra = self._route(ids)
            # all checked: the global vocabulary and fields go to every shard, then the rows
            for s in self.shards:
                if len(s._pending_vocab) != len(vocab):
                    s._pending_vocab = Vocabulary(vocab.tokens)
                s._pending_fields = dict(fields)
            for si, shard in enumerate(self.shards):
                rows = np.flatnonzero(home == si)
                if not len(rows):
                    continue
                sub = b.select(rows)
                sub_ids = [ids[r] for r in rows.tolist()]
                shard.add(
                    sub,
                    ids=sub_ids,
                    metadata=[metas[r] for r in rows.tolist()],
                    documents=[docs[r] for r in rows.tolist()] if docs is not None else None,
                )
            for t, dup in extra.items():  # copies a static build left in other shards
                self.shards[t].delete(dup)
            for i, h in zip(ids, home.tolist(), strict=True):
                self._home[i] = h
                self._live_pending.add(i)
            return len(ids)

    def add_texts(
        self,
        texts: Sequence[str],
        ids: Sequence[str],
        metadata: Sequence[Mapping[str, Any] | None] | None = None,
        titles: Sequence[str] | None = None,
        encoder: Any = None,
        batch_size: int = 256,
    ) -> int:
        """Encode ``texts`` (as :meth:`SegmentedIndex.add_texts`) and :meth:`add` them."""
        from lsr.index.segments import encode_texts

        self._need_writer()
        batch, documents = encode_texts(self, texts, ids, titles, encoder, batch_size, self.vocab)
        return self.add(batch, ids=list(ids), metadata=metadata, documents=documents)

    def delete(self, ids: Sequence[str] | str) -> dict[str, int]:
        """Delete documents by external id, each in the shard holding it. Returns ``{"deleted",
        "not_found"}`` (an id no shard holds is counted, not an error)."""
        self._need_writer()
        if isinstance(ids, str):
            ids = [ids]
        ids = list(dict.fromkeys(ids))
        for i in ids:
            if not isinstance(i, str) or not i:
                raise LsrError(f"invalid document id {i!r}")
        with self._wlock:
            home, exists, extra = self._route(ids)
            deleted = 0
            for si, shard in enumerate(self.shards):
                sub = [ids[j] for j in np.flatnonzero((home == si) & exists).tolist()]
                if sub:
                    deleted += shard.delete(sub)["deleted"]
                    for i in sub:  # a later add of these ids in this commit goes back to this shard
                        self._home[i] = si
                        self._live_pending.discard(i)
            for t, dup in extra.items():  # copies a static build left in other shards
                self.shards[t].delete(dup)
            return {"deleted": deleted, "not_found": len(ids) - deleted}

    def rollback(self) -> None:
        """Drop every change since the last commit, in every shard."""
        self._need_writer()
        with self._wlock:
            for s in self.shards:
                s.rollback()
            self._reset_pending()
            self._level_shards()

    def commit(self) -> int:
        """Commit every shard (each atomically, one after the other: see the module docs); returns
        :attr:`generation`. On an error the shards not yet committed keep their changes pending."""
        self._need_writer()
        with self._wlock:
            for s in self.shards:
                s.commit()
            self._reset_pending()
            return self.generation

    def merge(self, max_segments: int | None = None, show_progress: bool = False) -> int:
        """Commit, then merge each shard's segments by the policy, or down to ``max_segments``
        segments *per shard*; returns :attr:`generation`."""
        self._need_writer()
        with self._wlock:
            self.commit()
            for s in self.shards:
                s.merge(max_segments=max_segments, show_progress=show_progress)
            return self.generation

    def info(self) -> list[dict[str, Any]]:
        """Per shard: dir, generation, live documents, segments (as :attr:`SegmentedIndex.segments`)."""
        return [
            {
                "dir": os.path.basename(s.path),
                "generation": s.generation,
                "live": s.n_live_docs,
                "segments": s.segments,
            }
            for s in self.shards
        ]


def merge_shard_topk(parts: Sequence[tuple[np.ndarray, np.ndarray]], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Merge per-shard top-k lists (in-shard handles int64[nq, k] with -1 padding, scores, each row
    in the shard's own order) into handles ``shard << 53 | in-shard handle`` by (score desc, shard,
    position in the shard's list): exact, as each shard's list is its own top-k in that order."""
    nq = parts[0][0].shape[0]
    cols = []
    for i, (d, _) in enumerate(parts):
        if len(d) and d.size and int(d.max()) >= SEGMENT_LIMIT << 32:
            raise LsrError(f"shard {i} has a segment number over {SEGMENT_LIMIT - 1}: merge it (lsr merge)")
        cols.append(np.where(d >= 0, (np.int64(i) << SHARD_SHIFT) | d.astype(np.int64), -1))
    docs = np.concatenate(cols, axis=1)
    scores = np.concatenate([s.astype(np.float32) for _, s in parts], axis=1)
    key = np.where(docs >= 0, -scores.astype(np.float64), np.inf)  # padding sorts last
    # columns are already in (shard, position) order: a stable sort by score keeps it for ties
    order = np.argsort(key, axis=1, kind="stable")[:, :k]
    out_d = np.take_along_axis(docs, order, axis=1)
    out_s = np.take_along_axis(scores, order, axis=1)
    out_s[out_d < 0] = 0
    if out_d.shape[1] < k:
        out_d = np.pad(out_d, ((0, 0), (0, k - out_d.shape[1])), constant_values=-1)
        out_s = np.pad(out_s, ((0, 0), (0, k - out_s.shape[1])))
    return out_d.reshape(nq, k), out_s.reshape(nq, k)
