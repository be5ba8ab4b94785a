"""Seismic-style approximate search (Bruch, Nardini, Rulli, Venturini, SIGIR 2024).

Build: each term's posting list is statically pruned to its ``n_postings`` largest impacts; the
kept documents are clustered into about ``len / block_size`` blocks by one round of random
k-means (centroids drawn from the list, each document joins the centroid with the largest dot
product over the documents' heaviest terms). Each block
gets a *summary*: the per-term maximum over its documents (over each document's heaviest terms,
which the caller passes as the forward CSR), pruned to the heaviest terms holding
``summary_energy`` of its mass (at most ``summary_terms`` terms) and quantized to uint8 with one
scale per block.

Query: the ``query_cut`` heaviest query terms are visited, heaviest first; a block whose summary
score (dot product of the query with the summary) is under ``heap_factor`` x the current k-th
score is skipped once the heap is full; every other block's documents not yet seen are scored
exactly from the forward index (same arithmetic as exact search) and offered to the heap.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from lsr.index.kernels.maxscore import forward_score
from lsr.index.kernels.topk import heap_finish, heap_push


@njit(cache=True, nogil=True)
def _kept(offsets, docs, impacts, t, n_postings):
    """Doc numbers of term t's ``n_postings`` heaviest postings, ascending (ties: smaller doc)."""
    a, b = offsets[t], offsets[t + 1]
    if b - a <= n_postings:
        return docs[a:b].astype(np.int64)
    order = np.argsort(-impacts[a:b].astype(np.float64), kind="mergesort")[:n_postings]
    out = np.empty(n_postings, np.int64)
    for i in range(n_postings):
        out[i] = docs[a + order[i]]
    out.sort()
    return out


@njit(cache=True, nogil=True)
def _summary(bdocs, fptr, fterms, fimp, energy, max_terms, mx, seen):
    """Summary of a block of docs: (terms int32[], values float32[]): the per-term maxima, keeping
    the heaviest terms until they hold ``energy`` of the total (at most ``max_terms``). Selection by
    a 256-bucket histogram of the values (linear time; a whole bucket is kept or left, so the
    energy kept can exceed the target by one bucket). ``mx`` float32[n_terms] zeros and ``seen``
    int32[n_terms] scratch; mx is zero again on return."""
    n = 0
    for d in bdocs:
        for p in range(fptr[d], fptr[d + 1]):
            t = fterms[p]
            v = np.float32(fimp[p])
            if mx[t] == 0:
                seen[n] = t
                n += 1
            if v > mx[t]:
                mx[t] = v
    top = np.float32(0)
    total = 0.0
    for i in range(n):
        v = mx[seen[i]]
        total += v
        if v > top:
            top = v
    cnt = np.zeros(256, np.int64)
    mass = np.zeros(256, np.float64)
    inv = np.float32(255.5) / top if top > 0 else np.float32(0)
    for i in range(n):
        v = mx[seen[i]]
        b = min(255, int(v * inv))
        cnt[b] += 1
        mass[b] += v
    cut = 0
    acc = 0.0
    kept = 0
    for b in range(255, -1, -1):
        if kept >= max_terms or (kept > 0 and acc >= energy * total):
            cut = b + 1
            break
        acc += mass[b]
        kept += cnt[b]
    size = min(kept, max_terms)
    terms = np.empty(size, np.int32)
    out = np.empty(size, np.float32)
    j = 0
    for pass_ in range(2):  # buckets above the cut first, then fill from the cut bucket
        for i in range(n):
            if j >= size:
                break
            t = seen[i]
            b = min(255, int(mx[t] * inv))
            if (pass_ == 0 and b > cut) or (pass_ == 1 and b == cut):
                terms[j] = t
                out[j] = mx[t]
                j += 1
    for i in range(n):
        mx[seen[i]] = 0
    return terms, out


