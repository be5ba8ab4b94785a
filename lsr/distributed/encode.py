"""Encoding on Ray: Ray Data hands corpus blocks to a pool of encoder actors that write vector parts.

Output directory layout::

    part-00000.jsonl   vectors of block 0 (the `lsr encode` format, lines in corpus order)
    part-00000.json    its marker: {"key", "n", "nnz", "max_weight"}, written after the part
    ...
    parts.json         the list of parts, the encoder config and the totals

A block's ``key`` hashes its input bytes with the encoder config, so a rerun skips every block
whose part is already written for the same input and encoder (an interrupted run resumes; a
changed corpus block or encoder re-encodes). Inside a block texts are encoded in chunks of
``lsr encode``'s size, so concatenating the parts gives exactly the file ``lsr encode`` writes.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import numpy as np

from lsr.distributed import cpu_count, gpu_count, init_ray
from lsr.distributed.blocks import Block, block_texts, plan_blocks
from lsr.errors import LsrError

PARTS_FILE = "parts.json"
PARTS_FORMAT = "lsr-vector-parts"
ENCODE_CHUNK = 256  # texts per encode call, as in `lsr encode` (same batches -> same floats)
DEFAULT_BLOCK_SIZE = 4096


def part_name(no: int) -> str:
    return f"part-{no:05d}.jsonl"


def block_key(block: Block, encoder_config: dict[str, Any], queries: bool) -> str:
    """Content hash of a block's input and of what encodes it."""
    h = hashlib.sha256(block.sha256.encode())
    h.update(json.dumps(encoder_config, sort_keys=True, default=str).encode())
    h.update(b"queries" if queries else b"documents")
    return h.hexdigest()


def _marker(out_dir: str, no: int) -> str:
    return os.path.join(out_dir, part_name(no)[: -len(".jsonl")] + ".json")


def read_done(out_dir: str, no: int, key: str) -> dict[str, Any] | None:
    """The marker of part ``no`` if that part is complete for ``key``, else None."""
    try:
        with open(_marker(out_dir, no), encoding="utf-8") as f:
            m = json.load(f)
    except (OSError, ValueError):
        return None
    part = os.path.join(out_dir, part_name(no))
    if m.get("key") != key or not os.path.isfile(part) or os.path.getsize(part) != m.get("bytes"):
        return None
    return m


class EncodeActor:
    """A Ray Data actor: loads the encoder once, then encodes whole blocks into part files."""

    def __init__(
        self, model: str, options: dict[str, Any], queries: bool, out_dir: str, threads: int
    ) -> None:
        import torch

        import lsr

        torch.set_num_threads(max(1, threads))
        self.encoder = lsr.load_encoder(model, **options)
        if torch.cuda.is_available() and hasattr(self.encoder, "to"):
            self.encoder.to("cuda")  # encoders that can move run on the actor's GPU
        self.queries = queries
        self.out_dir = out_dir

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from lsr.vectors import VectorWriter

        out: dict[str, list] = {"no": [], "n": [], "nnz": []}
        encode = self.encoder.encode_queries if self.queries else self.encoder.encode_documents
        for raw, key in zip(batch["block"], batch["key"], strict=True):
            block = Block(**json.loads(str(raw)))
            recs = block_texts(block)
            path = os.path.join(self.out_dir, part_name(block.no))
            tmp = f"{path}.tmp-{os.getpid()}"
            nnz, top = 0, 0.0
            with VectorWriter(tmp) as w:
                for s in range(0, len(recs), ENCODE_CHUNK):
                    chunk = recs[s : s + ENCODE_CHUNK]
                    texts = [r.text if self.queries else r.full_text for r in chunk]
                    b = encode(texts)
                    w.write(b, ids=[r.id for r in chunk], contents=texts)
                    nnz += b.nnz
                    if b.nnz:
                        top = max(top, float(b.data.max()))
            os.replace(tmp, path)
            marker = {
                "key": str(key),
                "n": len(recs),
                "nnz": nnz,
                "max_weight": top,
                "bytes": os.path.getsize(path),
            }
            with open(_marker(self.out_dir, block.no) + ".tmp", "w", encoding="utf-8") as f:
                json.dump(marker, f)
            os.replace(_marker(self.out_dir, block.no) + ".tmp", _marker(self.out_dir, block.no))
            out["no"].append(block.no)
            out["n"].append(len(recs))
            out["nnz"].append(nnz)
        return {k: np.asarray(v, np.int64) for k, v in out.items()}


