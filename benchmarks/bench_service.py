"""HTTP load benchmark: `lsr serve` under N concurrent clients, against in-process search.

Loopback only and bounded in time. For each worker count, starts `lsr serve` as a real process on a
free 127.0.0.1 port, waits for /ready, then N concurrent clients (asyncio + httpx) send POST /search
with SciFact's test queries (text: encoded by the server) for --duration seconds. The same queries
are then run in this process through `index.search` (encoding included), one thread and then
--inproc-threads threads, for the same duration. Reports QPS, latency percentiles and errors, and
the ratio HTTP QPS / in-process QPS. Writes JSON and Markdown.

    python benchmarks/bench_service.py --index demo-output/index --clients 8 --duration 30 --workers 1,2

End-to-end latency of one text query at a time, the SPLADE query fast path against the reference path
(``LSR_QUERY_PATH`` of the server; see lsr.encoders.query_fast):

    python benchmarks/bench_service.py --index demo-output/index --clients 1 --workers 1 \
        --query-paths reference,auto --duration 30 --output benchmarks/results/service_query_paths.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time

import numpy as np


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stats(lat: list[float]) -> dict:
    ms = np.asarray(lat) * 1e3
    if not len(ms):
        return {}
    return {
        "mean": float(ms.mean()),
        "p50": float(np.percentile(ms, 50)),
        "p99": float(np.percentile(ms, 99)),
    }


async def load(url: str, queries: list[str], clients: int, duration: float, k: int) -> dict:
    import httpx

    lat: list[float] = []
    errors: dict[str, int] = {}
    stop = time.perf_counter() + duration
    counter = iter(range(10**9))

    async def client(c: httpx.AsyncClient) -> None:
        while time.perf_counter() < stop:
            q = queries[next(counter) % len(queries)]
            t0 = time.perf_counter()
            try:
                r = await c.post(url + "/search", json={"query": q, "k": k})
                if r.status_code != 200:
                    errors[str(r.status_code)] = errors.get(str(r.status_code), 0) + 1
                    continue
            except Exception as e:  # noqa: BLE001 - every failure is counted, none may pass silently
                errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1
                continue
            lat.append(time.perf_counter() - t0)

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=30, limits=limits) as c:
        t0 = time.perf_counter()
        await asyncio.gather(*(client(c) for _ in range(clients)))
        wall = time.perf_counter() - t0
    return {
        "requests": len(lat),
        "qps": len(lat) / wall,
        "latency_ms": stats(lat),
        "errors": errors,
        "seconds": wall,
    }


def serve(index: str, workers: int, query_path: str | None = None) -> tuple[subprocess.Popen, str]:
    import httpx

    env = dict(os.environ)
    if query_path:
        env["LSR_QUERY_PATH"] = query_path  # how the server's SPLADE encoder encodes text queries
    port = free_port()
    exe = os.path.join(os.path.dirname(sys.executable), "lsr")
    proc = subprocess.Popen(
        [
            exe,
            "serve",
            "--index",
            index,
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--log-level",
            "warning",
        ],
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 300
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("lsr serve exited")
        try:
            if httpx.get(url + "/ready", timeout=2).status_code == 200:
                # every worker warms itself; give the others a moment after the first is ready
                time.sleep(2 * (workers - 1))
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    proc.terminate()
    raise RuntimeError("server did not become ready")


def in_process(index, queries: list[str], duration: float, threads: int, k: int) -> dict:
    lat: list[float] = []
    lock = threading.Lock()
    stop = time.perf_counter() + duration
    counter = iter(range(10**9))

    def worker() -> None:
        while time.perf_counter() < stop:
            with lock:
                q = queries[next(counter) % len(queries)]
            t0 = time.perf_counter()
            index.search([q], k=k)
            with lock:
                lat.append(time.perf_counter() - t0)

    ts = [threading.Thread(target=worker) for _ in range(threads)]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    wall = time.perf_counter() - t0
    return {"requests": len(lat), "qps": len(lat) / wall, "latency_ms": stats(lat), "threads": threads}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--index", required=True, help="index built with an encoder (e.g. `lsr demo`'s demo-output/index)"
    )
    ap.add_argument(
        "--queries", default=None, help="BEIR queries file (default: bundled SciFact test queries)"
    )
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--inproc-threads", type=int, default=2)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument(
        "--query-paths",
        default="",
        help="comma-separated LSR_QUERY_PATH values to run the server with (e.g. reference,auto: the old "
        "and the new SPLADE query encoding); default: the server's default only",
    )
    ap.add_argument("--output", default="benchmarks/results/service.json")
    a = ap.parse_args()

    from lsr.eval.datasets import beir_folder
    from lsr.index import open_index
    from lsr.texts import iter_texts

    qpath = a.queries or beir_folder("scifact").queries
    queries = [q.text for q in iter_texts(qpath)]
    rec: dict = {
        "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
        "git_commit": subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True
        ).stdout.strip(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "cores": os.cpu_count(),
        "clients": a.clients,
        "duration_s": a.duration,
        "queries": len(queries),
        "k": a.k,
        "http": {},
    }
    runs = [
        (w, qp)
        for qp in (a.query_paths.split(",") if a.query_paths else [None])
        for w in map(int, a.workers.split(","))
    ]
    for w, qp in runs:
        name = f"workers={w}" + (f",query_path={qp}" if qp else "")
        proc, url = serve(a.index, w, qp)
        try:
            asyncio.run(load(url, queries[:20], min(a.clients, 4), 3.0, a.k))  # warm-up
            print(f"loading {url} with {a.clients} clients, {name}, {a.duration:.0f} s ...", flush=True)
            rec["http"][name] = asyncio.run(load(url, queries, a.clients, a.duration, a.k))
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    index = open_index(a.index)
    index.warmup()
    index.search(queries[:10], k=a.k)
    print("in-process ...", flush=True)
    rec["in_process_1_thread"] = in_process(index, queries, a.duration, 1, a.k)
    rec["in_process_threads"] = in_process(index, queries, a.duration, a.inproc_threads, a.k)
    best_http = max(rec["http"].values(), key=lambda r: r["qps"])
    best_inproc = max(rec["in_process_1_thread"]["qps"], rec["in_process_threads"]["qps"])
    rec["http_qps_over_in_process_qps"] = best_http["qps"] / best_inproc
    rec["total_errors"] = sum(sum(r["errors"].values()) for r in rec["http"].values())
    os.makedirs(os.path.dirname(os.path.abspath(a.output)), exist_ok=True)
    with open(a.output, "w") as f:
        json.dump(rec, f, indent=2)
    lines = [
        f"`{rec['command']}` (commit {rec['git_commit'][:7]}, {rec['cores']} cores, {a.clients} clients, {a.duration:.0f} s)",
        "",
        "| run | QPS | mean ms | p50 ms | p99 ms | errors |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in rec["http"].items():
        lat = r["latency_ms"]
        lines.append(
            f"| HTTP {name} | {r['qps']:.1f} | {lat['mean']:.1f} | {lat['p50']:.1f} | {lat['p99']:.1f} | {sum(r['errors'].values())} |"
        )
    for name in ("in_process_1_thread", "in_process_threads"):
        r = rec[name]
        lat = r["latency_ms"]
        lines.append(
            f"| in-process, {r['threads']} thread(s) | {r['qps']:.1f} | {lat['mean']:.1f} | {lat['p50']:.1f} | {lat['p99']:.1f} | 0 |"
        )
    lines.append("")
    lines.append(f"best HTTP QPS / best in-process QPS = {rec['http_qps_over_in_process_qps']:.2f}")
    md = "\n".join(lines) + "\n"
    with open(os.path.splitext(a.output)[0] + ".md", "w") as f:
        f.write(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
