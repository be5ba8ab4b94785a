"""The living index against an independent oracle: random interleavings of add / update / delete /
commit / merge, every method, float32 and uint8, with and without metadata filters.

The oracle keeps the live documents as plain dicts in the order they were (last) added, quantizes
with its own code, scores with float64 dot products and breaks ties by that order: the order the
index promises (segment order, then doc number; merges only join neighbours)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from lsr.errors import LsrError
from lsr.index import Index, SegmentedIndex, build_index, open_index
from lsr.index.segments import plan_merges
from lsr.vectors import SparseBatch

from conftest import random_collection, spy, vocab_of

N_TERMS = 60
SMALL_PARTS = {
    "bmp": {"block_size": 8, "dense_fraction": 0.3},
    "seismic": {"n_postings": 40, "block_size": 8},
}
COLORS = ["red", "green", "blue"]
FILTERS = [
    {"color": "red"},
    {"n": {"gte": 3, "lt": 7}},
    {"not": {"color": "red"}},
    {"color": {"in": ["red", "blue"]}, "n": {"lte": 5}},
    {"or": [{"color": "green"}, {"n": {"gt": 8}}]},
    {"color": {"not": {"in": ["green"]}}},
]


class Oracle:
    """Live documents in insertion order: id -> ({token: weight}, metadata)."""

    def __init__(self, quantization: str, scale: float) -> None:
        self.docs: dict[str, tuple[dict[str, float], dict]] = {}
        self.quantization = quantization
        self.scale = scale

    def add(self, doc_id: str, vec: dict[str, float], meta: dict | None) -> None:
        self.docs.pop(doc_id, None)  # update: the new version goes to the end
        self.docs[doc_id] = (vec, meta or {})

    def delete(self, doc_id: str) -> None:
        self.docs.pop(doc_id, None)

    def _impact(self, w: float) -> float:
        if self.quantization == "float32":
            return float(np.float32(w))
        return float(min(255.0, max(1.0, np.rint(w / self.scale))))

    @staticmethod
    def passes(meta: dict, flt: dict | None) -> bool:
        if not flt:
            return True
        for key, cond in flt.items():
            if key == "not":
                if Oracle.passes(meta, cond):
                    return False
            elif key == "or":
                if not any(Oracle.passes(meta, c) for c in cond):
                    return False
            elif not Oracle.field_ok(meta.get(key), cond):
                return False
        return True

    @staticmethod
    def field_ok(v, cond) -> bool:
        if not isinstance(cond, dict):
            return v is not None and v == cond
        for op, x in cond.items():
            if op == "not":
                if Oracle.field_ok(v, x):
                    return False
            elif v is None:
                return False
            elif op == "in" and v not in x:
                return False
            elif (op == "gte" and not v >= x) or (op == "gt" and not v > x):
                return False
            elif (op == "lte" and not v <= x) or (op == "lt" and not v < x):
                return False
        return True

    def search(self, q: dict[str, float], k: int, flt: dict | None = None) -> list[tuple[str, float]]:
        hits = []
        for pos, (doc_id, (vec, meta)) in enumerate(self.docs.items()):
            if not self.passes(meta, flt):
                continue
            s = sum(float(w) * self._impact(vec[t]) for t, w in q.items() if t in vec)
            if s > 0:
                hits.append((-s, pos, doc_id))
        hits.sort()
        scale = 1.0 if self.quantization == "float32" else self.scale
        return [(d, -s * scale) for s, _, d in hits[:k]]


def _vec(rng: np.random.Generator, tokens: list[str]) -> dict[str, float]:
    n = int(rng.integers(1, 9))
    terms = rng.choice(len(tokens), size=min(n, len(tokens)), replace=False)
    return {tokens[t]: float(rng.integers(1, 64) / 8) for t in terms}


def _meta(rng: np.random.Generator) -> dict | None:
    r = rng.random()
    if r < 0.15:
        return None
    m = {}
    if rng.random() < 0.85:
        m["color"] = COLORS[int(rng.integers(3))]
    if rng.random() < 0.85:
        m["n"] = int(rng.integers(0, 10))
    return m


def _check(ix: SegmentedIndex, oracle: Oracle, rng: np.random.Generator, tokens: list[str]) -> None:
    queries = [_vec(rng, tokens) for _ in range(8)]
    # and queries made from live documents (many matches share terms)
    live = list(oracle.docs)
    for i in rng.choice(len(live), size=min(4, len(live)), replace=False) if live else []:
        queries.append(dict(oracle.docs[live[i]][0]))
    assert ix.n_live_docs == len(oracle.docs)
    flts = [None] + ([FILTERS[int(rng.integers(len(FILTERS)))]] if ix.fields else [])
    for flt in flts:
        for k in (1, 7, 40):
            want = [oracle.search(q, k, flt) for q in queries]
            if flt is not None and k == 1:
                continue
            for method in ix.methods:
                got = ix.search(queries, k=k, method=method, filter=flt)
                for qi, (w, g) in enumerate(zip(want, got, strict=True)):
                    if method == "seismic":
                        # approximate: only live, filter-passing documents, with their true scores,
                        # and as many as exist up to k
                        full = dict(oracle.search(queries[qi], len(oracle.docs) + 1, flt))
                        assert len(g.ids) == min(k, len(full)) and len(set(g.ids)) == len(g.ids)
                        for doc_id, score in zip(g.ids, g.scores, strict=True):
                            assert score == pytest.approx(full[doc_id], rel=1e-6)
                        continue
                    assert g.ids == [d for d, _ in w], (method, k, qi, flt)
                    np.testing.assert_allclose(g.scores, [s for _, s in w], rtol=1e-6)


def _run_interleaving(tmp_path, seed: int, quantization: str, n_ops: int, knn: int = 0) -> SegmentedIndex:
    rng = np.random.default_rng(seed)
    n_base = 150 + 20 * seed
    base = random_collection(n_base, N_TERMS, seed, density=0.08)
    path = build_index(
        base,
        tmp_path / f"ix{seed}{quantization}",
        vocab=vocab_of(N_TERMS),
        quantization=quantization,
        quantizer="global",  # the oracle quantizes with one step, as every later segment does
        **{**SMALL_PARTS, "seismic": {**SMALL_PARTS["seismic"], "knn": knn}},
    )
    ix = open_index(path, writable=True, parts_min_docs=40, merge_factor=3, merge_min_docs=10)
    assert isinstance(ix, SegmentedIndex) and ix.generation == 0
    oracle = Oracle(quantization, float(ix.scale))
    tokens = vocab_of(N_TERMS).tokens
    for d in range(n_base):
        row = base.getrow(d)
        oracle.add(str(d), {tokens[t]: float(w) for t, w in zip(row.indices, row.data, strict=True)}, None)
    pending = Oracle(quantization, float(ix.scale))
    pending.docs = dict(oracle.docs)
    next_id = n_base
    n_checks = 0
    for _op in range(n_ops):
        r = rng.random()
        if r < 0.4:  # add a batch: new ids and updates of existing ones
            n = int(rng.integers(1, 25))
            ids = []
            for _ in range(n):
                if pending.docs and rng.random() < 0.3:
                    ids.append(list(pending.docs)[int(rng.integers(len(pending.docs)))])
                else:
                    ids.append(f"n{next_id}")
                    next_id += 1
            ids = list(dict.fromkeys(ids))
            if rng.random() < 0.1:  # a few brand-new tokens (the vocabulary grows)
                tokens = tokens + [f"new{len(tokens)}"]
            vecs = [_vec(rng, tokens) for _ in ids]
            metas = [_meta(rng) for _ in ids]
            assert ix.add(vecs, ids=ids, metadata=metas) == len(ids)
            for i, v, m in zip(ids, vecs, metas, strict=True):
                pending.add(i, v, m)
        elif r < 0.6:  # delete some live ids and an unknown one
            live = list(pending.docs)
            n = int(rng.integers(1, 10))
            ids = [live[int(i)] for i in rng.choice(len(live), size=min(n, len(live)), replace=False)]
            res = ix.delete(ids + ["never-added"])
            assert res == {"deleted": len(ids), "not_found": 1}
            for i in ids:
                pending.delete(i)
        elif r < 0.85:
            ix.commit()
        else:
            ix.merge(max_segments=int(rng.integers(1, 4)) if rng.random() < 0.4 else None)
        if r >= 0.6:  # committed: the index must equal the oracle of the live documents
            oracle.docs = dict(pending.docs)
            _check(ix, oracle, rng, tokens)
            n_checks += 1
            # statistics over the live documents, right after deletes
            df = ix.document_frequencies()
            for t in rng.choice(len(tokens), size=5, replace=False):
                want = sum(1 for v, _ in oracle.docs.values() if tokens[t] in v)
                assert df[ix.vocab.get(tokens[t])] == want if tokens[t] in ix.vocab else want == 0
    ix.commit()
    oracle.docs = dict(pending.docs)
    _check(ix, oracle, rng, tokens)
    # a fresh reader sees the same committed generation
    ro = open_index(path)
    assert isinstance(ro, SegmentedIndex) and ro.generation == ix.generation
    _check(ro, oracle, rng, tokens)
    assert n_checks > 10
    return ix


@pytest.mark.parametrize("quantization", ["float32", "uint8"])
# one seed in the default tier (each costs ~20 s); the other two in the system tier, which CI runs too
@pytest.mark.parametrize(
    "seed", [0, pytest.param(1, marks=pytest.mark.system), pytest.param(2, marks=pytest.mark.system)]
)
def test_random_interleavings_equal_oracle(tmp_path, seed, quantization):
    # seismic with a kNN graph in every segment on the uint8 runs (its neighbours may be deleted)
    knn = 3 if quantization == "uint8" else 0
    ix = _run_interleaving(tmp_path, seed, quantization, n_ops=220, knn=knn)
    graphs = [
        seg.index.seismic.graph.shape[1] if knn else seg.index.parts["seismic"].get("knn", 0)
        for seg in ix.snapshot().segments
        if "seismic" in seg.index.methods
    ]
    assert graphs and set(graphs) == {knn}
    assert len(ix.segments) >= 1
    # a force-merge leaves one segment, deletes dropped, same results
    ix.merge(max_segments=1)
    assert len(ix.segments) == 1 and ix.segments[0]["deleted"] == 0


@pytest.mark.parametrize("quantization", ["float32", "uint8"])
def test_bmp_over_segments_at_once_equals_oracle(tmp_path, monkeypatch, quantization):
    """BMP over several segments with the part runs one kernel over all their blocks
    (lsr.index.kernels.bmp_segments); with its fallback to exact search off, so that the joint kernel
    answers every query, every search after every commit (with deletes, filters, new vocabulary,
    merges) equals the oracle, one thread or two."""
    from lsr.index import segments as segs_mod
    from lsr.index.methods import bmp as bmp_method

    monkeypatch.setattr(bmp_method, "FALLBACK", 0.0)
    calls = []
    real = segs_mod.Snapshot._search_joint_bmp

    def spy(self, group, *args, **kw):
        fell = real(self, group, *args, **kw)
        calls.append((len(group), len(fell)))
        return fell

    monkeypatch.setattr(segs_mod.Snapshot, "_search_joint_bmp", spy)
    ix = _run_interleaving(tmp_path, 4, quantization, n_ops=120)
    assert sum(1 for g, _ in calls if g >= 2) > 20  # the joint kernel ran, over 2+ segments ...
    assert all(f == 0 for _, f in calls)  # ... and never handed a query to exact search
    # threads: the same answers in two chunks, over three more segments with the part
    rng = np.random.default_rng(5)
    tokens = ix.vocab.tokens
    for b in range(3):
        ix.add([_vec(rng, tokens) for _ in range(45)], ids=[f"x{b}-{i}" for i in range(45)])
        ix.commit()
    queries = [_vec(rng, tokens) for _ in range(12)]
    calls.clear()
    one = ix.search(queries, k=9, method="bmp")
    two = ix.search(queries, k=9, method="bmp", threads=2)
    assert calls and all(g >= 2 for g, _ in calls)
    assert [r.ids for r in one] == [r.ids for r in two]
    assert [r.scores for r in one] == [r.scores for r in two]
    # and the same as searching the segments one after another
    monkeypatch.setattr(segs_mod, "JOINT_BMP", False)
    assert [r.ids for r in ix.search(queries, k=9, method="bmp")] == [r.ids for r in one]
    # queries the kernel sends to exact search (here: all, up front) go to the joint exact kernel
    monkeypatch.setattr(segs_mod, "JOINT_BMP", True)
    monkeypatch.setattr(bmp_method, "FALLBACK", 1e-9)
    exact_calls = []
    real_exact = segs_mod.Snapshot._search_joint_exact

    def spy_exact(self, group, *args, **kw):
        exact_calls.append(len(group))
        return real_exact(self, group, *args, **kw)

    monkeypatch.setattr(segs_mod.Snapshot, "_search_joint_exact", spy_exact)
    calls.clear()
    fell = ix.search(queries, k=9, method="bmp")
    assert calls and all(f == len(queries) for _, f in calls) and exact_calls
    assert [(r.ids, r.scores) for r in fell] == [(r.ids, r.scores) for r in one]


@pytest.mark.parametrize("quantization", ["float32", "uint8"])
def test_bmp_over_segments_bounds_blocks_by_their_live_documents(tmp_path, monkeypatch, quantization):
    """On a segment with deleted documents, BMP over segments bounds each block by its live
    documents' maxima: computed once per bitmap, updated in place for the next bitmap of the same
    segment (only the documents deleted since), equal to a fresh pass, under the stored bounds
    where the heaviest documents went; and every search equals the oracle (the kernel's fallback
    off, so BMP answers every query)."""
    from lsr.index import segments as segs_mod
    from lsr.index.kernels import bmp as bmp_k
    from lsr.index.methods import bmp as bmp_method

    monkeypatch.setattr(bmp_method, "FALLBACK", 0.0)
    rng = np.random.default_rng(8)
    tokens = vocab_of(N_TERMS).tokens
    base = random_collection(300, N_TERMS, 8, density=0.1)
    path = build_index(
        base,
        tmp_path / "ix",
        vocab=vocab_of(N_TERMS),
        quantization=quantization,
        quantizer="global",
        **SMALL_PARTS,
    )
    ix = open_index(path, writable=True, parts_min_docs=40)
    oracle = Oracle(quantization, float(ix.scale))
    for d in range(base.shape[0]):
        row = base.getrow(d)
        oracle.add(str(d), {tokens[t]: float(w) for t, w in zip(row.indices, row.data, strict=True)}, None)
    for b in range(2):
        ids = [f"a{b}-{i}" for i in range(120)]
        vecs = [_vec(rng, tokens) for _ in ids]
        ix.add(vecs, ids=ids)
        for i, v in zip(ids, vecs, strict=True):
            oracle.add(i, v, None)
    ix.commit()
    calls = spy(monkeypatch, segs_mod.Snapshot, "_search_joint_bmp", lambda self, group, *a, **kw: len(group))
    # each update's documents deleted since the last bitmap
    updates = spy(monkeypatch, bmp_k, "update_live_maxima", lambda *a: len(a[12]))
    queries = [_vec(rng, tokens) for _ in range(10)]
    for round_ in range(3):
        # delete each query's best documents (the heaviest in their blocks) and a random tenth
        heavy = {d for q in queries[: 3 + round_] for d, _ in oracle.search(q, 3)}
        live = list(oracle.docs)
        rand = {live[int(i)] for i in rng.choice(len(live), size=len(live) // 10, replace=False)}
        gone = sorted(heavy | rand)
        ix.delete(gone)
        for d in gone:
            oracle.delete(d)
        ix.commit()
        calls.clear()
        updates.clear()
        for k in (1, 5, 20):
            got = ix.search(queries, k=k, method="bmp")
            for q, g in zip(queries, got, strict=True):
                w = oracle.search(q, k)
                assert g.ids == [d for d, _ in w], (round_, k)
                np.testing.assert_allclose(g.scores, [s for _, s in w], rtol=1e-6)
        assert calls and all(n >= 2 for n in calls)  # the kernel over segments answered
        snap = ix.snapshot()
        lowered = 0
        for seg in snap.segments:
            if seg.live is None or "bmp" not in seg.index.methods:
                continue
            assert seg._bmp_live is not None  # used by the searches above
            mx, dm = seg.bmp_maxima()
            ixs = seg.index
            bo, blk, st, mx0, drow, dm0, dst = ixs.bmp
            bs = ixs.bmp_block_size
            fresh = bmp_k.live_block_maxima(
                ixs.offsets, ixs.postings[1], ixs.postings[2], bs, (seg.n_docs + bs - 1) // bs, bo, blk, st,
                drow, dm0, seg.live_mask(),
            )  # fmt: skip
            np.testing.assert_array_equal(mx, fresh[0])
            np.testing.assert_array_equal(dm, fresh[1])
            assert (mx <= mx0).all() and (dm <= dm0).all()
            lowered += int((mx < mx0).sum() + (dm < dm0).sum())
        assert lowered > 0
        # after the first round, the segments' new bitmaps updated the last ones' bounds in place
        assert (len(updates) > 0 and all(n > 0 for n in updates)) if round_ > 0 else not updates
    # a merge retires the segments: kept for their documents only, without their bounds
    bounded = [seg for seg in ix.snapshot().segments if seg._bmp_live is not None]
    assert bounded
    ix.merge(max_segments=1)
    assert all(seg.num in ix._retired and seg._bmp_live is None for seg in bounded)
    for q in queries:
        assert ix.search([q], k=5, method="bmp")[0].ids == [d for d, _ in oracle.search(q, 5)]
    # switched off: the stored bounds, the same answers
    monkeypatch.setattr(segs_mod, "LIVE_BOUNDS", False)
    fresh_reader = open_index(path)
    for q in queries:
        assert fresh_reader.search([q], k=5, method="bmp")[0].ids == [d for d, _ in oracle.search(q, 5)]


def test_exact_over_segments_in_one_call_equals_oracle_and_the_per_segment_path(tmp_path, monkeypatch):
    """Exact search over two or more segments runs one kernel call (lsr.index.kernels.exact_segments)
    that does the per-segment path's work: after every commit of random interleavings it equals the
    oracle, and its answers (ids and scores, with filters, one thread or two) equal the per-segment
    path's bit for bit."""
    from lsr.index import segments as segs_mod

    calls = []
    real = segs_mod.Snapshot._search_joint_exact

    def spy(self, group, *args, **kw):
        calls.append(len(group))
        return real(self, group, *args, **kw)

    monkeypatch.setattr(segs_mod.Snapshot, "_search_joint_exact", spy)
    ix = _run_interleaving(tmp_path, 6, "uint8", n_ops=100)
    assert sum(1 for g in calls if g >= 2) > 20
    rng = np.random.default_rng(7)
    tokens = ix.vocab.tokens
    for b in range(3):
        ix.add(
            [_vec(rng, tokens) for _ in range(30)],
            ids=[f"x{b}-{i}" for i in range(30)],
            metadata=[_meta(rng) for _ in range(30)],
        )
        ix.commit()
    queries = [_vec(rng, tokens) for _ in range(12)]
    for flt in [None, *FILTERS]:
        calls.clear()
        one = ix.search(queries, k=9, method="exact", filter=flt)
        two = ix.search(queries, k=9, method="exact", threads=2, filter=flt)
        monkeypatch.setattr(segs_mod, "JOINT_EXACT", False)
        alone = ix.search(queries, k=9, method="exact", filter=flt)
        monkeypatch.setattr(segs_mod, "JOINT_EXACT", True)
        assert [(r.ids, r.scores) for r in one] == [(r.ids, r.scores) for r in alone], flt
        assert [(r.ids, r.scores) for r in two] == [(r.ids, r.scores) for r in alone], flt
    assert len(ix.segments) >= 3


