"""Single-query SPLADE encoding latency: the reference path against the query fast path.

Same process, same queries (SciFact's test queries by default), one query per ``encode_queries`` call, the
encoders interleaved query by query (the paths' order rotates), so load on a shared machine hits every
path alike. Paths (``--paths``, ``query_path`` of :class:`lsr.encoders.splade.SpladeEncoder`):

* ``reference``: the batched path (tokenize, HF backbone, 15 vocabulary tiles of addmm + max, dense
  (1, vocab) vector to sparse);
* ``screen-torch``: int8 screen + exact float32 rescoring of the candidate terms, torch backbone;
* ``screen-onnx``: the same with the backbone in ONNX Runtime (skipped without onnxruntime);
* ``auto``: the default (``prepare_queries()`` first, as the service's warm-up does).

Reports p50 / p99 / mean ms per query, the ratio of medians to the reference, the largest |weight|
difference to the reference and the number of terms present in one and not the other (must be 0), and a
profile of one median-length query's parts (tokenizer, backbones, projections). Writes JSON and
Markdown.

    python benchmarks/bench_query_encoder.py --threads 1 --output benchmarks/results/query_encoder.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def stats(seconds: list[float]) -> dict:
    ms = np.asarray(seconds) * 1e3
    return {
        "p50": float(np.percentile(ms, 50)),
        "p99": float(np.percentile(ms, 99)),
        "mean": float(ms.mean()),
        "n": len(ms),
    }


def median_ms(fn, repeats: int) -> float:
    fn()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts) * 1e3)


def profile_parts(enc, text: str, repeats: int) -> dict:
    """Median ms of each part of encoding ``text``, reference path and fast path."""
    import torch

    from lsr.encoders.query_fast import ScreenedProjection

    ids = enc.tokenizer([text], truncation=True, max_length=enc.query_max_length)["input_ids"][0]
    t = torch.tensor([ids])
    mask = torch.ones_like(t)
    out = {"tokens": len(ids)}
    with torch.inference_mode():
        out["tokenizer"] = median_ms(
            lambda: enc.tokenizer([text], truncation=True, max_length=enc.query_max_length), repeats
        )
        out["backbone_torch"] = median_ms(lambda: enc._backbone(input_ids=t, attention_mask=mask), repeats)
        hid = enc._backbone(input_ids=t, attention_mask=mask).last_hidden_state[0]
        out["mlm_transform"] = median_ms(lambda: enc._transform(hid), repeats)
        h = enc._transform(hid)
        out["projection_reference_tiles"] = median_ms(
            lambda: enc.project_pool(h, np.array([len(ids)])), repeats
        )
        screen = ScreenedProjection(enc._decoder.weight, enc._bias)
        out["projection_screened"] = median_ms(lambda: screen.pooled(h), repeats)
        out["screen_candidates"] = int(len(screen.pooled(h)[0]))
        out["int8_gemm_and_max"] = median_ms(
            lambda: torch._int_mm(torch.zeros((len(ids), h.shape[1]), dtype=torch.int8), screen.q_t).amax(0),
            repeats,
        )
        try:
            from lsr.encoders.query_fast import backbone_session

            sess = backbone_session(enc, torch.get_num_threads())
            arr = np.asarray([ids], np.int64)
            out["backbone_and_transform_onnx"] = median_ms(
                lambda: sess.run(None, {"input_ids": arr}), repeats
            )
        except Exception as e:  # noqa: BLE001 - onnxruntime missing or the export failed: say so
            out["backbone_and_transform_onnx"] = f"n/a ({type(e).__name__})"
    return out


def _rotate(paths: list[str], k: int) -> list[str]:
    k %= len(paths)
    return paths[k:] + paths[:k]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="splade-tiny")
    ap.add_argument("--queries", default=None, help="BEIR queries.jsonl (default: SciFact's test queries)")
    ap.add_argument("--n-queries", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=2, help="passes over the queries (after a warm-up pass)")
    ap.add_argument("--paths", default="reference,screen-torch,screen-onnx,auto")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--order",
        choices=["interleaved", "blocked"],
        default="interleaved",
        help="interleaved: the paths take turns query by query (fair under changing load, but each path "
        "finds the caches the other left); blocked: each path encodes all queries in a row, the paths' "
        "order rotating every round (a service's steady state: its own weights stay in cache)",
    )
    ap.add_argument("--output", default="benchmarks/results/query_encoder.json")
    a = ap.parse_args()

    import torch

    import lsr
    from lsr.eval.datasets import beir_folder
    from lsr.eval.environment import cpu_name
    from lsr.texts import iter_texts

    torch.set_num_threads(a.threads)
    qpath = a.queries or beir_folder("scifact").queries
    queries = [q.text for q in iter_texts(qpath)][: a.n_queries]
    paths = [p for p in a.paths.split(",") if p]
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        paths = [p for p in paths if p != "screen-onnx"]
    encs = {p: lsr.load_encoder(a.model, query_path=p, device="cpu") for p in paths}
    for e in encs.values():
        e.prepare_queries()
    ref_path = "reference" if "reference" in encs else paths[0]
    lat: dict[str, list[float]] = {p: [] for p in paths}
    cpu: dict[str, list[float]] = {p: [] for p in paths}  # process CPU time: less sensitive to other load
    vecs: dict[str, list] = {p: [] for p in paths}
    for q in queries[:20]:  # warm-up
        for e in encs.values():
            e.encode_queries([q])
    for r in range(a.rounds):
        if a.order == "interleaved":
            steps = [(q, p) for i, q in enumerate(queries) for p in _rotate(paths, i + r)]
        else:
            steps = [(q, p) for p in _rotate(paths, r) for q in queries]
        for q, p in steps:
            c0, t0 = time.process_time(), time.perf_counter()
            v = encs[p].encode_queries([q])
            lat[p].append(time.perf_counter() - t0)
            cpu[p].append(time.process_time() - c0)
            if r == 0:
                vecs[p].append(v.to_scipy())
    import scipy.sparse as sp

    ref = sp.vstack(vecs[ref_path]).toarray()
    rec: dict = {
        "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
        "git_commit": subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=REPO
        ).stdout.strip(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "load_average_at_start": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "torch": torch.__version__,
        "threads": a.threads,
        "model": a.model,
        "queries": len(queries),
        "rounds": a.rounds,
        "order": a.order,
        "mean_tokens": float(
            np.mean([len(x) for x in encs[ref_path].tokenizer(queries, truncation=True)["input_ids"]])
        ),
        "paths": {},
    }
    base = np.median(lat[ref_path])
    for p in paths:
        dense = sp.vstack(vecs[p]).toarray()
        rec["paths"][p] = {
            "latency_ms": stats(lat[p]),
            "cpu_ms": stats(cpu[p]),
            "speedup_p50_vs_reference": float(base / np.median(lat[p])),
            "cpu_speedup_p50_vs_reference": float(np.median(cpu[ref_path]) / np.median(cpu[p])),
            "max_abs_diff_vs_reference": float(np.abs(dense - ref).max()),
            "terms_differing_vs_reference": int(((dense > 0) != (ref > 0)).sum()),
            "mean_nnz": float((dense > 0).sum(1).mean()),
        }
    lengths = [len(x) for x in encs[ref_path].tokenizer(queries, truncation=True)["input_ids"]]
    median_q = queries[int(np.argsort(lengths)[len(lengths) // 2])]
    rec["profile_median_query"] = profile_parts(encs[ref_path], median_q, 50)
    os.makedirs(os.path.dirname(os.path.abspath(a.output)), exist_ok=True)
    with open(a.output, "w") as f:
        json.dump(rec, f, indent=2)
    md = _markdown(rec)
    with open(os.path.splitext(a.output)[0] + ".md", "w") as f:
        f.write(md)
    print(md)
    return 0


def _markdown(r: dict) -> str:
    lines = [
        "# Single-query SPLADE encoding: reference path vs query fast path",
        "",
        f"`{r['command']}` (commit {r['git_commit'][:7]}, {r['date']}, {r['cpu']}, {r['cores']} cores, load "
        f"average {r['load_average_at_start']} at start, torch {r['torch']}, {r['threads']} thread(s)); "
        f"model {r['model']}; {r['queries']} queries x {r['rounds']} rounds, {r['mean_tokens']:.1f} tokens "
        f"per query, one query per call, paths {r['order']} (see --order). CPU = process CPU time, less "
        "sensitive to other load than wall time.",
        "",
        "| path | p50 ms | p99 ms | mean ms | p50 speed-up | CPU p50 ms | CPU p50 speed-up | max abs diff "
        "| terms differing | mean nnz |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p, x in r["paths"].items():
        lat = x["latency_ms"]
        lines.append(
            f"| {p} | {lat['p50']:.2f} | {lat['p99']:.2f} | {lat['mean']:.2f} | "
            f"{x['speedup_p50_vs_reference']:.2f}x | {x['cpu_ms']['p50']:.2f} | "
            f"{x['cpu_speedup_p50_vs_reference']:.2f}x | {x['max_abs_diff_vs_reference']:.1e} | "
            f"{x['terms_differing_vs_reference']} | {x['mean_nnz']:.1f} |"
        )
    prof = r["profile_median_query"]
    lines += ["", f"Parts of one median query ({prof['tokens']} tokens), median ms:", ""]
    lines += ["| part | ms |", "|---|---:|"]
    for k, v in prof.items():
        if k != "tokens":
            lines.append(f"| {k} | {v if isinstance(v, (str, int)) else f'{v:.3f}'} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