@njit(cache=True, nogil=True)
def _cluster(kept, n_c, fptr, fterms, fw, seed, inv_cnt, acc):
    """Assign each of ``kept`` (doc numbers) to one of ``n_c`` centroids drawn from them at random
    (Seismic's random k-means, one assignment round): the centroid with the largest dot product
    over the documents' heaviest terms, through a small inverted index of the centroids. A document
    sharing no term with any centroid joins the smallest cluster. Returns cluster ids int64[len].

    ``inv_cnt`` int64[n_terms + 1] zeros and ``acc`` float32[>= n_c] zeros, both zero on return."""
    n = kept.shape[0]
    out = np.zeros(n, np.int64)
    if n_c <= 1:
        return out
    np.random.seed(seed)
    cents = np.random.choice(n, n_c, replace=False)
    # inverted index of the centroids: term -> (centroid, weight)
    total = 0
    for c in range(n_c):
        d = kept[cents[c]]
        for p in range(fptr[d], fptr[d + 1]):
            inv_cnt[fterms[p] + 1] += 1
            total += 1
    # prefix sums over the touched terms only (the rest stay 0): walk the centroids' terms again
    starts = np.empty(total, np.int64)
    nt = 0
    tlist = np.empty(total, np.int64)
    for c in range(n_c):
        d = kept[cents[c]]
        for p in range(fptr[d], fptr[d + 1]):
            t = fterms[p]
            if inv_cnt[t + 1] > 0:
                tlist[nt] = t
                starts[nt] = inv_cnt[t + 1]
                inv_cnt[t + 1] = -nt - 1  # mark: position of t in tlist
                nt += 1
    off = np.zeros(nt + 1, np.int64)
    for i in range(nt):
        off[i + 1] = off[i] + starts[i]
    ic = np.empty(total, np.int64)
    iw = np.empty(total, np.float32)
    fill = off[:nt].copy()
    for c in range(n_c):
        d = kept[cents[c]]
        for p in range(fptr[d], fptr[d + 1]):
            i = -inv_cnt[fterms[p] + 1] - 1
            ic[fill[i]] = c
            iw[fill[i]] = np.float32(fw[p])
            fill[i] += 1
    sizes = np.zeros(n_c, np.int64)
    for j in range(n):
        d = kept[j]
        best = -1
        bv = np.float32(0)
        for p in range(fptr[d], fptr[d + 1]):
            v = inv_cnt[fterms[p] + 1]
            if v < 0:
                i = -v - 1
                w = np.float32(fw[p])
                for e in range(off[i], off[i + 1]):
                    acc[ic[e]] += w * iw[e]
        for p in range(fptr[d], fptr[d + 1]):  # read the touched scores back, and clear them
            v = inv_cnt[fterms[p] + 1]
            if v < 0:
                i = -v - 1
                for e in range(off[i], off[i + 1]):
                    c = ic[e]
                    if acc[c] > bv or (acc[c] == bv and best >= 0 and c < best):
                        bv = acc[c]
                        best = c
                    acc[c] = 0
        if best < 0:
            best = int(np.argmin(sizes))
        out[j] = best
        sizes[best] += 1
    for i in range(nt):
        inv_cnt[tlist[i] + 1] = 0
    return out


@njit(cache=True, nogil=True)
def _term_layout(offsets, n_postings, block_size):
    n_terms = offsets.shape[0] - 1
    tb = np.zeros(n_terms + 1, np.int64)  # blocks of each term
    tk = np.zeros(n_terms + 1, np.int64)  # kept postings of each term
    for t in range(n_terms):
        kept = min(offsets[t + 1] - offsets[t], n_postings)
        tk[t + 1] = tk[t] + kept
        tb[t + 1] = tb[t] + (kept + block_size - 1) // block_size
    return tb, tk