def test_exact_over_segments_breaks_ties_by_segment_then_document(tmp_path, monkeypatch):
    """Equal scores across segments (the same vectors in three segments, float32) come back in the
    merge order: segment position, then document, from the kernel over segments as from the
    per-segment path, also when k cuts through a run of ties and when the first rows are taken
    by deleted or filtered-out documents."""
    from lsr.index import segments as segs_mod

    vecs = [{"a": 1.0, "b": 0.5}, {"a": 1.0, "b": 0.5}, {"a": 0.5}, {"b": 2.0}, {"a": 1.0, "b": 0.5}]
    path = build_index(vecs, tmp_path / "ix", ids=[f"s0-{i}" for i in range(5)], quantization="float32")
    ix = open_index(path, writable=True, merge_factor=1000)
    for seg in (1, 2):
        ix.add(vecs, ids=[f"s{seg}-{i}" for i in range(5)], metadata=[{"seg": seg}] * 5)
        ix.commit()
    ix.delete(["s1-0"])
    ix.commit()
    assert len(ix.segments) == 3
    joint_calls = spy(
        monkeypatch, segs_mod.Snapshot, "_search_joint_exact", lambda _self, group, *a, **kw: len(group)
    )
    q = {"a": 1.0, "b": 1.0}
    # scores 2.0 (vector 3), 1.5 (vectors 0, 1, 4), 0.5 (vector 2); within a score, segment order,
    # then document order; s1-0 is deleted
    want = ["s0-3", "s1-3", "s2-3"]
    want += ["s0-0", "s0-1", "s0-4", "s1-1", "s1-4", "s2-0", "s2-1", "s2-4"]
    want += ["s0-2", "s1-2", "s2-2"]
    for k in (2, 4, 6, 9, 14, 20):
        joint = ix.search([q], k=k, method="exact")[0]
        monkeypatch.setattr(segs_mod, "JOINT_EXACT", False)
        alone = ix.search([q], k=k, method="exact")[0]
        monkeypatch.setattr(segs_mod, "JOINT_EXACT", True)
        assert (joint.ids, joint.scores) == (alone.ids, alone.scores)
        assert joint.ids == want[:k]
    assert joint_calls and max(joint_calls) == 3  # the kernel over segments answered
    flt = ix.search([q], k=4, method="exact", filter={"seg": 2})[0]
    assert flt.ids == ["s2-3", "s2-0", "s2-1", "s2-4"]


