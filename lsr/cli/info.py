"""``lsr info DIR``: what an index holds."""

from __future__ import annotations

import json
import os
from typing import Any

from lsr.cli.common import human_bytes


def describe(index: Any) -> dict[str, Any]:
    m = index.manifest
    files = {f: os.path.getsize(os.path.join(index.path, f)) for f in sorted(os.listdir(index.path))}
    lengths = index.doc_lengths
    return {
        "path": index.path,
        "format": m["format"],
        "format_version": m["format_version"],
        "created": m.get("created"),
        "lsr_version": m.get("lsr_version"),
        "n_docs": index.n_docs,
        "n_terms": index.n_terms,
        "n_terms_used": int((index.offsets[1:] > index.offsets[:-1]).sum()),
        "n_postings": index.n_postings,
        "avg_doc_nnz": float(lengths.mean()) if len(lengths) else 0.0,
        "quantization": m["quantization"],
        "encoder": m.get("encoder"),
        "source": m.get("source"),
        "build_seconds": m.get("build_seconds"),
        "methods": list(index.methods),
        "parts": index.parts,
        "size_bytes": sum(files.values()),
        "files": files,
    }


def run(args: Any) -> int:
    from lsr.index import SegmentedIndex, open_index

    index = open_index(args.index)
    from lsr.index.living_shards import LivingShardedIndex

    if isinstance(index, LivingShardedIndex):  # shards that took writes: per shard its segments
        return _living_sharded(index, args.json)
    if hasattr(index, "shards"):  # a sharded index: shards.json and one line per shard
        return _sharded(index, args.json)
    if isinstance(index, SegmentedIndex):
        from lsr.cli.living import describe_living, print_segments

        if args.json:
            print(json.dumps(describe_living(index), indent=2))
        else:
            print(f"index       {index.path} (a living index)")
            print_segments(index)
        return 0
    info = describe(index)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    q = info["quantization"]
    enc = info["encoder"]
    print(f"index       {info['path']}")
    print(
        f"format      {info['format']} v{info['format_version']} (lsr {info['lsr_version']}, {info['created']})"
    )
    print(f"documents   {info['n_docs']:,}  ({info['avg_doc_nnz']:.1f} non-zeros on average)")
    print(f"terms       {info['n_terms']:,} in the vocabulary, {info['n_terms_used']:,} with postings")
    print(f"postings    {info['n_postings']:,}")
    print(f"impacts     {q['dtype']} (scale {q['scale']:.6g}, max weight {q.get('max_weight', 0):.4g})")
    if enc:
        print(
            f"encoder     {enc.get('kind')} {enc.get('model')} "
            + ", ".join(f"{k}={v}" for k, v in enc.items() if k not in ("kind", "model", "model_path"))
        )
    else:
        print("encoder     none recorded (built from vectors)")
    print(f"source      {info['source']}  (built in {info['build_seconds']} s)")
    print(f"methods     {', '.join(info['methods'])}")
    parts = info["parts"]
    if parts.get("doc_order"):
        print(f"reordered   graph bisection {parts.get('reorder')}")
    from lsr.index.methods import PARTS

    for name in PARTS:  # every registered part with build parameters
        if isinstance(parts.get(name), dict):
            print(f"{name:<11} " + ", ".join(f"{k}={v}" for k, v in parts[name].items()))
    if parts.get("seconds"):
        print("part build  " + ", ".join(f"{k} {v:.1f} s" for k, v in parts["seconds"].items()))
    print("segments    1 (generation 0: a plain index; `lsr add` / `lsr delete` make it a living one)")
    print(f"size        {human_bytes(info['size_bytes'])}")
    for f, size in info["files"].items():
        print(f"  {f:<24} {human_bytes(size):>10}")
    return 0


def _sharded(index: Any, as_json: bool) -> int:
    """``lsr info`` of a sharded index root (:mod:`lsr.index.shards`)."""
    m = index.manifest
    info = {
        "path": index.path,
        "format": m["format"],
        "n_docs": index.n_docs,
        "n_terms": index.n_terms,
        "n_postings": index.n_postings,
        "quantization": m["quantization"],
        "encoder": m.get("encoder"),
        "methods": list(index.methods),
        "shards": m["shards"],
        "size_bytes": index.size_bytes(),
    }
    if as_json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"index       {info['path']} ({len(info['shards'])} shards, global statistics in shards.json)")
    print(f"documents   {info['n_docs']:,}")
    print(f"postings    {info['n_postings']:,} over {info['n_terms']:,} terms ({info['quantization']})")
    print(f"methods     {', '.join(info['methods'])}")
    for e in info["shards"]:
        print(
            f"  {e['dir']:<12} docs {e['first_doc']:,} .. {e['first_doc'] + e['n_docs'] - 1:,}  ({e['n_postings']:,} postings)"
        )
    print(f"size        {human_bytes(info['size_bytes'])}")
    return 0


def _living_sharded(index: Any, as_json: bool) -> int:
    """``lsr info`` of a sharded index whose shards took writes: per shard its generation, live
    documents and segments (``shards.json`` keeps the build-time counts; these are the live ones)."""
    from lsr.cli.living import print_segments

    info = {
        "path": index.path,
        "format": index.manifest["format"],
        "n_docs": index.n_live_docs,
        "n_terms": index.n_terms,
        "quantization": {"dtype": index.quantization, "scale": float(index.scale)},
        "encoder": index.encoder_config,
        "methods": list(index.methods),
        "routing": index.manifest.get("routing"),
        "generation": index.generation,
        "pending_merges": index.pending_merges,
        "fields": index.fields,
        "shards": index.info(),
        "size_bytes": index.size_bytes(),
    }
    if as_json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"index       {info['path']} ({len(info['shards'])} shards of living indexes, writes routed by id)")
    print(f"documents   {info['n_docs']:,} live over all shards")
    print(f"terms       {info['n_terms']:,} ({info['quantization']['dtype']})")
    print(f"methods     {', '.join(info['methods'])}")
    for shard, e in zip(index.shards, info["shards"], strict=True):
        print(f"{e['dir']}")
        print_segments(shard)
    print(f"size        {human_bytes(info['size_bytes'])}")
    return 0
