"""Crash safety of the living index: SIGKILL a writer at random points of add, commit and merge.

Each trial builds a small index, starts a writer subprocess that runs a deterministic script of
adds (new ids and updates, with metadata), deletes, commits and merges (printing ``ACK <gen>
<step>`` after each commit or merge returns), and kills it with SIGKILL after a random delay.
Then the index must open, its generation must be at least the last acknowledged one, and its live
documents (ids and vectors, read back from the segments) must equal the oracle's state at that
generation: the last acknowledged step, or the commit that was under way when the kill came (its
rename landed, its ACK did not). Reopening it as a writer must clean every leftover file.

    python benchmarks/crash_living_index.py --trials 100 --json crash.json

The test suite runs a short version (tests/test_living_crash.py). Writes one JSON record.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

N_TERMS = 40
N_BASE = 40


def plan(seed: int, n_steps: int) -> Iterator[tuple]:
    """The writer's script: deterministic from ``seed`` (the child runs it, the parent replays it)."""
    rng = random.Random(seed)
    live: list[str] = [f"b{i}" for i in range(N_BASE)]
    next_id = 0
    for _ in range(n_steps):
        r = rng.random()
        if r < 0.45:
            ids = []
            for _ in range(rng.randint(1, 30)):
                if live and rng.random() < 0.25:
                    ids.append(rng.choice(live))
                else:
                    ids.append(f"n{next_id}")
                    next_id += 1
            ids = list(dict.fromkeys(ids))
            vecs = [
                {f"t{t}": rng.randint(1, 63) / 8 for t in rng.sample(range(N_TERMS), rng.randint(1, 6))}
                for _ in ids
            ]
            metas = [{"g": rng.choice(["x", "y"]), "v": rng.randint(0, 9)} for _ in ids]
            for i in ids:
                if i in live:
                    live.remove(i)
                live.append(i)
            yield ("add", ids, vecs, metas)
        elif r < 0.65 and live:
            ids = rng.sample(live, min(len(live), rng.randint(1, 8)))
            for i in ids:
                live.remove(i)
            yield ("delete", ids)
        elif r < 0.9:
            yield ("commit",)
        else:
            yield ("merge", rng.choice([None, 1, 2]))


def base_docs(seed: int) -> tuple[list[dict[str, float]], list[str]]:
    rng = random.Random(seed * 7919 + 1)
    vecs = [
        {f"t{t}": rng.randint(1, 63) / 8 for t in rng.sample(range(N_TERMS), rng.randint(1, 6))}
        for _ in range(N_BASE)
    ]
    return vecs, [f"b{i}" for i in range(N_BASE)]


def oracle_states(seed: int, n_steps: int) -> dict[int, dict[str, dict[str, float]]]:
    """Live documents (id -> vector) after each step of the script (step -1: the base index)."""
    vecs, ids = base_docs(seed)
    state = dict(zip(ids, vecs, strict=True))
    out = {-1: dict(state)}
    for step, op in enumerate(plan(seed, n_steps)):
        if op[0] == "add":
            for i, v in zip(op[1], op[2], strict=True):
                state.pop(i, None)
                state[i] = v
        elif op[0] == "delete":
            for i in op[1]:
                state.pop(i, None)
        out[step] = dict(state)
    return out


def child(index_dir: str, seed: int, n_steps: int) -> None:
    """The writer: runs the script, acknowledging each commit and merge on stdout."""
    from lsr.index import open_index

    ix = open_index(index_dir, writable=True, parts_min_docs=1_000_000, merge_factor=3, merge_min_docs=10)
    print("READY", flush=True)
    for step, op in enumerate(plan(seed, n_steps)):
        print(f"STEP {step}", flush=True)  # the parent kills relative to this progress
        if op[0] == "add":
            ix.add(op[2], ids=op[1], metadata=op[3])
        elif op[0] == "delete":
            ix.delete(op[1])
        elif op[0] == "commit":
            print(f"ACK {ix.commit()} {step}", flush=True)
        else:
            print(f"ACK {ix.merge(max_segments=op[1])} {step}", flush=True)
    print("DONE", flush=True)


