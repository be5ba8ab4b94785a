"""Parallel parsing of big JSONL vector files (lsr.vectors.iter_vector_chunks with workers > 1):
the same rows, vocabulary and errors as the one-process reader."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lsr import vectors as vec_mod
from lsr.errors import LsrError
from lsr.vectors import Vocabulary, concat_batches, iter_vector_chunks


def _write(path, n=400, seed=0, blank_every=37, bad=None):
    """A vector file of ``n`` records over a skewed vocabulary (new tokens keep appearing, so the
    pieces' vocabularies differ), some with "content", blank lines here and there; ``bad``: (line
    index, raw line) replacing one record."""
    rng = np.random.default_rng(seed)
    lines = []
    for i in range(n):
        k = int(rng.integers(1, 25))
        toks = {
            f"t{int(x)}": round(float(w), 4)
            for x, w in zip(rng.zipf(1.3, k) % (5 * i + 50), rng.random(k) + 0.01, strict=True)
        }
        rec = {"id": f"d{i}", "vector": toks}
        if i % 5 == 0:
            rec["content"] = f"text of {i}"
        lines.append(json.dumps(rec))
        if blank_every and i % blank_every == 0:
            lines.append("")
    if bad is not None:
        lines[bad[0]] = bad[1]
    path.write_text("\n".join(lines) + "\n")
    return path


def _read(path, workers, vocab=None):
    v = Vocabulary(vocab or [])
    b = concat_batches(list(iter_vector_chunks(path, v, chunk_size=50, workers=workers)))
    return b, v


@pytest.fixture
def small_pieces(monkeypatch):
    """Parallel parsing for any file size, in pieces of ~2 KB (tens of pieces per test file)."""
    monkeypatch.setattr(vec_mod, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(vec_mod, "PIECE_BYTES", 2000)


@pytest.mark.parametrize("preset", [None, ["t3", "zzz", "t1"]])
def test_parallel_reading_equals_one_reader(tmp_path, small_pieces, preset):
    path = _write(tmp_path / "v.jsonl")
    assert len(vec_mod._pieces(str(path))) > 20
    want, wv = _read(path, 1, preset)
    got, gv = _read(path, 2, preset)
    assert gv.tokens == wv.tokens  # the vocabulary grows in the same order
    assert got.ids == want.ids
    np.testing.assert_array_equal(got.indptr, want.indptr)
    np.testing.assert_array_equal(got.indices, want.indices)
    assert got.data.tobytes() == want.data.tobytes()
    assert got.documents == want.documents
    for i in range(len(got)):  # canonical rows: ids ascending
        assert np.all(np.diff(got.indices[got.indptr[i] : got.indptr[i + 1]]) > 0)


@pytest.mark.parametrize(
    "bad",
    [
        "{not json",
        "[1, 2]",
        '{"id": "x", "vector": [1]}',
        '{"vector": {"a": 1}}',
        '{"id": "x", "vector": {"a": -1}}',
        '{"id": "x", "vector": {"a": "heavy"}}',
    ],
)
def test_parallel_reading_raises_the_errors_of_one_reader(tmp_path, small_pieces, bad):
    path = _write(tmp_path / "v.jsonl", bad=(300, bad))
    with pytest.raises(LsrError) as want:
        _read(path, 1)
    with pytest.raises(LsrError) as got:
        _read(path, 2)
    assert str(got.value) == str(want.value)
    assert "v.jsonl:301: " in str(got.value)  # the line of the file, far into it


def test_parallel_reading_names_the_line_of_undecodable_bytes(tmp_path, small_pieces):
    path = _write(tmp_path / "v.jsonl")
    raw = path.read_bytes().split(b"\n")
    raw[250] = raw[250].replace(b'"d', b'"\xff', 1)
    path.write_bytes(b"\n".join(raw))
    with pytest.raises(LsrError, match=r"v\.jsonl:251: cannot read"):
        _read(path, 2)


@pytest.mark.parametrize("newline", [b"\r\n", b"\r"])
def test_parallel_reading_splits_lines_as_the_text_reader_does(tmp_path, small_pieces, newline):
    """Windows (\\r\\n) and old Mac (\\r) line ends: the same records, and an error names the same
    line, as the one-process text reader (universal newlines)."""
    plain = _write(tmp_path / "v.jsonl", bad=(300, '{"id": "x", "vector": {"a": -1}}'))
    other = tmp_path / "other.jsonl"
    other.write_bytes(plain.read_bytes().replace(b"\n", newline))
    with pytest.raises(LsrError) as want:
        _read(other, 1)
    with pytest.raises(LsrError) as got:
        _read(other, 2)
    assert str(got.value) == str(want.value) and "other.jsonl:301: " in str(got.value)
    good = _write(tmp_path / "good.jsonl")
    other.write_bytes(good.read_bytes().replace(b"\n", newline))
    want_b, _ = _read(good, 1)
    got_b, _ = _read(other, 2)
    assert got_b.ids == want_b.ids and got_b.indices.tolist() == want_b.indices.tolist()


def test_files_that_stay_with_one_reader(tmp_path, monkeypatch):
    """gzip, and files under the size threshold, are read in one process."""
    path = _write(tmp_path / "v.jsonl")
    monkeypatch.setattr(vec_mod, "PARALLEL_MIN_BYTES", 0)
    assert vec_mod._pieces(str(path)) is not None
    assert vec_mod._pieces(str(tmp_path / "v.jsonl.gz")) is None
    monkeypatch.setattr(vec_mod, "PARALLEL_MIN_BYTES", 1 << 40)
    assert vec_mod._pieces(str(path)) is None


def test_count_lines_counts_universal_newlines(tmp_path, monkeypatch):
    path = tmp_path / "x"
    path.write_bytes(b"a\r\nb\rc\n\r\n\rd\n")
    assert vec_mod._count_lines(str(path), path.stat().st_size) == len(path.read_text().splitlines())
    data = b"x\r" * 10 + b"\r\n" * 10  # with reads of 3 bytes, \\r\\n pairs fall across reads
    path.write_bytes(data)
    real_open = open

    class Small:
        def __init__(self, f):
            self.f = f

        def read(self, n):
            return self.f.read(min(n, 3))

        def __enter__(self):
            return self

        def __exit__(self, *a):
            self.f.close()

    monkeypatch.setattr(
        "builtins.open",
        lambda p, m="r", *a, **k: Small(real_open(p, m)) if p == str(path) else real_open(p, m, *a, **k),
    )
    assert vec_mod._count_lines(str(path), len(data)) == 20


def test_an_index_built_with_parallel_reading_equals_one_read_serially(tmp_path, small_pieces, monkeypatch):
    from lsr.index import build_index
    from lsr.index import builder as builder_mod

    path = _write(tmp_path / "v.jsonl", n=300)
    a = build_index(path, tmp_path / "a", methods=["exact"], threads=1)
    # two reading processes whatever NUMBA_NUM_THREADS says, and proof that they were used
    monkeypatch.setattr(builder_mod, "build_threads", lambda threads: 2)
    used = []
    real = vec_mod._parallel_vector_chunks
    monkeypatch.setattr(
        vec_mod, "_parallel_vector_chunks", lambda *a, **k: used.append(a[4]) or real(*a, **k)
    )
    b = build_index(path, tmp_path / "b", methods=["exact"], threads=2)
    assert used == [2]
    for name in ("offsets", "postings_docs", "postings_impacts", "doc_ids"):
        assert (tmp_path / "a" / f"{name}.npy").read_bytes() == (
            tmp_path / "b" / f"{name}.npy"
        ).read_bytes(), name
    ma, mb = (json.loads((tmp_path / d / "manifest.json").read_text()) for d in ("a", "b"))
    assert ma["vocab"] == mb["vocab"]
    assert a and b
