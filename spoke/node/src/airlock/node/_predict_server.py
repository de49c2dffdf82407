"""The node's local inference endpoint (FastAPI), loopback by default.

::

    POST /v1/predict/{model}   {"inputs": [[...], ...]}
                               → {"model", "version", "role", "outputs": {name: values}}
    GET  /healthz              → {"status": "ok", "node_id"}
    GET  /v1/status            → the node's state (families, slots, refusals, counter)
    GET  /metrics              → Prometheus text (:mod:`.node_metrics`); loopback
                                 clients only unless ``agent.metrics_remote`` is true

Errors answer ``{"error", "type", "message", "hint", ...}``: 404 for a model
this node does not serve, 503 while nothing is committed for it, 400 for
inputs that do not fit the model, 500 when the model version raised (counted
as an error of that version). Handlers are synchronous: FastAPI runs them in
its thread pool, beside the agent's poll loop.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from airlock.bundles.errors import AirlockError, NotFoundError, UsageError
from airlock.bundles.httpmetrics import RequestMetricsMiddleware, is_loopback
from airlock.node._inference import InferenceFailedError, NotServingError, Predictor
from airlock.node._metrics import METRICS_REMOTE_SETTING, NodeMetrics

PREDICT_PATH = "/v1/predict/{model}"


class PredictRequest(BaseModel):
    """The body of a predict request: one array of input rows."""

    inputs: list[Any]


class MetricsRefusedError(UsageError):
    """``/metrics`` asked by a remote client while only loopback scrapers are allowed (403)."""


def status_code(exc: AirlockError) -> int:
    """The HTTP status of an error from :meth:`Predictor.predict`."""
    if isinstance(exc, MetricsRefusedError):
        return 403
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, NotServingError):
        return 503
    if isinstance(exc, UsageError):
        return 400
    if isinstance(exc, InferenceFailedError):
        return 500
    return 500


def create_app(
    predictor: Predictor,
    status: Callable[[], dict[str, Any]],
    node_id: str = "",
    *,
    metrics_remote: bool = False,
) -> FastAPI:
    """The predict app over ``predictor``; ``status`` gives ``GET /v1/status``'s answer.

    ``metrics_remote`` serves ``/metrics`` to any client, not only loopback ones.
    """
    app = FastAPI(title="Airlock node agent", docs_url=None, redoc_url=None, openapi_url=None)
    metrics = NodeMetrics(status)
    predictor.recorder.add_listener(metrics.observe_model)
    app.add_middleware(RequestMetricsMiddleware, metrics=metrics)

    @app.exception_handler(AirlockError)
    def airlock_error(_request: Request, exc: AirlockError) -> JSONResponse:
        return JSONResponse(exc.to_dict(), status_code=status_code(exc))

    @app.post(PREDICT_PATH)
    def predict(model: str, body: PredictRequest) -> dict[str, Any]:
        return predictor.predict(model, body.inputs).to_dict()

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {"status": "ok", "node_id": node_id}

    @app.get("/v1/status")
    def node_status() -> dict[str, Any]:
        return status()

    @app.get("/metrics")
    def prometheus(request: Request) -> Response:
        if not metrics_remote and not is_loopback(request):
            raise MetricsRefusedError(
                "/metrics answers loopback clients only",
                hint=f"scrape from this host, or set {METRICS_REMOTE_SETTING} = true",
            )
        payload, content_type = metrics.render()
        return Response(payload, media_type=content_type)

    return app


class PredictServer:
    """The app on uvicorn in a background thread (``agent run``)."""

    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        import uvicorn

        config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="predict", daemon=True)

    def start(self) -> None:
        """Starts serving."""
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Asks the server to finish and waits for it."""
        self._server.should_exit = True
        self._thread.join(timeout)