def test_kernels_over_segments_take_writable_masks(tmp_path, monkeypatch):
    """The typed list of masks the kernels over segments take holds writable arrays, also where a
    segment's deletions come mapped read-only from disk (copied then; the segment's own mask is
    left as it was): Numba compiles the exact kernel over segments into a slower scan for a list
    of read-only arrays (2.84-2.88 vs 2.46-2.56 ms a query on the 1M living benchmark's 10
    segments, BENCHMARKS.md). Results stay those of the per-segment path."""
    import numba

    from lsr.index import segments as segs_mod
    from lsr.index.kernels import exact_segments

    rng = np.random.default_rng(3)
    tokens = [f"t{i}" for i in range(40)]
    path = build_index(
        [_vec(rng, tokens) for _ in range(60)], tmp_path / "ix", ids=[f"d{i}" for i in range(60)]
    )
    ix = open_index(path, writable=True, merge_factor=1000)
    for b in range(2):
        ix.add([_vec(rng, tokens) for _ in range(40)], ids=[f"x{b}-{i}" for i in range(40)])
        ix.commit()
    ix.delete([f"d{i}" for i in range(0, 60, 3)] + [f"x0-{i}" for i in range(0, 40, 4)])
    ix.commit()
    ix.close()
    ix = open_index(path)  # deletions as read from disk
    masks_seen = spy(monkeypatch, exact_segments, "search_range", lambda *args: args[5])
    queries = [_vec(rng, tokens) for _ in range(8)]
    joint = ix.search(queries, k=7, method="exact")
    assert masks_seen
    masks = masks_seen[0]
    assert len(masks) >= 3 and any(m.shape[0] > 0 for m in masks)
    assert all(m.flags.writeable for m in masks)
    assert "readonly" not in str(numba.typeof(masks))
    monkeypatch.setattr(segs_mod, "JOINT_EXACT", False)
    alone = ix.search(queries, k=7, method="exact")
    assert [(r.ids, r.scores) for r in joint] == [(r.ids, r.scores) for r in alone]
    assert not any("d0" in r.ids or "d3" in r.ids for r in joint)


