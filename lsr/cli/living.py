"""``lsr add`` / ``lsr delete`` / ``lsr merge``: change a living index (see :mod:`lsr.index.segments`).

``lsr add`` reads vectors JSONL (``{"id", "vector", "metadata"?, "title"?, "text"?|"content"?}``)
or a BEIR corpus (``{"_id", "title", "text", "metadata"?}``, encoded with the index's recorded
encoder). An id the index holds is replaced. Everything is committed once at the end (a killed
``lsr add`` leaves the index exactly as it was), or every ``--commit-every`` documents.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from lsr.cli.common import check_input, check_positive, summary
from lsr.errors import LsrError

CHUNK = 2_000


def _records(path: str) -> Iterator[tuple[int, dict]]:
    from lsr.vectors import iter_jsonl

    yield from iter_jsonl(path)


def _metadata(obj: dict, path: str, lineno: int) -> dict | None:
    meta = obj.get("metadata")
    if meta is not None and not isinstance(meta, dict):
        raise LsrError(f"{path}:{lineno}: 'metadata' must be an object, got {type(meta).__name__}")
    return meta or None


def _vector_chunks(path: str) -> Iterator[tuple[list, list[str], list, list | None]]:
    """(vectors, ids, metadata, documents) in chunks, from a vectors JSONL file."""
    from lsr.vectors import _record_id

    vecs: list = []
    ids: list[str] = []
    metas: list = []
    docs: list = []
    has_docs = False
    for lineno, obj in _records(path):
        vec = obj.get("vector")
        if not isinstance(vec, dict):
            raise LsrError(f"{path}:{lineno}: no 'vector' object")
        ids.append(_record_id(obj, path, lineno))
        vecs.append(vec)
        metas.append(_metadata(obj, path, lineno))
        text = obj.get("text", obj.get("content"))
        if text is not None or obj.get("title"):
            has_docs = True
        docs.append((obj.get("title") or "", text or ""))
        if len(ids) >= CHUNK:
            yield vecs, ids, metas, docs if has_docs else None
            vecs, ids, metas, docs, has_docs = [], [], [], [], False
    if ids:
        yield vecs, ids, metas, docs if has_docs else None


def _text_chunks(path: str, index: Any, batch_size: int) -> Iterator[tuple[Any, list[str], list, list]]:
    """(SparseBatch, ids, metadata, documents) in chunks, from a BEIR corpus encoded with the
    index's recorded encoder."""
    from lsr.vectors import _record_id

    encoder = index.load_encoder()
    recs: list[tuple[str, str, str, dict | None]] = []

    def encode() -> tuple[Any, list[str], list, list]:
        texts = [f"{t} {x}" if t else x for _, t, x, _ in recs]
        batch = encoder.encode_documents(texts)
        out = (batch, [r[0] for r in recs], [r[3] for r in recs], [(r[1], r[2]) for r in recs])
        recs.clear()
        return out

    for lineno, obj in _records(path):
        rid = _record_id(obj, path, lineno, ("_id", "id"))
        text, title = obj.get("text"), obj.get("title") or ""
        if not isinstance(text, str) or not isinstance(title, str):
            raise LsrError(f"{path}:{lineno}: 'text' (and 'title') must be strings")
        recs.append((rid, title, text, _metadata(obj, path, lineno)))
        if len(recs) >= batch_size:
            yield encode()
    if recs:
        yield encode()


