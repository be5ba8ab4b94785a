"""Integrity of an index directory: checksums and structural invariants.

Two levels:

- :func:`validate` runs at every :func:`~lsr.index.open_index` (the searcher calls it once). It
  checks, with vectorised numpy passes, every value a search kernel uses as an array index:
  offsets monotone and in range, doc numbers below ``n_docs`` and ascending within each list
  (MaxScore and BMP rely on that to stay inside their window/block accumulators), forward-index
  term ids below ``n_terms``, BMP entries inside their term's postings and block, Seismic block
  and summary ids in range. A file damaged but of the right size is then refused with an
  :class:`~lsr.errors.LsrError` instead of making a kernel read or write out of bounds (a
  segfault, or garbage results). This is the choice made over bounds checks inside the kernels:
  it costs nothing per query; the price is one pass over the postings (about 5 bytes read per
  posting) and the BMP/Seismic arrays when the index is opened.
- :func:`check_index` (``lsr check DIR``) adds the CRC-32 checksums recorded in the manifest
  (every file, the manifest included) and the invariants that do not threaten memory safety but
  mean a damaged index: impacts > 0, ``doc_order`` a permutation, term maxima, document lengths,
  unique doc ids, BMP block maxima, every file listed in the manifest and no file left out. On a
  living index (generation files) it checks the newest generation: its record, every segment it
  lists (each one an index directory, checked as above), every live-docs bitmap (checksum, size,
  deleted count) and the vocabulary file; on a sharded root (``shards.json``), every shard.

Both work on the memory maps only: RAM use is a few arrays of the size of the largest file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lsr.errors import LsrError
from lsr.index import format as fmt
from lsr.index.methods import bmp as bmp_method
from lsr.index.methods import seismic as seismic_method

CORE = ("offsets", "postings_docs", "postings_impacts", "term_max", "doc_lengths", "doc_ids")
FORWARD = ("forward_offsets", "forward_terms", "forward_impacts")
BMP = bmp_method.ARRAYS  # the arrays of each part: one list, in the method's module
SEISMIC = seismic_method.ARRAYS


def uses_term_scale(m: dict[str, Any]) -> bool:
    """Whether the manifest says the index has per-term quantization steps (``term_scale.npy``)."""
    q = m.get("quantization")
    return isinstance(q, dict) and q.get("quantizer") == "term" and q.get("dtype") != "float32"


@dataclass
class CheckReport:
    """What :func:`inspect_index` found: ``problems`` (empty when the index is sound), ``notes``
    (facts worth saying, e.g. an old index without checksums) and a one-line ``summary``."""

    path: str
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    summary: str = ""
    files_checked: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def _open_arrays(path: str, m: dict[str, Any], problems: list[str]) -> dict[str, np.ndarray]:
    """Memory-map every array the manifest says exists (lengths checked as the searcher does);
    each failure becomes a problem and the array is left out."""
    out: dict[str, np.ndarray] = {}

    def get(name: str, length: int | None = None) -> None:
        try:
            out[name] = fmt.open_array(path, name, m, length)
        except LsrError as e:
            problems.append(str(e))
        except (KeyError, TypeError, ValueError) as e:  # a manifest that lacks or garbles a count
            problems.append(f"{name}.npy: cannot be checked against the manifest ({e!r})")

    for name in CORE:
        get(name)
    if uses_term_scale(m):
        get("term_scale")
    if m.get("store"):
        get("store_offsets")
    p = m.get("parts") or {}
    if not isinstance(p, dict):
        problems.append("manifest: 'parts' is not an object")
        return out
    if p.get("doc_order"):
        get("doc_order")
    if p.get("forward"):
        for name in FORWARD:
            get(name)
    try:
        if p.get("bmp"):
            bp = p["bmp"]
            n, nd, bs = int(bp["n_entries"]), int(bp.get("n_dense", 0)), int(bp["block_size"])
            if bs <= 0:
                raise ValueError(f"block_size {bs}")
            nb = (int(m["n_docs"]) + bs - 1) // bs
            for name, length in zip(BMP, (None, n, n, n, None, nd * nb, nd * (nb + 1)), strict=True):
                get(name, length)
        if p.get("seismic") and _seismic_current(p["seismic"]):  # an older layout is never searched
            sp = p["seismic"]
            nb, ng, ns = int(sp["n_blocks"]), int(sp["n_groups"]), int(sp["n_summary_entries"])
            get("seismic_term_blocks")
            get("seismic_block_docs_offsets", nb + 1)
            bptr = out.get("seismic_block_docs_offsets")
            if bptr is not None and len(bptr):
                get("seismic_block_docs", int(bptr[-1]) if bptr[-1] >= 0 else 0)
            get("seismic_block_scale", nb)
            get("seismic_list_groups")
            get("seismic_group_terms", ng)
            get("seismic_group_offsets", ng + 1)
            get("seismic_group_blocks", ns)
            get("seismic_group_values", ns)
            if int(sp.get("knn", 0)) > 0:
                get(seismic_method.KNN, int(m["n_docs"]) * int(sp["knn"]))
    except (KeyError, TypeError, ValueError) as e:
        problems.append(f"manifest: part parameters are damaged ({e!r})")
    return out


def _seismic_current(record: Any) -> bool:
    """Whether a seismic part record is of the layout this lsr searches (older ones are opened for
    the other methods only, see :mod:`lsr.index.methods.seismic`)."""
    from lsr.index.methods.seismic import LAYOUT

    return isinstance(record, dict) and record.get("layout") == LAYOUT


def _csr_problem(name: str, ptr: np.ndarray, n_rows: int, total: int) -> str | None:
    """Problems of a CSR offsets array: length n_rows + 1, starts at 0, ends at ``total``, monotone."""
    if len(ptr) != n_rows + 1:
        return f"{name}.npy has {len(ptr)} entries, expected {n_rows + 1}"
    if ptr[0] != 0:
        return f"{name}.npy starts at {int(ptr[0])}, expected 0"
    if ptr[-1] != total:
        return f"{name}.npy ends at {int(ptr[-1])}, expected {total}"
    if n_rows and np.any(ptr[1:] < ptr[:-1]):
        row = int(np.argmax(ptr[1:] < ptr[:-1]))
        return f"{name}.npy decreases at entry {row + 1} ({int(ptr[row])} > {int(ptr[row + 1])})"
    return None


def _ascending_within(cols: np.ndarray, ptr: np.ndarray) -> int:
    """First position p (> 0) where cols[p] <= cols[p - 1] inside one CSR row, or -1."""
    n = len(cols)
    if n < 2:
        return -1
    inc = cols[1:] > cols[:-1]
    starts = ptr[1:-1]
    inc[starts[(starts > 0) & (starts < n)] - 1] = True  # a new row may start lower
    if inc.all():
        return -1
    return int(np.argmax(~inc)) + 1


def _structure(A: dict[str, np.ndarray], m: dict[str, Any], full: bool) -> list[str]:
    """Structural problems of the arrays ``A`` of an index with manifest ``m``.

    ``full=False`` checks what keeps the kernels in bounds (see the module docs); ``full=True``
    adds the rest. Later checks that rely on an earlier one's array are skipped when it failed.
    """
    out: list[str] = []
    n_docs, n_terms, n_post = int(m["n_docs"]), int(m["n_terms"]), int(m["n_postings"])
    p = m.get("parts") or {}
    offsets, docs = A.get("offsets"), A.get("postings_docs")
    postings_ok = False
    if offsets is not None:
        prob = _csr_problem("offsets", offsets, n_terms, n_post)
        if prob:
            out.append(prob)
        elif docs is not None:
            if n_post and int(docs.max()) >= n_docs:
                pos = int(np.argmax(docs >= n_docs))
                out.append(
                    f"postings_docs.npy[{pos}] = {int(docs[pos])}, but the index has {n_docs} documents"
                )
            else:
                bad = _ascending_within(docs, offsets)
                if bad >= 0:
                    t = int(np.searchsorted(offsets, bad, side="right")) - 1
                    out.append(f"postings_docs.npy: doc numbers of term {t} not ascending at posting {bad}")
                else:
                    postings_ok = True
    tmax = A.get("term_max")
    if tmax is not None and len(tmax) and not np.all(np.isfinite(tmax) & (tmax >= 0)):
        out.append("term_max.npy holds a value that is not finite and >= 0")
    ts = A.get("term_scale")
    if ts is not None and len(ts) and not np.all(np.isfinite(ts) & (ts > 0) & (ts <= 1)):
        out.append("term_scale.npy holds a factor that is not finite and in (0, 1]")
    imps = A.get("postings_impacts")
    if full and imps is not None and len(imps):
        bad = ~(imps > 0) if imps.dtype.kind != "f" else ~((imps > 0) & np.isfinite(imps))
        if bad.any():
            pos = int(np.argmax(bad))
            out.append(f"postings_impacts.npy[{pos}] = {imps[pos]!r}: impacts must be finite and > 0")
    order = A.get("doc_order")
    if order is not None and len(order):
        if int(order.max()) >= n_docs:
            out.append(f"doc_order.npy holds {int(order.max())}, but the index has {n_docs} documents")
        elif full and np.bincount(order, minlength=n_docs).max() != 1:
            out.append("doc_order.npy is not a permutation of the documents")
    so = A.get("store_offsets")
    if so is not None:
        size_path = m.get("_store_size")
        prob = _csr_problem("store_offsets", so, n_docs, int(so[-1]) if size_path is None else size_path)
        if prob:
            out.append(prob)
    fptr, fterms = A.get("forward_offsets"), A.get("forward_terms")
    if fptr is not None and fterms is not None:
        prob = _csr_problem("forward_offsets", fptr, n_docs, len(fterms))
        if prob:
            out.append(prob)
        elif len(fterms) and int(fterms.max()) >= n_terms:
            out.append(f"forward_terms.npy holds term {int(fterms.max())}, but the index has {n_terms} terms")
        elif full:
            bad = _ascending_within(fterms, fptr)
            if bad >= 0:
                out.append(f"forward_terms.npy: term ids not ascending at entry {bad}")
            if offsets is not None and len(fterms) == n_post and not out:
                if not np.array_equal(np.bincount(fterms, minlength=n_terms), np.diff(offsets)):
                    out.append("forward index and postings disagree on the postings of some term")
    fimp = A.get("forward_impacts")
    if full and fimp is not None and len(fimp) and not np.all(fimp > 0):
        out.append("forward_impacts.npy holds an impact <= 0")
    if p.get("bmp") and postings_ok and all(name in A for name in BMP):
        out += _bmp_problems(A, p["bmp"], n_docs, n_terms, full)
    if p.get("seismic") and _seismic_current(p["seismic"]) and all(name in A for name in SEISMIC):
        out += _seismic_problems(A, p["seismic"], n_docs, n_terms, full)
    if full:
        out += _full_extras(A, m, postings_ok)
    return out


def _bmp_problems(
    A: dict[str, np.ndarray], params: dict[str, Any], n_docs: int, n_terms: int, full: bool
) -> list[str]:
    """BMP entries and dense rows: every posting range they name lies inside its term's postings
    and inside the block it is filed under (so the kernel's block accumulator is never overrun)."""
    offsets, docs = A["offsets"], A["postings_docs"]
    bo, blk, bst, bmx = A["bmp_offsets"], A["bmp_blocks"], A["bmp_starts"], A["bmp_max"]
    drow, dstart = A["bmp_dense_rows"], A["bmp_dense_starts"]
    bs, nd = int(params["block_size"]), int(params.get("n_dense", 0))
    nb = (n_docs + bs - 1) // bs
    prob = _csr_problem("bmp_offsets", bo, n_terms, len(blk))
    if prob:
        return [prob]
    if len(drow) and (int(drow.min()) < -1 or int(drow.max()) >= nd):
        return [f"bmp_dense_rows.npy holds a row outside -1 .. {nd - 1}"]
    out: list[str] = []
    if len(blk):
        per_term = np.diff(bo)
        te = np.repeat(np.arange(n_terms, dtype=np.int64), per_term)
        base, end = np.repeat(offsets[:-1], per_term), np.repeat(offsets[1:], per_term)
        p0 = base + bst.astype(np.int64)
        p1 = np.empty_like(p0)
        p1[:-1] = base[1:] + bst[1:].astype(np.int64)
        last = np.zeros(len(blk), bool)
        last[bo[1:][np.diff(bo) > 0] - 1] = True
        p1[last] = end[last]
        if not np.all((p0 >= base) & (p0 < p1) & (p1 <= end)):
            e = int(np.argmax(~((p0 >= base) & (p0 < p1) & (p1 <= end))))
            return [f"bmp_starts.npy[{e}] = {int(bst[e])} is outside the postings of term {int(te[e])}"]
        ubs = np.uint32(bs)
        in_block = (docs[p0] // ubs == blk) & (docs[p1 - 1] // ubs == blk)
        if not np.all(in_block):
            e = int(np.argmax(~in_block))
            return [
                f"bmp entry {e} (term {int(te[e])}) names block {int(blk[e])} but its postings lie elsewhere"
            ]
        if full:
            first = np.ones(len(blk), bool)
            first[1:] = te[1:] != te[:-1]
            if np.any(bst[first] != 0):
                out.append("bmp_starts.npy: a term's first block entry does not start at its first posting")
            imps = A["postings_impacts"]
            bounds = np.empty(2 * len(p0), np.int64)
            bounds[0::2], bounds[1::2] = p0, p1
            bounds[bounds >= len(imps)] = len(imps)  # a range that ends the array: reduceat wants < len
            ext = np.concatenate([imps, imps[:1]])
            mx = np.maximum.reduceat(ext, bounds)[0::2]
            if not np.array_equal(mx, bmx):
                out.append("bmp_max.npy does not match the postings' impacts")
    dense_terms = np.flatnonzero(drow >= 0)
    if len(dense_terms):
        rows = drow[dense_terms].astype(np.int64)
        ds = dstart.reshape(nd, nb + 1)[rows].astype(np.int64)  # one row per dense term
        base = offsets[dense_terms][:, None]
        cnt = (offsets[dense_terms + 1] - offsets[dense_terms])[:, None]
        if np.any(np.diff(ds, axis=1) < 0) or np.any(ds[:, -1:] > cnt):
            return out + ["bmp_dense_starts.npy: a dense row decreases or runs past its term's postings"]
        q0, q1 = base + ds[:, :-1], base + ds[:, 1:]
        nonempty = q1 > q0
        b = np.broadcast_to(np.arange(nb, dtype=np.int64), q0.shape)
        ok0 = docs[q0[nonempty]] // bs == b[nonempty]
        ok1 = docs[q1[nonempty] - 1] // bs == b[nonempty]
        if not (ok0.all() and ok1.all()):
            out.append("bmp_dense_starts.npy: a dense block's postings lie outside the block")
        elif full and (np.any(ds[:, 0] != 0) or np.any(ds[:, -1:] != cnt)):
            out.append("bmp_dense_starts.npy: a dense row does not cover all its term's postings")
    return out


def _seismic_problems(
    A: dict[str, np.ndarray], params: dict[str, Any], n_docs: int, n_terms: int, full: bool
) -> list[str]:
    """Seismic: block ranges per term, documents per block, summary groups per term and every
    group entry's block number inside its list (the kernel's per-list accumulator)."""
    tb, bptr, bdocs = A["seismic_term_blocks"], A["seismic_block_docs_offsets"], A["seismic_block_docs"]
    lg, gterms, goff = A["seismic_list_groups"], A["seismic_group_terms"], A["seismic_group_offsets"]
    gblk, scale = A["seismic_group_blocks"], A["seismic_block_scale"]
    nb, ng, ns = int(params["n_blocks"]), int(params["n_groups"]), int(params["n_summary_entries"])
    for name, ptr, rows, total in (
        ("seismic_term_blocks", tb, n_terms, nb),
        ("seismic_block_docs_offsets", bptr, nb, len(bdocs)),
        ("seismic_list_groups", lg, n_terms, ng),
        ("seismic_group_offsets", goff, ng, ns),
    ):
        prob = _csr_problem(name, ptr, rows, total)
        if prob:
            return [prob]
    from lsr.index.methods.seismic import DTYPES

    out = [
        f"{name}.npy has dtype {A[name].dtype}, expected one of {', '.join(ok)}"
        for name, ok in DTYPES.items()
        if A[name].dtype.name not in ok
    ]
    if out:
        return out
    blocks = np.diff(tb)
    if len(blocks) and int(blocks.max()) > int(params.get("max_list_blocks", 0)):
        out.append("seismic_term_blocks.npy: a list has more blocks than the manifest's max_list_blocks")
    if len(bdocs) and int(bdocs.max()) >= n_docs:
        out.append(
            f"seismic_block_docs.npy holds doc {int(bdocs.max())}, but the index has {n_docs} documents"
        )
    if len(gblk):
        per_list = np.repeat(np.diff(lg), 1)  # groups of each term
        entries_of_term = np.add.reduceat(np.diff(goff), lg[:-1][per_list > 0]) if ng else np.zeros(0)
        limit = np.repeat(blocks[per_list > 0], entries_of_term.astype(np.int64))
        if len(limit) != len(gblk) or np.any(gblk >= limit):
            out.append("seismic_group_blocks.npy holds a block outside its list")
    if full and len(scale) and not np.all(np.isfinite(scale) & (scale > 0)):
        out.append("seismic_block_scale.npy holds a scale that is not finite and > 0")
    if full and len(gterms) and (int(gterms.min()) < 0 or int(gterms.max()) >= n_terms):
        out.append(f"seismic_group_terms.npy holds a term outside 0 .. {n_terms - 1}")
    graph = A.get(seismic_method.KNN)
    if graph is not None and len(graph) and (int(graph.min()) < -1 or int(graph.max()) >= n_docs):
        out.append(f"{seismic_method.KNN}.npy holds a document outside -1 .. {n_docs - 1}")
    return out


def _full_extras(A: dict[str, np.ndarray], m: dict[str, Any], postings_ok: bool) -> list[str]:
    """Invariants that only ``lsr check`` verifies: term maxima, lengths, ids."""
    out = []
    n_docs, scale = int(m["n_docs"]), float(m["quantization"]["scale"])
    offsets, imps, tmax = A.get("offsets"), A.get("postings_impacts"), A.get("term_max")
    if postings_ok and imps is not None and tmax is not None and len(imps):
        used = np.flatnonzero(np.diff(offsets) > 0)
        want = np.zeros(len(tmax), np.float32)
        want[used] = np.maximum.reduceat(imps, offsets[used]).astype(np.float32) * np.float32(scale)
        if not np.allclose(want, tmax, rtol=1e-6, atol=0):
            t = int(np.argmax(~np.isclose(want, tmax, rtol=1e-6, atol=0)))
            out.append(
                f"term_max.npy[{t}] = {float(tmax[t])!r}, but the term's largest impact is {float(want[t])!r}"
            )
    lengths, docs = A.get("doc_lengths"), A.get("postings_docs")
    if postings_ok and lengths is not None and docs is not None:
        per_doc = np.bincount(docs, minlength=n_docs)  # by internal number
        order = A.get("doc_order")
        if order is not None and len(order) and int(order.max()) < n_docs:
            by_build = np.zeros(n_docs, np.int64)
            by_build[order] = per_doc
            per_doc = by_build
        if not np.array_equal(per_doc, lengths):
            out.append("doc_lengths.npy does not match the postings")
    ids = A.get("doc_ids")
    if ids is not None and len(ids):
        if len(np.unique(ids)) != len(ids):
            out.append("doc_ids.npy holds a duplicate document id")
        elif not np.all(np.char.str_len(ids) > 0):
            out.append("doc_ids.npy holds an empty document id")
    return out


def validate(path: str, manifest: dict[str, Any]) -> None:
    """Open-time check (see the module docs): raise :class:`LsrError` when a value a kernel
    indexes with is out of range. Cost: one vectorised pass over the postings and parts."""
    problems: list[str] = []
    arrays = _open_arrays(path, manifest, problems)
    try:
        problems += _structure(arrays, manifest, full=False)
    except (ValueError, IndexError, TypeError, KeyError, OverflowError) as e:  # counts of the wrong type
        problems.append(f"its structure cannot be read ({e!r})")
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise LsrError(f"{path}: damaged index: {problems[0]}{more}; run `lsr check {path}`")


def inspect_index(path: str | os.PathLike) -> CheckReport:
    """Everything :func:`check_index` checks, with notes and a summary line (for ``lsr check``):
    a plain index, a living index (its newest generation) or a sharded root (every shard)."""
    from lsr.index.segments import is_segmented
    from lsr.index.shards import is_sharded

    path = os.path.abspath(os.fspath(path))
    if is_sharded(path):
        return _inspect_sharded(path)
    if is_segmented(path):
        return _inspect_segmented(path)
    return _inspect_plain(path)


def _prefixed(into: CheckReport, sub: CheckReport, name: str) -> None:
    into.problems += [f"{name}: {p}" for p in sub.problems]
    into.notes += [f"{name}: {n}" for n in sub.notes]
    into.files_checked += sub.files_checked


def _inspect_sharded(path: str) -> CheckReport:
    """Every shard of a sharded root (each a plain or living index), and the shards file."""
    from lsr.index.shards import read_shards_manifest

    rep = CheckReport(path)
    try:
        m = read_shards_manifest(path)
        dirs = [str(e["dir"]) for e in m["shards"]]
    except (LsrError, KeyError, TypeError) as e:
        rep.problems.append(str(e) if isinstance(e, LsrError) else f"shards.json: damaged ({e!r})")
        rep.summary = "not checked further: the shards file is unusable"
        return rep
    for name in dirs:
        d = os.path.join(path, name)
        if not os.path.isdir(d):
            rep.problems.append(f"{name}: listed in shards.json but missing")
            continue
        _prefixed(rep, inspect_index(d), name)
    rep.summary = f"{len(dirs)} shards; {rep.files_checked} checksums checked"
    return rep


def _inspect_segmented(path: str) -> CheckReport:
    """The newest generation of a living index: its record, each segment it lists (an index
    directory; the base segment "." is the root itself, whose living-index files are expected),
    each live-docs bitmap and the vocabulary file it names. Older generation files and segments
    only they list are left alone (a reader may still hold them; the next writer cleans them)."""
    from lsr.index import segments as sg

    rep = CheckReport(path)
    gen = sg.list_generations(path)[-1]
    try:
        rec = sg._read_record(path, gen)
        entries = list(rec["segments"])
    except (LsrError, OSError, KeyError, TypeError) as e:
        rep.problems.append(str(e) if isinstance(e, LsrError) else f"generation-{gen}.json: damaged ({e!r})")
        rep.summary = "not checked further: the newest generation file is unusable"
        return rep
    docs = deleted = postings = 0
    for e in entries:
        name = str(e.get("name"))
        base = name == sg.BASE
        d = path if base else os.path.join(path, sg.SEGMENTS_DIR, name)
        label = "segment ." if base else f"segment {name}"
        if not os.path.isfile(os.path.join(d, fmt.MANIFEST)):
            rep.problems.append(f"{label}: listed in generation {gen} but missing")
            continue
        sub = _inspect_plain(d, living_root=base)
        _prefixed(rep, sub, label)
        try:
            seg_m = fmt.read_manifest(d)
            n = int(seg_m["n_docs"])
            postings += int(seg_m["n_postings"])
        except (LsrError, KeyError, TypeError, ValueError):
            continue  # already reported by the segment's own check
        if int(e.get("n_docs", n)) != n:
            rep.problems.append(
                f"{label}: generation {gen} says {e.get('n_docs')} documents, the segment has {n}"
            )
        docs += n
        if e.get("live"):
            try:
                live = sg.read_bitmap(os.path.join(path, e["live"]), n, e.get("live_crc32"))
            except FileNotFoundError:
                rep.problems.append(f"{label}: live-docs bitmap {e['live']} missing")
                continue
            except LsrError as err:
                rep.problems.append(f"{label}: {err}")
                continue
            rep.files_checked += 1
            dead = n - int(np.count_nonzero(live))
            if int(e.get("deleted", dead)) != dead:
                rep.problems.append(
                    f"{label}: generation {gen} says {e.get('deleted')} deleted, its bitmap has {dead}"
                )
            deleted += dead
    if rec.get("vocab") and not os.path.isfile(os.path.join(path, str(rec["vocab"]))):
        rep.problems.append(f"vocabulary file {rec['vocab']} (named by generation {gen}) missing")
    rep.summary = (
        f"generation {gen}, {len(entries)} segments, {docs} documents ({deleted} deleted), {postings} "
        f"postings; {rep.files_checked} checksums checked"
    )
    return rep


def _lock_file() -> str:
    from lsr.index.segments import LOCK_FILE

    return LOCK_FILE


def _living_file(name: str) -> bool:
    """A file or folder a living index keeps beside its base segment's files."""
    from lsr.index import segments as sg

    return (
        sg._GEN_RE.match(name) is not None
        or name in (sg.SEGMENTS_DIR, sg.LIVE_DIR, sg.LOCK_FILE)
        or name.startswith("vocab-")
        or ".tmp-" in name
    )


def _metadata_files(path: str, m: dict[str, Any], problems: list[str]) -> set[str]:
    """The metadata columns of a living index's segment (``metadata.json`` and the column files it
    names: not in the manifest's checksums, written beside it), read in full to check them."""
    from lsr.index import metadata as md

    spec_path = os.path.join(path, md.META_FILE)
    if not os.path.isfile(spec_path):
        return set()
    names = {md.META_FILE}
    try:
        with open(spec_path, encoding="utf-8") as f:
            names |= {str(v["file"]) for v in json.load(f)["fields"].values()}
        md.read_columns(path, int(m["n_docs"]))
    except LsrError as e:
        problems.append(str(e).replace(f"{path}: ", ""))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        problems.append(f"{md.META_FILE}: damaged ({e!r})")
    return names


def _inspect_plain(path: str, living_root: bool = False) -> CheckReport:
    """One index directory (``living_root``: the base segment of a living index, whose directory
    also holds the living index's files)."""
    rep = CheckReport(path)
    try:
        m = fmt.read_manifest(path)
    except LsrError as e:
        rep.problems.append(str(e))
        rep.summary = "not checked further: the manifest is unusable"
        return rep
    try:
        crc_problem = fmt.manifest_crc_problem(path)
    except OSError as e:
        crc_problem = f"{fmt.MANIFEST}: unreadable ({e})"
    if crc_problem:
        rep.problems.append(crc_problem)
    sums = m.get("checksums")
    has_manifest_crc = fmt.MANIFEST_CRC in m
    if sums is None and not has_manifest_crc:
        rep.notes.append("checksums absent (an index built before lsr recorded them): structure checked only")
    elif sums is None or not isinstance(sums, dict) or not isinstance(sums.get("files"), dict):
        rep.problems.append(f"{fmt.MANIFEST}: the checksums record is missing or damaged")
    elif not has_manifest_crc:
        rep.problems.append(f"{fmt.MANIFEST}: its own checksum is missing or damaged")
    if isinstance(sums, dict) and isinstance(sums.get("files"), dict):
        listed: dict[str, Any] = sums["files"]
        if sums.get("algorithm") != "crc32":
            rep.problems.append(f"{fmt.MANIFEST}: unknown checksum algorithm {sums.get('algorithm')!r}")
        else:
            present = set(os.listdir(path)) - {fmt.MANIFEST}
            for name in sorted(listed):
                fpath = os.path.join(path, name)
                if name not in present or not os.path.isfile(fpath):
                    rep.problems.append(f"{name}: listed in the manifest but missing")
                    continue
                rep.files_checked += 1
                if fmt.file_crc32(fpath) != listed[name]:
                    rep.problems.append(f"{name}: checksum mismatch (the file was changed or damaged)")
            meta = _metadata_files(path, m, rep.problems)
            for name in sorted(present - set(listed)):
                if (living_root and _living_file(name)) or name in meta or name == _lock_file():
                    # (the lock file a writable open leaves, even where nothing was committed)
                    continue
                rep.problems.append(f"{name}: not part of this index (not in the manifest's checksums)")
    arrays = _open_arrays(path, m, rep.problems)
    store = os.path.join(path, fmt.STORE)
    if m.get("store") and os.path.isfile(store):
        m = {**m, "_store_size": os.path.getsize(store)}
    elif m.get("store"):
        rep.problems.append(f"{fmt.STORE}: missing (the manifest says the index has a document store)")
    try:
        rep.problems += _structure(arrays, m, full=True)
    except (ValueError, IndexError, TypeError, KeyError, OverflowError) as e:  # counts of the wrong type
        rep.problems.append(f"structure could not be checked ({e!r})")
    parts = m.get("parts") or {}
    methods = [name for name, on in (("maxscore", parts.get("forward")), ("bmp", parts.get("bmp"))) if on]
    if parts.get("seismic"):
        methods.append("seismic")
    sums_txt = f"{rep.files_checked + 1} checksums checked" if rep.files_checked else "no checksums"
    rep.summary = (
        f"{m['n_docs']} documents, {m['n_postings']} postings, {m['n_terms']} terms; parts for "
        f"{', '.join(['exact', *methods])}; {sums_txt}"
    )
    return rep


def check_index(path: str | os.PathLike) -> list[str]:
    """Verify an index directory: checksums (when recorded) and every structural invariant.
    Returns the problems found, one line each; an empty list means the index is sound."""
    return inspect_index(path).problems