def test_maxscore_over_segments_sends_what_its_policies_skip_to_one_exact_call(tmp_path, monkeypatch):
    """MaxScore over segments asks each segment's fallback policy up front: the segments it sends to
    exact search are searched in one exact kernel call, the others run MaxScore without asking the
    policy again (so its probes still run MaxScore). With the policy skipping whenever it can,
    every answer still equals exact search's (ids and scores), and both paths are taken."""
    from lsr.index import methods as registry
    from lsr.index import segments as segs_mod
    from lsr.index.kernels import maxscore as maxscore_k

    ix = _run_interleaving(tmp_path, 8, "float32", n_ops=40)
    rng = np.random.default_rng(9)
    tokens = ix.vocab.tokens
    for b in range(4):
        ix.add([_vec(rng, tokens) for _ in range(30)], ids=[f"m{b}-{i}" for i in range(30)])
        ix.commit()
    ix.delete([f"m0-{i}" for i in range(5)])
    ix.commit()
    monkeypatch.setattr(registry, "POLICY_SKIP", -1.0)  # every policy skips, but for its probes
    joint, kernel_calls = [], []
    real_joint, real_kernel = segs_mod.Snapshot._search_joint_exact, maxscore_k.search_serial

    def spy_joint(self, group, *args, **kw):
        joint.append(len(group))
        return real_joint(self, group, *args, **kw)

    in_maxscore = []

    def spy_kernel(*args):
        kernel_calls.append(1)
        return real_kernel(*args)

    monkeypatch.setattr(segs_mod.Snapshot, "_search_joint_exact", spy_joint)
    monkeypatch.setattr(maxscore_k, "search_serial", spy_kernel)
    queries = [_vec(rng, tokens) for _ in range(40)]
    for i, q in enumerate(queries):
        flt = None if i % 3 else FILTERS[i % len(FILTERS)]
        n = len(joint)
        got = ix.search([q], k=8, method="maxscore", filter=flt)[0]
        in_maxscore.append(len(joint) > n)
        want = ix.search([q], k=8, method="exact", filter=flt)[0]
        assert (got.ids, got.scores) == (want.ids, want.scores), (i, flt)
    assert any(in_maxscore) and kernel_calls  # skipped segments went to the exact kernel; probes ran MaxScore
    assert len(ix.segments) >= 3


