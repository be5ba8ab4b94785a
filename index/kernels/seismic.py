"""Seismic-style approximate search (Bruch, Nardini, Rulli, Venturini, SIGIR 2024).

Build, per term: the posting list is statically pruned to its largest impacts (:func:`list_keep`:
Seismic's global threshold by default, or the ``n_postings`` largest of every list); the kept
documents are clustered into about ``len / block_size`` blocks by one round of random
k-means, as Seismic does: centroids drawn from the list at random (their *full* vectors indexed),
each document (its ``cluster_doc_terms`` heaviest terms) joins the centroid with the largest dot
product; clusters of at most ``min_cluster_size`` documents are dissolved and their documents join
the best surviving centroid. Empty clusters leave no block. Each block gets a *summary*: the
per-term maximum over its documents, pruned to the heaviest terms holding ``summary_energy`` of
its L1 mass (sorted by weight, the term that crosses the target included; at most
``summary_terms``), quantized to uint8 with one scale per block (code = round(v / scale), scale =
block max / 255). A term's summaries are stored *inverted* (term-major, Seismic's layout): for each
summary term, the blocks (numbered within the list, uint16) holding it and their codes, so a
query scores all of a list's blocks by touching only the entries of its own terms.

Query: the ``query_cut`` heaviest query terms are visited, heaviest first. For each, every block's
summary score (dot product of the query with the dequantized summary) is computed at once; the
first list's blocks are visited best first (the loop stops at the first block under the
threshold), the others in stored order. Once the heap holds k documents, a block whose summary
score is under ``heap_factor`` x the current k-th score is skipped; every other block's documents
not yet seen are scored exactly from the forward index (same arithmetic as exact search) and
offered to the heap.

The hot loops index with unsigned loop variables, as :mod:`lsr.index.kernels.exact` explains (here:
9-17% off a query on the real 300k set, 18-20% on a 60k prefix of it; BENCHMARKS.md, "Session of
2026-12-01, late").
"""

from __future__ import annotations

import numpy as np
from numba import njit

from lsr.index.kernels.prefetch import prefetch
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
    """Summary of a block of docs: (terms int32[], values float32[]), heaviest first: the per-term
    maxima, sorted by value (ties: first seen), kept until they hold ``energy`` of the total (the
    term crossing the target included), at most ``max_terms``. ``mx`` float32[n_terms] zeros and
    ``seen`` int32[n_terms] scratch; mx is zero again on return."""
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
    total = 0.0
    top = np.float32(0)
    for i in range(n):
        v = mx[seen[i]]
        total += v
        if v > top:
            top = v
    target = energy * total
    # only the terms of the buckets down to the one where the mass crosses the target (a 256-bucket
    # histogram, linear time) need sorting: the answer is a prefix of them
    mass = np.zeros(256, np.float64)
    cnt = np.zeros(256, np.int64)
    inv = np.float32(255.5) / top if top > 0 else np.float32(0)
    for i in range(n):
        b = min(255, int(mx[seen[i]] * inv))
        mass[b] += mx[seen[i]]
        cnt[b] += 1
    cut = 0
    acc = 0.0
    kept = 0
    for b in range(255, -1, -1):
        acc += mass[b]
        kept += cnt[b]
        if acc >= target or kept >= max_terms:
            cut = b
            break
    cand = np.empty(kept, np.int64)  # positions in seen, in order of first appearance
    vals = np.empty(kept, np.float32)
    m = 0
    for i in range(n):
        if min(255, int(mx[seen[i]] * inv)) >= cut:
            cand[m] = i
            vals[m] = mx[seen[i]]
            m += 1
    # by value descending, ties by position: one int64 sort of (inverted float bits, position) keys,
    # unique, so no stable sort is needed (a stable argsort cost more than the rest of the summary)
    bits = vals[:m].view(np.uint32)  # positive float32s order as their bit patterns do
    keys = np.empty(m, np.int64)
    for j in range(m):
        keys[j] = ((np.int64(0xFFFFFFFF) - np.int64(bits[j])) << 32) | j
    keys.sort()
    order = keys & np.int64(0xFFFFFFFF)
    acc = 0.0
    size = 0
    while size < m and size < max_terms:
        acc += vals[order[size]]
        size += 1
        if acc >= target:
            break
    terms = np.empty(size, np.int32)
    out = np.empty(size, np.float32)
    for j in range(size):
        terms[j] = seen[cand[order[j]]]
        out[j] = vals[order[j]]
    for i in range(n):
        mx[seen[i]] = 0
    return terms, out


@njit(cache=True, nogil=True)
def _best(d, cptr, cterms, cw, slot, off, ic, iw, acc, alive):
    """The alive centroid with the largest dot product with doc d's heaviest terms (ties: the
    smaller centroid number), or -1 when d shares no term with any alive centroid. ``acc`` is
    zero on entry and on return; the centroids are numbered 0 .. ``alive.shape[0]`` - 1."""
    n_c = alive.shape[0]
    walked = 0
    for p in range(cptr[d], cptr[d + 1]):
        i = slot[cterms[p]]
        if i >= 0:
            w = np.float32(cw[p])
            walked += off[i + 1] - off[i]
            for e in range(off[i], off[i + 1]):
                acc[ic[e]] += w * iw[e]
    best = -1
    bv = np.float32(0)
    if walked >= n_c:
        # the entries walked outnumber the centroids (a list's own term is in every centroid):
        # reading every score back in one pass costs less than walking the entries again
        for c in range(n_c):
            v = acc[c]
            if v > bv and alive[c]:  # strictly greater: the first (smallest) centroid keeps a tie
                bv = v
                best = c
            acc[c] = 0
        return best
    for p in range(cptr[d], cptr[d + 1]):  # read the touched scores back, and clear them
        i = slot[cterms[p]]
        if i >= 0:
            for e in range(off[i], off[i + 1]):
                c = ic[e]
                if alive[c] and acc[c] > 0 and (best < 0 or acc[c] > bv or (acc[c] == bv and c < best)):
                    bv = acc[c]
                    best = c
                acc[c] = 0
    return best


