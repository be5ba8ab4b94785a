"""``lsr eval --compare DIR1 DIR2``: the runs of two ``lsr eval`` outputs side by side, with ranx's
paired significance test."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from lsr.errors import LsrError
from lsr.eval.metrics import METRICS
from lsr.eval.runs import RUNS_DIR, Run, read_run


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

    from lsr.eval.metrics import id_codes, quiet_ranx, ranx_qrels, ranx_run

    q1, runs1 = load_eval_dir(dir1)
    q2, runs2 = load_eval_dir(dir2)
    if q1 != q2:
        raise LsrError(f"{dir1} and {dir2} were evaluated on different qrels: their runs cannot be compared")
    common = [n for n in runs1 if n in runs2]
    if not common:
        raise LsrError(f"no run name in common: {dir1} has {', '.join(runs1)}; {dir2} has {', '.join(runs2)}")
    codes = id_codes(q1, *(runs1[n] for n in common), *(runs2[n] for n in common))
    qrels = ranx_qrels(q1, codes)
    rows = []
    for name in common:
        a = ranx_run({q: v for q, v in runs1[name].items() if q in q1}, "A", by_rank=True, codes=codes)
        b = ranx_run({q: v for q, v in runs2[name].items() if q in q1}, "B", by_rank=True, codes=codes)
        with quiet_ranx():
            rep = compare(
                qrels,
                runs=[a, b],
                metrics=list(metrics),
                max_p=max_p,
                stat_test=stat_test,
                make_comparable=True,
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
    """The Markdown table ``lsr eval --compare`` prints for a :func:`compare_dirs` result."""
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