@njit(cache=True, nogil=True, parallel=True)
def build(
    offsets,
    docs,
    impacts,
    fptr,
    fterms,
    fimp,
    cptr,
    cterms,
    cw,
    n_postings,
    block_size,
    energy,
    max_terms,
    n_chunks,
):
    """All Seismic structures; returns (term_blocks int64[n_terms + 1], block_docs_ptr
    int64[n_blocks + 1], block_docs uint32[], summary_ptr int64[n_blocks + 1], summary_terms int32[],
    summary_values uint8[], summary_scale float32[n_blocks]). Clustering compares documents by the
    forward CSR (cptr, cterms, cw) of their heaviest terms; summaries use the full forward index."""
    n_terms = offsets.shape[0] - 1
    tb, tk = _term_layout(offsets, n_postings, block_size)
    n_blocks = tb[n_terms]
    bptr = np.zeros(n_blocks + 1, np.int64)
    bdocs = np.empty(tk[n_terms], np.uint32)
    sizes = np.zeros(n_blocks + 1, np.int64)
    cap = max_terms
    tmp_terms = np.empty(n_blocks * cap, np.int32)
    tmp_vals = np.empty(n_blocks * cap, np.uint8)
    sscale = np.zeros(n_blocks, np.float32)
    per = (n_terms + n_chunks - 1) // n_chunks
    for c in prange(n_chunks):
        mx = np.zeros(n_terms, np.float32)
        seen = np.empty(n_terms, np.int32)
        inv_cnt = np.zeros(n_terms + 1, np.int64)
        cacc = np.zeros(n_postings // block_size + 2, np.float32)
        for t in range(c * per, min(n_terms, (c + 1) * per)):
            kept = _kept(offsets, docs, impacts, t, n_postings)
            b0 = tb[t]
            n_c = tb[t + 1] - b0
            cl = _cluster(kept, n_c, cptr, cterms, cw, t, inv_cnt, cacc)
            grouped = kept[np.argsort(cl * (np.int64(1) << 32) + kept)]  # by cluster, then doc
            counts = np.zeros(n_c + 1, np.int64)
            for j in range(cl.shape[0]):
                counts[cl[j] + 1] += 1
            for j in range(n_c):
                counts[j + 1] += counts[j]
            for j in range(kept.shape[0]):
                bdocs[tk[t] + j] = grouped[j]
            for j in range(n_c):
                b = b0 + j
                bptr[b + 1] = counts[j + 1] - counts[j]
                if counts[j + 1] == counts[j]:
                    sscale[b] = 1
                    continue
                st, sv = _summary(
                    grouped[counts[j] : counts[j + 1]], fptr, fterms, fimp, energy, max_terms, mx, seen
                )
                top = sv.max() if sv.shape[0] else np.float32(0)
                sc = top / np.float32(255) if top > 0 else np.float32(1)
                sscale[b] = sc
                sizes[b + 1] = st.shape[0]
                for i in range(st.shape[0]):
                    tmp_terms[b * cap + i] = st[i]
                    tmp_vals[b * cap + i] = np.uint8(min(255.0, max(1.0, np.floor(sv[i] / sc + 0.5))))
    for b in range(n_blocks):
        bptr[b + 1] += bptr[b]
        sizes[b + 1] += sizes[b]
    s_terms = np.empty(sizes[n_blocks], np.int32)
    s_vals = np.empty(sizes[n_blocks], np.uint8)
    for b in range(n_blocks):
        for i in range(sizes[b + 1] - sizes[b]):
            s_terms[sizes[b] + i] = tmp_terms[b * cap + i]
            s_vals[sizes[b] + i] = tmp_vals[b * cap + i]
    return tb, bptr, bdocs, sizes, s_terms, s_vals, sscale


@njit(cache=True, nogil=True)
def search_one(
    term_blocks,
    bptr,
    bdocs,
    sptr,
    sterms,
    svals,
    sscale,
    fptr,
    fterms,
    fimp,
    scale,
    doc_order,
    q_terms,
    q_weights,
    k,
    query_cut,
    heap_factor,
    qw,
    stamps,
    stamp,
    hs,
    hd,
    out_d,
    out_s,
    mask,
    thr0,
):
    """Seismic top-k of one query into out_d / out_s. ``qw`` float32[n_terms] zeros (zero again on
    return); ``stamps`` int32[n_docs] holds no value equal to ``stamp`` (docs seen get it). A
    document whose ``mask`` entry (uint8 by internal doc number; empty: none masked) is 0 is never
    scored nor offered to the heap. ``thr0`` (raw score, >= 0): a starting threshold (the k-th
    score other segments hold): blocks are skipped against it from the first one, and a document
    scoring under it may be left out."""
    nq = q_terms.shape[0]
    reordered = doc_order.shape[0] > 0
    masked = mask.shape[0] > 0
    for i in range(nq):
        qw[q_terms[i]] = np.float32(q_weights[i])
    order = np.argsort(-q_weights, kind="mergesort")
    size = 0
    thr = thr0  # > 0 once blocks may be skipped
    hf = np.float32(heap_factor)
    for r in range(min(query_cut, nq)):
        t = q_terms[order[r]]
        for b in range(term_blocks[t], term_blocks[t + 1]):
            if thr > 0:
                sd = np.float32(0)
                for p in range(sptr[b], sptr[b + 1]):
                    sd += qw[sterms[p]] * np.float32(svals[p])
                if sd * sscale[b] < hf * thr:
                    continue
            for p in range(bptr[b], bptr[b + 1]):
                d = bdocs[p]
                if stamps[d] == stamp:
                    continue
                stamps[d] = stamp
                if masked and mask[d] == 0:
                    continue
                s = forward_score(fptr, fterms, fimp, d, qw)
                if s > 0 and s >= thr:
                    key = np.int64(doc_order[d]) if reordered else np.int64(d)
                    size = heap_push(hs, hd, size, k, s, key)
                    if size == k:
                        thr = max(hs[0], thr0)
    for i in range(nq):
        qw[q_terms[i]] = 0
    heap_finish(hs, hd, size, scale, out_d, out_s)


@njit(cache=True, nogil=True)
def search_range(
    term_blocks, bptr, bdocs, sptr, sterms, svals, sscale, fptr, fterms, fimp, scale, doc_order,
    n_terms, q_indptr, q_terms, q_weights, k, query_cut, heap_factor, stamps, stamp0, q_lo, q_hi,
    out_d, out_s, mask, thr0,
):  # fmt: skip
    """Seismic for queries q_lo..q_hi-1 of a CSR batch; ``stamps`` is this thread's scratch whose
    values are all below ``stamp0``; ``thr0`` float32[nq] starting thresholds or empty. Returns the
    next free stamp."""
    has_thr = thr0.shape[0] > 0
    qw = np.zeros(n_terms, np.float32)
    hs = np.empty(k, dtype=np.float32)
    hd = np.empty(k, dtype=np.int64)
    stamp = stamp0
    for q in range(q_lo, q_hi):
        if stamp >= 2_000_000_000:
            stamps[:] = 0
            stamp = 1
        a, b = q_indptr[q], q_indptr[q + 1]
        search_one(
            term_blocks, bptr, bdocs, sptr, sterms, svals, sscale, fptr, fterms, fimp, scale,
            doc_order, q_terms[a:b], q_weights[a:b], k, query_cut, heap_factor, qw, stamps, stamp,
            hs, hd, out_d[q], out_s[q], mask, np.float32(thr0[q]) if has_thr else np.float32(0),
        )  # fmt: skip
        stamp += 1
    return stamp


@njit(cache=True, nogil=True)
def search_serial(
    term_blocks, bptr, bdocs, sptr, sterms, svals, sscale, fptr, fterms, fimp, scale, doc_order,
    n_terms, q_indptr, q_terms, q_weights, k, query_cut, heap_factor, stamps, stamp_box, mask, thr0,
):  # fmt: skip
    """Seismic for every query of a CSR batch: (docs int64[nq, k], scores float32[nq, k]).
    ``stamp_box[0]`` is the next free stamp of ``stamps`` (advanced)."""
    nq = q_indptr.shape[0] - 1
    out_d = np.full((nq, k), -1, dtype=np.int64)
    out_s = np.zeros((nq, k), dtype=np.float32)
    stamp_box[0] = search_range(
        term_blocks, bptr, bdocs, sptr, sterms, svals, sscale, fptr, fterms, fimp, scale, doc_order,
        n_terms, q_indptr, q_terms, q_weights, k, query_cut, heap_factor, stamps, stamp_box[0], 0, nq,
        out_d, out_s, mask, thr0,
    )  # fmt: skip
    return out_d, out_s


@njit(cache=True, nogil=True, parallel=True)
def search_batch(
    term_blocks, bptr, bdocs, sptr, sterms, svals, sscale, fptr, fterms, fimp, scale, doc_order,
    n_terms, q_indptr, q_terms, q_weights, k, query_cut, heap_factor, stamps2d, stamp_box, n_chunks,
    mask, thr0,
):  # fmt: skip
    """:func:`search_serial` with the queries in ``n_chunks`` parallel chunks, chunk c using
    ``stamps2d[c]`` and ``stamp_box[c]``."""
    nq = q_indptr.shape[0] - 1
    out_d = np.full((nq, k), -1, dtype=np.int64)
    out_s = np.zeros((nq, k), dtype=np.float32)
    per = (nq + n_chunks - 1) // n_chunks
    for c in prange(n_chunks):
        stamp_box[c] = search_range(
            term_blocks, bptr, bdocs, sptr, sterms, svals, sscale, fptr, fterms, fimp, scale,
            doc_order, n_terms, q_indptr, q_terms, q_weights, k, query_cut, heap_factor, stamps2d[c],
            stamp_box[c], c * per, min(nq, (c + 1) * per), out_d, out_s, mask, thr0,
        )  # fmt: skip
    return out_d, out_s


# -- plain-Python twins (tests compare the kernels with them on random inputs) -------------------
def kept_reference(offsets, docs, impacts, t, n_postings):
    """Twin of :func:`_kept`: term t's ``n_postings`` heaviest postings (ties: earlier posting,
    i.e. smaller doc), as ascending doc numbers."""
    a, b = int(offsets[t]), int(offsets[t + 1])
    pairs = sorted(range(a, b), key=lambda p: (-float(impacts[p]), p))[:n_postings]
    return np.array(sorted(int(docs[p]) for p in pairs), np.int64)


def summary_reference(block_docs, fptr, fterms, fimp, energy, max_terms):
    """Twin of :func:`_summary` plus the build's uint8 quantization: (terms int32[], uint8
    values, float32 scale). Per-term maxima over the block's documents (terms in order of first
    appearance), a 256-bucket histogram of the values, whole buckets kept from the top until they
    hold ``energy`` of the mass or ``max_terms`` terms."""
    f32 = np.float32
    mx: dict[int, np.float32] = {}
    for d in block_docs:
        for p in range(int(fptr[d]), int(fptr[d + 1])):
            t, v = int(fterms[p]), f32(fimp[p])
            if t not in mx or v > mx[t]:
                mx[t] = v
    seen = list(mx)
    top = max(mx.values()) if mx else f32(0)
    total = 0.0
    for t in seen:
        total += float(mx[t])
    inv = f32(255.5) / top if top > 0 else f32(0)
    bucket = {t: min(255, int(f32(mx[t] * inv))) for t in seen}
    cnt, mass = [0] * 256, [0.0] * 256
    for t in seen:
        cnt[bucket[t]] += 1
        mass[bucket[t]] += float(mx[t])
    cut, acc, kept = 0, 0.0, 0
    for b in range(255, -1, -1):
        if kept >= max_terms or (kept > 0 and acc >= energy * total):
            cut = b + 1
            break
        acc += mass[b]
        kept += cnt[b]
    size = min(kept, max_terms)
    chosen = ([t for t in seen if bucket[t] > cut] + [t for t in seen if bucket[t] == cut])[:size]
    vals = [mx[t] for t in chosen]
    top_v = max(vals) if vals else f32(0)
    sc = f32(top_v / f32(255)) if top_v > 0 else f32(1)
    q = [np.uint8(min(255.0, max(1.0, np.floor(np.float64(f32(v / sc)) + 0.5)))) for v in vals]
    return np.array(chosen, np.int32), np.array(q, np.uint8), sc


def search_python(
    term_blocks, bptr, bdocs, sptr, sterms, svals, sscale, fptr, fterms, fimp, scale, doc_order,
    q_terms, q_weights, k, query_cut, heap_factor, thr0=0.0,
):  # fmt: skip
    """Plain-Python twin of :func:`search_one`: the ``query_cut`` heaviest query terms (stable
    order) walk their blocks; once k documents are held (or from the start, with a starting
    threshold ``thr0`` > 0) a block whose float32 summary score is under ``heap_factor`` x the
    threshold (the k-th score, at least ``thr0``) is skipped; each unseen document of the others is
    scored from the forward index (float32, terms ascending), and offered when it reaches
    ``thr0``. Returns (keys int64[k], scores float32[k])."""
    from lsr.index.kernels.topk import TopKReference

    f32 = np.float32
    qw = {int(t): f32(w) for t, w in zip(q_terms, q_weights, strict=True)}
    order = sorted(range(len(q_terms)), key=lambda i: -float(q_weights[i]))
    heap, seen, hf, t0 = TopKReference(k), set(), f32(heap_factor), f32(thr0)
    for i in order[: min(query_cut, len(q_terms))]:
        t = int(q_terms[i])
        for b in range(int(term_blocks[t]), int(term_blocks[t + 1])):
            thr = max(heap.threshold, t0) if heap.size == k else t0
            if thr > 0:
                sd = f32(0)
                for p in range(int(sptr[b]), int(sptr[b + 1])):
                    sd = f32(sd + f32(qw.get(int(sterms[p]), f32(0)) * f32(svals[p])))
                if f32(sd * sscale[b]) < f32(hf * thr):
                    continue
            for p in range(int(bptr[b]), int(bptr[b + 1])):
                d = int(bdocs[p])
                if d in seen:
                    continue
                seen.add(d)
                s = f32(0)
                for j in range(int(fptr[d]), int(fptr[d + 1])):
                    w = qw.get(int(fterms[j]), f32(0))
                    if w > 0:
                        s = f32(s + f32(w * f32(fimp[j])))
                if s > 0 and s >= t0:
                    heap.push(s, int(doc_order[d]) if len(doc_order) else d)
    return heap.finish(scale)
