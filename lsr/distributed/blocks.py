"""Blocks of a JSONL file: contiguous line ranges addressed by byte offsets, each with a content
hash, so workers read their own block straight from the file and a rerun can tell which blocks
are already done. A gzipped file cannot be entered mid-way: it is one block."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass

from lsr.errors import LsrError


@dataclass(frozen=True)
class Block:
    """Lines [start, end) bytes of ``path`` (``end`` -1: the whole file, for .gz): ``n`` records,
    ``sha256`` of those bytes (of the whole file for .gz)."""

    no: int
    path: str
    start: int
    end: int
    n: int
    sha256: str

    def to_dict(self) -> dict:
        return asdict(self)


def plan_blocks(path: str | os.PathLike, block_size: int) -> list[Block]:
    """Cut ``path`` into blocks of ``block_size`` non-blank lines (one pass, hashing as it reads)."""
    path = os.path.abspath(os.fspath(path))
    if block_size <= 0:
        raise LsrError(f"block size must be > 0, got {block_size}")
    if not os.path.isfile(path):
        raise LsrError(f"{path}: no such file")
    if path.endswith(".gz"):
        h = hashlib.sha256()
        n = 0
        import gzip

        with gzip.open(path, "rb") as f:
            for line in f:
                h.update(line)
                n += bool(line.strip())
        return [Block(0, path, 0, -1, n, h.hexdigest())] if n else []
    blocks: list[Block] = []
    with open(path, "rb") as f:
        start = pos = 0
        n = 0
        h = hashlib.sha256()
        for line in f:
            pos += len(line)
            h.update(line)
            if line.strip():
                n += 1
                if n == block_size:
                    blocks.append(Block(len(blocks), path, start, pos, n, h.hexdigest()))
                    start, n, h = pos, 0, hashlib.sha256()
        if n:
            blocks.append(Block(len(blocks), path, start, pos, n, h.hexdigest()))
    return blocks


def iter_block(block: Block) -> Iterator[tuple[int, dict]]:
    """(line number within the block, JSON object) for each non-blank line of ``block``."""
    from lsr.vectors import _loads, iter_jsonl

    if block.end < 0:
        yield from iter_jsonl(block.path)
        return
    with open(block.path, "rb") as f:
        f.seek(block.start)
        data = f.read(block.end - block.start)
    for lineno, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = _loads(line)
        except ValueError as e:
            raise LsrError(f"{block.path} (block {block.no}) line {lineno}: not valid JSON ({e})") from None
        if not isinstance(obj, dict):
            raise LsrError(f"{block.path} (block {block.no}) line {lineno}: expected a JSON object")
        yield lineno, obj


def block_texts(block: Block) -> list:
    """The BEIR text records of ``block`` (:class:`lsr.texts.TextRecord`)."""
    from lsr.texts import TextRecord
    from lsr.vectors import _record_id

    out = []
    for lineno, obj in iter_block(block):
        rid = _record_id(obj, block.path, lineno, ("_id", "id"))
        text, title = obj.get("text"), obj.get("title") or ""
        if not isinstance(text, str) or not isinstance(title, str):
            raise LsrError(f"{block.path} (block {block.no}) line {lineno}: no 'text' string")
        out.append(TextRecord(rid, title, text))
    return out
