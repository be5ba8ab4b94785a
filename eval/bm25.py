"""The baselines of ``lsr eval``: BM25 (pyserini when it can run, else bm25s) and its fusions with an
lsr run (ranx.fuse)."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from typing import Any

from lsr.errors import LsrError
from lsr.eval.datasets import EvalDataset
from lsr.eval.environment import package_version
from lsr.eval.runs import Run, ranked


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
        return bm25_bm25s(ds, qids, k, k1, b, "bm25s asked for (--bm25 bm25s)")
    ok, why = pyserini_status(python)
    if not ok:
        if backend == "pyserini":
            raise LsrError(f"pyserini cannot run: {why}")
        return bm25_bm25s(ds, qids, k, k1, b, why)
    return bm25_pyserini(ds, qids, k, k1, b, pyserini_python(python), why)


def bm25_bm25s(
    ds: EvalDataset, qids: Sequence[str], k: int, k1: float, b: float, why_not_pyserini: str
) -> tuple[Run, dict[str, Any]]:
    """BM25 with bm25s (Lucene scoring, English stop words, Snowball stemming when PyStemmer is here)."""
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
        "version": package_version("bm25s"),
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


def bm25_pyserini(
    ds: EvalDataset, qids: Sequence[str], k: int, k1: float, b: float, python: str | None, status: str
) -> tuple[Run, dict[str, Any]]:
    """BM25 with pyserini (Anserini), run as a subprocess by ``python`` (``pyserini_bm25.py``)."""
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


def fuse_runs(runs: Sequence[Run], method: str, norm: str | None = None) -> Run:
    """Fuse runs with ranx.fuse (``rrf``, or ``sum`` with ``norm="min-max"``)."""
    from ranx import fuse

    from lsr.eval.metrics import id_codes, quiet_ranx, ranx_run

    qids = sorted(set().union(*[set(r) for r in runs]))
    codes = id_codes(*runs)
    doc_of = {c: d for d, c in codes.items()}
    ranx_runs = [ranx_run(r, f"r{i}", codes=codes) for i, r in enumerate(runs)]
    with quiet_ranx():
        fused = fuse(runs=ranx_runs, method=method, norm=norm)  # norm=None: RRF uses ranks only
    out: Run = {}
    for q in qids:
        docs = fused.run.get(q)
        out[q] = ranked((doc_of[c], s) for c, s in docs.items()) if docs else []
    return out
