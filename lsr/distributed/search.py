"""Searching a sharded index whose shards live in Ray actors.

One actor per shard (and per replica with ``replicas`` > 1) memory-maps its shard and runs the
search kernels; the caller keeps the shards' ids and stored text (memory-mapped too: it needs the
shard directories on a shared filesystem, or a copy, to turn doc numbers into ids). An actor that
dies is restarted by Ray (``max_restarts``) and reopens its shard; a search that reaches a shard
while none of its replicas is up raises :class:`~lsr.index.shards.ShardUnavailableError` (the HTTP
service answers 503), and with ``replicas`` >= 2 it is answered by another replica."""

from __future__ import annotations

import itertools
import os
from typing import Any

import numpy as np

from lsr.distributed import init_ray
from lsr.index.shards import ShardedIndex, ShardUnavailableError, open_sharded

MAX_RESTARTS = 1000  # effectively always: a shard that keeps dying is a bug to see in the logs


class ShardActor:
    """Holds one memory-mapped shard (``Index``) in a Ray actor process and searches it."""

    def __init__(self, shard_dir: str, threads: int = 1) -> None:
        import numba

        from lsr.index.searcher import Index

        numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
        self.index = Index(shard_dir)
        self.index.warmup()

    def search(
        self,
        indptr: np.ndarray,
        terms: np.ndarray,
        weights: np.ndarray,
        k: int,
        threads: int,
        method: str,
        params: dict[str, Any],
    ) -> tuple[np.ndarray, np.ndarray]:
        return self.index.search_arrays(indptr, terms, weights, k, threads, method, **params)

    def pid(self) -> int:
        return os.getpid()


class RayBackend:
    """The :class:`~lsr.index.shards.ShardBackend` of shards held in Ray actors."""

    def __init__(self, index: ShardedIndex, replicas: int = 1, timeout_s: float = 60.0) -> None:
        import ray

        if replicas < 1:
            from lsr.errors import LsrError

            raise LsrError(f"replicas must be >= 1, got {replicas}")
        remote = ray.remote(ShardActor).options(
            max_restarts=MAX_RESTARTS,
            max_task_retries=0,  # a call to a dead actor fails fast (503 or another replica), never hangs
            num_cpus=0,  # the actors are I/O and memory bound; place them by memory, across nodes
            scheduling_strategy="SPREAD",
        )
        self.dirs = list(index.shard_dirs)
        self.actors = [[remote.remote(d) for _ in range(replicas)] for d in self.dirs]
        self.timeout_s = timeout_s
        self._turn = itertools.count()
        ray.get([a.pid.remote() for row in self.actors for a in row])  # up and warmed

    def search(
        self,
        indptr: np.ndarray,
        terms: np.ndarray,
        weights: np.ndarray,
        k: int,
        threads: int,
        method: str,
        params: dict[str, Any],
    ) -> list[tuple[np.ndarray, np.ndarray]]:

        args = (indptr, terms, weights, k, threads, method, params)
        first = next(self._turn)
        n_rep = len(self.actors[0])
        refs = [row[first % n_rep].search.remote(*args) for row in self.actors]
        out = []
        for s, ref in enumerate(refs):
            out.append(self._get(s, ref, first, args))
        return out

    def _get(self, s: int, ref: Any, first: int, args: tuple) -> tuple[np.ndarray, np.ndarray]:
        import ray

        row = self.actors[s]
        for attempt in range(len(row)):
            if attempt:
                ref = row[(first + attempt) % len(row)].search.remote(*args)
            try:
                return ray.get(ref, timeout=self.timeout_s)
            except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError):
                continue
            except ray.exceptions.GetTimeoutError:
                break
        raise ShardUnavailableError(
            f"shard {s} ({os.path.basename(self.dirs[s])}) is unavailable: its Ray actor"
            f"{'s' if len(row) > 1 else ''} died and {'are' if len(row) > 1 else 'is'} restarting; retry shortly"
        )

    def close(self) -> None:
        import ray

        for row in self.actors:
            for a in row:
                ray.kill(a, no_restart=True)


def open_on_ray(path: str | os.PathLike, address: str | None = None, replicas: int = 1) -> ShardedIndex:
    """Open a sharded index with its shards in Ray actors (``address``: see :mod:`lsr.distributed`).
    Shards that took writes are refused (Ray actors serve shards never written), before Ray starts."""
    from lsr.index.living_shards import has_writes

    if has_writes(path):
        open_sharded(path)  # raises the one-line error naming the way out
    init_ray(address)
    return open_sharded(path, backend=lambda idx: RayBackend(idx, replicas))
