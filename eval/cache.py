"""The encoding cache of ``lsr eval``: a corpus is encoded once per (encoder, corpus) pair.

Entries live under ``<cache dir>/encodings/<key>/`` (``vectors.npz`` and ``meta.json``), keyed by the
encoder's settings (without its local path), a sha256 over its model files and the corpus file's
sha256 (:func:`corpus_cache_key`), so a second run with the same model and data does not re-encode.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from lsr.errors import LsrError

if TYPE_CHECKING:
    from lsr.eval.datasets import EvalDataset

CACHE_VERSION = 1


def default_cache_dir() -> str:
    """``$LSR_CACHE_DIR`` or ``~/.cache/lsr/eval``."""
    return os.environ.get("LSR_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "lsr", "eval")


def sha256_file(path: str) -> str:
    """Hex sha256 of a file's bytes (read in 1 MiB chunks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def encoder_fingerprint(encoder: Any) -> dict[str, Any]:
    """The encoder's settings (without its local path) and a sha256 over its model files."""
    cfg = {k: v for k, v in encoder.config().items() if k != "model_path"}
    h = hashlib.sha256()
    path = encoder.config().get("model_path")
    if path and os.path.isdir(path):
        for name in sorted(os.listdir(path)):
            p = os.path.join(path, name)
            if os.path.isfile(p):
                h.update(name.encode() + b"\0" + sha256_file(p).encode())
    else:
        h.update(json.dumps(cfg, sort_keys=True).encode())
    return {"config": cfg, "weights_sha256": h.hexdigest()}


def corpus_cache_key(encoder_fp: dict[str, Any], corpus_sha256: str) -> str:
    """The cache key of one (encoder, corpus) pair: it names the encoding and the index built from it."""
    blob = json.dumps({"v": CACHE_VERSION, "encoder": encoder_fp, "corpus": corpus_sha256}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def encode_corpus_cached(
    encoder: Any,
    ds: EvalDataset,
    cache_dir: str,
    batch_size: int = 256,
    show_progress: bool = True,
    encoder_fp: dict[str, Any] | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Encoded corpus (a SparseBatch with ids) from the cache, or encode it and store it.

    Returns (batch, info) with ``cached``, ``seconds`` (of the encoding that made the cache entry),
    ``docs_per_second`` and ``path``.
    """
    from lsr.corpus import encode_corpus
    from lsr.vectors import SparseBatch, concat_batches

    enc_fp = encoder_fp or encoder_fingerprint(encoder)
    key = corpus_cache_key(enc_fp, ds.fingerprints["corpus_sha256"])
    entry = os.path.join(cache_dir, "encodings", key)
    arrays, meta_path = os.path.join(entry, "vectors.npz"), os.path.join(entry, "meta.json")
    if os.path.isfile(arrays) and os.path.isfile(meta_path):
        with open(meta_path, encoding="utf-8") as f:
            meta = json.load(f)
        z = np.load(arrays, allow_pickle=False)
        if int(z["vocab_size"]) != len(encoder.vocab):
            raise LsrError(f"{entry}: cached vectors do not match the encoder's vocabulary (delete it)")
        batch = SparseBatch(z["indptr"], z["indices"], z["data"], encoder.vocab, z["ids"].tolist())
        return batch, {**meta, "cached": True, "path": entry}
    n_docs = ds.n_docs
    bar = None
    if show_progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_docs, desc="encoding corpus", unit="doc")
    chunks = []
    t0 = time.perf_counter()
    for c in encode_corpus(encoder, ds.corpus, batch_size=batch_size):
        c.documents = None
        chunks.append(c)
        if bar is not None:
            bar.update(len(c))
    seconds = time.perf_counter() - t0
    if bar is not None:
        bar.close()
    if chunks:
        batch = concat_batches(chunks)
        batch.ids = [i for c in chunks for i in c.ids]
    else:
        raise LsrError(f"{ds.corpus}: the corpus has no documents")
    meta = {
        "key": key,
        "encoder": enc_fp,
        "corpus": ds.corpus,
        "corpus_sha256": ds.fingerprints["corpus_sha256"],
        "documents": len(batch),
        "postings": int(batch.indptr[-1]),
        "seconds": seconds,
        "docs_per_second": len(batch) / seconds if seconds > 0 else None,
        "torch_threads": torch_threads(),
    }
    tmp = entry + f".tmp{os.getpid()}"
    os.makedirs(tmp, exist_ok=True)
    np.savez(
        os.path.join(tmp, "vectors.npz"),
        indptr=batch.indptr,
        indices=batch.indices,
        data=batch.data,
        ids=np.array(batch.ids, dtype=str),
        vocab_size=np.int64(len(encoder.vocab)),
    )
    with open(os.path.join(tmp, "meta.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2)
    shutil.rmtree(entry, ignore_errors=True)
    os.makedirs(os.path.dirname(entry), exist_ok=True)
    os.replace(tmp, entry)
    return batch, {**meta, "cached": False, "path": entry}


def torch_threads() -> int | None:
    """torch's intra-op thread count now (None when torch cannot say)."""
    try:
        import torch

        return int(torch.get_num_threads())
    except Exception:  # pragma: no cover
        return None
