"""Concurrency soak: 8 searching clients and 1 writer against ``lsr serve`` (LSR_WRITABLE=1).

The writer adds (new ids and updates, with metadata), deletes and merges over HTTP; after each
acknowledged write it records the oracle state (live id -> vector) as a new *version*. Each
client searches (with and without a filter) and notes the acknowledged version before sending and
after the answer. A result is consistent when it equals the oracle top-k (ids, and scores to 1e-5)
of some version in [before, after + 1] (the +1: a write is visible from its commit, a moment before
its acknowledgement reaches the writer). Requirement: zero HTTP errors and zero inconsistent
results.

    python benchmarks/soak_living_index.py --seconds 60 --clients 8 --json soak.json

Background merges run inside the service; searches never wait for them. A slow test runs 10 s.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

N_TERMS = 40
K = 10
METHODS = ["exact", "maxscore", "bmp"]  # the rank-safe methods: each must equal the oracle
PARTS_MIN_DOCS = 40


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _vec(rng: random.Random) -> dict[str, float]:
    return {f"t{t}": rng.randint(1, 63) / 8 for t in rng.sample(range(N_TERMS), rng.randint(1, 6))}


def _topk(
    state: dict[str, tuple[dict, dict]], q: dict[str, float], flt: dict | None
) -> list[tuple[str, float]]:
    hits = []
    for pos, (doc_id, (vec, meta)) in enumerate(state.items()):
        if flt and meta.get("g") != flt["g"]:
            continue
        s = sum(w * vec[t] for t, w in q.items() if t in vec)
        if s > 0:
            hits.append((-s, pos, doc_id))
    hits.sort()
    return [(d, -s) for s, _, d in hits[:K]]


def _same(want: list[tuple[str, float]], got: list[tuple[str, float]]) -> bool:
    return [d for d, _ in want] == [d for d, _ in got] and all(
        abs(a - b) <= 1e-5 * max(1.0, abs(a)) for (_, a), (_, b) in zip(want, got, strict=True)
    )


def run(seconds: float = 60.0, clients: int = 8, n_base: int = 300, seed: int = 0) -> dict[str, Any]:
    import httpx

    from lsr.index import build_index, open_index

    rng = random.Random(seed)
    work = tempfile.mkdtemp(prefix="lsr-soak-")
    base = [_vec(rng) for _ in range(n_base)]
    ids = [f"b{i}" for i in range(n_base)]
    path = build_index(
        base, os.path.join(work, "ix"), ids=ids, methods=METHODS, bmp={"block_size": 8, "dense_fraction": 0.3}
    )
    state: dict[str, tuple[dict, dict]] = {i: (v, {}) for i, v in zip(ids, base, strict=True)}
    versions = [dict(state)]
    # one document with metadata first, so the filter's field exists from the start; written here,
    # with segments from PARTS_MIN_DOCS documents on given the BMP part (the setting is kept in the
    # generation), so that BMP runs over several segments at once, on bounds over their live
    # documents, while the writer deletes
    first = {"id": "seed", "vector": _vec(rng), "metadata": {"g": "x"}}
    w = open_index(path, writable=True, parts_min_docs=PARTS_MIN_DOCS)
    w.add([first["vector"]], ids=["seed"], metadata=[first["metadata"]])
    w.commit()
    w.close()
    state["seed"] = (first["vector"], first["metadata"])
    versions.append(dict(state))
    port = _free_port()
    env = {**os.environ, "LSR_WRITABLE": "1", "LSR_SEARCH_THREADS": "4"}
    exe = [sys.executable, "-m", "lsr.cli.main"]
    proc = subprocess.Popen(
        [*exe, "serve", "--index", path, "--port", str(port), "--log-level", "warning"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    errors: list[str] = []
    inconsistent: list[str] = []
    counts = {"searches": 0, "writes": 0, "merges": 0, "max_bmp_segments_with_deletes": 0}
    lock = threading.Lock()
    stop = threading.Event()
    try:
        deadline = time.time() + 180
        while time.time() < deadline:
            try:
                if httpx.get(url + "/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None:
                raise RuntimeError(f"lsr serve exited: {proc.stdout.read().decode()}")  # type: ignore[union-attr]
            time.sleep(0.2)
        else:
            raise RuntimeError("lsr serve did not become ready")

        def writer() -> None:
            wr = random.Random(seed + 1)
            nxt = 0
            with httpx.Client(base_url=url, timeout=60) as c:
                while not stop.is_set():
                    cur = dict(versions[-1])
                    r = wr.random()
                    if r < 0.6:
                        docs = []
                        for _ in range(wr.randint(1, 20)):
                            if wr.random() < 0.3:
                                doc_id = wr.choice(list(cur))
                            else:
                                doc_id = f"n{nxt}"
                                nxt += 1
                            if any(d["id"] == doc_id for d in docs):
                                continue
                            docs.append(
                                {"id": doc_id, "vector": _vec(wr), "metadata": {"g": wr.choice("xy")}}
                            )
                        resp = c.post("/documents", json={"documents": docs})
                        for d in docs:
                            cur.pop(d["id"], None)
                            cur[d["id"]] = (d["vector"], d["metadata"])
                    elif r < 0.95 and cur:
                        doc_id = wr.choice(list(cur))
                        resp = c.delete(f"/documents/{doc_id}")
                        cur.pop(doc_id, None)
                    else:
                        resp = c.post("/admin/merge", json={"max_segments": wr.choice([1, 2, 3])})
                        counts["merges"] += 1
                    if resp.status_code != 200:
                        errors.append(f"write {resp.status_code}: {resp.text[:200]}")
                        return
                    with lock:
                        versions.append(cur)
                        counts["writes"] += 1

        def client(ci: int) -> None:
            cr = random.Random(seed + 100 + ci)
            with httpx.Client(base_url=url, timeout=60) as c:
                while not stop.is_set():
                    q = _vec(cr)
                    flt = {"g": cr.choice("xy")} if cr.random() < 0.3 else None
                    body: dict[str, Any] = {
                        "query": {"vector": q},
                        "k": K,
                        "method": cr.choice(METHODS),
                    }
                    if flt:
                        body["filter"] = flt
                    with lock:
                        v0 = len(versions) - 1
                    resp = c.post("/search", json=body)
                    with lock:
                        v1 = len(versions) - 1
                        snap = versions[v0 : v1 + 1]
                        counts["searches"] += 1
                    if resp.status_code != 200:
                        errors.append(f"search {resp.status_code}: {resp.text[:200]}")
                        continue
                    got = [(h["id"], h["score"]) for h in resp.json()["hits"]]
                    ok = any(_same(_topk(st, q, flt), got) for st in snap)
                    if not ok:  # a write committed (visible) but not yet acknowledged to the writer
                        time.sleep(0.5)
                        with lock:
                            later = versions[v1 + 1 : v1 + 2]
                        ok = any(_same(_topk(st, q, flt), got) for st in later)
                    if not ok:
                        inconsistent.append(json.dumps({"query": q, "filter": flt, "got": got[:3]}))

        def watcher() -> None:
            # how many segments with the BMP part and deleted documents a reader saw at once (BMP
            # searches them in one kernel, on bounds over their live documents, from 2 on)
            while not stop.is_set():
                try:
                    info = open_index(path).segments
                except Exception:  # noqa: BLE001 - a generation retired while opening: try again
                    info = []
                n = sum(1 for e in info if "bmp" in e["parts"] and e["deleted"] > 0)
                counts["max_bmp_segments_with_deletes"] = max(counts["max_bmp_segments_with_deletes"], n)
                stop.wait(0.5)

        threads = [threading.Thread(target=writer), threading.Thread(target=watcher)] + [
            threading.Thread(target=client, args=(i,)) for i in range(clients)
        ]
        t0 = time.time()
        for t in threads:
            t.start()
        time.sleep(seconds)
        stop.set()
        for t in threads:
            t.join(120)
        elapsed = time.time() - t0
        ready = httpx.get(url + "/ready").json()
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(work, ignore_errors=True)
    return {
        "seconds": round(elapsed, 1),
        "clients": clients,
        **counts,
        "errors": len(errors),
        "error_examples": errors[:5],
        "inconsistent": len(inconsistent),
        "inconsistent_examples": inconsistent[:5],
        "final_generation": ready.get("generation"),
        "final_segments": ready.get("segments"),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    rec = run(args.seconds, args.clients, seed=args.seed)
    print(json.dumps({k: v for k, v in rec.items() if not k.endswith("examples")}))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rec, f, indent=1)
    sys.exit(0 if rec["errors"] == 0 and rec["inconsistent"] == 0 else 1)


if __name__ == "__main__":
    main()
