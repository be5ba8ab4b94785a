"""The on-disk index format, documented in one place.

An index is one directory::

    manifest.json          format name and version, counts, vocabulary, quantization, encoder config
    offsets.npy            int64[n_terms + 1]  postings of term t are [offsets[t], offsets[t + 1])
    postings_docs.npy      uint32[n_postings]  internal doc numbers, ascending within each term
    postings_impacts.npy   float32 | uint16 | uint8 [n_postings]  impacts, aligned with postings_docs
    term_max.npy           float32[n_terms]    largest impact of each term x ``scale`` (the true
                           largest weight for float32 and the global quantizer), for pruning
    term_scale.npy         float32[n_terms]    version 3, per-term quantizer only: the step factor of
                           each term in (0, 1] (see the quantization paragraph below)
    doc_ids.npy            bytes (S<w>)[n_docs] external doc ids, UTF-8, by internal doc number
    doc_lengths.npy        uint32[n_docs]      non-zeros per document
    store.jsonl            optional: one JSON line {"title", "text"} per document (an empty line
                           when unknown), present when the index was built from texts or from
                           vectors with a "content"; ``manifest["store"]`` says whether it is there
    store_offsets.npy      int64[n_docs + 1]   byte range of each document's line in store.jsonl

Optional parts (version 2 and later; ``manifest["parts"]`` says which exist and with what parameters; see
:mod:`lsr.index.parts` for how they are built and which search method needs which):

    doc_order.npy          uint32[n_docs]      build-order number of each internal doc number, when
                           the documents were reordered (graph bisection). Postings, the forward
                           index and blocks use internal numbers; doc_ids, doc_lengths, the store
                           and search results use build-order numbers. Absent: the two are equal.
    forward_offsets.npy    int64[n_docs + 1]   forward index (by internal doc number): terms of doc d
    forward_terms.npy      uint16 | uint32 [n_postings]  are [forward_offsets[d], forward_offsets[d + 1]),
    forward_impacts.npy    like postings_impacts  ascending term id; term ids are uint16 when
                           n_terms <= 65,536 (lsr from 2026-12; older builds wrote uint32, still
                           read), else uint32 (``lsr.index.methods.forward.terms_dtype``)
    bmp_offsets.npy        int64[n_terms + 1]  BMP entries of term t: [bmp_offsets[t], bmp_offsets[t + 1])
    bmp_blocks.npy         uint32[n_entries]   block number (internal doc // parts.bmp.block_size), ascending
    bmp_starts.npy         uint32[n_entries]   first posting of the block, relative to offsets[t]
    bmp_max.npy            like postings_impacts  largest impact of the term in the block
    bmp_dense_rows.npy     int32[n_terms]      row of a term stored dense (in >= dense_fraction of the
                           blocks; it then has no sparse entries), else -1
    bmp_dense_max.npy      like postings_impacts [n_dense * n_blocks]  max per (row, block)
    bmp_dense_starts.npy   uint32[n_dense * (n_blocks + 1)]  first posting of (row, block), relative
                           to offsets[t]; the block's postings end where block + 1's start
    Seismic, part layout 2 (``parts.seismic.layout == 2``; summaries inverted per list):
    seismic_term_blocks.npy        int64[n_terms + 1]   blocks of term t (its pruned list, in order)
    seismic_block_docs_offsets.npy int64[n_blocks + 1]  documents of block b:
    seismic_block_docs.npy         uint32[]             [offsets[b], offsets[b + 1]), internal numbers
    seismic_block_scale.npy        float32[n_blocks]    summary value = code x scale of the block
    seismic_list_groups.npy        int64[n_terms + 1]   summary groups of term t's list: one per
                                                        summary term, [groups[t], groups[t + 1])
    seismic_group_terms.npy        uint16 | int32 [n_groups]  the group's term, ascending per list
                                                        (uint16 when n_terms <= 65,536)
    seismic_group_offsets.npy      uint32 | int64 [n_groups + 1]  entries of group g
    seismic_group_blocks.npy       uint8 | uint16 [n_summary_entries]  block number within the list
                                                        (uint8 when no list has more than 256 blocks)
    seismic_group_values.npy       uint8[n_summary_entries]  the block's code for the term
    seismic_knn.npy                int32[n_docs * knn]  only with ``parts.seismic.knn`` > 0: the kNN
                                                        graph, row r (entries r*knn .. r*knn+knn-1)
                                                        for the document of build order r (internal
                                                        number r when not reordered), its neighbours
                                                        as internal numbers, best first, -1 padding
    Layout 1 (older lsr: no ``layout`` key; ``seismic_summary_{offsets,terms,values,scale}``,
    block-major) is still opened for the other methods; searching it with seismic asks for a
    rebuild.

All arrays are plain ``.npy`` files memory-mapped read-only (``lsr.index.npy.read_npy``, which reads the
header without ``ast``, see there why): opening an index costs
no RAM beyond the pages a search touches.

Quantization. ``manifest["quantization"] = {"dtype", "scale", "max_weight", "quantizer"}`` with
``scale = 1.0`` for float32. Impacts quantized to uint8/uint16 are ``round(w / step_t)``, clipped to
[1, top] (so a positive weight never becomes 0), where ``scale = max_weight / top`` and

- ``"quantizer": "global"`` (the default; versions 1-2 had only it, the key absent): ``step_t =
  scale`` for every term (no ``term_scale.npy``). Living-index segments and shards always use it:
  they share one step;
- ``"quantizer": "term"`` (version 3, ``quantizer="term"`` / ``--quantizer term``):
  ``step_t = scale * term_scale[t]``, with
  ``term_scale[t]`` the ratio (largest weight of term t) / ``max_weight`` (at least 2^-60) rounded
  *up* to 4 significant bits (``k / 8 * 2^e``, k in 8..16; 1 for a term without postings;
  :func:`lsr.index.builder.term_factors`). A term's grid is set by its own largest weight, so
  one outlier weight no longer coarsens every term (on heavy-tailed weights the global step moved
  many top-10s; ``benchmarks/results/quantization_scifact.md`` has the measurements). A search
  multiplies each query weight by ``term_scale[t]`` first (:meth:`lsr.index.Index.search_arrays`),
  so every kernel, block bound and summary works unchanged on the stored integers (rank-safe
  methods stay rank-safe). It is not the default because on real SPLADE vectors (bounded weights)
  it gains nothing for exact search and costs Seismic recall: Seismic's query_cut ranks query terms
  by the folded weights and its summaries weigh terms in per-term units (SciFact uint8, query_cut
  5: recall@10 0.81 global, 0.71 term; on log-normal weights it is the other way, 0.77 and 0.90;
  the benchmark above).

A score is ``scale * sum(q_weight * term_scale[t] * impact)`` (``term_scale`` = 1 for the global
quantizer and float32). Version 1 indexes (no parts) are still read; they search with ``exact``
only. A global-quantizer or float32 build writes version 2 (its layout is version 2's), so older
readers still open it; a per-term build writes version 3, which they refuse (rebuild message).

The vocabulary may have any size (DyVo indexes hold 30,522 word pieces plus one ``ENT:<id>`` term
per entity, hundreds of thousands): term ids are int32 in queries and uint32 in the forward index
(uint16 there only when the vocabulary fits), and every per-term array above is sized by ``n_terms``. The manifest lists every term;
opening an index of 430,522 terms parses it in about 0.3 s.

Checksums (like Lucene's segment footers): ``manifest["checksums"] = {"algorithm": "crc32",
"files": {file name: CRC-32 of its bytes}}`` covers every other file of the index, computed at
build time (streamed, 1 MiB at a time); the manifest's own CRC-32 is its last key,
``"manifest_crc32"``, computed over the manifest's text up to that key with a closing brace
(``{... "parts": ..., "vocab": [...]}``, exactly as written). ``lsr check DIR``
(:func:`lsr.index.check.check_index`) verifies them and every structural invariant; opening an
index verifies only the cheap invariants that keep the kernels in bounds
(:func:`lsr.index.check.validate`). Indexes built before checksums existed have neither key and
are still read (``lsr check`` then checks their structure and says the checksums are absent).

A *living index* (:mod:`lsr.index.segments`) is a directory of such segments. The files above at
its top level are segment ``"."`` (generation 0: an index built once, opened unchanged); next to
them::

    generation-<N>.json    {"format": "lsr-generation", "format_version": 1, "generation": N,
                            "settings": {quantization, scale, encoder, vocabulary ("fixed" when an
                                         encoder is recorded, else "grow"), methods, bmp, seismic,
                                         reorder_params, parts_min_docs, merge_factor, merge_min_docs},
                            "vocab": "vocab-<M>.json" | null (segment "."'s), "n_terms",
                            "fields": {name: "keyword" | "number"}, "next_segment",
                            "segments": [{"name", "n_docs", "deleted", "live": path | null,
                                          "live_crc32", "methods"}, ...]}   (in build order)
    segments/seg-<n>/      one segment in the format above (always the shared quantization scale
                           and a prefix of the index vocabulary), plus its metadata columns:
                           metadata.json {"fields": {name: {"type", "file", "values"?}}} and
                           meta_<i>.npy (keyword: int32 codes into the sorted "values", -1 missing;
                           number: float64, NaN missing), by build-order doc number
    live/<seg>.g<N>.npy    live-docs bitmap written by generation N: uint8 packed bits (little bit
                           order) over the segment's build-order doc numbers, 1 = live; its CRC-32
                           is in the generation file. Absent: every document is live
    vocab-<N>.json         the vocabulary (JSON list of tokens) once it grew past segment "."'s
    write.lock             flock()ed by the one writer

A generation file is written to a temporary name, fsynced, renamed and the directory fsynced, after
every file it names was written and fsynced; the newest generation file is the index. No file a
generation names is ever modified; writers delete files that neither of the two newest generations
names. Search results carry document handles ``segment number << 32 | doc number``.

A build writes into ``<output>.tmp-<pid>`` and renames it at the end, so a crashed build never
leaves a directory that looks complete; the next build of the same output removes such folders
whose process is gone. ``overwrite`` replaces only a directory that is an lsr index and holds
nothing but index files. ``FORMAT_VERSION`` changes whenever this layout changes;
readers refuse other versions with a clear error.
"""

