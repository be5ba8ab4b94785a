"""Cost of merging per-shard top-10 lists for one query (lsr.index.shards.merge_topk): 16 .. 1,000 shards."""
import json, time, numpy as np
from lsr.index.shards import merge_topk
rng = np.random.default_rng(0)
out = {}
for n in (16, 64, 256, 1000):
    parts = [(np.sort(rng.integers(0, 1_000_000, (1, 10))).astype(np.int64), -np.sort(-rng.random((1, 10)).astype(np.float32))) for _ in range(n)]
    first = [i * 1_000_000 for i in range(n)]
    merge_topk(parts, first, 10)
    t = []
    for _ in range(200):
        t0 = time.perf_counter(); merge_topk(parts, first, 10); t.append(time.perf_counter() - t0)
    out[n] = float(np.median(t) * 1e3)
    print(f"{n} shards: merge p50 {out[n]:.3f} ms")
json.dump(out, open("/work/data/merge_cost.json", "w"))