@njit(cache=True, nogil=True)
def draw_centroids(n, n_c, seed):
    """The positions (int64[n_c], distinct, in 0..n-1) of the documents that seed a list's
    clusters: Numba's generator seeded with ``seed`` (the term number), so a build is repeatable."""
    np.random.seed(seed)
    return np.random.choice(n, n_c, replace=False)


@njit(cache=True, nogil=True)
def _cluster(kept, n_c, fptr, fterms, fimp, cptr, cterms, cw, seed, min_size, slot, acc):
    """Cluster ids int64[len(kept)] in 0..n_c-1 (Seismic's random k-means, one assignment round):
    ``n_c`` centroids drawn from ``kept`` at random, indexed by their full vectors (fptr, fterms,
    fimp); each document, by its heaviest terms (cptr, cterms, cw), joins the centroid of largest
    dot product (one sharing no term: the first centroid). Clusters of at most ``min_size``
    documents are then dissolved (unless none would survive) and their documents join the best
    surviving centroid (none shared: the first survivor).

    ``slot`` int64[n_terms] all -1 and ``acc`` float32[>= n_c] zeros, both so again on return."""
    n = kept.shape[0]
    out = np.zeros(n, np.int64)
    if n_c <= 1:
        return out
    cents = draw_centroids(n, n_c, seed)
    total = 0
    for c in range(n_c):
        d = kept[cents[c]]
        total += fptr[d + 1] - fptr[d]
    tl = np.empty(total, np.int64)  # distinct centroid terms, in order of first appearance
    cnt = np.zeros(total + 1, np.int64)
    nt = 0
    for c in range(n_c):
        d = kept[cents[c]]
        for p in range(fptr[d], fptr[d + 1]):
            t = fterms[p]
            if slot[t] < 0:
                slot[t] = nt
                tl[nt] = t
                nt += 1
            cnt[slot[t] + 1] += 1
    for i in range(nt):
        cnt[i + 1] += cnt[i]
    ic = np.empty(total, np.int64)
    iw = np.empty(total, np.float32)
    fill = cnt[:nt].copy()
    for c in range(n_c):
        d = kept[cents[c]]
        for p in range(fptr[d], fptr[d + 1]):
            i = slot[fterms[p]]
            ic[fill[i]] = c
            iw[fill[i]] = np.float32(fimp[p])
            fill[i] += 1
    alive = np.ones(n_c, np.bool_)
    sizes = np.zeros(n_c, np.int64)
    for j in range(n):
        b = _best(kept[j], cptr, cterms, cw, slot, cnt, ic, iw, acc, alive)
        out[j] = b if b >= 0 else 0
        sizes[out[j]] += 1
    survivors = 0
    for c in range(n_c):
        if sizes[c] <= min_size:
            alive[c] = False
        else:
            survivors += 1
    if survivors > 0 and survivors < n_c:
        first = 0
        while not alive[first]:
            first += 1
        for j in range(n):
            if not alive[out[j]]:
                b = _best(kept[j], cptr, cterms, cw, slot, cnt, ic, iw, acc, alive)
                out[j] = b if b >= 0 else first
    for i in range(nt):
        slot[tl[i]] = -1
    return out


@njit(cache=True, nogil=True)
def _list_blocks(t, offsets, docs, impacts, fptr, fterms, fimp, cptr, cterms, cw, n_postings,
                 block_size, min_size, slot, cacc):  # fmt: skip
    """Term t's kept documents grouped into blocks: (docs int64[] by block, then ascending doc;
    bounds int64[n_blocks + 1] of the non-empty blocks)."""
    kept = _kept(offsets, docs, impacts, t, n_postings)
    n_c = (kept.shape[0] + block_size - 1) // block_size
    cl = _cluster(kept, n_c, fptr, fterms, fimp, cptr, cterms, cw, t, min_size, slot, cacc)
    grouped = kept[np.argsort(cl * (np.int64(1) << 32) + kept)]  # by cluster, then doc
    counts = np.zeros(n_c + 1, np.int64)
    for j in range(cl.shape[0]):
        counts[cl[j] + 1] += 1
    bounds = np.zeros(n_c + 1, np.int64)
    nb = 0
    for j in range(n_c):
        if counts[j + 1] > 0:
            bounds[nb + 1] = bounds[nb] + counts[j + 1]
            nb += 1
    return grouped, bounds[: nb + 1].copy()


@njit(cache=True, nogil=True)
def _list_summaries(grouped, bounds, fptr, fterms, fimp, energy, max_terms, mx, seen, tcount):
    """The summaries of one list's blocks, inverted: (keys int64[] = term << 16 | block, ascending;
    codes uint8[] aligned; scales float32[n_blocks]); a block's value of a term is code x scale.
    ``tcount`` int64[n_terms] zeros (scratch, zero again on return)."""
    nb = bounds.shape[0] - 1
    parts_t = []
    parts_v = []
    total = 0
    for b in range(nb):
        st, sv = _summary(grouped[bounds[b] : bounds[b + 1]], fptr, fterms, fimp, energy, max_terms, mx, seen)
        parts_t.append(st)
        parts_v.append(sv)
        total += st.shape[0]
    # term-major order by a counting sort over the list's distinct summary terms (a block holds a
    # term once, and blocks are written in order, so each term's blocks come out ascending): the
    # order an argsort of the keys gives, at a fraction of its cost (it was a sixth of the build)
    distinct = np.empty(total, np.int64)
    nd = 0
    for b in range(nb):
        st = parts_t[b]
        for i in range(st.shape[0]):
            tt = st[i]
            if tcount[tt] == 0:
                distinct[nd] = tt
                nd += 1
            tcount[tt] += 1
    distinct = np.sort(distinct[:nd])
    pos = 0
    for i in range(nd):
        c = tcount[distinct[i]]
        tcount[distinct[i]] = pos
        pos += c
    keys = np.empty(total, np.int64)
    codes = np.empty(total, np.uint8)
    scales = np.ones(nb, np.float32)
    for b in range(nb):
        st, sv = parts_t[b], parts_v[b]
        top = sv.max() if sv.shape[0] else np.float32(0)
        sc = top / np.float32(255) if top > 0 else np.float32(1)
        scales[b] = sc
        for i in range(st.shape[0]):
            j = tcount[st[i]]
            tcount[st[i]] = j + 1
            keys[j] = (np.int64(st[i]) << 16) | b
            codes[j] = np.uint8(min(255.0, max(1.0, np.floor(sv[i] / sc + 0.5))))
    for i in range(nd):
        tcount[distinct[i]] = 0
    return keys, codes, scales


