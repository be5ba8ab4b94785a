"""Document metadata of the living index: per-segment columns and filters compiled to document masks.

Each document may carry a ``metadata`` object of *keyword* (string; booleans are stored as the
keywords ``"true"`` / ``"false"``) and *number* (int or float, finite) fields; ``null`` or an absent
field means "missing". A field's type is fixed the first time the index sees it (the generation
file's ``fields``); a later value of the other type is refused.

On disk, next to a segment's arrays (see :mod:`lsr.index.format`)::

    metadata.json        {"fields": {name: {"type": "keyword", "file": "meta_0.npy",
                                            "values": [the sorted distinct keywords]}
                                     | {"type": "number", "file": "meta_1.npy"}}}
    meta_<i>.npy         keyword: int32[n_docs] index into "values" (-1: missing)
                         number:  float64[n_docs] (NaN: missing)

Columns are in build order (the segment's doc numbers as results report them).

Filters (JSON): an object is a conjunction of clauses, one per key::

    {"lang": "en"}                         equality (keyword or number)
    {"lang": {"in": ["en", "de"]}}         membership
    {"year": {"gte": 2000, "lt": 2010}}    numeric range: any of gte, gt, lte, lt
    {"lang": {"not": "en"}}                negation of a value or of a condition
    {"not": {...filter...}}                negation of a whole filter
    {"and": [f, ...]}, {"or": [f, ...]}    explicit conjunction / disjunction

A missing value matches no equality, membership or range (and so matches their negation). Unknown
fields and type mismatches raise :class:`~lsr.errors.LsrError`.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from lsr.errors import LsrError
from lsr.index.npy import read_npy

META_FILE = "metadata.json"
KEYWORD = "keyword"
NUMBER = "number"
RESERVED = ("not", "and", "or")
RANGE_OPS = ("gte", "gt", "lte", "lt")

# name -> (type, data): a keyword column is (codes int32[n] (-1: missing), sorted distinct values),
# a number column float64[n] (NaN: missing)
Columns = dict[str, tuple[str, Any]]


def value_type(value: Any) -> str | None:
    """The field type of one metadata value (None for null); raises for anything else."""
    if value is None:
        return None
    if isinstance(value, (bool, str)):
        return KEYWORD
    if isinstance(value, (int, float, np.integer, np.floating)):
        if not math.isfinite(float(value)):
            raise LsrError(f"metadata value {value!r} is not a finite number")
        return NUMBER
    raise LsrError(
        f"metadata value {value!r} is a {type(value).__name__}: values must be strings, booleans, numbers or null"
    )


def _keyword(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def columns_from_records(
    records: Sequence[Mapping[str, Any] | None], schema: Mapping[str, str], ids: Sequence[str] | None = None
) -> tuple[Columns, dict[str, str]]:
    """Check ``records`` (one metadata object or None per document) against the field ``schema``
    and turn them into columns. Returns (columns, the schema with the new fields added). Nothing
    is changed when a record is malformed: the error names the document and the field."""
    new_schema = dict(schema)
    seen: dict[str, list[tuple[int, Any]]] = {}
    for i, rec in enumerate(records):
        if rec is None:
            continue
        who = f"document {ids[i]!r}" if ids is not None else f"document {i}"
        if not isinstance(rec, Mapping):
            raise LsrError(f"{who}: metadata must be an object of fields, got {type(rec).__name__}")
        for name, value in rec.items():
            if not isinstance(name, str) or not name or name in RESERVED:
                raise LsrError(
                    f"{who}: invalid metadata field name {name!r} (reserved: {', '.join(RESERVED)})"
                )
            try:
                kind = value_type(value)
            except LsrError as e:
                raise LsrError(f"{who}: field {name!r}: {e}") from None
            if kind is None:
                continue
            known = new_schema.get(name)
            if known is None:
                new_schema[name] = kind
            elif known != kind:
                raise LsrError(f"{who}: field {name!r} is a {known} field, got {value!r}")
            seen.setdefault(name, []).append((i, value))
    n = len(records)
    cols: Columns = {}
    for name, items in seen.items():
        if new_schema[name] == KEYWORD:
            arr = np.full(n, None, dtype=object)
            for i, v in items:
                arr[i] = _keyword(v)
            cols[name] = (KEYWORD, _encode(arr))
            continue
        else:
            arr = np.full(n, np.nan, np.float64)
            for i, v in items:
                arr[i] = float(v)
        cols[name] = (new_schema[name], arr)
    return cols, new_schema


def _encode(arr: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Object array of str / None -> (codes int32, sorted distinct values)."""
    items = arr.tolist()
    values = sorted({v for v in items if v is not None})
    lookup = {v: j for j, v in enumerate(values)}
    codes = np.fromiter((-1 if v is None else lookup[v] for v in items), np.int32, count=len(items))
    return codes, values


