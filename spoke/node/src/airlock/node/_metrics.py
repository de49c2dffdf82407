"""The node agent's Prometheus metrics (``GET /metrics`` on the predict server).

Same conventions as the spoke service (:mod:`airlock.spoke.service._metrics`):
one :class:`prometheus_client.CollectorRegistry` per app, route templates
never concrete paths, and nothing that identifies the node — no node id, no
key, no input or answer — only what this node serves and how it goes:

* ``airlock_agent_http_requests_total{route,method,status}`` and
  ``airlock_agent_http_request_duration_seconds{route,status}`` — every request
  to the predict server, by route template (``/v1/predict/{model}``);
* ``airlock_agent_model_requests_total{model,version,role}``,
  ``airlock_agent_model_errors_total{model,version,role}`` and
  ``airlock_agent_model_latency_seconds{model,version,role}`` — every run of a
  model version (stable, candidate, or in shadow), as the node reports it;
* ``airlock_agent_model_version{model,version,role}`` = 1 — the version that
  answers (``stable``) and the one under rollout (``candidate``), per family;
* ``airlock_agent_family_state{model,state}`` = 1 — each family's slot state;
* ``airlock_agent_refusals`` — assignments this node currently refuses;
* ``airlock_agent_assignment_counter`` — the counter of the newest verified
  assignment; ``airlock_agent_last_verified_timestamp_seconds`` — when the
  node last verified its assignment (absent before the first).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from airlock.bundles.clock import parse_utc
from airlock.bundles.httpmetrics import LATENCY_BUCKETS, HttpMetrics

logger = logging.getLogger(__name__)

METRICS_REMOTE_SETTING = "agent.metrics_remote"
"""``airlock.toml`` setting (env ``AIRLOCK_AGENT_METRICS_REMOTE``): serve /metrics to all."""

Status = Callable[[], dict[str, Any]]


class NodeMetrics(HttpMetrics):
    """The counters and collectors of one node agent's predict app."""

    def __init__(self, status: Status) -> None:
        super().__init__("airlock_agent", "Predict server")
        labels = ["model", "version", "role"]
        self.model_requests = Counter(
            "airlock_agent_model_requests",
            "Runs of a model version on this node, by model, version and role.",
            labels,
            registry=self.registry,
        )
        self.model_errors = Counter(
            "airlock_agent_model_errors",
            "Runs of a model version that raised, by model, version and role.",
            labels,
            registry=self.registry,
        )
        self.model_latency = Histogram(
            "airlock_agent_model_latency_seconds",
            "Model run latency on this node, by model, version and role.",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(NodeStateCollector(status))

    def observe_model(
        self, model: str, version: str, role: str, latency_ms: float, error: bool
    ) -> None:
        """Counts one run of a model version (a :class:`~.recorder.Recorder` listener)."""
        self.model_requests.labels(model, version, role).inc()
        if error:
            self.model_errors.labels(model, version, role).inc()
        self.model_latency.labels(model, version, role).observe(latency_ms / 1000.0)


class NodeStateCollector(Collector):
    """Gauges read from the agent's status at scrape time."""

    def __init__(self, status: Status) -> None:
        self._status = status

    def describe(self) -> list[Metric]:
        """No fixed description: the series are read at scrape time."""
        return []

    def collect(self) -> Iterator[Metric]:
        """Yields the served versions, family states, refusals and verification figures."""
        try:
            status = self._status()
        except Exception as exc:  # a scrape must not fail the agent
            logger.error("metrics scrape could not read the agent status (%s)", type(exc).__name__)
            return
        versions = GaugeMetricFamily(
            "airlock_agent_model_version",
            "The version that answers (stable) and the one under rollout (candidate).",
            labels=["model", "version", "role"],
        )
        states = GaugeMetricFamily(
            "airlock_agent_family_state",
            "Each model family's slot state (the series with value 1).",
            labels=["model", "state"],
        )
        for item in status.get("installed", []):
            model = str(item["model"])
            for role, key in (("stable", "active_version"), ("candidate", "candidate_version")):
                if item.get(key) is not None:
                    versions.add_metric([model, str(item[key]), role], 1)
            states.add_metric([model, str(item.get("state", ""))], 1)
        yield versions
        yield states
        yield GaugeMetricFamily(
            "airlock_agent_refusals",
            "Assignments this node currently refuses.",
            value=len(status.get("refusals", [])),
        )
        yield GaugeMetricFamily(
            "airlock_agent_assignment_counter",
            "The counter of the newest assignment this node verified.",
            value=int(status.get("counter") or 0),
        )
        last = status.get("last_verified")
        if last:
            yield GaugeMetricFamily(
                "airlock_agent_last_verified_timestamp_seconds",
                "When this node last verified its assignment (Unix time).",
                value=parse_utc(str(last)).timestamp(),
            )