def test_maxscore_over_segments_runs_a_segment_only_well_under_exact_searchs_work(tmp_path, monkeypatch):
    """Over 2+ segments a segment's MaxScore policy skips to the one exact call from a counted work
    ratio of SEGMENT_MAXSCORE_WORK_SKIP (the Python around a segment searched alone is not counted),
    where one index would run MaxScore up to 1.0: with every segment's ratio at 0.9, no segment runs
    MaxScore but for a probe; with the one-index threshold, they all do. Answers equal exact search's."""
    from lsr.index import methods as registry
    from lsr.index import segments as segs_mod
    from lsr.index.kernels import maxscore as maxscore_k

    ix = _run_interleaving(tmp_path, 9, "float32", n_ops=30)
    rng = np.random.default_rng(10)
    tokens = ix.vocab.tokens
    for b in range(3):
        ix.add([_vec(rng, tokens) for _ in range(30)], ids=[f"w{b}-{i}" for i in range(30)])
        ix.commit()
    assert len(ix.segments) >= 3
    monkeypatch.setattr(registry, "POLICY_WORK_SKIP", 1.0)
    queries = [_vec(rng, tokens) for _ in range(6)]

    def run() -> int:
        for seg in ix.snapshot().segments:  # as if measured: MaxScore counts 0.9x exact search's work
            pol = registry.FallbackPolicy.of(seg.index, "maxscore")
            pol.rate, pol.work, pol.until, pol.gap = 0.0, 0.9, 10**6, 10**6  # no probe in this test
        calls = spy(monkeypatch, maxscore_k, "search_serial")
        for q in queries:
            got = ix.search([q], k=8, method="maxscore")[0]
            want = ix.search([q], k=8, method="exact")[0]
            assert (got.ids, got.scores) == (want.ids, want.scores)
        monkeypatch.undo()
        monkeypatch.setattr(registry, "POLICY_WORK_SKIP", 1.0)
        return len(calls)

    assert segs_mod.SEGMENT_MAXSCORE_WORK_SKIP < 0.9
    assert run() == 0  # every segment went to the one exact call
    monkeypatch.setattr(segs_mod, "SEGMENT_MAXSCORE_WORK_SKIP", 1.0)
    assert run() > 0  # ... and at the one-index threshold the segments run MaxScore


def test_joint_kernel_scratch_is_reused_across_groups(tmp_path):
    """The scratch of the kernels over segments is taken most-recent-first and kept per group of
    segments: a search over another group (another filter) does not drop it, a bigger query grows
    it, and the pool stays bounded."""
    from lsr.index.segments import SCRATCH_POOL_SIZE

    path = build_index([{"a": 1.0}] * 20, tmp_path / "ix", ids=[f"d{i}" for i in range(20)])
    snap = open_index(path, writable=True).snapshot()
    a = snap._take_slots(1, 100, 10)
    snap._slot_pool.append(a)
    b = snap._take_slots(1, 100, 20)  # another group's size: a new set, the first one stays
    assert b is not a
    snap._slot_pool.append(b)
    assert snap._take_slots(1, 50, 10) is a  # the same group again: the same arrays
    snap._slot_pool.append(a)
    c = snap._take_slots(1, 300, 10)  # a longer query: a bigger set replaces the small one
    assert len(c[0][0]) >= 300 and all(len(x[0][1]) != 10 for x in snap._slot_pool)
    snap._slot_pool.append(c)
    for i in range(3 * SCRATCH_POOL_SIZE):
        snap._slot_pool.append(snap._take_slots(1, 10, 1000 + i))
    assert len(snap._slot_pool) <= SCRATCH_POOL_SIZE + 1


def test_plain_index_opens_unchanged_as_generation_0(tmp_path):
    docs = random_collection(80, 20, 3)
    path = build_index(docs, tmp_path / "ix", vocab=vocab_of(20), methods=["exact"])
    before = sorted(os.listdir(path))
    plain = open_index(path)
    assert type(plain) is Index
    w = open_index(path, writable=True)
    assert w.generation == 0 and w.segments == [
        {"name": ".", "docs": 80, "deleted": 0, "live": 80, "parts": []}
    ]
    q = [{"t1": 1.0, "t2": 0.5}]
    assert w.search(q, k=5)[0].ids == plain.search(q, k=5)[0].ids
    w.close()
    assert sorted(os.listdir(path)) == sorted(before + ["write.lock"])  # nothing written by opening
    assert type(open_index(path)) is Index


def test_k_live_documents_come_back_when_k_exist(tmp_path):
    """Deleting the best matches must not shrink the result list: masks act inside the kernels."""
    n = 200
    vecs = [{"a": float(n - i), "b": 1.0} for i in range(n)]
    path = build_index(vecs, tmp_path / "ix", ids=[f"d{i}" for i in range(n)], **SMALL_PARTS)
    ix = open_index(path, writable=True)
    ix.delete([f"d{i}" for i in range(0, 150)])
    ix.commit()
    for method in ("exact", "maxscore", "bmp", "seismic"):
        got = ix.search([{"a": 1.0}], k=10, method=method)[0]
        assert got.ids == [f"d{i}" for i in range(150, 160)], method


def test_statistics_follow_deletes(tmp_path):
    path = build_index([{"a": 1.0, "b": 1.0}, {"a": 2.0}, {"c": 1.0}], tmp_path / "ix", ids=["x", "y", "z"])
    ix = open_index(path, writable=True)
    a, b, c = (ix.vocab.get(t) for t in "abc")
    assert ix.document_frequencies()[[a, b, c]].tolist() == [2, 1, 1] and ix.n_live_docs == 3
    ix.delete(["x"])
    ix.commit()
    assert ix.document_frequencies()[[a, b, c]].tolist() == [1, 0, 1] and ix.n_live_docs == 2
    ix.add([{"b": 1.0, "d": 3.0}], ids=["w"])
    ix.commit()
    assert ix.document_frequencies()[[a, b, c, ix.vocab.get("d")]].tolist() == [1, 1, 1, 1]
    # what a Retriever hands an inference-free encoder: live df and the live count
    from lsr.retriever import corpus_stats

    stats = corpus_stats(ix)
    assert stats.n_docs == 3 and stats.df[b] == 1


def test_retriever_statistics_follow_commits(tmp_path):
    """A Retriever over a living index rebuilds its encoder's corpus view after each commit."""
    from lsr.retriever import Retriever

    class Probe:  # an encoder that records the statistics it is handed
        seen: list = []

        def config(self):
            return {"kind": "probe"}

        def with_corpus_stats(self, stats):
            Probe.seen.append((stats.n_docs, int(stats.df[stats.vocab.get("a")])))
            return self

        def encode_queries(self, texts):
            from lsr.vectors import SparseBatch

            return SparseBatch.from_dicts([{"a": 1.0}] * len(texts), ix.vocab)

    path = build_index([{"a": 1.0}, {"a": 2.0}, {"b": 1.0}], tmp_path / "ix", ids=["x", "y", "z"])
    ix = open_index(path, writable=True)
    r = Retriever(ix, Probe(), force=True)
    assert r.search(["q"], k=5)[0].ids == ["y", "x"] and Probe.seen == [(3, 2)]
    r.search(["q"], k=5)
    assert Probe.seen == [(3, 2)]  # same generation: the view is reused
    ix.delete(["y"])
    ix.commit()
    assert r.search(["q"], k=5)[0].ids == ["x"] and Probe.seen == [(3, 2), (2, 1)]


