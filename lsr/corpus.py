"""Corpus encoding: a BEIR corpus file -> a stream of :class:`~lsr.vectors.SparseBatch` chunks.

This is where text meets the index on the build side (:meth:`lsr.Retriever.from_corpus`,
``lsr index --model``, ``lsr demo``, ``lsr eval``): documents are read with :mod:`lsr.texts`,
encoded in chunks by any encoder (``encode_documents``), and each chunk carries the document ids
and their title and text (for the index's document store). The index itself only sees vectors.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from lsr.vectors import SparseBatch


def encode_corpus(
    encoder: Any, path: str, batch_size: int = 1024, show_progress: bool = False
) -> Iterator[SparseBatch]:
    """Encode a BEIR corpus file in chunks of ``batch_size`` documents (title + " " + text).

    Each chunk has ``ids`` and ``documents`` ((title, text) per row) set. Memory holds one chunk.
    """
    from lsr.texts import iter_texts

    recs: list = []

    def encode() -> SparseBatch:
        b = encoder.encode_documents([r.full_text for r in recs], show_progress=show_progress)
        b.ids = [r.id for r in recs]
        b.documents = [(r.title, r.text) for r in recs]
        recs.clear()
        return b

    for rec in iter_texts(path):
        recs.append(rec)
        if len(recs) >= batch_size:
            yield encode()
    if recs:
        yield encode()
