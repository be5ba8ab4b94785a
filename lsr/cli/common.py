"""Small helpers shared by the subcommands."""

from __future__ import annotations

import os
import sys
from typing import Any

from lsr.errors import LsrError


def check_positive(name: str, value: int | None) -> None:
    if value is not None and value <= 0:
        raise LsrError(f"--{name} must be > 0, got {value}")


def check_input(path: str) -> None:
    if not os.path.exists(path):
        raise LsrError(f"{path}: no such file")


def summary(line: str) -> None:
    """The one-line summary every command ends with (stderr, so stdout stays data)."""
    print(line, file=sys.stderr)


def encoder_options(args: Any) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    if getattr(args, "batch_size", None):
        opts["batch_size"] = args.batch_size
    if getattr(args, "precision", None):
        opts["precision"] = args.precision
    return opts


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} GB"


def open_retriever(index_path: str, model: str | None = None, force: bool = False) -> Any:
    """A :class:`lsr.Retriever` over the index at ``index_path``: with ``model`` (refused when its
    settings differ from the index's recorded encoder, unless ``force``), else the recorded encoder."""
    from lsr.index import open_index
    from lsr.retriever import Retriever

    index = open_index(index_path)
    encoder = None
    if model:
        import lsr

        encoder = lsr.load_encoder(model)
    return Retriever(index, encoder, force=force)


def load_query_file(retriever: Any, path: str) -> tuple[list[str], Any, str, float]:
    """Read a query file for ``retriever``'s index: (query ids, queries for search, kind, encode seconds).

    Vector files become a SparseBatch over the file's tokens (unknown ones are skipped by the
    search and counted); text files are encoded once by the retriever (its encoder, or the index's
    recorded one).
    """
    import time

    from lsr.texts import iter_texts, sniff_jsonl
    from lsr.vectors import read_vectors

    check_input(path)
    kind = sniff_jsonl(path)
    if kind == "vectors":
        batch = read_vectors(path, unknown="add")
        empty = [batch.ids[i] for i in range(len(batch)) if batch.indptr[i + 1] == batch.indptr[i]]  # type: ignore[index]
        if empty:
            raise LsrError(f"{path}: query {empty[0]!r} has an empty vector")
        return list(batch.ids or []), batch, kind, 0.0
    recs = list(iter_texts(path))
    for r in recs:
        if not r.text.strip():
            raise LsrError(f"{path}: query {r.id!r} is empty")
    t0 = time.perf_counter()
    batch = retriever.encode_queries([r.text for r in recs])
    return [r.id for r in recs], batch, kind, time.perf_counter() - t0


def method_params(pairs: list[str]) -> dict[str, float]:
    """``["alpha=0.9", "query_cut=5"]`` -> ``{"alpha": 0.9, "query_cut": 5}`` (numbers only)."""
    from lsr.errors import LsrError

    out: dict[str, float] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise LsrError(f"--param wants NAME=VALUE, got {pair!r}")
        try:
            num = float(value)
        except ValueError:
            raise LsrError(f"--param {name}: {value!r} is not a number") from None
        out[name.strip()] = int(num) if num.is_integer() and "." not in value else num
    return out
