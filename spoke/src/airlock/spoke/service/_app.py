"""The spoke's HTTP API (``airlock spoke serve``): the local TUF mirror, node reports, metrics.

Routes (see :mod:`airlock.bundles.protocol`)::

    GET  /v1/image/{name}                         Image metadata (airlock.spoke.service._mirror)
    GET  /v1/image/targets/{model}/{version}/{f}  staged, unrevoked model files
    GET  /v1/nodes/{node}/director/{name}         the node's site-director metadata
    POST /v1/nodes/{node}/reports                 signed version report
    POST /v1/nodes/{node}/metrics                 signed metrics report
    GET  /metrics                                 Prometheus (loopback clients only by default)
    GET  /healthz

Every route under ``/v1`` authenticates the node first
(:mod:`airlock.spoke.service._auth`); an unknown ``/v1`` path is a 404 only
for an authenticated node. Errors are JSON ``{"error", "message", "hint"}``.
Database work runs in the server's thread pool on the home's single engine.
The ``periodic`` callables (site-director refresh, rollout engine tick) run
in one background thread while the app runs; a failure is logged and the
loop carries on.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from airlock.bundles.clock import Clock
from airlock.bundles.errors import (
    AirlockError,
    ConflictError,
    FreshnessError,
    NotFoundError,
    SignatureError,
    UsageError,
    VerificationError,
    WrongSiteError,
)
from airlock.bundles.httpmetrics import is_loopback
from airlock.bundles.protocol import API_PREFIX, IMAGE_PATH, NODES_PATH
from airlock.spoke.director import _director as site_director
from airlock.spoke.service import _mirror as mirror
from airlock.spoke.service._auth import AuthenticatedNode, NodeAuthenticator, RequestRefused
from airlock.spoke.service._ingest import Ingest
from airlock.spoke.service._metrics import RequestMetricsMiddleware, ServiceMetrics
from airlock.spoke.site._home import SpokeHome

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
"""Largest report or metrics upload accepted (reports are a few kilobytes)."""
METRICS_REMOTE_SETTING = "service.metrics_remote"
"""``airlock.toml`` setting (env ``AIRLOCK_SERVICE_METRICS_REMOTE``): serve /metrics to all."""


def create_app(
    home: SpokeHome,
    clock: Clock,
    periodic: Sequence[Callable[[], None]] = (),
    period_seconds: float = 1.0,
) -> FastAPI:
    """Builds the spoke service for ``home``.

    Args:
        home: The spoke home (its engine is shared by every request).
        clock: The service's clock (request freshness, received times).
        periodic: Callables run every ``period_seconds`` in a background thread
            while the app runs.
        period_seconds: The pause between two rounds of ``periodic``.

    Returns:
        The FastAPI app; serve it with uvicorn (see :mod:`airlock.spoke.cli._serve`).
    """
    metrics = ServiceMetrics(home.engine)
    auth = NodeAuthenticator(home, clock, metrics)
    ingest = Ingest(home, clock, metrics)
    metrics_remote = _truthy(home.config.get(METRICS_REMOTE_SETTING, False))

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        with _PeriodicRunner(periodic, period_seconds):
            yield

    app = FastAPI(
        title="Airlock spoke", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None
    )
    app.state.auth = auth
    app.add_middleware(RequestMetricsMiddleware, metrics=metrics)
    _install_error_handlers(app)

    @app.get(f"{IMAGE_PATH}/targets/{{model}}/{{version}}/{{filename}}")
    def image_target(model: str, version: str, filename: str, _caller: Caller) -> Response:
        with Session(home.engine) as session:
            path = mirror.image_target(home, session, f"{model}/{version}/{filename}")
        if path is None:
            raise NotFoundError(f"no staged model file {model}/{version}/{filename}")
        return FileResponse(path, media_type="application/octet-stream")

    @app.get(f"{IMAGE_PATH}/{{name}}")
    def image_metadata(name: str, _caller: Caller) -> Response:
        with Session(home.engine) as session:
            data = mirror.image_metadata(session, name)
        if data is None:
            raise NotFoundError(f"the spoke has no Image metadata {name}")
        return Response(data, media_type="application/json")

    @app.get(f"{NODES_PATH}/{{node}}/director/{{name}}")
    def director_metadata(name: str, caller: Caller) -> Response:
        with Session(home.engine) as session:
            data = site_director.node_metadata(
                session, caller.node_id, name
            )  # N.root.json: the site root
        if data is None:
            raise NotFoundError(f"the spoke has no site-director metadata {name} for this node")
        return Response(data, media_type="application/json")

    @app.post(f"{NODES_PATH}/{{node}}/reports", status_code=202)
    def post_report(request: Request, caller: Caller) -> dict[str, int]:
        return {"accepted": ingest.version_report(caller, request.state.body)}

    @app.post(f"{NODES_PATH}/{{node}}/metrics", status_code=202)
    def post_metrics(request: Request, caller: Caller) -> dict[str, int]:
        return {"accepted": ingest.metrics(caller, request.state.body)}

    @app.api_route(f"{API_PREFIX}/{{rest:path}}", methods=["GET", "POST", "PUT", "DELETE"])
    def unknown(rest: str, _caller: Caller) -> Response:
        raise NotFoundError(f"no such API path /{rest}")

    @app.get("/metrics")
    def prometheus(request: Request) -> Response:
        if not metrics_remote and not is_loopback(request):
            raise RequestRefused(
                403,
                UsageError(
                    "/metrics answers loopback clients only",
                    hint=f"scrape from this host, or set {METRICS_REMOTE_SETTING} = true",
                ),
            )
        payload, content_type = metrics.render()
        return Response(payload, media_type=content_type)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


async def _authenticated(request: Request) -> AuthenticatedNode:
    """The dependency of every ``/v1`` route: reads the body, authenticates the node."""
    body = await _read_body(request)
    request.state.body = body
    auth: NodeAuthenticator = request.app.state.auth
    return await run_in_threadpool(
        auth.authenticate,
        request.headers,
        request.method,
        _signed_path(request),
        body,
        request.path_params.get("node"),
    )


Caller = Annotated[AuthenticatedNode, Depends(_authenticated)]
"""A route parameter of this type makes the route node-authenticated."""


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestRefused)
    async def refused(_request: Request, exc: RequestRefused) -> JSONResponse:
        return error_response(exc.status, exc.error)

    @app.exception_handler(AirlockError)
    async def airlock_error(_request: Request, exc: AirlockError) -> JSONResponse:
        return error_response(status_of(exc), exc)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, UsageError(str(exc.detail)))

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:
        logger.error("request failed unexpectedly (%s)", type(exc).__name__)
        return error_response(500, AirlockError("the spoke could not handle the request"))


def error_response(status: int, error: AirlockError) -> JSONResponse:
    """The JSON error body every refusal uses."""
    return JSONResponse(
        {"error": error.kind, "message": error.message, "hint": error.hint}, status_code=status
    )


def status_of(error: AirlockError) -> int:
    """The HTTP status of an error raised while handling a request."""
    if isinstance(error, NotFoundError):
        return 404
    if isinstance(error, ConflictError):
        return 409
    if isinstance(error, UsageError):
        return 400
    if isinstance(error, WrongSiteError):
        return 403
    if isinstance(error, SignatureError | FreshnessError):
        return 401
    if isinstance(error, VerificationError):
        return 400
    return 500


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise RequestRefused(413, UsageError(f"the request body is over {MAX_BODY_BYTES} bytes"))
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise RequestRefused(
                413, UsageError(f"the request body is over {MAX_BODY_BYTES} bytes")
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _signed_path(request: Request) -> str:
    """The path with query exactly as the client sent it (what the node signed)."""
    raw = request.scope.get("raw_path")
    path = raw.decode("latin-1") if isinstance(raw, bytes) and raw else request.url.path
    path = path.split("?", 1)[0]
    query = request.scope.get("query_string", b"")
    return f"{path}?{query.decode('latin-1')}" if query else path


def _truthy(value: Any) -> bool:
    return value if isinstance(value, bool) else str(value).lower() in {"1", "true", "yes"}


class _PeriodicRunner:
    """Runs callables in a background thread every ``period`` seconds until stopped."""

    def __init__(self, tasks: Sequence[Callable[[], None]], period: float) -> None:
        self._tasks = list(tasks)
        self._period = period
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> _PeriodicRunner:
        if self._tasks:
            self._thread = threading.Thread(
                target=self._loop, name="airlock-spoke-periodic", daemon=True
            )
            self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.is_set():
            for task in self._tasks:
                if self._stop.is_set():
                    return
                try:
                    task()
                except Exception as exc:  # keep serving; say what failed, never secrets
                    what = exc.message if isinstance(exc, AirlockError) else "unexpected error"
                    logger.error(
                        "periodic task %s failed: %s (%s)",
                        getattr(task, "__name__", "task"),
                        what,
                        type(exc).__name__,
                    )
            self._stop.wait(self._period)