from __future__ import annotations

import json
import os
import zlib
from typing import Any

import numpy as np

from lsr.errors import LsrError
from lsr.index.npy import read_npy

FORMAT_NAME = "lsr-index"
FORMAT_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)
MANIFEST = "manifest.json"
STORE = "store.jsonl"
QUANTIZATIONS = ("float32", "uint16", "uint8")

# file name -> (dtype or None for "the impacts' dtype", length key in manifest counts or None for
# "checked by the caller")
ARRAYS: dict[str, tuple[str | None, str | None]] = {
    "offsets": ("int64", "n_terms+1"),
    "postings_docs": ("uint32", "n_postings"),
    "postings_impacts": (None, "n_postings"),
    "term_max": ("float32", "n_terms"),
    "term_scale": ("float32", "n_terms"),
    "doc_ids": (None, "n_docs"),
    "doc_lengths": ("uint32", "n_docs"),
    "store_offsets": ("int64", "n_docs+1"),
    "doc_order": ("uint32", "n_docs"),
    "forward_offsets": ("int64", "n_docs+1"),
    "forward_terms": (None, "n_postings"),  # uint16 | uint32, checked by the forward part
    "forward_impacts": (None, "n_postings"),
    "bmp_offsets": ("int64", "n_terms+1"),
    "bmp_blocks": ("uint32", None),
    "bmp_starts": ("uint32", None),
    "bmp_max": (None, None),
    "bmp_dense_rows": ("int32", "n_terms"),
    "bmp_dense_max": (None, None),
    "bmp_dense_starts": ("uint32", None),
    "seismic_term_blocks": ("int64", "n_terms+1"),
    "seismic_block_docs_offsets": ("int64", None),
    "seismic_block_docs": ("uint32", None),
    "seismic_summary_offsets": ("int64", None),
    "seismic_summary_terms": ("int32", None),
    "seismic_summary_values": ("uint8", None),
    "seismic_summary_scale": ("float32", None),
}
IMPACT_ARRAYS = ("postings_impacts", "forward_impacts", "bmp_max", "bmp_dense_max")


