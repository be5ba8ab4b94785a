"""Building a sharded index on Ray: one shard per group of contiguous vector blocks, each built by
a Ray task, then ``shards.json`` (:mod:`lsr.index.shards`) with the global statistics.

The shards share one vocabulary (the encoder's, or the union of the blocks' tokens in order of
first appearance: what ``build_index`` grows over the same vectors) and one quantization scale
(from the global maximum weight), so the sharded index scores every document exactly as one index
over all documents would, and its shards split build order contiguously."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from lsr.distributed import init_ray, ray_get
from lsr.distributed.blocks import Block, iter_block, plan_blocks
from lsr.errors import LsrError
from lsr.vectors import SparseBatch, Vocabulary


def block_vector_chunks(block: Block, vocab: Vocabulary, chunk_size: int = 10_000) -> Iterator[SparseBatch]:
    """The vectors of ``block`` as SparseBatch chunks over ``vocab`` (a token outside it is an error),
    with ids and the records' "content" as stored text (as :func:`lsr.vectors.iter_vector_chunks`)."""
    from lsr.vectors import _dicts_to_csr, _record_id

    ids: list[str] = []
    vecs: list[dict] = []
    contents: list[str] = []

    def flush() -> SparseBatch:
        indptr, indices, data, _ = _dicts_to_csr(
            vecs, vocab, False, True, lambda i: f"{block.path} block {block.no}"
        )
        docs = [("", c) for c in contents] if any(contents) else None
        b = SparseBatch(indptr, indices, data, vocab, list(ids), documents=docs)
        ids.clear()
        vecs.clear()
        contents.clear()
        return b

    for lineno, obj in iter_block(block):
        vec = obj.get("vector")
        if not isinstance(vec, dict):
            raise LsrError(f"{block.path} (block {block.no}) line {lineno}: no 'vector' object")
        ids.append(_record_id(obj, block.path, lineno))
        vecs.append(vec)
        c = obj.get("content")
        contents.append(c if isinstance(c, str) else "")
        if len(ids) >= chunk_size:
            yield flush()
    if ids:
        yield flush()


def scan_block(block: Block) -> tuple[list[str], int, float]:
    """(tokens in order of first appearance, records, max weight) of a vector block."""
    seen: dict[str, None] = {}
    n, top = 0, 0.0
    for _, obj in iter_block(block):
        vec = obj.get("vector")
        if not isinstance(vec, dict):
            raise LsrError(f"{block.path} (block {block.no}): a record without a 'vector' object")
        n += 1
        for t, w in vec.items():
            seen.setdefault(t, None)
            if isinstance(w, (int, float)) and w > top:
                top = w
    # as float32, the precision the builder holds weights in (else a shard's own maximum, a float32,
    # can exceed the "global" one parsed as float64, and the scales would differ)
    return list(seen), n, float(np.float32(top))


def group_blocks(blocks: Sequence[Block], shards: int) -> list[list[Block]]:
    """Split ``blocks`` (in order) into ``shards`` contiguous groups of near-equal document counts."""
    if shards < 1:
        raise LsrError(f"--shards must be >= 1, got {shards}")
    if len(blocks) < shards and any(b.end < 0 for b in blocks):
        raise LsrError(f"a .gz input is read as one block: decompress it to build {shards} shards")
    if len(blocks) < shards:
        raise LsrError(
            f"{shards} shards need at least {shards} blocks, the input has {len(blocks)}: lower --block-size"
        )
    total = sum(b.n for b in blocks)
    groups: list[list[Block]] = [[] for _ in range(shards)]
    done = 0
    g = 0
    for i, b in enumerate(blocks):
        left_blocks, left_groups = len(blocks) - i, shards - g
        # move on when this group holds its share, or when the rest must each get a block
        if groups[g] and g < shards - 1 and (done >= total * (g + 1) / shards or left_blocks < left_groups):
            g += 1
        groups[g].append(b)
        done += b.n
    return groups


def _build_task(
    blocks: list[dict], out_dir: str, tokens: list[str], max_weight: float, kwargs: dict[str, Any]
) -> str:
    import numba

    from lsr.index.shards import build_shard

    numba.set_num_threads(1)
    vocab = Vocabulary(tokens)

    def chunks() -> Iterator[SparseBatch]:
        for d in blocks:
            yield from block_vector_chunks(Block(**d), vocab)

    return build_shard(chunks(), out_dir, vocab, max_weight, **kwargs)


def vector_blocks(source: str, block_size: int) -> tuple[list[Block], dict[str, Any] | None]:
    """Blocks of a vector source: a parts directory from ``lsr encode --ray`` (one block per part;
    returns its parts.json too) or a JSONL vector file (cut into blocks of ``block_size`` lines)."""
    from lsr.distributed.encode import read_parts

    if os.path.isdir(source):
        rec = read_parts(source)
        blocks = []
        for i, p in enumerate(rec["parts"]):
            path = os.path.join(os.path.abspath(source), p["file"])
            if not os.path.isfile(path):
                raise LsrError(f"{source}: part {p['file']} is missing")
            blocks.append(Block(i, path, 0, os.path.getsize(path), int(p["n"]), p.get("key", "")))
        return blocks, rec
    return plan_blocks(source, block_size), None


