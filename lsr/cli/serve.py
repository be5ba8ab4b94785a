"""``lsr serve``: run the HTTP service (uvicorn) over an index."""

from __future__ import annotations

import os
from typing import Any

from lsr.cli.common import apply_threads, check_positive


def check_port_free(host: str, port: int) -> None:
    """Raise :class:`LsrError` (``port N on HOST is in use``) unless ``host:port`` can be bound now,
    as uvicorn binds it (SO_REUSEADDR, so a port in TIME_WAIT counts as free)."""
    import errno
    import socket

    from lsr.errors import LsrError

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise LsrError(f"cannot resolve host {host!r}: {e.strerror}") from None
    family, kind, proto, _, addr = infos[0]
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(addr)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise LsrError(f"port {port} on {host} is in use") from None
            raise LsrError(f"cannot listen on {host}:{port}: {e.strerror}") from None


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
    check_port_free(args.host, args.port)  # before loading the index: a busy port fails at once
    threads = apply_threads(args.threads, torch=False)
    if args.threads != "auto" or "LSR_TORCH_THREADS" not in os.environ:
        os.environ["LSR_TORCH_THREADS"] = str(threads)  # the service sets torch's threads from it
    open_index(args.index)  # fail here, with a clear message, rather than in every worker
    os.environ["LSR_INDEX"] = os.path.abspath(args.index)  # workers read their settings from the environment
    if args.device:
        from lsr.encoders.base import resolve_device

        os.environ["LSR_DEVICE"] = resolve_device(args.device)  # read by load_encoder in each worker
    if args.ray is not None:
        from lsr.index.shards import is_sharded

        check_positive("replicas", args.replicas)
        if not is_sharded(args.index):
            raise LsrError(
                f"{args.index}: --ray needs a sharded index (build it with `lsr index --shards N`)"
            )
        if args.workers != 1:
            raise LsrError("--ray serves with one worker (the shard actors do the parallel work)")
        if os.environ.get("LSR_WRITABLE", "").lower() in ("1", "true", "yes"):
            raise LsrError(
                "--ray serves shards read-only: serve a sharded index's writes (LSR_WRITABLE=1) without --ray"
            )
        from lsr.distributed import init_ray

        init_ray(args.ray)  # a bad address fails here, once
        os.environ["LSR_RAY"] = args.ray
        os.environ["LSR_REPLICAS"] = str(args.replicas)
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
