"""Drivers for the peer engines the search benchmark measures us against, each from its PyPI package
(the optional ``bench`` extra): ``pyseismic-lsr`` (Seismic, Rust), ``bmp`` (Block-Max Pruning, Rust)
and ``pyterrier-pisa`` (PISA, C++).

Every driver builds from the same vector JSONL as lsr (``{"id", "vector": {token: weight}}``) and
answers one query at a time with ``search(i, k, **config)`` -> list of doc ids, so the benchmark
times all engines with one loop. Quirks found while driving them are noted where they are handled.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import orjson


def iter_jsonl(path: str) -> Iterator[dict[str, Any]]:
    with open(path, "rb") as f:
        for line in f:
            if line.strip():
                yield orjson.loads(line)


def dir_size(path: str) -> int:
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(path) for f in fs)


class Peer:
    name = "peer"
    build_seconds: float = 0.0
    index_bytes: int = 0

    def configs(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    def search(self, i: int, k: int, **config: Any) -> list[str]:
        raise NotImplementedError


# Seismic's query-time settings timed for both engines (lsr's sweep in bench_search.py takes the
# same grid): each engine's fastest setting at a recall floor is read off the same points
SEISMIC_GRID = [(c, h) for c in (3, 4, 5, 6, 8, 10) for h in (0.7, 0.8, 0.9, 1.0)]


class SeismicPeer(Peer):
    """pyseismic-lsr. Builds from the JSONL file itself (its own reader; it needs a "content"
    field). ``search`` on one query is single-threaded."""

    name = "seismic (pyseismic-lsr)"

    def __init__(
        self,
        docs_jsonl: str,
        queries: list[dict],
        work: str,
        n_postings: int = 3500,
        threads: int = 0,
        nknn: int = 0,
    ):
        import seismic

        self.build_params = {"n_postings": n_postings, "centroid_fraction": 0.1, "summary_energy": 0.4}
        if nknn:  # its kNN graph (the CIKM 2024 refinement), computed by its own build
            self.build_params["nknn"] = nknn
        self.nknn = nknn
        path = os.path.join(work, "seismic.index")
        src = _with_content(docs_jsonl, work)
        t0 = time.perf_counter()
        self.index = seismic.SeismicIndex.build(src, **self.build_params, num_threads=threads)
        self.build_seconds = time.perf_counter() - t0
        self.index.save(path)
        self.index_bytes = sum(
            dir_size(os.path.join(work, f)) for f in os.listdir(work) if f.startswith("seismic.index")
        )
        st = seismic.get_seismic_string()
        self.q = [
            (
                str(q["id"]),
                np.array(list(q["vector"]), dtype=st),
                np.array(list(q["vector"].values()), np.float32),
            )
            for q in queries
        ]

    def configs(self) -> list[dict[str, Any]]:
        grid = [{"query_cut": c, "heap_factor": h} for c, h in SEISMIC_GRID]
        if self.nknn:  # each setting walking the graph and not
            return grid + [{**g, "n_knn": self.nknn} for g in grid]
        return grid

    def search(self, i: int, k: int, **config: Any) -> list[str]:
        qid, comps, vals = self.q[i]
        res = self.index.search(
            qid, comps, vals, k, config["query_cut"], config["heap_factor"], n_knn=config.get("n_knn", 0)
        )
        return [r[2] for r in res]


class BmpPeer(Peer):
    """The ``bmp`` package. Document impacts must be integers <= 255 (larger ones overflow and
    recall collapses), so weights are quantized like lsr's uint8 (w / max x 255, or x ``scale`` when
    the weights are known multiples of 1 / scale, as synth_lsr.py's are of 1/40). Its speed depends
    on document order: it gets the documents in ``order`` (lsr passes its own graph-bisection
    order, so both engines see the same layout)."""

    name = "bmp (bmp package)"

    def __init__(
        self,
        docs_jsonl: str,
        queries: list[dict],
        work: str,
        order: np.ndarray | None = None,
        bsize: int = 32,
        scale: float | None = None,
    ):
        import bmp

        path = os.path.join(work, "index.bmp")
        if os.path.exists(path):
            os.remove(path)
        # one pass for the scale (and, to feed them in ``order``, each line's byte offset: holding
        # 1M parsed documents in Python would take ~20 GB)
        max_w = 0.0
        starts = []
        with open(docs_jsonl, "rb") as f:
            pos = 0
            for line in f:
                if line.strip():
                    starts.append(pos)
                    vec = orjson.loads(line)["vector"]
                    if vec:
                        max_w = max(max_w, max(vec.values()))
                pos += len(line)
        if scale is None or scale * max_w > 255.5:
            scale = 255.0 / max_w if max_w > 0 else 1.0
        t0 = time.perf_counter()
        ix = bmp.Indexer(path, bsize=bsize, compress_range=False)
        with open(docs_jsonl, "rb") as f:
            for j in order if order is not None else range(len(starts)):
                f.seek(starts[j])
                d = orjson.loads(f.readline())
                ix.add_document(
                    str(d["id"]), {t: max(1, min(255, int(round(w * scale)))) for t, w in d["vector"].items()}
                )
        ix.finish()
        self.build_seconds = time.perf_counter() - t0
        self.index_bytes = dir_size(path)
        self.searcher = bmp.Searcher(path)
        self.q = [{t: float(w) for t, w in q["vector"].items()} for q in queries]
        self.build_params = {
            "bsize": bsize,
            "scale": scale,
            "order": "lsr graph bisection" if order is not None else "input",
        }

    def configs(self) -> list[dict[str, Any]]:
        return [{"alpha": 1.0, "beta": 1.0}, {"alpha": 0.9, "beta": 1.0}, {"alpha": 0.8, "beta": 0.8}]

    def search(self, i: int, k: int, **config: Any) -> list[str]:
        docnos, _scores = self.searcher.search(self.q[i], k=k, alpha=config["alpha"], beta=config["beta"])
        return list(docnos)


def _with_content(docs_jsonl: str, work: str) -> str:
    """Seismic's reader wants a "content" field in every line: add an empty one where missing."""
    with open(docs_jsonl, "rb") as f:
        first = orjson.loads(f.readline())
    if "content" in first:
        return docs_jsonl
    out = os.path.join(work, "docs_with_content.jsonl")
    with open(out, "wb") as w:
        for d in iter_jsonl(docs_jsonl):
            w.write(orjson.dumps({"id": d["id"], "content": "", "vector": d["vector"]}) + b"\n")
    return out


def clean(work: str) -> None:
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work, exist_ok=True)
