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
    if os.environ.get("LSR_WRITABLE", "").lower() in ("1", "true", "yes") and args.workers > 1:
        raise LsrError(
            "LSR_WRITABLE=1 serves writes from one process: use --workers 1 (one writer per index)"
        )
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
