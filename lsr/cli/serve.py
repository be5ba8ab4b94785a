"""``lsr serve``: run the HTTP service (uvicorn) over an index."""

from __future__ import annotations

import os
from typing import Any

from lsr.cli.common import check_positive


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
    open_index(args.index)  # fail here, with a clear message, rather than in every worker
    os.environ["LSR_INDEX"] = os.path.abspath(args.index)  # workers read their settings from the environment
    if args.device:
        from lsr.encoders.base import resolve_device

        os.environ["LSR_DEVICE"] = resolve_device(args.device)  # read by load_encoder in each worker
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
