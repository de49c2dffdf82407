"""The spoke service's Prometheus metrics (``GET /metrics``): no per-node data.

Series (one :class:`prometheus_client.CollectorRegistry` per app, so that two
apps in one process — tests, the simulator — never share counters):

* ``airlock_spoke_http_requests_total{route,method,status}`` and
  ``airlock_spoke_http_request_duration_seconds{route,status}`` — every API
  request, by route *template* (``/v1/nodes/{node}/reports``), never by node;
* ``airlock_spoke_nodes_enrolled`` — nodes enrolled and not removed (read at scrape);
* ``airlock_spoke_reports_received_total`` and
  ``airlock_spoke_metric_windows_received_total`` — accepted node uploads;
* ``airlock_spoke_refused_requests_total{reason}`` — requests refused by
  authentication (see :mod:`airlock.spoke.service._auth` for the reasons);
* ``airlock_model_requests_total{model,version,role}`` and
  ``airlock_model_errors_total{model,version,role}`` — what nodes reported
  (incremented when a metrics window is accepted);
* ``airlock_rollout_state{rollout,model,version,state}`` = 1 — each rollout's
  current state, read from the ``Rollout`` table at scrape time.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func
from sqlmodel import Session, select

from airlock.bundles.httpmetrics import LATENCY_BUCKETS, HttpMetrics, RequestMetricsMiddleware
from airlock.spoke.site._fleet_tables import EnrolledNode, Rollout

logger = logging.getLogger(__name__)

__all__ = ["LATENCY_BUCKETS", "FleetCollector", "RequestMetricsMiddleware", "ServiceMetrics"]


class ServiceMetrics(HttpMetrics):
    """The counters and collectors of one spoke service app."""

    def __init__(self, engine: Engine) -> None:
        super().__init__("airlock_spoke", "API")
        self.reports = Counter(
            "airlock_spoke_reports_received",
            "Signed version reports accepted from nodes.",
            registry=self.registry,
        )
        self.metric_windows = Counter(
            "airlock_spoke_metric_windows_received",
            "Per model version metrics windows accepted from nodes.",
            registry=self.registry,
        )
        self.refused = Counter(
            "airlock_spoke_refused_requests",
            "Node requests refused by authentication, by reason.",
            ["reason"],
            registry=self.registry,
        )
        self.model_requests = Counter(
            "airlock_model_requests",
            "Inference requests nodes reported, by model, version and role.",
            ["model", "version", "role"],
            registry=self.registry,
        )
        self.model_errors = Counter(
            "airlock_model_errors",
            "Inference errors nodes reported, by model, version and role.",
            ["model", "version", "role"],
            registry=self.registry,
        )
        self.registry.register(FleetCollector(engine))


class FleetCollector(Collector):
    """Gauges read from the database at scrape time: enrolled nodes and rollout states."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def describe(self) -> list[Metric]:
        """No fixed description: the series are read at scrape time."""
        return []

    def collect(self) -> Iterator[Metric]:
        """Yields the enrolled-node count and one gauge per rollout's state."""
        enrolled = GaugeMetricFamily(
            "airlock_spoke_nodes_enrolled", "Nodes enrolled at this spoke and not removed."
        )
        states = GaugeMetricFamily(
            "airlock_rollout_state",
            "Each rollout's current state (the series with value 1).",
            labels=["rollout", "model", "version", "state"],
        )
        try:
            count, rollouts = self._read()
        except Exception as exc:  # a scrape must not fail the service
            logger.error("metrics scrape could not read the database (%s)", type(exc).__name__)
            return
        enrolled.add_metric([], count)
        for rollout in rollouts:
            states.add_metric(
                [rollout["id"], rollout["model"], rollout["version"], rollout["state"]], 1
            )
        yield enrolled
        yield states

    def _read(self) -> tuple[int, list[dict[str, Any]]]:
        with Session(self._engine) as session:
            count = session.exec(
                select(func.count()).select_from(EnrolledNode).where(EnrolledNode.removed_at == "")  # type: ignore[arg-type]
            ).one()
            rollouts = [
                {"id": r.id, "model": r.model, "version": r.version, "state": r.state}
                for r in session.exec(select(Rollout))
            ]
        return int(count), rollouts