def _decode(col: tuple[np.ndarray, list[str]]) -> np.ndarray:
    codes, values = col
    return np.array(list(values) + [None], dtype=object)[codes]  # code -1 picks the trailing None


def empty_column(kind: str, n: int) -> Any:
    return (np.full(n, -1, np.int32), []) if kind == KEYWORD else np.full(n, np.nan, np.float64)


def concat_columns(parts: Sequence[tuple[Columns, int]]) -> Columns:
    """Columns of several document runs (each (columns, n_docs)) one after the other."""
    names: dict[str, str] = {}
    for cols, _ in parts:
        for name, (kind, _) in cols.items():
            names[name] = kind
    out: Columns = {}
    for name, kind in names.items():
        data = [cols[name][1] if name in cols else empty_column(kind, n) for cols, n in parts]
        if kind == KEYWORD:
            out[name] = (kind, _encode(np.concatenate([_decode(d) for d in data])))
        else:
            out[name] = (kind, np.concatenate(data))
    return out


def take_columns(cols: Columns, docs: np.ndarray) -> Columns:
    """The columns of documents ``docs`` (build-order numbers), in that order."""
    out: Columns = {}
    for name, (kind, data) in cols.items():
        out[name] = (kind, (data[0][docs], data[1]) if kind == KEYWORD else data[docs])
    return out


def write_columns(seg_dir: str, cols: Columns) -> list[str]:
    """Write ``cols`` into a segment directory; returns the files written (for fsync)."""
    fields: dict[str, Any] = {}
    written = []
    for i, (name, (kind, data)) in enumerate(sorted(cols.items())):
        fname = f"meta_{i}.npy"
        if kind == KEYWORD:
            np.save(os.path.join(seg_dir, fname), np.asarray(data[0], np.int32))
            fields[name] = {"type": kind, "file": fname, "values": list(data[1])}
        else:
            np.save(os.path.join(seg_dir, fname), np.asarray(data, np.float64))
            fields[name] = {"type": kind, "file": fname}
        written.append(os.path.join(seg_dir, fname))
    path = os.path.join(seg_dir, META_FILE)
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"fields": fields}, f, ensure_ascii=False)
    written.append(path)
    return written


def read_columns(seg_dir: str, n_docs: int) -> Columns:
    """The columns of a segment (empty when it has no ``metadata.json``: no document has metadata)."""
    path = os.path.join(seg_dir, META_FILE)
    if not os.path.isfile(path):
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            spec = json.load(f)["fields"]
        out: Columns = {}
        for name, field in spec.items():
            arr = read_npy(os.path.join(seg_dir, field["file"]))
            if arr.shape != (n_docs,):
                raise ValueError(f"{field['file']} has {arr.shape} entries for {n_docs} documents")
            if field["type"] == KEYWORD:
                values = list(field["values"])
                if arr.dtype != np.int32 or (len(arr) and (arr.min() < -1 or arr.max() >= len(values))):
                    raise ValueError(f"{field['file']}: keyword codes out of range")
                out[name] = (KEYWORD, (arr, values))
            else:
                out[name] = (NUMBER, arr.astype(np.float64, copy=False))
        return out
    except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError) as e:
        raise LsrError(f"{seg_dir}: unreadable metadata columns ({e})") from None


def record_of(cols: Columns, doc: int) -> dict[str, Any]:
    """The metadata object of one document (missing fields left out)."""
    out: dict[str, Any] = {}
    for name, (kind, data) in cols.items():
        if kind == KEYWORD:
            c = int(data[0][doc])
            if c >= 0:
                out[name] = data[1][c]
            continue
        v = float(data[doc])
        if not math.isnan(v):
            out[name] = int(v) if float(v).is_integer() else float(v)
    return out


# -- filters ---------------------------------------------------------------------------------------
class Filter:
    """A filter checked against the index's field schema; :meth:`mask` evaluates it on columns."""

    def __init__(self, spec: Any, schema: Mapping[str, str]) -> None:
        self.spec = spec
        self._node = _compile(spec, schema, "filter")
        # the compiled filter, canonical: equal filters (whatever their key order) share cached masks
        self.key: str = json.dumps(self._node, sort_keys=True, default=str)

    def mask(self, cols: Columns, n_docs: int) -> np.ndarray:
        """bool[n_docs]: the documents of a segment (build order) that pass."""
        return _eval(self._node, cols, n_docs)


