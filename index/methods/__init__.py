"""The search-method registry: one record per method, one module per method.

A :class:`Method` says what a method needs and how to run it: the index parts it reads (each a
:class:`Part`: its arrays, build parameters with defaults, how to build and open it), its query
parameters with defaults and bounds (:class:`Param`), how to call its kernel, and whether it is
rank-safe (same top-k and scores as exact search) for given parameters. Everything that used to
list methods by hand loops over this registry: the parts builder (:mod:`lsr.index.parts`), the
searcher (parameter checks, scratch buffers, dispatch), ``build_index``'s part options, the CLI's
``--methods`` / ``--param``, the service's parameter validation and the tests.

Modules of this package are discovered at import: a module defining ``PARTS`` (a tuple of
:class:`Part`) and/or ``METHOD`` (a :class:`Method`) registers them. **Adding a method = one module
here + its kernel in** :mod:`lsr.index.kernels` **+ its reference twin in the tests**; nothing else.
Methods and parts are ordered by their ``order`` field (``exact`` first).

Serial and batched search share one kernel driver, each kernel's ``search_range`` (a range of
queries into rows of the result arrays). One query or one thread: the kernel's ``search_serial``
runs every query. Several threads: :func:`lsr.index.batch.search_batch` hands query ranges to Python
threads that call ``search_range`` themselves (the kernels release the GIL), each on its own
scratch. No search kernel uses numba's ``prange``: a parallel kernel is compiled again per impact
dtype (seconds each), pays the thread pool's launch on every call, and numba's threading layers do
not promise that a parallel region may be entered from several Python threads at once, which is how
the service runs single queries.
"""

from __future__ import annotations

import importlib
import pkgutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from lsr.errors import LsrError
from lsr.index import format as fmt


@dataclass(frozen=True)
class Param:
    """A query-time parameter of a method: ``default`` and inclusive bounds ``[low, high]``;
    ``integer`` parameters must be whole numbers."""

    name: str
    default: float
    low: float
    high: float
    integer: bool = False
    doc: str = ""

    def check(self, method: str, value: Any) -> int | float:
        """``value`` as an int or float within the bounds, or a one-line :class:`LsrError`."""
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise LsrError(f"{method} parameter {self.name} must be a number, got {value!r}")
        if not (self.low <= value <= self.high) or not np.isfinite(value):  # NaN fails the bounds
            raise LsrError(
                f"{method} parameter {self.name} must be in [{self.low:g}, {self.high:g}], got {value!r}"
            )
        if self.integer and int(value) != value:
            raise LsrError(f"{method} parameter {self.name} must be an integer, got {value!r}")
        return int(value) if self.integer else float(value)

    def as_dict(self) -> dict[str, Any]:
        """JSON-able description (for the service's /methods-style listings and docs)."""
        return {
            "default": self.default,
            "min": self.low,
            "max": self.high,
            "type": "integer" if self.integer else "number",
            "doc": self.doc,
        }


@dataclass(frozen=True)
class BuildContext:
    """What a part's builder gets: the index directory being built, the (possibly reordered)
    postings, the forward index over internal doc numbers, and helpers.

    ``offsets`` int64[n_terms + 1], ``docs`` uint32 postings, ``impacts`` (quantized) postings;
    ``fptr`` / ``fterms`` / ``fimp`` the forward index; ``threads`` for parallel builders;
    ``doc_order`` the build order of each internal number (empty when not reordered)."""

    index_dir: str
    n_docs: int
    n_terms: int
    offsets: np.ndarray
    docs: np.ndarray
    impacts: np.ndarray
    fptr: np.ndarray
    fterms: np.ndarray
    fimp: np.ndarray
    threads: int
    say: Callable[[str], None]
    # build order of each internal number (``doc_order.npy``; empty: documents not renumbered)
    doc_order: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))

    def save(self, name: str, arr: np.ndarray) -> None:
        """Write one array of the index (``<name>.npy``)."""
        np.save(fmt.array_path(self.index_dir, name), arr)


