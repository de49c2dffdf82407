"""Drift and error-rate limits on the fleet's figures: open an alert once, emit an event.

``airlock hub import-metrics`` calls :func:`evaluate_alerts` inside its
transaction for the model versions the import carried figures of. Each is
judged over the last ``[fleet] lookback_days`` (:func:`~airlock.hub.fleet._report.judge`):

- with fewer than ``min_requests`` requests there is no verdict: nothing
  opens or closes;
- a value beyond its limit (prediction drift above ``drift_limit``, error
  rate above ``error_rate_limit``) with no open alert of that kind opens one
  (:class:`~airlock.hub.store._fleet_tables.HubFleetAlert`), emits a CloudEvent in
  the same session — ``fleet.drift`` is a retraining request for the model's
  pipeline (``io.airlock.model.retraining-requested.v1``), ``fleet.error-rate``
  an error-rate alarm — and writes the audit entry ``hub.fleet.alert``;
- a value back within its limit closes the open alert (``closed_at``, an
  audit entry, no event).

An open alert is never raised again while it stays open.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from sqlmodel import Session, select

from airlock.bundles import events as events
from airlock.bundles.clock import utc_iso
from airlock.hub.catalog import _catalog as catalog
from airlock.hub.changes import _records as change_records
from airlock.hub.context._context import HubContext
from airlock.hub.fleet._limits import FleetLimits
from airlock.hub.fleet._report import VersionReport, judge
from airlock.hub.store._fleet_tables import HubFleetAlert

ALERT_ACTION = "hub.fleet.alert"
DRIFT = "drift"
ERROR_RATE = "error-rate"
PIPELINE_TAGS = ("airlock.pipeline", "pipeline", "mlflow.source.name", "mlflow.project.entryPoint")
"""Run tags that name the training pipeline, first found wins."""
EXPERIMENT_TAGS = ("mlflow.experimentId", "mlflow.experiment_id", "experiment_id")


def evaluate_alerts(
    session: Session, ctx: HubContext, refs: Iterable[tuple[str, str]], now: dt.datetime
) -> list[dict[str, Any]]:
    """Checks the limits for model versions ``refs``; returns the alerts opened now.

    Everything (alerts, events, audit entries) joins ``session``'s transaction.

    Args:
        session: The caller's session (the import's transaction).
        ctx: The hub (configuration, audit log, blobs for the reference).
        refs: (model, version) pairs to judge.
        now: The time of the evaluation.

    Returns:
        Each alert opened: its row as a dict with the emitted event's id, ``value``
        and ``limit`` as decimal strings (callers put it in audit entries, which
        are canonical JSON: no floats).

    Raises:
        UsageError: a ``[fleet]`` setting is malformed.
        AuditWriteError: the audit entry could not be written.
    """
    limits = FleetLimits.from_config(ctx.config)
    since = now - dt.timedelta(days=limits.lookback_days)
    opened = []
    for figures in judge(session, ctx, refs, since=since, limits=limits):
        if figures.requests < limits.min_requests:
            continue
        open_alerts = {
            row.kind: row
            for row in session.exec(
                select(HubFleetAlert).where(
                    HubFleetAlert.model == figures.model,
                    HubFleetAlert.version == figures.version,
                    HubFleetAlert.closed_at == "",
                )
            )
        }
        checks = (
            (DRIFT, figures.drift, limits.drift_limit),
            (ERROR_RATE, figures.error_rate, limits.error_rate_limit),
        )
        for kind, value, limit in checks:
            if value is None:
                continue
            current = open_alerts.get(kind)
            if value > limit and current is None:
                opened.append(_open(session, ctx, figures, kind, value, limit, since, now))
            elif value <= limit and current is not None:
                _close(session, ctx, current, figures, value, now)
    return opened


def _open(
    session: Session,
    ctx: HubContext,
    figures: VersionReport,
    kind: str,
    value: float,
    limit: float,
    since: dt.datetime,
    now: dt.datetime,
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "model": figures.model,
        "version": figures.version,
        "kind": kind,
        "limit": limit,
        "requests": figures.requests,
        "errors": figures.errors,
        "sites": figures.sites,
        "window": {"since": utc_iso(since), "until": utc_iso(now)},
        "lineage": _lineage(session, figures.model, figures.version),
    }
    if kind == DRIFT:
        reference = figures.reference or {}
        data |= {
            "drift": value,
            "confidence_drift": figures.confidence_drift,
            "reference_source": reference.get("source"),
            "reference_rows": reference.get("rows"),
            "predictions": figures.predictions,
            "reference_predictions": reference.get("predictions"),
            "request": "retrain",
        }
    else:
        data["error_rate"] = value
    event = events.emit(
        session, f"fleet.{kind}", change_records.hub_source(), figures.ref, data, now
    )
    row = HubFleetAlert(
        model=figures.model,
        version=figures.version,
        kind=kind,
        value=value,
        limit=limit,
        opened_at=utc_iso(now),
        event_id=event["id"],
    )
    session.add(row)
    session.flush()
    ctx.audit.record(
        ALERT_ACTION,
        "success",
        object=figures.ref,
        details=_decimals(
            {"state": "opened", "alert_id": row.id, "event_type": event["type"], **data}
        ),
        session=session,
        when=now,
        model=figures.model,
        version=figures.version,
    )
    return _decimals(row.model_dump())  # type: ignore[no-any-return]


def _close(
    session: Session,
    ctx: HubContext,
    row: HubFleetAlert,
    figures: VersionReport,
    value: float,
    now: dt.datetime,
) -> None:
    row.closed_at = utc_iso(now)
    session.add(row)
    ctx.audit.record(
        ALERT_ACTION,
        "success",
        object=figures.ref,
        details=_decimals(
            {
                "state": "closed",
                "alert_id": row.id,
                "kind": row.kind,
                "value": value,
                "limit": row.limit,
                "opened_at": row.opened_at,
                "requests": figures.requests,
            }
        ),
        session=session,
        when=now,
        model=figures.model,
        version=figures.version,
    )


def _decimals(value: Any) -> Any:
    """``value`` with every float as a decimal string: audit entries are canonical JSON."""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, dict):
        return {key: _decimals(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_decimals(item) for item in value]
    return value


def _lineage(session: Session, model: str, version: str) -> dict[str, Any]:
    """Where the version came from, from its signed release record (what is present)."""
    released = catalog.find_model(session, model, version)
    lineage = released.release.lineage if released is not None else None
    if lineage is None:
        return {}
    tags = dict(lineage.tags)
    found = {
        "source": lineage.source,
        "registered_model": lineage.registered_model,
        "registered_version": lineage.registered_version,
        "mlflow_run_id": lineage.run_id,
        "mlflow_model_id": lineage.model_id,
        "experiment_id": next((tags[t] for t in EXPERIMENT_TAGS if tags.get(t)), ""),
        "pipeline": next((tags[t] for t in PIPELINE_TAGS if tags.get(t)), ""),
        "training_data_sha256": lineage.training_data_sha256 or "",
    }
    return {key: value for key, value in found.items() if value}
