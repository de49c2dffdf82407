"""Change authorisations as the hub signs them, and checks of the events a spoke emits.

:func:`approved_change` makes a real :class:`ChangeAuthorization`: the
approver's own Ed25519 key (``generate_signer``) signs its statement, as the
hub's ``change approve`` does. :func:`outbox` reads the spoke's CloudEvents
outbox and :func:`assert_cloudevent` checks an event's CloudEvents 1.0
attributes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from typing import Any

from sqlmodel import Session, col, select

from airlock.bundles.canonical import canonical_bytes
from airlock.bundles.clock import parse_utc, utc_iso
from airlock.bundles.events import EVENT_TYPES, OutboxEvent
from airlock.bundles.keys import generate_signer
from airlock.bundles.release import ChangeAuthorization
from airlock.spoke.site import SpokeHome


def approved_change(
    number: str,
    start: dt.datetime,
    end: dt.datetime,
    change_type: str = "normal",
    approver: str = "cab-chair",
) -> ChangeAuthorization:
    """An authorisation for ``number`` with window [start, end), signed by a fresh approver key."""
    signer = generate_signer()
    draft = ChangeAuthorization(
        number=number,
        type=change_type,
        window_start=utc_iso(start),
        window_end=utc_iso(end),
        approved_by=approver,
        approved_at=utc_iso(start - dt.timedelta(days=1)),
        approval_keyid=signer.public_key.keyid,
        approval_signature="",
    )
    signature = signer.sign(canonical_bytes(draft.statement()))
    approved = dataclasses.replace(draft, approval_signature=signature.signature)
    approved.verify_approval(signer.public_key)
    return approved


def outbox(home: SpokeHome) -> list[dict[str, Any]]:
    """Every CloudEvent in the spoke's outbox, oldest first."""
    with Session(home.engine) as session:
        rows = session.exec(select(OutboxEvent).order_by(col(OutboxEvent.seq)))
        return [dict(row.body) for row in rows]


def events_of(home: SpokeHome, name: str) -> list[dict[str, Any]]:
    """The outbox events of Airlock event ``name`` (a key of ``EVENT_TYPES``)."""
    return [e for e in outbox(home) if e["type"] == EVENT_TYPES[name]]


def assert_cloudevent(event: dict[str, Any], source: str) -> None:
    """``event`` is a valid CloudEvents 1.0 structured-mode event from ``source``."""
    assert event["specversion"] == "1.0"
    assert str(uuid.UUID(event["id"])) == event["id"]
    assert event["source"] == source
    assert event["type"] in EVENT_TYPES.values()
    assert isinstance(event["subject"], str) and event["subject"]
    assert parse_utc(event["time"]).tzinfo == dt.UTC
    assert event["datacontenttype"] == "application/json"
    assert isinstance(event["data"], dict)
    allowed = {"specversion", "id", "source", "type", "subject", "time", "datacontenttype", "data"}
    assert set(event) <= allowed, set(event) - allowed
