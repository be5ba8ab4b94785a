"""CIFF, the Common Index File Format (Lin et al., 2020): lsr indexes to and from PISA, BMP, Anserini, ...

A CIFF file is a sequence of varint-length-prefixed protobuf messages: one ``Header``, then
``header.num_postings_lists`` ``PostingsList`` (a term, its df and cf, and its postings as
(d-gap doc id, tf) pairs: the first doc id absolute, each next one the difference to the previous), then
``header.num_docs`` ``DocRecord`` (doc id, collection doc id, length). The schema is
https://github.com/osirrc/ciff/blob/master/src/main/protobuf/common-index-file-format.proto; the message
classes are built here from that schema with the ``protobuf`` runtime (no generated code, no ``protoc``).

For learned sparse indexes ``tf`` holds the quantized impact (an integer), as PISA's and BMP's
``ciff2*`` tools read it. Export (:func:`export_ciff`): a uint8/uint16 index of the ``global`` quantizer
writes its stored impacts; one of the per-term quantizer (the default, whose steps differ by term, which
CIFF cannot say) is dequantized and quantized again like a float32 index; a float32 index whose impacts are all integers (e.g. one imported from CIFF) writes them unchanged; any other
float32 index is quantized linearly to ``bits`` (default 8) bits, ``round(w / scale)`` clipped to
[1, 2^bits - 1] with ``scale = max / (2^bits - 1)``, the same quantizer as ``lsr index --quantization``
(scores are then ``1 / scale`` times lsr's: the same ranking). Doc ids are the index's build order (the
order documents were added), so a reordered index exports the documents in their original numbering;
``doclength`` is the sum of the document's tfs. Import (:func:`read_ciff`, ``lsr index --input x.ciff``)
gives the tfs as float32 impacts, so ciff -> lsr -> ciff writes identical postings.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

from lsr.errors import LsrError

CIFF_VERSION = 1
_MESSAGES: dict[str, Any] = {}


def messages() -> dict[str, Any]:
    """The CIFF message classes (Header, Posting, PostingsList, DocRecord), built once from the schema."""
    if _MESSAGES:
        return _MESSAGES
    try:
        from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    except ImportError:
        raise LsrError("CIFF needs the protobuf package: pip install protobuf") from None
    F = descriptor_pb2.FieldDescriptorProto
    f = descriptor_pb2.FileDescriptorProto(name="lsr_ciff.proto", package="io.osirrc.ciff", syntax="proto3")
    schema = {
        "Header": [
            ("version", 1, F.TYPE_INT32),
            ("num_postings_lists", 2, F.TYPE_INT32),
            ("num_docs", 3, F.TYPE_INT32),
            ("total_postings_lists", 4, F.TYPE_INT32),
            ("total_docs", 5, F.TYPE_INT32),
            ("total_terms_in_collection", 6, F.TYPE_INT64),
            ("average_doclength", 7, F.TYPE_DOUBLE),
            ("description", 8, F.TYPE_STRING),
        ],
        "Posting": [("docid", 1, F.TYPE_INT32), ("tf", 2, F.TYPE_INT32)],
        "PostingsList": [
            ("term", 1, F.TYPE_STRING),
            ("df", 2, F.TYPE_INT64),
            ("cf", 3, F.TYPE_INT64),
            ("postings", 4, F.TYPE_MESSAGE),
        ],
        "DocRecord": [
            ("docid", 1, F.TYPE_INT32),
            ("collection_docid", 2, F.TYPE_STRING),
            ("doclength", 3, F.TYPE_INT32),
        ],
    }
    for name, fields in schema.items():
        m = f.message_type.add(name=name)
        for fname, num, ftype in fields:
            fd = m.field.add(name=fname, number=num, type=ftype, label=F.LABEL_OPTIONAL)
            if fname == "postings":
                fd.label = F.LABEL_REPEATED
                fd.type_name = ".io.osirrc.ciff.Posting"
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(f.SerializeToString())
    fdesc = pool.FindFileByName("lsr_ciff.proto")
    for name in schema:
        _MESSAGES[name] = message_factory.GetMessageClass(fdesc.message_types_by_name[name])
    return _MESSAGES


# -- varint framing --------------------------------------------------------------------------------
def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _write_delimited(f: IO[bytes], msg: Any) -> None:
    data = msg.SerializeToString()
    f.write(_varint(len(data)))
    f.write(data)


def _read_delimited(f: IO[bytes], cls: Any, what: str, path: str) -> Any:
    shift = size = 0
    while True:
        b = f.read(1)
        if not b:
            raise LsrError(f"{path}: truncated CIFF file (ends before {what})")
        size |= (b[0] & 0x7F) << shift
        if not b[0] & 0x80:
            break
        shift += 7
        if shift > 63:
            raise LsrError(f"{path}: not a CIFF file (bad length prefix before {what})")
    data = f.read(size)
    if len(data) != size:
        raise LsrError(f"{path}: truncated CIFF file (in {what})")
    msg = cls()
    try:
        msg.ParseFromString(data)
    except Exception as e:  # google.protobuf.message.DecodeError
        raise LsrError(f"{path}: not a CIFF file ({what} does not parse: {e})") from None
    return msg


# -- reading ---------------------------------------------------------------------------------------
@dataclass
class CiffIndex:
    """A CIFF file in memory as term-major arrays: the postings of term t (``terms[t]``) are
    ``docs[offsets[t]:offsets[t + 1]]`` (absolute doc ids, ascending) with ``tfs`` (int64)."""

    terms: list[str]
    offsets: np.ndarray
    docs: np.ndarray
    tfs: np.ndarray
    doc_ids: list[str]
    doc_lengths: np.ndarray
    description: str = ""

    @property
    def n_docs(self) -> int:
        return len(self.doc_ids)

    def to_scipy(self) -> Any:
        """(n_docs, n_terms) CSR matrix of the tfs as float32 (exact for tfs below 2^24)."""
        import scipy.sparse as sp

        term_of = np.repeat(np.arange(len(self.terms), dtype=np.int64), np.diff(self.offsets))
        m = sp.csr_matrix(
            (self.tfs.astype(np.float32), (self.docs, term_of)),
            shape=(self.n_docs, len(self.terms)),
            dtype=np.float32,
        )
        m.sort_indices()
        return m


def read_ciff(path: str | os.PathLike, show_progress: bool = False) -> CiffIndex:
    """Read a CIFF file (see the module docs); a truncated or malformed file raises :class:`LsrError`."""
    path = os.fspath(path)
    msgs = messages()
    try:
        f = open(path, "rb")
    except OSError as e:
        raise LsrError(f"{path}: cannot open ({e.strerror})") from None
    with f:
        h = _read_delimited(f, msgs["Header"], "the header", path)
        if h.num_postings_lists < 0 or h.num_docs < 0:
            raise LsrError(f"{path}: not a CIFF file (negative counts in the header)")
        terms: list[str] = []
        offsets = np.zeros(h.num_postings_lists + 1, np.int64)
        docs: list[np.ndarray] = []
        tfs: list[np.ndarray] = []
        bar = None
        if show_progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=h.num_postings_lists, desc="reading CIFF", unit="term", leave=False)
        try:
            _read_postings(f, h, path, msgs, terms, offsets, docs, tfs, bar)
        finally:
            if bar is not None:
                bar.close()
        doc_ids = [str(i) for i in range(h.num_docs)]
        lengths = np.zeros(h.num_docs, np.int64)
        for i in range(h.num_docs):
            r = _read_delimited(f, msgs["DocRecord"], f"doc record {i + 1} of {h.num_docs}", path)
            if not 0 <= r.docid < h.num_docs:
                raise LsrError(f"{path}: doc record with doc id {r.docid} outside 0..{h.num_docs - 1}")
            doc_ids[r.docid] = r.collection_docid or str(r.docid)
            lengths[r.docid] = r.doclength
    if len(set(terms)) != len(terms):
        raise LsrError(f"{path}: a term has two postings lists")
    return CiffIndex(
        terms,
        offsets,
        np.concatenate(docs) if docs else np.zeros(0, np.int64),
        np.concatenate(tfs) if tfs else np.zeros(0, np.int64),
        doc_ids,
        lengths,
        h.description,
    )


def _read_postings(
    f: IO[bytes],
    h: Any,
    path: str,
    msgs: dict[str, Any],
    terms: list,
    offsets: np.ndarray,
    docs: list,
    tfs: list,
    bar: Any,
) -> None:
    """Read the header's postings lists into ``terms``, ``offsets``, ``docs``, ``tfs`` (d-gaps decoded)."""
    for t in range(h.num_postings_lists):
        pl = _read_delimited(
            f, msgs["PostingsList"], f"postings list {t + 1} of {h.num_postings_lists}", path
        )
        d = np.fromiter((p.docid for p in pl.postings), np.int64, count=len(pl.postings))
        np.cumsum(d, out=d)  # d-gaps -> doc ids
        w = np.fromiter((p.tf for p in pl.postings), np.int64, count=len(pl.postings))
        if len(d) and (d[0] < 0 or (len(d) > 1 and np.any(np.diff(d) <= 0)) or d[-1] >= max(h.num_docs, 1)):
            raise LsrError(
                f"{path}: postings of term {pl.term!r} are not ascending doc ids below {h.num_docs}"
            )
        if np.any(w <= 0):
            raise LsrError(f"{path}: term {pl.term!r} has a posting with tf <= 0")
        terms.append(pl.term)
        offsets[t + 1] = offsets[t] + len(d)
        docs.append(d)
        tfs.append(w)
        if bar is not None:
            bar.update(1)


