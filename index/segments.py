"""The living index: immutable segments, live-docs bitmaps and generations switched atomically.

A living index directory holds (see :mod:`lsr.index.format` for each file)::

    manifest.json, *.npy, store.jsonl   generation 0's segment "." (an index built by lsr index)
    generation-<N>.json                 the segment list of generation N (the newest one is live)
    segments/seg-<n>/                   a segment: today's index format, plus metadata columns
    live/seg-<n>.g<N>.npy               a segment's live-docs bitmap as of generation N
    vocab-<N>.json                      the vocabulary, when it grew past segment "."'s
    write.lock                          held (flock) by the one writer

**Readers** open the newest generation and keep it (:class:`Snapshot`) until they let it go: its
segment files are memory-mapped, its bitmaps read, and nothing they point to is ever rewritten.
**The writer** (``open_index(dir, writable=True)``) buffers ``add`` / ``delete`` in memory and
``commit()`` publishes them: new segment directories and new bitmap files are written and fsynced,
then ``generation-<N+1>.json`` is written to a temporary name, fsynced, renamed into place and the
directory fsynced. The rename is the commit point: a crash before it leaves generation N exactly as
it was (the next writer deletes the leftovers), a crash after it leaves generation N+1 whole.

Write-ahead: none. An ``add`` or ``delete`` is acknowledged by the ``commit()`` that follows it
(the service commits every write request before answering); until then it lives only in the
writer's memory, so a crash loses exactly the writes nobody was told were durable. A WAL would
buy per-call durability at one fsync per call and a replay path; batching writes into segments,
as Lucene does with ``segments_N``, keeps one code path and one fsync sequence per commit.

Segment "." is the plain index a user built; an index without generation files is generation 0
with that one segment, so every existing index opens unchanged. All segments share one
vocabulary (each segment's is a prefix of the newest; it only grows when the index records no
encoder) and one quantization step (``settings.scale``), so scores compare across segments and a
merge copies impacts unchanged.

Searches run each method's kernel per segment with one document mask (live docs AND the filter),
applied before a document can enter the top-k heap, then merge the per-segment top-k by (score
desc, segment order, doc number). BMP over two or more segments with its part runs one kernel over
all their blocks at once (:mod:`lsr.index.kernels.bmp_segments`), in the same order; exact search
over two or more segments runs in one kernel call, one accumulator over the segments, with the
per-segment path's results (:mod:`lsr.index.kernels.exact_segments`), and MaxScore sends the
segments its fallback policies skip there too. Merges only join *adjacent* segments, so that order is always
the order documents were added in. Segments under ``parts_min_docs`` documents have no BMP /
Seismic parts and are searched exactly (OpenSearch's rule): exact results on them are never worse.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import threading
import time
import weakref
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np

from lsr.errors import LsrError
from lsr.index import format as fmt
from lsr.index import metadata as md
from lsr.index.npy import read_npy
from lsr.index.parts import DEFAULT_BMP, DEFAULT_REORDER, DEFAULT_SEISMIC
from lsr.index.searcher import METHOD_PARAMS, Index, SearchResult, check_k, check_threads, search_results
from lsr.vectors import SparseBatch, Vocabulary

GENERATION_FORMAT = "lsr-generation"
GENERATION_VERSION = 1
BASE = "."  # the segment that is the index directory itself (an index built by `lsr index`)
LOCK_FILE = "write.lock"
SEGMENTS_DIR = "segments"
LIVE_DIR = "live"
DEFAULT_PARTS_MIN_DOCS = 10_000
DEFAULT_MERGE_FACTOR = 10
DEFAULT_MERGE_MIN_DOCS = 1_000
EXPUNGE_DELETED_FRACTION = 0.5  # a segment with more deleted docs than this is rewritten alone
FILTER_CACHE_SIZE = 32  # filters whose per-segment masks a generation keeps (most recently used)
# The k-th score carried into the next segment's kernel is lowered by this relative margin (and a
# segment is skipped only when its bound times 1 + margin is under it): bounds and scores are float32
# sums in different orders, and a document tying the k-th score must still reach the merge.
THRESHOLD_MARGIN = 1e-4
THRESHOLD_METHODS = ("exact", "maxscore", "bmp", "seismic")  # kernels taking a starting threshold
# Seismic over a segment where the mask keeps under this share of the documents is answered exactly
# (over the kept documents): its statically pruned lists hold few of them, so its recall collapses
# (0.687 at a 1% filter on 1M documents before this rule), while exact search over so few documents
# is cheap (the forward index scores only them).
SEISMIC_EXACT_FRACTION = 0.05
# MaxScore and BMP over a segment where the mask keeps under this share of the documents run as
# exact search (the same results: all three are safe there): their bounds count the masked
# documents, so a filter hiding the best ones leaves them walking most of the index for a low k-th
# score (on 1M documents before this rule, a 10% filter cost BMP 11.0 ms and MaxScore 13.4 ms
# against exact's 7.1 ms).
PRUNED_EXACT_FRACTION = 0.25
# What scoring one allowed document's non-zero from the forward index costs, in postings of
# term-at-a-time exact search (a dense-query lookup per non-zero against a sequential accumulator
# update per posting): indicative, from kernel timings on a loaded 2-core machine (about 3-10 ns per
# non-zero vs about 2 ns per posting on 100,000 synthetic documents); the selected-documents path is
# taken only when it is clearly cheaper.
SELECTED_COST = 4.0
# Exact search over a segment where the mask keeps at most this share of the documents selects its
# top k by reading the allowed documents' accumulator entries (a sorted gather, cached per filter)
# instead of scanning all of them: the scan is about a tenth of a 1M-document exact search, so a
# 10% filter then costs less than no filter (the accumulation is the same).
GATHER_FRACTION = 0.25
NO_THRESHOLD = np.empty(0, np.float32)
_NO_MASK = np.empty(0, np.uint8)
_NO_ROWS = np.empty(0, np.int64)
_INT64_MAX = np.iinfo(np.int64).max  # np.iinfo costs microseconds a call
SCRATCH_POOL_SIZE = 16  # scratch sets a generation keeps for its kernels over segments (several MB each)
# BMP over two or more segments with the BMP part searches them at once, in one order of block
# bounds into one top-k (lsr.index.kernels.bmp_segments) instead of one after another: off, every
# segment is searched alone from the k-th score the segments before it hold.
JOINT_BMP = True
# Exact search over two or more segments runs in one kernel call (lsr.index.kernels.exact_segments):
# the per-segment path's results, one accumulator over the segments, without the Python around each
# segment. Off: that path.
JOINT_EXACT = True
# BMP over segments bounds each block by the maxima of its *live* documents on a segment with deleted
# documents (lsr.index.kernels.bmp.live_block_maxima), not by the stored maxima, which still count the
# deleted ones: on the 1M living benchmark's 10 segments with 10% deleted, the joint kernel's p50 went
# 1.20-1.32 -> 1.04-1.11 ms and BMP over the segments 1.41-1.62x -> 1.08-1.17x the merged index
# (BENCHMARKS.md, 2026-12-01, afternoon). Computed once per segment and bitmap
# (one pass over the segment's postings, from LIVE_BOUNDS_FRACTION deleted on; a later bitmap of the
# same segment updates only the blocks of the documents deleted since, through the forward index).
LIVE_BOUNDS = True
LIVE_BOUNDS_FRACTION = 0.01
# MaxScore over 2+ segments: a segment runs MaxScore only while its counted work stays under this
# share of exact search's (lsr.index.methods.POLICY_WORK; 1.0 for one index). A segment that runs
# MaxScore is searched alone, paying the Python around its own kernel (30-40 us) that the one exact
# call over the other segments does not, which the work count does not see: on the living bench's 10
# segments the segments' ratios read 0.90-1.05 while MaxScore over them took 1.1-1.2x exact search
# over them (BENCHMARKS.md, 2026-12-01, afternoon).
SEGMENT_MAXSCORE_WORK_SKIP = 0.8
_LIVE_BOUNDS_LOCK = threading.Lock()
_GEN_RE = re.compile(r"^generation-(\d+)\.json$")
_SEG_RE = re.compile(r"^seg-(\d+)$")
_BASE_FILES = {fmt.MANIFEST, fmt.STORE} | {f"{n}.npy" for n in fmt.ARRAYS}


# -- durable file helpers -------------------------------------------------------------------------
def fsync_file(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(path: str) -> None:
    """fsync every file under ``path`` and then the directories (children before parents)."""
    for root, _dirs, files in os.walk(path, topdown=False):
        for f in files:
            fsync_file(os.path.join(root, f))
        fsync_dir(root)


def write_durable(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically and durably: temp file, fsync, rename, fsync dir."""
    tmp = f"{path}.tmp-{os.getpid()}-{threading.get_ident()}"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(os.path.dirname(path) or ".")


def generation_path(index_dir: str, gen: int) -> str:
    return os.path.join(index_dir, f"generation-{gen}.json")


def list_generations(index_dir: str) -> list[int]:
    """Generation numbers with a file in ``index_dir``, ascending."""
    try:
        names = os.listdir(index_dir)
    except FileNotFoundError:
        return []
    return sorted(int(m.group(1)) for n in names if (m := _GEN_RE.match(n)))


def is_segmented(index_dir: str | os.PathLike) -> bool:
    """True when ``index_dir`` has generation files (it was written to as a living index)."""
    return bool(list_generations(os.fspath(index_dir)))


# -- bitmaps --------------------------------------------------------------------------------------
def write_bitmap(path: str, live: np.ndarray) -> int:
    """Write a live-docs bitmap (bool[n_docs]) as packed bits (little bit order) in a .npy file,
    fsynced; returns its CRC-32 (kept in the generation file)."""
    packed = np.packbits(live.astype(bool), bitorder="little")
    with open(path, "wb") as f:
        np.save(f, packed)
        f.flush()
        os.fsync(f.fileno())
    with open(path, "rb") as f:
        return zlib.crc32(f.read())