def run_add(args: Any) -> int:
    from tqdm.auto import tqdm

    from lsr.texts import sniff_jsonl

    check_input(args.input)
    check_positive("commit-every", args.commit_every)
    check_positive("batch-size", args.batch_size)
    kind = sniff_jsonl(args.input)
    index = _writer(args.index)
    before = index.n_live_docs
    t0 = time.perf_counter()
    added = since_commit = 0
    chunks = (
        _vector_chunks(args.input) if kind == "vectors" else _text_chunks(args.input, index, args.batch_size)
    )
    with tqdm(desc="adding", unit="doc") as bar:
        for data, ids, metas, docs in chunks:
            s = 0
            while s < len(ids):
                e = len(ids) if not args.commit_every else min(len(ids), s + args.commit_every - since_commit)
                part = data[s:e] if isinstance(data, list) else data.select(list(range(s, e)))
                index.add(part, ids=ids[s:e], metadata=metas[s:e], documents=docs[s:e] if docs else None)
                added += e - s
                since_commit += e - s
                bar.update(e - s)
                s = e
                if args.commit_every and since_commit >= args.commit_every:
                    index.commit()
                    since_commit = 0
    gen = index.commit()
    replaced = before + added - index.n_live_docs
    summary(
        f"added {added} documents ({replaced} replaced) in {time.perf_counter() - t0:.1f} s -> {index.path}: "
        f"generation {gen}, {len(index.segments)} segments, {index.n_live_docs} live documents"
    )
    return 0


def run_delete(args: Any) -> int:
    ids = list(args.id or [])
    if args.ids:
        check_input(args.ids)
        with open(args.ids, encoding="utf-8") as f:
            ids += [line.strip() for line in f if line.strip()]
    if not ids:
        raise LsrError("no ids to delete: give --id ID ... or --ids FILE")
    index = _writer(args.index)
    res = index.delete(ids)
    gen = index.commit()
    summary(
        f"deleted {res['deleted']} documents ({res['not_found']} ids not found) -> generation {gen}, "
        f"{index.n_live_docs} live documents"
    )
    return 0


def run_merge(args: Any) -> int:
    if args.max_segments is not None:
        check_positive("max-segments", args.max_segments)
    index = _writer(args.index)
    n0 = len(index.segments)
    t0 = time.perf_counter()
    gen = index.merge(max_segments=args.max_segments, show_progress=True)
    summary(
        f"merged {n0} -> {len(index.segments)} segments in {time.perf_counter() - t0:.1f} s: generation {gen}, "
        f"{index.n_live_docs} live documents"
    )
    return 0


def describe_living(index: Any) -> dict[str, Any]:
    """``lsr info --json`` of a living index."""
    return {
        "path": index.path,
        "format": "lsr-generation",
        "generation": index.generation,
        "n_docs": index.n_live_docs,
        "n_terms": index.n_terms,
        "quantization": {"dtype": index.quantization, "scale": float(index.scale)},
        "encoder": index.encoder_config,
        "methods": list(index.methods),
        "segments": index.segments,
        "pending_merges": index.pending_merges,
        "fields": index.fields,
        "size_bytes": index.size_bytes(),
    }


def print_segments(index: Any) -> None:
    """The ``lsr info`` lines of a living index: generation and one line per segment."""
    print(
        f"generation  {index.generation}  ({len(index.segments)} segments, {index.pending_merges} merges pending)"
    )
    print(f"documents   {index.n_live_docs:,} live")
    for s in index.segments:
        parts = ", ".join(s["parts"]) or "none (searched exactly)"
        print(f"  {s['name']:<12} {s['docs']:>10,} docs {s['deleted']:>9,} deleted   parts: {parts}")
    if index.fields:
        print("metadata    " + ", ".join(f"{k} ({v})" for k, v in sorted(index.fields.items())))


def run(args: Any) -> int:
    try:
        return {"add": run_add, "delete": run_delete, "merge": run_merge}[args.command](args)
    finally:
        _close_writers()


_WRITERS: list[Any] = []


def _writer(path: str) -> Any:
    """Open ``path`` as its writer; released by :func:`run` when the command ends (the lock is held
    by an open file, which a reference cycle could otherwise keep until the next collection)."""
    from lsr.index import open_index

    ix = open_index(path, writable=True)
    _WRITERS.append(ix)
    return ix


def _close_writers() -> None:
    while _WRITERS:
        _WRITERS.pop().close()