def test_bad_input_changes_nothing(tmp_path):
    path = build_index([{"a": 1.0}, {"b": 1.0}], tmp_path / "ix", ids=["x", "y"])
    ix = open_index(path, writable=True)
    ix.add([{"a": 1.0}], ids=["m"], metadata=[{"lang": "en", "year": 2000}])
    gen = ix.commit()
    bad = [
        (lambda: ix.add([{"a": 1.0}, {"b": 2.0}], ids=["p", "p"]), "duplicate document id 'p'"),
        (lambda: ix.add([{"a": 1.0}], ids=["p"], metadata=[{"lang": ["en"]}]), "field 'lang'"),
        (lambda: ix.add([{"a": 1.0}], ids=["p"], metadata=[{"year": "2001"}]), "is a number field"),
        (lambda: ix.add([{"a": 1.0}], ids=["p"], metadata=[{"x": float("nan")}]), "finite"),
        (lambda: ix.add([{"a": -1.0}], ids=["p"]), ">= 0"),
        (lambda: ix.add([{"a": 1.0}, {"b": 1.0}], ids=["p"]), "1 ids for 2 documents"),
        (lambda: ix.add([{"a": 1.0}], ids=[""]), "invalid document id"),
        (lambda: ix.search([{"a": 1.0}], filter={"nope": 1}), "unknown metadata field 'nope'"),
        (lambda: ix.search([{"a": 1.0}], filter={"lang": {"gte": 1}}), "needs a number field"),
        (lambda: ix.search([{"a": 1.0}], filter='{"lang": '), "not valid JSON"),
    ]
    for call, message in bad:
        with pytest.raises(LsrError, match=message):
            call()
    assert ix.pending == 0 and ix.commit() == gen  # nothing half-applied
    assert ix.delete(["nope", "x"]) == {"deleted": 1, "not_found": 1}
    # another writer is refused while this one holds the lock
    with pytest.raises(LsrError, match="another writer"):
        open_index(path, writable=True)
    # a read-only open cannot write
    with pytest.raises(LsrError, match="read-only"):
        open_index(path).add([{"a": 1.0}], ids=["q"])


def test_fixed_vocabulary_refuses_vectors_over_another_vocabulary(tmp_path):
    path = build_index([{"a": 1.0}, {"b": 1.0}], tmp_path / "ix", ids=["x", "y"])
    m = json.loads((path_ := os.path.join(path, "manifest.json")) and open(path_).read())
    m["encoder"] = {"kind": "splade", "model": "some-model"}  # an index whose encoder fixes the vocabulary
    with open(path_, "w") as f:
        json.dump(m, f)
    ix = open_index(path, writable=True)
    with pytest.raises(LsrError, match="'zzz'.*another vocabulary"):
        ix.add([{"a": 1.0, "zzz": 2.0}], ids=["p"])
    other = SparseBatch.from_dicts([{"a": 1.0, "qq": 1.0}], ids=["p"])
    with pytest.raises(LsrError, match="'qq'.*another vocabulary"):
        ix.add(other)
    assert ix.pending == 0
    ix.add([{"a": 1.0}], ids=["p"])
    assert ix.commit() == 1 and ix.n_live_docs == 3


def test_uncommitted_writes_are_invisible_and_rollback(tmp_path):
    path = build_index([{"a": 1.0}, {"b": 1.0}], tmp_path / "ix", ids=["x", "y"])
    ix = open_index(path, writable=True)
    ix.add([{"a": 5.0}], ids=["z"])
    ix.delete(["x"])
    assert ix.search([{"a": 1.0}], k=5)[0].ids == ["x"]
    ix.rollback()
    assert ix.commit() == 0
    ix.add([{"a": 5.0}], ids=["z"])
    ix.delete(["z"])  # deleting a pending add
    ix.commit()
    assert ix.search([{"a": 1.0}], k=5)[0].ids == ["x"]


def test_merge_policy_is_log_structured_over_neighbours():
    assert plan_merges([5] * 9, [5] * 9, factor=3, min_docs=10) == [(0, 3), (3, 6), (6, 9)]
    assert plan_merges([100, 5, 5, 100, 5], [100, 5, 5, 100, 5], factor=3, min_docs=10) == []
    assert plan_merges([100, 10], [100, 30], factor=3, min_docs=10) == [(1, 2)]  # mostly deleted
    assert plan_merges([4, 4, 4, 4], [4, 4, 4, 4], max_segments=1) == [(0, 4)]
    assert plan_merges([4, 4, 4, 4], [4, 4, 4, 4], max_segments=2) == [(0, 2), (2, 4)]
    assert plan_merges([4, 4], [4, 5], max_segments=2) == [(1, 2)]  # deletes expunged
    with pytest.raises(LsrError):
        plan_merges([1], [1], max_segments=0)


def test_store_and_metadata_survive_merges(tmp_path):
    path = build_index([{"a": 1.0}], tmp_path / "ix", ids=["x"])
    ix = open_index(path, writable=True)
    ix.add([{"a": 2.0}], ids=["y"], metadata=[{"lang": "en"}], documents=[("T", "body")])
    ix.commit()
    ix.add([{"a": 3.0}], ids=["z"], metadata=[{"lang": "de", "year": 1999}])
    ix.merge(max_segments=1)
    assert len(ix.segments) == 1
    r = ix.search([{"a": 1.0}], k=5)[0]
    assert r.ids == ["z", "y", "x"]
    docs = {d["id"]: d for d in (ix.document(int(h)) for h in r.docs)}
    assert docs["y"]["title"] == "T" and docs["y"]["metadata"] == {"lang": "en"}
    assert docs["z"]["metadata"] == {"lang": "de", "year": 1999}
    assert ix.search([{"a": 1.0}], k=5, filter={"year": {"lt": 2000}})[0].ids == ["z"]
    # the base segment's files are gone once no kept generation names it
    ix.add([{"b": 1.0}], ids=["w"])
    ix.commit()
    ix.add([{"b": 1.0}], ids=["v"])
    ix.commit()
    assert not os.path.exists(os.path.join(path, "manifest.json"))
    assert open_index(path).search([{"a": 1.0}], k=5)[0].ids == ["z", "y", "x"]


