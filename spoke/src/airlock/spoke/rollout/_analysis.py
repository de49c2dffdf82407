"""Canary analysis: one interval's canary cohort against the stable cohort (Kayenta's judge).

A cohort is every node's metric windows for one model version and role that
*reached the spoke* inside the interval ``(since, until]`` (by the spoke's own
clock, ``received_at``): a window that arrives late — a busy node, a slow
network — still counts, exactly once, in the interval it arrived in, instead
of falling between intervals. Requests and errors are summed, latency
sketches merged (p99 read from the sum). The judge:

- fewer canary requests than ``health.min_samples`` → *inconclusive*: "not
  enough data" counts neither as a pass nor as a failure;
- error rate above ``health.max_error_rate`` → breach;
- canary p99 above ``health.max_p99_latency_ratio`` x the stable p99 → breach,
  judged only when the stable cohort has ``min_samples`` too (a family's first
  rollout has no stable cohort: then only the error rate is judged, and the
  verdict says so);
- otherwise a pass.

The figures of every verdict go into the rollout's events (and the audit log),
so an operator can see what drove each decision; they are decimal strings,
since canonical JSON has no floats.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlmodel import Session, select

from airlock.bundles.metrics import LatencySketch
from airlock.bundles.release import HealthCriteria
from airlock.spoke.site._fleet_tables import MetricWindow

PASSED, FAILED, INCONCLUSIVE = "passed", "failed", "inconclusive"


@dataclass(frozen=True)
class Cohort:
    """One model version's figures, in one role, over one analysis interval."""

    version: str | None
    role: str
    requests: int = 0
    errors: int = 0
    nodes: int = 0
    p99_ms: float | None = None

    @property
    def error_rate(self) -> Decimal | None:
        """errors / requests (None without requests)."""
        if self.requests <= 0:
            return None
        return Decimal(self.errors) / Decimal(self.requests)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready figures (decimal strings: canonical JSON has no floats)."""
        rate = self.error_rate
        return {
            "version": self.version,
            "role": self.role,
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": None if rate is None else f"{rate:.6f}",
            "p99_ms": None if self.p99_ms is None else f"{self.p99_ms:.3f}",
            "nodes": self.nodes,
        }


def read_cohort(
    session: Session, model: str, version: str | None, role: str, since: str, until: str
) -> Cohort:
    """Sums the metric windows of ``model@version`` in ``role`` received in ``(since, until]``.

    Times are UTC in the ``YYYY-MM-DDTHH:MM:SSZ`` form every metrics report
    carries, so they compare as text.
    """
    if version is None:
        return Cohort(None, role)
    rows = session.exec(
        select(MetricWindow).where(
            MetricWindow.model == model,
            MetricWindow.version == version,
            MetricWindow.role == role,
            MetricWindow.received_at > since,
            MetricWindow.received_at <= until,
        )
    )
    requests = errors = 0
    nodes: set[str] = set()
    sketch = LatencySketch()
    for row in rows:
        requests += max(row.requests, 0)
        errors += max(row.errors, 0)
        nodes.add(row.node_id)
        try:
            sketch.merge(LatencySketch.from_dict(row.latency))
        except ValueError:
            continue  # a malformed sketch adds no latency figures
    return Cohort(version, role, requests, errors, len(nodes), sketch.quantile(0.99))


@dataclass(frozen=True)
class Verdict:
    """The judge's outcome for one interval, with the figures behind it."""

    outcome: str
    canary: Cohort
    stable: Cohort
    p99_ratio: Decimal | None = None
    breaches: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready figures (the details of an analysis event)."""
        return {
            "outcome": self.outcome,
            "canary": self.canary.to_dict(),
            "stable": self.stable.to_dict(),
            "p99_ratio": None if self.p99_ratio is None else f"{self.p99_ratio:.3f}",
            "breaches": list(self.breaches),
            "notes": list(self.notes),
        }


def judge(canary: Cohort, stable: Cohort, health: HealthCriteria) -> Verdict:
    """Compares one interval's canary cohort with the stable cohort (see the module docstring)."""
    need = health.min_samples
    if canary.requests < need:
        return Verdict(
            INCONCLUSIVE,
            canary,
            stable,
            notes=[f"not enough data: {canary.requests} canary requests, {need} needed"],
        )
    breaches: list[str] = []
    notes: list[str] = []
    rate = canary.error_rate or Decimal(0)
    if rate > health.error_rate:
        breaches.append(
            f"error rate {float(rate):.4f} is above the ceiling {health.max_error_rate}"
        )
    ratio = None
    if stable.version is None:
        notes.append("no stable cohort (first rollout of the family): only the error rate judged")
    elif stable.requests < need:
        notes.append(
            f"latency not judged: the stable cohort has {stable.requests} requests, {need} needed"
        )
    elif canary.p99_ms is None or stable.p99_ms is None or stable.p99_ms <= 0:
        notes.append("latency not judged: no latency figures")
    else:
        ratio = Decimal(repr(canary.p99_ms)) / Decimal(repr(stable.p99_ms))
        if ratio > health.latency_ratio:
            breaches.append(
                f"p99 {canary.p99_ms:.2f} ms is {float(ratio):.2f}x the stable "
                f"{stable.p99_ms:.2f} ms (at most {health.max_p99_latency_ratio}x)"
            )
    return Verdict(FAILED if breaches else PASSED, canary, stable, ratio, breaches, notes)


def analyse(
    session: Session,
    model: str,
    version: str,
    from_version: str | None,
    health: HealthCriteria,
    since: str,
    until: str,
) -> Verdict:
    """Reads both cohorts of one interval and judges them."""
    canary = read_cohort(session, model, version, "candidate", since, until)
    stable = read_cohort(session, model, from_version, "stable", since, until)
    return judge(canary, stable, health)