@dataclass(frozen=True)
class Part:
    """An optional part of an index (arrays beside the postings) that some methods read.

    ``arrays``: file name -> (dtype, or ``"impacts"`` for the impacts' dtype, or None for any;
    length key in the manifest counts, or None for "checked by :attr:`open`"), registered into
    :data:`lsr.index.format.ARRAYS`. ``defaults``: build parameters (all positive numbers; the
    ``build_index(<part name>={...})`` option overrides them). ``build(ctx, params)`` writes the
    arrays and returns the manifest record (``manifest["parts"][name]``: True or a dict).
    ``open(index, record)`` maps the arrays and returns what the methods' kernels take. ``reorder``:
    the default ``build_index(reorder=None)`` reorders documents when a needed part says so
    (block-based parts: similar documents in the same blocks)."""

    name: str
    arrays: Mapping[str, tuple[str | None, str | None]]
    build: Callable[[BuildContext, dict[str, Any]], Any]
    open: Callable[[Any, Any], Any]
    defaults: Mapping[str, float] = field(default_factory=dict)
    check: Callable[[dict[str, Any]], None] | None = None
    order: int = 100
    reorder: bool = False  # whether it pays to renumber documents by graph bisection first
    zero_ok: tuple[str, ...] = ()  # build parameters that may be 0 (0: that piece is not built)


def always(params: Mapping[str, Any]) -> bool:
    """Rank-safe whatever the parameters."""
    return True


def never(params: Mapping[str, Any]) -> bool:
    """Approximate whatever the parameters."""
    return False


