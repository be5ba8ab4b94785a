"""The FastAPI application: ``create_app(settings)``.

The lifespan hook opens the memory-mapped index once, loads the encoder the index records, and warms
the Numba kernels and the encoder, so /ready only turns 200 when the first real query will be fast.
Every search and encoding endpoint is a plain ``def``: FastAPI runs it on a bounded thread pool
(``LSR_SEARCH_THREADS``), so a slow query never stalls the event loop. The endpoints call the same
:class:`lsr.index.Index` API that users call.
"""

from __future__ import annotations

import json
import os
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse

from lsr.errors import LsrError
from lsr.service import schemas
from lsr.service.metrics import Metrics
from lsr.service.settings import Settings

STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")


class _State:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.index: Any = None
        self.encoder: Any = None
        self.ready = False
        self.metrics = Metrics()


class BodyLimit:
    """ASGI middleware: refuse request bodies over ``limit`` bytes with 413, before parsing them."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                await _too_large(send, self.limit)
                return
        seen = 0

        async def limited() -> Any:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.limit:
                    raise _BodyTooLarge
            return msg

        try:
            await self.app(scope, limited, send)
        except _BodyTooLarge:
            await _too_large(send, self.limit)


class _BodyTooLarge(Exception):
    pass


async def _too_large(send: Any, limit: int) -> None:
    body = json.dumps({"detail": f"request body larger than {limit} bytes"}).encode()
    await send(
        {"type": "http.response.start", "status": 413, "headers": [(b"content-type", b"application/json")]}
    )
    await send({"type": "http.response.body", "body": body})


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app for ``settings`` (default: from ``LSR_*`` environment variables)."""
    settings = settings or Settings()  # type: ignore[call-arg]
    state = _State(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # noqa: ANN202
        import anyio.to_thread

        from lsr.index import open_index

        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.search_threads
        state.index = (
            open_index(settings.index, writable=True) if settings.writable else open_index(settings.index)
        )
        if state.index.encoder_config:
            import torch

            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
            torch.set_num_threads(settings.torch_threads or max(1, cores // settings.search_threads))
            state.encoder = state.index.load_encoder()
        if settings.warmup:
            state.index.warmup()
            if state.encoder is not None:
                state.encoder.encode_queries(["warm up the encoder"])
        state.ready = True
        yield
        state.ready = False
        if settings.writable:
            state.index.close()

    app = FastAPI(
        title="lsr search",
        version=_version(),
        description="Learned sparse retrieval over a memory-mapped inverted index.",
        lifespan=lifespan,
    )
    app.state.lsr = state
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["*"],
        )

    @app.middleware("http")
    async def count_requests(request: Request, call_next: Any) -> Any:
        response = await call_next(request)
        route = request.scope.get("route")
        state.metrics.request(request.method, getattr(route, "path", "unmatched"), response.status_code)
        return response

    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)

    @app.exception_handler(LsrError)
    async def lsr_error(request: Request, exc: LsrError) -> JSONResponse:
        return JSONResponse(status_code=400, content={"detail": str(exc)})

    def api_key(request: Request) -> None:
        if settings.api_key and request.headers.get("x-api-key") != settings.api_key:
            raise HTTPException(status_code=401, detail="missing or wrong X-API-Key header")

    def ready_index() -> Any:
        if not state.ready:
            raise HTTPException(status_code=503, detail="index not loaded yet")
        return state.index

    from lsr.service.routes import add_routes

    add_routes(app, state, Depends(api_key), Depends(ready_index))
    from lsr.service.writes import add_write_routes, living_metrics, living_status

    add_write_routes(app, state, Depends(ready_index))

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        with open(os.path.join(STATIC, "index.html"), encoding="utf-8") as f:
            return HTMLResponse(f.read())

    @app.get("/health", response_model=schemas.Status, response_model_exclude_none=True)
    def health() -> dict:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get(
        "/ready",
        response_model=schemas.Status,
        response_model_exclude_none=True,
        responses={503: {"model": schemas.Status}},
    )
    def ready() -> Any:
        """Readiness: index and encoder loaded, kernels warmed."""
        if not state.ready:
            return JSONResponse(status_code=503, content={"status": "loading"})
        return {"status": "ready", "methods": list(state.index.methods), **living_status(state.index)}

    @app.get("/metrics", response_class=PlainTextResponse)
    def metrics() -> PlainTextResponse:
        """Prometheus metrics: request counts, errors, search latency histograms by method."""
        body = state.metrics.render() + (living_metrics(state.index) if state.ready else "")
        return PlainTextResponse(body, media_type="text/plain; version=0.0.4")

    return app


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory lsr.service.app:app_from_env`` (settings from the environment)."""
    return create_app()


def _version() -> str:
    from lsr import __version__

    return __version__
