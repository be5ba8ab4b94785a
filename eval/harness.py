"""The BEIR evaluation harness behind ``lsr eval``: effectiveness and efficiency in one report.

``run_eval(dataset, model, output)`` resolves the dataset (a BEIR folder, the bundled ``"scifact"``,
or an ir-datasets id such as ``"beir/scifact/test"``), encodes the corpus (cached under the cache
directory, keyed by the encoder's settings and weights and by the sha256 of the corpus file), builds
an index, encodes the queries one at a time (timed), searches with every method, evaluates with
ranx, runs a BM25 baseline and two fusions, and writes into ``output``:

- ``runs/<name>.trec``: one TREC run per system (``qid Q0 docid rank score tag``), ranked by score
  descending then doc id ascending, scores written as the shortest decimal that reads back exactly;
- ``qrels.tsv``: the judgments used (BEIR format), so ``lsr eval --compare`` needs nothing else;
- ``report.json``, ``report.md``, ``recall_latency.png``, ``ndcg_per_query.png``;
- ``leaderboard/``: the exact run and a metadata JSON for a BEIR leaderboard submission.

Evaluation follows BEIR: only queries that have a text and at least one judgment with a grade > 0 in
the split's qrels are searched and evaluated (the others are counted in the report and skipped); an
evaluated query with no hit scores 0 (ranx ``make_comparable``).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import resource
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lsr.errors import LsrError

METRICS = ("ndcg@10", "recall@100", "recall@1000", "mrr@10", "map")
RUNS_DIR = "runs"
CACHE_VERSION = 1


# -- datasets --------------------------------------------------------------------------------------
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


def default_cache_dir() -> str:
    """``$LSR_CACHE_DIR`` or ``~/.cache/lsr/eval``."""
    return os.environ.get("LSR_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "lsr", "eval")


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_dataset(dataset: str, split: str = "test", cache_dir: str | None = None) -> EvalDataset:
    """Resolve ``dataset``: a bundled name, a BEIR folder, or an ir-datasets id (exported once to a
    BEIR folder under ``cache_dir``)."""
    from lsr.eval.datasets import BUNDLED, beir_folder
    from lsr.texts import iter_texts, read_qrels

    if dataset in BUNDLED:
        source, name = "bundled", dataset
        folder = beir_folder(dataset, split)
    elif os.path.isdir(dataset) or dataset.startswith(("/", ".", "~")) or os.path.exists(dataset):
        source, name = "folder", os.path.basename(os.path.normpath(dataset))
        folder = beir_folder(os.path.expanduser(dataset), split)
    elif "/" in dataset:
        source, name = "ir_datasets", dataset
        folder = _export_ir_dataset(dataset, cache_dir or default_cache_dir())
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


def _export_ir_dataset(ds_id: str, cache_dir: str) -> Any:
    """Write an ir-datasets dataset as a BEIR folder under ``cache_dir/datasets`` (once).

    ir-datasets downloads missing files; with no network that hangs in retries, so the files the
    dataset needs are checked in its cache first and a missing one is a clear error at once.
    """
    from lsr.eval.datasets import BeirFolder

    safe = ds_id.replace("/", "__")
    root = os.path.join(cache_dir, "datasets", safe)
    done = os.path.join(root, ".complete")
    if not os.path.isfile(done):
        try:
            import ir_datasets
        except ImportError:
            raise LsrError("ir-datasets ids need the ir_datasets package: pip install 'lsr[eval]'") from None
        try:
            ds = ir_datasets.load(ds_id)
        except KeyError:
            raise LsrError(f"{ds_id}: neither a directory nor a known ir-datasets id") from None
        missing = _ir_datasets_missing_files(ds)
        if missing:
            raise LsrError(
                f"{ds_id}: not in the ir-datasets cache ({missing[0]} is missing; IR_DATASETS_HOME="
                f"{ir_datasets.util.home_path()}); download it once with network access "
                f"(python -c \"import ir_datasets; ir_datasets.load('{ds_id}').docs_count()\") or pass a BEIR folder"
            )
        if not (ds.has_docs() and ds.has_queries() and ds.has_qrels()):
            raise LsrError(
                f"{ds_id}: needs documents, queries and qrels (pick a split, e.g. beir/scifact/test)"
            )
        tmp = root + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(os.path.join(tmp, "qrels"))
        try:
            with open(os.path.join(tmp, "corpus.jsonl"), "w", encoding="utf-8") as f:
                for d in ds.docs_iter():
                    title = getattr(d, "title", "") or ""
                    text = getattr(d, "text", None)
                    if text is None:
                        text = getattr(d, "body", "") or ""
                    f.write(json.dumps({"_id": d.doc_id, "title": title, "text": text}, ensure_ascii=False))
                    f.write("\n")
            with open(os.path.join(tmp, "queries.jsonl"), "w", encoding="utf-8") as f:
                for q in ds.queries_iter():
                    text = getattr(q, "text", None)
                    if text is None:
                        text = getattr(q, "title", "") or ""
                    f.write(json.dumps({"_id": q.query_id, "text": text}, ensure_ascii=False))
                    f.write("\n")
            with open(os.path.join(tmp, "qrels", "test.tsv"), "w", encoding="utf-8") as f:
                f.write("query-id\tcorpus-id\tscore\n")
                for r in ds.qrels_iter():
                    f.write(f"{r.query_id}\t{r.doc_id}\t{int(r.relevance)}\n")
        except LsrError:
            raise
        except Exception as e:  # download attempts and parse errors inside ir_datasets
            shutil.rmtree(tmp, ignore_errors=True)
            raise LsrError(f"{ds_id}: ir-datasets could not provide it: {type(e).__name__}: {e}") from None
        shutil.rmtree(root, ignore_errors=True)
        os.replace(tmp, root)
        with open(done, "w") as f:
            f.write(ds_id + "\n")
    return BeirFolder(
        root,
        os.path.join(root, "corpus.jsonl"),
        os.path.join(root, "queries.jsonl"),
        os.path.join(root, "qrels", "test.tsv"),
    )


def _ir_datasets_missing_files(ds: Any) -> list[str]:
    """Cache files the dataset's handlers would download (empty when everything is local)."""
    missing: list[str] = []
    seen: set[int] = set()

    def walk(obj: Any, depth: int = 0) -> None:
        if obj is None or depth > 6 or id(obj) in seen:
            return
        seen.add(id(obj))
        kind = type(obj).__name__
        if kind == "Download":  # a file fetched from the network unless it is already on disk
            p = getattr(obj, "_cache_path", None)
            if p is None or not os.path.exists(p):
                missing.append(os.fspath(p) if p else f"a download from {getattr(obj, 'mirrors', '?')}")
            return
        if kind.endswith("Cache") and callable(getattr(obj, "path", None)):
            try:
                p = obj.path(force=False)
            except TypeError:
                p = None
            if p is not None and os.path.exists(p):
                return  # already extracted/cached: what it comes from is not needed
        if type(obj).__module__.startswith("ir_datasets"):
            for v in vars(obj).values() if hasattr(obj, "__dict__") else ():
                if isinstance(v, (list, tuple)):
                    for x in v:
                        walk(x, depth + 1)
                elif isinstance(v, dict):
                    for x in v.values():
                        walk(x, depth + 1)
                else:
                    walk(v, depth + 1)

    for handler in ("docs_handler", "queries_handler", "qrels_handler"):
        fn = getattr(ds, handler, None)
        if callable(fn):
            try:
                walk(fn())
            except Exception:
                pass
    return missing