def read_live(index_dir: str) -> tuple[int, dict[str, dict[str, float]]]:
    """Open the index as a reader: (generation, live id -> {token: weight}) from its segments."""
    from lsr.index import open_index
    from lsr.index.kernels import forward as fwd_k

    ix = open_index(index_dir)
    if not hasattr(ix, "snapshot"):  # never written to: a plain index
        gen, segs = 0, None
    else:
        gen, segs = ix.generation, ix.snapshot().segments
    out: dict[str, dict[str, float]] = {}
    for seg in segs if segs is not None else [None]:
        sx = ix if seg is None else seg.index
        fptr, fterms, fimp = fwd_k.transpose(
            sx.offsets, sx.postings_docs, sx.postings_impacts, sx.n_docs, np.empty(0, np.int64)
        )
        order = sx.doc_order
        toks = sx.vocab.tokens
        for internal in range(sx.n_docs):
            d = int(order[internal]) if len(order) else internal
            if seg is not None and seg.live is not None and not seg.live[d]:
                continue
            doc_id = sx.doc_id(d)
            assert doc_id not in out, f"two live copies of {doc_id}"
            a, b = fptr[internal], fptr[internal + 1]
            out[doc_id] = {toks[t]: float(w) for t, w in zip(fterms[a:b], fimp[a:b], strict=True)}
    return gen, out


def trial(work: str, seed: int, n_steps: int, max_delay: float) -> dict[str, Any]:
    from lsr.index import build_index, open_index

    d = os.path.join(work, f"t{seed}")
    shutil.rmtree(d, ignore_errors=True)
    vecs, ids = base_docs(seed)
    build_index(vecs, d, ids=ids, methods=["exact"])
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            os.path.abspath(__file__),
            "--child",
            d,
            "--seed",
            str(seed),
            "--steps",
            str(n_steps),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    line = proc.stdout.readline()  # type: ignore[union-attr]
    if line.strip() != "READY":
        raise RuntimeError(f"writer did not start: {line!r} {proc.stderr.read()}")  # type: ignore[union-attr]
    # Kill at a random step of the script (then after a random delay of up to max_delay s), so
    # that the kill lands while the writer works on any machine, however fast or loaded.
    rng = random.Random(seed)
    target = f"STEP {rng.randrange(n_steps)}"
    seen = []
    while True:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        if not line:
            break
        seen.append(line)
        if line.strip() in (target, "DONE"):
            break
    delay = rng.uniform(0, max_delay)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    out, err = proc.communicate()
    out = "".join(seen) + out
    acks = [tuple(map(int, ln.split()[1:])) for ln in out.splitlines() if ln.startswith("ACK")]
    finished = "DONE" in out
    states = oracle_states(seed, n_steps)
    last_gen, last_step = acks[-1] if acks else (0, -1)
    gen, live = read_live(d)
    assert gen >= last_gen, f"seed {seed}: generation {gen} < acknowledged {last_gen}"
    if gen == last_gen:
        want = states[last_step]
    else:  # the commit under way when the kill came had landed
        steps = list(plan(seed, n_steps))
        nxt = next(s for s in range(last_step + 1, n_steps) if steps[s][0] in ("commit", "merge"))
        want = states[nxt]
    assert set(live) == set(want), f"seed {seed}: live ids differ from the oracle at generation {gen}"
    for i, v in want.items():
        assert live[i] == {t: float(np.float32(w)) for t, w in v.items()}, f"seed {seed}: vector of {i}"
    # a writer cleans the leftovers; the index still works
    w = open_index(d, writable=True)
    leftovers = [
        n for sub in ("", "segments", "live") if os.path.isdir(os.path.join(d, sub))
        for n in os.listdir(os.path.join(d, sub)) if ".tmp-" in n
    ]  # fmt: skip
    assert not leftovers, leftovers
    w.add([{"t1": 1.0}], ids=["after-crash"])
    w.commit()
    w.close()
    shutil.rmtree(d, ignore_errors=True)
    return {
        "seed": seed,
        "delay_s": round(delay, 3),
        "acks": len(acks),
        "generation": gen,
        "landed_unacknowledged": gen > last_gen,
        "finished": finished,
    }


def run(trials: int, n_steps: int = 60, max_delay: float = 0.05, seed0: int = 0) -> dict[str, Any]:
    work = tempfile.mkdtemp(prefix="lsr-crash-")
    try:
        results = [trial(work, seed0 + t, n_steps, max_delay) for t in range(trials)]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {
        "trials": len(results),
        "killed_mid_run": sum(not r["finished"] for r in results),
        "killed_before_first_ack": sum(r["acks"] == 0 for r in results),
        "commit_landed_unacknowledged": sum(r["landed_unacknowledged"] for r in results),
        "passed": len(results),
        "results": results,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=100)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument(
        "--max-delay",
        type=float,
        default=0.05,
        help="kill a uniform delay in [0, this] s after the writer starts a random step of its script",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="write the record here")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args.child, args.seed, args.steps)
        return
    rec = run(args.trials, args.steps, args.max_delay, args.seed)
    print(
        f"{rec['passed']}/{rec['trials']} trials passed ({rec['killed_mid_run']} killed mid-run, "
        f"{rec['killed_before_first_ack']} before the first commit)"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rec, f, indent=1)


if __name__ == "__main__":
    main()
