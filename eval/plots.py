"""The figures of ``lsr eval``: ``recall_latency.png`` and ``ndcg_per_query.png``."""

from __future__ import annotations

import os
from typing import Any

import numpy as np


def write_plots(
    output: str, report: dict[str, Any], per_query_ndcg: dict[str, dict[str, float]]
) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = []
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, sysr in report["systems"].items():
        if sysr["kind"] != "lsr":
            continue
        lat = sysr["efficiency"]["latency_ms"]
        ax.scatter([lat["p50"]], [sysr.get("recall_vs_exact", 1.0)], label=name)
        ax.annotate(
            name, (lat["p50"], sysr.get("recall_vs_exact", 1.0)), textcoords="offset points", xytext=(4, 4)
        )
    ax.set_xlabel("p50 latency per query (ms)")
    ax.set_ylabel(f"recall@{report['settings']['k']} vs exact")
    ax.set_title(f"{report['dataset']['name']}: recall vs latency")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    p = os.path.join(output, "recall_latency.png")
    fig.savefig(p, dpi=100, metadata={"Software": None})
    plt.close(fig)
    out.append(os.path.basename(p))

    fig, ax = plt.subplots(figsize=(6, 4))
    bins = np.linspace(0, 1, 21)
    for name, vals in per_query_ndcg.items():
        ax.hist(
            list(vals.values()),
            bins=bins,
            histtype="step",
            label=f"{name} (mean {np.mean(list(vals.values())):.3f})",
        )
    ax.set_xlabel("nDCG@10 per query")
    ax.set_ylabel("queries")
    ax.set_title(f"{report['dataset']['name']}: per-query nDCG@10")
    ax.legend(fontsize=8)
    fig.tight_layout()
    p = os.path.join(output, "ndcg_per_query.png")
    fig.savefig(p, dpi=100, metadata={"Software": None})
    plt.close(fig)
    out.append(os.path.basename(p))
    return out