def array_path(index_dir: str, name: str) -> str:
    return os.path.join(index_dir, f"{name}.npy")


MANIFEST_CRC = "manifest_crc32"
_CRC_MARK = f', "{MANIFEST_CRC}": '.encode()
CHUNK = 1 << 20  # bytes read at a time when checksumming


def is_index_file(name: str) -> bool:
    """Whether a file name belongs to the index format (the manifest, the store or a known array)."""
    return name in (MANIFEST, STORE) or (name.endswith(".npy") and name[:-4] in ARRAYS)


def is_index_dir(path: str) -> bool:
    """Whether ``path`` is (the remains of) an lsr index: a manifest of this format, or an
    unreadable manifest next to index arrays. Decides whether ``overwrite`` may replace it."""
    mpath = os.path.join(path, MANIFEST)
    if not os.path.isfile(mpath):
        return False
    try:
        with open(mpath, encoding="utf-8") as f:
            m = json.load(f)
        return isinstance(m, dict) and m.get("format") == FORMAT_NAME
    except (OSError, ValueError):
        return any(f.endswith(".npy") and is_index_file(f) for f in os.listdir(path))


def file_crc32(path: str) -> int:
    """CRC-32 of a file's bytes, streamed ``CHUNK`` bytes at a time (never the whole file in RAM)."""
    crc = 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            crc = zlib.crc32(chunk, crc)
    return crc


