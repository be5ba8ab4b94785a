"""The FastAPI application: ``create_app(settings)``.

The lifespan hook opens the memory-mapped index once, loads the encoder the index records, and warms
the Numba kernels and the encoder, so /ready only turns 200 when the first real query will be fast.
Every search and encoding endpoint is a plain ``def``: FastAPI runs it on a bounded thread pool
(``LSR_SEARCH_THREADS``), so a slow query never stalls the event loop. The endpoints call the same
:class:`lsr.Retriever` API that users call.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from lsr.errors import LsrError
from lsr.service import schemas
from lsr.service.metrics import Metrics
from lsr.service.settings import Settings

STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")


class _State:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.index: Any = None
        self.retriever: Any = None  # lsr.Retriever: where text meets the index
        self.encoder: Any = None
        self.ready = False
        self.metrics = Metrics()


class CountResponses:
    """Pure ASGI middleware, wrapped around the whole app (outside Starlette's error middleware), that
    counts every response by method, route and status, whichever layer produced it: a 500 from an
    unhandled exception, a 413 or 422 from :class:`BodyGuard`, a 401 from a dependency, a 404."""

    def __init__(self, app: Any, metrics: Metrics, routes: Any) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes  # the router's routes, to name a route the router never reached

    def _route(self, scope: Any) -> str:
        route = scope.get("route")
        if route is not None:
            return getattr(route, "path", "unmatched")
        from starlette.routing import Match

        for r in self.routes:
            if r.matches(scope)[0] != Match.NONE:
                return getattr(r, "path", "unmatched")
        return "unmatched"

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status: list[int] = []

        async def send_counted(msg: Any) -> None:
            if msg["type"] == "http.response.start":
                status.append(msg["status"])
            await send(msg)

        try:
            await self.app(scope, receive, send_counted)
        except BaseException:
            if not status:
                status.append(500)
            raise
        finally:
            self.metrics.request(scope["method"], self._route(scope), status[0] if status else 500)


class BodyGuard:
    """ASGI middleware: reads the request body before the app (which only gets complete bodies) and
    answers what the app cannot answer well:

    * a body over ``limit`` bytes, with Content-Length or chunked: 413. Up to ``drain`` bytes of it
      are read and discarded first, so that the client, still sending, reads the 413 rather than a
      connection reset; a larger one (or one announced with ``Expect: 100-continue``) is answered at
      once and the connection closed.
    * a body that is not UTF-8 (JSON must be): 422.
    """

    def __init__(self, app: Any, limit: int, drain: int) -> None:
        self.app = app
        self.limit = limit
        self.drain = max(drain, limit)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", []))
        declared = headers.get(b"content-length", b"")
        declared_n = int(declared) if declared.isdigit() else None
        if declared_n is not None and declared_n > self.limit:
            if headers.get(b"expect", b"").lower() == b"100-continue" or declared_n > self.drain:
                await _reply(send, 413, f"request body larger than {self.limit} bytes", close=True)
                return
        chunks: list[bytes] = []
        seen = 0
        more = True
        while more:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return  # the client left: nobody to answer
            chunk = msg.get("body", b"")
            seen += len(chunk)
            more = msg.get("more_body", False)
            if seen <= self.limit:
                chunks.append(chunk)
            elif seen > self.drain:  # stop reading: answer now and close
                await _reply(send, 413, f"request body larger than {self.limit} bytes", close=True)
                return
        if seen > self.limit:
            await _reply(send, 413, f"request body larger than {self.limit} bytes")
            return
        body = b"".join(chunks)
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as e:
            await _reply(send, 422, f"request body is not valid UTF-8 (byte {e.start})")
            return
        replayed = False

        async def replay() -> Any:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: waits for http.disconnect

        await self.app(scope, replay, send)


async def _reply(send: Any, status: int, detail: str, close: bool = False) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _json_safe(obj: Any) -> Any:
    """``obj`` with what strict JSON cannot carry made printable: non-finite floats as strings, lone
    surrogates backslash-escaped."""
    if isinstance(obj, dict):
        return {_json_safe(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return repr(obj)
    if isinstance(obj, str):
        return obj.encode("utf-8", "backslashreplace").decode("utf-8")
    return obj


class _App(FastAPI):
    """FastAPI with :class:`CountResponses` around its whole middleware stack."""

    def build_middleware_stack(self) -> Any:
        return CountResponses(super().build_middleware_stack(), self.state.lsr.metrics, self.router.routes)


def _swagger_ui_dir() -> str | None:
    """The Swagger UI assets (swagger-ui-bundle.js, swagger-ui.css) that the ``swagger-ui-py``
    package ships, so /docs works offline; None when it is not installed (then /docs uses a CDN)."""
    spec = importlib.util.find_spec("swagger_ui")
    for base in (spec.submodule_search_locations or []) if spec else []:
        d = os.path.join(base, "static")
        if os.path.isfile(os.path.join(d, "swagger-ui-bundle.js")):
            return d
    return None


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app for ``settings`` (default: from ``LSR_*`` environment variables)."""
    settings = settings or Settings()  # type: ignore[call-arg]
    state = _State(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # noqa: ANN202
        import anyio.to_thread

        from lsr.index import open_index
        from lsr.retriever import Retriever

        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.search_threads
        if settings.ray and settings.writable:
            raise LsrError(
                "LSR_WRITABLE=1 with LSR_RAY: shards held in Ray actors are read-only; serve a sharded "
                "index's writes without --ray (its shards are then searched by threads in this process)"
            )
        if settings.ray:
            from lsr.distributed.search import open_on_ray

            state.index = open_on_ray(settings.index, settings.ray, settings.replicas)
        elif settings.writable:
            state.index = open_index(settings.index, writable=True)
        else:
            state.index = open_index(settings.index)
        state.retriever = Retriever(state.index)
        if state.index.encoder_config:
            import torch

            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
            torch.set_num_threads(settings.torch_threads or max(1, cores // settings.search_threads))
            state.encoder = state.retriever.encoder
        if settings.warmup:
            state.retriever.warmup()
        state.ready = True
        yield
        state.ready = False
        close = getattr(state.index, "close", None)  # a sharded index stops its shard actors
        if close is not None:
            close()

    swagger = _swagger_ui_dir()
    app = _App(
        title="lsr search",
        version=_version(),
        description="Learned sparse retrieval over a memory-mapped inverted index.",
        lifespan=lifespan,
        docs_url=None if swagger else "/docs",
        redoc_url=None,  # ReDoc would load from a CDN
    )
    app.state.lsr = state
    app.add_middleware(BodyGuard, limit=settings.max_body_bytes, drain=settings.max_drain_bytes)
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["*"],
        )

    if swagger:
        from fastapi.openapi.docs import get_swagger_ui_html
        from fastapi.staticfiles import StaticFiles

        app.mount("/docs/assets", StaticFiles(directory=swagger), name="swagger-ui")

        @app.get("/docs", include_in_schema=False)
        def docs(request: Request) -> HTMLResponse:
            root = request.scope.get("root_path", "")
            return get_swagger_ui_html(
                openapi_url=root + (app.openapi_url or "/openapi.json"),
                title=f"{app.title} - Swagger UI",
                swagger_js_url=root + "/docs/assets/swagger-ui-bundle.js",
                swagger_css_url=root + "/docs/assets/swagger-ui.css",
                swagger_favicon_url=root + "/docs/assets/favicon-32x32.png",
            )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own handler echoes the input, which may hold a NaN or a lone surrogate that JSON
        # cannot carry (a 500 while rendering the 422)
        return JSONResponse(status_code=422, content={"detail": _json_safe(jsonable_encoder(exc.errors()))})

    from lsr.index.shards import ShardUnavailableError

    @app.exception_handler(ShardUnavailableError)
    async def shard_down(request: Request, exc: ShardUnavailableError) -> JSONResponse:
        return JSONResponse(status_code=503, content={"detail": str(exc)}, headers={"Retry-After": "1"})

    @app.exception_handler(LsrError)
    async def lsr_error(request: Request, exc: LsrError) -> JSONResponse:
        return JSONResponse(status_code=400, content={"detail": _json_safe(str(exc))})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            status_code=exc.status_code, content={"detail": _json_safe(exc.detail)}, headers=exc.headers
        )

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
        return {
            "status": "ready",
            "methods": list(state.index.methods),
            "encoder": state.encoder is not None,
            **living_status(state.index),
        }

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
