"""``lsr warmup``: compile every numba kernel (build and search, every method and impact type) once."""

from __future__ import annotations

import sys
import time
from typing import Any

from lsr.cli.common import summary


def run(args: Any) -> int:
    from lsr.index import format as fmt
    from lsr.index.warmup import mark_warm, warm_kernels

    quantizations = args.quantization or list(fmt.QUANTIZATIONS)
    print(
        f"compiling the build and search kernels for {', '.join(quantizations)} impacts (later runs load "
        "them from numba's cache)",
        file=sys.stderr,
    )
    t0 = time.perf_counter()
    seconds = warm_kernels(quantizations, show_progress=True)
    mark_warm(seconds)
    per = ", ".join(f"{q} {s:.1f} s" for q, s in seconds.items())
    summary(f"kernels ready in {time.perf_counter() - t0:.1f} s ({per})")
    return 0


def _quantization_of(args: Any) -> list[str]:
    """The impact type the command will build or search with (none when it cannot be told: the
    command then reports its own error)."""
    if args.command == "index":
        return [args.quantization]
    if args.command in ("search", "bench", "serve"):
        from lsr.index import format as fmt

        try:
            return [fmt.read_manifest(args.index)["quantization"]["dtype"]]
        except Exception:  # noqa: BLE001 - the command itself says what is wrong with the index
            return []
    return ["float32"]  # eval


def first_run(args: Any) -> None:
    """Before the first command that builds or searches an index of an impact type on this machine
    (and kernel version), warm every kernel for that type with a progress line, so a new user
    waits once and not per method. ``LSR_NO_WARMUP=1`` skips it; a failure only warns (the command
    then compiles lazily)."""
    from lsr.index.warmup import mark_warm, needs_warmup, warm_kernels

    if not needs_warmup():
        return
    todo = needs_warmup(_quantization_of(args))
    if not todo:
        return
    print(
        f"lsr: first {', '.join(todo)} run here: compiling the build and search kernels of every method "
        "once (`lsr warmup` does this ahead; LSR_NO_WARMUP=1 skips it)",
        file=sys.stderr,
    )
    try:
        mark_warm(warm_kernels(todo, show_progress=True))
    except Exception as e:  # noqa: BLE001 - warming is an optimisation, never a reason to fail
        print(f"lsr: warning: warming the kernels failed ({e}); they compile on first use", file=sys.stderr)