def file_checksums(index_dir: str) -> dict[str, Any]:
    """The manifest's ``checksums`` record: CRC-32 of every file of the directory but the manifest."""
    names = sorted(f for f in os.listdir(index_dir) if f != MANIFEST)
    return {"algorithm": "crc32", "files": {f: file_crc32(os.path.join(index_dir, f)) for f in names}}


def write_manifest(index_dir: str, manifest: dict[str, Any]) -> None:
    """Write ``manifest.json`` with its own CRC-32 as the last key (see the module docs)."""
    body = {k: v for k, v in manifest.items() if k != MANIFEST_CRC}
    text = json.dumps(body, ensure_ascii=False).encode("utf-8")
    crc = zlib.crc32(text)
    with open(os.path.join(index_dir, MANIFEST), "wb") as f:
        f.write(text[:-1] + _CRC_MARK + str(crc).encode() + b"}\n")


def manifest_crc_problem(index_dir: str) -> str | None:
    """None when ``manifest.json`` matches its recorded CRC-32 (or records none: an older index,
    then the caller says so), else what is wrong."""
    with open(os.path.join(index_dir, MANIFEST), "rb") as f:
        raw = f.read()
    at = raw.rfind(_CRC_MARK)
    if at < 0:
        return None
    tail = raw[at + len(_CRC_MARK) :].rstrip(b"\n")
    if not tail.endswith(b"}") or not tail[:-1].isdigit():
        return f"{MANIFEST}: its checksum field is damaged"
    if zlib.crc32(raw[:at] + b"}") != int(tail[:-1]):
        return f"{MANIFEST}: checksum mismatch (the manifest was changed or damaged)"
    return None


def read_manifest(index_dir: str) -> dict[str, Any]:
    """Read and check ``manifest.json``; raises :class:`LsrError` for anything but this format/version."""
    if not os.path.isdir(index_dir):
        if os.path.exists(index_dir):
            raise LsrError(f"{index_dir}: not a directory (an index is a directory)")
        raise LsrError(f"{index_dir}: no such index directory")
    path = os.path.join(index_dir, MANIFEST)
    if not os.path.isfile(path):
        raise LsrError(f"{index_dir}: not an lsr index (no {MANIFEST}; an unfinished build?)")
    try:
        with open(path, encoding="utf-8") as f:
            m = json.load(f)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise LsrError(f"{path}: unreadable manifest ({e})") from None
    if not isinstance(m, dict) or m.get("format") != FORMAT_NAME:
        raise LsrError(f"{path}: not an lsr index manifest")
    ver = m.get("format_version")
    if ver not in READABLE_VERSIONS:
        raise LsrError(
            f"{index_dir}: index format version {ver}, but this lsr reads versions {', '.join(map(str, READABLE_VERSIONS))}: rebuild the index"
        )
    for key in ("n_docs", "n_terms", "n_postings", "vocab", "quantization"):
        if key not in m:
            raise LsrError(f"{path}: manifest lacks '{key}'")
    if len(m["vocab"]) != m["n_terms"]:
        raise LsrError(
            f"{path}: vocabulary has {len(m['vocab'])} tokens, manifest says n_terms={m['n_terms']}"
        )
    return m


def open_array(index_dir: str, name: str, manifest: dict[str, Any], length: int | None = None) -> np.ndarray:
    """Memory-map one array and check its dtype and its length (from the manifest, or ``length``)."""
    path = array_path(index_dir, name)
    if not os.path.isfile(path):
        raise LsrError(f"{index_dir}: missing {name}.npy (incomplete or damaged index)")
    try:
        arr = read_npy(path, mmap=True)
    except (ValueError, OSError, EOFError) as e:
        raise LsrError(f"{path}: unreadable or truncated ({e})") from None
    dtype, length_key = ARRAYS[name]
    if name in IMPACT_ARRAYS:
        dtype = manifest["quantization"]["dtype"]
    if dtype is not None and arr.dtype != np.dtype(dtype):
        raise LsrError(f"{path}: dtype {arr.dtype}, expected {dtype}")
    if name == "doc_ids" and arr.dtype.kind != "S":
        raise LsrError(f"{path}: expected a bytes array of doc ids")
    if length_key is not None:
        expected = manifest[length_key.split("+")[0]] + (1 if length_key.endswith("+1") else 0)
    else:
        expected = arr.shape[0] if length is None else length
    if arr.ndim != 1 or arr.shape[0] != expected:
        raise LsrError(
            f"{path}: has {arr.shape} entries, manifest expects {expected} (truncated or mismatched)"
        )
    # A plain ndarray over the same mapping: np.memmap's subclass hooks cost microseconds per access.
    return arr.view(np.ndarray)
