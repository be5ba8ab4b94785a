"""Read ``.npy`` files without ``ast``: the reader every index open goes through.

``np.load`` parses the ``.npy`` header with ``ast.literal_eval``. On CPython 3.11 (up to at least
3.11.7) building Python AST objects keeps its recursion counter in one per-interpreter slot, so two
threads doing it at once (a reader opening a generation while Numba's lowering calls ``ast.parse`` in
a compiling thread) can fail with ``SystemError: AST constructor recursion depth mismatch``
(CPython gh-106905). Index readers open arrays from many threads (service workers, readers beside a
committing writer), so they read the header with a strict regular expression instead.

Only what ``np.save`` writes for plain (non-structured, non-object) dtypes is accepted: format
versions 1.0, 2.0 and 3.0, C order, a shape tuple of non-negative integers. Anything else raises
``ValueError`` naming the file, as ``np.load`` does for a damaged file.
"""

from __future__ import annotations

import os
import re
import struct

import numpy as np

__all__ = ["read_npy"]

_MAGIC = b"\x93NUMPY"
_HEADER = re.compile(
    r"\{\s*'descr':\s*'(?P<descr>[<>|=][a-zA-Z]\d*)',\s*"
    r"'fortran_order':\s*(?P<fortran>True|False),\s*"
    r"'shape':\s*\((?P<shape>[\d,\s]*)\),?\s*\}\s*"
)


def _parse_header(head: bytes, where: str) -> tuple[np.dtype, tuple[int, ...], int]:
    """The dtype, the shape and the data offset (bytes) of a ``.npy`` file from its first bytes."""
    if len(head) < 10 or head[:6] != _MAGIC:
        raise ValueError(f"{where}: not a .npy file (bad magic)")
    major = head[6]
    if major == 1:
        (hlen,) = struct.unpack("<H", head[8:10])
        start = 10
    elif major in (2, 3):
        if len(head) < 12:
            raise ValueError(f"{where}: truncated .npy header")
        (hlen,) = struct.unpack("<I", head[8:12])
        start = 12
    else:
        raise ValueError(f"{where}: unsupported .npy format version {major}.{head[7]}")
    raw = head[start : start + hlen]
    if len(raw) != hlen:
        raise ValueError(f"{where}: truncated .npy header")
    text = raw.decode("utf-8" if major == 3 else "latin1")
    m = _HEADER.fullmatch(text)
    if m is None:
        raise ValueError(f"{where}: unsupported .npy header {text.strip()!r}")
    if m["fortran"] == "True":
        raise ValueError(f"{where}: Fortran-ordered arrays are not supported")
    try:
        dtype = np.dtype(m["descr"])
    except TypeError as e:
        raise ValueError(f"{where}: unknown dtype {m['descr']!r} ({e})") from None
    if dtype.hasobject:
        raise ValueError(f"{where}: object arrays are refused")
    parts = [p.strip() for p in m["shape"].split(",")]
    if parts and parts[-1] == "":
        parts.pop()
    if any(not p.isdigit() for p in parts):
        raise ValueError(f"{where}: bad shape {m['shape']!r}")
    return dtype, tuple(int(p) for p in parts), start + hlen


def read_npy(source: str | os.PathLike[str] | bytes, mmap: bool = False) -> np.ndarray:
    """An array from a ``.npy`` file path (memory-mapped read-only when ``mmap``) or its bytes.

    Raises ``ValueError`` for a damaged or unsupported file (bad magic, header, dtype, or fewer data
    bytes than the header promises) and ``OSError`` when the file cannot be read.
    """
    if isinstance(source, bytes):
        dtype, shape, offset = _parse_header(source[: 65536 + 12], "<bytes>")
        count = int(np.prod(shape, dtype=np.int64))
        if len(source) - offset < count * dtype.itemsize:
            raise ValueError(
                f"<bytes>: truncated .npy data ({len(source) - offset} bytes for {shape} {dtype})"
            )
        return np.frombuffer(source, dtype=dtype, count=count, offset=offset).reshape(shape).copy()
    path = os.fspath(source)
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) >= 10 and head[:6] == _MAGIC:
            hlen = struct.unpack("<H", head[8:10])[0] if head[6] == 1 else struct.unpack("<I", head[8:12])[0]
            head += f.read(hlen + (10 if head[6] == 1 else 12) - len(head))
        dtype, shape, offset = _parse_header(head, path)
        count = int(np.prod(shape, dtype=np.int64))
        n = count * dtype.itemsize
        size = os.fstat(f.fileno()).st_size
        if size - offset < n:
            raise ValueError(f"{path}: truncated .npy data ({size - offset} of {n} bytes)")
        if n == 0:
            arr = np.empty(shape, dtype)
            arr.flags.writeable = False
            return arr
        if not mmap:
            f.seek(offset)
            return np.fromfile(f, dtype=dtype, count=count).reshape(shape)
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)