@dataclass(frozen=True)
class Method:
    """A search method. ``search(index, params, indptr, terms, weights, k, scratch, n_chunks)``
    calls its kernel (serial for one chunk, parallel otherwise) on canonical CSR queries and
    returns (internal-or-build-order doc numbers int64[nq, k] with -1 padding, scores
    float32[nq, k]); ``rank_safe(params)`` says whether it then equals exact search."""

    name: str
    parts: tuple[str, ...]
    params: tuple[Param, ...]
    search: Callable[..., tuple[np.ndarray, np.ndarray]]
    rank_safe: Callable[[Mapping[str, Any]], bool] = always
    doc: str = ""
    order: int = 100

    def defaults(self) -> dict[str, Any]:
        """The parameters at their defaults."""
        return {p.name: p.default for p in self.params}

    @cached_property
    def _checked_defaults(self) -> dict[str, Any]:
        """The defaults as :meth:`check_params` returns them (typed), computed once per method."""
        return {p.name: p.check(self.name, p.default) for p in self.params}

    def check_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Refuse unknown or out-of-bounds parameters; fill in the defaults."""
        if not params:  # the common call: the defaults, checked once (a copy: callers may add to it)
            return dict(self._checked_defaults)
        names = [p.name for p in self.params]
        unknown = sorted(set(params) - set(names))
        if unknown:
            known = ", ".join(names) if names else "none"
            raise LsrError(
                f"method {self.name!r} takes no parameter {', '.join(unknown)} (its parameters: {known})"
            )
        return {p.name: p.check(self.name, params.get(p.name, p.default)) for p in self.params}


# A pruning method that falls back to exact search (MaxScore, BMP: when their estimated work exceeds
# exact search's) answers its queries with exact search up front on an index where it does not pay.
# Each index keeps, per method, (1) the share of recent queries that fell back (an exponential moving
# average with weight POLICY_WEIGHT per query) and (2) the seconds per query of recent calls that ran
# the method and of recent calls that ran exact search (moving averages with weight POLICY_TIME_WEIGHT
# per call; plain calls only, see timed_call), and (3) the moving ratio of the method's counted work to exact
# search's (see POLICY_WORK). A call goes straight to exact search when the share is over POLICY_SKIP, when
# the work ratio is over POLICY_WORK_SKIP, or, with POLICY_TIMED on (off by default: see there), when the method's recent seconds
# per query exceed exact search's:
# the work estimate that decides a fallback cannot see every cost (on SciFact the moving share of
# MaxScore's queries that fell back hovered at 0.83-0.91, near POLICY_SKIP, and MaxScore cost 1.3x
# exact search's time).
# While exact search is preferred, a probe call now and then runs the method: probes start
# POLICY_PROBE calls apart, a probe that fell back again (or was slower per query than exact search)
# doubles the gap up to POLICY_PROBE_MAX calls, one that paid resets it to POLICY_PROBE. While the
# method is preferred, a sample call now and then runs exact search instead (same gaps, doubling to
# POLICY_PROBE_MAX), so exact search's time stays known. Same results either way (the fallback is
# exact search, bit for bit); what it saves is work, and on an index where the method does pay it
# costs one exact call in up to 256. A method's FALLBACK = 0 turns all of it off.
POLICY_WEIGHT = 0.1
POLICY_SKIP = 0.75
POLICY_PROBE = 8
POLICY_PROBE_MAX = 256
# Off by default: measured, the moving averages of per-query seconds decide badly where a method's
# times are heavy-tailed. On the 1M-document living benchmark's merged index BMP's p50 went 1.15 ->
# 1.72 ms and its mean 2.30 -> 2.97 ms with it on (exact search: 3.73 ms mean), because one slow query
# lifts a short average over exact search's for many calls; on SciFact and the real set it brought
# "slowest safe pruning / exact" to 1.01-1.10 (BENCHMARKS.md, 2026-12-01, day). Kept, and tested, as
# a switch for collections whose methods' costs are not heavy-tailed.
POLICY_TIMED = False
POLICY_TIME_WEIGHT = 0.1
# (3) The method's work over exact search's, both counted by the kernel in its own unit (array
# touches, the unit its fallback weighs; a query that fell back counts the method's work spent *and*
# exact search's): a moving average (weight POLICY_WEIGHT per query) over POLICY_WORK_SKIP sends calls
# to exact search up front as the share of fallbacks does. Why: a method can lose without falling
# back on most queries. Over a living index's segments (each searched from the k-th score of the
# others) MaxScore's fallback share hovered at 0.53-0.83 per segment, so half the segments ran
# MaxScore and it cost 1.3-1.4x the merged index; on the 1M merged index MaxScore fell back on
# 41-47% of queries and counted 1.06x exact search's work. Both now go to exact search. BMP's
# work, weighed by its measured costs since the closing session of 2026-12-01, counts 0.53x exact
# search's on the 1M synthetic set (BMP keeps running: 0.55x exact search's time) and 1.28x on the
# real 300k set (exact search up front: BMP had taken 1.16x its time); BENCHMARKS.md. Counted
# work, unlike timings, is the same on every run.
POLICY_WORK = True
POLICY_WORK_SKIP = 1.0


class FallbackPolicy:
    """Per index and method: the moving share of queries that fell back (``rate``), the moving
    seconds per query of the method (``t_method``) and of exact search (``t_exact``; None until
    measured), and the probe and sample schedules (see the comment above). Not locked: concurrent
    searches may race on these fields, which only moves a probe or blurs an average."""

    __slots__ = (
        "rate", "calls", "gap", "until", "probing", "t_method", "t_exact", "sample_gap", "sample_in", "timed",
        "timed_calls", "work", "work_skip",
    )  # fmt: skip

    def __init__(self, timed: bool = True) -> None:
        self.timed = timed  # False: decisions by the fallback share alone (see ``of``)
        # the work ratio over which calls go to exact search (None: POLICY_WORK_SKIP, read per call;
        # a living index sets its own for MaxScore over segments)
        self.work_skip: float | None = None
        self.rate = 0.0
        self.calls = 0
        self.gap = POLICY_PROBE
        self.until = POLICY_PROBE
        self.probing = False
        self.t_method: float | None = None
        self.t_exact: float | None = None
        self.sample_gap = POLICY_PROBE
        self.sample_in = POLICY_PROBE
        self.timed_calls = [0, 0]  # timed calls seen (method, exact search): the first is not used
        self.work: float | None = None  # moving method work / exact search's work (None: not counted)

    def __copy__(self) -> FallbackPolicy:
        new = FallbackPolicy.__new__(FallbackPolicy)
        for name in self.__slots__:
            setattr(new, name, getattr(self, name))
        new.timed_calls = list(self.timed_calls)
        return new

    @classmethod
    def of(cls, index: Any, method: str, timed: bool = True) -> FallbackPolicy:
        """The policy ``index`` keeps for ``method`` (made on first use, in ``index.adaptive``).
        ``timed=False`` for a setting that is not rank-safe: its results then never depend on
        timings (exact search's differ from an approximate method's), only on the calls made."""
        policy = index.adaptive.get(method)
        if policy is None:
            policy = index.adaptive.setdefault(method, cls(timed))
        return policy

    def slower(self) -> bool:
        """Whether the method's recent seconds per query exceed exact search's (both measured)."""
        return (
            POLICY_TIMED
            and self.timed
            and self.t_method is not None
            and self.t_exact is not None
            and self.t_method > self.t_exact
        )

    def costlier(self) -> bool:
        """Whether the method's recent counted work exceeds exact search's (see POLICY_WORK)."""
        return POLICY_WORK and self.work is not None and self.work > self._work_skip()

    def _work_skip(self) -> float:
        return POLICY_WORK_SKIP if self.work_skip is None else self.work_skip

    def skip(self, timed: bool = True) -> bool:
        """Whether this call should go to exact search up front (counts the call). ``timed``:
        whether this call's time will be folded in (only such a call samples exact search)."""
        self.calls += 1
        self.probing = False
        if self.rate > POLICY_SKIP or self.slower() or self.costlier():
            self.until -= 1
            if self.until > 0:
                return True
            self.probing = True  # this call runs the method
            self.until = self.gap
            return False
        if POLICY_TIMED and self.timed and timed:  # the method is preferred: time exact search now and then
            self.sample_in -= 1
            if self.sample_in <= 0:
                self.sample_gap = min(2 * self.sample_gap, POLICY_PROBE_MAX)
                self.sample_in = self.sample_gap
                return True
        return False

    def update(
        self,
        fell_back: int,
        n_queries: int,
        seconds: float | None = None,
        work: int | None = None,
        exact_work: int | None = None,
    ) -> None:
        """Fold in a call that ran the method on ``n_queries`` queries, of which ``fell_back`` fell
        back, in ``seconds`` (None: not timed, e.g. a multi-thread batch), with the ``work`` its
        kernel counted and ``exact_work``, exact search's estimate for the same queries (None: not
        counted)."""
        if n_queries > 0:
            a = 1.0 - (1.0 - POLICY_WEIGHT) ** n_queries
            self.rate += (fell_back / n_queries - self.rate) * a
            ratio = work / exact_work if work is not None and exact_work else None
            if ratio is not None:
                self.work = ratio if self.work is None else self.work + (ratio - self.work) * a
            per_query = self._sample(0, seconds, n_queries)
            paid = False
            if self.probing:
                paid = (
                    fell_back < n_queries
                    and not (POLICY_WORK and ratio is not None and ratio > self._work_skip())
                    and not (
                        POLICY_TIMED
                        and per_query is not None
                        and self.t_exact is not None
                        and per_query > self.t_exact
                    )
                )
                self.gap = POLICY_PROBE if paid else min(2 * self.gap, POLICY_PROBE_MAX)
                self.until = self.gap
                self.probing = False
                if paid:
                    self.sample_gap = self.sample_in = POLICY_PROBE
            if per_query is not None:
                # a probe that beat exact search's average restarts the method's average from its
                # time: an average that rose while pages were cold would otherwise keep the method
                # off for thousands of calls (only probes update it), while a method that is slower
                # after all climbs back over exact search's within a few calls
                self.t_method = per_query if paid else _ema(self.t_method, per_query)

    def exact_ran(self, n_queries: int, seconds: float | None) -> None:
        """Fold in a call that ran exact search instead of the method, in ``seconds`` (None: not
        timed, e.g. a multi-thread batch)."""
        per_query = self._sample(1, seconds, n_queries) if n_queries > 0 else None
        if per_query is not None:
            self.t_exact = _ema(self.t_exact, per_query)

    def _sample(self, which: int, seconds: float | None, n_queries: int) -> float | None:
        """Seconds per query of a timed call of a timed policy, or None to leave the averages be:
        the first timed call of each kind is not used (it pays for cold pages and the kernel's
        first dispatch, up to 50x a warm call, which a moving average would carry for long)."""
        if seconds is None or not self.timed:
            return None
        self.timed_calls[which] += 1
        return seconds / n_queries if self.timed_calls[which] > 1 else None


