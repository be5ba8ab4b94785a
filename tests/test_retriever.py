"""lsr.Retriever: where text meets the index (encoder checks, corpus statistics without mutating a
shared encoder, text search equal to vector search, the build side), and the import rules that keep
the index free of encoders: nothing under index/ imports them, and the import graph has no cycle."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

import lsr  # noqa: E402
from lsr.errors import LsrError  # noqa: E402
from lsr.index import build_index, open_index  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DOCS = {
    "d1": "Vitamin D deficiency raises fracture risk in elderly women.",
    "d2": "Cells divide by mitosis; DNA repair enzymes fix breaks.",
    "d3": "The cat sat on the mat, the cat slept.",
    "d4": "Statins lower LDL cholesterol and vitamin levels.",
    "d5": "Bone fractures heal faster with vitamin D and calcium.",
}
QUERIES = ["vitamin d fracture", "cat on a mat", "cholesterol statins"]


@pytest.fixture(scope="module")
def splade():
    return lsr.load_encoder("splade-tiny", doc_max_length=64)


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "corpus.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for i, (doc_id, text) in enumerate(DOCS.items()):
            f.write(json.dumps({"_id": doc_id, "title": f"title {i}", "text": text}) + "\n")
    return path


@pytest.fixture(scope="module")
def retriever(splade, corpus_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("ix") / "ix"
    return lsr.Retriever.from_corpus(corpus_file, out, splade, batch_size=2, methods=("exact", "maxscore"))


def test_from_corpus_records_encoder_store_and_source(retriever, corpus_file, splade):
    ix = retriever.index
    assert ix.n_docs == len(DOCS) and ix.methods == ("exact", "maxscore")
    assert ix.encoder_config == json.loads(json.dumps(splade.config()))
    assert ix.manifest["source"] == f"corpus:{corpus_file}"
    assert ix.document(ix.lookup("d3")) == {"id": "d3", "title": "title 2", "text": DOCS["d3"]}
    # the same index as build_index over the encoded documents (the compatibility path)
    vecs = splade.encode_documents([f"title {i} {t}" for i, t in enumerate(DOCS.values())])
    for q in QUERIES:
        want = splade.encode_queries([q])
        assert retriever.search(want, k=5)[0].scores == ix.search(want, k=5)[0].scores
    assert ix.n_postings == vecs.nnz


def test_from_corpus_limit_and_bad_input(splade, corpus_file, tmp_path):
    r = lsr.Retriever.from_corpus(
        corpus_file, tmp_path / "lim", splade, batch_size=2, limit=3, methods=("exact",)
    )
    assert r.index.n_docs == 3 and r.index.doc_ids(np.arange(3)) == ["d1", "d2", "d3"]
    with pytest.raises(LsrError, match="no such file"):
        lsr.Retriever.from_corpus(tmp_path / "nope.jsonl", tmp_path / "x", splade)
    with pytest.raises(LsrError, match="limit"):
        lsr.Retriever.from_corpus(corpus_file, tmp_path / "y", splade, limit=0)


def test_text_search_equals_vector_search_bit_for_bit(retriever, splade):
    vecs = splade.encode_queries(QUERIES)
    for method in ("exact", "maxscore"):
        by_text = retriever.search(QUERIES, k=4, method=method)
        by_vec = retriever.index.search(vecs, k=4, method=method)
        compat = retriever.index.search(QUERIES, k=4, method=method)  # Index.search(text) -> a Retriever
        for a, b, c in zip(by_text, by_vec, compat, strict=True):
            assert a.ids == b.ids == c.ids and a.scores == b.scores == c.scores
    # a Retriever made from a path loads the recorded encoder itself
    other = lsr.Retriever(retriever.index.path)
    assert other.search(QUERIES, k=4)[0].scores == by_text[0].scores
    # mixed texts and {token: weight} dicts
    mixed = retriever.search([QUERIES[0], {"cat": 1.0}], k=2)
    assert mixed[0].scores == by_text[0].scores[:2]
    assert mixed[1].ids == retriever.index.search([{"cat": 1.0}], k=2)[0].ids


def test_encoder_mismatch_filter_and_bad_queries(retriever, splade):
    ix = retriever.index
    other = lsr.load_encoder("splade-tiny", doc_max_length=128)
    with pytest.raises(LsrError, match="doc_max_length.*force"):
        lsr.Retriever(ix, other)
    assert lsr.Retriever(ix, other, force=True).search(QUERIES[:1], k=2)[0].ids
    with pytest.raises(LsrError, match="filter: this index has no metadata fields"):
        retriever.search(QUERIES, filter={"year": 2020})
    with pytest.raises(LsrError, match="query 1 is empty"):
        retriever.search(["vitamin", "  "])
    with pytest.raises(LsrError, match="wrap a single query text"):
        retriever.search("vitamin")
    with pytest.raises(LsrError, match="takes no parameter"):
        retriever.search(QUERIES, method="exact", alpha=0.5)
    with pytest.raises(LsrError, match="k must be"):
        retriever.search(QUERIES, k=0)


def test_vectors_only_index_refuses_text(tmp_path, splade):
    docs = splade.encode_documents(list(DOCS.values()))
    ix = open_index(build_index(docs, tmp_path / "v", ids=list(DOCS), methods=("exact",)))
    r = lsr.Retriever(ix)
    assert not r.has_encoder
    assert r.search(splade.encode_queries(QUERIES[:1]), k=1)[0].ids  # vectors pass through
    with pytest.raises(LsrError, match="records no encoder"):
        r.search(QUERIES[:1])
    # an encoder given for an index that records none is accepted
    assert (
        lsr.Retriever(ix, splade).search(QUERIES[:1], k=1)[0].ids
        == r.search(splade.encode_queries(QUERIES[:1]), k=1)[0].ids
    )


def test_one_inference_free_encoder_serves_two_indexes_without_changing(tmp_path):
    """Each index's queries get that index's IDF (computed here from its documents), whichever index
    was searched last, and the shared encoder is never rewritten (it had no table and still has none)."""
    enc = lsr.load_encoder("splade-tiny", kind="inference-free", doc_max_length=64)
    texts = list(DOCS.values())
    halves = {"a": texts[:3], "b": texts[2:] + ["vitamin vitamin vitamin"]}
    retrievers, dfs = {}, {}
    for name, part in halves.items():
        docs = enc.encode_documents(part)
        dfs[name] = (np.bincount(docs.indices, minlength=len(enc.vocab)), len(part))
        path = build_index(docs, tmp_path / name, encoder=enc, methods=("exact",))
        retrievers[name] = lsr.Retriever(path, enc)
    for name in ("a", "b", "a", "b"):  # interleaved: no index's statistics leak into another's
        q = retrievers[name].encode_queries(["vitamin d fracture cholesterol"])
        df, n = dfs[name]
        want = np.log1p((n - df[q.indices] + 0.5) / (df[q.indices] + 0.5)).astype(np.float32)
        np.testing.assert_allclose(q.data, want, rtol=1e-6)
    qa = retrievers["a"].encode_queries(["vitamin"])
    qb = retrievers["b"].encode_queries(["vitamin"])
    assert qa.indices.tolist() == qb.indices.tolist() and qa.data[0] != qb.data[0]
    assert enc.table is None
    with pytest.raises(LsrError, match="IDF of the indexed corpus"):
        enc.encode_queries(["vitamin"])


def test_cli_index_and_search_go_through_the_retriever(retriever, corpus_file, tmp_path):
    """`lsr index --model` builds the same index as Retriever.from_corpus; `lsr search` with texts
    gives the Retriever's scores."""
    from lsr.cli.main import main

    out = tmp_path / "cli_ix"
    assert (
        main(
            [
                "index",
                "--input",
                str(corpus_file),
                "--output",
                str(out),
                "--model",
                "splade-tiny",
                "--methods",
                "exact",
            ]
        )
        == 0
    )
    ix = open_index(out)
    assert ix.manifest["source"] == f"corpus:{corpus_file}"
    qfile = tmp_path / "q.jsonl"
    qfile.write_text("".join(json.dumps({"_id": f"q{i}", "text": t}) + "\n" for i, t in enumerate(QUERIES)))
    run = tmp_path / "run.trec"
    assert (
        main(["search", "--index", str(out), "--queries", str(qfile), "--k", "3", "--output", str(run)]) == 0
    )
    want = lsr.Retriever(ix).search(QUERIES, k=3)
    lines = run.read_text().splitlines()
    assert [ln.split()[2] for ln in lines[:3]] == want[0].ids


