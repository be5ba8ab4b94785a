"""CPU inference backends for the encoders: fp32 torch (the default) vs torch dynamic int8 vs ONNX Runtime
fp32 vs ONNX Runtime dynamic int8.

One process, the same texts (the first N SciFact documents, title + " " + text; the first Q SciFact
queries), the same threads (ORT's intra-op threads = ``torch.get_num_threads()``). Three workloads:

  * SPLADE documents: ``SpladeEncoder.encode_documents`` (batches of 32, doc_max_length 256), docs/s;
  * SPLADE single queries: ``encode_queries([q])`` one query at a time, p50 latency in ms;
  * uniCOIL documents: ``UniCoilEncoder.encode_documents``, docs/s.

Every backend plugs into the encoder's own batching (length-sorted batches, same padding) and its own
sparsification, so only the network's arithmetic differs:

  * ``torch-int8``: ``torch.ao.quantization.quantize_dynamic`` on the backbone's (and MLM transform's)
    ``nn.Linear``; for SPLADE the vocabulary projection runs as per-channel int8 dynamic linears, one per
    2048-term tile, max-pooled over real tokens only (as the fp32 fast path);
  * ``ort-fp32``: the whole network exported to ONNX (legacy TorchScript exporter); for SPLADE the graph
    returns the (batch, vocab) pooled weights: padding tokens' hidden states are replaced by [CLS]'s
    (so they can never raise a max), the projection runs in 2048-term tiles each max-pooled at once (no
    batch x length x vocab tensor), then log1p(relu(.)). For uniCOIL it returns the per-token weights;
  * ``ort-int8``: that graph through ``onnxruntime.quantization.quantize_dynamic`` (QInt8 weights,
    per-channel).

``lsr.encoders.onnx_backend`` (``SpladeEncoder(backend="onnx")``) builds the same SPLADE graph.

Speed: the median over ``--repeats`` timed runs after one warm-up; the repeats are interleaved across
backends (round-robin) so a neighbour's load hits them alike. Agreement with the fp32 vectors: max
abs weight difference, mean / min top-64 term overlap per vector, mean |nnz difference| per vector.
Tolerance: an fp32 backend gives "the same vectors" if max |diff| <= 1e-4; an int8 backend is
"acceptable" only if the mean top-64 overlap >= 0.95 (and its min >= 0.80).

    python benchmarks/bench_cpu_inference.py --n-docs 128 --repeats 3 --threads 1
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import types
import warnings

import numpy as np

from lsr.eval.environment import cpu_name

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VOCAB_TILE = 2048
FP32_TOL = 1e-4
INT8_MEAN_OVERLAP = 0.95
INT8_MIN_OVERLAP = 0.80


# -- agreement ---------------------------------------------------------------------------------------
def top_overlap(a: np.ndarray, b: np.ndarray, k: int = 64) -> tuple[float, float]:
    vals = []
    for x, y in zip(a, b, strict=True):
        tx = np.argsort(-x, kind="stable")[:k]
        tx = set(tx[x[tx] > 0].tolist())
        ty = np.argsort(-y, kind="stable")[:k]
        ty = set(ty[y[ty] > 0].tolist())
        vals.append(len(tx & ty) / max(1, len(tx)))
    return float(np.mean(vals)), float(np.min(vals))


def agreement(ref: np.ndarray, got: np.ndarray) -> dict:
    mean, low = top_overlap(ref, got)
    nnz_ref, nnz_got = (ref > 0).sum(1), (got > 0).sum(1)
    return {
        "max_abs_diff": float(np.abs(ref - got).max()),
        "top64_overlap_mean": mean,
        "top64_overlap_min": low,
        "nnz_mean_ref": float(nnz_ref.mean()),
        "nnz_mean_abs_diff": float(np.abs(nnz_ref - nnz_got).mean()),
    }


# -- SPLADE backends ---------------------------------------------------------------------------------
def splade_torch_int8(enc):
    """A shallow copy of ``enc`` whose ``_pool`` runs the backbone, transform and projection in int8."""
    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    q = copy.copy(enc)
    q._local = type(enc._local)()
    q._backbone = quantize_dynamic(copy.deepcopy(enc._backbone), {torch.nn.Linear}, dtype=torch.qint8)
    if enc._transform is not None:
        q._transform = quantize_dynamic(copy.deepcopy(enc._transform), {torch.nn.Linear}, dtype=torch.qint8)
    weight = enc._decoder.weight.detach()
    tiles = []
    for v0 in range(0, enc.vocab_size, VOCAB_TILE):
        w = weight[v0 : v0 + VOCAB_TILE]
        lin = torch.nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            lin.weight.copy_(w)
            lin.bias.copy_(enc._bias[v0 : v0 + VOCAB_TILE])
        qlin = quantize_dynamic(
            torch.nn.Sequential(lin), {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8
        )[0]
        tiles.append((v0, w.shape[0], qlin))

    def _pool(self, input_ids, mask, lens):
        hidden = self._backbone(input_ids=input_ids, attention_mask=mask).last_hidden_state
        h = hidden[mask.bool()]
        if self._transform is not None:
            h = self._transform(h)
        out = torch.empty((len(lens), self.vocab_size), dtype=torch.float32)
        starts = np.concatenate([[0], np.cumsum(lens)])
        for v0, w, qlin in tiles:
            logits = qlin(h)
            for r in range(len(lens)):
                out[r, v0 : v0 + w] = logits[starts[r] : starts[r + 1]].amax(dim=0)
        return torch.log1p(torch.relu(out))

    q._pool = types.MethodType(_pool, q)
    return q


def splade_onnx_module(enc):
    import torch

    class Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = enc._backbone
            self.transform = enc._transform
            w = enc._decoder.weight.detach()
            self.tiles = [
                (w[v0 : v0 + VOCAB_TILE].t().contiguous(), enc._bias[v0 : v0 + VOCAB_TILE].clone())
                for v0 in range(0, enc.vocab_size, VOCAB_TILE)
            ]
            for i, (wt, bt) in enumerate(self.tiles):
                self.register_buffer(f"w{i}", wt)
                self.register_buffer(f"b{i}", bt)

        def forward(self, input_ids, attention_mask):
            h = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            if self.transform is not None:
                h = self.transform(h)
            # padding tokens get [CLS]'s hidden state: their logits equal [CLS]'s, so no max changes
            h = torch.where(attention_mask.unsqueeze(-1).bool(), h, h[:, :1, :])
            cols = []
            for i in range(len(self.tiles)):
                cols.append((h @ getattr(self, f"w{i}") + getattr(self, f"b{i}")).amax(dim=1))
            return torch.log1p(torch.relu(torch.cat(cols, dim=1)))

    return Pooled().eval()


def unicoil_onnx_module(enc):
    import torch

    class Weights(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.m = enc.model

        def forward(self, input_ids, attention_mask):
            return self.m(input_ids, attention_mask)

    return Weights().eval()


def export(module, path: str) -> None:
    import torch

    ids = torch.tensor([[101, 2023, 2003, 1037, 3231, 102, 0], [101, 2178, 3231, 102, 0, 0, 0]])
    mask = (ids != 0).long()
    axes = {"input_ids": {0: "batch", 1: "length"}, "attention_mask": {0: "batch", 1: "length"}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (ids, mask),
            path,
            input_names=["input_ids", "attention_mask"],
            output_names=["out"],
            dynamic_axes={**axes, "out": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )


def ort_session(path: str, threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def quantize(src: str, dst: str) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(src, dst, weight_type=QuantType.QInt8, per_channel=True)


def splade_ort(enc, sess):
    import torch

    q = copy.copy(enc)

    def _pool(self, input_ids, mask, lens):
        (out,) = sess.run(None, {"input_ids": input_ids.numpy(), "attention_mask": mask.numpy()})
        return torch.from_numpy(out)

    q._pool = types.MethodType(_pool, q)
    return q


# -- uniCOIL backends --------------------------------------------------------------------------------
def unicoil_torch_int8(enc):
    import torch
    from torch.ao.quantization import quantize_dynamic

    q = copy.copy(enc)
    q.model = quantize_dynamic(copy.deepcopy(enc.model), {torch.nn.Linear}, dtype=torch.qint8)
    return q


def unicoil_ort(enc, sess):
    import torch

    q = copy.copy(enc)

    def _token_weights(self, texts, max_length):
        e = self.tokenizer(
            list(texts), truncation=True, max_length=max_length, padding=True, return_tensors="np"
        )
        ids, mask = e["input_ids"].astype(np.int64), e["attention_mask"].astype(np.int64)
        (w,) = sess.run(None, {"input_ids": ids, "attention_mask": mask})
        ids, w = torch.from_numpy(ids), torch.from_numpy(w)
        keep = torch.from_numpy(mask).bool() & ~torch.as_tensor(self._special)[ids]
        return ids, w * keep, keep

    q._token_weights = types.MethodType(_token_weights, q)
    return q


# -- driver ------------------------------------------------------------------------------------------
def run_interleaved(fns: dict, repeats: int) -> tuple[dict, dict]:
    """{name: fn}: one warm-up each, then ``repeats`` rounds of one timed call each; medians, outputs."""
    out = {name: fn() for name, fn in fns.items()}
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {n: float(np.median(t)) for n, t in times.items()}, out


def query_latencies(enc, queries: list[str], repeats: int) -> tuple[float, np.ndarray]:
    """p50 over all single-query calls of ``repeats`` passes (after a warm-up pass), and the vectors."""
    vecs = [enc.encode_queries([q]).to_scipy().toarray()[0] for q in queries]
    lat = []
    for _ in range(repeats):
        for q in queries:
            t0 = time.perf_counter()
            enc.encode_queries([q])
            lat.append(time.perf_counter() - t0)
    return float(np.median(lat)) * 1e3, np.stack(vecs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-docs", type=int, default=128)
    ap.add_argument("--n-queries", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--model", default="splade-tiny")
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads = ORT intra-op threads (default: torch's default). On a machine shared with other "
        "work, 1 avoids measuring OpenMP barrier stalls instead of arithmetic",
    )
    ap.add_argument("--output", default="benchmarks/results/cpu_inference.json")
    a = ap.parse_args()

    import onnxruntime
    import torch

    import lsr
    from lsr.eval.datasets import beir_folder
    from lsr.texts import iter_texts

    if a.threads:
        torch.set_num_threads(a.threads)
    threads = torch.get_num_threads()
    ds = beir_folder("scifact")
    texts = [r.full_text for r, _ in zip(iter_texts(ds.corpus), range(a.n_docs), strict=False)]
    queries = [r.full_text for r, _ in zip(iter_texts(ds.queries), range(a.n_queries), strict=False)]
    sp = lsr.load_encoder(a.model, batch_size=32, doc_max_length=256)
    uc = lsr.load_encoder(a.model, kind="unicoil", batch_size=32, doc_max_length=256)
    tokens = np.array([len(x) for x in sp.tokenizer(texts, truncation=True, max_length=256)["input_ids"]])
    rec: dict = {
        "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
        "git_commit": subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=REPO
        ).stdout.strip(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "load_average_at_start": list(os.getloadavg()),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "torch_threads": threads,
        "ort_intra_op_threads": threads,
        "model": a.model,
        "n_docs": len(texts),
        "n_queries": len(queries),
        "batch_size": 32,
        "doc_max_length": 256,
        "mean_tokens_per_doc": float(tokens.mean()),
        "repeats": a.repeats,
        "tolerance": {
            "fp32_same_vectors_max_abs_diff": FP32_TOL,
            "int8_top64_overlap_mean_min": INT8_MEAN_OVERLAP,
            "int8_top64_overlap_min_min": INT8_MIN_OVERLAP,
        },
    }
    tmp = tempfile.mkdtemp(prefix="lsr-onnx-")
    sp_onnx, uc_onnx = os.path.join(tmp, "splade.onnx"), os.path.join(tmp, "unicoil.onnx")
    t0 = time.perf_counter()
    export(splade_onnx_module(sp), sp_onnx)
    export(unicoil_onnx_module(uc), uc_onnx)
    quantize(sp_onnx, sp_onnx + ".int8")
    quantize(uc_onnx, uc_onnx + ".int8")
    rec["export_and_quantize_s"] = time.perf_counter() - t0
    splade = {
        "fp32": sp,
        "torch-int8": splade_torch_int8(sp),
        "ort-fp32": splade_ort(sp, ort_session(sp_onnx, threads)),
        "ort-int8": splade_ort(sp, ort_session(sp_onnx + ".int8", threads)),
    }
    unicoil = {
        "fp32": uc,
        "torch-int8": unicoil_torch_int8(uc),
        "ort-fp32": unicoil_ort(uc, ort_session(uc_onnx, threads)),
        "ort-int8": unicoil_ort(uc, ort_session(uc_onnx + ".int8", threads)),
    }
    rows = []
    with torch.inference_mode():
        # SPLADE documents
        t, out = run_interleaved(
            {n: (lambda e=e: e.encode_documents(texts)) for n, e in splade.items()}, a.repeats
        )
        dense = {n: v.to_scipy().toarray() for n, v in out.items()}
        for n in splade:
            rows.append(_row("splade-docs", n, len(texts) / t[n], len(texts) / t["fp32"], dense, n))
        # SPLADE single queries
        lat, qv = {}, {}
        for n, e in splade.items():
            lat[n], qv[n] = query_latencies(e, queries, a.repeats)
        for n in splade:
            rows.append(_row("splade-query", n, lat[n], lat["fp32"], qv, n, latency=True))
        # uniCOIL documents
        t, out = run_interleaved(
            {n: (lambda e=e: e.encode_documents(texts)) for n, e in unicoil.items()}, a.repeats
        )
        dense = {n: v.to_scipy().toarray() for n, v in out.items()}
        for n in unicoil:
            rows.append(_row("unicoil-docs", n, len(texts) / t[n], len(texts) / t["fp32"], dense, n))
    rec["results"] = rows
    os.makedirs(os.path.dirname(os.path.abspath(a.output)), exist_ok=True)
    with open(a.output, "w") as f:
        json.dump(rec, f, indent=2)
    md = _markdown(rec)
    with open(os.path.splitext(a.output)[0] + ".md", "w") as f:
        f.write(md)
    print(md)
    print(f"wrote {a.output} and {os.path.splitext(a.output)[0]}.md")
    return 0


def _row(task, name, value, base, vecs, key, latency=False) -> dict:
    ag = agreement(vecs["fp32"], vecs[key])
    speedup = base / value if latency else value / base
    if name == "fp32":
        verdict = "baseline"
    elif name.endswith("fp32"):
        verdict = "same vectors" if ag["max_abs_diff"] <= FP32_TOL else "DIFFERENT"
    else:
        ok = ag["top64_overlap_mean"] >= INT8_MEAN_OVERLAP and ag["top64_overlap_min"] >= INT8_MIN_OVERLAP
        verdict = "acceptable" if ok else "NOT acceptable"
    row = {"task": task, "backend": name, "speedup_vs_fp32": speedup, **ag, "verdict": verdict}
    row["p50_ms" if latency else "docs_per_s"] = value
    return row


def _markdown(r: dict) -> str:
    lines = [
        "# CPU inference backends: fp32 torch vs dynamic int8 vs ONNX Runtime",
        "",
        f"`{r['command']}` (commit {r['git_commit'][:12]}, {r['date']})",
        "",
        f"{r['cpu']} ({r['cpu_count']} cores, shared: load average "
        f"{r['load_average_at_start'][0]:.1f} at start), torch {r['torch']}, onnxruntime {r['onnxruntime']}, "
        f"{r['torch_threads']} torch threads = ORT intra-op threads; model {r['model']}; "
        f"{r['n_docs']} SciFact docs ({r['mean_tokens_per_doc']:.1f} tokens/doc, max {r['doc_max_length']}, "
        f"batches of {r['batch_size']}), {r['n_queries']} SciFact queries one at a time; medians of "
        f"{r['repeats']} interleaved repeats after a warm-up.",
        "",
        f"Tolerance: fp32 backends must give the same vectors (max |diff| <= {FP32_TOL:g}); int8 backends are "
        f"acceptable if top-64 overlap mean >= {INT8_MEAN_OVERLAP} and min >= {INT8_MIN_OVERLAP}.",
        "",
        "| workload | backend | docs/s or p50 ms | vs fp32 | max abs diff | top-64 overlap mean / min "
        "| nnz (fp32) / mean abs nnz diff | verdict |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for x in r["results"]:
        v = f"{x['p50_ms']:.2f} ms" if "p50_ms" in x else f"{x['docs_per_s']:.2f} docs/s"
        lines.append(
            f"| {x['task']} | {x['backend']} | {v} | {x['speedup_vs_fp32']:.2f}x | {x['max_abs_diff']:.2e} | "
            f"{x['top64_overlap_mean']:.3f} / {x['top64_overlap_min']:.3f} | "
            f"{x['nnz_mean_ref']:.0f} / {x['nnz_mean_abs_diff']:.1f} | {x['verdict']} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
