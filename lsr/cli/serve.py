"""``lsr serve``: run the HTTP service (uvicorn) over an index."""

from __future__ import annotations

import os
from typing import Any

from lsr.cli.common import apply_threads, check_positive


def run(args: Any) -> int:
    from lsr.errors import LsrError
    from lsr.index import open_index

    check_positive("workers", args.workers)
    if not 0 < args.port < 65536:
        raise LsrError(f"--port must be in 1..65535, got {args.port}")
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise LsrError("the service needs the 'serve' extra: pip install 'lsr[serve]'") from None
    threads = apply_threads(args.threads, torch=False)
    if args.threads != "auto" or "LSR_TORCH_THREADS" not in os.environ:
        os.environ["LSR_TORCH_THREADS"] = str(threads)  # the service sets torch's threads from it
    open_index(args.index)  # fail here, with a clear message, rather than in every worker
    os.environ["LSR_INDEX"] = os.path.abspath(args.index)  # workers read their settings from the environment
    import uvicorn

    uvicorn.run(
        "lsr.service.app:app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
    )
    return 0