# -- import rules ----------------------------------------------------------------------------------
PACKAGES = {
    "lsr.encoders": "lsr/encoders",
    "lsr.training": "lsr/training",
    "lsr.eval": "eval",
    "lsr.index": "index",
}


def _module_files() -> dict[str, Path]:
    """Every module of the four packages, plus lsr's top-level modules, by dotted name."""
    out: dict[str, Path] = {}
    for pkg, folder in PACKAGES.items():
        for f in sorted((REPO / folder).rglob("*.py")):
            rel = f.relative_to(REPO / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            out[".".join([pkg, *parts])] = f
    for f in sorted((REPO / "lsr").glob("*.py")):
        out["lsr" if f.stem == "__init__" else f"lsr.{f.stem}"] = f
    return out


def _imports(path: Path, module: str) -> set[str]:
    """Every lsr module ``path`` imports, at module level or inside functions (relative ones resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = (
                    module.split(".")[: -node.level] if not path.name == "__init__.py" else module.split(".")
                )
                if path.name == "__init__.py" and node.level > 1:
                    pkg = pkg[: -(node.level - 1)]
                base = ".".join([*pkg, base]) if base else ".".join(pkg)
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)
    return {m for m in found if m == "lsr" or m.startswith("lsr.")}


def _package_of(module: str) -> str | None:
    for pkg in PACKAGES:
        if module == pkg or module.startswith(pkg + "."):
            return pkg
    return None


def test_index_imports_no_encoder_training_or_eval():
    bad = []
    for f in (REPO / "index").rglob("*.py"):
        for m in _imports(f, "lsr.index"):
            if _package_of(m) in ("lsr.encoders", "lsr.training", "lsr.eval"):
                bad.append(f"{f.relative_to(REPO)} imports {m}")
        text = f.read_text(encoding="utf-8")
        for name in ("lsr.encoders", "lsr.training", "lsr.eval"):
            if name in text:
                bad.append(f"{f.relative_to(REPO)} mentions {name}")
    assert not bad, bad


def test_no_import_cycle_between_encoders_training_eval_and_index():
    """Package-level graph over encoders, training, eval and index, with edges through any other lsr
    module (lsr.retriever, lsr.corpus, ...) followed: every import, function-level ones included.
    The single allowed back edge is Index.search's compatibility hand-off of text to lsr.retriever."""
    files = _module_files()
    known = set(files)
    edges: dict[str, set[str]] = {}
    for mod, f in files.items():
        targets = set()
        for m in _imports(f, mod):
            while m and m not in known:  # "from lsr.x import name" -> lsr.x
                m = m.rpartition(".")[0]
            if m and m != mod:
                targets.add(m)
        edges[mod] = targets
    edges["lsr.index.searcher"].discard("lsr.retriever")  # the documented compatibility hand-off
    # package-level reachability: pkg A -> pkg B if a module of A reaches a module of B through
    # modules of no package (lsr.retriever, lsr.corpus, lsr.vectors, ...)
    pkg_edges: dict[str, set[str]] = {p: set() for p in PACKAGES}
    for mod in files:
        src = _package_of(mod)
        if src is None:
            continue
        seen, stack = set(), list(edges[mod])
        while stack:
            m = stack.pop()
            if m in seen:
                continue
            seen.add(m)
            p = _package_of(m)
            if p is None:
                stack.extend(edges.get(m, ()))
            elif p != src:
                pkg_edges[src].add(p)
    # a cycle exists iff some package reaches itself
    for start in PACKAGES:
        seen, stack = set(), list(pkg_edges[start])
        while stack:
            p = stack.pop()
            assert p != start, f"import cycle through {start}: {pkg_edges}"
            if p not in seen:
                seen.add(p)
                stack.extend(pkg_edges[p])
    assert "lsr.index" not in pkg_edges["lsr.encoders"] and "lsr.training" not in pkg_edges["lsr.encoders"]


FRESH = [
    "lsr.encoders.base",
    "lsr.encoders.inference_free",
    "lsr.encoders.bm25",
    "lsr.training.data",
    "lsr.index.searcher",
    "lsr.index.builder",
    "lsr.index.methods",
    "lsr.retriever",
    "lsr.corpus",
    "lsr.eval.harness",
]


def test_modules_import_alone_in_a_fresh_interpreter():
    """The modules of the old cycle (encoders/base -> inference_free -> training/data ->
    index/searcher -> encoders/base) and the new ones each import first in a clean interpreter:
    none depends on another having been imported before it."""
    mods = FRESH
    code = (
        "import importlib, subprocess, sys\n"
        "bad = []\n"
        "for m in sys.argv[1:]:\n"
        "    r = subprocess.run([sys.executable, '-c', f'import {m}'], capture_output=True, text=True)\n"
        "    if r.returncode: bad.append((m, r.stderr.strip().splitlines()[-1:]))\n"
        "print(bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    env = {**os.environ, "PYTHONPATH": ""}
    r = subprocess.run(
        [sys.executable, "-c", code, *mods], capture_output=True, text=True, env=env, timeout=600
    )
    assert r.returncode == 0, r.stdout + r.stderr