# -- encoding cache --------------------------------------------------------------------------------
def encoder_fingerprint(encoder: Any) -> dict[str, Any]:
    """The encoder's settings (without its local path) and a sha256 over its model files."""
    cfg = {k: v for k, v in encoder.config().items() if k != "model_path"}
    h = hashlib.sha256()
    path = encoder.config().get("model_path")
    if path and os.path.isdir(path):
        for name in sorted(os.listdir(path)):
            p = os.path.join(path, name)
            if os.path.isfile(p):
                h.update(name.encode() + b"\0" + sha256_file(p).encode())
    else:
        h.update(json.dumps(cfg, sort_keys=True).encode())
    return {"config": cfg, "weights_sha256": h.hexdigest()}


def corpus_cache_key(encoder_fp: dict[str, Any], corpus_sha256: str) -> str:
    blob = json.dumps({"v": CACHE_VERSION, "encoder": encoder_fp, "corpus": corpus_sha256}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def encode_corpus_cached(
    encoder: Any,
    ds: EvalDataset,
    cache_dir: str,
    batch_size: int = 256,
    show_progress: bool = True,
    encoder_fp: dict[str, Any] | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Encoded corpus (a SparseBatch with ids) from the cache, or encode it and store it.

    Returns (batch, info) with ``cached``, ``seconds`` (of the encoding that made the cache entry),
    ``docs_per_second`` and ``path``.
    """
    from lsr.corpus import encode_corpus
    from lsr.vectors import SparseBatch, concat_batches

    enc_fp = encoder_fp or encoder_fingerprint(encoder)
    key = corpus_cache_key(enc_fp, ds.fingerprints["corpus_sha256"])
    entry = os.path.join(cache_dir, "encodings", key)
    arrays, meta_path = os.path.join(entry, "vectors.npz"), os.path.join(entry, "meta.json")
    if os.path.isfile(arrays) and os.path.isfile(meta_path):
        with open(meta_path, encoding="utf-8") as f:
            meta = json.load(f)
        z = np.load(arrays, allow_pickle=False)
        if int(z["vocab_size"]) != len(encoder.vocab):
            raise LsrError(f"{entry}: cached vectors do not match the encoder's vocabulary (delete it)")
        batch = SparseBatch(z["indptr"], z["indices"], z["data"], encoder.vocab, z["ids"].tolist())
        return batch, {**meta, "cached": True, "path": entry}
    n_docs = ds.n_docs
    bar = None
    if show_progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_docs, desc="encoding corpus", unit="doc")
    chunks = []
    t0 = time.perf_counter()
    for c in encode_corpus(encoder, ds.corpus, batch_size=batch_size):
        c.documents = None
        chunks.append(c)
        if bar is not None:
            bar.update(len(c))
    seconds = time.perf_counter() - t0
    if bar is not None:
        bar.close()
    if chunks:
        batch = concat_batches(chunks)
        batch.ids = [i for c in chunks for i in c.ids]
    else:
        raise LsrError(f"{ds.corpus}: the corpus has no documents")
    meta = {
        "key": key,
        "encoder": enc_fp,
        "corpus": ds.corpus,
        "corpus_sha256": ds.fingerprints["corpus_sha256"],
        "documents": len(batch),
        "postings": int(batch.indptr[-1]),
        "seconds": seconds,
        "docs_per_second": len(batch) / seconds if seconds > 0 else None,
        "torch_threads": _torch_threads(),
    }
    tmp = entry + f".tmp{os.getpid()}"
    os.makedirs(tmp, exist_ok=True)
    np.savez(
        os.path.join(tmp, "vectors.npz"),
        indptr=batch.indptr,
        indices=batch.indices,
        data=batch.data,
        ids=np.array(batch.ids, dtype=str),
        vocab_size=np.int64(len(encoder.vocab)),
    )
    with open(os.path.join(tmp, "meta.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2)
    shutil.rmtree(entry, ignore_errors=True)
    os.makedirs(os.path.dirname(entry), exist_ok=True)
    os.replace(tmp, entry)
    return batch, {**meta, "cached": False, "path": entry}


def _torch_threads() -> int | None:
    try:
        import torch

        return int(torch.get_num_threads())
    except Exception:  # pragma: no cover
        return None


# -- runs ------------------------------------------------------------------------------------------
Run = dict[str, list[tuple[str, float]]]  # qid -> [(doc id, score)], best first


def ranked(pairs: Iterable[tuple[str, float]], k: int | None = None) -> list[tuple[str, float]]:
    """Deterministic ranking: score descending, then doc id ascending."""
    out = sorted(((str(d), float(s)) for d, s in pairs), key=lambda x: (-x[1], x[0]))
    return out[:k] if k is not None else out


def results_to_run(qids: Sequence[str], results: Sequence[Any]) -> Run:
    return {q: ranked(zip(r.ids, r.scores, strict=True)) for q, r in zip(qids, results, strict=True)}


def _fmt_score(s: float) -> str:
    return repr(float(s))


def write_run(path: str, run: Run, tag: str) -> None:
    """TREC run file, queries in sorted id order, ranks from 1 (byte-identical for the same run)."""
    if not tag or any(c.isspace() for c in tag):
        raise LsrError(f"run tag {tag!r} must be one word")
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for qid in sorted(run):
            for rank, (doc, score) in enumerate(run[qid], 1):
                f.write(f"{qid} Q0 {doc} {rank} {_fmt_score(score)} {tag}\n")


def read_run(path: str) -> Run:
    run: Run = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 6:
                raise LsrError(f"{path}:{lineno}: expected 'qid Q0 docid rank score tag'")
            try:
                run.setdefault(parts[0], []).append((parts[2], float(parts[4])))
            except ValueError:
                raise LsrError(f"{path}:{lineno}: score {parts[4]!r} is not a number") from None
    return {q: ranked(v) for q, v in run.items()}


def write_qrels(path: str, qrels: dict[str, dict[str, int]]) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for q in sorted(qrels):
            for d in sorted(qrels[q]):
                f.write(f"{q}\t{d}\t{qrels[q][d]}\n")


def _ranx_qrels(qrels: dict[str, dict[str, int]]) -> Any:
    from ranx import Qrels

    return Qrels({q: dict(d) for q, d in qrels.items()})


def _ranx_run(run: Run, name: str) -> Any:
    from ranx import Run as RanxRun

    # ranx needs at least one document per query; queries with no hits are filled in by
    # make_comparable (they score 0).
    return RanxRun({q: dict(v) for q, v in run.items() if v}, name=name)


def evaluate_run(
    run: Run, qrels: dict[str, dict[str, int]], metrics: Sequence[str] = METRICS
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """(mean of each metric, per-query values) over the queries of ``qrels`` (judged queries)."""
    from ranx import evaluate

    rq = _ranx_qrels(qrels)
    rr = _ranx_run({q: v for q, v in run.items() if q in qrels}, "run")
    if len(rr) == 0:
        return {m: 0.0 for m in metrics}, {m: {q: 0.0 for q in qrels} for m in metrics}
    means = evaluate(rq, rr, list(metrics), make_comparable=True)
    if len(metrics) == 1:
        means = {metrics[0]: means}
    per_query = {m: {q: float(v) for q, v in rr.scores[m].items()} for m in metrics}
    return {m: float(v) for m, v in means.items()}, per_query


def recall_vs_exact(run: Run, exact: Run, k: int) -> float:
    """Mean over queries of |top-k ∩ exact top-k| / |exact top-k| (queries with no exact hit skipped)."""
    vals = []
    for q, truth in exact.items():
        t = {d for d, _ in truth[:k]}
        if t:
            found = {d for d, _ in run.get(q, [])[:k]}
            vals.append(len(found & t) / len(t))
    return float(np.mean(vals)) if vals else 1.0


# -- BM25 ------------------------------------------------------------------------------------------
def pyserini_python(explicit: str | None = None) -> str | None:
    """The interpreter to run pyserini with: ``explicit``, ``$LSR_PYSERINI_PYTHON``, or this one
    when pyserini is importable here; None when there is none."""
    import importlib.util

    cand = explicit or os.environ.get("LSR_PYSERINI_PYTHON")
    if cand:
        return cand
    return sys.executable if importlib.util.find_spec("pyserini") is not None else None


_PYSERINI_STATUS: dict[str | None, tuple[bool, str]] = {}


def pyserini_status(python: str | None = None) -> tuple[bool, str]:
    """Whether pyserini can run (checked by starting it once with ``pyserini_bm25.py --check``)."""
    import subprocess

    py = pyserini_python(python)
    if py is None:
        return False, (
            f"pyserini is not installed for Python {platform.python_version()} and LSR_PYSERINI_PYTHON is not set "
            "(pyserini's dependencies - its own torch, pyjnius, a JDK >= 21 - live best in a separate venv; "
            "see README, 'BM25 baseline')"
        )
    if py in _PYSERINI_STATUS:
        return _PYSERINI_STATUS[py]
    try:
        r = subprocess.run([py, _PYSERINI_SCRIPT, "--check"], capture_output=True, text=True, timeout=600)
        if r.returncode == 0:
            info = json.loads(r.stdout.strip().splitlines()[-1])
            out = (True, f"pyserini {info.get('pyserini')} on Java {info.get('java')} via {py}")
        else:
            tail = [ln for ln in r.stderr.strip().splitlines() if ln.strip()][-1:] or ["no output"]
            out = (False, f"pyserini check failed with {py}: {tail[0][:300]}")
    except (OSError, subprocess.SubprocessError, ValueError) as e:
        out = (False, f"pyserini check failed with {py}: {type(e).__name__}: {e}")
    _PYSERINI_STATUS[py] = out
    return out


_PYSERINI_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pyserini_bm25.py")


def bm25_run(
    ds: EvalDataset,
    qids: Sequence[str],
    k: int,
    backend: str = "auto",
    k1: float = 0.9,
    b: float = 0.4,
    python: str | None = None,
) -> tuple[Run, dict[str, Any]]:
    """BM25 over ``title + " " + text`` with Anserini's BEIR defaults (k1=0.9, b=0.4): pyserini when it
    can run (``backend="auto"`` or ``"pyserini"``), otherwise bm25s (Lucene scoring, English stop
    words, Snowball stemmer when PyStemmer is installed)."""
    if backend == "bm25s":
        return _bm25_bm25s(ds, qids, k, k1, b, "bm25s asked for (--bm25 bm25s)")
    ok, why = pyserini_status(python)
    if not ok:
        if backend == "pyserini":
            raise LsrError(f"pyserini cannot run: {why}")
        return _bm25_bm25s(ds, qids, k, k1, b, why)
    return _bm25_pyserini(ds, qids, k, k1, b, pyserini_python(python), why)


def _bm25_bm25s(
    ds: EvalDataset, qids: Sequence[str], k: int, k1: float, b: float, why_not_pyserini: str
) -> tuple[Run, dict[str, Any]]:
    import bm25s

    from lsr.texts import iter_texts

    try:
        import Stemmer

        stemmer = Stemmer.Stemmer("english")
        stem = "snowball english (PyStemmer)"
    except ImportError:
        stemmer, stem = None, "none (PyStemmer not installed)"
    t0 = time.perf_counter()
    docs = list(iter_texts(ds.corpus))
    doc_ids = [d.id for d in docs]
    tokens = bm25s.tokenize([d.full_text for d in docs], stopwords="en", stemmer=stemmer, show_progress=False)
    model = bm25s.BM25(method="lucene", k1=k1, b=b)
    model.index(tokens, show_progress=False)
    index_s = time.perf_counter() - t0
    by_id = {q.id: q.text for q in ds.queries}
    texts = [by_id[q] for q in qids]
    run: Run = {}
    t1 = time.perf_counter()
    if texts:
        qtok = bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False)
        kk = min(k, len(docs))
        res, scores = model.retrieve(qtok, k=kk, show_progress=False, n_threads=1)
        for qi, q in enumerate(qids):
            run[q] = ranked(
                (doc_ids[int(d)], float(s)) for d, s in zip(res[qi], scores[qi], strict=True) if s > 0
            )
    search_s = time.perf_counter() - t1
    info = {
        "backend": "bm25s",
        "version": _version("bm25s"),
        "why_not_pyserini": why_not_pyserini or None,
        "tokenizer": "bm25s default (lowercase, word regex)",
        "k1": k1,
        "b": b,
        "scoring": "lucene",
        "stopwords": "en (bm25s list)",
        "stemmer": stem,
        "index_seconds": index_s,
        "search_seconds": search_s,
    }
    return run, info


def _bm25_pyserini(
    ds: EvalDataset, qids: Sequence[str], k: int, k1: float, b: float, python: str | None, status: str
) -> tuple[Run, dict[str, Any]]:
    import subprocess
    import tempfile

    by_id = {q.id: q.text for q in ds.queries}
    with tempfile.TemporaryDirectory(prefix="lsr-pyserini-") as tmp:
        qpath = os.path.join(tmp, "queries.jsonl")
        with open(qpath, "w", encoding="utf-8") as f:
            for q in qids:
                f.write(json.dumps({"_id": q, "text": by_id[q]}) + "\n")
        out = os.path.join(tmp, "run.tsv")
        cmd = [
            python or sys.executable, _PYSERINI_SCRIPT, "--corpus", ds.corpus, "--queries", qpath, "--k", str(k),
            "--k1", str(k1), "--b", str(b), "--output", out, "--index-dir", os.path.join(tmp, "index"),
        ]  # fmt: skip
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            tail = [ln for ln in r.stderr.strip().splitlines() if ln.strip()][-1:] or ["no output"]
            raise LsrError(f"pyserini BM25 failed: {tail[0][:300]}")
        info = json.loads(r.stdout.strip().splitlines()[-1])
        run: Run = {q: [] for q in qids}
        with open(out, encoding="utf-8") as f:
            for line in f:
                q, d, s = line.rstrip("\n").split("\t")
                run[q].append((d, float(s)))
    run = {q: ranked(v) for q, v in run.items()}
    return run, {
        "backend": "pyserini",
        "version": info.get("pyserini"),
        "java": info.get("java"),
        "python": info.get("python"),
        "interpreter": python,
        "workarounds": info.get("workarounds"),
        "k1": k1,
        "b": b,
        "analyzer": "Anserini default (Lucene English, Porter stemmer, stop words), title + text in one field (flat)",
        "index_seconds": info.get("index_seconds"),
        "search_seconds": info.get("search_seconds"),
        "status": status,
    }


# -- fusion ----------------------------------------------------------------------------------------
def fuse_runs(runs: Sequence[Run], method: str, norm: str | None = None) -> Run:
    """Fuse runs with ranx.fuse (``rrf``, or ``sum`` with ``norm="min-max"``)."""
    from ranx import fuse

    qids = sorted(set().union(*[set(r) for r in runs]))
    ranx_runs = [_ranx_run(r, f"r{i}") for i, r in enumerate(runs)]
    fused = fuse(runs=ranx_runs, method=method, norm=norm)  # norm=None: RRF uses ranks only
    out: Run = {}
    for q in qids:
        docs = fused.run.get(q)
        out[q] = ranked(docs.items()) if docs else []
    return out


# -- efficiency ------------------------------------------------------------------------------------
def latency_stats(seconds: Sequence[float]) -> dict[str, float]:
    ms = np.asarray(seconds, dtype=np.float64) * 1e3
    if ms.size == 0:
        return {"mean": 0.0, "p50": 0.0, "p99": 0.0}
    return {
        "mean": float(ms.mean()),
        "p50": float(np.percentile(ms, 50)),
        "p99": float(np.percentile(ms, 99)),
    }


def peak_rss_bytes() -> int:
    """Peak resident memory of this process (ru_maxrss: KiB on Linux, bytes on macOS)."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(r if sys.platform == "darwin" else r * 1024)


def _time_method(
    index: Any,
    singles: list[Any],
    batch: Any,
    k: int,
    method: str,
    params: dict[str, Any],
    warmup: int,
    threads: int,
    show_progress: bool = True,
) -> tuple[list[Any], dict[str, Any]]:
    """Search ``batch`` (the run), then time each query alone after ``warmup`` untimed ones."""
    from tqdm.auto import tqdm

    index.warmup()
    for s in singles[:warmup]:
        index.search(s, k=k, method=method, **params)
    times = []
    for s in tqdm(singles, desc=f"timing {method}", unit="q", leave=False, disable=not show_progress):
        t0 = time.perf_counter()
        index.search(s, k=k, method=method, **params)
        times.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    results = index.search(batch, k=k, method=method, threads=threads, **params)
    batch_s = time.perf_counter() - t0
    total = float(np.sum(times))
    return results, {
        "latency_ms": latency_stats(times),
        "qps": len(singles) / total if total > 0 else None,
        "qps_batch": len(singles) / batch_s if batch_s > 0 else None,
        "batch_threads": threads,
        "warmup_queries": min(warmup, len(singles)),
    }


# -- report ----------------------------------------------------------------------------------------
def _version(pkg: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


def _environment(threads: int) -> dict[str, Any]:
    from lsr.eval.bench_common import cpu_name, git_commit

    try:
        commit = git_commit() or None
    except Exception:
        commit = None
    dirty = None
    if commit:
        import subprocess

        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        st = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, cwd=root
        )
        dirty = bool(st.stdout.strip()) if st.returncode == 0 else None
    try:
        import numba

        numba_threads = int(numba.config.NUMBA_NUM_THREADS)
    except Exception:  # pragma: no cover
        numba_threads = None
    return {
        "git_commit": commit,
        "git_dirty": dirty,
        "versions": {
            p: _version(p)
            for p in ("lsr", "torch", "numba", "numpy", "ranx", "bm25s", "ir_datasets", "transformers")
        },
        "python": platform.python_version(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "threads": {"search_batch": threads, "torch": _torch_threads(), "numba": numba_threads},
        "platform": platform.platform(),
    }


def _parse_methods(methods: str | Sequence[str] | None) -> list[str]:
    from lsr.index.searcher import METHODS

    if methods is None:
        return list(METHODS)
    if isinstance(methods, str):
        methods = [m.strip() for m in methods.split(",")]
    out = []
    for m in methods:
        if not m:
            continue
        if m not in METHODS:
            raise LsrError(f"unknown or unavailable method {m!r} (available: {', '.join(METHODS)})")
        if m not in out:
            out.append(m)
    if not out:
        raise LsrError(f"no method given (available: {', '.join(METHODS)})")
    return out


def run_eval(
    dataset: str,
    model: str,
    output: str,
    methods: str | Sequence[str] | None = None,
    k: int = 1000,
    *,
    cache_dir: str | None = None,
    split: str = "test",
    threads: int = 1,
    batch_size: int = 256,
    method_params: dict[str, dict[str, Any]] | None = None,
    bm25: str = "auto",
    pyserini_python: str | None = None,
    torch_threads: int | None = None,
    warmup: int = 50,
    encoder_options: dict[str, Any] | None = None,
    plots: bool = True,
    show_progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Evaluate ``model`` on ``dataset`` with every method; write runs, report and plots to ``output``.

    Returns the report (the content of ``report.json``). ``bm25`` is ``auto`` (pyserini when it can
    run, else bm25s), ``pyserini``, ``bm25s`` or ``none``. ``method_params`` maps a method to its
    keyword parameters for ``Index.search``. ``torch_threads`` sets torch's intra-op threads
    (default: torch's own choice), for encoding the corpus and the queries.
    """
    import lsr
    from lsr.index import build_index, open_index
    from lsr.index.searcher import _check_k, _check_threads
    from lsr.vectors import concat_batches

    say = log or (lambda s: print(s, file=sys.stderr))
    k = _check_k(k)
    threads = _check_threads(threads)
    if bm25 not in ("auto", "pyserini", "bm25s", "none"):
        raise LsrError(f"bm25 must be auto, pyserini, bm25s or none, got {bm25!r}")
    method_list = _parse_methods(methods)
    method_params = dict(method_params or {})
    for m in method_params:
        if m not in method_list:
            raise LsrError(
                f"parameters given for method {m!r}, which is not evaluated ({', '.join(method_list)})"
            )
    cache_dir = os.path.abspath(cache_dir or default_cache_dir())
    if torch_threads is not None:
        import torch

        _check_threads(torch_threads)
        torch.set_num_threads(torch_threads)
    started = time.time()

    say(f"[1/6] dataset {dataset}")
    ds = load_dataset(dataset, split=split, cache_dir=cache_dir)
    judged = ds.judged
    by_id = {q.id: q for q in ds.queries}
    missing_text = sorted(q for q in judged if q not in by_id)
    empty_text = sorted(q for q in judged if q in by_id and not by_id[q].text.strip())
    qids = sorted(q for q in judged if q in by_id and by_id[q].text.strip())
    if not qids:
        raise LsrError(f"{ds.root}: no query has both a text and a relevant judgment in qrels/{split}.tsv")

    say(f"[2/6] encoder {model}; corpus {ds.corpus}")
    enc = lsr.load_encoder(model, **(encoder_options or {}))
    enc_fp = encoder_fingerprint(enc)
    docs, enc_info = encode_corpus_cached(
        enc, ds, cache_dir, batch_size=batch_size, show_progress=show_progress, encoder_fp=enc_fp
    )
    say(
        f"      {len(docs)} documents "
        + ("from the cache" if enc_info["cached"] else f"encoded in {enc_info['seconds']:.1f} s")
    )

    say("[3/6] index")
    os.makedirs(output, exist_ok=True)
    runs_dir = os.path.join(output, RUNS_DIR)
    os.makedirs(runs_dir, exist_ok=True)
    index_dir = os.path.join(cache_dir, "indexes", corpus_cache_key(enc_fp, ds.fingerprints["corpus_sha256"]))
    os.makedirs(os.path.dirname(index_dir), exist_ok=True)
    t0 = time.perf_counter()
    build_index(docs, index_dir, encoder=enc, overwrite=True)
    build_s = time.perf_counter() - t0
    index = open_index(index_dir)
    qenc = lsr.Retriever(index, enc).query_encoder  # inference-free: this index's IDF, enc unchanged

    say(f"[4/6] encoding {len(qids)} queries one at a time")
    texts = [by_id[q].text for q in qids]
    qenc.encode_queries(texts[:1])  # warm-up
    singles, q_times = [], []
    from tqdm.auto import tqdm

    for t in tqdm(texts, desc="encoding queries", unit="q", leave=False, disable=not show_progress):
        t1 = time.perf_counter()
        singles.append(qenc.encode_queries([t]))
        q_times.append(time.perf_counter() - t1)
    qbatch = concat_batches(singles)
    torch_threads_used = _torch_threads()
    empty_vectors = int(np.count_nonzero(np.diff(qbatch.indptr) == 0))

    say(f"[5/6] searching: {', '.join(method_list)} (k={k})")
    runs: dict[str, Run] = {}
    systems: dict[str, dict[str, Any]] = {}
    for m in method_list:
        params = method_params.get(m, {})
        results, eff = _time_method(index, singles, qbatch, k, m, params, warmup, threads, show_progress)
        runs[m] = results_to_run(qids, results)
        systems[m] = {"kind": "lsr", "method": m, "params": params, "efficiency": eff}
    exact = runs.get("exact")
    if exact is None:  # the reference for recall vs exact (not timed, not reported as a system)
        exact = results_to_run(qids, index.search(qbatch, k=k, method="exact", threads=threads))
    bm25_info = None
    if bm25 != "none":
        say("      BM25 baseline")
        runs["bm25"], bm25_info = bm25_run(ds, qids, k, backend=bm25, python=pyserini_python)
        systems["bm25"] = {"kind": "baseline", **bm25_info}
        base = "exact" if "exact" in runs else method_list[0]
        for name, meth, norm in (("fusion_rrf", "rrf", None), ("fusion_minmax_sum", "sum", "min-max")):
            fused = fuse_runs([runs[base], runs["bm25"]], meth, norm)
            runs[name] = {q: v[:k] for q, v in fused.items()}
            systems[name] = {"kind": "fusion", "method": meth, "norm": norm, "of": [base, "bm25"]}

    say("[6/6] evaluating")
    eval_qrels = {q: judged[q] for q in qids}
    per_query: dict[str, dict[str, float]] = {}
    for name, run in runs.items():
        means, pq = evaluate_run(run, eval_qrels)
        systems[name]["metrics"] = means
        per_query[name] = pq["ndcg@10"]
        if name in method_list and name != "exact":
            systems[name]["recall_vs_exact"] = recall_vs_exact(run, exact, k)
        elif name == "exact":
            systems[name]["recall_vs_exact"] = 1.0
        write_run(os.path.join(runs_dir, f"{name}.trec"), run, _tag(name))
    write_qrels(os.path.join(output, "qrels.tsv"), eval_qrels)

    env = _environment(threads)
    env["threads"]["torch"] = torch_threads_used  # as used for encoding (a later import may reset it)
    report: dict[str, Any] = {
        "lsr_eval_version": 1,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "dataset": {
            "name": ds.name,
            "source": ds.source,
            "root": ds.root,
            "split": split,
            "documents": len(docs),
            "empty_documents": ds.empty_docs,
            "empty_document_vectors": int(np.count_nonzero(np.diff(docs.indptr) == 0)),
            "queries": len(ds.queries),
            "qrels_queries": len(ds.qrels),
            "judged_queries": len(judged),
            "evaluated_queries": len(qids),
            "judged_queries_without_text": missing_text,
            "judged_queries_with_empty_text": empty_text,
            "queries_without_relevant_judgment": sum(1 for q in ds.queries if q.id not in judged),
            "queries_with_empty_vector": empty_vectors,
            "qrels": sum(len(v) for v in ds.qrels.values()),
            "fingerprints": ds.fingerprints,
        },
        "model": {"name": model, **enc_fp},
        "settings": {
            "k": k,
            "methods": method_list,
            "method_params": method_params,
            "metrics": list(METRICS),
            "bm25": bm25,
            "threads": threads,
            "batch_size": batch_size,
            "warmup": warmup,
            "tie_break": "score descending, then doc id ascending",
            "evaluated": "queries with a text and a judgment of grade > 0; a query with no hit scores 0",
        },
        "encoding": {
            "corpus": {
                "documents": len(docs),
                "postings": int(docs.indptr[-1]),
                "cached": enc_info["cached"],
                "seconds": enc_info["seconds"],
                "docs_per_second": enc_info["docs_per_second"],
                "torch_threads": enc_info.get("torch_threads"),
                "cache_key": enc_info["key"],
            },
            "queries": {"count": len(qids), "ms": latency_stats(q_times)},
        },
        "index": {
            "path": index_dir,
            "build_seconds": build_s,
            "size_bytes": index.size_bytes(),
            "postings": index.n_postings,
            "terms": index.n_terms,
            "quantization": index.quantization,
        },
        "systems": systems,
        "bm25": bm25_info,
        "peak_rss_bytes": peak_rss_bytes(),
        "environment": env,
        "runs": {name: os.path.join(RUNS_DIR, f"{name}.trec") for name in runs},
        "seconds": time.time() - started,
    }
    report["leaderboard"] = export_leaderboard(output, report, runs, method_list)
    with open(os.path.join(output, "report.json"), "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2, sort_keys=False)
        f.write("\n")
    with open(os.path.join(output, "report.md"), "w", encoding="utf-8") as f:
        f.write(report_markdown(report))
    if plots:
        report["plots"] = write_plots(output, report, per_query)
        with open(os.path.join(output, "report.json"), "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)
            f.write("\n")
    return report


def _tag(name: str) -> str:
    return f"lsr-{name}".replace("_", "-")


# -- leaderboard -----------------------------------------------------------------------------------
def export_leaderboard(
    output: str, report: dict[str, Any], runs: dict[str, Run], methods: list[str]
) -> dict[str, str]:
    """``leaderboard/<dataset>.trec`` (the exact run, or the first method's) and ``metadata.json``:
    what a BEIR leaderboard submission asks for (the model, the dataset, the scores, the settings)."""
    name = "exact" if "exact" in runs else methods[0]
    lb = os.path.join(output, "leaderboard")
    os.makedirs(lb, exist_ok=True)
    ds_name = report["dataset"]["name"].replace("/", "-")
    run_file = f"{ds_name}.trec"
    write_run(os.path.join(lb, run_file), runs[name], _tag(name))
    meta = {
        "model": report["model"]["name"],
        "model_config": report["model"]["config"],
        "model_weights_sha256": report["model"]["weights_sha256"],
        "dataset": report["dataset"]["name"],
        "split": report["dataset"]["split"],
        "corpus_sha256": report["dataset"]["fingerprints"]["corpus_sha256"],
        "run_file": run_file,
        "retrieval": {"system": "lsr", "method": name, "k": report["settings"]["k"]},
        "metrics": report["systems"][name]["metrics"],
        "queries_evaluated": report["dataset"]["evaluated_queries"],
        "documents": report["dataset"]["documents"],
        "settings": report["settings"],
        "git_commit": report["environment"]["git_commit"],
        "lsr_version": report["environment"]["versions"]["lsr"],
        "created": report["created"],
    }
    with open(os.path.join(lb, "metadata.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")
    return {
        "run": os.path.join("leaderboard", run_file),
        "metadata": os.path.join("leaderboard", "metadata.json"),
    }


def _f(x: Any, nd: int = 4) -> str:
    return "-" if x is None else f"{x:.{nd}f}"


def report_markdown(report: dict[str, Any]) -> str:
    """The pasteable Markdown summary of a report."""
    d, s, env = report["dataset"], report["settings"], report["environment"]
    enc = report["encoding"]
    lines = [
        f"# lsr eval: {d['name']} ({d['split']}), model {report['model']['name']}",
        "",
        f"{d['documents']:,} documents, {d['evaluated_queries']} evaluated queries (of {d['queries']} in the file, "
        f"{d['judged_queries']} judged), k = {s['k']}. Commit {str(env['git_commit'])[:10]}"
        + (" (dirty)" if env.get("git_dirty") else "")
        + f", {env['cpu']}, search threads {s['threads']}, torch threads {env['threads']['torch']}.",
        "",
        "| system | nDCG@10 | Recall@100 | Recall@1000 | MRR@10 | MAP | recall vs exact | mean ms | p50 ms | p99 ms | QPS |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, sysr in report["systems"].items():
        m = sysr["metrics"]
        eff = sysr.get("efficiency") or {}
        lat = eff.get("latency_ms") or {}
        label = {
            "lsr": f"lsr {name}",
            "baseline": f"BM25 ({sysr.get('backend')})",
            "fusion": f"fusion {sysr.get('method')}{' ' + sysr['norm'] if sysr.get('norm') else ''}: "
            + " + ".join(sysr.get("of", [])),
        }[sysr["kind"]]
        lines.append(
            f"| {label} | {_f(m['ndcg@10'])} | {_f(m['recall@100'])} | {_f(m['recall@1000'])} | {_f(m['mrr@10'])} "
            f"| {_f(m['map'])} | {_f(sysr.get('recall_vs_exact'), 3)} | {_f(lat.get('mean'), 2)} | {_f(lat.get('p50'), 2)} "
            f"| {_f(lat.get('p99'), 2)} | {_f(eff.get('qps'), 0)} |"
        )
    c = enc["corpus"]
    ix = report["index"]
    lines += [
        "",
        "| efficiency | |",
        "|---|---|",
        f"| corpus encoding | {_f(c['docs_per_second'], 1)} docs/s ({_f(c['seconds'], 1)} s"
        + (", read from the cache this run" if c["cached"] else "")
        + ") |",
        f"| query encoding (one at a time) | mean {_f(enc['queries']['ms']['mean'], 2)} ms, p50 {_f(enc['queries']['ms']['p50'], 2)} ms |",
        f"| index build | {_f(ix['build_seconds'], 2)} s, {ix['size_bytes'] / 2**20:.1f} MiB, {ix['postings']:,} postings, {ix['quantization']} |",
        f"| peak memory (RSS) | {report['peak_rss_bytes'] / 2**30:.2f} GiB |",
    ]
    if report.get("bm25"):
        b = report["bm25"]
        why = f"; pyserini not used: {b['why_not_pyserini']}" if b.get("why_not_pyserini") else ""
        lines += [
            "",
            f"BM25: {b['backend']} {b.get('version') or ''} (k1={b['k1']}, b={b['b']}"
            + (f", stemmer {b['stemmer']}" if b.get("stemmer") else "")
            + f"){why}.",
        ]
        if b.get("workarounds"):
            lines += ["", "pyserini workarounds: " + "; ".join(b["workarounds"]) + "."]
    lines += [
        "",
        "Latency: one query at a time after a warm-up (query encoding excluded); QPS = queries / summed latency. "
        "Recall vs exact: overlap of each method's top-k with exact search's.",
        "",
    ]
    return "\n".join(lines)


# -- plots -----------------------------------------------------------------------------------------
def write_plots(
    output: str, report: dict[str, Any], per_query_ndcg: dict[str, dict[str, float]]
) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = []
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, sysr in report["systems"].items():
        if sysr["kind"] != "lsr":
            continue
        lat = sysr["efficiency"]["latency_ms"]
        ax.scatter([lat["p50"]], [sysr.get("recall_vs_exact", 1.0)], label=name)
        ax.annotate(
            name, (lat["p50"], sysr.get("recall_vs_exact", 1.0)), textcoords="offset points", xytext=(4, 4)
        )
    ax.set_xlabel("p50 latency per query (ms)")
    ax.set_ylabel(f"recall@{report['settings']['k']} vs exact")
    ax.set_title(f"{report['dataset']['name']}: recall vs latency")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    p = os.path.join(output, "recall_latency.png")
    fig.savefig(p, dpi=100, metadata={"Software": None})
    plt.close(fig)
    out.append(os.path.basename(p))

    fig, ax = plt.subplots(figsize=(6, 4))
    bins = np.linspace(0, 1, 21)
    for name, vals in per_query_ndcg.items():
        ax.hist(
            list(vals.values()),
            bins=bins,
            histtype="step",
            label=f"{name} (mean {np.mean(list(vals.values())):.3f})",
        )
    ax.set_xlabel("nDCG@10 per query")
    ax.set_ylabel("queries")
    ax.set_title(f"{report['dataset']['name']}: per-query nDCG@10")
    ax.legend(fontsize=8)
    fig.tight_layout()
    p = os.path.join(output, "ndcg_per_query.png")
    fig.savefig(p, dpi=100, metadata={"Software": None})
    plt.close(fig)
    out.append(os.path.basename(p))
    return out


# -- compare ---------------------------------------------------------------------------------------
def load_eval_dir(path: str) -> tuple[dict[str, dict[str, int]], dict[str, Run]]:
    """The qrels and runs an ``lsr eval`` output directory holds."""
    qrels_path = os.path.join(path, "qrels.tsv")
    runs_dir = os.path.join(path, RUNS_DIR)
    if not os.path.isfile(qrels_path) or not os.path.isdir(runs_dir):
        raise LsrError(f"{path}: not an lsr eval output (no qrels.tsv and runs/)")
    from lsr.texts import read_qrels

    qrels = read_qrels(qrels_path)
    runs = {
        f[: -len(".trec")]: read_run(os.path.join(runs_dir, f))
        for f in sorted(os.listdir(runs_dir))
        if f.endswith(".trec")
    }
    if not runs:
        raise LsrError(f"{runs_dir}: no .trec run files")
    return qrels, runs


def compare_dirs(
    dir1: str, dir2: str, metrics: Sequence[str] = METRICS, stat_test: str = "student", max_p: float = 0.05
) -> dict[str, Any]:
    """Compare the runs of two ``lsr eval`` outputs with ranx's paired significance test.

    Runs with the same name in both directories are compared pairwise (``dir2 - dir1``); the
    qrels must be the same. Returns ``{"rows": [...], "stat_test", "max_p"}``.
    """
    from ranx import compare

    q1, runs1 = load_eval_dir(dir1)
    q2, runs2 = load_eval_dir(dir2)
    if q1 != q2:
        raise LsrError(f"{dir1} and {dir2} were evaluated on different qrels: their runs cannot be compared")
    common = [n for n in runs1 if n in runs2]
    if not common:
        raise LsrError(f"no run name in common: {dir1} has {', '.join(runs1)}; {dir2} has {', '.join(runs2)}")
    qrels = _ranx_qrels(q1)
    rows = []
    for name in common:
        a = _ranx_run({q: v for q, v in runs1[name].items() if q in q1}, "A")
        b = _ranx_run({q: v for q, v in runs2[name].items() if q in q1}, "B")
        rep = compare(
            qrels, runs=[a, b], metrics=list(metrics), max_p=max_p, stat_test=stat_test, make_comparable=True
        )
        d = rep.to_dict()
        for m in metrics:
            va, vb = float(d["A"]["scores"][m]), float(d["B"]["scores"][m])
            p = d["B"]["comparisons"]["A"][m] if "comparisons" in d["B"] else None
            if p is not None and np.isnan(float(p)):
                p = 1.0  # identical per-query scores: the test is undefined, nothing differs
            rows.append(
                {
                    "run": name,
                    "metric": m,
                    "dir1": va,
                    "dir2": vb,
                    "diff": vb - va,
                    "p_value": None if p is None else float(p),
                    "significant": None if p is None else bool(float(p) < max_p),
                }
            )
    return {"dir1": dir1, "dir2": dir2, "stat_test": stat_test, "max_p": max_p, "rows": rows}


def compare_table(result: dict[str, Any]) -> str:
    lines = [
        f"dir1 = {result['dir1']}",
        f"dir2 = {result['dir2']}",
        f"paired {result['stat_test']} test (ranx.compare), * = p < {result['max_p']}",
        "",
        "| run | metric | dir1 | dir2 | dir2 - dir1 | p-value |",
        "|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        p = "-" if r["p_value"] is None else f"{r['p_value']:.4f}{' *' if r['significant'] else ''}"
        lines.append(
            f"| {r['run']} | {r['metric']} | {r['dir1']:.4f} | {r['dir2']:.4f} | {r['diff']:+.4f} | {p} |"
        )
    return "\n".join(lines) + "\n"
