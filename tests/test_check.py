"""``lsr check`` / :func:`lsr.index.check.check_index`: checksums and structural invariants.

The index is built with every part (reordered, forward, BMP with dense rows, Seismic) and a
document store, so that every file kind of the format is covered.
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
from test_methods import SMALL_PARTS, topical_collection

from lsr.cli.main import main
from lsr.index import build_index, open_index
from lsr.index.check import check_index, inspect_index
from lsr.vectors import SparseBatch

from conftest import vocab_of


@pytest.fixture(scope="module")
def full_index(tmp_path_factory):
    docs = topical_collection(900, 120, 4)
    b = SparseBatch.from_scipy(docs, vocab_of(120), [f"d{i}" for i in range(docs.shape[0])])
    b.documents = [(f"title {i}", f"text {i}") for i in range(docs.shape[0])]
    path = build_index(b, tmp_path_factory.mktemp("check") / "ix", quantization="uint8", **SMALL_PARTS)
    idx = open_index(path)
    assert idx.methods == ("exact", "maxscore", "bmp", "seismic") and idx.has_store
    assert idx.parts["bmp"]["n_dense"] > 0  # dense BMP rows are covered too
    return path


@pytest.fixture
def index_copy(full_index, tmp_path):
    dst = tmp_path / "ix"
    shutil.copytree(full_index, dst)
    return str(dst)


def test_sound_index_checks_clean(full_index):
    rep = inspect_index(full_index)
    assert rep.problems == [] and rep.notes == []
    n_files = len(os.listdir(full_index))
    assert rep.files_checked == n_files - 1  # every file but the manifest, which checks itself
    m = json.load(open(os.path.join(full_index, "manifest.json")))
    assert set(m["checksums"]["files"]) == set(os.listdir(full_index)) - {"manifest.json"}
    assert m["checksums"]["algorithm"] == "crc32" and "manifest_crc32" in m


def test_a_flipped_byte_in_any_file_is_found(index_copy):
    names = sorted(os.listdir(index_copy))
    assert "store.jsonl" in names and "bmp_dense_starts.npy" in names and len(names) == 29  # seismic: 9
    missed = []
    for name in names:
        path = os.path.join(index_copy, name)
        data = open(path, "rb").read()
        for pos in sorted({0, len(data) // 2, len(data) - 1}):
            damaged = bytearray(data)
            damaged[pos] ^= 0x10
            open(path, "wb").write(bytes(damaged))
            if not check_index(index_copy):
                missed.append(f"{name}@{pos}")
        open(path, "wb").write(data)
    assert missed == []
    assert check_index(index_copy) == []


def test_cli_check_exit_codes(index_copy, capsys):
    assert main(["check", index_copy]) == 0
    err = capsys.readouterr().err
    assert "OK" in err and "900 documents" in err and "checksums checked" in err
    path = os.path.join(index_copy, "doc_lengths.npy")
    arr = np.load(path)
    arr[5] += 1
    np.save(path, arr)
    assert main(["check", index_copy]) == 1
    out, err = capsys.readouterr()
    assert "doc_lengths.npy: checksum mismatch" in out
    assert "doc_lengths.npy does not match the postings" in out
    assert "DAMAGED" in err
    assert main(["check", os.path.join(index_copy, "nope")]) == 2
    assert "no such index directory" in capsys.readouterr().err


def _strip_checksums(path: str) -> None:
    """Make an index look like one built before checksums existed."""
    mp = os.path.join(path, "manifest.json")
    m = json.load(open(mp))
    del m["checksums"], m["manifest_crc32"]
    json.dump(m, open(mp, "w"))


def test_old_index_without_checksums_structure_checked(index_copy):
    _strip_checksums(index_copy)
    rep = inspect_index(index_copy)
    assert rep.problems == []
    assert any("checksums absent" in n for n in rep.notes)
    open_index(index_copy)  # still readable
    # without checksums, structural damage is still found
    p = os.path.join(index_copy, "postings_impacts.npy")
    arr = np.load(p)
    arr[17] = 0
    np.save(p, arr)
    problems = check_index(index_copy)
    assert any("postings_impacts.npy[17]" in x and "> 0" in x for x in problems)


@pytest.mark.parametrize(
    "name, change, expected",
    [
        ("doc_order", lambda a: a.__setitem__(3, a[4]), "not a permutation"),
        ("term_max", lambda a: a.__setitem__(int(np.argmax(a)), a.max() * 2), "term_max.npy["),
        ("doc_ids", lambda a: a.__setitem__(1, a[0]), "duplicate document id"),
        ("bmp_max", lambda a: a.__setitem__(0, a[0] // 2), "bmp_max.npy does not match"),
        ("forward_terms", lambda a: a.__setitem__(slice(0, 2), a[0:2][::-1].copy()), "not ascending"),
    ],
)
def test_structural_invariants_without_checksums(index_copy, name, change, expected):
    _strip_checksums(index_copy)
    p = os.path.join(index_copy, f"{name}.npy")
    arr = np.load(p)
    change(arr)
    np.save(p, arr)
    assert any(expected in x for x in check_index(index_copy)), check_index(index_copy)


def test_stray_and_missing_files(index_copy):
    open(os.path.join(index_copy, "notes.txt"), "w").write("mine")
    assert any("notes.txt: not part of this index" in x for x in check_index(index_copy))
    os.remove(os.path.join(index_copy, "notes.txt"))
    os.remove(os.path.join(index_copy, "bmp_max.npy"))
    assert any("bmp_max.npy: listed in the manifest but missing" in x for x in check_index(index_copy))


def test_older_v2_index_without_n_dense_opens(index_copy):
    """Indexes built before BMP's dense rows record no n_dense (and have none): still opened."""
    mp = os.path.join(index_copy, "manifest.json")
    m = json.load(open(mp))
    del m["checksums"], m["manifest_crc32"]
    m["parts"]["bmp"]["n_dense"] = 0
    for name in ("bmp_dense_rows", "bmp_dense_max", "bmp_dense_starts"):
        p = os.path.join(index_copy, f"{name}.npy")
        arr = np.load(p)
        np.save(p, np.full_like(arr, -1) if name == "bmp_dense_rows" else arr[:0])
    del m["parts"]["bmp"]["n_dense"]
    json.dump(m, open(mp, "w"))
    from lsr.index.check import validate

    validate(index_copy, m)  # no KeyError, no refusal of the dense-row layout it does not have


