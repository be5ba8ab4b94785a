"""The figures of ``lsr eval``: ``recall_latency.png`` and ``ndcg_per_query.png``.

Both stay readable when systems are identical (exact, maxscore and rank-safe bmp give the same
recall and often the same latency): every system gets its own row (a dot plot) or its own panel
(small multiples), so no label or marker can sit on top of another system's.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def recall_latency_figure(report: dict[str, Any]) -> Any:
    """A dot plot, one row per lsr method: p50 latency (dot) to p99 (line) in ms on the left, recall
    of the top-k against exact search on the right; the method names are the shared y tick labels."""
    plt = _pyplot()
    rows = [(n, s) for n, s in report["systems"].items() if s["kind"] == "lsr"]
    n = max(len(rows), 1)
    fig, (ax_l, ax_r) = plt.subplots(
        1, 2, sharey=True, figsize=(8, 1.2 + 0.45 * n), gridspec_kw={"width_ratios": [3, 2]}
    )
    y = np.arange(len(rows))
    p50 = [s["efficiency"]["latency_ms"]["p50"] for _, s in rows]
    p99 = [s["efficiency"]["latency_ms"].get("p99", s["efficiency"]["latency_ms"]["p50"]) for _, s in rows]
    rec = [s.get("recall_vs_exact", 1.0) for _, s in rows]
    for i in range(len(rows)):
        color = f"C{i % 10}"
        ax_l.plot([p50[i], p99[i]], [y[i], y[i]], color=color, lw=2, alpha=0.5)
        ax_l.plot([p50[i]], [y[i]], "o", color=color, ms=7)
        ax_r.plot([rec[i]], [y[i]], "o", color=color, ms=7)
    ax_l.set_yticks(y, [name for name, _ in rows])
    ax_l.invert_yaxis()  # first system on top
    if rows and min(p50) > 0 and max(p99) / min(p50) > 20:
        ax_l.set_xscale("log")
    ax_l.set_xlabel("latency per query (ms): p50 dot, line to p99")
    ax_r.set_xlabel(f"recall@{report['settings']['k']} vs exact")
    lo = min(rec) if rec else 1.0
    ax_r.set_xlim(max(0.0, lo - 0.05 - 0.1 * (1 - lo)), 1.02)
    for ax in (ax_l, ax_r):
        ax.grid(True, axis="x", alpha=0.3)
    fig.suptitle(f"{report['dataset']['name']}: recall vs latency", fontsize=11)
    fig.tight_layout()
    return fig


def ndcg_per_query_figure(report: dict[str, Any], per_query_ndcg: dict[str, dict[str, float]]) -> Any:
    """Small multiples: one filled histogram of per-query nDCG@10 per system (shared axes), titled with
    the system's name and mean, its mean marked by a dashed line."""
    plt = _pyplot()
    names = list(per_query_ndcg)
    n = max(len(names), 1)
    ncols = 1 if n <= 3 else 2
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(
        nrows, ncols, sharex=True, sharey=True, squeeze=False, figsize=(4 * ncols + 1, 0.6 + 1.5 * nrows)
    )
    bins = np.linspace(0, 1, 21)
    for i, ax in enumerate(axes.flat):
        if i >= len(names):
            ax.set_visible(False)
            continue
        vals = np.fromiter(per_query_ndcg[names[i]].values(), dtype=np.float64)
        mean = float(vals.mean()) if vals.size else 0.0
        ax.hist(vals, bins=bins, color=f"C{i % 10}", alpha=0.85)
        ax.axvline(mean, color="black", ls="--", lw=1)
        ax.set_title(f"{names[i]} (mean {mean:.3f})", fontsize=9)
        ax.grid(True, axis="y", alpha=0.3)
    for c in range(len(names) % ncols or ncols, ncols):  # a column whose last panel is empty
        axes[nrows - 2, c].tick_params(labelbottom=True)  # shows its x tick labels one panel up
    fig.supxlabel("nDCG@10 per query", fontsize=10)
    fig.supylabel("queries", fontsize=10)
    fig.suptitle(f"{report['dataset']['name']}: per-query nDCG@10", fontsize=11)
    fig.tight_layout()
    return fig


def write_plots(
    output: str, report: dict[str, Any], per_query_ndcg: dict[str, dict[str, float]]
) -> list[str]:
    """Write ``recall_latency.png`` and ``ndcg_per_query.png`` into ``output``; returns their names."""
    plt = _pyplot()
    out = []
    for name, fig in (
        ("recall_latency.png", recall_latency_figure(report)),
        ("ndcg_per_query.png", ndcg_per_query_figure(report, per_query_ndcg)),
    ):
        fig.savefig(os.path.join(output, name), dpi=100, metadata={"Software": None})
        plt.close(fig)
        out.append(name)
    return out