def read_bitmap(path: str, n_docs: int, crc: int | None) -> np.ndarray:
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise
    except OSError as e:
        raise LsrError(f"{path}: unreadable live-docs bitmap ({e})") from None
    if crc is not None and zlib.crc32(raw) != crc:
        raise LsrError(f"{path}: live-docs bitmap fails its checksum (damaged index)")
    try:
        packed = read_npy(raw)
    except ValueError as e:
        raise LsrError(f"{path}: unreadable live-docs bitmap ({e})") from None
    if packed.dtype != np.uint8 or packed.shape != ((n_docs + 7) // 8,):
        raise LsrError(f"{path}: live-docs bitmap has the wrong size for {n_docs} documents")
    return np.unpackbits(packed, count=n_docs, bitorder="little").astype(bool)


# -- opened segments and snapshots ---------------------------------------------------------------
class Segment:
    """One opened segment of a generation: its memory-mapped :class:`Index`, its live docs and its
    metadata columns. Immutable once built; shared by every snapshot that lists it unchanged."""

    def __init__(self, index_dir: str, entry: Mapping[str, Any], index: Index | None = None) -> None:
        self.name: str = entry["name"]
        self.num = 0 if self.name == BASE else int(_SEG_RE.match(self.name).group(1))  # type: ignore[union-attr]
        self.dir = index_dir if self.name == BASE else os.path.join(index_dir, SEGMENTS_DIR, self.name)
        self.index = index if index is not None else Index(self.dir)
        self.n_docs = self.index.n_docs
        self.live_file: str | None = entry.get("live")
        self.live_crc: int | None = entry.get("live_crc32")
        self.live: np.ndarray | None = None  # bool[n_docs] by build order; None: all live
        if self.live_file:
            self.live = read_bitmap(os.path.join(index_dir, self.live_file), self.n_docs, self.live_crc)
        self.n_live = int(self.live.sum()) if self.live is not None else self.n_docs
        self.columns = md.read_columns(self.dir, self.n_docs)
        self._live_mask: np.ndarray | None = None
        self._df: np.ndarray | None = None
        self._inv_order: np.ndarray | None = None
        self._icols: md.Columns | None = None
        # BMP block maxima over the live documents: (mask they were taken under, sparse, dense),
        # this bitmap's (computed on first use) and the last one computed under an older bitmap
        self._bmp_live: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._bmp_prev: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def internal_columns(self) -> md.Columns:
        """The metadata columns in internal doc order (the kernels' and masks' order), so a filter
        evaluates straight into a kernel mask, without a gather per search."""
        if self._icols is None:
            order = self.index.doc_order
            self._icols = (
                md.take_columns(self.columns, np.asarray(order, np.int64)) if len(order) else self.columns
            )
        return self._icols

    def entry(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "n_docs": self.n_docs,
            "deleted": self.n_docs - self.n_live,
            "live": self.live_file,
            "live_crc32": self.live_crc,
            "methods": list(self.index.methods),
        }

    def with_live(self, index_dir: str, live_file: str | None, crc: int | None) -> Segment:
        """The same segment with another bitmap (shares the mapped arrays and columns)."""
        seg = object.__new__(Segment)
        seg.__dict__.update(self.__dict__)
        seg.live_file, seg.live_crc = live_file, crc
        seg.live = read_bitmap(os.path.join(index_dir, live_file), self.n_docs, crc) if live_file else None
        seg.n_live = int(seg.live.sum()) if seg.live is not None else seg.n_docs
        seg._live_mask = None
        seg._df = None
        seg._bmp_prev = self._bmp_live if self._bmp_live is not None else self._bmp_prev
        seg._bmp_live = None
        return seg

    def to_internal(self, build_mask: np.ndarray) -> np.ndarray:
        """A bool mask by build-order number -> uint8 by internal doc number (the kernels' order)."""
        order = self.index.doc_order
        m = build_mask[order] if len(order) else build_mask
        return np.ascontiguousarray(m, dtype=np.uint8)

    def live_mask(self) -> np.ndarray | None:
        """uint8[n_docs] by internal doc number of the live docs (None: all live)."""
        if self.live is None:
            return None
        if self._live_mask is None:
            self._live_mask = self.to_internal(self.live)
        return self._live_mask

    def bmp_maxima(self) -> tuple[np.ndarray, np.ndarray]:
        """(sparse, dense) BMP block maxima for the kernel over segments: over the live documents
        when this segment has deleted ones (see :data:`LIVE_BOUNDS`), else the stored ones. Valid
        bounds either way (the live documents are a subset of the stored maxima's); the live ones
        prune more. Computed once per bitmap, under a lock (one computation, whichever search asks
        first); an older bitmap's arrays are copied and updated for the documents deleted since."""
        ix = self.index
        stored = (ix.bmp[3], ix.bmp[5])
        mask = self.live_mask()
        if mask is None or not LIVE_BOUNDS:
            return stored
        got = self._bmp_live
        if got is None:
            with _LIVE_BOUNDS_LOCK:
                got = self._bmp_live
                if got is None:
                    got = self._compute_bmp_maxima(mask)
                    if got is None:
                        return stored
                    self._bmp_live = got
                    self._bmp_prev = None  # the next bitmap updates this one's
        return got[1], got[2]

    def _compute_bmp_maxima(self, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        from lsr.index.kernels import bmp as bmp_k

        ix = self.index
        bo, blk, st, _mx, drow, dmax, dst = ix.bmp
        docs, imps = ix.postings[1], ix.postings[2]
        bs = ix.bmp_block_size
        nb = (self.n_docs + bs - 1) // bs
        prev = self._bmp_prev
        if prev is not None and ix.forward is not None and not np.any(mask & ~prev[0]):
            gone = np.flatnonzero(prev[0] & ~mask).astype(np.int64)
            new_mx, new_dm = prev[1].copy(), prev[2].copy()
            bmp_k.update_live_maxima(
                ix.offsets, docs, imps, bs, nb, bo, blk, st, drow, dst, ix.forward[0], ix.forward[1], gone, mask,
                new_mx, new_dm,
            )  # fmt: skip
        elif self.n_docs - self.n_live < LIVE_BOUNDS_FRACTION * self.n_docs:
            return None
        else:
            new_mx, new_dm = bmp_k.live_block_maxima(
                ix.offsets, docs, imps, bs, nb, bo, blk, st, drow, dmax, mask
            )
        new_mx.flags.writeable = False
        new_dm.flags.writeable = False
        return mask, new_mx, new_dm

    def internal_of_build(self) -> np.ndarray:
        """int64[n_docs]: internal doc number of each build-order number."""
        if self._inv_order is None:
            order = self.index.doc_order
            if len(order):
                inv = np.empty(self.n_docs, np.int64)
                inv[order.astype(np.int64)] = np.arange(self.n_docs)
                self._inv_order = inv
            else:
                self._inv_order = np.arange(self.n_docs)
        return self._inv_order

    def document_frequencies(self) -> np.ndarray:
        """int64[segment n_terms]: live documents holding each term."""
        if self._df is None:
            offsets = np.asarray(self.index.offsets, np.int64)
            mask = self.live_mask()
            if mask is None:
                self._df = np.diff(offsets)
            else:
                c = np.zeros(len(self.index.postings_docs) + 1, np.int64)
                np.cumsum(mask[self.index.postings_docs], out=c[1:])
                self._df = c[offsets[1:]] - c[offsets[:-1]]
        return self._df

    def lookup_many(self, ids: Sequence[str]) -> np.ndarray:
        """Build-order doc numbers of ``ids`` in this segment (-1 when absent), live or not."""
        ix = self.index
        if ix._id_order is None:
            ix._id_order = np.argsort(ix._doc_ids, kind="stable")
        width = ix._doc_ids.dtype.itemsize
        enc = [i.encode("utf-8") for i in ids]
        fits = np.array([len(e) <= width for e in enc], bool)
        keys = np.array([e if f else b"" for e, f in zip(enc, fits, strict=True)], dtype=ix._doc_ids.dtype)
        pos = np.searchsorted(ix._doc_ids, keys, sorter=ix._id_order)
        pos = np.minimum(pos, max(self.n_docs - 1, 0))
        cand = ix._id_order[pos]
        hit = fits & (ix._doc_ids[cand] == keys)
        return np.where(hit, cand, -1).astype(np.int64)


class Allowed:
    """The documents of one segment a search may return: ``mask`` uint8[n_docs] by internal doc
    number (0: deleted or filtered out), None for every document, False for none; ``n`` how many.
    Keeps, computed on first use, the allowed documents as a list and their non-zeros in the
    forward index (what scoring only them costs)."""

    __slots__ = ("seg", "mask", "n", "_sel", "_nnz", "joins")

    def __init__(self, seg: Segment, mask: np.ndarray | None | bool, n: int) -> None:
        self.seg, self.mask, self.n = seg, mask, n
        self._sel: np.ndarray | None = None
        self._nnz: int | None = None
        self.joins: dict[str, bool] = {}  # Snapshot._joins per method, kept with the mask

    @classmethod
    def of(cls, seg: Segment, mask: np.ndarray | None | bool) -> Allowed:
        """From a bare mask (as :meth:`Snapshot.segment_masks` gives)."""
        if mask is None:
            return cls(seg, None, seg.n_docs)
        if mask is False:
            return cls(seg, False, 0)
        return cls(seg, np.ascontiguousarray(mask).view(np.uint8), int(np.count_nonzero(mask)))

    def selected(self) -> np.ndarray:
        """int64: the allowed internal doc numbers, ascending."""
        if self._sel is None:
            self._sel = (
                np.arange(self.seg.n_docs)
                if self.mask is None
                else np.flatnonzero(self.mask).astype(np.int64)
            )
        return self._sel

    def forward_nnz(self) -> int:
        """Non-zeros of the allowed documents (needs the forward part)."""
        if self._nnz is None:
            fptr = np.asarray(self.seg.index.forward[0])
            sel = self.selected()
            self._nnz = int((fptr[sel + 1] - fptr[sel]).sum())
        return self._nnz


def seismic_cost(seg: Segment, ip: np.ndarray, tm: np.ndarray, wt: np.ndarray, query_cut: int) -> float:
    """Seismic's work on one segment, in postings of exact search: each query's ``query_cut``
    heaviest terms walk the postings their pruned lists kept (whatever the segment's size),
    and every document met is scored from the forward index (its non-zeros, x
    :data:`SELECTED_COST`)."""
    parts = seg.index.seismic
    off = np.asarray(seg.index.offsets)
    if isinstance(parts, tuple):  # the kept postings of each query term: its blocks' documents
        tb, bptr = np.asarray(parts[0]), np.asarray(parts[1])
        df = (bptr[tb[tm + 1]] - bptr[tb[tm]]).astype(np.float64)
    else:
        df = (off[tm + 1] - off[tm]).astype(np.float64)
    avg = seg.index.n_postings / max(seg.n_docs, 1)
    total = 0.0
    for q in range(len(ip) - 1):
        a, b = int(ip[q]), int(ip[q + 1])
        heavy = np.argsort(-wt[a:b], kind="stable")[:query_cut]
        total += float(df[a:b][heavy].sum())
    return total * avg * SELECTED_COST


def plan_segment(
    seg: Segment,
    al: Allowed,
    ip: np.ndarray,
    tm: np.ndarray,
    method: str,
    wt: np.ndarray | None = None,
    params: Mapping[str, Any] | None = None,
) -> str:
    """How to search one segment: ``"selected"`` (exact, scoring only the allowed documents from
    the forward index: :func:`lsr.index.kernels.exact.search_selected`), or a method name.

    - the method when the segment has its parts, else ``exact`` (small segments have none: they
      are built without parts under ``parts_min_docs``, and exact search is cheaper there);
    - with a mask (deletes or a filter) and a forward index: ``selected`` when the allowed
      documents' non-zeros (times the number of queries, times :data:`SELECTED_COST`) are fewer
      than the postings of the queries' terms, the work of term-at-a-time exact search: a
      selective filter then costs its documents, not the collection. Every safe method gives the
      same results either way;
    - Seismic with a mask keeping under :data:`SEISMIC_EXACT_FRACTION` of the segment: exact
      (``selected`` or term-at-a-time, whichever is cheaper), for its recall;
    - MaxScore and BMP with a mask keeping under :data:`PRUNED_EXACT_FRACTION`: exact (their
      bounds do not know the mask);
    - Seismic where its work (:func:`seismic_cost`: the kept postings of the query's heaviest terms
      in the segment, each scored from the forward index) exceeds exact search's postings: exact,
      which is then both cheaper and exact. Seismic's lists are pruned to about ``n_postings`` per
      term in every segment, so 10 segments walk 10 times the postings of one merged segment, and on
      segments of 10,000 documents exact search cost about a twentieth of Seismic's (indicative
      kernel timings, 100,000 synthetic documents).
    """
    m = method if method in seg.index.methods else "exact"
    if m == "seismic" and wt is not None:
        qc = int((params or {}).get("query_cut", 10))
        off = np.asarray(seg.index.offsets)
        if seismic_cost(seg, ip, tm, wt, qc) > float((off[tm + 1] - off[tm]).sum()):
            m = "exact"
    if al.mask is None or al.mask is False:
        return m
    few = al.n < SEISMIC_EXACT_FRACTION * seg.n_docs
    if m in ("maxscore", "bmp") and al.n < PRUNED_EXACT_FRACTION * seg.n_docs:
        m = "exact"
    if seg.index.forward is None:
        return "exact" if m == "seismic" and few else m
    nq = len(ip) - 1
    estimate = al.n * (seg.index.n_postings / max(seg.n_docs, 1)) * nq * SELECTED_COST
    if estimate >= 2 * seg.index.n_postings:  # over any query's postings: no need to count them
        return "exact" if m == "seismic" and few else m
    off = np.asarray(seg.index.offsets)  # a plain view: fancy indexing a memmap is slow
    postings = int((off[tm + 1] - off[tm]).sum())
    cheaper = estimate < 2 * postings and al.forward_nnz() * nq * SELECTED_COST < postings
    if cheaper:
        return "selected"
    return "exact" if m == "seismic" and few else m


def _one_impact_type(pairs: Sequence[tuple[int, Segment, Allowed]]) -> bool:
    """Whether the segments of ``pairs`` store their impacts in one dtype."""
    return len({p[1].index.postings_impacts.dtype for p in pairs}) == 1


def _read_only(a: np.ndarray) -> np.ndarray:
    """A read-only plain view of ``a``: one typed list holds arrays of one Numba type, and a
    mapped array is read-only."""
    v = np.asarray(a).view(np.ndarray)
    v.flags.writeable = False
    return v


def _writable_mask(a: np.ndarray) -> np.ndarray:
    """A writable plain view of mask ``a`` (a copy where ``a`` is read-only, e.g. mapped from
    disk), for the typed list of masks the kernels over segments take (they never write it).
    Why not read-only, as the postings are: Numba compiled the exact kernel over segments (the one
    that searched each segment on its own) into a slower scan when its masks' list held read-only
    arrays. On 10 segments of the 1M living benchmark with 10% deleted, it took 2.84-2.88 ms per
    query with read-only masks and 2.46-2.56 ms with writable ones (the same bytes). The kernel
    with one accumulator over the segments measured 2.14-2.20 against 2.13-2.16 ms (BENCHMARKS.md,
    session of 2026-12-01, closing)."""
    v = np.asarray(a).view(np.ndarray)
    return v if v.flags.writeable else v.copy()


@dataclass
class Snapshot:
    """One generation, opened: the read side of the living index. Thread-safe; never changes."""

    def __init__(
        self, owner: SegmentedIndex, record: dict[str, Any], segments: list[Segment], vocab: Vocabulary
    ) -> None:
        # weak: the index holds its snapshot, so a strong link back would be a cycle that keeps a
        # dropped writer (and its lock) alive until the garbage collector runs
        self._owner = weakref.ref(owner)
        self.path = owner.path
        self.record = record
        self.generation: int = int(record["generation"])
        self.settings: dict[str, Any] = record["settings"]
        self.fields: dict[str, str] = dict(record.get("fields") or {})
        self.segments = segments
        self.vocab = vocab
        self.n_terms = len(vocab)
        self.quantization: str = self.settings["quantization"]
        self.scale = np.float32(self.settings.get("scale") or 1.0)
        self.methods: tuple[str, ...] = tuple(self.settings["methods"])
        self.encoder_config: dict[str, Any] | None = self.settings.get("encoder")
        self._vocab_maps: dict[int, Any] = {}
        self._by_num = {s.num: s for s in segments}
        self._df: np.ndarray | None = None
        self._retrievers: dict[tuple[int, bool], tuple[Any, Any]] = {}
        self._lock = threading.Lock()
        self._no_filter: list[Allowed] | None = None
        self._filter_cache: dict[str, list[Allowed]] = {}
        self._joint_cache: dict[tuple[str, tuple[int, ...]], tuple] = {}  # BMP over segments: typed lists
        self._joint_masks: dict[tuple, tuple] = {}  # ... and their masks (typed lists cost ~20 us)
        self._slot_pool: list[list[np.ndarray]] = []
        self._acc_pool: list[list[np.ndarray]] = []
        self.adaptive: dict[str, Any] = {}  # FallbackPolicy per method, as an Index keeps

    @property
    def owner(self) -> SegmentedIndex:
        owner = self._owner()
        if owner is None:
            raise LsrError(f"{self.path}: the index this snapshot came from was closed")
        return owner

    # Index's query conversion works unchanged over this snapshot's vocabulary
    _vocab_map = Index._vocab_map
    prepare_queries = Index.prepare_queries

    @property
    def n_live_docs(self) -> int:
        """Live documents over all segments."""
        return sum(s.n_live for s in self.segments)

    n_docs = n_live_docs

    @property
    def has_store(self) -> bool:
        return any(s.index.has_store for s in self.segments)

    def document_frequencies(self) -> np.ndarray:
        """int64[n_terms]: number of live documents holding each term, over all segments."""
        with self._lock:
            if self._df is None:
                df = np.zeros(self.n_terms, np.int64)
                for s in self.segments:
                    d = s.document_frequencies()
                    df[: len(d)] += d
                self._df = df
            return self._df

    # -- documents ---------------------------------------------------------------------------------
    def _segment_of(self, doc: int) -> tuple[Segment, int]:
        num, d = int(doc) >> 32, int(doc) & 0xFFFFFFFF
        owner = self._owner()
        seg = self._by_num.get(num) or (owner._retired.get(num) if owner is not None else None)
        if seg is None or d >= seg.n_docs:
            raise LsrError(f"no document {doc} in this index")
        return seg, d

    def doc_id(self, doc: int) -> str:
        seg, d = self._segment_of(doc)
        return seg.index.doc_id(d)

    def doc_ids(self, docs: np.ndarray) -> list[str]:
        return [self.doc_id(int(d)) for d in np.asarray(docs).tolist()]

    def document(self, doc: int) -> dict[str, Any]:
        """``{"id", "title", "text"}`` (and ``"metadata"`` when it has some) of document handle
        ``doc`` (as in :attr:`SearchResult.docs`: segment number << 32 | doc number)."""
        seg, d = self._segment_of(doc)
        out: dict[str, Any] = seg.index.document(d)
        meta = md.record_of(seg.columns, d)
        if meta:
            out["metadata"] = meta
        return out

    def lookup(self, doc_id: str) -> int | None:
        """Document handle of the live document with external id ``doc_id``, or None."""
        for seg in reversed(self.segments):
            d = int(seg.lookup_many([doc_id])[0])
            if d >= 0 and (seg.live is None or seg.live[d]):
                return (seg.num << 32) | d
        return None

    # -- search ------------------------------------------------------------------------------------
    def check_params(self, method: str, params: Mapping[str, Any]) -> dict[str, Any]:
        if method not in METHOD_PARAMS:
            raise LsrError(f"unknown method {method!r} (available: {', '.join(self.methods)})")
        if method not in self.methods:
            raise LsrError(
                f"this index serves methods {', '.join(self.methods)}, not {method!r} (rebuild it with "
                f"methods including {method!r})"
            )
        return Index.check_params(_AllMethods(), method, params)  # type: ignore[arg-type]

    def load_encoder(self) -> Any:
        return self.owner.load_encoder()

    def encode_queries(self, texts: Sequence[str], encoder: Any = None, force: bool = False) -> SparseBatch:
        """Encode query texts (as :meth:`Index.encode_queries`); inference-free encoders take their
        IDF from the live documents of this generation."""
        # Through a Retriever (the one place text meets an index), kept per encoder for this pinned
        # generation: it checks the encoder and hands it this generation's live statistics without
        # changing the (shared) encoder.
        from lsr.retriever import Retriever

        if encoder is None:  # the recorded encoder: nothing to check it against
            encoder, force = self.owner.load_encoder(), True
        key = (id(encoder), bool(force))
        with self._lock:
            hit = self._retrievers.get(key)
        if hit is None or hit[0] is not encoder:
            hit = (encoder, Retriever(self, encoder, force=force))
            with self._lock:
                self._retrievers[key] = hit
        return hit[1].encode_queries(texts)

    def segment_masks(self, filter: Any = None) -> list[np.ndarray | None | bool]:
        """Per segment: uint8[n_docs] (internal order) of the documents a search may return, None
        for all of them, or False for none."""
        return [a.mask for a in self.allowed(filter)]

    def allowed(self, filter: Any = None) -> list[Allowed]:
        """Per segment, the documents a search may return (:class:`Allowed`): its live documents
        passing ``filter``. Masks are computed on the segments' columns in internal doc order (no
        per-search gather) and kept per filter for this generation (the last
        :data:`FILTER_CACHE_SIZE` filters): a generation never changes, and a service sees the
        same few filters again and again, so a repeated filter costs nothing to evaluate."""
        flt = md.parse_filter(filter, self.fields) if not isinstance(filter, md.Filter) else filter
        if flt is None:
            with self._lock:
                if self._no_filter is None:
                    self._no_filter = [
                        Allowed(seg, False if seg.n_live == 0 else seg.live_mask(), seg.n_live)
                        for seg in self.segments
                    ]
                return self._no_filter
        key = flt.key
        with self._lock:
            hit = self._filter_cache.pop(key, None)
            if hit is not None:
                self._filter_cache[key] = hit  # most recently used last
                return hit
        out: list[Allowed] = []
        for seg in self.segments:
            if seg.n_live == 0:
                out.append(Allowed(seg, False, 0))
                continue
            allowed = flt.mask(seg.internal_columns(), seg.n_docs)
            live = seg.live_mask()
            if live is not None:
                allowed &= live.view(bool)
            n = int(np.count_nonzero(allowed))
            if n == 0:
                out.append(Allowed(seg, False, 0))
            elif n == seg.n_docs:
                out.append(Allowed(seg, None, n))
            else:
                out.append(Allowed(seg, allowed.view(np.uint8), n))
        with self._lock:
            self._filter_cache[key] = out
            while len(self._filter_cache) > FILTER_CACHE_SIZE:
                self._filter_cache.pop(next(iter(self._filter_cache)))
        return out

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
        """Top-``k`` live documents (passing ``filter``) for each query, as :meth:`Index.search`.

        ``docs`` of each result are document handles (segment number << 32 | doc number) that
        :meth:`document` reads. Segments without the method's parts are searched exactly.
        """
        k = check_k(k)
        threads = check_threads(threads)
        params = self.check_params(method, params)
        allowed = self.allowed(filter)
        indptr, terms, weights, unknown = self.prepare_queries(queries, encoder=encoder, force=force)
        docs, scores = self.search_arrays(indptr, terms, weights, k, threads, method, allowed, **params)
        return search_results(self.doc_ids, docs, scores, unknown)

    def search_arrays(
        self,
        indptr: np.ndarray,
        terms: np.ndarray,
        weights: np.ndarray,
        k: int,
        threads: int = 1,
        method: str = "exact",
        masks: Sequence[Allowed | np.ndarray | None | bool] | None = None,
        **params: Any,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per-segment kernels with a shared top-k threshold. Returns (document handles
        int64[nq, k] with -1 padding, scores float32[nq, k]), ordered by (score desc, segment
        order, doc number).

        ``masks``: per segment an :class:`Allowed` (from :meth:`allowed`) or a mask as
        :meth:`segment_masks` gives (None: every live document).

        Segments are searched in decreasing order of their best possible score for the batch
        (the sum over its queries of each query's bound ``sum(w * term_max)`` in that segment); the
        k-th score held so far goes into the next segment's kernel as its starting threshold
        (``init_thr``, with a relative margin of :data:`THRESHOLD_MARGIN` under it, so a document
        that would tie with it still comes through and the merge's tie order stays exact), so
        maxscore and bmp prune from their first posting, and a segment whose bound is under every
        query's k-th score is not searched at all. Deleted and filtered documents are kept out
        inside the kernels by the mask. Per segment, :meth:`_plan` picks how (see there).
        """
        nq = len(indptr) - 1
        if masks is None:
            allowed = self.allowed(None)
        else:
            allowed = [
                m if isinstance(m, Allowed) else Allowed.of(seg, m)
                for seg, m in zip(self.segments, masks, strict=True)
            ]
        out_d = np.full((nq, k), -1, np.int64)
        out_s = np.zeros((nq, k), np.float32)
        if nq == 0:
            return out_d, out_s
        best_s = np.full((nq, k), -np.inf, np.float32)  # the running top-k over the segments so far
        best_d = np.full((nq, k), -1, np.int64)
        best_o = np.full((nq, k), _INT64_MAX, np.int64)
        pairs = [(pos, seg, al) for pos, (seg, al) in enumerate(zip(self.segments, allowed, strict=True))]
        pairs = [p for p in pairs if p[2].mask is not False]
        decided: set[int] = set()
        if method == "maxscore" and JOINT_EXACT and len(pairs) >= 2:
            pairs, decided = self._maxscore_to_exact(
                pairs, indptr, terms, weights, k, threads, best_d, best_s, best_o
            )
        if method == "exact" and JOINT_EXACT:
            group, pairs = self._split(pairs, "exact", 2)
            if group:
                self._search_joint_exact(group, indptr, terms, weights, k, threads, best_d, best_s, best_o)
        if method == "bmp" and JOINT_BMP:
            group, pairs = self._split(pairs, "bmp", 2)
            if group:
                fell = self._search_joint_bmp(
                    group, indptr, terms, weights, k, threads, params, best_d, best_s, best_o
                )
                if len(fell):  # searched exactly (the same results when safe)
                    self._search_rows(
                        fell, group, indptr, terms, weights, k, threads, "exact", {}, best_d, best_s, best_o
                    )
        self._search_each(
            pairs, indptr, terms, weights, k, threads, method, params, best_d, best_s, best_o, decided
        )
        out_d[:] = best_d
        out_s[:] = np.where(best_d >= 0, best_s, 0)
        return out_d, out_s

    def _segment_terms(
        self, seg: Segment, indptr: np.ndarray, terms: np.ndarray, weights: np.ndarray, row: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The batch as segment ``seg`` sees it: (indptr, terms, weights, row of each term) without
        the terms newer than the segment (they match nothing in it)."""
        nq = len(indptr) - 1
        if seg.index.n_terms < self.n_terms and len(terms) and terms.max() >= seg.index.n_terms:
            keep = terms < seg.index.n_terms
            rw = row[keep]
            ip = np.zeros(nq + 1, np.int64)
            np.cumsum(np.bincount(rw, minlength=nq), out=ip[1:])
            return ip, np.ascontiguousarray(terms[keep]), np.ascontiguousarray(weights[keep]), rw
        return indptr, terms, weights, row

    def _search_each(
        self,
        pairs: Sequence[tuple[int, Segment, Allowed]],
        indptr: np.ndarray,
        terms: np.ndarray,
        weights: np.ndarray,
        k: int,
        threads: int,
        method: str,
        params: Mapping[str, Any],
        best_d: np.ndarray,
        best_s: np.ndarray,
        best_o: np.ndarray,
        decided: set[int] | frozenset[int] = frozenset(),
    ) -> None:
        """Search the segments of ``pairs`` ((position, segment, allowed)) one after another, in
        decreasing order of their bound, each from the k-th score held so far (see
        :meth:`search_arrays`), merging each one's top-k into ``best_*`` in place. The segments at
        the positions ``decided`` run the method without asking its fallback policy again (the
        caller asked it: see :meth:`_maxscore_to_exact`)."""
        from lsr.index.kernels import topk as topk_k  # here: `lsr --help` must not import numba

        if not pairs:
            return
        nq = len(indptr) - 1
        row = np.repeat(np.arange(nq), np.diff(indptr))
        work = []
        for pos, seg, al in pairs:
            ip, tm, wt, rw = self._segment_terms(seg, indptr, terms, weights, row)
            tmax = np.asarray(seg.index.term_max)[tm].astype(np.float64)
            ub = np.bincount(rw, weights=tmax * wt, minlength=nq)  # best possible score per query
            work.append((-float(ub.sum()), pos, seg, al, ip, tm, wt, ub))
        work.sort(key=lambda w: (w[0], w[1]))
        for _neg, pos, seg, al, ip, tm, wt, ub in work:
            thr = None
            if nq == 1:  # the common case (one query per call), in Python floats
                kth1 = float(best_s[0, k - 1])
                if kth1 > -np.inf:
                    if float(ub[0]) * (1 + THRESHOLD_MARGIN) < kth1:
                        continue  # no document of this segment can reach the top k
                    raw1 = kth1 / float(seg.index.scale) * (1 - THRESHOLD_MARGIN)
                    thr = np.array([max(raw1, 0.0)], np.float32)
            else:
                kth = best_s[:, k - 1]
                held = np.isfinite(kth)
                if held.all() and bool((ub * (1 + THRESHOLD_MARGIN) < kth).all()):
                    continue  # no document of this segment can reach any query's top k
                if held.any():
                    raw = np.where(held, kth.astype(np.float64), 0.0) / float(seg.index.scale)
                    thr = np.maximum(raw * (1 - THRESHOLD_MARGIN), 0).astype(np.float32)
            p = {**params, "policy_decided": True} if pos in decided else params
            d, s = self._search_segment(seg, al, ip, tm, wt, k, threads, method, thr, p)
            topk_k.merge_runs(best_d, best_s, best_o, d, s, seg.num, pos)

    def _search_rows(
        self,
        rows: np.ndarray,
        pairs: Sequence[tuple[int, Segment, Allowed]],
        indptr: np.ndarray,
        terms: np.ndarray,
        weights: np.ndarray,
        k: int,
        threads: int,
        method: str,
        params: Mapping[str, Any],
        best_d: np.ndarray,
        best_s: np.ndarray,
        best_o: np.ndarray,
    ) -> None:
        """:meth:`_search_each` for the queries ``rows`` of the batch only (exact search: the
        segments that join it in one kernel call, :meth:`_search_joint_exact`, the others one by
        one)."""
        sub = np.concatenate([np.arange(indptr[q], indptr[q + 1]) for q in rows]) if len(rows) else []
        ip = np.zeros(len(rows) + 1, np.int64)
        np.cumsum(indptr[rows + 1] - indptr[rows], out=ip[1:])
        bd, bs, bo = best_d[rows], best_s[rows], best_o[rows]
        tm = np.ascontiguousarray(terms[sub])
        wt = np.ascontiguousarray(weights[sub])
        if method == "exact" and JOINT_EXACT:
            group, pairs = self._split(pairs, "exact", 1)
            if group:
                self._search_joint_exact(group, ip, tm, wt, k, threads, bd, bs, bo)
        self._search_each(pairs, ip, tm, wt, k, threads, method, params, bd, bs, bo)
        best_d[rows], best_s[rows], best_o[rows] = bd, bs, bo

    def _split(
        self, pairs: Sequence[tuple[int, Segment, Allowed]], method: str, least: int
    ) -> tuple[list[tuple[int, Segment, Allowed]], list[tuple[int, Segment, Allowed]]]:
        """(the segments of ``pairs`` that join ``method``'s kernel over segments, the others), or
        ([], all of them) when fewer than ``least`` join or their impacts differ in type (one typed
        list holds one type)."""
        group: list[tuple[int, Segment, Allowed]] = []
        rest: list[tuple[int, Segment, Allowed]] = []
        for p in pairs:
            (group if self._joins(method, p[1], p[2]) else rest).append(p)
        if len(group) < max(least, 1) or not _one_impact_type(group):
            return [], list(pairs)
        return group, rest

    @staticmethod
    def _joins(method: str, seg: Segment, al: Allowed) -> bool:
        """Whether a segment joins ``method`` ("exact" or "bmp") over segments in one kernel: when
        :func:`plan_segment` (and :meth:`_search_segment`) run that method's plain kernel on it for
        any query (BMP: it has the part, and no mask, or one keeping enough documents that exact
        search is not preferred; exact: no mask, or one keeping more than ``GATHER_FRACTION``; both:
        scoring only the allowed documents from the forward index is not cheaper, whatever the
        query) and its weights need no per-term scaling. Query-independent, so it costs no numpy
        per search; a segment left out is searched alone, as :func:`plan_segment` says."""
        got = al.joins.get(method)
        if got is None:
            got = Snapshot._decide_join(method, seg, al)
            al.joins[method] = got
        return got

    @staticmethod
    def _decide_join(method: str, seg: Segment, al: Allowed) -> bool:
        ix = seg.index
        if ix.term_scale is not None or (method == "bmp" and "bmp" not in ix.methods):
            return False
        if al.mask is None:
            return True
        low = PRUNED_EXACT_FRACTION if method == "bmp" else GATHER_FRACTION
        if al.n < low * seg.n_docs or (method == "exact" and al.n <= GATHER_FRACTION * seg.n_docs):
            return False
        # plan_segment's "selected" test needs estimate < 2 x the query's postings <= 2 x all
        return (
            ix.forward is None
            or al.n * (ix.n_postings / max(seg.n_docs, 1)) * SELECTED_COST >= 2 * ix.n_postings
        )

    def _joint_lists(self, group: Sequence[tuple[int, Segment, Allowed]], kind: str = "bmp") -> tuple:
        """The typed lists and per-segment arrays the kernels over several segments take
        (:mod:`lsr.index.kernels.bmp_segments` for ``kind`` "bmp",
        :mod:`lsr.index.kernels.exact_segments` for "exact") for the segments of ``group`` (cached
        per set of segments: a generation never changes), and the masks' list (cached per set of
        masks, as :meth:`allowed` caches a filter's: building a typed list of ten arrays costs
        about 0.2 ms, a tenth to a fifth of a BMP search over 10 segments)."""
        key = tuple(pos for pos, _s, _a in group)
        with self._lock:
            hit = self._joint_cache.get((kind, key))
        if hit is None:
            from numba.typed import List  # here: `lsr --help` must not import numba (and a slow
            # lazy attribute of numba.typed: ~10 us a call, so not on every search)

            segs = [seg for _p, seg, _a in group]
            cols: list[list[np.ndarray]] = []
            for seg in segs:
                ix = seg.index
                if kind == "bmp":
                    bmx, bdm = seg.bmp_maxima()
                    b = ix.bmp
                    arrays = (*ix.postings[:3], ix.doc_order, b[0], b[1], b[2], bmx, b[4], bdm, b[6])
                else:
                    arrays = (*ix.postings[:3], ix.doc_order, ix.term_max)
                if not cols:
                    cols = [[] for _ in arrays]
                for c, a in zip(cols, arrays, strict=True):
                    c.append(_read_only(a))
            lists = tuple(List(c) for c in cols)
            scales = np.array([seg.index.scale for seg in segs], np.float32)
            n_docs = np.array([seg.n_docs for seg in segs], np.int64)
            nums = np.array([seg.num for seg in segs], np.int64)
            if kind == "bmp":
                sizes = np.array([seg.index.bmp_block_size for seg in segs], np.int64)
                base = np.zeros(len(group) + 1, np.int64)
                np.cumsum((n_docs + sizes - 1) // sizes, out=base[1:])
                per_seg: tuple = (scales, sizes, n_docs, base, np.array(key, np.int64), nums)
            else:
                per_seg = (scales, n_docs, np.array(key, np.int64), nums)
            hit = (lists, per_seg)
            with self._lock:
                self._joint_cache[(kind, key)] = hit
        arrays = tuple(_NO_MASK if al.mask is None else al.mask for _p, _s, al in group)
        mkey = (key, tuple(id(a) for a in arrays))
        with self._lock:
            got = self._joint_masks.pop(mkey, None)
        if got is None:
            from numba.typed import List

            # kept with the masks themselves, so an id here cannot be a freed mask's
            got = (arrays, List([_writable_mask(a) for a in arrays]))
        with self._lock:
            self._joint_masks[mkey] = got  # most recently used last
            while len(self._joint_masks) > FILTER_CACHE_SIZE + 1:
                self._joint_masks.pop(next(iter(self._joint_masks)))
        return hit[0], got[1], hit[1]

    def _search_joint_bmp(
        self,
        group: Sequence[tuple[int, Segment, Allowed]],
        indptr: np.ndarray,
        terms: np.ndarray,
        weights: np.ndarray,
        k: int,
        threads: int,
        params: Mapping[str, Any],
        best_d: np.ndarray,
        best_s: np.ndarray,
        best_o: np.ndarray,
    ) -> np.ndarray:
        """BMP over the segments of ``group`` at once (:mod:`lsr.index.kernels.bmp_segments`), into
        the empty ``best_*``; returns the queries (row numbers) to be searched exactly instead: those
        the kernel's work model sent there, or all of them while this generation's recent queries
        kept falling back (:class:`lsr.index.methods.FallbackPolicy`, as for one index)."""
        from lsr.index import methods as registry
        from lsr.index.batch import run_ranges
        from lsr.index.kernels import bmp_segments as kernel
        from lsr.index.methods import bmp as bmp_method

        nq = len(indptr) - 1
        fallback = float(bmp_method.FALLBACK)
        safe = params["alpha"] == 1.0 and params["beta"] == 1.0
        policy = None
        if fallback > 0:
            key = "bmp" if safe else f"bmp:{params['alpha']}:{params['beta']}"
            policy = registry.FallbackPolicy.of(self, key, timed=False)
            if policy.skip(False):
                return np.arange(nq)
        lists, masks, per_seg = self._joint_lists(group, "bmp")
        max_nq = int(indptr[1] - indptr[0]) if nq == 1 else int(np.diff(indptr).max())
        n_chunks = max(1, min(threads, nq))
        total = int(per_seg[3][-1])
        slots = self._take_slots(n_chunks, max(max_nq * total, 1), total)
        fell = np.zeros(nq, np.uint8)
        work = np.zeros((n_chunks, 2), np.int64)  # per thread: BMP's work, exact search's
        args = (*lists, masks, *per_seg, indptr, terms, weights, k, float(params["alpha"]))
        args = (*args, float(params["beta"]), fallback, NO_THRESHOLD)
        try:
            if n_chunks == 1:
                kernel.search_range(*args, *slots[0], 0, nq, best_d, best_s, best_o, fell, work[0])
            else:
                run_ranges(
                    nq,
                    n_chunks,
                    lambda c, lo, hi: kernel.search_range(
                        *args, *slots[c], lo, hi, best_d, best_s, best_o, fell, work[c]
                    ),
                )
        finally:
            with self._lock:
                self._slot_pool.append(slots)
        n_fell = int(np.count_nonzero(fell))
        if policy is not None:
            w = work.sum(axis=0) if n_chunks > 1 else work[0]
            policy.update(n_fell, nq, None, int(w[0]), int(w[1]))
        return np.flatnonzero(fell) if n_fell else _NO_ROWS

    def _maxscore_to_exact(
        self,
        pairs: list[tuple[int, Segment, Allowed]],
        indptr: np.ndarray,
        terms: np.ndarray,
        weights: np.ndarray,
        k: int,
        threads: int,
        best_d: np.ndarray,
        best_s: np.ndarray,
        best_o: np.ndarray,
    ) -> tuple[list[tuple[int, Segment, Allowed]], set[int]]:
        """MaxScore over segments: ask each segment's fallback policy (as its own search would,
        :func:`lsr.index.methods.exact_up_front`) up front; the segments it sends to exact search
        are searched exactly in one kernel call (:mod:`lsr.index.kernels.exact_segments`), not one
        by one: on the 1M synthetic set, where MaxScore falls back on almost every query, 10
        segments cost 1.4-1.6x the merged index that way, slower than exact search over the same
        segments. Returns (the segments left to search, the positions whose policy was asked and
        said to run MaxScore: they must not ask again, or a probe would never run)."""
        from lsr.index import methods as registry
        from lsr.index.methods import maxscore as maxscore_method

        if float(maxscore_method.FALLBACK) <= 0:
            return pairs, set()
        nq = len(indptr) - 1
        to_exact, rest, decided = [], [], set()
        for p in pairs:
            pos, seg, al = p
            if "maxscore" in seg.index.methods and self._joins("exact", seg, al):
                policy = registry.FallbackPolicy.of(seg.index, "maxscore")
                policy.work_skip = SEGMENT_MAXSCORE_WORK_SKIP
                if policy.skip(False):
                    policy.exact_ran(nq, None)
                    to_exact.append(p)
                    continue
                decided.add(pos)
            rest.append(p)
        if to_exact and _one_impact_type(to_exact):
            self._search_joint_exact(to_exact, indptr, terms, weights, k, threads, best_d, best_s, best_o)
        elif to_exact:  # mixed impact types (not made by this index): one by one, exactly
            self._search_each(
                to_exact, indptr, terms, weights, k, threads, "exact", {}, best_d, best_s, best_o
            )
        return rest, decided

    def _search_joint_exact(
        self,
        group: Sequence[tuple[int, Segment, Allowed]],
        indptr: np.ndarray,
        terms: np.ndarray,
        weights: np.ndarray,
        k: int,
        threads: int,
        best_d: np.ndarray,
        best_s: np.ndarray,
        best_o: np.ndarray,
    ) -> None:
        """Exact search over the segments of ``group`` in one kernel call per thread
        (:mod:`lsr.index.kernels.exact_segments`: the per-segment path's results, one accumulator
        over the segments, without the Python around each segment), merged into ``best_*``."""
        from lsr.index.batch import run_ranges
        from lsr.index.kernels import exact_segments as kernel

        nq = len(indptr) - 1
        lists, masks, per_seg = self._joint_lists(group, "exact")
        n_chunks = max(1, min(threads, nq))
        accs = self._take_accs(n_chunks, int(per_seg[1].sum()))  # one accumulator over the segments
        args = (*lists, masks, *per_seg, THRESHOLD_MARGIN, indptr, terms, weights, k)
        try:
            if n_chunks == 1:
                kernel.search_range(*args, accs[0], 0, nq, best_d, best_s, best_o)
            else:
                run_ranges(
                    nq,
                    n_chunks,
                    lambda c, lo, hi: kernel.search_range(*args, accs[c], lo, hi, best_d, best_s, best_o),
                )
        finally:
            with self._lock:
                self._acc_pool.append(accs)
                del self._acc_pool[: max(0, len(self._acc_pool) - SCRATCH_POOL_SIZE)]

    def _take_accs(self, n_chunks: int, n_docs: int) -> list[np.ndarray]:
        """Per thread, a zeroed float32 accumulator of ``n_docs`` for the joint exact kernel (left
        zeroed by it), reused across calls."""
        with self._lock:  # the most recently returned first: the likeliest to be in cache
            for i in range(len(self._acc_pool) - 1, -1, -1):
                accs = self._acc_pool[i]
                if len(accs) >= n_chunks and len(accs[0]) >= n_docs:
                    return self._acc_pool.pop(i)
        return [np.zeros(n_docs, np.float32) for _ in range(n_chunks)]

    def _take_slots(
        self, n_chunks: int, size: int, total: int
    ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Per thread (``n_chunks``), the joint BMP kernel's scratch (slots int32[>= size], bounds
        float32[total], order int64[total]), reused across calls: fresh arrays of several MB would
        cost their page faults on every query. The most recently returned set that fits is taken
        (its arrays are the likeliest to be in cache), and a set too small is dropped for one at
        least as large as any before, so the pool keeps about one set per concurrent search and
        group of segments instead of rotating through sets of every size (a search over 10 segments
        measured the same either way on one thread; the pool stays bounded under many threads and
        filters)."""
        with self._lock:
            for i in range(len(self._slot_pool) - 1, -1, -1):
                slots = self._slot_pool[i]
                if len(slots) >= n_chunks and len(slots[0][0]) >= size and len(slots[0][1]) == total:
                    return self._slot_pool.pop(i)
            biggest = max((len(x[0][0]) for x in self._slot_pool if len(x[0][1]) == total), default=0)
            # sets for this total that are too small go; other groups' sets (other filters) stay
            self._slot_pool = [x for x in self._slot_pool if len(x[0][1]) != total or len(x[0][0]) >= size]
            del self._slot_pool[: max(0, len(self._slot_pool) - SCRATCH_POOL_SIZE)]  # the oldest
        size = max(size, biggest)
        return [
            (np.empty(size, np.int32), np.zeros(total, np.float32), np.empty(total, np.int64))
            for _ in range(n_chunks)
        ]

    def _search_segment(
        self,
        seg: Segment,
        al: Allowed,
        ip: np.ndarray,
        tm: np.ndarray,
        wt: np.ndarray,
        k: int,
        threads: int,
        method: str,
        thr: np.ndarray | None,
        params: Mapping[str, Any],
    ) -> tuple[np.ndarray, np.ndarray]:
        """One segment's top-k (build-order doc numbers, scores), the way :func:`plan_segment`
        says is cheapest for this mask and these queries."""
        kk = min(k, seg.n_docs)
        how = plan_segment(seg, al, ip, tm, method, wt, params)
        if how == "selected":
            from lsr.index.kernels import exact

            qw = np.zeros(seg.index.n_terms, np.float32)
            fptr, fterms, fimp = seg.index.forward
            return exact.search_selected(
                fptr, fterms, fimp, seg.index.scale, seg.index.doc_order, al.selected(), ip, tm, wt, kk, qw,
                NO_THRESHOLD if thr is None else thr,
            )  # fmt: skip
        p = dict(params) if how == method else {}
        if thr is not None and how in THRESHOLD_METHODS:
            p["init_thr"] = thr
        if how == "exact" and al.mask is not None and al.n <= GATHER_FRACTION * seg.n_docs:
            p["selected"] = al.selected()
        d, s = seg.index.search_arrays(ip, tm, wt, kk, threads, how, mask=al.mask, **p)
        if how == "seismic" and al.mask is not None:
            # Seismic's pruned lists may hold only masked documents: a query short of k hits
            # is answered exactly on this segment, so k live documents come back when k exist
            # (not when other segments already hold k: a starting threshold may leave it short)
            short = (d >= 0).sum(axis=1) < d.shape[1]
            if thr is not None:
                short &= thr == 0
            short = np.flatnonzero(short)
            if len(short):
                sub = np.concatenate([np.arange(ip[q], ip[q + 1]) for q in short])
                sip = np.zeros(len(short) + 1, np.int64)
                np.cumsum(ip[short + 1] - ip[short], out=sip[1:])
                d2, s2 = seg.index.search_arrays(sip, tm[sub], wt[sub], kk, threads, "exact", mask=al.mask)
                d[short], s[short] = d2, s2
        return d, s

    def info(self) -> list[dict[str, Any]]:
        """Per segment: name, docs, deleted, live, parts (methods it has kernels for)."""
        return [
            {
                "name": s.name,
                "docs": s.n_docs,
                "deleted": s.n_docs - s.n_live,
                "live": s.n_live,
                "parts": [m for m in s.index.methods if m != "exact"],
            }
            for s in self.segments
        ]


class _AllMethods:
    """Lets Index.check_params validate parameters for any method (the snapshot checks the method)."""

    methods = tuple(METHOD_PARAMS)


# -- merge policy ---------------------------------------------------------------------------------
def plan_merges(
    live: Sequence[int],
    total: Sequence[int],
    factor: int = DEFAULT_MERGE_FACTOR,
    min_docs: int = DEFAULT_MERGE_MIN_DOCS,
    max_segments: int | None = None,
) -> list[tuple[int, int]]:
    """Which runs of adjacent segments to merge: a list of [start, end) ranges, disjoint.

    The policy is log-structured by size over *adjacent* segments (Lucene's LogMergePolicy; only
    neighbours merge, so documents keep the order they were added in): a segment's level is
    ``0`` under ``min_docs`` live documents, else ``1 + floor(log_factor(live / min_docs))``; a run
    of ``factor`` adjacent segments of one level merges into one of the next level. A segment
    with more than half its documents deleted is rewritten alone. With ``max_segments``
    (force-merge) the segments are cut into at most that many runs of balanced size, and every
    run of more than one segment, or holding deleted documents, is merged.
    """
    n = len(live)
    if max_segments is not None:
        if max_segments < 1:
            raise LsrError(f"max_segments must be >= 1, got {max_segments}")
        groups: list[tuple[int, int]] = []
        if n <= max_segments:
            groups = [(i, i + 1) for i in range(n)]
        else:
            tot = sum(live)
            start, acc, cut = 0, 0, 1
            for i in range(n):
                acc += live[i]
                remaining_groups = max_segments - len(groups) - 1
                if remaining_groups > 0 and (
                    acc >= tot * cut / max_segments or n - i - 1 == remaining_groups
                ):
                    groups.append((start, i + 1))
                    start, cut = i + 1, cut + 1
            groups.append((start, n))
        return [(a, b) for a, b in groups if b - a > 1 or any(live[i] < total[i] for i in range(a, b))]
    merges: list[tuple[int, int]] = []

    def level(c: int) -> int:
        return 0 if c < min_docs else 1 + int(np.floor(np.log(c / min_docs) / np.log(factor) + 1e-9))

    i = 0
    while i < n:
        if total[i] and live[i] < total[i] * (1 - EXPUNGE_DELETED_FRACTION):
            merges.append((i, i + 1))
            i += 1
            continue
        lv = level(live[i])
        j = i
        while (
            j < n
            and j - i < factor
            and level(live[j]) == lv
            and not (total[j] and live[j] < total[j] * (1 - EXPUNGE_DELETED_FRACTION))
        ):
            j += 1
        if j - i >= factor:
            merges.append((i, j))
            i = j
        else:
            i += 1
    return merges


# -- the index ------------------------------------------------------------------------------------
def _base_settings(manifest: Mapping[str, Any]) -> dict[str, Any]:
    parts = manifest.get("parts") or {}
    methods = list(parts.get("methods") or ["exact"])
    return {
        "quantization": manifest["quantization"]["dtype"],
        "scale": float(manifest["quantization"]["scale"]),
        "encoder": manifest.get("encoder"),
        "vocabulary": "fixed" if manifest.get("encoder") else "grow",
        "methods": methods,
        "bmp": {k: v for k, v in (parts.get("bmp") or {}).items() if k in DEFAULT_BMP} or None,
        "seismic": {k: v for k, v in (parts.get("seismic") or {}).items() if k in DEFAULT_SEISMIC} or None,
        "reorder_params": {k: v for k, v in (parts.get("reorder") or {}).items() if k in DEFAULT_REORDER}
        or None,
        "parts_min_docs": DEFAULT_PARTS_MIN_DOCS,
        "merge_factor": DEFAULT_MERGE_FACTOR,
        "merge_min_docs": DEFAULT_MERGE_MIN_DOCS,
    }


def _gen0_record(index_dir: str) -> dict[str, Any]:
    m = fmt.read_manifest(index_dir)
    return {
        "format": GENERATION_FORMAT,
        "format_version": GENERATION_VERSION,
        "generation": 0,
        "settings": _base_settings(m),
        "vocab": None,
        "fields": {},
        "next_segment": 1,
        "segments": [{"name": BASE, "n_docs": int(m["n_docs"]), "deleted": 0, "live": None}],
    }


def _read_record(index_dir: str, gen: int) -> dict[str, Any]:
    path = generation_path(index_dir, gen)
    with open(path, encoding="utf-8") as f:
        try:
            rec = json.load(f)
        except json.JSONDecodeError as e:
            raise LsrError(f"{path}: unreadable generation file ({e})") from None
    if not isinstance(rec, dict) or rec.get("format") != GENERATION_FORMAT:
        raise LsrError(f"{path}: not an lsr generation file")
    if rec.get("format_version") != GENERATION_VERSION:
        raise LsrError(
            f"{path}: generation format {rec.get('format_version')}, this lsr reads {GENERATION_VERSION}"
        )
    return rec


class SegmentedIndex:
    """A living index: searchable like :class:`Index` (over its newest committed generation), and,
    when opened with ``writable=True``, changed by :meth:`add`, :meth:`delete`, :meth:`commit` and
    :meth:`merge`. Searches never wait for writers: they run on the snapshot current when they
    start. One writer per directory (a ``flock`` on ``write.lock``); any number of readers."""

    def __init__(self, path: str | os.PathLike, writable: bool = False, **options: Any) -> None:
        self.path = os.path.abspath(os.fspath(path))
        self.writable = writable
        self._segments_cache: dict[str, Segment] = {}
        self._retired: dict[int, Segment] = {}
        self._encoder = None
        self._encoder_lock = threading.Lock()
        self._wlock = threading.RLock()
        self._lock_fd: int | None = None
        bad = sorted(set(options) - {"parts_min_docs", "merge_factor", "merge_min_docs"})
        if bad:
            raise LsrError(f"unknown living-index option(s) {', '.join(bad)}")
        for key, val in options.items():
            if isinstance(val, bool) or not isinstance(val, int) or val < (2 if key == "merge_factor" else 1):
                raise LsrError(f"{key} must be a positive integer (merge_factor >= 2), got {val!r}")
        self._options = options
        if writable:
            if not os.path.isdir(self.path):
                fmt.read_manifest(self.path)  # the clear "no such index" error
            self._lock_fd = os.open(os.path.join(self.path, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(self._lock_fd)
                self._lock_fd = None
                raise LsrError(f"{self.path}: another writer holds {LOCK_FILE}") from None
        self._snap = self._open_latest()
        if writable:
            self._reset_pending()
            self._cleanup()

    # -- opening -----------------------------------------------------------------------------------
    def _open_latest(self) -> Snapshot:
        last_err: Exception | None = None
        for _attempt in range(20):
            gens = list_generations(self.path)
            try:
                rec = _read_record(self.path, gens[-1]) if gens else _gen0_record(self.path)
                return self._open_record(rec)
            except FileNotFoundError as e:  # a writer cleaned up under us: the newer generation is there
                last_err = e
                time.sleep(0.01)
            except LsrError as e:
                # a segment vanished while it was being opened: only a newer generation explains it
                if list_generations(self.path)[-1:] == gens[-1:]:
                    raise
                last_err = e
        raise LsrError(f"{self.path}: cannot open a consistent generation ({last_err})")

    def _open_record(self, rec: dict[str, Any]) -> Snapshot:
        segs = []
        for entry in rec["segments"]:
            cached = self._segments_cache.get(entry["name"])
            if cached is not None and cached.live_file == entry.get("live"):
                segs.append(cached)
            elif cached is not None:
                segs.append(cached.with_live(self.path, entry.get("live"), entry.get("live_crc32")))
            else:
                seg_dir = (
                    self.path
                    if entry["name"] == BASE
                    else os.path.join(self.path, SEGMENTS_DIR, entry["name"])
                )
                if not os.path.isdir(seg_dir):
                    raise FileNotFoundError(seg_dir)
                segs.append(Segment(self.path, entry))
            if segs[-1].n_docs != int(entry["n_docs"]):
                raise LsrError(
                    f"{self.path}: segment {entry['name']} does not match generation {rec['generation']}"
                )
        if rec.get("vocab"):
            with open(os.path.join(self.path, rec["vocab"]), encoding="utf-8") as f:
                vocab = Vocabulary(json.load(f))
        else:
            base = next((s for s in segs if s.name == BASE), None)
            if base is None:
                raise LsrError(f"{self.path}: generation {rec['generation']} names no vocabulary")
            vocab = base.index.vocab
        for s in segs:
            n = s.index.n_terms
            if n > len(vocab) or (
                s.index.vocab is not vocab and s.index.vocab.tokens[-1:] != vocab.tokens[n - 1 : n]
            ):
                raise LsrError(f"{self.path}: segment {s.name}'s vocabulary is not a prefix of the index's")
        settings = dict(rec["settings"])
        settings.update(self._options)
        rec = {**rec, "settings": settings}
        old = getattr(self, "_snap", None)
        if old is not None:
            live_names = {s.name for s in segs}
            for s in old.segments:
                if s.name not in live_names:
                    self._retired[s.num] = s
                    # kept for its documents only: its BMP bounds go (a snapshot still searching it
                    # holds them in its own cache, or computes them again)
                    s._bmp_live = s._bmp_prev = None
            while len(self._retired) > 64:
                self._retired.pop(next(iter(self._retired)))
        self._segments_cache = {s.name: s for s in segs}
        return Snapshot(self, rec, segs, vocab)

    def refresh(self) -> int:
        """Readers: move to the newest committed generation (a writer's commits show at once)."""
        if not self.writable:
            self._snap = self._open_latest()
        return self.generation

    def snapshot(self) -> Snapshot:
        """The current generation, pinned: searches and document reads on it stay consistent."""
        return self._snap

    def close(self) -> None:
        """Release the write lock (pending changes are dropped)."""
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None
        self.writable = False

    def __enter__(self) -> SegmentedIndex:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        s = self._snap
        return (
            f"SegmentedIndex({self.path!r}, generation={s.generation}, segments={len(s.segments)}, "
            f"live_docs={s.n_live_docs}, writable={self.writable})"
        )

    # -- read API (the current snapshot) -----------------------------------------------------------
    @property
    def generation(self) -> int:
        return self._snap.generation

    @property
    def segments(self) -> list[dict[str, Any]]:
        """Per segment of the current generation: name, docs, deleted, live, parts."""
        return self._snap.info()

    @property
    def n_live_docs(self) -> int:
        return self._snap.n_live_docs

    @property
    def n_docs(self) -> int:
        """Live documents (what a search can return)."""
        return self._snap.n_live_docs

    @property
    def n_terms(self) -> int:
        return self._snap.n_terms

    @property
    def n_postings(self) -> int:
        """Postings of the live documents."""
        return int(self._snap.document_frequencies().sum())

    @property
    def vocab(self) -> Vocabulary:
        return self._snap.vocab

    @property
    def methods(self) -> tuple[str, ...]:
        return self._snap.methods

    @property
    def quantization(self) -> str:
        return self._snap.quantization

    @property
    def scale(self) -> np.float32:
        return self._snap.scale

    @property
    def fields(self) -> dict[str, str]:
        """Metadata field -> type (keyword | number)."""
        return dict(self._snap.fields)

    @property
    def encoder_config(self) -> dict[str, Any] | None:
        return self._snap.encoder_config

    @property
    def manifest(self) -> dict[str, Any]:
        """The manifest-like record of the current generation (settings, counts)."""
        s = self._snap
        return {
            "format": GENERATION_FORMAT,
            "generation": s.generation,
            "n_docs": s.n_live_docs,
            "n_terms": s.n_terms,
            "quantization": {"dtype": s.quantization, "scale": float(s.scale)},
            "encoder": s.encoder_config,
            "settings": s.settings,
            "fields": s.fields,
        }

    @property
    def has_store(self) -> bool:
        return self._snap.has_store

    @property
    def pending_merges(self) -> int:
        """Merges the policy would run now (0 when the index is in shape)."""
        return len(self._plan(None, self._snap))

    def document_frequencies(self) -> np.ndarray:
        """int64[n_terms]: live documents holding each term, over all segments (what IDF and BM25
        need; right after every commit, deletions included)."""
        return self._snap.document_frequencies()

    def search(self, queries: Any, k: int = 10, method: str = "exact", **kw: Any) -> list[SearchResult]:
        """See :meth:`Snapshot.search`; ``filter=`` restricts to documents whose metadata match."""
        return self._snap.search(queries, k=k, method=method, **kw)

    def document(self, doc: int) -> dict[str, Any]:
        return self._snap.document(doc)

    def doc_id(self, doc: int) -> str:
        return self._snap.doc_id(doc)

    def doc_ids(self, docs: np.ndarray) -> list[str]:
        return self._snap.doc_ids(docs)

    def lookup(self, doc_id: str) -> int | None:
        return self._snap.lookup(doc_id)

    def encode_queries(self, texts: Sequence[str], encoder: Any = None, force: bool = False) -> SparseBatch:
        return self._snap.encode_queries(texts, encoder=encoder, force=force)

    def check_params(self, method: str, params: Mapping[str, Any]) -> dict[str, Any]:
        return self._snap.check_params(method, params)

    def prepare_queries(self, queries: Any, encoder: Any = None, force: bool = False) -> Any:
        return self._snap.prepare_queries(queries, encoder=encoder, force=force)

    def load_encoder(self) -> Any:
        """The encoder the index records (loaded once)."""
        with self._encoder_lock:
            if self._encoder is None:
                from lsr.retriever import Retriever  # text meets the index only there

                self._encoder = Retriever(self).encoder
            return self._encoder

    def check_encoder(self, encoder: Any, force: bool = False) -> None:
        from lsr.retriever import check_encoder

        check_encoder(self._snap.encoder_config, encoder, force)

    def warmup(self, methods: Sequence[str] | None = None) -> None:
        """Compile the kernels of ``methods`` on every segment, masked and not."""
        for seg in self._snap.segments:
            seg.index.warmup([m for m in (methods or self.methods) if m in seg.index.methods])
            t = np.array([int(np.argmax(np.diff(seg.index.offsets)))], np.int32)
            for m in methods or self.methods:
                if m in seg.index.methods:
                    p = {**seg.index.check_params(m, {}), "policy_decided": True}  # as Index.warmup
                    with seg.index.policies_kept():
                        seg.index.search_arrays(
                            np.array([0, 1], np.int64), t, np.ones(1, np.float32), 10, 1, m,
                            mask=np.ones(seg.n_docs, np.uint8), **p,
                        )  # fmt: skip
            if seg.index.forward is not None:  # filtered searches score selected documents
                from lsr.index.kernels import exact

                exact.search_selected(
                    *seg.index.forward, seg.index.scale, seg.index.doc_order, np.zeros(1, np.int64),
                    np.array([0, 1], np.int64), t, np.ones(1, np.float32), 10,
                    np.zeros(seg.index.n_terms, np.float32), NO_THRESHOLD,
                )  # fmt: skip
        # the kernels over several segments at once (when two or more segments would join them)
        snap = self._snap
        seg0 = snap.segments[0]
        t = np.array([int(np.argmax(np.diff(seg0.index.offsets)))], np.int32)
        for m in ("exact", "bmp"):
            if m in (methods or self.methods) and m in self.methods:
                p = snap.check_params(m, {})
                snap.search_arrays(np.array([0, 1], np.int64), t, np.ones(1, np.float32), 10, 1, m, **p)
        with_bmp = [s for s in snap.segments if "bmp" in s.index.methods]
        if with_bmp and "bmp" in (methods or self.methods):  # live-document bounds (Segment.bmp_maxima)
            from lsr.index.kernels import bmp as bmp_k

            seg = min(with_bmp, key=lambda s: s.index.n_postings)  # the kernel reads every posting
            ix = seg.index
            bo, blk, st, _mx, drow, dmax, dst = ix.bmp
            bs = ix.bmp_block_size
            nb = (seg.n_docs + bs - 1) // bs
            live = np.ones(seg.n_docs, np.uint8)
            mx, dm = bmp_k.live_block_maxima(
                ix.offsets, *ix.postings[1:3], bs, nb, bo, blk, st, drow, dmax, live
            )
            if ix.forward is not None:
                bmp_k.update_live_maxima(
                    ix.offsets, *ix.postings[1:3], bs, nb, bo, blk, st, drow, dst, *ix.forward[:2],
                    np.zeros(0, np.int64), live, mx, dm,
                )  # fmt: skip

    def size_bytes(self) -> int:
        total = 0
        for root, _d, files in os.walk(self.path):
            total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
        return total

    # -- writing -----------------------------------------------------------------------------------
    def _need_writer(self) -> None:
        if not self.writable:
            raise LsrError(f"{self.path}: opened read-only; open_index(path, writable=True) to change it")

    def _reset_pending(self) -> None:
        self._add_rows: list[tuple[SparseBatch, list[tuple[str, str]] | None, md.Columns]] = []
        self._add_ids: dict[str, tuple[int, int]] = {}
        self._superseded: set[tuple[int, int]] = set()
        self._del: dict[str, np.ndarray] = {}  # segment name -> bool[n_docs] pending deletions
        self._pending_vocab = Vocabulary(self._snap.vocab.tokens)
        self._pending_fields = dict(self._snap.fields)
        self._pending_count = 0

    @property
    def write_lock(self) -> threading.RLock:
        """Held by every write: hold it to make several calls (add + commit) one unit."""
        return self._wlock

    @property
    def pending(self) -> int:
        """Adds and deletes not yet committed."""
        return self._pending_count if self.writable else 0

    def _to_batch(
        self, batch_or_dicts: Any, ids: Sequence[str] | None, documents: Sequence[Any] | None
    ) -> tuple[SparseBatch, list[str], list[tuple[str, str]] | None, Vocabulary]:
        """Validate an add and bring it onto the index vocabulary; nothing is changed here."""
        fixed = self._snap.settings.get("vocabulary") == "fixed"
        # a vocabulary that may grow is copied, so that a refused batch leaves no new token behind
        vocab = self._pending_vocab if fixed else Vocabulary(self._pending_vocab.tokens)
        if isinstance(batch_or_dicts, SparseBatch):
            b = batch_or_dicts
            if ids is None:
                ids = b.ids
            get = vocab.get
            tokens = b.vocab.tokens
            used = np.unique(b.indices) if b.nnz else np.zeros(0, np.int64)
            if len(used) and used.max() >= len(tokens):
                raise LsrError("vector term id outside its vocabulary")
            mapping = np.full(len(tokens), -1, np.int64)
            for t in used.tolist():
                mapping[t] = get(tokens[t])
            missing = [tokens[t] for t in used.tolist() if mapping[t] < 0]
            if missing and fixed:
                raise LsrError(
                    f"{len(missing)} term(s) of the vectors are not in the index vocabulary (first: "
                    f"{missing[0]!r}): vectors over another vocabulary (the index's is fixed by its encoder)"
                )
            for t in used.tolist():
                if mapping[t] < 0:
                    mapping[t] = vocab.add(tokens[t])
            indices = mapping[b.indices].astype(np.int32) if b.nnz else b.indices
            docs = list(documents) if documents is not None else b.documents
            b = SparseBatch(b.indptr, indices, b.data, vocab)
        elif isinstance(batch_or_dicts, Sequence) and not isinstance(batch_or_dicts, (str, bytes)):
            if any(not isinstance(v, Mapping) for v in batch_or_dicts):
                raise LsrError("add() takes a SparseBatch or a list of {token: weight} dicts")
            try:
                b = SparseBatch.from_dicts(batch_or_dicts, vocab, unknown="error" if fixed else "add")
            except LsrError as e:
                raise LsrError(
                    f"{e}: vectors over another vocabulary (the index's is fixed by its encoder)"
                    if fixed
                    else str(e)
                ) from None
            docs = list(documents) if documents is not None else None
        else:
            raise LsrError("add() takes a SparseBatch or a list of {token: weight} dicts")
        if ids is None:
            raise LsrError("add() needs ids=: one external id per document")
        ids = [str(i) if isinstance(i, (int, np.integer)) and not isinstance(i, bool) else i for i in ids]
        if len(ids) != len(b):
            raise LsrError(f"{len(ids)} ids for {len(b)} documents")
        seen: set[str] = set()
        for i in ids:
            if not isinstance(i, str) or not i or "\x00" in i:
                raise LsrError(f"invalid document id {i!r} (ids are non-empty strings without NUL)")
            if i in seen:
                raise LsrError(f"duplicate document id {i!r} in one add: ids must be unique within a batch")
            seen.add(i)
        if b.nnz and (not np.all(np.isfinite(b.data)) or b.data.min() < 0):
            raise LsrError("document weights must be finite and >= 0")
        if docs is not None:
            if len(docs) != len(b):
                raise LsrError(f"{len(docs)} documents (title, text) for {len(b)} vectors")
            docs = [(str(t or ""), str(x or "")) for t, x in docs]
        b.ids = list(ids)
        return b, list(ids), docs, vocab

    def add(
        self,
        batch_or_dicts: Any,
        ids: Sequence[str] | None = None,
        metadata: Sequence[Mapping[str, Any] | None] | None = None,
        documents: Sequence[tuple[str, str]] | None = None,
    ) -> int:
        """Add documents (a :class:`SparseBatch` or a list of ``{token: weight}`` dicts) under
        external ``ids`` (default: the batch's ids), with optional ``metadata`` objects and
        ``documents`` ((title, text) pairs for the store). An id that exists is replaced (update =
        delete + add). Visible to searches, and durable, after :meth:`commit`. Checks everything
        first: a bad batch raises :class:`LsrError` and changes nothing. Returns the count added."""
        self._need_writer()
        with self._wlock:
            b, ids, docs, vocab = self._to_batch(batch_or_dicts, ids, documents)
            if metadata is not None and len(metadata) != len(ids):
                raise LsrError(f"{len(metadata)} metadata objects for {len(ids)} documents")
            cols, fields = md.columns_from_records(
                list(metadata) if metadata is not None else [None] * len(ids), self._pending_fields, ids
            )
            # all checked: apply
            self._pending_vocab = vocab
            self._pending_fields = fields
            self._delete_ids(ids)
            bi = len(self._add_rows)
            self._add_rows.append((b, docs, cols))
            for r, i in enumerate(ids):
                self._add_ids[i] = (bi, r)
            self._pending_count += len(ids)
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
        """Encode ``texts`` (``title + " " + text`` when titles are given) with ``encoder`` (checked
        against the recorded one) or the recorded encoder, and :meth:`add` them, text kept in the
        store. Returns the count added."""
        self._need_writer()
        with self._wlock:
            batch, documents = encode_texts(
                self, texts, ids, titles, encoder, batch_size, self._pending_vocab
            )
            return self.add(batch, ids=list(ids), metadata=metadata, documents=documents)

    def _delete_ids(self, ids: Sequence[str]) -> int:
        """Mark the live copies of ``ids`` deleted (pending adds included); returns how many."""
        found = 0
        for i in ids:
            hit = self._add_ids.pop(i, None)
            if hit is not None:
                self._superseded.add(hit)
                found += 1
        for seg in self._snap.segments:
            if seg.n_live == 0:
                continue
            docs = seg.lookup_many(ids)
            docs = docs[docs >= 0]
            if not len(docs):
                continue
            if seg.live is not None:
                docs = docs[seg.live[docs]]
            pend = self._del.get(seg.name)
            if pend is not None:
                docs = docs[~pend[docs]]
            if len(docs):
                if pend is None:
                    pend = self._del[seg.name] = np.zeros(seg.n_docs, bool)
                pend[docs] = True
                found += len(docs)
        return found

    def delete(self, ids: Sequence[str] | str) -> dict[str, int]:
        """Delete documents by external id (after :meth:`commit` they are gone from searches and
        statistics). An id the index does not hold is counted in ``not_found``, not an error.
        Returns ``{"deleted", "not_found"}``."""
        self._need_writer()
        if isinstance(ids, str):
            ids = [ids]
        ids = list(dict.fromkeys(ids))
        for i in ids:
            if not isinstance(i, str) or not i:
                raise LsrError(f"invalid document id {i!r}")
        with self._wlock:
            found = self._delete_ids(ids)
            self._pending_count += found
            return {"deleted": found, "not_found": len(ids) - found}

    def rollback(self) -> None:
        """Drop every change since the last commit."""
        self._need_writer()
        with self._wlock:
            self._reset_pending()

    def commit(self) -> int:
        """Make every add and delete so far durable and visible; returns the new generation (the
        same one when nothing changed). On an error nothing is published and the changes stay
        pending."""
        self._need_writer()
        with self._wlock:
            if (
                not self._add_rows
                and not self._del
                and self._pending_vocab.tokens == self._snap.vocab.tokens
                and self._pending_fields == self._snap.fields
            ):
                # nothing to publish (a sharded writer may grow a shard's vocabulary or metadata
                # fields alone, to keep every shard on the global ones: that is published)
                return self.generation
            snap = self._snap
            gen = snap.generation + 1
            next_seg = int(snap.record.get("next_segment", 1))
            settings = dict(snap.settings)
            created: list[str] = []
            try:
                entries = []
                for seg in snap.segments:
                    pend = self._del.get(seg.name)
                    if pend is None:
                        entries.append(seg.entry())
                        continue
                    live = (seg.live.copy() if seg.live is not None else np.ones(seg.n_docs, bool)) & ~pend
                    entries.append(self._bitmap_entry(seg, live, gen, created))
                batch, docs, cols = self._pending_batch()
                if batch is not None and len(batch):
                    if settings.get("scale") is None and settings["quantization"] != "float32":
                        from lsr.index.builder import quantization_scale

                        settings["scale"] = quantization_scale(
                            float(batch.data.max(initial=0)), settings["quantization"]
                        )
                    name = f"seg-{next_seg:06d}"
                    next_seg += 1
                    self._write_segment(name, [batch], docs, cols, settings, created)
                    entries.append({"name": name, "n_docs": len(batch), "deleted": 0, "live": None})
                self._publish(snap, gen, entries, settings, next_seg, created)
            except BaseException:
                self._remove(created)
                raise
            self._snap = self._open_record(_read_record(self.path, gen))
            self._reset_pending()
            self._cleanup()
            return gen

    def _pending_batch(self) -> tuple[SparseBatch | None, list[tuple[str, str]] | None, md.Columns]:
        parts, docs_all, col_parts = [], [], []
        any_docs = False
        for bi, (b, docs, cols) in enumerate(self._add_rows):
            rows = [r for r in range(len(b)) if (bi, r) not in self._superseded]
            if not rows:
                continue
            sel = b if len(rows) == len(b) else b.select(rows)
            sel.ids = [b.ids[r] for r in rows]  # type: ignore[index]
            sel.vocab = self._pending_vocab
            parts.append(sel)
            if docs is not None:
                any_docs = True
                docs_all += [docs[r] for r in rows]
            else:
                docs_all += [("", "")] * len(rows)
            col_parts.append((md.take_columns(cols, np.asarray(rows, np.int64)), len(rows)))
        if not parts:
            return None, None, {}
        from lsr.vectors import concat_batches

        batch = concat_batches(parts) if len(parts) > 1 else parts[0]
        batch.ids = [i for p in parts for i in p.ids]  # type: ignore[union-attr]
        batch.vocab = self._pending_vocab
        return batch, docs_all if any_docs else None, md.concat_columns(col_parts)

    def _bitmap_entry(self, seg: Segment, live: np.ndarray, gen: int, created: list[str]) -> dict[str, Any]:
        os.makedirs(os.path.join(self.path, LIVE_DIR), exist_ok=True)
        tag = "base" if seg.name == BASE else seg.name
        rel = os.path.join(LIVE_DIR, f"{tag}.g{gen}.npy")
        created.append(os.path.join(self.path, rel))
        crc = write_bitmap(os.path.join(self.path, rel), live)
        return {**seg.entry(), "deleted": int(seg.n_docs - live.sum()), "live": rel, "live_crc32": crc}

    def _write_segment(
        self,
        name: str,
        chunks: list[SparseBatch],
        docs: list[tuple[str, str]] | None,
        cols: md.Columns,
        settings: dict[str, Any],
        created: list[str],
    ) -> None:
        """Build one segment directory (today's format + metadata columns), fsynced."""
        from lsr.index.builder import build_index

        seg_root = os.path.join(self.path, SEGMENTS_DIR)
        os.makedirs(seg_root, exist_ok=True)
        out = os.path.join(seg_root, name)
        created.append(out)
        n = sum(len(c) for c in chunks)
        big = n >= int(settings.get("parts_min_docs") or DEFAULT_PARTS_MIN_DOCS)
        if docs is not None:
            at = 0
            for c in chunks:
                c.documents = docs[at : at + len(c)]
                at += len(c)
        build_index(
            iter(chunks),
            out,
            quantization=settings["quantization"],
            vocab=self._pending_vocab,
            methods=settings["methods"] if big else ["exact"],
            reorder=None if big else False,
            bmp=settings.get("bmp"),
            seismic=settings.get("seismic"),
            reorder_params=settings.get("reorder_params"),
            scale=settings.get("scale"),
        )
        if settings.get("encoder"):
            # record the encoder in the segment too (its manifest is today's format)
            m = fmt.read_manifest(out)
            m["encoder"] = settings["encoder"]
            fmt.write_manifest(out, m)
        if cols:
            md.write_columns(out, cols)
        fsync_tree(out)
        fsync_dir(seg_root)

    def _publish(
        self,
        snap: Snapshot,
        gen: int,
        entries: list[dict[str, Any]],
        settings: dict[str, Any],
        next_seg: int,
        created: list[str],
    ) -> None:
        vocab_file = snap.record.get("vocab")
        base_vocab_len = next((s.index.n_terms for s in snap.segments if s.name == BASE), None)
        if (
            self._pending_vocab.tokens != snap.vocab.tokens
            or (vocab_file is None and not any(e["name"] == BASE for e in entries))
            or (vocab_file is None and base_vocab_len is None)
        ):
            vocab_file = f"vocab-{gen}.json"
            path = os.path.join(self.path, vocab_file)
            created.append(path)
            write_durable(path, json.dumps(self._pending_vocab.tokens, ensure_ascii=False).encode("utf-8"))
        record = {
            "format": GENERATION_FORMAT,
            "format_version": GENERATION_VERSION,
            "generation": gen,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "settings": settings,
            "vocab": vocab_file,
            "n_terms": len(self._pending_vocab),
            "fields": self._pending_fields,
            "next_segment": next_seg,
            "segments": entries,
        }
        path = generation_path(self.path, gen)
        created.append(path)
        write_durable(path, json.dumps(record, ensure_ascii=False, indent=1).encode("utf-8"))

    def _remove(self, paths: list[str]) -> None:
        for p in paths:
            if os.path.isdir(p):
                shutil.rmtree(p, ignore_errors=True)
            else:
                try:
                    os.remove(p)
                except FileNotFoundError:
                    pass

    def _cleanup(self) -> None:
        """Delete what neither the newest generation nor the one before it references: files of
        crashed commits and merges, and segments merged away (readers that opened them keep their
        mappings: unlinking never changes a mapped file)."""
        gens = list_generations(self.path)
        keep_gens = gens[-2:]
        referenced: set[str] = set()
        base_used = len(keep_gens) < 2  # generation 0 (the plain index) is the one before the first
        for g in keep_gens:
            try:
                rec = _read_record(self.path, g)
            except (LsrError, OSError):
                return  # never delete on a doubt
            if rec.get("vocab"):
                referenced.add(rec["vocab"])
            for e in rec["segments"]:
                if e["name"] == BASE:
                    base_used = True
                else:
                    referenced.add(os.path.join(SEGMENTS_DIR, e["name"]))
                if e.get("live"):
                    referenced.add(e["live"])
        for g in gens[:-2]:
            self._remove([generation_path(self.path, g)])
        for name in os.listdir(self.path):
            if ".tmp-" in name:
                self._remove([os.path.join(self.path, name)])
            elif name.startswith("vocab-") and name not in referenced:
                self._remove([os.path.join(self.path, name)])
        for sub in (SEGMENTS_DIR, LIVE_DIR):
            d = os.path.join(self.path, sub)
            if not os.path.isdir(d):
                continue
            for name in os.listdir(d):
                if os.path.join(sub, name) not in referenced:
                    self._remove([os.path.join(d, name)])
        if not base_used and os.path.isfile(os.path.join(self.path, fmt.MANIFEST)):
            # segment "." merged away: the manifest goes first, so a crash never leaves a base
            # that looks whole but misses arrays
            self._remove([os.path.join(self.path, fmt.MANIFEST)])
            for name in os.listdir(self.path):
                if name in _BASE_FILES:
                    self._remove([os.path.join(self.path, name)])
        fsync_dir(self.path)

    # -- merging -----------------------------------------------------------------------------------
    def _plan(self, max_segments: int | None, snap: Snapshot) -> list[tuple[int, int]]:
        s = snap.settings
        return plan_merges(
            [seg.n_live for seg in snap.segments],
            [seg.n_docs for seg in snap.segments],
            factor=int(s.get("merge_factor") or DEFAULT_MERGE_FACTOR),
            min_docs=int(s.get("merge_min_docs") or DEFAULT_MERGE_MIN_DOCS),
            max_segments=max_segments,
        )

    def merge(self, max_segments: int | None = None, show_progress: bool = False) -> int:
        """Merge segments (commits pending changes first): by the log-structured policy, or down
        to ``max_segments`` (1: force-merge into one). Merged segments drop deleted documents and
        get the index's parts when they are over ``parts_min_docs``. Returns the generation."""
        self._need_writer()
        with self._wlock:
            self.commit()
            snap = self._snap
            plan = self._plan(max_segments, snap)
            if not plan:
                return snap.generation
            gen = snap.generation + 1
            settings = dict(snap.settings)
            next_seg = int(snap.record.get("next_segment", 1))
            created: list[str] = []
            try:
                entries: list[dict[str, Any]] = []
                i = 0
                bar = None
                if show_progress:
                    from tqdm.auto import tqdm

                    bar = tqdm(total=len(plan), desc="merging segments", unit="merge")
                for a, b in plan:
                    entries += [seg.entry() for seg in snap.segments[i:a]]
                    group = snap.segments[a:b]
                    chunks, docs, cols = self._live_contents(group)
                    if chunks:
                        name = f"seg-{next_seg:06d}"
                        next_seg += 1
                        self._write_segment(name, chunks, docs, cols, settings, created)
                        n = sum(len(c) for c in chunks)
                        entries.append({"name": name, "n_docs": n, "deleted": 0, "live": None})
                    i = b
                    if bar is not None:
                        bar.update(1)
                if bar is not None:
                    bar.close()
                entries += [seg.entry() for seg in snap.segments[i:]]
                self._publish(snap, gen, entries, settings, next_seg, created)
            except BaseException:
                self._remove(created)
                raise
            self._snap = self._open_record(_read_record(self.path, gen))
            self._reset_pending()
            self._cleanup()
            return gen

    def _live_contents(
        self, group: list[Segment]
    ) -> tuple[list[SparseBatch], list[tuple[str, str]] | None, md.Columns]:
        """The live documents of ``group`` in order: vectors (impacts dequantized with the shared
        step, so the merged segment quantizes them back to the same integers), store, metadata."""
        from lsr.index.kernels import forward as fwd_k

        chunks: list[SparseBatch] = []
        docs: list[tuple[str, str]] = []
        any_store = False
        col_parts = []
        for seg in group:
            live = np.flatnonzero(seg.live) if seg.live is not None else np.arange(seg.n_docs)
            if not len(live):
                continue
            ix = seg.index
            if ix.forward is not None:
                fptr, fterms, fimp = ix.forward
            else:
                fptr, fterms, fimp = fwd_k.transpose(
                    ix.offsets, ix.postings_docs, ix.postings_impacts, ix.n_docs, np.empty(0, np.int64)
                )
            internal = seg.internal_of_build()[live]
            fptr = np.asarray(fptr, np.int64)
            lens = fptr[internal + 1] - fptr[internal]
            indptr = np.zeros(len(live) + 1, np.int64)
            np.cumsum(lens, out=indptr[1:])
            take = np.repeat(fptr[internal] - indptr[:-1], lens) + np.arange(indptr[-1])
            weights = np.asarray(fimp)[take].astype(np.float32)
            if ix.quantization != "float32":
                weights = weights * np.float32(ix.scale)
                if ix.term_scale is not None:  # segment "." built with per-term steps
                    weights = weights * ix.term_scale[np.asarray(fterms)[take]]
            b = SparseBatch(indptr, np.asarray(fterms)[take].astype(np.int32), weights, self._pending_vocab)
            b.ids = ix.doc_ids(live)
            chunks.append(b)
            if ix.has_store:
                any_store = True
                for d in live.tolist():
                    rec = ix.document(d)
                    docs.append((rec["title"], rec["text"]))
            else:
                docs += [("", "")] * len(live)
            col_parts.append((md.take_columns(seg.columns, live), len(live)))
        return chunks, (docs if any_store else None), md.concat_columns(col_parts)


def encode_texts(
    index: Any,
    texts: Sequence[str],
    ids: Sequence[str],
    titles: Sequence[str] | None,
    encoder: Any,
    batch_size: int,
    vocab: Vocabulary,
) -> tuple[SparseBatch, list[tuple[str, str]]]:
    """What ``add_texts`` of a living index (one or sharded) adds: the texts (``title + " " + text``
    when titles are given) encoded by ``encoder`` (checked against ``index``'s recorded one) or the
    recorded encoder, in batches of ``batch_size``, and the (title, text) pairs for the store.
    ``vocab``: the empty batch's vocabulary when there are no texts."""
    if len(ids) != len(texts) or (titles is not None and len(titles) != len(texts)):
        raise LsrError(
            f"{len(texts)} texts, {len(ids)} ids{'' if titles is None else f', {len(titles)} titles'}"
        )
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise LsrError(f"text {i} is not a string")
    if encoder is None:
        encoder = index.load_encoder()
    else:
        index.check_encoder(encoder)
    titles = list(titles) if titles is not None else [""] * len(texts)
    full = [f"{a} {b}" if a else b for a, b in zip(titles, texts, strict=True)]
    from lsr.vectors import concat_batches

    parts = [encoder.encode_documents(full[s : s + batch_size]) for s in range(0, len(full), batch_size)]
    batch = concat_batches(parts) if parts else SparseBatch.from_dicts([], vocab)
    return batch, list(zip(titles, texts, strict=True))


def open_segmented(path: str | os.PathLike, writable: bool = False, **options: Any) -> SegmentedIndex:
    """Open a living index (any index directory; a plain one is generation 0)."""
    return SegmentedIndex(path, writable=writable, **options)
