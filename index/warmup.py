"""Compile every numba kernel once, ahead of use, into numba's on-disk cache.

Every kernel is ``@njit(cache=True)``: the first call of each (kernel, argument types) pair compiles
it (seconds to tens of seconds each) and stores the machine code; later processes load it in
milliseconds. The argument types include the impacts' dtype, so a new user otherwise pays for
compilation once per search method *and* per quantization (a first uint16 build took 50 s against
1.8 s for uint8, a first MaxScore search 24 s). :func:`warm_kernels` builds a tiny index with every
part in each quantization and searches it with every method, serially and in a parallel batch,
which compiles (or loads) all of them in one go. ``lsr warmup`` runs it for every quantization; the
first ``lsr`` command that builds or searches an index of a quantization runs it for that one (see
:func:`needs_warmup`), with a progress bar: a user waits once per impact type actually used, for
all methods together. The tiny index has a small vocabulary, so it warms the kernels for uint16
forward term ids (every vocabulary of at most 65,536 terms, BERT's included); an index of a larger
vocabulary (DyVo entities) compiles its uint32 variants on its first MaxScore or Seismic search.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import time
from collections.abc import Sequence

import numpy as np

from lsr.index import format as fmt
from lsr.index.parts import ALL_METHODS


def _collection(n_docs: int = 400, n_terms: int = 64, seed: int = 0):
    """A small collection with frequent terms (dense BMP rows) and rare ones (sparse entries)."""
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    m = sp.random(n_docs, n_terms, density=0.08, random_state=rng, format="lil", dtype=np.float32)
    m[:, :4] = rng.random((n_docs, 4)) + 0.1  # frequent terms: dense in BMP
    m = m.tocsr()
    m.data = (rng.integers(1, 64, m.nnz) / 8).astype(np.float32)
    return m


def warm_kernels(
    quantizations: Sequence[str] = fmt.QUANTIZATIONS,
    methods: Sequence[str] = ALL_METHODS,
    show_progress: bool = False,
) -> dict[str, float]:
    """Compile (or load from numba's cache) the build and search kernels for ``quantizations`` x
    ``methods``; returns the seconds each quantization took."""
    from lsr.index import build_index, open_index
    from lsr.vectors import Vocabulary

    docs = _collection()
    vocab = Vocabulary([f"t{i}" for i in range(docs.shape[1])])
    seconds: dict[str, float] = {}
    bar = None
    if show_progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(quantizations) * (1 + len(methods)), desc="compiling kernels", unit="step")
    with tempfile.TemporaryDirectory(prefix="lsr-warmup-") as tmp:
        for q in quantizations:
            t0 = time.perf_counter()
            if bar is not None:
                bar.set_postfix_str(f"{q} build")
            path = build_index(
                docs,
                os.path.join(tmp, q),
                vocab=vocab,
                quantization=q,
                methods=methods,
                reorder=True,
                bmp={"block_size": 8, "dense_fraction": 0.3},
                seismic={"n_postings": 40, "block_size": 8},
                reorder_params={"leaf": 16},
            )
            if bar is not None:
                bar.update(1)
            idx = open_index(path)
            for m in idx.methods:
                if bar is not None:
                    bar.set_postfix_str(f"{q} {m}")
                idx.warmup([m])
                if bar is not None:
                    bar.update(1)
            if "bmp" in idx.methods:  # the kernels over several segments of a living index
                if bar is not None:
                    bar.set_postfix_str(f"{q} segments")
                from lsr.vectors import SparseBatch

                half = docs[: docs.shape[0] // 2]
                living = open_index(path, writable=True, parts_min_docs=1)
                batch = SparseBatch(half.indptr, half.indices, half.data, vocab)
                living.add(batch, ids=[f"w{i}" for i in range(half.shape[0])])
                living.commit()
                living.warmup(["exact", "bmp"])
                living.close()
            seconds[q] = round(time.perf_counter() - t0, 2)
    if bar is not None:
        bar.close()
    return seconds


def _marker(quantization: str) -> str:
    """Path of the file that says the kernels were warmed for ``quantization``: keyed by the numba
    and Python versions and the kernels' sources (any edit invalidates numba's cache too)."""
    import numba

    from lsr.index import kernels

    h = hashlib.sha1(f"{numba.__version__} {sys.version}".encode())
    kdir = os.path.dirname(kernels.__file__)
    for name in sorted(os.listdir(kdir)):
        if name.endswith(".py"):
            st = os.stat(os.path.join(kdir, name))
            h.update(f"{name} {st.st_size} {st.st_mtime_ns}".encode())
    base = os.environ.get("LSR_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "lsr")
    return os.path.join(base, "warm", f"{h.hexdigest()[:16]}-{quantization}")


def needs_warmup(quantizations: Sequence[str] = fmt.QUANTIZATIONS) -> list[str]:
    """The quantizations among ``quantizations`` whose kernels :func:`mark_warm` has not recorded
    (``LSR_NO_WARMUP=1``: none, never warm automatically)."""
    if os.environ.get("LSR_NO_WARMUP", "") not in ("", "0"):
        return []
    return [q for q in quantizations if not os.path.exists(_marker(q))]


def mark_warm(seconds: dict[str, float]) -> None:
    """Record that the kernels of each quantization in ``seconds`` are in numba's cache (best
    effort: a read-only home only means warming again next time)."""
    for q, s in seconds.items():
        path = _marker(q)
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as f:
                f.write(f"{s}\n")
        except OSError:
            pass
