"""TREC runs: the one reader and writer of ``qid Q0 docid rank score tag`` files.

``lsr search`` and ``lsr eval`` (and ``lsr demo``) write through :func:`write_trec`, so every run file
lsr writes ranks the same way (score descending, then doc id ascending) and formats scores the same
way: the shortest decimal that reads back to the same float (``repr``), so a run read back with
:func:`read_run` is exactly the run written, and the same command twice gives identical bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import IO, Any

from lsr.errors import LsrError

Run = dict[str, list[tuple[str, float]]]  # qid -> [(doc id, score)], best first
RUNS_DIR = "runs"  # the run files' folder in an ``lsr eval`` output


def ranked(pairs: Iterable[tuple[str, float]], k: int | None = None) -> list[tuple[str, float]]:
    """Deterministic ranking: score descending, then doc id ascending (the first ``k`` when given)."""
    out = sorted(((str(d), float(s)) for d, s in pairs), key=lambda x: (-x[1], x[0]))
    return out[:k] if k is not None else out


def results_to_run(qids: Sequence[str], results: Sequence[Any]) -> Run:
    """A run from search results (objects with ``ids`` and ``scores``), one per query id, re-ranked
    with :func:`ranked`."""
    return {q: ranked(zip(r.ids, r.scores, strict=True)) for q, r in zip(qids, results, strict=True)}


def format_score(score: float) -> str:
    """The shortest decimal that reads back to the same float64 (float32 scores widen exactly)."""
    return repr(float(score))


def check_tag(tag: str) -> str:
    """A run tag is one word (TREC's sixth column)."""
    if not tag or any(c.isspace() for c in tag):
        raise LsrError(f"run tag {tag!r} must be one word")
    return tag


def write_trec(f: IO[str], run: Iterable[tuple[str, Sequence[tuple[str, float]]]], tag: str) -> None:
    """Write ``(qid, [(doc id, score), ...] best first)`` rows to ``f`` in the given query order, ranks
    from 1."""
    check_tag(tag)
    for qid, pairs in run:
        for rank, (doc, score) in enumerate(pairs, 1):
            f.write(f"{qid} Q0 {doc} {rank} {format_score(score)} {tag}\n")


def write_run(path: str, run: Run, tag: str) -> None:
    """TREC run file, queries in sorted id order, ranks from 1 (byte-identical for the same run)."""
    check_tag(tag)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        write_trec(f, ((q, run[q]) for q in sorted(run)), tag)


def read_run(path: str) -> Run:
    """A TREC run file as a :data:`Run` (each query's documents re-ranked with :func:`ranked`)."""
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
    """Judgments in BEIR's TSV format (header, then ``query-id corpus-id score``), sorted."""
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for q in sorted(qrels):
            for d in sorted(qrels[q]):
                f.write(f"{q}\t{d}\t{qrels[q][d]}\n")