def test_masked_kernels_equal_the_numpy_twin(tmp_path):
    """Index.search_arrays(mask=) for every method against exact.search_reference with the same mask
    (by internal doc number), and no mask = today's results bit for bit."""
    from lsr.index.kernels import exact as exact_k

    from test_index import random_queries

    docs = random_collection(500, 80, 11, density=0.08)
    idx = open_index(build_index(docs, tmp_path / "ix", vocab=vocab_of(80), **SMALL_PARTS))
    q = random_queries(80, 25, 12)
    indptr, terms, weights, _ = idx.prepare_queries(q)
    rng = np.random.default_rng(13)
    for density in (0.0, 0.05, 0.5, 1.0):
        mask = (rng.random(idx.n_docs) < density).astype(np.uint8)
        for method in ("exact", "maxscore", "bmp", "seismic"):
            params = idx.check_params(method, {})
            d, s = idx.search_arrays(indptr, terms, weights, 10, 1, method, mask=mask, **params)
            d0, s0 = idx.search_arrays(indptr, terms, weights, 10, 1, method, **params)
            d1, s1 = idx.search_arrays(
                indptr, terms, weights, 10, 1, method, mask=np.ones(idx.n_docs, bool), **params
            )
            assert np.array_equal(d0, d1) and np.array_equal(s0, s1)  # an all-ones mask changes nothing
            build_of = idx.doc_order.astype(np.int64)
            for qi in range(len(indptr) - 1):
                a, b = indptr[qi], indptr[qi + 1]
                rd, rs = exact_k.search_reference(
                    idx.offsets, idx.postings_docs, idx.postings_impacts, 1.0, terms[a:b], weights[a:b], 10**6,
                    idx.n_docs, mask,
                )  # fmt: skip
                got = [x for x in d[qi].tolist() if x >= 0]
                allowed = {int(build_of[x]) for x in rd}
                assert set(got) <= allowed  # never a masked document
                if method != "seismic":  # rank-safe: exactly the top 10 by (score, build order)
                    order = sorted(zip(-rs, build_of[rd].tolist(), strict=True))[:10]
                    assert got == [doc for _, doc in order], (method, density, qi)
                else:
                    assert len(got) <= min(10, len(rd))


def test_readers_opening_during_commits_and_merges_always_get_a_whole_generation(tmp_path):
    """Readers open the newest generation while a writer commits, merges and deletes merged-away
    files: every open succeeds and shows a committed state (live count of some generation)."""
    import threading

    path = build_index([{"a": 1.0}], tmp_path / "ix", ids=["d0"], methods=["exact"])
    ix = open_index(path, writable=True, merge_factor=2, merge_min_docs=1)
    counts = {0: 1}
    errors: list[str] = []
    done = threading.Event()

    def reader() -> None:
        while not done.is_set():
            try:
                r = open_index(path)
                n = r.n_live_docs if isinstance(r, SegmentedIndex) else r.n_docs
                hits = r.search([{"a": 1.0}], k=1000)[0]
                gen = getattr(r, "generation", 0)
                if counts.get(gen) is not None and (n != counts[gen] or len(hits) != n):
                    errors.append(f"generation {gen}: {n} live, {len(hits)} hits, expected {counts[gen]}")
            except Exception as e:  # noqa: BLE001 - any failure to open is the bug
                errors.append(repr(e))

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for i in range(1, 25):
        ix.add([{"a": 1.0}, {"a": 2.0}], ids=[f"x{i}", f"y{i}"])
        if i % 3 == 0:
            ix.delete([f"x{i - 1}"])
        n_before = ix.n_live_docs
        gen = ix.commit()
        counts[gen] = ix.n_live_docs
        assert counts[gen] >= n_before
        g2 = ix.merge()
        counts[g2] = ix.n_live_docs
    done.set()
    for t in threads:
        t.join()
    assert not errors, errors[:3]


def test_per_term_base_segment_searches_and_merges(tmp_path):
    """A living index over a plain index of the per-term quantizer: segment "." searches
    with its own steps, later segments with the shared global one, and a force-merge requantizes
    segment "."'s dequantized impacts with the global step. Oracle (own code): base documents
    quantized per term (test_index's independent quantizer), added ones globally, and after the merge
    the base ones rounded again to the global grid."""
    from test_index import own_quantize_per_term, random_queries

    n_terms = 40
    base = random_collection(200, n_terms, 11, density=0.1, exact_weights=False)
    extra = random_collection(60, n_terms, 12, density=0.1, exact_weights=False)
    path = build_index(
        base,
        tmp_path / "ix",
        vocab=vocab_of(n_terms),
        quantization="uint8",
        quantizer="term",
        methods=["exact"],
    )
    ix = open_index(path, writable=True)
    assert ix.snapshot().segments[0].index.term_scale is not None
    step = float(ix.scale)
    tokens = vocab_of(n_terms).tokens
    ix.add(
        [{tokens[t]: float(w) for t, w in zip(r.indices, r.data, strict=True)} for r in extra],
        ids=[f"x{i}" for i in range(extra.shape[0])],
    )
    ix.commit()
    queries = random_queries(n_terms, 20, 13, exact_weights=False)

    base_q, _ = own_quantize_per_term(base, "uint8")  # impact x factor, before the global step
    extra_q = extra.copy().astype(np.float64)
    extra_q.data = np.clip(np.rint(extra_q.data / step), 1, 255)

    def check(base_matrix):
        scores = np.hstack([(queries @ base_matrix.T).toarray(), (queries @ extra_q.T).toarray()]) * step
        ids = [str(i) for i in range(base.shape[0])] + [f"x{i}" for i in range(extra.shape[0])]
        for row, got in zip(scores, ix.search(queries, k=10), strict=True):
            order = np.argsort(-row, kind="stable")[: len(got.ids)]
            np.testing.assert_allclose(got.scores, row[order], rtol=1e-5)
            assert set(got.ids) == {ids[i] for i in order} or np.isclose(row[order[-1]], got.scores[-1])

    check(base_q)
    before = [set(r.ids) for r in ix.search(queries, k=10)]
    ix.merge(max_segments=1)
    assert len(ix.segments) == 1
    # segment "."'s integers x factor, rounded to the global grid; an exact .5 may round either way
    # (float32 dequantization), so each returned score lies between the two roundings' scores
    lo, hi = base_q.copy(), base_q.copy()
    lo.data = np.clip(np.ceil(base_q.data - 0.5), 1, 255)
    hi.data = np.clip(np.floor(base_q.data + 0.5), 1, 255)
    ids = [str(i) for i in range(base.shape[0])] + [f"x{i}" for i in range(extra.shape[0])]
    s_lo = np.hstack([(queries @ lo.T).toarray(), (queries @ extra_q.T).toarray()]) * step
    s_hi = np.hstack([(queries @ hi.T).toarray(), (queries @ extra_q.T).toarray()]) * step
    overlap = []
    for qi, got in enumerate(ix.search(queries, k=10)):
        cols = [ids.index(d) for d in got.ids]
        assert np.all(np.asarray(got.scores) >= s_lo[qi, cols] * (1 - 1e-5))
        assert np.all(np.asarray(got.scores) <= s_hi[qi, cols] * (1 + 1e-5))
        if before[qi]:
            overlap.append(len(before[qi] & set(got.ids)) / len(before[qi]))
    assert np.mean(overlap) >= 0.9  # the merge's second rounding moves few results
    ix.close()


