"""The inverted index: build it (:func:`build_index`), open it (:func:`open_index`), search it.

The on-disk layout is documented in :mod:`lsr.index.format`.
"""

from lsr.index.builder import build_index
from lsr.index.searcher import Index, SearchResult, open_index
from lsr.index.segments import SegmentedIndex

__all__ = ["Index", "SearchResult", "SegmentedIndex", "build_index", "open_index"]
