"""Training data for :mod:`lsr.training`: a BEIR split's (query, positive) pairs, hard negatives mined
by our own engine, optional teacher scores, and the search-based evaluation used during training.

Negatives come from one of:

* ``"bm25"``: BM25 (k1 0.9, b 0.4, as Anserini) over the encoder's word pieces, as impact vectors
  indexed and searched exactly by :mod:`lsr.index`;
* ``"model"``: the current encoder's own top-k (corpus encoded, indexed and searched the way users do);
* ``"none"``: in-batch negatives only;
* a file path: TSV ``query-id<TAB>doc-id`` per line, ranked best first (e.g. another system's run).

Judged-relevant documents of a query are never its negatives.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lsr.encoders.bm25 import bm25_vectors
from lsr.errors import LsrError
from lsr.texts import iter_texts, read_qrels
from lsr.vectors import SparseBatch, Vocabulary


@dataclass
class TrainData:
    """Texts and judgments for training: ``pairs`` are (query id, positive doc id), in file order."""

    corpus: dict[str, str]  # doc id -> title + " " + text
    corpus_path: str
    queries: dict[str, str]
    pairs: list[tuple[str, str]]
    relevant: dict[str, set[str]]  # every judged-relevant doc of a query (never a negative)
    dev_queries: dict[str, str] = field(default_factory=dict)
    dev_qrels: dict[str, dict[str, int]] = field(default_factory=dict)


def load_train_data(
    data: str,
    split: str = "train",
    dev_split: str | None = None,
    dev_fraction: float = 0.0,
    seed: int = 0,
) -> TrainData:
    """Load a BEIR folder (or a bundled dataset name such as ``"scifact"``) for training.

    ``dev_split`` names a qrels split used for evaluation during training; otherwise ``dev_fraction``
    of the training queries (chosen with ``seed``) are held out as the dev set.
    """
    from lsr.eval.datasets import beir_folder

    folder = beir_folder(data, split)
    corpus = {r.id: r.full_text for r in iter_texts(folder.corpus)}
    if not corpus:
        raise LsrError(f"{folder.corpus}: the corpus has no documents")
    queries_path = folder.queries
    queries = {r.id: r.text for r in iter_texts(queries_path)}
    extra = os.path.join(folder.root, f"queries.{split}.jsonl")
    if os.path.isfile(extra):  # BEIR-style folders that keep the train queries in a file of their own
        queries.update({r.id: r.text for r in iter_texts(extra)})
    qrels = read_qrels(folder.qrels)
    dev_qrels: dict[str, dict[str, int]] = {}
    if dev_split:
        dev_qrels = read_qrels(beir_folder(data, dev_split).qrels)
    elif dev_fraction:
        if not 0 < dev_fraction < 1:
            raise LsrError(f"dev_fraction must be in (0, 1), got {dev_fraction}")
        qids = sorted(q for q, d in qrels.items() if any(g > 0 for g in d.values()))
        rng = np.random.default_rng(seed)
        held = set(rng.choice(qids, size=max(1, round(len(qids) * dev_fraction)), replace=False).tolist())
        dev_qrels = {q: qrels.pop(q) for q in sorted(held)}
    pairs: list[tuple[str, str]] = []
    relevant: dict[str, set[str]] = {}
    missing_q = missing_d = 0
    for qid, judged in qrels.items():
        if qid not in queries:
            missing_q += 1
            continue
        for did, grade in judged.items():
            if grade <= 0:
                continue
            if did not in corpus:
                missing_d += 1
                continue
            pairs.append((qid, did))
            relevant.setdefault(qid, set()).add(did)
    if not pairs:
        raise LsrError(f"{folder.qrels}: no (query, relevant document) pair found in the corpus and queries")
    dev_queries = {q: queries[q] for q in dev_qrels if q in queries}
    return TrainData(
        corpus, folder.corpus, {q: queries[q] for q in relevant}, pairs, relevant, dev_queries, dev_qrels
    )


# -- negatives ------------------------------------------------------------------------------------
def _query_bags(tokenizer: Any, texts: Sequence[str], vocab: Vocabulary) -> SparseBatch:
    special = set(getattr(tokenizer, "all_special_ids", []))
    rows = tokenizer(list(texts), add_special_tokens=False, truncation=False)["input_ids"]
    dicts = [dict(Counter(vocab.token(t) for t in row if t not in special)) for row in rows]
    return SparseBatch.from_dicts([{k: float(v) for k, v in d.items()} for d in dicts], vocab)


def mine_negatives(
    source: str,
    data: TrainData,
    encoder: Any,
    depth: int = 50,
    show_progress: bool = False,
) -> dict[str, list[str]]:
    """Ranked hard negatives per training query (top ``depth`` of ``source``, minus relevant docs)."""
    qids = sorted(data.queries)
    if source == "none":
        return {}
    if source not in ("bm25", "model"):
        if not os.path.isfile(source):
            raise LsrError(f"negatives {source!r}: not 'bm25', 'model', 'none' or an existing TSV file")
        return _read_negatives_file(source, data)
    if source == "bm25":
        results = bm25_search(encoder, data.corpus, [data.queries[q] for q in qids], depth + 20)
    else:
        results, _, _ = search_corpus(
            encoder, data.corpus, [data.queries[q] for q in qids], depth + 20, show_progress
        )
    out: dict[str, list[str]] = {}
    for qid, res in zip(qids, results, strict=True):
        rel = data.relevant.get(qid, set())
        out[qid] = [d for d in res.ids if d not in rel][:depth]
    return out


def bm25_search(encoder: Any, corpus: dict[str, str], query_texts: list[str], k: int) -> list[Any]:
    """BM25 results (ids, scores) of ``query_texts`` over ``corpus``, on the encoder's word pieces,
    indexed and searched exactly by :mod:`lsr.index`."""
    from lsr.index.builder import build_index
    from lsr.index.searcher import Index

    tok = getattr(encoder, "tokenizer", None)
    if tok is None:
        raise LsrError("BM25 (negatives, dev candidates, fusion teacher) needs an encoder with a tokenizer")
    doc_ids = list(corpus)
    docs, vocab = bm25_vectors(tok, [corpus[d] for d in doc_ids])
    with tempfile.TemporaryDirectory(prefix="lsr-bm25-") as tmp:
        build_index(docs, tmp, ids=doc_ids, methods=("exact",), overwrite=True)
        queries: Any = _query_bags(tok, query_texts, vocab)
        return Index(tmp).search(queries, k=k)


def dev_candidates(data: TrainData, encoder: Any, depth: int) -> list[str]:
    """The documents dev evaluation searches: every judged document of the dev queries plus the BM25
    top-``depth`` of each dev query, in corpus order. Encoding them instead of the whole corpus
    makes a dev evaluation ~10x cheaper on SciFact (81 queries: ~2,000 of 5,183 documents at depth
    30); the nDCG it gives is that of a re-ranking of this pool, comparable between steps of a run,
    not with full-corpus figures."""
    qids = [q for q in data.dev_qrels if q in data.dev_queries]
    keep = {d for q in qids for d, g in data.dev_qrels[q].items() if d in data.corpus}
    for res in bm25_search(encoder, data.corpus, [data.dev_queries[q] for q in qids], depth):
        keep.update(res.ids)
    return [d for d in data.corpus if d in keep]


def fusion_teacher(
    encoder: Any, data: TrainData, depth: int = 100, show_progress: bool = False
) -> dict[str, dict[str, float]]:
    """Teacher scores from BM25 + ``encoder`` fused like the eval harness (sum of per-query min-max
    normalised scores, min and max over the documents of each system's top-``depth`` that share a
    term with the query, as ranx does), for every training query.

    Scores are given to the union of both top-``depth`` lists and the query's relevant documents;
    a document outside one system's list gets that system's exact score normalised by the same
    min and max (below 0 when under the list's minimum) rather than ranx's 0, so every candidate
    has a graded target.
    """
    qids = sorted(data.queries)
    texts = [data.queries[q] for q in qids]
    doc_ids = list(data.corpus)
    pos = {d: i for i, d in enumerate(doc_ids)}
    tok = getattr(encoder, "tokenizer", None)
    if tok is None:
        raise LsrError("the fusion teacher needs an encoder with a tokenizer (for BM25)")
    bm_docs, vocab = bm25_vectors(tok, [data.corpus[d] for d in doc_ids])
    bm_q = _query_bags(tok, texts, vocab)
    _, m_docs, m_q = search_corpus(encoder, data.corpus, texts, 1, show_progress)

    blocks = []
    for qb, db in ((bm_q, bm_docs), (m_q, m_docs)):
        width = max(qb.to_scipy().shape[1], db.to_scipy().shape[1])
        qm, dm = qb.to_scipy(), db.to_scipy()
        qm.resize((qm.shape[0], width))
        dm.resize((dm.shape[0], width))
        blocks.append(np.asarray((qm @ dm.T).todense(), dtype=np.float64))  # (queries, documents)
    out: dict[str, dict[str, float]] = {}
    for r, q in enumerate(qids):
        cand: set[int] = {pos[d] for d in data.relevant.get(q, ()) if d in pos}
        fused = np.zeros(len(doc_ids))
        for sc in blocks:
            row = sc[r]
            kth = min(depth, len(row)) - 1
            top = np.argpartition(-row, kth)[: kth + 1]
            top = top[row[top] > 0]  # what a search returns: documents sharing a term
            if not len(top):
                continue
            cand.update(top.tolist())
            lo, hi = row[top].min(), row[top].max()
            fused += (row - lo) / max(hi - lo, 1e-9)  # as ranx's min-max
        out[q] = {doc_ids[i]: float(fused[i]) for i in sorted(cand)}
    return out


def _read_negatives_file(path: str, data: TrainData) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            parts = line.split()
            if not parts or parts[0] in ("query-id", "qid"):
                continue
            if len(parts) < 2:
                raise LsrError(f"{path}:{lineno}: expected 'query-id<TAB>doc-id'")
            q, d = parts[0], parts[1]
            if d in data.corpus and d not in data.relevant.get(q, ()):
                out.setdefault(q, []).append(d)
    return out


# -- teacher scores -------------------------------------------------------------------------------
def read_teacher(path: str) -> dict[str, dict[str, float]]:
    """Teacher scores: TSV ``query-id<TAB>doc-id<TAB>score`` lines, or a JSON ``{qid: {docid: score}}``."""
    if not os.path.isfile(path):
        raise LsrError(f"teacher scores {path!r}: no such file")
    if path.endswith(".json"):
        with open(path, encoding="utf-8") as f:
            try:
                obj = json.load(f)
            except json.JSONDecodeError as e:
                raise LsrError(f"{path}: not valid JSON ({e})") from None
        if not isinstance(obj, dict):
            raise LsrError(f"{path}: expected {{query id: {{doc id: score}}}}")
        return {str(q): {str(d): float(s) for d, s in ds.items()} for q, ds in obj.items()}
    out: dict[str, dict[str, float]] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            parts = line.split()
            if not parts or parts[0] in ("query-id", "qid"):
                continue
            if len(parts) != 3:
                raise LsrError(f"{path}:{lineno}: expected 'query-id<TAB>doc-id<TAB>score'")
            try:
                out.setdefault(parts[0], {})[parts[1]] = float(parts[2])
            except ValueError:
                raise LsrError(f"{path}:{lineno}: score {parts[2]!r} is not a number") from None
    return out


# -- searching with the encoder being trained ------------------------------------------------------
def search_corpus(
    encoder: Any, corpus: dict[str, str], query_texts: list[str], k: int, show_progress: bool = False
) -> tuple[list[Any], SparseBatch, SparseBatch]:
    """Encode ``corpus`` with the current weights, index it (exact) in a temporary folder and search
    it with the encoded ``query_texts``, as users do (through :class:`lsr.Retriever`, which hands
    inference-free models this index's IDF without changing the encoder): (results, document
    vectors, query vectors)."""
    from lsr.index.builder import build_index
    from lsr.retriever import Retriever

    if hasattr(encoder, "refresh"):
        encoder.refresh()
    doc_ids = list(corpus)
    docs = encoder.encode_documents([corpus[d] for d in doc_ids], show_progress=show_progress)
    with tempfile.TemporaryDirectory(prefix="lsr-train-search-") as tmp:
        build_index(docs, tmp, ids=doc_ids, methods=("exact",), encoder=encoder, overwrite=True)
        # force: the encoder is the one that built this index a line above (no settings to compare)
        retriever = Retriever(tmp, encoder, force=True)
        qv = retriever.query_encoder.encode_queries(query_texts)  # as before: empty texts allowed
        results = retriever.search(qv, k=k)
    return results, docs, qv


# -- evaluation -----------------------------------------------------------------------------------
def evaluate(
    encoder: Any,
    corpus: dict[str, str],
    queries: dict[str, str],
    qrels: dict[str, dict[str, int]],
    k: int = 10,
    show_progress: bool = False,
) -> dict[str, float]:
    """nDCG@k of ``encoder`` through the path users take: encode the corpus, build an index, search
    it with encoded queries (exact). Also the mean non-zeros of document and query vectors."""
    from lsr.eval.metrics import ndcg_at_k

    qids = [q for q in qrels if q in queries]
    results, docs, qv = search_corpus(encoder, corpus, [queries[q] for q in qids], max(k, 100), show_progress)
    run = {q: dict(zip(r.ids, r.scores, strict=True)) for q, r in zip(qids, results, strict=True)}
    return {
        f"ndcg@{k}": ndcg_at_k(run, {q: qrels[q] for q in qids}, k),
        "doc_nnz": float(np.diff(docs.indptr).mean()) if len(docs) else 0.0,
        "query_nnz": float(np.diff(qv.indptr).mean()) if len(qv) else 0.0,
        "queries": len(qids),
    }