def test_segments_share_one_threshold_searched_by_bound_and_skipped_below_it(tmp_path, monkeypatch):
    """Segments are searched in decreasing order of their best possible score, each kernel starts
    from the k-th score held so far, and a segment whose bound is under it is not searched; ties
    across segments still go to the earlier segment (a later one's equal scores come through the
    lowered threshold and lose in the merge). The per-segment path (the kernels over several
    segments at once do the same work in one call and are checked against it elsewhere)."""
    from lsr.index import segments as segs_mod
    from lsr.index.segments import Snapshot

    monkeypatch.setattr(segs_mod, "JOINT_EXACT", False)
    monkeypatch.setattr(segs_mod, "JOINT_BMP", False)

    base = [{"a": 1.0, "b": float(1 + i % 3)} for i in range(40)]
    path = build_index(base, tmp_path / "ix", ids=[f"b{i}" for i in range(40)], **SMALL_PARTS)
    ix = open_index(path, writable=True, parts_min_docs=1, merge_factor=1000)
    for name, weight in (("s", 8.0), ("t", 8.0), ("u", 0.5), ("v", 9.0)):
        n = 3 if name == "v" else 20
        ix.add([{"a": weight, "c": 1.0}] * n, ids=[f"{name}{i}" for i in range(n)])
        ix.commit()
    searched: list[str] = []
    real = Snapshot._search_segment

    def spy(self, seg, *args, **kw):
        searched.append(seg.name)
        return real(self, seg, *args, **kw)

    monkeypatch.setattr(Snapshot, "_search_segment", spy)
    names = [s["name"] for s in ix.segments]  # base, s, t, u, v in that order
    for method in ix.methods:
        searched.clear()
        got = ix.search([{"a": 1.0}], k=5, method=method)[0]
        assert got.ids == ["v0", "v1", "v2", "s0", "s1"], method
        assert got.scores == pytest.approx([9, 9, 9, 8, 8])
        # v first (bound 9), then s and t (8; t's ties lose to s), never the base or u (bounds 1, 0.5)
        assert searched == [names[4], names[1], names[2]], (method, searched)
        # a batch: the base must be searched for the second query, and both answers stay exact
        searched.clear()
        a, b = ix.search([{"a": 1.0}, {"b": 1.0}], k=5, method=method)
        assert a.ids == ["v0", "v1", "v2", "s0", "s1"] and b.ids == ["b2", "b5", "b8", "b11", "b14"], method
        assert names[0] in searched and names[3] not in searched
        # deleting the best documents: the next ones come from the same shared threshold
        searched.clear()
    ix.delete(["v0", "v1", "v2", "s0"])
    ix.commit()
    for method in ix.methods:
        got = ix.search([{"a": 1.0}], k=25, method=method)[0]
        assert got.ids == [f"s{i}" for i in range(1, 20)] + [f"t{i}" for i in range(6)], method


def test_selective_filters_score_only_their_documents(tmp_path):
    """A filter keeping few documents is answered by scoring only them (the forward index), with the
    same results as the other paths; Seismic falls back to exact search under a selective filter,
    so it returns the filter's true top k (its pruned lists may hold none of them)."""
    from lsr.index.segments import plan_segment

    rng = np.random.default_rng(5)
    n = 400
    vecs = [
        {f"t{j}": float(rng.integers(1, 64) / 8) for j in rng.choice(30, 6, replace=False)} for _ in range(n)
    ]
    # the heavy hitters of every term are in bucket 0: a pruned list holds few bucket-1 documents
    meta = [{"bucket": 1 if i % 50 == 7 else 0} for i in range(n)]
    path = build_index(vecs, tmp_path / "ix", ids=[f"d{i}" for i in range(n)], **SMALL_PARTS)
    ix = open_index(path, writable=True, parts_min_docs=1)
    ix.add(vecs, ids=[f"d{i}" for i in range(n)], metadata=meta)  # updates: every doc gets metadata
    ix.commit()
    ix.merge(max_segments=1)
    oracle = Oracle("float32", 1.0)
    for i in range(n):
        oracle.add(f"d{i}", vecs[i], meta[i])
    snap = ix._snap
    seg = snap.segments[0]
    flt = {"bucket": 1}
    al = snap.allowed(flt)[0]
    assert al.n == 8 and snap.allowed(flt)[0] is al  # cached per generation
    q = {"t1": 1.0, "t2": 2.0, "t3": 0.5, "t4": 1.0, "t5": 1.5, "t6": 1.0, "t7": 0.25, "t8": 1.0}
    qb = ix.prepare_queries([q])
    for method in ix.methods:
        assert plan_segment(seg, al, qb[0], qb[1], method) == "selected", method
        got = ix.search([q], k=5, method=method, filter=flt)[0]
        want = oracle.search(q, 5, flt)
        assert got.ids == [d for d, _ in want], method
        np.testing.assert_allclose(got.scores, [s for _, s in want], rtol=1e-6)
    # no filter: the methods run as they are, but Seismic, whose lists keep n_postings (40 here) per
    # term in every segment, costs more than exact search on a segment this small
    everything = snap.allowed(None)[0]
    assert plan_segment(seg, everything, qb[0], qb[1], "bmp", qb[2], {"alpha": 1.0, "beta": 1.0}) == "bmp"
    assert plan_segment(seg, everything, qb[0], qb[1], "seismic", qb[2], {"query_cut": 10}) == "exact"


def test_exact_under_a_selective_filter_reads_only_the_allowed_accumulator_entries(tmp_path, monkeypatch):
    """Under a filter keeping at most GATHER_FRACTION of a segment, exact search selects its top k
    from the allowed documents' list (cached with the filter) instead of scanning every
    accumulator entry, with the oracle's results; a filter keeping more scans as before."""
    import lsr.index.methods.exact as exact_m
    from lsr.index.segments import GATHER_FRACTION

    seen: list[int] = []
    real = exact_m.selected_docs

    def spy(params):
        sel = real(params)
        seen.append(len(sel))
        return sel

    monkeypatch.setattr(exact_m, "selected_docs", spy)
    rng = np.random.default_rng(8)
    n = 600
    vecs = [
        {f"t{j}": float(rng.integers(1, 64) / 8) for j in rng.choice(30, 6, replace=False)} for _ in range(n)
    ]
    meta = [{"bucket": i % 7} for i in range(n)]
    ix = open_index(build_index(vecs[:1], tmp_path / "ix", ids=["d0"], methods=["exact"]), writable=True)
    ix.add(vecs, ids=[f"d{i}" for i in range(n)], metadata=meta)
    ix.commit()
    ix.merge(max_segments=1)
    oracle = Oracle("float32", 1.0)
    for i in range(n):
        oracle.add(f"d{i}", vecs[i], meta[i])
    queries = [
        {f"t{j}": float(rng.integers(1, 16) / 4) for j in rng.choice(30, 8, replace=False)} for _ in range(5)
    ]
    for flt, gathers in (({"bucket": 3}, True), ({"bucket": {"lt": 5}}, False), (None, False)):
        assert (flt is not None and ix._snap.allowed(flt)[0].n <= GATHER_FRACTION * n) == gathers
        for q in queries:
            seen.clear()
            got = ix.search([q], k=7, filter=flt)[0]
            want = oracle.search(q, 7, flt)
            assert got.ids == [d for d, _ in want], flt
            np.testing.assert_allclose(got.scores, [s for _, s in want], rtol=1e-6)
            assert seen == [ix._snap.allowed(flt)[0].n if gathers else 0], (flt, seen)
