"""HTTP request metrics shared by the spoke service and the node agent (no database).

:class:`RequestMetricsMiddleware` counts every request by route *template*
(``/v1/predict/{model}``, never the concrete path) and status, and reports
its latency to anything with an ``observe_request`` method; both
``/metrics`` endpoints use the same buckets (:data:`LATENCY_BUCKETS`).
:class:`HttpMetrics` is that observer's common part: one registry per app,
the request counter and latency histogram under the app's prefix, and the
text exposition. :func:`is_loopback` is who may scrape ``/metrics`` by default.
"""

from __future__ import annotations

import ipaddress
import time
from typing import Any, Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from starlette.requests import Request

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
UNMATCHED_ROUTE = "unmatched"
TRUE_WORDS = frozenset({"1", "true", "yes"})


class RequestObserver(Protocol):
    """What the middleware reports each request to."""

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """Counts one request and its latency."""


def truthy(value: Any) -> bool:
    """A boolean setting from ``airlock.toml`` (a bool) or the environment (a word)."""
    return value if isinstance(value, bool) else str(value).lower() in TRUE_WORDS


def is_loopback(request: Request) -> bool:
    """Whether the request comes from this host (a loopback address)."""
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class HttpMetrics:
    """One app's registry with its HTTP request counter and latency histogram.

    One :class:`prometheus_client.CollectorRegistry` per app, so that two apps
    in one process (tests, the simulator) never share counters.

    Args:
        prefix: The series' prefix (``airlock_spoke``, ``airlock_agent``).
        what: What the requests are, for the help texts (``API``).
    """

    def __init__(self, prefix: str, what: str) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            f"{prefix}_http_requests",
            f"{what} requests by route template, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            f"{prefix}_http_request_duration_seconds",
            f"{what} request latency by route template and status.",
            ["route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """Counts one HTTP request and its latency."""
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route, str(status)).observe(seconds)

    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class RequestMetricsMiddleware:
    """ASGI middleware that counts every HTTP request by route template and status."""

    def __init__(self, app: Any, metrics: RequestObserver) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Runs the request and records its route, status and latency."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def send_and_note(message: Any) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            route = getattr(scope.get("route"), "path", UNMATCHED_ROUTE)
            self.metrics.observe_request(
                str(route), str(scope.get("method", "")), status[0], time.perf_counter() - started
            )
