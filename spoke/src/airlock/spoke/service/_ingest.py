"""What the spoke service does with a node's signed uploads: version reports and metrics.

Both arrive as a :class:`~airlock.bundles.protocol.SignedDocument` signed by the
node's enrolled key (on top of the signed request). A document is accepted
only when its signature verifies with that key and it names the same node.

* Version reports replace the node's :class:`NodeReport` when their counter
  is greater than the stored one (else 409: a replayed or older report). A
  refusal that was not in the previous report gets one ``spoke.node.refusal``
  audit entry, in the same transaction.
* Metrics reports become one :class:`MetricWindow` row per model version.
  Refused: negative or inconsistent counts, a window longer than an hour,
  ending in the future beyond the clock skew, or overlapping a window the
  node already sent (a retried upload must not count twice).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlmodel import Session, func, select

from airlock.bundles.clock import Clock, parse_utc, utc_iso
from airlock.bundles.db import session_scope
from airlock.bundles.errors import ConflictError, UsageError, WrongSiteError
from airlock.bundles.metrics import CANDIDATE_RING, LABEL_PATTERN, STABLE_RING, LatencySketch
from airlock.bundles.models import check_name
from airlock.bundles.protocol import (
    MAX_SKEW,
    ROLES,
    MetricsReport,
    ModelVersionMetrics,
    SignedDocument,
    VersionReport,
)
from airlock.bundles.release import RolloutPlan
from airlock.spoke.service._auth import AuthenticatedNode
from airlock.spoke.service._metrics import ServiceMetrics
from airlock.spoke.site._fleet_tables import MetricWindow, NodeReport, Rollout
from airlock.spoke.site._home import SpokeHome

MAX_WINDOW = dt.timedelta(hours=1)


class Ingest:
    """Verifies and stores node uploads (one per app, shared by the worker threads)."""

    def __init__(self, home: SpokeHome, clock: Clock, metrics: ServiceMetrics) -> None:
        self._home = home
        self._clock = clock
        self._metrics = metrics

    def version_report(self, caller: AuthenticatedNode, body: bytes) -> int:
        """Stores a node's signed version report; returns 1.

        Raises:
            UsageError: malformed body.
            SignatureError: the document is not signed by the node's key.
            WrongSiteError: the report names another node.
            ConflictError: the counter is not greater than the stored one.
        """
        doc, signed = _verified(body, caller, "version-report")
        report = VersionReport.from_dict(signed)
        _same_node(report.node_id, caller)
        now = self._clock.now()
        with session_scope(self._home.engine) as session:
            previous = session.get(NodeReport, caller.node_id)
            if previous is not None and report.counter <= previous.counter:
                raise ConflictError(
                    f"replayed or older report (counter {report.counter}, "
                    f"the spoke has {previous.counter})",
                    hint="a node's report counter must grow with every report",
                )
            known = _refusal_keys(previous.report if previous else {})
            row = previous or NodeReport(node_id=caller.node_id, counter=0, received_at="")
            row.counter = report.counter
            row.received_at = utc_iso(now)
            row.report = doc.to_dict()
            session.add(row)
            for refusal in report.refusals:
                if (refusal.model, refusal.version, refusal.reason) in known:
                    continue
                self._home.audit.record(
                    "spoke.node.refusal",
                    "refused",
                    object=f"{refusal.model}@{refusal.version}",
                    node=caller.node_id,
                    principal=f"node:{caller.node_id}",
                    details=refusal.to_dict(),
                    session=session,
                    when=now,
                )
        self._metrics.reports.inc()
        return 1

    def metrics(self, caller: AuthenticatedNode, body: bytes) -> int:
        """Stores a node's signed metrics report; returns the number of rows stored.

        Raises:
            UsageError: malformed body, bad counts or window.
            SignatureError: the document is not signed by the node's key.
            WrongSiteError: the report names another node.
            ConflictError: the window overlaps one the node already sent.
        """
        _doc, signed = _verified(body, caller, "metrics")
        report = MetricsReport.from_dict(signed)
        _same_node(report.node_id, caller)
        now = self._clock.now()
        start, end = parse_utc(report.window_start), parse_utc(report.window_end)
        if end - start > MAX_WINDOW:
            raise UsageError(
                f"the metrics window {report.window_start} - {report.window_end} is over an hour",
                hint="nodes report at least every hour",
            )
        if end > now + MAX_SKEW:
            raise UsageError(
                f"the metrics window ends in the future ({report.window_end})",
                hint="fix the node's clock",
            )
        _check_models(report.models)
        with session_scope(self._home.engine) as session:
            _check_no_overlap(session, caller.node_id, start)
            for item in report.models:
                session.add(
                    MetricWindow(
                        node_id=caller.node_id,
                        model=item.model,
                        version=item.version,
                        role=item.role,
                        ring=ring_of(session, item.model, item.version, item.role),
                        window_start=report.window_start,
                        window_end=report.window_end,
                        received_at=utc_iso(now),
                        requests=item.requests,
                        errors=item.errors,
                        latency=dict(item.latency),
                        predictions=dict(item.predictions),
                        confidence=dict(item.confidence),
                        shadow_compared=item.shadow_compared,
                        shadow_disagreed=item.shadow_disagreed,
                    )
                )
        for item in report.models:
            labels = (item.model, item.version, item.role)
            self._metrics.model_requests.labels(*labels).inc(item.requests)
            self._metrics.model_errors.labels(*labels).inc(item.errors)
        self._metrics.metric_windows.inc(len(report.models))
        return len(report.models)


def ring_of(session: Session, model: str, version: str, role: str) -> str:
    """The ring a node's figures for ``model@version`` in ``role`` belong to, as of now.

    A candidate's figures belong to the current ring of the version's active
    rollout (its name, or ``ring-<n>`` when the name is not a plain label);
    a stable version's to :data:`STABLE_RING`; a candidate with no active
    rollout to :data:`CANDIDATE_RING`.
    """
    if role != "candidate":
        return STABLE_RING
    rollout = session.exec(
        select(Rollout)
        .where(Rollout.model == model, Rollout.version == version)
        .where(Rollout.state.in_(("ring", "paused")))  # type: ignore[attr-defined]
    ).first()
    if rollout is None:
        return CANDIDATE_RING
    rings = RolloutPlan.from_dict(rollout.plan).rings
    if not 0 <= rollout.ring_index < len(rings):
        return CANDIDATE_RING
    name = rings[rollout.ring_index].name
    return name if LABEL_PATTERN.fullmatch(name) else f"ring-{rollout.ring_index + 1}"


def _verified(
    body: bytes, caller: AuthenticatedNode, kind: str
) -> tuple[SignedDocument, dict[str, Any]]:
    try:
        data = json.loads(body)
    except ValueError:
        raise UsageError("the request body is not JSON") from None
    if not isinstance(data, dict):
        raise UsageError("the request body is not a signed document")
    doc = SignedDocument.from_dict(data)
    signed = doc.verify(caller.key)
    if signed.get("type") != kind:
        raise UsageError(f"the document is not a {kind} (type {signed.get('type')!r})")
    return doc, signed


def _same_node(named: str, caller: AuthenticatedNode) -> None:
    if named != caller.node_id:
        raise WrongSiteError(
            f"the document is about node {named[:64]!r}, the caller is {caller.node_id!r}",
            hint="a node reports for itself only",
        )


def _refusal_keys(stored: dict[str, Any]) -> set[tuple[str, str, str]]:
    refusals = (stored.get("signed") or {}).get("refusals") or []
    return {
        (str(r.get("model")), str(r.get("version")), str(r.get("reason")))
        for r in refusals
        if isinstance(r, dict)
    }


def _check_models(models: tuple[ModelVersionMetrics, ...]) -> None:
    seen: set[tuple[str, str, str]] = set()
    for item in models:
        check_name("model name", item.model)
        check_name("model version", item.version)
        what = f"{item.model}@{item.version}"
        if item.role not in ROLES:
            raise UsageError(f"metrics for {what}: role {item.role!r} is not one of {ROLES}")
        key = (item.model, item.version, item.role)
        if key in seen:
            raise UsageError(f"metrics for {what} ({item.role}) appear twice in one report")
        seen.add(key)
        counts = (item.requests, item.errors, item.shadow_compared, item.shadow_disagreed)
        if min(counts) < 0 or any(
            v < 0 for v in (*item.predictions.values(), *item.confidence.values())
        ):
            raise UsageError(f"metrics for {what} carry a negative count")
        if item.errors > item.requests or item.shadow_disagreed > item.shadow_compared:
            raise UsageError(f"metrics for {what} count more failures than requests")
        try:
            LatencySketch.from_dict(item.latency)
        except ValueError as exc:
            raise UsageError(f"metrics for {what}: bad latency sketch ({exc})") from None


def _check_no_overlap(session: Session, node_id: str, start: dt.datetime) -> None:
    newest = session.exec(
        select(func.max(MetricWindow.window_end)).where(MetricWindow.node_id == node_id)
    ).one()
    if newest and parse_utc(str(newest)) > start:
        raise ConflictError(
            f"the metrics window starts before the end of the node's last one ({newest})",
            hint="a retried or replayed upload is not counted twice",
        )