def exact_up_front(
    policy: FallbackPolicy | None,
    t0: float,
    index: Any,
    params: dict[str, Any],
    indptr: np.ndarray,
    terms: np.ndarray,
    weights: np.ndarray,
    k: int,
    scratch: Any,
    n_chunks: int,
    mask: np.ndarray,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Exact search's results when ``policy`` (None: the method never falls back) sends this call
    to exact search up front, its time since ``t0`` (``time.perf_counter()``) folded into the
    policy when the call is :func:`timed_call`; None when the method should run. The arguments are
    a method's ``search`` arguments."""
    if params.get("policy_decided"):  # the caller asked the policy for this call already
        return None
    timed = timed_call(params, n_chunks, mask)
    if policy is None or not policy.skip(timed):
        return None
    out = _exact_search()(index, params, indptr, terms, weights, k, scratch, n_chunks, mask)
    if timed:
        policy.exact_ran(len(indptr) - 1, time.perf_counter() - t0)
    return out


_EXACT_SEARCH: Any = None


def _exact_search() -> Any:
    """:func:`lsr.index.methods.exact.search`, imported once (this module is imported by it)."""
    global _EXACT_SEARCH
    if _EXACT_SEARCH is None:
        from lsr.index.methods import exact

        _EXACT_SEARCH = exact.search
    return _EXACT_SEARCH


def timed_call(params: Mapping[str, Any], n_chunks: int, mask: np.ndarray) -> bool:
    """Whether a call's time is folded into its policy: only with POLICY_TIMED on (so a search
    with it off does no timing bookkeeping), and only where the time tells how the paths compare:
    one thread, no starting threshold and no mask. A living index calls a segment's method with
    the k-th score other segments hold as a starting threshold and with its deletions as a mask:
    the same segment then costs more or less from call to call with its place in the search
    order, and a few such samples of exact search sent BMP to exact search on most segments
    (BENCHMARKS.md, issue 18), so those calls are not timed."""
    return POLICY_TIMED and n_chunks == 1 and params.get("init_thr") is None and mask.shape[0] == 0


def _ema(old: float | None, x: float) -> float:
    return x if old is None else old + (x - old) * POLICY_TIME_WEIGHT


NO_THRESHOLD = np.empty(0, np.float32)
NO_SELECTED = np.empty(0, np.int64)  # "scan the accumulator": one kernel signature with and without


def init_thr(params: Mapping[str, Any]) -> np.ndarray:
    """The starting thresholds a caller may pass a safe kernel as ``params["init_thr"]``:
    float32[nq] raw scores (before the quantization scale), one per query, under which a document
    may be left out (the living index passes the k-th score other segments already hold, so a
    segment's search prunes from its first posting). Empty (the default): no starting threshold."""
    thr = params.get("init_thr")
    return NO_THRESHOLD if thr is None else np.ascontiguousarray(thr, dtype=np.float32)


def selected_docs(params: Mapping[str, Any]) -> np.ndarray:
    """The allowed documents a caller may pass the exact kernel as ``params["selected"]``: int64
    internal doc numbers, ascending, all of them allowed by the mask (the living index passes its
    cached list under a selective filter, so selection reads a tenth of the accumulator under a
    10% filter instead of all of it). Empty (the default): scan the accumulator."""
    sel = params.get("selected")
    return NO_SELECTED if sel is None else np.ascontiguousarray(sel, dtype=np.int64)


def _discover() -> tuple[dict[str, Method], dict[str, Part]]:
    methods: list[Method] = []
    parts: list[Part] = []
    for info in pkgutil.iter_modules(__path__):  # type: ignore[name-defined]
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        parts.extend(getattr(module, "PARTS", ()))
        if getattr(module, "METHOD", None) is not None:
            methods.append(module.METHOD)
    methods.sort(key=lambda m: (m.order, m.name))
    parts.sort(key=lambda p: (p.order, p.name))
    part_map = {p.name: p for p in parts}
    for m in methods:
        missing = [p for p in m.parts if p not in part_map]
        if missing:
            raise ImportError(f"method {m.name!r} needs unknown part(s) {missing}")
    impact_arrays = list(fmt.IMPACT_ARRAYS)
    for p in parts:  # the parts' files join the format's table of arrays
        for name, (dtype, length) in p.arrays.items():
            spec = (None if dtype == "impacts" else dtype, length)
            if fmt.ARRAYS.setdefault(name, spec) != spec:
                raise ImportError(f"part {p.name!r}: array {name!r} disagrees with lsr.index.format.ARRAYS")
            if dtype == "impacts" and name not in impact_arrays:
                impact_arrays.append(name)
    fmt.IMPACT_ARRAYS = tuple(impact_arrays)
    return {m.name: m for m in methods}, part_map


METHODS, PARTS = _discover()
NAMES: tuple[str, ...] = tuple(METHODS)


def get(name: str) -> Method:
    """The record of method ``name`` (a clear error listing the known ones otherwise)."""
    try:
        return METHODS[name]
    except KeyError:
        raise LsrError(f"unknown method {name!r} (known: {', '.join(NAMES)})") from None


def check_methods(methods: str | Sequence[str]) -> tuple[str, ...]:
    """Validate a list of method names (a comma-separated string works; ``"all"`` means every
    method); ``exact`` is always included (it needs no part)."""
    if isinstance(methods, str):
        methods = [m.strip() for m in methods.split(",") if m.strip()]
    if "all" in methods:
        return NAMES
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise LsrError(f"unknown method(s) {', '.join(bad)} (available: {', '.join(NAMES)})")
    return tuple(dict.fromkeys(["exact", *methods]))


def parts_needed(methods: Sequence[str]) -> list[str]:
    """The parts ``methods`` read, in build order."""
    need = {p for m in methods for p in METHODS[m].parts}
    return [p for p in PARTS if p in need]


def wants_reorder(methods: Sequence[str]) -> bool:
    """Whether the parts ``methods`` need gain from graph-bisection reordering (the default)."""
    return any(PARTS[p].reorder for p in parts_needed(methods))


def param_help() -> str:
    """One line naming every method's parameters with their defaults and bounds (CLI help)."""
    out = []
    for m in METHODS.values():
        if m.params:
            ps = ", ".join(f"{p.name} ({p.default:g}, {p.low:g}..{p.high:g})" for p in m.params)
            out.append(f"{m.name} {ps}")
    return "; ".join(out)