def shard_key(
    blocks: Sequence[Block], tokens: Sequence[str], max_weight: float, kwargs: dict[str, Any]
) -> str:
    """Content hash of everything a shard is built from: its blocks' hashes, the vocabulary, the
    global maximum weight, the build settings and the lsr version."""
    import hashlib
    import json

    from lsr import __version__

    h = hashlib.sha256()
    for b in blocks:
        h.update(f"{b.sha256}:{b.n}:{b.end};".encode())
    h.update("\x00".join(tokens).encode())
    h.update(json.dumps([max_weight, kwargs, __version__], sort_keys=True, default=str).encode())
    return h.hexdigest()


def _read_key(root: str, name: str) -> str | None:
    if not os.path.isdir(os.path.join(root, name)):
        return None
    try:
        with open(os.path.join(root, name + ".key"), encoding="utf-8") as f:
            return f.read().strip()
    except OSError:
        return None


def build_on_ray(
    source: str | os.PathLike,
    output_dir: str | os.PathLike,
    shards: int,
    *,
    model: str | None = None,
    encoder_options: dict[str, Any] | None = None,
    address: str | None = None,
    actors: int | None = None,
    threads: int | None = None,
    block_size: int = 4096,
    quantization: str = "float32",
    methods: Sequence[str] = ("exact", "maxscore", "bmp", "seismic"),
    reorder: bool | None = None,
    bmp: dict[str, Any] | None = None,
    seismic: dict[str, Any] | None = None,
    overwrite: bool = False,
    show_progress: bool = True,
) -> str:
    """Build a sharded index on Ray from a BEIR corpus (encoded on Ray with ``model`` into
    ``OUTPUT/vectors``, resumable), a parts directory or a JSONL vector file; returns the root."""
    from lsr.index.parts import check_methods
    from lsr.index.shards import SHARDS_FILE, shard_dir_name, write_shards_manifest

    ray = init_ray(address)
    source = os.fspath(source)
    root = os.path.abspath(os.fspath(output_dir))
    if os.path.isfile(os.path.join(root, SHARDS_FILE)) and not overwrite:
        raise LsrError(f"{root} already holds a sharded index (pass --overwrite to replace it)")
    if os.path.exists(root) and not os.path.isdir(root):
        raise LsrError(f"{root} is a file")
    methods = check_methods(methods)
    os.makedirs(root, exist_ok=True)
    encoder_config = None
    tokens: list[str] | None = None
    if model is not None:
        import lsr
        from lsr.distributed.encode import encode_on_ray
        from lsr.texts import sniff_jsonl

        if os.path.isdir(source) or sniff_jsonl(source) != "text":
            raise LsrError(f"{source} already holds vectors: --model applies to a text corpus only")
        encoder = lsr.load_encoder(model, **(encoder_options or {}))
        encoder_config = encoder.config()
        tokens = list(encoder.vocab.tokens)
        encode_on_ray(
            source,
            os.path.join(root, "vectors"),
            model,
            options=encoder_options,
            address=address,
            actors=actors,
            threads=threads,
            block_size=block_size,
            show_progress=show_progress,
        )
        source = os.path.join(root, "vectors")
    elif not os.path.isdir(source):
        from lsr.texts import sniff_jsonl

        if sniff_jsonl(source) == "text":
            raise LsrError(f"{source} holds texts (a BEIR corpus): pass --model to encode them")
    blocks, parts = vector_blocks(source, block_size)
    if parts is not None and encoder_config is None:
        encoder_config = parts.get("encoder")
    groups = group_blocks(blocks, shards)
    scans = ray_get([ray.remote(scan_block).options(num_cpus=1).remote(b) for b in blocks])
    if tokens is None:
        vocab = Vocabulary()
        for toks, _, _ in scans:
            for t in toks:
                vocab.add(t)
        tokens = list(vocab.tokens)
    max_weight = max((s[2] for s in scans), default=0.0)
    kwargs = {
        "quantization": quantization,
        "encoder_config": encoder_config,
        "methods": methods,
        "reorder": reorder,
        "bmp": bmp,
        "seismic": seismic,
        "source": source,
    }
    keys = [shard_key(g, tokens, max_weight, kwargs) for g in groups]
    names = [shard_dir_name(i) for i in range(len(groups))]
    if os.path.exists(os.path.join(root, SHARDS_FILE)):
        os.remove(os.path.join(root, SHARDS_FILE))
    for name in os.listdir(root):  # shards of a previous build that this one does not have
        if name.startswith("shard-") and name.split(".")[0] not in names:
            p = os.path.join(root, name)
            shutil.rmtree(p) if os.path.isdir(p) else os.remove(p)
    # resumable: a shard whose key file matches was built from the same blocks with the same settings
    todo = [i for i in range(len(groups)) if _read_key(root, names[i]) != keys[i]]
    for i in todo:
        shutil.rmtree(os.path.join(root, names[i]), ignore_errors=True)
        if os.path.exists(os.path.join(root, names[i] + ".key")):
            os.remove(os.path.join(root, names[i] + ".key"))
    tok_ref = ray.put(tokens)
    task = ray.remote(_build_task).options(num_cpus=1)
    refs = {
        task.remote(
            [b.to_dict() for b in groups[i]], os.path.join(root, names[i]), tok_ref, max_weight, kwargs
        ): i
        for i in todo
    }
    from tqdm.auto import tqdm

    pending = list(refs)
    with tqdm(total=len(refs), desc="building shards on Ray", unit="shard", disable=not show_progress) as bar:
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            ray_get(ready)  # raises the task's error (an LsrError keeps its message)
            i = refs[ready[0]]
            with open(os.path.join(root, names[i] + ".key"), "w", encoding="utf-8") as f:
                f.write(keys[i])
            bar.update(len(ready))
    write_shards_manifest(root, [shard_dir_name(i) for i in range(len(groups))])
    return root