@njit(cache=True, nogil=True)
def _grow(a, need):
    """``a`` if it holds ``need`` items, else a copy a quarter longer (or ``need`` long), the first
    items kept: a range's buffers hold at most a quarter more than they use (memory), at a few more
    copies than doubling would make (a copy is cheap next to computing what it holds)."""
    if need <= a.shape[0]:
        return a
    b = np.empty(max(need, a.shape[0] + a.shape[0] // 4 + 1024), a.dtype)
    b[: a.shape[0]] = a
    return b


@njit(cache=True, nogil=True)
def build_terms(lo, hi, offsets, docs, impacts, fptr, fterms, fimp, cptr, cterms, cw, keep, block_size,
                energy, max_terms, min_size, tk, bdocs, nbt, ngt):  # fmt: skip
    """The Seismic structures of terms [lo, hi), in one pass (see :func:`build`): each kept list
    clustered into blocks, its documents written at ``bdocs[tk[t]:]``, its block and group counts
    at ``nbt[t + 1]`` and ``ngt[t + 1]``. Returns, in term then block order, (block sizes int64[],
    block scales float32[], group terms int32[], group sizes int32[], group blocks uint16[], group
    values uint8[]) in buffers longer than their contents (not trimmed: a copy less), and then the
    numbers of blocks, groups and entries they hold."""
    n_terms = offsets.shape[0] - 1
    mx = np.zeros(n_terms, np.float32)
    seen = np.empty(n_terms, np.int32)
    tcount = np.zeros(n_terms, np.int64)
    slot = np.full(n_terms, -1, np.int64)
    kmax = 0
    for t in range(lo, hi):
        kmax = max(kmax, min(keep[t], offsets[t + 1] - offsets[t]))
    cacc = np.zeros(kmax // block_size + 2, np.float32)
    sizes = np.empty(64, np.int64)
    scales = np.empty(64, np.float32)
    gt = np.empty(64, np.int32)
    gs = np.empty(64, np.int32)  # a group's size: at most the list's blocks (< 65,536)
    gb = np.empty(1024, np.uint16)
    gv = np.empty(1024, np.uint8)
    n_b = 0
    n_g = 0
    n_e = 0
    for t in range(lo, hi):
        if offsets[t + 1] == offsets[t] or keep[t] == 0:
            continue
        grouped, bounds = _list_blocks(t, offsets, docs, impacts, fptr, fterms, fimp, cptr, cterms,
                                       cw, keep[t], block_size, min_size, slot, cacc)  # fmt: skip
        for j in range(grouped.shape[0]):
            bdocs[tk[t] + j] = grouped[j]
        nb = bounds.shape[0] - 1
        nbt[t + 1] = nb
        keys, codes, sc = _list_summaries(
            grouped, bounds, fptr, fterms, fimp, energy, max_terms, mx, seen, tcount
        )
        sizes = _grow(sizes, n_b + nb)
        scales = _grow(scales, n_b + nb)
        for b in range(nb):
            sizes[n_b + b] = bounds[b + 1] - bounds[b]
            scales[n_b + b] = sc[b]
        n_b += nb
        m = keys.shape[0]
        gb = _grow(gb, n_e + m)
        gv = _grow(gv, n_e + m)
        gt = _grow(gt, n_g + m)
        gs = _grow(gs, n_g + m)
        g0 = n_g
        for i in range(m):
            if i == 0 or (keys[i] >> 16) != (keys[i - 1] >> 16):
                gt[n_g] = np.int32(keys[i] >> 16)
                gs[n_g] = 0
                n_g += 1
            gs[n_g - 1] += 1
            gb[n_e + i] = np.uint16(keys[i] & 0xFFFF)
            gv[n_e + i] = codes[i]
        n_e += m
        ngt[t + 1] = n_g - g0
    return sizes, scales, gt, gs, gb, gv, n_b, n_g, n_e


def build(
    offsets: np.ndarray,
    docs: np.ndarray,
    impacts: np.ndarray,
    fptr: np.ndarray,
    fterms: np.ndarray,
    fimp: np.ndarray,
    cptr: np.ndarray,
    cterms: np.ndarray,
    cw: np.ndarray,
    keep: np.ndarray,
    block_size: int,
    energy: float,
    max_terms: int,
    min_size: int,
    n_chunks: int,
) -> tuple[np.ndarray, ...]:
    """All Seismic structures, term t's list pruned to its ``keep[t]`` heaviest postings (int64
    [n_terms]: :func:`list_keep`), from float32 weights (``impacts``, ``fimp``, ``cw``; any dtype
    compiles, but the index passes float32 so that one compiled build serves every impact dtype):
    (term_blocks int64[n_terms + 1], block_docs_ptr int64[n_blocks + 1], block_docs uint32[],
    block_scale float32[n_blocks], list_groups int64[n_terms + 1], group_terms int32[n_groups],
    group_offsets int64[n_groups + 1], group_blocks uint16[n_entries], group_values
    uint8[n_entries]). Clustering compares documents by the forward CSR (cptr, cterms,
    cw) of their heaviest terms with the centroids' full vectors; summaries use the full forward
    index.

    The terms are cut into ranges that ``n_chunks`` threads build in one pass each
    (:func:`build_terms`, :func:`lsr.index.batch.run_ranges`); the ranges' pieces are then joined in
    term order, each piece dropped once copied (peak memory: the summaries about twice over).
    The build used to make two passes over the terms, the second recomputing every summary to write
    it in place: a third of the build's time."""
    from lsr.index.batch import run_ranges

    n_terms = offsets.shape[0] - 1
    keep = np.asarray(keep, np.int64)
    tk = np.zeros(n_terms + 1, np.int64)  # kept postings of each term
    np.cumsum(np.minimum(np.diff(offsets), keep), out=tk[1:])
    bdocs = np.empty(int(tk[n_terms]), np.uint32)
    nbt = np.zeros(n_terms + 1, np.int64)  # blocks and summary groups of each term, then prefix sums
    ngt = np.zeros(n_terms + 1, np.int64)
    pieces: dict[int, list[np.ndarray]] = {}

    def work(_chunk: int, lo: int, hi: int) -> None:
        pieces[lo] = list(
            build_terms(
                lo,
                hi,
                offsets,
                docs,
                impacts,
                fptr,
                fterms,
                fimp,
                cptr,
                cterms,
                cw,
                keep,
                block_size,
                energy,
                max_terms,
                min_size,
                tk,
                bdocs,
                nbt,
                ngt,
            )  # fmt: skip
        )

    run_ranges(n_terms, n_chunks, work)
    parts = [pieces[lo] for lo in sorted(pieces)]
    pieces.clear()
    np.cumsum(nbt, out=nbt)
    np.cumsum(ngt, out=ngt)

    def joined(field: int, dtype: type) -> np.ndarray:
        count = 6 + field // 2  # the piece's n_b, n_g or n_e: how much of its buffer is used
        out = np.empty(sum(int(p[count]) for p in parts), dtype)
        pos = 0
        for p in parts:
            n = int(p[count])
            out[pos : pos + n] = p[field][:n]
            pos += n
            p[field] = None  # the piece's buffer is no longer needed
        return out

    def offsets_of(field: int, total: int) -> np.ndarray:  # the prefix sums of a field of sizes
        count = 6 + field // 2
        out = np.zeros(total + 1, np.int64)
        pos = 0
        for p in parts:
            n = int(p[count])
            np.cumsum(p[field][:n], dtype=np.int64, out=out[pos + 1 : pos + n + 1])
            out[pos + 1 : pos + n + 1] += out[pos]
            pos += n
            p[field] = None
        return out

    bptr = offsets_of(0, int(nbt[n_terms]))
    scale = joined(1, np.float32)
    gterms = joined(2, np.int32)
    goff = offsets_of(3, int(ngt[n_terms]))
    gblk = joined(4, np.uint16)
    gval = joined(5, np.uint8)
    return nbt, bptr, bdocs, scale, ngt, gterms, goff, gblk, gval


@njit(cache=True, nogil=True)
def list_scores(t, term_blocks, scale, lg, gterms, goff, gblk, gval, q_terms, q_weights, acc):
    """Summary score of every block of term t's list into acc[0 : n_blocks of t] (float32): for
    each query term (ascending) found among the list's summary terms (binary search), code x query
    weight added to its blocks, then each block's sum x its scale."""
    b0 = term_blocks[t]
    nb = term_blocks[t + 1] - b0
    for j in range(nb):
        acc[j] = 0
    lo, g1 = lg[t], lg[t + 1]
    for i in range(q_terms.shape[0]):
        qt = q_terms[i]
        hi = g1
        while lo < hi:
            mid = (lo + hi) >> 1
            if gterms[mid] < qt:
                lo = mid + 1
            else:
                hi = mid
        if lo >= g1:
            break
        if gterms[lo] == qt:
            w = np.float32(q_weights[i])
            for e in range(np.uint64(goff[lo]), np.uint64(goff[lo + 1])):  # unsigned: no wraparound guards
                acc[gblk[e]] += w * np.float32(gval[e])
            lo += 1
    for j in range(nb):
        acc[j] = acc[j] * scale[b0 + j]
    return nb


@njit(cache=True, nogil=True)
def _score(fptr, fterms, fimp, d, qw):
    """:func:`~lsr.index.kernels.maxscore.forward_score` without its branch: terms outside the
    query add qw = 0 x impact = +0.0, which leaves a float32 sum >= 0 unchanged, so the result is
    the same to the bit; on long documents (a few hundred terms, a fifth in the query) the
    unpredictable branch cost more than the multiply-adds."""
    s = np.float32(0)
    for p in range(np.uint64(fptr[d]), np.uint64(fptr[d + 1])):  # unsigned: no wraparound guards
        s += qw[fterms[p]] * np.float32(fimp[p])
    return s


@njit(cache=True, nogil=True)
def _announce(b, bptr, bdocs, fptr, fterms, fimp, stamps):
    """Prefetch every cache line of block b's documents in the forward index (and their stamps),
    so that their misses overlap instead of coming one document at a time."""
    st = max(1, 64 // fterms.itemsize)
    si = max(1, 64 // fimp.itemsize)
    for p in range(np.uint64(bptr[b]), np.uint64(bptr[b + 1])):
        d = bdocs[p]
        prefetch(stamps, d)
        a, e = fptr[d], fptr[d + 1]
        if e > a:
            for o in range(a, e, st):
                prefetch(fterms, o)
            prefetch(fterms, e - 1)
            for o in range(a, e, si):
                prefetch(fimp, o)
            prefetch(fimp, e - 1)


@njit(cache=True, nogil=True)
def _visit(b, bptr, bdocs, fptr, fterms, fimp, doc_order, qw, stamps, stamp, mask, hs, hd, size, k, thr0):
    """Score block b's unseen documents and offer those reaching ``thr0`` to the heap; returns the
    heap size."""
    reordered = doc_order.shape[0] > 0
    masked = mask.shape[0] > 0
    _announce(b, bptr, bdocs, fptr, fterms, fimp, stamps)
    for p in range(np.uint64(bptr[b]), np.uint64(bptr[b + 1])):
        d = bdocs[p]
        if stamps[d] == stamp:
            continue
        stamps[d] = stamp
        if masked and mask[d] == 0:
            continue
        s = _score(fptr, fterms, fimp, d, qw)
        if s > 0 and s >= thr0 and (size < k or s >= hs[0]):
            key = np.int64(doc_order[d]) if reordered else np.int64(d)
            size = heap_push(hs, hd, size, k, s, key)
    return size


@njit(cache=True, nogil=True)
def search_one(
    term_blocks, bptr, bdocs, scale, lg, gterms, goff, gblk, gval, fptr, fterms, fimp, dscale,
    doc_order, q_terms, q_weights, k, query_cut, heap_factor, qw, acc, stamps, stamp, hs, hd, out_d,
    out_s, mask, thr0, graph, knn,
):  # fmt: skip
    """Seismic top-k of one query (terms ascending) into out_d / out_s. ``qw`` float32[n_terms]
    zeros (zero again on return); ``acc`` float32[>= most blocks of a list]; ``stamps``
    int32[n_docs] holds no value equal to ``stamp`` (docs seen get it). A document whose ``mask``
    entry (uint8 by internal doc number; empty: none masked) is 0 is never scored nor offered.
    ``thr0`` (raw score, >= 0): a starting threshold (the k-th score other segments hold): blocks
    are skipped against it from the first one, and a document scoring under it may be left out.
    ``graph`` int32[rows, kappa] (rows by heap key, entries internal numbers, -1 padding; no rows:
    no graph) and ``knn`` >= 0: after the blocks, the first ``knn`` neighbours of every document
    then in the top k are scored too (:func:`_expand`)."""
    nq = q_terms.shape[0]
    for i in range(nq):
        qw[q_terms[i]] = np.float32(q_weights[i])
    order = np.argsort(-q_weights, kind="mergesort")
    size = 0
    hf = np.float32(heap_factor)
    for r in range(min(query_cut, nq)):
        t = q_terms[order[r]]
        nb = list_scores(t, term_blocks, scale, lg, gterms, goff, gblk, gval, q_terms, q_weights, acc)
        b0 = term_blocks[t]
        if r == 0:  # the first list best block first: the heap fills with good documents early
            border = np.argsort(-acc[:nb], kind="mergesort")
            for j in range(nb):
                thr = max(hs[0], thr0) if size == k else thr0
                if thr > 0 and acc[border[j]] < hf * thr:
                    break
                size = _visit(b0 + border[j], bptr, bdocs, fptr, fterms, fimp, doc_order, qw, stamps,
                              stamp, mask, hs, hd, size, k, thr0)  # fmt: skip
        else:
            for j in range(nb):
                thr = max(hs[0], thr0) if size == k else thr0
                if thr > 0 and acc[j] < hf * thr:
                    continue
                size = _visit(b0 + j, bptr, bdocs, fptr, fterms, fimp, doc_order, qw, stamps, stamp,
                              mask, hs, hd, size, k, thr0)  # fmt: skip
    if knn > 0 and graph.shape[0] > 0 and size > 0:
        size = _expand(
            graph, knn, fptr, fterms, fimp, doc_order, qw, stamps, stamp, mask, hs, hd, size, k, thr0
        )
    for i in range(nq):
        qw[q_terms[i]] = 0
    heap_finish(hs, hd, size, dscale, out_d, out_s)


@njit(cache=True, nogil=True)
def _expand(graph, knn, fptr, fterms, fimp, doc_order, qw, stamps, stamp, mask, hs, hd, size, k, thr0):
    """The kNN-graph refinement of Seismic (Bruch et al., CIKM 2024): score the unseen first
    ``knn`` neighbours (``graph`` row = the heap key) of each document in the heap now, and offer
    them as :func:`_visit` does. The result is the top k of every document scored, whatever the
    order (the heap orders ties by key), so the seeds are taken in heap order. Their forward rows are
    prefetched first, so that the cache misses overlap. Returns the heap size."""
    reordered = doc_order.shape[0] > 0
    masked = mask.shape[0] > 0
    kk = min(knn, graph.shape[1])
    seeds = hd[:size].copy()
    st = max(1, 64 // fterms.itemsize)
    si = max(1, 64 // fimp.itemsize)
    for i in range(seeds.shape[0]):
        for j in range(kk):
            n = graph[seeds[i], j]
            if n < 0:
                break
            prefetch(stamps, n)
            a, e = fptr[n], fptr[n + 1]
            for o in range(a, e, st):
                prefetch(fterms, o)
            for o in range(a, e, si):
                prefetch(fimp, o)
    for i in range(seeds.shape[0]):
        for j in range(kk):
            n = graph[seeds[i], j]
            if n < 0:
                break
            if stamps[n] == stamp:
                continue
            stamps[n] = stamp
            if masked and mask[n] == 0:
                continue
            s = _score(fptr, fterms, fimp, n, qw)
            if s > 0 and s >= thr0 and (size < k or s >= hs[0]):
                key = np.int64(doc_order[n]) if reordered else np.int64(n)
                size = heap_push(hs, hd, size, k, s, key)
    return size


@njit(cache=True, nogil=True)
def search_range(
    term_blocks, bptr, bdocs, scale, lg, gterms, goff, gblk, gval, fptr, fterms, fimp, dscale,
    doc_order, n_terms, max_blocks, q_indptr, q_terms, q_weights, k, query_cut, heap_factor, stamps,
    stamp0, q_lo, q_hi, out_d, out_s, mask, thr0, graph, knn,
):  # fmt: skip
    """Seismic for queries q_lo..q_hi-1 of a CSR batch; ``stamps`` is this thread's scratch whose
    values are all below ``stamp0``; ``thr0`` float32[nq] starting thresholds (raw scores) or empty;
    ``graph`` / ``knn`` as :func:`search_one` takes them. Returns the next free stamp."""
    has_thr = thr0.shape[0] > 0
    qw = np.zeros(n_terms, np.float32)
    acc = np.zeros(max(1, max_blocks), np.float32)
    hs = np.empty(k, dtype=np.float32)
    hd = np.empty(k, dtype=np.int64)
    stamp = stamp0
    for q in range(q_lo, q_hi):
        if stamp >= 2_000_000_000:
            stamps[:] = 0
            stamp = 1
        a, b = q_indptr[q], q_indptr[q + 1]
        t0 = np.float32(thr0[q]) if has_thr else np.float32(0)
        search_one(
            term_blocks, bptr, bdocs, scale, lg, gterms, goff, gblk, gval, fptr, fterms, fimp, dscale,
            doc_order, q_terms[a:b], q_weights[a:b], k, query_cut, heap_factor, qw, acc, stamps, stamp,
            hs, hd, out_d[q], out_s[q], mask, t0, graph, knn,
        )  # fmt: skip
        stamp += 1
    return stamp


@njit(cache=True, nogil=True)
def search_serial(
    term_blocks, bptr, bdocs, scale, lg, gterms, goff, gblk, gval, fptr, fterms, fimp, dscale,
    doc_order, n_terms, max_blocks, q_indptr, q_terms, q_weights, k, query_cut, heap_factor, stamps,
    stamp_box, mask, thr0, graph, knn,
):  # fmt: skip
    """Seismic for every query of a CSR batch: (docs int64[nq, k], scores float32[nq, k]).
    ``stamp_box[0]`` is the next free stamp of ``stamps`` (advanced)."""
    nq = q_indptr.shape[0] - 1
    out_d = np.full((nq, k), -1, dtype=np.int64)
    out_s = np.zeros((nq, k), dtype=np.float32)
    # np.int64(0), not 0: a literal would compile a second search_range beside the one that
    # batch threads call (lsr.index.batch)
    stamp_box[0] = search_range(
        term_blocks, bptr, bdocs, scale, lg, gterms, goff, gblk, gval, fptr, fterms, fimp, dscale,
        doc_order, n_terms, max_blocks, q_indptr, q_terms, q_weights, k, query_cut, heap_factor, stamps,
        stamp_box[0], np.int64(0), nq, out_d, out_s, mask, thr0, graph, knn,
    )  # fmt: skip
    return out_d, out_s


@njit(cache=True, nogil=True)
def knn_range(
    term_blocks, bptr, bdocs, scale, lg, gterms, goff, gblk, gval, fptr, fterms, fimp, n_terms,
    max_blocks, c_ptr, c_terms, c_weights, kappa, query_cut, heap_factor, lo, hi, out,
):  # fmt: skip
    """Rows lo..hi-1 of the kNN graph over internal numbers: ``out[d]`` (int32[n_docs, kappa], -1
    padding) gets the ``kappa`` documents other than d, best first, that :func:`search_one` finds
    for d's own vector cut to its heaviest terms (``c_ptr`` / ``c_terms`` / ``c_weights``: a forward
    CSR, terms ascending) at ``query_cut`` / ``heap_factor``. Seismic's builder does the same (its
    ``nknn``): an approximate graph from the index itself, far cheaper than brute force."""
    qw = np.zeros(n_terms, np.float32)
    acc = np.zeros(max(1, max_blocks), np.float32)
    hs = np.empty(kappa, np.float32)
    hd = np.empty(kappa, np.int64)
    od = np.empty(kappa, np.int64)
    osc = np.empty(kappa, np.float32)
    stamps = np.zeros(fptr.shape[0] - 1, np.int32)
    no_order = np.empty(0, np.int64)
    no_mask = np.empty(0, np.uint8)
    no_graph = np.empty((0, 1), np.int32)
    stamp = 1
    for d in range(lo, hi):
        stamps[d] = stamp  # d itself counts as seen
        a, b = c_ptr[d], c_ptr[d + 1]
        search_one(
            term_blocks, bptr, bdocs, scale, lg, gterms, goff, gblk, gval, fptr, fterms, fimp,
            np.float32(1), no_order, c_terms[a:b], c_weights[a:b], kappa, query_cut, heap_factor, qw,
            acc, stamps, stamp, hs, hd, od, osc, no_mask, np.float32(0), no_graph, 0,
        )  # fmt: skip
        for j in range(kappa):
            out[d, j] = od[j]
        stamp += 1


def knn_graph(
    arrays: tuple,
    fptr: np.ndarray,
    fterms: np.ndarray,
    fimp: np.ndarray,
    cptr: np.ndarray,
    cterms: np.ndarray,
    cw: np.ndarray,
    n_terms: int,
    kappa: int,
    query_cut: int,
    heap_factor: float,
    doc_order: np.ndarray,
    threads: int = 1,
) -> np.ndarray:
    """The kNN graph the search's refinement walks (:func:`knn_range` on ``threads`` threads), its
    rows by heap key (``doc_order[d]`` for a reordered index, else d), its entries internal
    numbers: int32[n_docs, kappa]. ``arrays`` is the seismic part as the search takes it."""
    from lsr.index.batch import run_ranges

    n = fptr.shape[0] - 1
    tb = arrays[0]
    max_blocks = int(np.diff(tb).max()) if len(tb) > 1 else 0
    out = np.full((n, kappa), -1, np.int32)
    run_ranges(
        n,
        threads,
        lambda _c, lo, hi: knn_range(
            *arrays,
            fptr,
            fterms,
            fimp,
            n_terms,
            max_blocks,
            cptr,
            cterms,
            cw,
            kappa,
            query_cut,
            heap_factor,
            lo,
            hi,
            out,
        ),  # fmt: skip
    )
    if len(doc_order):
        keyed = np.empty_like(out)
        keyed[np.asarray(doc_order, np.int64)] = out
        return keyed
    return out


# -- plain-Python twins (tests compare the kernels with them on random inputs) -------------------
def list_keep(offsets: np.ndarray, impacts: np.ndarray, n_postings: int, pruning: str = "global",
              max_fraction: float = 1.5, term_scale: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
    """How many postings each term's list keeps (int64[n_terms]).

    ``"fixed"``: the ``n_postings`` heaviest of every list. ``"global"`` (Seismic's default,
    ``PruningStrategy::GlobalThreshold``): the heaviest ``n_postings`` x (terms with postings)
    postings of the whole index, wherever they are, each list capped at ``max_fraction`` x
    ``n_postings``: a term whose weights are high everywhere keeps a longer list, a term of low
    weights a shorter one, for the same total. A posting is among the heaviest when its impact is
    at least the threshold (the total-th largest impact), so ties at the threshold are all kept.
    ``term_scale`` (the per-term quantizer's factors): impacts are compared as ``impact x
    term_scale[t]``, the weights they stand for, since each term's integers have their own step."""
    lens = np.diff(np.asarray(offsets, np.int64))
    if pruning == "fixed":
        return np.minimum(lens, int(n_postings))
    cap = int(int(n_postings) * float(max_fraction))
    total = int(n_postings) * int(np.count_nonzero(lens))
    imp = np.asarray(impacts)
    if total >= imp.shape[0]:
        return np.minimum(lens, cap)
    term_of = np.repeat(np.arange(lens.shape[0]), lens)
    if term_scale is not None:
        imp = imp.astype(np.float64) * np.asarray(term_scale, np.float64)[term_of]
    thr = np.partition(imp, imp.shape[0] - total)[imp.shape[0] - total]
    above = np.bincount(term_of[imp >= thr], minlength=lens.shape[0]).astype(np.int64)
    return np.minimum(above, cap)


def cluster_reference(kept, cents, n_terms, fptr, fterms, fimp, cptr, cterms, cw, min_size):
    """Plain numpy twin of :func:`_cluster` given its centroid draw ``cents`` (positions in
    ``kept``): dense float32 dot products of each document's heaviest terms with every centroid's
    full vector, added term by term in the same order (so the same float32 sums), argmax with ties
    to the smaller centroid; then the clusters of at most ``min_size`` documents dissolved."""
    kept = np.asarray(kept, np.int64)
    n, n_c = len(kept), len(cents)
    out = np.zeros(n, np.int64)
    if n_c <= 1:
        return out
    cw_mat = np.zeros((n_c, n_terms), np.float32)
    for c, j in enumerate(cents):
        d = kept[j]
        cw_mat[c, np.asarray(fterms[fptr[d] : fptr[d + 1]], np.int64)] = fimp[fptr[d] : fptr[d + 1]]

    def best(d: int, alive: np.ndarray) -> int:
        score = np.zeros(n_c, np.float32)
        for p in range(cptr[d], cptr[d + 1]):
            score += np.float32(cw[p]) * cw_mat[:, int(cterms[p])]
        score[~alive] = 0
        return int(np.argmax(score)) if score.max() > 0 else -1

    alive = np.ones(n_c, bool)
    for j in range(n):
        out[j] = max(best(kept[j], alive), 0)
    sizes = np.bincount(out, minlength=n_c)
    alive = sizes > min_size
    if 0 < alive.sum() < n_c:
        first = int(np.argmax(alive))
        for j in range(n):
            if not alive[out[j]]:
                b = best(kept[j], alive)
                out[j] = b if b >= 0 else first
    return out


def list_keep_reference(offsets, impacts, n_postings, max_fraction):
    """Twin of ``list_keep(..., "global")`` written as Seismic's loop: walk the postings heaviest
    first (every one tied with the last of the first ``total`` included), each joining its list
    while the list holds under the cap."""
    n_terms = len(offsets) - 1
    term_of = [t for t in range(n_terms) for _ in range(int(offsets[t]), int(offsets[t + 1]))]
    vals = [float(impacts[p]) for p in range(len(term_of))]
    total = int(n_postings) * sum(1 for t in range(n_terms) if offsets[t + 1] > offsets[t])
    cap = int(int(n_postings) * float(max_fraction))
    order = sorted(range(len(vals)), key=lambda p: -vals[p])
    last = vals[order[min(total, len(order)) - 1]] if order else 0.0
    keep = [0] * n_terms
    for p in order:
        if vals[p] < last:
            break
        if keep[term_of[p]] < cap:
            keep[term_of[p]] += 1
    return np.array(keep, np.int64)


def kept_reference(offsets, docs, impacts, t, n_postings):
    """Twin of :func:`_kept`: term t's ``n_postings`` heaviest postings (ties: earlier posting,
    i.e. smaller doc), as ascending doc numbers."""
    a, b = int(offsets[t]), int(offsets[t + 1])
    pairs = sorted(range(a, b), key=lambda p: (-float(impacts[p]), p))[:n_postings]
    return np.array(sorted(int(docs[p]) for p in pairs), np.int64)


def summary_reference(block_docs, fptr, fterms, fimp, energy, max_terms):
    """Twin of :func:`_summary`: (terms int32[], float32 values), heaviest first (ties: first
    seen, terms in order of first appearance over the block's documents): per-term maxima kept
    until they hold ``energy`` of the L1 mass (the crossing term included), at most ``max_terms``."""
    f32 = np.float32
    mx: dict[int, np.float32] = {}
    for d in block_docs:
        for p in range(int(fptr[d]), int(fptr[d + 1])):
            t, v = int(fterms[p]), f32(fimp[p])
            if t not in mx or v > mx[t]:
                mx[t] = v
    seen = list(mx)
    total = 0.0
    for t in seen:
        total += float(mx[t])
    ranked = sorted(range(len(seen)), key=lambda i: (-float(mx[seen[i]]), i))
    chosen, acc = [], 0.0
    for i in ranked[:max_terms]:
        chosen.append(seen[i])
        acc += float(mx[seen[i]])
        if acc >= energy * total:
            break
    return np.array(chosen, np.int32), np.array([mx[t] for t in chosen], np.float32)


def list_summaries_reference(blocks, fptr, fterms, fimp, energy, max_terms):
    """Twin of :func:`_list_summaries` plus the build's layout, for one list whose blocks are
    ``blocks`` (lists of doc numbers): (group terms int32[] ascending, group offsets int64[], block
    numbers int64[], uint8 codes, float32 scales[n_blocks]); code = round-half-up(v / scale) in
    [1, 255], scale = block max / 255 (1 for an empty summary)."""
    f32 = np.float32
    entries, scales = [], []
    for b, docs in enumerate(blocks):
        st, sv = summary_reference(docs, fptr, fterms, fimp, energy, max_terms)
        top = sv.max() if len(sv) else f32(0)
        sc = f32(top / f32(255)) if top > 0 else f32(1)
        scales.append(sc)
        for t, v in zip(st.tolist(), sv, strict=True):
            entries.append((t, b, int(min(255.0, max(1.0, np.floor(np.float64(f32(v / sc)) + 0.5))))))
    entries.sort()
    terms = sorted({t for t, _, _ in entries})
    offs = (
        np.searchsorted([t for t, _, _ in entries], terms + [2**62]).astype(np.int64)
        if entries
        else np.zeros(1, np.int64)
    )
    return (
        np.array(terms, np.int32),
        offs,
        np.array([b for _, b, _ in entries], np.int64),
        np.array([c for _, _, c in entries], np.uint8),
        np.array(scales, np.float32),
    )


def search_python(
    term_blocks, bptr, bdocs, scale, lg, gterms, goff, gblk, gval, fptr, fterms, fimp, dscale,
    doc_order, q_terms, q_weights, k, query_cut, heap_factor, counts=None, thr0=0.0, graph=None, knn=0,
    skip=None,
):  # fmt: skip
    """Plain-Python twin of :func:`search_one` (query terms ascending): the ``query_cut`` heaviest
    query terms (stable order) walk their lists; each list's block scores are the float32 sums, over
    the query's terms in ascending order and each term's entries in stored order, of weight x
    code, times the block's scale; the first list's blocks go best first (stable) and stop at the
    first under ``heap_factor`` x the k-th score once k documents are held, the other lists'
    blocks under it are skipped; each unseen document of the others is scored from the forward
    index (float32, terms ascending). With a starting threshold ``thr0`` > 0 the threshold is
    max(k-th score, ``thr0``) (``thr0`` alone before k are held) and only documents reaching
    ``thr0`` are offered. With a ``graph`` (rows by key, internal numbers, -1 padding) and ``knn`` >
    0, the first ``knn`` neighbours of every document in the top k after the blocks are scored and
    offered the same way. ``skip``: an internal number counted as seen from the start (the graph's
    build leaves each document out of its own neighbours). Returns (keys int64[k], scores
    float32[k]); ``counts`` (a dict) receives the work done: blocks scored from their summaries,
    blocks visited, documents scored."""
    from lsr.index.kernels.topk import TopKReference

    f32 = np.float32
    qw = {int(t): f32(w) for t, w in zip(q_terms, q_weights, strict=True)}
    order = sorted(range(len(q_terms)), key=lambda i: -float(q_weights[i]))
    heap, seen, hf, t0 = TopKReference(k), set(), f32(heap_factor), f32(thr0)
    if skip is not None:
        seen.add(int(skip))
    work = {"summaries": 0, "blocks": 0, "docs": 0}

    def offer(d):
        seen.add(d)
        work["docs"] += 1
        s = f32(0)
        for j in range(int(fptr[d]), int(fptr[d + 1])):
            w = qw.get(int(fterms[j]), f32(0))
            if w > 0:
                s = f32(s + f32(w * f32(fimp[j])))
        if s > 0 and s >= t0:
            heap.push(s, int(doc_order[d]) if len(doc_order) else d)

    def visit(b):
        work["blocks"] += 1
        for p in range(int(bptr[b]), int(bptr[b + 1])):
            d = int(bdocs[p])
            if d not in seen:
                offer(d)

    for r, i in enumerate(order[: min(query_cut, len(q_terms))]):
        t = int(q_terms[i])
        b0, nb = int(term_blocks[t]), int(term_blocks[t + 1] - term_blocks[t])
        acc = [f32(0)] * nb
        groups = {int(gterms[g]): g for g in range(int(lg[t]), int(lg[t + 1]))}
        for qt, w in zip(q_terms, q_weights, strict=True):
            g = groups.get(int(qt))
            if g is not None:
                for e in range(int(goff[g]), int(goff[g + 1])):
                    acc[int(gblk[e])] = f32(acc[int(gblk[e])] + f32(f32(w) * f32(gval[e])))
        acc = [f32(acc[j] * scale[b0 + j]) for j in range(nb)]
        work["summaries"] += nb
        if r == 0:
            for j in sorted(range(nb), key=lambda j: -float(acc[j])):
                thr = max(heap.threshold, t0) if heap.size == k else t0
                if thr > 0 and acc[j] < f32(hf * thr):
                    break
                visit(b0 + j)
        else:
            for j in range(nb):
                thr = max(heap.threshold, t0) if heap.size == k else t0
                if thr > 0 and acc[j] < f32(hf * thr):
                    continue
                visit(b0 + j)
    if graph is not None and knn > 0 and len(graph):
        for key in [key for _, key in heap.items]:  # the seeds: the top k after the blocks
            for n in graph[key][:knn]:
                if n < 0:
                    break
                if int(n) not in seen:
                    offer(int(n))
    if counts is not None:
        counts.update(work)
    return heap.finish(dscale)


def knn_graph_reference(search_args: tuple, c_rows: list, kappa: int, query_cut: int, heap_factor: float):
    """Twin of :func:`knn_graph` before the rows go by key: row d lists the keys
    :func:`search_python` (``search_args`` = its arguments up to ``doc_order``, an empty order)
    returns for ``c_rows[d]`` (d's cut vector: (terms ascending, weights)) with d counted as seen,
    -1 padded: int32[n_docs, kappa]."""
    out = np.full((len(c_rows), kappa), -1, np.int32)
    for d, (t, w) in enumerate(c_rows):
        keys, _ = search_python(*search_args, t, w, kappa, query_cut, heap_factor, skip=d)
        out[d] = keys
    return out