def index_from_ciff(path: str | os.PathLike, output_dir: str | os.PathLike, **build: Any) -> str:
    """Build an lsr index from a CIFF file (tfs as float32 impacts); ``build`` goes to
    :func:`lsr.index.build_index` (quantization, methods, overwrite, ...). Returns the index path."""
    from lsr.index import build_index

    c = read_ciff(path, show_progress=build.get("show_progress", False))
    return build_index(c.to_scipy(), output_dir, vocab=list(c.terms), ids=c.doc_ids, **build)


# -- writing ---------------------------------------------------------------------------------------
def _postings_in_build_order(index: Any) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """(term id, doc ids in build order ascending, raw impacts) per term with postings."""
    order = index.doc_order if len(index.doc_order) else None
    offsets = np.asarray(index.offsets)
    for t in range(index.n_terms):
        a, b = int(offsets[t]), int(offsets[t + 1])
        if a == b:
            continue
        docs = np.asarray(index.postings_docs[a:b], np.int64)
        imp = np.asarray(index.postings_impacts[a:b])
        if order is not None:
            docs = np.asarray(order[docs], np.int64)
            s = np.argsort(docs, kind="stable")
            docs, imp = docs[s], imp[s]
        yield t, docs, imp


def export_ciff(
    index_dir: str | os.PathLike, out: str | os.PathLike, bits: int = 8, show_progress: bool = False
) -> dict[str, Any]:
    """Write the lsr index ``index_dir`` as CIFF file ``out`` (see the module docs for the impacts).
    Returns ``{"n_terms", "n_docs", "n_postings", "scale"}`` (``scale``: impact = tf x scale)."""
    from lsr.index import open_index
    from lsr.index.builder import quantization_scale, quantize

    if bits not in (8, 16):
        raise LsrError(f"bits must be 8 or 16, not {bits!r}")
    index = open_index(index_dir)
    imp = np.asarray(index.postings_impacts)
    # per-term steps (format version 3's default): CIFF has one scale, so the dequantized weights are
    # quantized again with one global step, as a float32 index's are
    per_term = index.term_scale is not None
    if index.quantization != "float32" and not per_term:
        scale, dtype = float(index.scale), None
    elif not per_term and (len(imp) == 0 or (np.all(imp == np.rint(imp)) and float(imp.max()) < 2**31)):
        scale, dtype = 1.0, None
    else:
        dtype = "uint8" if bits == 8 else "uint16"
        top = index.term_max.astype(np.float64) * index.term_scale if per_term else imp
        scale = quantization_scale(float(top.max()), dtype)

    def weights(t: int, w: np.ndarray) -> np.ndarray:
        return w * (float(index.scale) * float(index.term_scale[t])) if per_term else w

    msgs = messages()
    doc_len = np.zeros(index.n_docs, np.int64)
    n_lists = 0
    for t, docs, w in _postings_in_build_order(index):
        tf = quantize(weights(t, w), dtype, scale).astype(np.int64) if dtype else w.astype(np.int64)
        np.add.at(doc_len, docs, tf)
        n_lists += 1
    total = int(doc_len.sum())
    out = os.fspath(out)
    tmp = f"{out}.tmp-{os.getpid()}"
    header = msgs["Header"](
        version=CIFF_VERSION,
        num_postings_lists=n_lists,
        num_docs=index.n_docs,
        total_postings_lists=n_lists,
        total_docs=index.n_docs,
        total_terms_in_collection=total,
        average_doclength=total / index.n_docs if index.n_docs else 0.0,
        description=f"lsr export-ciff of {os.path.basename(index.path)}; impact = tf x {scale!r}",
    )
    bar = None
    if show_progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_lists, desc="writing CIFF", unit="term", leave=False)
    try:
        with open(tmp, "wb") as f:
            _write_delimited(f, header)
            for t, docs, w in _postings_in_build_order(index):
                tf = quantize(weights(t, w), dtype, scale).astype(np.int64) if dtype else w.astype(np.int64)
                gaps = np.diff(docs, prepend=0)
                pl = msgs["PostingsList"](term=index.vocab.token(t), df=len(docs), cf=int(tf.sum()))
                pl.postings.extend(
                    msgs["Posting"](docid=g, tf=v) for g, v in zip(gaps.tolist(), tf.tolist(), strict=True)
                )
                _write_delimited(f, pl)
                if bar is not None:
                    bar.update(1)
            rec = msgs["DocRecord"]
            for d in range(index.n_docs):
                _write_delimited(
                    f,
                    rec(
                        docid=d, collection_docid=index._doc_ids[d].decode("utf-8"), doclength=int(doc_len[d])
                    ),
                )
        os.replace(tmp, out)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    finally:
        if bar is not None:
            bar.close()
    return {"n_terms": n_lists, "n_docs": index.n_docs, "n_postings": int(index.n_postings), "scale": scale}
