"""The report of ``lsr eval``: ``report.json`` (:func:`build_report`), ``report.md``
(:func:`report_markdown`) and the BEIR leaderboard export (:func:`export_leaderboard`); the plots are
:mod:`lsr.eval.plots`."""

from __future__ import annotations

import json
import os
from typing import Any

from lsr.eval.runs import Run, write_run


def run_tag(name: str) -> str:
    """The TREC tag of a system's run (``lsr-<name>``, one word)."""
    return f"lsr-{name}".replace("_", "-")


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
    write_run(os.path.join(lb, run_file), runs[name], run_tag(name))
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
    """A figure with ``nd`` decimals, or "-" when missing."""
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
