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


def warn(line: str) -> None:
    """A one-line warning on stderr: ``lsr: warning: ...``."""
    print(f"lsr: warning: {line}", file=sys.stderr)


def encoder_options(args: Any) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    if getattr(args, "batch_size", None):
        opts["batch_size"] = args.batch_size
    if getattr(args, "precision", None):
        opts["precision"] = args.precision
    if getattr(args, "device", None):
        opts["device"] = args.device
    if getattr(args, "max_batch_tokens", None):
        opts["max_batch_tokens"] = args.max_batch_tokens
    return opts


def threads_arg(value: str) -> int | str:
    """argparse type of ``--threads``: ``auto`` or an integer >= 1."""
    import argparse

    if value == "auto":
        return value
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1 or 'auto', got {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1 (or 'auto'), got {n}")
    return n


def auto_threads() -> int:
    """Threads for ``--threads auto``: the cores this process may use minus the busy ones (the
    1-minute load average, rounded), at least 1. On an idle 8-core machine 8; with the other core
    of a 2-core machine busy, 1 (torch's default of every core there ran 3x slower)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        busy = int(round(os.getloadavg()[0]))
    except (AttributeError, OSError):  # no load average on this platform
        busy = 0
    return max(1, min(cores, cores - busy))


def apply_threads(value: int | str | None, torch: bool = True) -> int:
    """Resolve ``--threads`` (``auto``/None: :func:`auto_threads`) and set numba's threads and, when
    ``torch`` (the command encodes) or torch is already loaded, torch's intra-op threads. Returns
    the number, which the caller also uses for its own batch work (batch search, part builds)."""
    n = auto_threads() if value in (None, "auto") else int(value)
    if n < 1:
        raise LsrError(f"--threads must be >= 1, got {n}")
    import numba

    numba.set_num_threads(max(1, min(n, numba.config.NUMBA_NUM_THREADS)))  # numba's pool caps it
    if torch or "torch" in sys.modules:
        import torch as _torch

        _torch.set_num_threads(n)
    return n


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} GB"


def load_query_file(
    index: Any, path: str, model: str | None = None, force: bool = False
) -> tuple[Any, list[str], Any, str, float, float]:
    """Read a query file for ``index``: (a :class:`lsr.Retriever` over it, query ids, queries for
    ``Retriever.search``, kind, seconds loading the model, seconds encoding the queries), the two
    timed apart (loading dominates short runs). Text queries are encoded with ``model`` (refused when
    its settings differ from the index's recorded encoder, unless ``force``), else with the recorded one.

    Vector files become a SparseBatch over the file's tokens (unknown ones are skipped by the
    search and counted); text files are encoded once by the retriever (its encoder, or the index's
    recorded one).
    """
    import time

    from lsr.retriever import Retriever
    from lsr.texts import iter_texts, sniff_jsonl
    from lsr.vectors import read_vectors

    check_input(path)
    kind = sniff_jsonl(path)
    if kind == "vectors":
        batch = read_vectors(path, unknown="add")
        empty = [batch.ids[i] for i in range(len(batch)) if batch.indptr[i + 1] == batch.indptr[i]]  # type: ignore[index]
        if empty:
            raise LsrError(f"{path}: query {empty[0]!r} has an empty vector")
        return Retriever(index, force=force), list(batch.ids or []), batch, kind, 0.0, 0.0
    recs = list(iter_texts(path))
    for r in recs:
        if not r.text.strip():
            raise LsrError(f"{path}: query {r.id!r} is empty")
    if not model and not index.encoder_config:
        raise LsrError(
            f"{path} holds query texts, but {index.path} was built from vectors and records no encoder: "
            "pass --model (the model that made the document vectors) to encode them, or give query vectors"
        )
    t0 = time.perf_counter()
    retriever = Retriever(index, model, force=force)  # a model name is loaded (and checked) here
    retriever.query_encoder  # noqa: B018 (the recorded encoder loads on first use: now, timed as loading)
    t1 = time.perf_counter()
    batch = retriever.encode_queries([r.text for r in recs])
    return retriever, [r.id for r in recs], batch, kind, t1 - t0, time.perf_counter() - t1


def duplicate_ids(path: str, limit: int = 10) -> tuple[list[tuple[str, int, int]], int]:
    """Duplicate ``_id``s of a BEIR text file, read before any encoding (a pass over the JSON
    only): (up to ``limit`` of (id, line, line of its first use), total number of duplicates)."""
    from lsr.vectors import _record_id, iter_jsonl

    first: dict[str, int] = {}
    found: list[tuple[str, int, int]] = []
    total = 0
    for lineno, obj in iter_jsonl(path):
        rid = _record_id(obj, path, lineno, ("_id", "id"))
        at = first.setdefault(rid, lineno)
        if at != lineno:
            total += 1
            if len(found) < limit:
                found.append((rid, lineno, at))
    return found, total


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
