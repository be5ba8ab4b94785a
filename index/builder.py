"""Streaming index construction with bounded memory.

Documents arrive as :class:`~lsr.vectors.SparseBatch` chunks (from a JSONL file, an encoder run over a
corpus, or arrays in memory). They are buffered until ``run_postings`` postings are held, then the
buffer is turned term-major (a stable sort by term keeps doc numbers ascending) and written as a
*run* of ``.npy`` files in the build directory. At the end the runs are merged straight into the
memory-mapped output arrays: each run's postings land at ``offsets[t] + (postings of t in earlier
runs)``, so the merge needs no sort and no more memory than one run. Impacts stay float32 in the
runs and are quantized during the merge, once the global maximum weight (and, with the
per-term quantizer, each term's maximum) is known.

Peak memory is about one run (``run_postings`` x ~24 bytes) plus the pages of the output arrays,
never the JSON text or the whole collection in Python objects.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import numpy as np

from lsr.errors import LsrError
from lsr.index import format as fmt
from lsr.index.methods import wants_reorder
from lsr.index.npy import read_npy
from lsr.index.parts import ALL_METHODS, build_parts, build_threads, check_methods, check_part_params
from lsr.vectors import SparseBatch, Vocabulary, iter_vector_chunks

DEFAULT_RUN_POSTINGS = 16_000_000


QUANTIZERS = ("term", "global")
# significant bits of a per-term step factor: a factor is k / 8 x 2^e (k in 8..16), so query weights
# times factors stay exact in float32 sums as often as plain query weights do (see term_factors)
FACTOR_BITS = 3


def quantize(weights: np.ndarray, dtype: str, scale: float | np.ndarray) -> np.ndarray:
    """Linear quantization ``round(w / scale)``, clipped to [1, max]: a positive weight never becomes 0.
    ``scale`` is one step or one per weight (the per-term quantizer's ``scale * term_scale[t]``)."""
    if dtype == "float32":
        return weights.astype(np.float32, copy=False)
    top = np.iinfo(dtype).max
    q = np.rint(weights.astype(np.float64) / scale)
    np.clip(q, 1, top, out=q)
    return q.astype(dtype)


def quantization_scale(max_weight: float, dtype: str) -> float:
    """The step of a linear quantizer that maps ``max_weight`` to the dtype's largest value."""
    if dtype == "float32" or max_weight <= 0:
        return 1.0
    return float(max_weight) / float(np.iinfo(dtype).max)


def term_factors(term_max_weight: np.ndarray, max_weight: float) -> np.ndarray:
    """Per-term step factors of the ``term`` quantizer: float32[n_terms] in (0, 1].

    Term t is quantized with step ``scale * f[t]`` where ``scale`` maps the collection's largest
    weight to the dtype's top value (:func:`quantization_scale`) and ``f[t]`` is the ratio
    ``term_max_weight[t] / max_weight`` (at least 2^-60, far from float32's underflow) rounded *up* to
    ``FACTOR_BITS + 1`` significant bits (so the
    term's own largest weight still fits: it maps to at least ``top * 8 / 9``, never clipped). One
    outlier then coarsens only its own term's grid, not every term's (the global quantizer's flaw on
    heavy-tailed weights). Few significant bits keep ``q_weight * f[t] * impact`` exact in float32
    for short query weights, as the kernels' rank-safety tests need. A term with no posting gets 1.
    """
    tmax = np.asarray(term_max_weight, np.float64)
    f = np.ones(len(tmax), np.float64)
    if max_weight <= 0:
        return f.astype(np.float32)
    r = tmax / float(max_weight)
    has = r > 0
    r = np.clip(r[has], 2.0**-60, 1.0)
    e = np.floor(np.log2(r))
    unit = np.exp2(e - FACTOR_BITS)  # the last kept bit of r's binary expansion
    f[has] = np.minimum(np.ceil(r / unit) * unit, 1.0)
    return f.astype(np.float32)


class IndexBuilder:
    """Accumulates document chunks into runs, then :meth:`finish` merges them into an index directory.

    Use through :func:`build_index`; exposed for callers that produce chunks themselves.
    """

    def __init__(
        self,
        output_dir: str | os.PathLike,
        quantization: str = "float32",
        vocab: Vocabulary | None = None,
        encoder_config: dict[str, Any] | None = None,
        run_postings: int = DEFAULT_RUN_POSTINGS,
        overwrite: bool = False,
        source: str = "",
        methods: Sequence[str] = ALL_METHODS,
        reorder: bool | None = None,
        bmp: dict[str, Any] | None = None,
        seismic: dict[str, Any] | None = None,
        reorder_params: dict[str, Any] | None = None,
        threads: int | None = None,
        scale: float | None = None,
        quantizer: str = "global",
        **part_params: dict[str, Any] | None,
    ) -> None:
        if quantizer not in QUANTIZERS:
            raise LsrError(f"quantizer must be one of {', '.join(QUANTIZERS)}, not {quantizer!r}")
        if quantization not in fmt.QUANTIZATIONS:
            raise LsrError(
                f"quantization must be one of {', '.join(fmt.QUANTIZATIONS)}, not {quantization!r}"
            )
        if run_postings <= 0:
            raise LsrError("run_postings must be > 0")
        self.output_dir = check_output(output_dir, overwrite)
        self.methods = check_methods(methods)
        # reordering pays off for the block-based methods; exact and MaxScore alone do not need it
        self.reorder = bool(reorder) if reorder is not None else wants_reorder(self.methods)
        self.part_params = {"bmp": bmp, "seismic": seismic, **part_params, "reorder_params": reorder_params}
        self.threads = threads
        for name, given in self.part_params.items():
            if given is not None and not isinstance(given, dict):
                raise LsrError(f"{name} must be a dict of parameters, got {type(given).__name__}")
        # every part's parameters (registry defaults + overrides) checked now, not after the merge
        check_part_params({k: v for k, v in self.part_params.items() if k != "reorder_params"})
        self.tmp_dir = f"{self.output_dir}.tmp-{os.getpid()}"
        remove_stale_builds(self.output_dir)
        shutil.rmtree(self.tmp_dir, ignore_errors=True)
        os.makedirs(self.tmp_dir)
        self.quantization = quantization
        # a fixed quantization step (the living index's segments share one, so scores compare and
        # merges copy impacts unchanged); None: from this build's largest weight
        self.fixed_scale = scale
        # "term": one step per term (scale x term_scale[t]); "global": one step for all. A fixed step
        # (living index segments) implies "global", as does float32 (nothing to quantize).
        self.quantizer = "global" if quantization == "float32" or scale is not None else quantizer
        self._term_max_weight = np.zeros(0, np.float64)  # largest weight of each term ("term" only)
        self.vocab = vocab
        self.encoder_config = encoder_config
        self.run_postings = run_postings
        self.overwrite = overwrite
        self.source = source
        self.n_docs = 0
        self.max_weight = 0.0
        self._t0 = time.perf_counter()
        self._runs: list[tuple[str, np.ndarray]] = []  # (run prefix, per-term counts)
        self._buf: list[SparseBatch] = []
        self._buf_postings = 0
        self._lengths: list[np.ndarray] = []
        self._ids_file = open(os.path.join(self.tmp_dir, "doc_ids.tmp.jsonl"), "w", encoding="utf-8")
        # Document store: title and text of each document, one JSON line each (empty when unknown).
        self._store = open(os.path.join(self.tmp_dir, fmt.STORE), "wb")
        self._store_lengths: list[np.ndarray] = []
        self._id_width = 1

    # -- accumulation ----------------------------------------------------------------------------
    def add(self, batch: SparseBatch) -> None:
        """Append a chunk of documents (their ``ids`` are required)."""
        if self.vocab is None:
            self.vocab = batch.vocab
        elif batch.vocab is not self.vocab and batch.vocab != self.vocab:
            raise LsrError("all chunks of one build must share one vocabulary")
        if batch.ids is None:
            raise LsrError("documents need ids")
        if len(batch) == 0:
            return
        if batch.nnz:
            if not np.all(np.isfinite(batch.data)) or batch.data.min() < 0:
                raise LsrError("document weights must be finite and >= 0")
            self.max_weight = max(self.max_weight, float(batch.data.max()))
            if self.quantizer == "term":
                top = int(batch.indices.max()) + 1
                if top > len(self._term_max_weight):
                    self._term_max_weight = np.pad(
                        self._term_max_weight, (0, top - len(self._term_max_weight))
                    )
                np.maximum.at(self._term_max_weight, batch.indices, batch.data.astype(np.float64))
        for doc_id in batch.ids:
            enc = doc_id.encode("utf-8")
            if not enc or b"\x00" in enc:
                raise LsrError(f"invalid document id {doc_id!r} (empty or containing NUL)")
            self._id_width = max(self._id_width, len(enc))
            self._ids_file.write(json.dumps(doc_id, ensure_ascii=False) + "\n")
        self._lengths.append(np.diff(batch.indptr).astype(np.uint32))
        self._add_documents(batch)
        self._buf.append(batch)
        self._buf_postings += batch.nnz
        self.n_docs += len(batch)
        if self._buf_postings >= self.run_postings:
            self._flush_run()

    def _add_documents(self, batch: SparseBatch) -> None:
        docs = batch.documents
        if docs is None:
            self._store_lengths.append(np.zeros(len(batch), np.int64))
            return
        if len(docs) != len(batch):
            raise LsrError(f"{len(docs)} documents for {len(batch)} vectors")
        lens = np.empty(len(docs), np.int64)
        for i, (title, text) in enumerate(docs):
            rec = json.dumps({"title": title, "text": text}, ensure_ascii=False).encode("utf-8") + b"\n"
            self._store.write(rec)
            lens[i] = len(rec)
        self._store_lengths.append(lens)

    def _flush_run(self) -> None:
        if not self._buf:
            return
        first_doc = self.n_docs - sum(len(b) for b in self._buf)
        lens = np.concatenate([np.diff(b.indptr) for b in self._buf])
        terms = np.concatenate([b.indices for b in self._buf])
        weights = np.concatenate([b.data for b in self._buf])
        docs = np.repeat(np.arange(first_doc, first_doc + len(lens), dtype=np.uint32), lens)
        self._buf.clear()
        self._buf_postings = 0
        # stable: doc numbers stay ascending within a term; numpy sorts 16-bit keys by radix sort
        # (4x faster than the merge sort it uses for int32 on 13M postings), the same order
        key = terms.astype(np.uint16) if len(terms) and int(terms.max()) < 1 << 16 else terms
        order = np.argsort(key, kind="stable")
        del key
        counts = np.bincount(terms, minlength=len(self.vocab)).astype(np.int64)  # type: ignore[arg-type]
        prefix = os.path.join(self.tmp_dir, f"run{len(self._runs):04d}")
        np.save(prefix + "_docs.npy", docs[order])
        del docs
        np.save(prefix + "_weights.npy", weights[order])
        self._runs.append((prefix, counts))

    # -- merge -----------------------------------------------------------------------------------
    def finish(self, show_progress: bool = False) -> str:
        """Merge the runs, write the manifest and move the index into place; returns its path."""
        try:
            return self._finish(show_progress)
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        """Remove the temporary build directory."""
        for f in (self._ids_file, self._store):
            if not f.closed:
                f.close()
        shutil.rmtree(self.tmp_dir, ignore_errors=True)

    def _finish(self, show_progress: bool) -> str:
        if self.n_docs == 0:
            raise LsrError("no documents to index: the input is empty")
        self._flush_run()
        self._ids_file.close()
        self._store.close()
        n_terms = len(self.vocab)  # type: ignore[arg-type]
        counts = np.zeros(n_terms, dtype=np.int64)
        for _, c in self._runs:
            counts[: len(c)] += c
        offsets = np.zeros(n_terms + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        n_postings = int(offsets[-1])
        if self.n_docs >= 2**32:
            raise LsrError("more than 2^32 - 1 documents are not supported by format version 1")
        scale = quantization_scale(self.max_weight, self.quantization)
        if self.fixed_scale is not None and self.quantization != "float32":
            scale = float(self.fixed_scale)
        factors = None
        if self.quantizer == "term":
            tmw = np.zeros(n_terms, np.float64)
            tmw[: len(self._term_max_weight)] = self._term_max_weight[:n_terms]
            factors = term_factors(tmw, self.max_weight)
        d = self.tmp_dir
        np.save(fmt.array_path(d, "offsets"), offsets)
        out_docs = np.lib.format.open_memmap(
            fmt.array_path(d, "postings_docs"), "w+", np.uint32, (n_postings,)
        )
        out_imp = np.lib.format.open_memmap(
            fmt.array_path(d, "postings_impacts"), "w+", np.dtype(self.quantization), (n_postings,)
        )
        term_max = np.zeros(n_terms, dtype=np.float32)
        filled = offsets[:-1].copy()  # next free slot of each term
        runs = self._runs
        if show_progress:
            from tqdm.auto import tqdm

            runs = tqdm(runs, desc="merging runs", unit="run", leave=False)
        for prefix, c in runs:
            c = np.pad(c, (0, n_terms - len(c)))
            rdocs = read_npy(prefix + "_docs.npy", mmap=True)
            rw = read_npy(prefix + "_weights.npy")
            nz = np.flatnonzero(c)
            run_start = np.zeros(n_terms, np.int64)
            np.cumsum(c[:-1], out=run_start[1:])
            dest = np.repeat(filled[nz] - run_start[nz], c[nz]) + np.arange(len(rw), dtype=np.int64)
            if factors is None:
                q = quantize(rw, self.quantization, scale)
            else:  # each posting with its term's step
                q = quantize(rw, self.quantization, scale * np.repeat(factors[nz].astype(np.float64), c[nz]))
            out_docs[dest] = rdocs
            out_imp[dest] = q
            if len(nz):
                np.maximum.at(
                    term_max, nz, np.maximum.reduceat(q, run_start[nz]).astype(np.float32) * np.float32(scale)
                )
            filled += c
            del rdocs, rw, q, dest
            os.remove(prefix + "_docs.npy")
            os.remove(prefix + "_weights.npy")
        out_docs.flush()
        out_imp.flush()
        del out_docs, out_imp
        np.save(fmt.array_path(d, "term_max"), term_max)
        if factors is not None:
            np.save(fmt.array_path(d, "term_scale"), factors)
        np.save(fmt.array_path(d, "doc_lengths"), np.concatenate(self._lengths))
        self._write_doc_ids()
        has_store = self._write_store()
        parts = build_parts(
            d,
            self.n_docs,
            n_terms,
            self.methods,
            self.reorder,
            log=(lambda msg: print(msg, file=sys.stderr, flush=True)) if show_progress else None,
            show_progress=show_progress,
            threads=self.threads,
            **self.part_params,
        )
        manifest = {
            "format": fmt.FORMAT_NAME,
            # the per-term quantizer's term_scale.npy is version 3; without it the layout is version 2's
            "format_version": fmt.FORMAT_VERSION if factors is not None else 2,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "lsr_version": _lsr_version(),
            "n_docs": self.n_docs,
            "n_terms": n_terms,
            "n_postings": n_postings,
            "quantization": {
                "dtype": self.quantization,
                "scale": scale,
                "max_weight": self.max_weight,
                "quantizer": self.quantizer,
            },
            "encoder": self.encoder_config,
            "source": self.source,
            "build_seconds": round(time.perf_counter() - self._t0, 3),
            "store": has_store,
            "parts": parts,
            "vocab": list(self.vocab.tokens),  # type: ignore[union-attr]
        }
        manifest["checksums"] = fmt.file_checksums(d)
        fmt.write_manifest(d, manifest)
        old = None
        if os.path.lexists(self.output_dir):
            if not self.overwrite:
                raise LsrError(f"{self.output_dir} appeared during the build; not replacing it")
            check_output(self.output_dir, True)  # still an lsr index, and nothing but one
            old = f"{self.output_dir}.old-{os.getpid()}"
            os.replace(self.output_dir, old)
        os.replace(d, self.output_dir)
        if old is not None:
            shutil.rmtree(old)
        return self.output_dir

    def _write_store(self) -> bool:
        """Keep the document store only when some document had text; returns whether it was kept."""
        path = os.path.join(self.tmp_dir, fmt.STORE)
        lens = np.concatenate(self._store_lengths)
        if not lens.any():
            os.remove(path)
            return False
        offsets = np.zeros(len(lens) + 1, np.int64)
        np.cumsum(lens, out=offsets[1:])
        np.save(fmt.array_path(self.tmp_dir, "store_offsets"), offsets)
        return True

    def _write_doc_ids(self) -> None:
        path = os.path.join(self.tmp_dir, "doc_ids.tmp.jsonl")
        ids = np.empty(self.n_docs, dtype=f"S{self._id_width}")
        with open(path, encoding="utf-8") as f:
            for i, line in enumerate(f):
                ids[i] = json.loads(line).encode("utf-8")
        os.remove(path)
        uniq, counts = np.unique(ids, return_counts=True)
        if len(uniq) != len(ids):
            dup = uniq[np.argmax(counts > 1)].decode("utf-8")
            raise LsrError(f"duplicate document id {dup!r}: document ids must be unique")
        del uniq, counts
        np.save(fmt.array_path(self.tmp_dir, "doc_ids"), ids)


def check_output(output_dir: str | os.PathLike, overwrite: bool) -> str:
    """Check that an index may be written at ``output_dir``; returns its absolute path.

    An existing path is replaced only with ``overwrite`` and only when it is an empty folder or an
    lsr index holding nothing but index files: a regular file, a symbolic link, a folder without an
    lsr manifest or an index with other files in it is refused (:class:`LsrError`), so
    ``--overwrite`` can never delete a user's files. Called by :class:`IndexBuilder` and early by the CLI (before a model loads).
    """
    path = os.path.abspath(os.fspath(output_dir))
    if os.path.lexists(path):
        if not overwrite:
            raise LsrError(f"{path} already exists (pass overwrite=True / --overwrite to replace it)")
        if os.path.islink(path):
            raise LsrError(f"{path} is a symbolic link: --overwrite replaces only an lsr index directory")
        if not os.path.isdir(path):
            raise LsrError(
                f"{path} is a file, not an index: --overwrite replaces only an lsr index directory"
            )
        if not os.listdir(path):
            pass  # an empty folder (e.g. a fresh temporary directory): nothing in it to lose
        elif not fmt.is_index_dir(path):
            raise LsrError(
                f"{path} is not an lsr index (no lsr {fmt.MANIFEST}): --overwrite replaces only an lsr index, "
                "never other folders; choose another --output or remove it yourself"
            )
        foreign = sorted(f for f in os.listdir(path) if not fmt.is_index_file(f))
        if foreign:
            shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
            raise LsrError(
                f"{path} holds files that are not part of an lsr index ({shown}): not replacing it"
            )
    parent = os.path.dirname(path)
    if not os.path.isdir(parent):
        raise LsrError(f"{parent}: no such directory for the index")
    return path


# what a build directory holds while it runs: run files, the id spill file and the final files
_BUILD_FILE = re.compile(r"run\d+_(docs|weights)\.npy|doc_ids\.tmp\.jsonl")


def remove_stale_builds(output_dir: str) -> list[str]:
    """Remove ``<output_dir>.tmp-<pid>`` build directories left by a killed build (SIGKILL, SIGTERM,
    power loss) of the same output, and ``.old-<pid>`` ones (a replaced index not yet deleted):
    those whose process is gone and which hold nothing but build or index files. A directory whose pid is alive (a build running now) is left alone. Returns the removed."""
    parent, base = os.path.split(output_dir)
    removed = []
    try:
        names = os.listdir(parent)
    except OSError:
        return removed
    for name in names:
        m = re.fullmatch(re.escape(base) + r"\.(?:tmp|old)-(\d+)", name)
        if not m:
            continue
        pid = int(m.group(1))
        path = os.path.join(parent, name)
        if pid == os.getpid() or _pid_alive(pid) or os.path.islink(path) or not os.path.isdir(path):
            continue
        if all(fmt.is_index_file(f) or _BUILD_FILE.fullmatch(f) for f in os.listdir(path)):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (``os.kill(pid, 0)``: a permission error means it does)."""
    if pid <= 0:
        return True  # not a pid we could have written: keep the folder
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return True
    return True


def _lsr_version() -> str:
    from lsr import __version__

    return __version__


def _chunks_from_source(
    source: Any,
    vocab: Vocabulary | None,
    ids: list[str] | None,
    chunk_size: int,
    encoder: Any,
    batch_size: int,
    read_workers: int = 1,
) -> tuple[Iterator[SparseBatch], str, int | None]:
    """Normalise every accepted source into a stream of SparseBatch chunks: (chunks, description,
    total). ``read_workers``: processes that parse a large JSONL vector file (see
    :func:`lsr.vectors.iter_vector_chunks`)."""
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        from lsr.texts import sniff_jsonl

        kind = sniff_jsonl(path)
        if kind == "text":
            if encoder is None:
                raise LsrError(f"{path} holds texts (BEIR corpus): give a model (--model) to encode them")
            # compatibility: a text corpus is encoded beside the encoders (lsr.corpus; it imports no
            # encoder module, it only calls the given encoder's encode_documents)
            from lsr.corpus import encode_corpus

            return encode_corpus(encoder, path, batch_size), f"corpus:{path}", None
        return (
            iter_vector_chunks(path, vocab, chunk_size=chunk_size, unknown="add", workers=read_workers),
            f"vectors:{path}",
            None,
        )
    if isinstance(source, SparseBatch):
        b = source
        if b.ids is None:
            b = SparseBatch(b.indptr, b.indices, b.data, b.vocab, ids or [str(i) for i in range(len(b))])
        return _split(b, chunk_size), "SparseBatch", len(b)
    try:
        import scipy.sparse as sp

        if sp.issparse(source):
            if vocab is None:
                raise LsrError("building from a scipy matrix needs vocab= (the token of each column)")
            m = sp.csr_matrix(source)
            n = m.shape[0]
            doc_ids = ids if ids is not None else [str(i) for i in range(n)]
            if len(doc_ids) != n:
                raise LsrError(f"{len(doc_ids)} ids for {n} rows")

            def gen() -> Iterator[SparseBatch]:
                for s in range(0, n, chunk_size):
                    yield SparseBatch.from_scipy(m[s : s + chunk_size], vocab, doc_ids[s : s + chunk_size])

            return gen(), "scipy", n
    except ImportError:  # pragma: no cover
        pass
    if isinstance(source, Iterable):
        items = iter(source)

        def gen2() -> Iterator[SparseBatch]:
            v = vocab
            pending: list[Mapping[str, float]] = []
            n = 0
            for item in items:
                if isinstance(item, SparseBatch):
                    yield item
                elif isinstance(item, Mapping):
                    pending.append(item)
                    if len(pending) >= chunk_size:
                        b = SparseBatch.from_dicts(pending, v, unknown="add", ids=None)
                        v = b.vocab
                        b.ids = _default_ids(ids, n, len(pending))
                        n += len(pending)
                        pending.clear()
                        yield b
                else:
                    raise LsrError(
                        f"cannot index a {type(item).__name__}: expected SparseBatch or {{token: weight}} dicts"
                    )
            if pending:
                b = SparseBatch.from_dicts(pending, v, unknown="add")
                b.ids = _default_ids(ids, n, len(pending))
                yield b

        return gen2(), "iterable", None
    raise LsrError(f"cannot build an index from a {type(source).__name__}")


def _default_ids(ids: list[str] | None, start: int, n: int) -> list[str]:
    return list(ids[start : start + n]) if ids is not None else [str(i) for i in range(start, start + n)]


def _split(b: SparseBatch, chunk_size: int) -> Iterator[SparseBatch]:
    if len(b) <= chunk_size:
        yield b
        return
    for s in range(0, len(b), chunk_size):
        yield b.select(np.arange(s, min(len(b), s + chunk_size)))


def build_index(
    source: Any,
    output_dir: str | os.PathLike,
    *,
    quantization: str = "float32",
    encoder: Any = None,
    vocab: Vocabulary | list[str] | None = None,
    ids: list[str] | None = None,
    overwrite: bool = False,
    run_postings: int = DEFAULT_RUN_POSTINGS,
    chunk_size: int = 10_000,
    batch_size: int = 512,
    show_progress: bool = False,
    methods: Sequence[str] = ALL_METHODS,
    reorder: bool | None = None,
    bmp: dict[str, Any] | None = None,
    seismic: dict[str, Any] | None = None,
    reorder_params: dict[str, Any] | None = None,
    threads: int | None = None,
    source_name: str | None = None,
    scale: float | None = None,
    quantizer: str = "global",
    **part_params: dict[str, Any] | None,
) -> str:
    """Build an index directory from ``source`` and return its path.

    ``source`` is a JSONL vector file (``{"id", "vector": {token: weight}}``, gzipped or not), a BEIR
    corpus file (then ``encoder`` encodes it on the fly), a :class:`SparseBatch`, a scipy sparse
    matrix (with ``vocab``: the token of each column), or an iterable of SparseBatch chunks or
    ``{token: weight}`` dicts. ``ids`` names the documents where the source has no ids (default
    "0", "1", ...). ``quantization`` is ``float32``, ``uint16`` or ``uint8`` (linear, scale stored).
    ``encoder`` (any object with ``config()`` and ``vocab``, as :func:`lsr.load_encoder` returns) is
    recorded in the manifest so text queries are encoded the same way (by :class:`lsr.Retriever`;
    :meth:`lsr.Retriever.from_corpus` is the text-to-index path, the corpus file form stays for
    compatibility). Memory stays bounded by ``run_postings`` (see module docs) while reading
    the source; the optional parts are then built in memory (about 3x the postings' size).

    ``methods`` lists the search methods the index must serve (default: all of ``exact``,
    ``maxscore``, ``bmp``, ``seismic``); each adds the parts it needs (see :mod:`lsr.index.parts`).
    ``reorder`` renumbers documents by graph bisection (default: when ``bmp`` or ``seismic`` is
    built). ``bmp`` / ``seismic`` / ``reorder_params`` override the build parameters
    (``{"block_size"}``, ``{"n_postings", "block_size", "summary_energy", "summary_terms"}``,
    ``{"terms", "iterations", "leaf"}``); any other registered part (:mod:`lsr.index.methods`) takes
    its build parameters the same way, as ``<part name>={...}``. ``source_name`` overrides the source description recorded
    in the manifest (e.g. ``corpus:<path>`` when the caller encoded the corpus itself). ``threads`` caps the
    parallel part builds (default: every core).
    ``scale`` fixes the quantization step (uint8/uint16; weights above ``scale * max`` are clipped)
    instead of deriving it from the largest weight (it implies the ``global`` quantizer).
    ``quantizer`` picks how uint8/uint16 steps are chosen: ``"global"`` (default) one step for every
    term, or ``"term"``, one step per term, ``scale x term_scale[t]`` (:func:`term_factors`; format
    version 3), for heavy-tailed weights; ``lsr.index.format`` documents both and why global is the
    default.
    """
    if isinstance(vocab, list):
        vocab = Vocabulary(vocab)
    if encoder is not None and vocab is None:
        vocab = encoder.vocab
    chunks, desc, total = _chunks_from_source(
        source, vocab, ids, chunk_size, encoder, batch_size, read_workers=build_threads(threads)
    )
    builder = IndexBuilder(
        output_dir,
        quantization=quantization,
        vocab=vocab,
        encoder_config=encoder.config() if encoder is not None else None,
        run_postings=run_postings,
        overwrite=overwrite,
        source=source_name or desc,
        methods=methods,
        reorder=reorder,
        bmp=bmp,
        seismic=seismic,
        reorder_params=reorder_params,
        threads=threads,
        scale=scale,
        quantizer=quantizer,
        **part_params,
    )
    bar = None
    try:
        if show_progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=total, desc="indexing", unit="doc")
        for chunk in chunks:
            builder.add(chunk)
            if bar is not None:
                bar.update(len(chunk))
    except BaseException:
        builder.abort()
        raise
    finally:
        if bar is not None:
            bar.close()
    return builder.finish(show_progress=show_progress)
