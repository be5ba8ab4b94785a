"""Reading text collections in BEIR format.

BEIR corpora are JSON lines ``{"_id", "title", "text"}`` (``corpus.jsonl[.gz]``) and queries are
``{"_id", "text"}``; a document's text for encoding is ``title + " " + text``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

from lsr.errors import LsrError
from lsr.vectors import _record_id, iter_jsonl


@dataclass(frozen=True)
class TextRecord:
    id: str
    title: str
    text: str

    @property
    def full_text(self) -> str:
        """What an encoder sees: ``title + " " + text`` (just the text when there is no title)."""
        return f"{self.title} {self.text}" if self.title else self.text


def iter_texts(path: str | os.PathLike) -> Iterator[TextRecord]:
    """Stream a BEIR corpus or queries file (``_id``/``id``, optional ``title``, ``text``)."""
    path = os.fspath(path)
    for lineno, obj in iter_jsonl(path):
        rid = _record_id(obj, path, lineno, ("_id", "id"))
        text = obj.get("text")
        title = obj.get("title") or ""
        if text is None and "vector" in obj:
            raise LsrError(
                f"{path}:{lineno}: this is a vector file (it has 'vector'), expected BEIR text with 'text'"
            )
        if not isinstance(text, str):
            raise LsrError(f"{path}:{lineno}: no 'text' string")
        if not isinstance(title, str):
            raise LsrError(f"{path}:{lineno}: 'title' must be a string")
        yield TextRecord(rid, title, text)


def sniff_jsonl(path: str | os.PathLike) -> str:
    """``"vectors"`` when the first record has a ``vector`` object, ``"text"`` when it has ``text``."""
    path = os.fspath(path)
    for lineno, obj in iter_jsonl(path):
        if isinstance(obj.get("vector"), dict):
            return "vectors"
        if isinstance(obj.get("text"), str):
            return "text"
        raise LsrError(f"{path}:{lineno}: neither a vector record ('vector') nor a BEIR text record ('text')")
    raise LsrError(f"{path}: the file is empty")


def read_qrels(path: str | os.PathLike) -> dict[str, dict[str, int]]:
    """Read BEIR qrels (``query-id<TAB>corpus-id<TAB>score`` with a header) or TREC qrels."""
    path = os.fspath(path)
    qrels: dict[str, dict[str, int]] = {}
    from lsr.vectors import open_text

    with open_text(path) as f:
        for lineno, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if lineno == 1 and parts[0] == "query-id":
                continue
            if len(parts) == 3:
                q, d, s = parts
            elif len(parts) == 4:
                q, _, d, s = parts
            else:
                raise LsrError(f"{path}:{lineno}: expected 'query-id corpus-id score'")
            try:
                qrels.setdefault(q, {})[d] = int(float(s))
            except ValueError:
                raise LsrError(f"{path}:{lineno}: score {s!r} is not a number") from None
    return qrels
