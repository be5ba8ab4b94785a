"""BEIR-format dataset folders: ``corpus.jsonl[.gz]``, ``queries.jsonl``, ``qrels/<split>.tsv``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from lsr.errors import LsrError

BUNDLED = {"scifact": Path(__file__).resolve().parent / "data" / "scifact"}


@dataclass(frozen=True)
class BeirFolder:
    root: str
    corpus: str
    queries: str
    qrels: str


def beir_folder(name_or_path: str, split: str = "test") -> BeirFolder:
    """Locate the files of a BEIR folder (a bundled name such as ``"scifact"`` or a directory)."""
    root = str(BUNDLED[name_or_path]) if name_or_path in BUNDLED else os.fspath(name_or_path)
    if not os.path.isdir(root):
        raise LsrError(f"{root}: no such dataset directory")
    corpus = next(
        (
            os.path.join(root, f)
            for f in ("corpus.jsonl", "corpus.jsonl.gz")
            if os.path.isfile(os.path.join(root, f))
        ),
        None,
    )
    if corpus is None:
        raise LsrError(f"{root}: no corpus.jsonl[.gz]")
    queries = os.path.join(root, "queries.jsonl")
    if not os.path.isfile(queries):
        raise LsrError(f"{root}: no queries.jsonl")
    qrels = os.path.join(root, "qrels", f"{split}.tsv")
    if not os.path.isfile(qrels):
        raise LsrError(f"{root}: no qrels/{split}.tsv")
    return BeirFolder(root, corpus, queries, qrels)