def parse_filter(spec: Any, schema: Mapping[str, str]) -> Filter | None:
    """Compile a filter (a dict, a JSON string, or None / {} for "no filter")."""
    if spec is None:
        return None
    if isinstance(spec, str):
        try:
            spec = json.loads(spec)
        except json.JSONDecodeError as e:
            raise LsrError(f"filter is not valid JSON ({e})") from None
    if isinstance(spec, Mapping) and not spec:
        return None
    return Filter(spec, schema)


def _compile(spec: Any, schema: Mapping[str, str], where: str) -> tuple:
    if not isinstance(spec, Mapping):
        raise LsrError(f"{where}: expected an object of field conditions, got {spec!r}")
    nodes = []
    for key, val in spec.items():
        if key == "not":
            nodes.append(("not", _compile(val, schema, f"{where}.not")))
        elif key in ("and", "or"):
            if not isinstance(val, list) or not val:
                raise LsrError(f"{where}.{key}: expected a non-empty list of filters")
            nodes.append((key, [_compile(v, schema, f"{where}.{key}[{i}]") for i, v in enumerate(val)]))
        else:
            if key not in schema:
                known = ", ".join(sorted(schema)) or "none"
                raise LsrError(f"{where}: unknown metadata field {key!r} (fields: {known})")
            nodes.append(_field(key, schema[key], val, f"{where}.{key}"))
    return ("and", nodes)


def _check_value(field: str, kind: str, value: Any, where: str) -> Any:
    try:
        vk = value_type(value)
    except LsrError as e:
        raise LsrError(f"{where}: {e}") from None
    if vk != kind:
        raise LsrError(f"{where}: field {field!r} is a {kind} field, got {value!r}")
    return _keyword(value) if kind == KEYWORD else float(value)


def _field(field: str, kind: str, cond: Any, where: str) -> tuple:
    if not isinstance(cond, Mapping):
        return ("eq", field, kind, _check_value(field, kind, cond, where))
    if not cond:
        raise LsrError(f"{where}: empty condition")
    nodes = []
    for op, val in cond.items():
        if op == "eq":
            nodes.append(("eq", field, kind, _check_value(field, kind, val, f"{where}.eq")))
        elif op == "in":
            if not isinstance(val, list):
                raise LsrError(f"{where}.in: expected a list of values, got {val!r}")
            nodes.append(("in", field, kind, [_check_value(field, kind, v, f"{where}.in") for v in val]))
        elif op in RANGE_OPS:
            if kind != NUMBER:
                raise LsrError(f"{where}.{op}: a range needs a number field; {field!r} is a {kind} field")
            nodes.append(("range", field, op, _check_value(field, kind, val, f"{where}.{op}")))
        elif op == "not":
            nodes.append(("not", _field(field, kind, val, f"{where}.not")))
        else:
            raise LsrError(f"{where}: unknown operator {op!r} (eq, in, gte, gt, lte, lt, not)")
    return ("and", nodes)


def _find(values: list[str], v: str) -> int:
    """Position of ``v`` in the sorted list ``values``, or -1."""
    import bisect

    j = bisect.bisect_left(values, v)
    return j if j < len(values) and values[j] == v else -1


def _eval(node: tuple, cols: Columns, n: int) -> np.ndarray:
    op = node[0]
    if op == "and":
        out = np.ones(n, bool)
        for child in node[1]:
            out &= _eval(child, cols, n)
        return out
    if op == "or":
        out = np.zeros(n, bool)
        for child in node[1]:
            out |= _eval(child, cols, n)
        return out
    if op == "not":
        return ~_eval(node[1], cols, n)
    field = node[1]
    if field not in cols:
        return np.zeros(n, bool)  # no document of this segment has the field
    kind, data = cols[field]
    if kind == KEYWORD:
        codes, values = data
        wanted = [node[3]] if op == "eq" else node[3]
        lookup = {v: j for j, v in enumerate(values)} if len(wanted) > 4 else None
        hit = []
        for v in wanted:
            j = lookup.get(v, -1) if lookup is not None else _find(values, v)
            if j >= 0:
                hit.append(j)
        if not hit:
            return np.zeros(n, bool)
        return codes == hit[0] if len(hit) == 1 else np.isin(codes, np.array(hit, np.int32))
    arr = data
    if op == "eq":
        return arr == node[3]
    if op == "in":
        return np.isin(arr, np.asarray(node[3], np.float64))
    if op == "range":
        v = node[3]
        with np.errstate(invalid="ignore"):
            return {"gte": arr >= v, "gt": arr > v, "lte": arr <= v, "lt": arr < v}[node[2]]
    raise AssertionError(op)  # pragma: no cover