# -- living and sharded indexes ------------------------------------------------------------------
def _living(tmp_path, merged: bool = False) -> str:
    """A living index: a base build, two commits of added documents with metadata (the second
    with parts), deletes in the base and a segment; force-merged when ``merged``."""
    docs = topical_collection(300, 60, 3)
    vocab = vocab_of(60)
    path = build_index(
        SparseBatch.from_scipy(docs[:100], vocab, [f"d{i}" for i in range(100)]),
        tmp_path / "living",
        **SMALL_PARTS,
    )
    ix = open_index(path, writable=True, parts_min_docs=80)
    for lo, hi in ((100, 150), (150, 300)):
        batch = SparseBatch.from_scipy(docs[lo:hi], vocab, [f"d{i}" for i in range(lo, hi)])
        ix.add(batch, metadata=[{"color": ["red", "blue"][i % 2], "n": i} for i in range(lo, hi)])
        ix.commit()
    ix.delete(["d3", "d120", "d200"])
    ix.commit()
    if merged:
        ix.merge(max_segments=1)
    ix.close()
    return str(path)


@pytest.mark.parametrize("merged", [False, True])
def test_living_index_checks_clean(tmp_path, merged, capsys):
    # before: the generation files, live bitmaps, segments folder and metadata columns were all
    # "not part of this index" and a sound living index was reported DAMAGED
    path = _living(tmp_path, merged)
    rep = inspect_index(path)
    assert rep.problems == [], rep.problems
    assert "(3 deleted)" in rep.summary or merged
    assert main(["check", path]) == 0
    assert "OK (generation" in capsys.readouterr().err


def test_living_index_damage_is_found(tmp_path):
    path = _living(tmp_path)
    gen = max(int(n.split("-")[1].split(".")[0]) for n in os.listdir(path) if n.startswith("generation-"))
    rec = json.load(open(os.path.join(path, f"generation-{gen}.json")))
    segs = [e for e in rec["segments"] if e["name"] != "."]
    # a flipped byte in a live-docs bitmap
    live = os.path.join(path, next(e["live"] for e in rec["segments"] if e.get("live")))
    raw = bytearray(open(live, "rb").read())
    raw[-1] ^= 0x01
    open(live, "wb").write(bytes(raw))
    # a damaged file in an added segment, and a metadata column cut short
    seg_dir = os.path.join(path, "segments", segs[0]["name"])
    with open(os.path.join(seg_dir, "postings_impacts.npy"), "r+b") as f:
        f.seek(-1, os.SEEK_END)
        b = f.read(1)
        f.seek(-1, os.SEEK_END)
        f.write(bytes([b[0] ^ 0x01]))
    spec = json.load(open(os.path.join(seg_dir, "metadata.json")))
    col = os.path.join(seg_dir, next(iter(spec["fields"].values()))["file"])
    open(col, "wb").write(open(col, "rb").read()[:-8])
    problems = check_index(path)
    assert any("live-docs bitmap fails its checksum" in p for p in problems), problems
    assert any(p.startswith(f"segment {segs[0]['name']}: postings_impacts.npy: checksum") for p in problems)
    assert any("unreadable metadata columns" in p for p in problems), problems
    # a segment the generation lists but that is gone
    shutil.rmtree(os.path.join(path, "segments", segs[-1]["name"]))
    assert any(f"segment {segs[-1]['name']}: listed in generation" in p for p in check_index(path))
    assert main(["check", path]) == 1


def test_sharded_root_checks_every_shard(tmp_path):
    from lsr.index.shards import build_sharded_index

    docs = topical_collection(200, 40, 2)
    root = build_sharded_index(docs, tmp_path / "sh", 3, vocab=vocab_of(40))
    rep = inspect_index(root)
    assert rep.problems == [] and rep.summary.startswith("3 shards"), (rep.problems, rep.summary)
    # shards that took writes are living indexes: checked as such, clean
    ix = open_index(root, writable=True)
    ix.delete(["5", "150"])
    ix.commit()
    ix.close()
    assert check_index(root) == []
    shard = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))[1]
    with open(os.path.join(root, shard, "offsets.npy"), "r+b") as f:
        f.seek(-1, os.SEEK_END)
        b = f.read(1)
        f.seek(-1, os.SEEK_END)
        f.write(bytes([b[0] ^ 0x01]))
    assert any(p.startswith(f"{shard}: ") and "offsets.npy: checksum" in p for p in check_index(root))
    shutil.rmtree(os.path.join(root, shard))
    assert f"{shard}: listed in shards.json but missing" in check_index(root)