def encode_on_ray(
    input_path: str | os.PathLike,
    output_dir: str | os.PathLike,
    model: str,
    *,
    options: dict[str, Any] | None = None,
    queries: bool = False,
    address: str | None = None,
    actors: int | None = None,
    threads: int | None = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Encode a BEIR corpus (or queries) file on Ray into vector parts under ``output_dir``;
    returns the ``parts.json`` record. Blocks already encoded (same content hash) are skipped.

    ``actors`` encoder actors (default: one per GPU, or cores / ``threads`` on CPUs), each with
    ``threads`` torch threads (default: cores / actors) and ``num_gpus=1`` when the cluster has GPUs.
    ``block_size`` (records per block) is rounded up to a multiple of 256."""
    import lsr

    ray = init_ray(address)
    options = dict(options or {})
    block_size = -(-max(1, block_size) // ENCODE_CHUNK) * ENCODE_CHUNK
    out_dir = os.path.abspath(os.fspath(output_dir))
    if os.path.isfile(out_dir):
        raise LsrError(f"{out_dir} is a file: with --ray the output is a directory of vector parts")
    os.makedirs(out_dir, exist_ok=True)
    config = lsr.load_encoder(model, **options).config()  # fails here, once, on a bad model or option
    blocks = plan_blocks(input_path, block_size)
    if not blocks:
        raise LsrError(f"{input_path}: the file is empty")
    keys = {b.no: block_key(b, config, queries) for b in blocks}
    todo = [b for b in blocks if read_done(out_dir, b.no, keys[b.no]) is None]
    if todo:
        gpus = gpu_count()
        cpus = cpu_count()
        if actors is not None and actors < 1:
            raise LsrError(f"actors must be >= 1, got {actors}")
        if threads is not None and threads < 1:
            raise LsrError(f"threads must be >= 1, got {threads}")
        n_actors = actors or (gpus if gpus else max(1, cpus // (threads or 1)))
        n_actors = min(n_actors, len(todo))
        n_threads = threads or max(1, cpus // n_actors)
        import logging

        logging.getLogger("ray.data").setLevel(logging.WARNING)  # one progress bar, ours
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False  # ours counts documents
        # one Ray Data block per corpus block, so actors pull blocks as they free up; the items are
        # made in the driver, so every CPU can go to the actors (no read tasks competing for them)
        ds = ray.data.from_items(
            [{"block": json.dumps(b.to_dict()), "key": keys[b.no]} for b in todo],
            override_num_blocks=len(todo),
        )
        ds = ds.map_batches(
            EncodeActor,
            fn_constructor_kwargs={
                "model": model,
                "options": options,
                "queries": queries,
                "out_dir": out_dir,
                "threads": n_threads,
            },
            batch_size=1,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=n_actors),
            num_cpus=0 if gpus else min(n_threads, cpus),
            num_gpus=1 if gpus else 0,
        )
        from tqdm.auto import tqdm

        with tqdm(
            total=sum(b.n for b in todo), desc="encoding on Ray", unit="text", disable=not show_progress
        ) as bar:
            for row in ds.iter_rows():
                bar.update(int(row["n"]))
    parts = []
    for b in blocks:
        m = read_done(out_dir, b.no, keys[b.no])
        if m is None:
            raise LsrError(f"block {b.no} of {input_path} was not encoded (an actor failed?)")
        parts.append({"file": part_name(b.no), **m})
    record = {
        "format": PARTS_FORMAT,
        "format_version": 1,
        "source": os.path.abspath(os.fspath(input_path)),
        "encoder": config,
        "queries": queries,
        "block_size": block_size,
        "n_docs": int(sum(p["n"] for p in parts)),
        "nnz": int(sum(p["nnz"] for p in parts)),
        "max_weight": float(max((p["max_weight"] for p in parts), default=0.0)),
        "encoded_now": len(todo),
        "parts": parts,
    }
    with open(os.path.join(out_dir, PARTS_FILE), "w", encoding="utf-8") as f:
        json.dump(record, f, indent=1)
    return record


def read_parts(path: str | os.PathLike) -> dict[str, Any]:
    """The ``parts.json`` of a vector parts directory (as written by :func:`encode_on_ray`)."""
    p = os.path.join(os.fspath(path), PARTS_FILE)
    try:
        with open(p, encoding="utf-8") as f:
            rec = json.load(f)
    except FileNotFoundError:
        raise LsrError(
            f"{path}: no {PARTS_FILE} (not a directory of vector parts from `lsr encode --ray`)"
        ) from None
    except (OSError, ValueError) as e:
        raise LsrError(f"{p}: unreadable ({e})") from None
    if rec.get("format") != PARTS_FORMAT:
        raise LsrError(f"{p}: not an lsr vector parts file")
    return rec
