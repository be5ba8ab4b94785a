"""ir-datasets ids for ``lsr eval --dataset``: exported once to a BEIR folder under the cache
directory, offline when the dataset's files are already in the ir-datasets cache."""

from __future__ import annotations

import json
import os
import shutil
from typing import Any

from lsr.errors import LsrError
from lsr.eval.datasets import BeirFolder


def export_ir_dataset(ds_id: str, cache_dir: str) -> BeirFolder:
    """Write an ir-datasets dataset as a BEIR folder under ``cache_dir/datasets`` (once).

    ir-datasets downloads missing files; with no network that hangs in retries, so the files the
    dataset needs are checked in its cache first and a missing one is a clear error at once.
    """
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
        missing = ir_datasets_missing_files(ds)
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


def ir_datasets_missing_files(ds: Any) -> list[str]:
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
