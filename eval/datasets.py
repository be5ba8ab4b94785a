"""Datasets: BEIR-format folders (``corpus.jsonl[.gz]``, ``queries.jsonl``, ``qrels/<split>.tsv``)
and :func:`load_dataset`, which resolves what ``lsr eval --dataset`` names (a bundled name, a BEIR
folder, or an ir-datasets id exported by :mod:`lsr.eval.irds`) into an :class:`EvalDataset`."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lsr.errors import LsrError

BUNDLED = {"scifact": Path(__file__).resolve().parent / "data" / "scifact"}


@dataclass(frozen=True)
class BeirFolder:
    """The files of one BEIR folder (absolute or relative paths as given)."""

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


@dataclass
class EvalDataset:
    """A resolved dataset: its files, all queries, the split's qrels and their fingerprints."""

    name: str
    source: str  # "bundled", "folder" or "ir_datasets"
    root: str
    corpus: str
    queries_path: str
    qrels_path: str
    queries: list[Any]  # TextRecord, in file order
    qrels: dict[str, dict[str, int]]
    fingerprints: dict[str, str] = field(default_factory=dict)
    n_docs: int = 0
    empty_docs: int = 0  # documents whose title and text are both blank

    @property
    def judged(self) -> dict[str, dict[str, int]]:
        """Qrels of the queries with at least one relevant (grade > 0) document."""
        return {q: d for q, d in self.qrels.items() if any(g > 0 for g in d.values())}


def load_dataset(dataset: str, split: str = "test", cache_dir: str | None = None) -> EvalDataset:
    """Resolve ``dataset``: a bundled name, a BEIR folder, or an ir-datasets id (exported once to a
    BEIR folder under ``cache_dir``)."""
    from lsr.eval.cache import default_cache_dir, sha256_file
    from lsr.eval.irds import export_ir_dataset
    from lsr.texts import iter_texts, read_qrels

    if dataset in BUNDLED:
        source, name = "bundled", dataset
        folder = beir_folder(dataset, split)
    elif os.path.isdir(dataset) or dataset.startswith(("/", ".", "~")) or os.path.exists(dataset):
        source, name = "folder", os.path.basename(os.path.normpath(dataset))
        folder = beir_folder(os.path.expanduser(dataset), split)
    elif "/" in dataset:
        source, name = "ir_datasets", dataset
        folder = export_ir_dataset(dataset, cache_dir or default_cache_dir())
    else:
        raise LsrError(
            f"{dataset}: not a BEIR folder, a bundled dataset ({', '.join(BUNDLED)}) or an ir-datasets id"
        )
    queries = list(iter_texts(folder.queries))
    seen: set[str] = set()
    for q in queries:
        if q.id in seen:
            raise LsrError(f"{folder.queries}: duplicate query id {q.id!r}")
        seen.add(q.id)
    qrels = read_qrels(folder.qrels)
    n_docs = empty_docs = 0
    for r in iter_texts(folder.corpus):
        n_docs += 1
        empty_docs += not r.full_text.strip()
    if n_docs == 0:
        raise LsrError(f"{folder.corpus}: the corpus has no documents")
    fingerprints = {
        "corpus_sha256": sha256_file(folder.corpus),
        "queries_sha256": sha256_file(folder.queries),
        "qrels_sha256": sha256_file(folder.qrels),
    }
    return EvalDataset(
        name,
        source,
        folder.root,
        folder.corpus,
        folder.queries,
        folder.qrels,
        queries,
        qrels,
        fingerprints,
        n_docs,
        empty_docs,
    )
