"""HTTP request metrics in Prometheus form, shared by the spoke's node service and the
node agent's predict server (needs the ``node-protocol`` extra: prometheus-client and
starlette).

Modules here are private (``_name.py``); other components import the names below.
"""

from airlock.bundles.httpmetrics._metrics import (
    LATENCY_BUCKETS,
    HttpMetrics,
    RequestMetricsMiddleware,
    is_loopback,
    truthy,
)

__all__ = [
    "LATENCY_BUCKETS",
    "HttpMetrics",
    "RequestMetricsMiddleware",
    "is_loopback",
    "truthy",
]
