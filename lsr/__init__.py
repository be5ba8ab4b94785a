"""lsr: learned sparse retrieval.

Text -> learned sparse encoder (:func:`load_encoder`) -> :class:`SparseBatch` -> inverted index
(:mod:`lsr.index`) -> exact or pruned search; :class:`Retriever` is where text meets the index.
Heavy dependencies (torch, transformers, numba) are imported lazily, so ``import lsr`` and
``lsr --help`` stay fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lsr.errors import LsrError
from lsr.retriever import Retriever
from lsr.vectors import SparseBatch, Vocabulary, read_vectors, write_vectors

__version__ = "0.1.0"

__all__ = [
    "LsrError",
    "Retriever",
    "SparseBatch",
    "Vocabulary",
    "load_encoder",
    "read_vectors",
    "write_vectors",
    "__version__",
]

if TYPE_CHECKING:
    from lsr.encoders.base import Encoder


def load_encoder(name_or_path: str, **options: Any) -> Encoder:
    """Load an encoder by bundled name (``"splade-tiny"``), local directory or Hugging Face id.

    The kind (SPLADE, DyVo with entities, and later uniCOIL, inference-free) comes from the ``lsr_encoder.json``
    saved beside the weights; a plain masked-LM checkpoint loads as SPLADE. ``options`` override the
    saved settings (e.g. ``doc_max_length=512``, ``pooling="sum"``, ``doc_top_k=128``).
    """
    from lsr.encoders.base import load_encoder as _load

    return _load(name_or_path, **options)
