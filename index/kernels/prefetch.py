"""A software prefetch for Numba kernels: ``prefetch(arr, i)`` asks the CPU to start loading the
cache line holding ``arr[i]`` and returns at once.

Why: Seismic scores each block's documents from the forward index, and those documents lie
scattered over hundreds of MB, so every one costs cache misses that the hardware prefetcher cannot
predict. Announcing all of a block's documents before scoring the first overlaps those misses
(Seismic's Rust code does the same); on the real 302k set it cut the search time by about a
quarter (BENCHMARKS.md, "Session of 2026-12-01").

It is a hint (LLVM's ``llvm.prefetch``: read, high locality, data cache) with no effect on
results, so its reference twin is doing nothing (:func:`prefetch_reference`); the kernels that
call it are compared with their own twins as before. An address past the array is never
dereferenced by a prefetch, but callers keep ``i`` in bounds anyway.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic


@intrinsic
def prefetch(typingctx, arr, idx):  # noqa: ARG001 (typingctx is Numba's)
    """Prefetch the cache line of ``arr[idx]`` (1-d array, integer index) for reading."""
    if not isinstance(arr, types.Array) or not isinstance(idx, types.Integer):
        return None
    sig = types.void(arr, idx)

    def codegen(context, builder, signature, args):
        aryty, _ = signature.args
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]], wraparound=False)
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0i8")
        # (address, rw = 0 read, locality = 3 keep in all levels, cache type = 1 data)
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return sig, codegen


def prefetch_reference(arr, idx) -> None:  # noqa: ARG001
    """Plain-Python twin of :func:`prefetch`: a hint changes no value, so it does nothing."""
    return None
