"""Fleet alerts: drift and error-rate limits open an alert once (event + audit), close when back."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from helpers.fleetenv import Fleet
from helpers.fleetfigures import add_import, cell, reference_of, report_of, scaled
from helpers.gatemodels import VALIDATION_FILE, classification
from sqlmodel import Session, select

from airlock.bundles.audit import AuditRecord
from airlock.bundles.clock import utc_iso
from airlock.bundles.events import EVENT_TYPES, OutboxEvent
from airlock.bundles.release import Lineage, ReleaseInfo
from airlock.hub.context import HubContext
from airlock.hub.fleet import ALERT_ACTION, evaluate_alerts
from airlock.hub.intake import release_model
from airlock.hub.store import HubFleetAlert

RETRAIN = EVENT_TYPES["fleet.drift"]
ERROR_RATE = EVENT_TYPES["fleet.error-rate"]


def evaluate(hub: HubContext, refs: set[tuple[str, str]], now: dt.datetime) -> list[dict[str, Any]]:
    with Session(hub.engine) as session:
        opened = evaluate_alerts(session, hub, refs, now)
        session.commit()
    return opened


def state(hub: HubContext) -> tuple[list[HubFleetAlert], list[OutboxEvent], list[AuditRecord]]:
    """Alerts, fleet events and alert audit entries, oldest first."""
    with Session(hub.engine) as session:
        alerts = list(session.exec(select(HubFleetAlert).order_by(HubFleetAlert.id)))  # type: ignore[arg-type]
        outbox = [
            e
            for e in session.exec(select(OutboxEvent).order_by(OutboxEvent.seq))  # type: ignore[arg-type]
            if e.type in (RETRAIN, ERROR_RATE)
        ]
        audit = list(
            session.exec(
                select(AuditRecord)
                .where(AuditRecord.action == ALERT_ACTION)
                .order_by(AuditRecord.seq)  # type: ignore[arg-type]
            )
        )
        return alerts, outbox, audit


def test_drift_opens_once_emits_a_retraining_request_and_closes(
    fleet: Fleet, fleet_hub: HubContext
) -> None:
    lineage = Lineage(
        source="models:/iris/4",
        registered_model="iris",
        registered_version="4",
        run_id="run-42",
        tags={"airlock.pipeline": "iris-train", "mlflow.experimentId": "7"},
    )
    release_model(
        fleet_hub,
        "iris",
        "4",
        fleet.iris.path,
        release=ReleaseInfo(lineage=lineage, validation=classification()),
        extras={VALIDATION_FILE: (fleet.iris.sets["good"], "validation")},
    )
    now = fleet_hub.clock.now()
    ref = {("iris", "4")}
    # Inside the import's transaction: the figures are flushed, not yet committed.
    with Session(fleet_hub.engine) as session:
        add_import(
            fleet_hub,
            "plant-7",
            1,
            now,
            [cell("iris", "4", "stable", requests=300, predictions={"0": 300})],
            session=session,
        )
        opened = evaluate_alerts(session, fleet_hub, ref, now)
        # The import records the alerts in its own (canonical JSON) audit entry.
        fleet_hub.audit.record(
            "hub.metrics.import", "success", details={"alerts": opened}, session=session
        )
        session.commit()
    assert [(a["kind"], a["model"], a["version"]) for a in opened] == [("drift", "iris", "4")]
    # Decimal strings: the import puts them in its canonical-JSON audit entry.
    assert float(opened[0]["value"]) > 0.2 and opened[0]["limit"] == "0.2"
    alerts, outbox, audit = state(fleet_hub)
    assert len(alerts) == 1 and alerts[0].closed_at == ""
    assert [e.type for e in outbox] == [RETRAIN]
    event = outbox[0].body
    assert event["id"] == opened[0]["event_id"] and event["subject"] == "iris@4"
    data = event["data"]
    assert (data["model"], data["version"], data["limit"]) == ("iris", "4", 0.2)
    assert data["drift"] == pytest.approx(float(opened[0]["value"]), rel=1e-5)
    assert data["reference_source"] == "validation-set"
    assert data["lineage"]["mlflow_run_id"] == "run-42"
    assert data["lineage"]["pipeline"] == "iris-train"
    assert data["lineage"]["experiment_id"] == "7"
    assert [(r.outcome, r.model, r.version) for r in audit] == [("success", "iris", "4")]
    assert json.loads(audit[0].details)["state"] == "opened"
    assert [a["kind"] for a in report_of(fleet_hub).versions[0].alerts] == ["drift"]

    # Still beyond the limit: the open alert is not raised again.
    assert evaluate(fleet_hub, ref, now + dt.timedelta(minutes=5)) == []
    assert [len(x) for x in state(fleet_hub)] == [1, 1, 1]

    # A week later the fleet answers like the reference: the alert closes, no event.
    later = now + dt.timedelta(days=8)
    reference = reference_of(fleet_hub, "iris", "4")
    add_import(
        fleet_hub,
        "plant-7",
        2,
        later,
        [cell("iris", "4", "stable", requests=300, predictions=scaled(reference, 10))],
    )
    assert evaluate(fleet_hub, ref, later) == []
    alerts, outbox, audit = state(fleet_hub)
    assert alerts[0].closed_at == utc_iso(later)
    assert len(outbox) == 1
    assert [json.loads(r.details)["state"] for r in audit] == ["opened", "closed"]


def test_error_rate_alert(fleet_hub: HubContext) -> None:
    now = fleet_hub.clock.now()
    reference = reference_of(fleet_hub, "iris", "3")
    figures = cell(
        "iris", "3", "stable", requests=300, errors=30, predictions=scaled(reference, 10)
    )
    add_import(fleet_hub, "plant-7", 1, now, [figures])
    opened = evaluate(fleet_hub, {("iris", "3")}, now)
    assert [a["kind"] for a in opened] == ["error-rate"]
    assert opened[0]["value"] == "0.1"
    alerts, outbox, audit = state(fleet_hub)
    assert [e.type for e in outbox] == [ERROR_RATE]
    assert outbox[0].body["data"]["error_rate"] == pytest.approx(0.1)
    assert outbox[0].body["data"]["requests"] == 300
    assert len(alerts) == 1 and len(audit) == 1
    assert evaluate(fleet_hub, {("iris", "3")}, now) == []


def test_insufficient_or_old_figures_raise_nothing(fleet_hub: HubContext) -> None:
    now = fleet_hub.clock.now()
    bad = {"requests": 150, "errors": 150, "predictions": {"0": 150}}
    add_import(fleet_hub, "plant-7", 1, now, [cell("iris", "2", "stable", **bad)])  # type: ignore[arg-type]
    # Beyond both limits, but more than the lookback (7 days) ago.
    old = {"requests": 900, "errors": 900, "predictions": {"0": 900}}
    add_import(
        fleet_hub,
        "plant-9",
        1,
        now - dt.timedelta(days=8),
        [cell("iris", "2", "stable", **old)],  # type: ignore[arg-type]
    )
    assert evaluate(fleet_hub, {("iris", "2"), ("iris", "9")}, now) == []
    assert state(fleet_hub) == ([], [], [])
    assert report_of(fleet_hub).versions[0].status == "insufficient data"
