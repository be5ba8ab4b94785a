"""Beyond one machine: encode, build and search on Ray (the ``ray`` extra: ``pip install 'lsr[ray]'``).

- :func:`~lsr.distributed.encode.encode_on_ray`: Ray Data feeds corpus blocks to a pool of encoder
  actors (one model load per actor) that write vector parts; resumable (a part whose input block
  has the same content hash is skipped).
- :func:`~lsr.distributed.build.build_on_ray`: one index shard per group of contiguous blocks, built
  by Ray tasks in parallel, plus ``shards.json`` (:mod:`lsr.index.shards`).
- :func:`~lsr.distributed.search.open_on_ray`: a sharded index whose shards live in Ray actors (one
  per shard and replica, memory-mapped), restarted when they die.

``address`` everywhere: ``None`` or ``"local"`` starts a Ray on this machine; ``"auto"`` joins the
cluster this machine is part of; ``"HOST:PORT"`` or ``"ray://HOST:PORT"`` joins that cluster.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from lsr.errors import LsrError

# the object store of a local Ray: small, the pipelines pass block descriptors and top-k lists only
LOCAL_OBJECT_STORE_BYTES = 256 * 1024**2


def require_ray() -> Any:
    """Import ray, or raise a one-line error naming the extra to install."""
    try:
        import ray
    except ImportError:
        raise LsrError("this needs Ray: pip install 'lsr[ray]'") from None
    return ray


def _host_port(address: str) -> tuple[str, int] | None:
    a = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = a.rpartition(":")
    if not sep or not port.isdigit() or not host:
        return None
    return host.strip("[]"), int(port)


def init_ray(address: str | None = None, num_cpus: int | None = None, connect_timeout_s: float = 3.0) -> Any:
    """Connect to Ray (see the module docs for ``address``) unless already connected; returns ``ray``.

    A local Ray gets ``num_cpus`` (default: this machine's cores), a small object store and no
    dashboard. An address nothing answers at fails at once with a one-line error (ray.init itself
    would retry for a minute)."""
    ray = require_ray()
    local = address in (None, "", "local")
    if not local and address != "auto":
        hp = _host_port(address)  # type: ignore[arg-type]
        if hp is None:
            raise LsrError(f"Ray address {address!r} is not HOST:PORT, ray://HOST:PORT, auto or local")
        try:
            with socket.create_connection(hp, timeout=connect_timeout_s):
                pass
        except OSError as e:
            raise LsrError(f"cannot reach a Ray cluster at {address} ({e.strerror or e})") from None
    if ray.is_initialized():
        return ray
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        if local:
            ray.init(
                num_cpus=num_cpus or os.cpu_count() or 1,
                object_store_memory=LOCAL_OBJECT_STORE_BYTES,
                include_dashboard=False,
                log_to_driver=False,
            )
        else:
            ray.init(address=address, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise LsrError(f"cannot start or join Ray at {address or 'local'}: {first}") from None
    return ray


def gpu_count() -> int:
    """GPUs the connected Ray cluster offers (0 on a CPU-only cluster)."""
    import ray

    return int(ray.cluster_resources().get("GPU", 0))


def cpu_count() -> int:
    """CPUs the connected Ray cluster offers."""
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def ray_get(refs: Any, timeout: float | None = None) -> Any:
    """``ray.get`` that re-raises a task's :class:`LsrError` as itself (one line, not Ray's traceback)."""
    import ray

    try:
        return ray.get(refs, timeout=timeout)
    except ray.exceptions.RayTaskError as e:
        cause = getattr(e, "cause", None)
        if isinstance(cause, LsrError):
            raise LsrError(str(cause)) from None
        raise
