"""The ``.npy`` reader indexes open with: equal to ``np.load``, strict on damage, and free of ``ast``.

``np.load`` parses headers with ``ast.literal_eval``, which on CPython 3.11 can fail with
``SystemError: AST constructor recursion depth mismatch`` when another thread builds AST objects at
the same moment (Numba's lowering does): a reader opening a generation beside a compiling writer hit
it in CI. The deterministic check is that no index open, search, commit or merge touches ``ast``.
"""

from __future__ import annotations

import ast
import io

import numpy as np
import pytest

from lsr.index import build_index, open_index
from lsr.index.npy import read_npy

DTYPES = ["<i4", "<i8", "|u1", "<u2", "<f4", "<f2", ">f8", "|b1", "|S7", "<U3"]
SHAPES = [(0,), (1,), (17,), (3, 4), (), (2, 0, 5)]


def _npy_bytes(arr: np.ndarray, version: tuple[int, int]) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr, version=version, allow_pickle=False)
    return buf.getvalue()


@pytest.mark.parametrize("version", [(1, 0), (2, 0), (3, 0)])
def test_read_npy_equals_np_load_on_random_arrays(tmp_path, version):
    rng = np.random.default_rng(7)
    for dt in DTYPES:
        for shape in SHAPES:
            dtype = np.dtype(dt)
            if dtype.kind in "SU":
                arr = np.array(
                    [
                        "".join(rng.choice(list("abcxyz"), rng.integers(0, 4)))
                        for _ in range(int(np.prod(shape)))
                    ],
                    dtype=dtype,
                ).reshape(shape)
            else:
                arr = (rng.random(shape) * 100).astype(dtype)
            raw = _npy_bytes(arr, version)
            path = tmp_path / f"{dtype.str.replace('|', '_').replace('<', 'l').replace('>', 'b')}.npy"
            path.write_bytes(raw)
            want = np.load(path, allow_pickle=False)
            for got in (read_npy(path), read_npy(path, mmap=True), read_npy(raw)):
                assert got.dtype == want.dtype and got.shape == want.shape, (dt, shape, version)
                np.testing.assert_array_equal(np.asarray(got), want)


def test_read_npy_refuses_damaged_or_unsupported_files(tmp_path):
    good = _npy_bytes(np.arange(10, dtype=np.int32), (1, 0))
    cases = {
        "truncated data": good[:-4],
        "bad magic": b"\x93NUMPX" + good[6:],
        "truncated header": good[:20],
        "unknown version": good[:6] + b"\x09\x00" + good[8:],
        "fortran order": _npy_bytes(np.asfortranarray(np.ones((2, 3), np.float32)), (1, 0)),
        "object dtype": good.replace(b"'<i4'", b"'|O8'"),
        "garbage header": good.replace(b"'descr'", b"'dexcr'"),
    }
    for what, raw in cases.items():
        path = tmp_path / "x.npy"
        path.write_bytes(raw)
        for source, mmap in ((path, False), (path, True), (raw, False)):
            with pytest.raises(ValueError):
                read_npy(source, mmap=mmap)
            assert what  # the case name shows in the failure report


def test_opening_searching_and_writing_an_index_never_uses_ast(tmp_path, monkeypatch):
    """Every array an index reads goes through ``read_npy``: opening plain and segmented indexes (live
    bitmaps, metadata columns), searching, committing and merging never call ``ast.parse``."""
    path = build_index([{"a": 1.0}, {"b": 2.0}], tmp_path / "ix", ids=["d0", "d1"])
    ix = open_index(path, writable=True, merge_factor=2, merge_min_docs=1)
    ix.add([{"a": 2.0}], ids=["y"], metadata=[{"lang": "en", "year": 2001}])
    ix.delete(["d1"])
    ix.commit()
    ix.search([{"a": 1.0}], k=5, filter={"lang": "en"})  # compile the kernels before ast goes away
    ix.merge(max_segments=1)

    calls: list[str] = []
    real_parse = ast.parse

    def counting_parse(source, *args, **kwargs):  # literal_eval calls parse too
        calls.append(str(source)[:60])
        return real_parse(source, *args, **kwargs)

    monkeypatch.setattr(ast, "parse", counting_parse)
    plain = open_index(build_index([{"a": 1.0}], tmp_path / "plain", ids=["p"]))
    assert plain.search([{"a": 1.0}], k=1)[0].ids == ["p"]
    ix.add([{"a": 3.0}], ids=["z"], metadata=[{"lang": "de"}])
    ix.delete(["d0"])
    ix.commit()
    reader = open_index(path)
    assert reader.search([{"a": 1.0}], k=5)[0].ids == ["z", "y"]
    assert reader.search([{"a": 1.0}], k=5, filter={"lang": "en"})[0].ids == ["y"]
    ix.merge(max_segments=1)
    assert open_index(path).search([{"a": 1.0}], k=5)[0].ids == ["z", "y"]
    monkeypatch.undo()
    assert calls == []
