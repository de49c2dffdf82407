"""Events for change-management systems: CloudEvents 1.0, written through a transactional outbox.

Every state change (a change request moving, an export, an import, a ring
started, promoted or rolled back, a revocation) calls :func:`emit` inside the
same database transaction as the change itself: the event is a row of
:class:`OutboxEvent`, so it exists exactly when the change does. Delivery
(:mod:`airlock.bundles.events._delivery`) then drains the outbox, at least
once, into a rotated JSON-lines file under the home and, when a webhook URL is
configured, into HTTP POSTs with retries; receivers deduplicate by ``source``
+ ``id``.

An event is a CloudEvents 1.0 structured-mode JSON object::

    {"specversion": "1.0", "id": "<uuid4>", "source": "/airlock/hub/<host>",
     "type": "dev.cdevents.service.deployed.0.2.0", "subject": "iris@3",
     "time": "2026-11-23T14:02:11Z", "datacontenttype": "application/json",
     "data": {...}}

``type`` is a CDEvents type where one fits (see :data:`EVENT_TYPES`), else
an ``io.airlock.*`` type of our own.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field, Session, SQLModel

from airlock.bundles.clock import utc_iso

SPEC_VERSION = "1.0"
EVENT_TYPES: dict[str, str] = {
    # change requests (CDEvents has no change-request subject: our own types)
    "change.created": "io.airlock.change.created.v1",
    "change.approved": "io.airlock.change.approved.v1",
    "change.rejected": "io.airlock.change.rejected.v1",
    "change.state": "io.airlock.change.state-changed.v1",
    # bundles across the gap
    "bundle.exported": "dev.cdevents.artifact.published.0.2.0",
    "bundle.imported": "dev.cdevents.artifact.downloaded.0.2.0",
    # rollouts at a site
    "rollout.started": "dev.cdevents.service.deployed.0.2.0",
    "rollout.ring-started": "io.airlock.rollout.ring-started.v1",
    "rollout.promoted": "io.airlock.rollout.promoted.v1",
    "rollout.complete": "dev.cdevents.service.upgraded.0.2.0",
    "rollout.rolled-back": "dev.cdevents.service.rolledback.0.2.0",
    "rollout.aborted": "io.airlock.rollout.aborted.v1",
    "rollout.paused": "io.airlock.rollout.paused.v1",
    "rollout.resumed": "io.airlock.rollout.resumed.v1",
    # metrics back across the gap, and what the hub makes of them
    "metrics.exported": "io.airlock.metrics.exported.v1",
    "metrics.imported": "io.airlock.metrics.imported.v1",
    "fleet.drift": "io.airlock.model.retraining-requested.v1",
    "fleet.error-rate": "io.airlock.model.error-rate-exceeded.v1",
    "audit.log-inconsistent": "io.airlock.audit.log-inconsistent.v1",
    # revocation
    "model.revoked": "io.airlock.model.revoked.v1",
    "model.version-revoked-at-site": "dev.cdevents.service.removed.0.2.0",
}
"""Airlock's event names → CloudEvents ``type``."""


class OutboxEvent(SQLModel, table=True):
    """One event waiting for (or done with) delivery; written with the change it describes."""

    __tablename__ = "event_outbox"
    # Delivery's queries: "not yet in the file" and "not yet acknowledged", oldest first
    # (the outbox keeps delivered events; schema revision hub_0002 / spoke_0002).
    __table_args__ = (
        Index("ix_event_outbox_written_at_seq", "written_at", "seq"),
        Index("ix_event_outbox_delivered_at_seq", "delivered_at", "seq"),
    )

    seq: int | None = Field(default=None, primary_key=True)
    event_id: str = Field(index=True, unique=True)
    type: str = Field(index=True)
    subject: str = ""
    time: str = Field(index=True)
    body: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    """The whole CloudEvent, as delivered."""
    written_at: str = ""
    """When the event reached the JSON-lines outbox file ("" until then)."""
    delivered_at: str = ""
    """When the webhook acknowledged it ("" until then, or when no webhook is set)."""
    attempts: int = 0
    next_attempt_at: str = ""
    last_error: str = ""


def make_event(
    name: str,
    source: str,
    subject: str,
    data: dict[str, Any],
    now: dt.datetime,
    event_id: str | None = None,
) -> dict[str, Any]:
    """A CloudEvents 1.0 event for Airlock event ``name`` (a key of :data:`EVENT_TYPES`).

    Raises:
        KeyError: ``name`` is not a known event.
    """
    return {
        "specversion": SPEC_VERSION,
        "id": event_id or str(uuid.uuid4()),
        "source": source,
        "type": EVENT_TYPES[name],
        "subject": subject,
        "time": utc_iso(now),
        "datacontenttype": "application/json",
        "data": json.loads(json.dumps(data, default=str)),
    }


def emit(
    session: Session,
    name: str,
    source: str,
    subject: str,
    data: dict[str, Any],
    now: dt.datetime,
) -> dict[str, Any]:
    """Adds an event to the outbox in the caller's transaction; returns the CloudEvent."""
    event = make_event(name, source, subject, data, now)
    session.add(
        OutboxEvent(
            event_id=event["id"],
            type=event["type"],
            subject=subject,
            time=event["time"],
            body=event,
        )
    )
    return event


def source_of(component: str, who: str) -> str:
    """The CloudEvents ``source`` of a hub (``who`` = host) or a spoke (``who`` = site id)."""
    return f"/airlock/{component}/{who}"
