"""``import_metrics``: a site's metrics stored, witnessed and acknowledged; replays refused.

The hub and the site are copies of the fleet templates (iris@1..3 shipped);
bundles are made by :class:`helpers.metricsenv.MetricsSite` from the spoke's
real audit log and site key, encrypted to the recipient the hub signed into
the site's Director metadata.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from helpers.metricsenv import (
    IMPORT_ACTION,
    MetricsSite,
    assert_refused,
    return_path_of,
    row_counts,
)
from helpers.spokeenv import SITE_ID, accept_import
from securesystemslib.signer import Key
from sqlmodel import Session, col, select

from airlock.bundles.audit import (
    AuditLog,
    HubReturnRecord,
    stored_tree,
    verify_checkpoint,
    verify_cosignature,
    verify_engine,
)
from airlock.bundles.clock import FixedClock, parse_utc
from airlock.bundles.errors import FreshnessError, SecretError, SignatureError
from airlock.bundles.events import EVENT_TYPES, OutboxEvent
from airlock.bundles.metrics import NoiseSpec, RolledBackVersion
from airlock.hub import catalog as site_rollbacks
from airlock.hub import trust as return_keys
from airlock.hub.context import HubContext, load_site_metadata, open_hub
from airlock.hub.export import export
from airlock.hub.fleet import import_metrics
from airlock.hub.store import (
    HubFleetAlert,
    HubMetricsCell,
    HubMetricsImport,
    HubMetricsTotal,
    HubSiteRollback,
)


def events_of(hub: HubContext, name: str) -> list[dict[str, object]]:
    with Session(hub.engine) as session:
        rows = session.exec(select(OutboxEvent).where(OutboxEvent.type == EVENT_TYPES[name]))
        return [row.body for row in rows]


def test_a_good_import_is_stored_and_cosigned(
    fleet_hub: HubContext, metrics_site: MetricsSite, tmp_path: Path
) -> None:
    payload = metrics_site.payload()
    bundle = metrics_site.write(tmp_path / "m1", payload)
    result = import_metrics(fleet_hub, bundle)

    assert (result.site_id, result.sequence, result.consistency) == (SITE_ID, 1, "first")
    assert (result.cells, result.totals, result.suppressed_cells, result.k) == (2, 1, 1, 5)
    assert result.missing_sequences == ()
    assert result.versions == (
        {
            "model": "iris",
            "version": "3",
            "rings": ["candidate", "stable"],
            "requests": 2000,
            "errors": 6,
        },
    )
    with Session(fleet_hub.engine) as session:
        row = session.exec(select(HubMetricsImport)).one()
        cells = session.exec(select(HubMetricsCell).order_by(col(HubMetricsCell.ring))).all()
        totals = session.exec(select(HubMetricsTotal)).all()
    assert (row.site_id, row.sequence, row.bundle_id) == (SITE_ID, 1, result.bundle_id)
    assert (row.window_start, row.window_end) == (payload.window_start, payload.window_end)
    assert [c.model_dump(exclude={"id", "import_id", "site_id"}) for c in cells] == [
        c.to_dict() for c in payload.cells
    ]
    assert {c.import_id for c in cells} == {row.id} and len(totals) == 1
    assert totals[0].requests == 2000 and totals[0].site_id == SITE_ID

    # the hub's cosignature, and the site's own signature, on the stored note
    witness = return_keys.witness(fleet_hub)
    assert result.witness == witness.name
    when = verify_cosignature(row.cosigned_note, witness.name, witness.key)
    assert when == fleet_hub.clock.now().replace(microsecond=0)
    site_key = metrics_site.spoke.signing_key().public_key
    with pytest.raises(SignatureError):
        verify_cosignature(row.cosigned_note, witness.name, site_key)
    checkpoint = verify_checkpoint(row.cosigned_note, {metrics_site.origin: site_key})
    assert checkpoint.size == row.checkpoint_size == result.checkpoint_size
    assert checkpoint.root.hex() == row.checkpoint_root == result.checkpoint_root
    assert row.checkpoint_note == payload.checkpoint
    assert row.cosigned_note.startswith(payload.checkpoint)

    entry = AuditLog(fleet_hub.engine, "hub").entries()[-1]
    assert (entry.action, entry.outcome, entry.bundle_id) == (
        IMPORT_ACTION,
        "success",
        result.bundle_id,
    )
    details = json.loads(entry.details)
    assert details["site_id"] == SITE_ID and details["sequence"] == 1
    assert details["checkpoint"]["consistency"] == "first"
    assert verify_engine(fleet_hub.engine).ok
    (event,) = events_of(fleet_hub, "metrics.imported")
    assert event["subject"] == result.bundle_id
    assert event["data"] == {
        "site": SITE_ID,
        "sequence": 1,
        "bundle_id": result.bundle_id,
        "window": {"start": payload.window_start, "end": payload.window_end},
        "cells": 2,
        "missing_sequences": [],
        "checkpoint_size": checkpoint.size,
    }
    assert result.to_dict()["checkpoint"] == {
        "size": checkpoint.size,
        "root": checkpoint.root.hex(),
        "consistency": "first",
        "witness": witness.name,
    }


def test_the_next_import_is_checked_against_the_witnessed_checkpoint(
    fleet_hub: HubContext, metrics_site: MetricsSite, tmp_path: Path
) -> None:
    first = import_metrics(fleet_hub, metrics_site.bundle(tmp_path / "m1"))
    second = import_metrics(fleet_hub, metrics_site.bundle(tmp_path / "m2"))
    assert second.sequence == 2 and second.checkpoint_size > first.checkpoint_size
    assert second.consistency == f"proof from {first.checkpoint_size}"
    assert second.missing_sequences == ()


def test_the_next_export_acknowledges_the_import(
    fleet_hub: HubContext, metrics_site: MetricsSite, tmp_path: Path
) -> None:
    assert return_path_of(fleet_hub, SITE_ID).acknowledged_sequence == 0
    result = import_metrics(fleet_hub, metrics_site.bundle(tmp_path / "m1"))
    version = load_site_metadata(fleet_hub, SITE_ID).targets.signed.version
    export(fleet_hub, SITE_ID, tmp_path / "hub-bundle")

    shipped = return_path_of(fleet_hub, SITE_ID)
    assert load_site_metadata(fleet_hub, SITE_ID).targets.signed.version == version + 1
    assert shipped.acknowledged_sequence == 1
    witness = Key.from_dict(shipped.witness_key["keyid"], dict(shipped.witness_key))
    verify_cosignature(shipped.acknowledged_note, shipped.witness_name, witness)
    site_key = metrics_site.spoke.signing_key().public_key
    acknowledged = verify_checkpoint(shipped.acknowledged_note, {metrics_site.origin: site_key})
    assert (acknowledged.size, acknowledged.root.hex()) == (
        result.checkpoint_size,
        result.checkpoint_root,
    )
    with Session(metrics_site.spoke.engine) as session:  # what the site checks: its own prefix
        assert stored_tree(session, upto=acknowledged.size).root() == acknowledged.root

    # the real spoke imports the hub's bundle and keeps the verified acknowledgement
    accept_import(metrics_site.spoke, tmp_path / "hub-bundle", FixedClock(metrics_site.clock.now()))
    with Session(metrics_site.spoke.engine) as session:
        kept = session.get(HubReturnRecord, 1)
    assert kept is not None and kept.hub_recipient == shipped.hub_recipient
    assert (kept.acknowledged_sequence, kept.acknowledged_size) == (1, acknowledged.size)
    assert kept.acknowledged_note == shipped.acknowledged_note


def test_a_gap_is_accepted_and_reported(
    fleet_hub: HubContext, metrics_site: MetricsSite, tmp_path: Path
) -> None:
    first = import_metrics(fleet_hub, metrics_site.bundle(tmp_path / "m1"))
    metrics_site.bundle(tmp_path / "m2")  # lost on the way
    metrics_site.bundle(tmp_path / "m3")  # also lost
    result = import_metrics(fleet_hub, metrics_site.bundle(tmp_path / "m4"))
    assert result.sequence == 4 and result.missing_sequences == (2, 3)
    assert result.consistency == f"proof from {first.checkpoint_size}"
    details = json.loads(AuditLog(fleet_hub.engine, "hub").entries()[-1].details)
    assert details["missing_sequences"] == [2, 3]
    assert events_of(fleet_hub, "metrics.imported")[-1]["data"]["missing_sequences"] == [2, 3]  # type: ignore[index]
    with Session(fleet_hub.engine) as session:
        row = return_keys.newest_import(session, SITE_ID)
    assert row is not None and row.missing_sequences == [2, 3]


def test_the_same_bundle_twice_is_a_replay(
    fleet_hub: HubContext, metrics_site: MetricsSite, tmp_path: Path
) -> None:
    bundle = metrics_site.bundle(tmp_path / "m1")
    import_metrics(fleet_hub, bundle)
    before = row_counts(fleet_hub)
    with pytest.raises(FreshnessError, match=r"bundle 1 of site plant-7 was already imported"):
        import_metrics(fleet_hub, bundle)
    details = assert_refused(fleet_hub, before)
    assert "newest: 1" in details["message"] and details["error"] == "FreshnessError"


def test_an_older_sequence_is_refused(
    fleet_hub: HubContext, metrics_site: MetricsSite, tmp_path: Path
) -> None:
    older = metrics_site.bundle(tmp_path / "m1")
    import_metrics(fleet_hub, metrics_site.bundle(tmp_path / "m2"))
    before = row_counts(fleet_hub)
    with pytest.raises(FreshnessError, match=r"already imported \(newest: 2\)"):
        import_metrics(fleet_hub, older)
    assert_refused(fleet_hub, before)


def test_an_expired_bundle_is_refused(
    fleet_hub: HubContext, metrics_site: MetricsSite, tmp_path: Path
) -> None:
    payload = metrics_site.payload()
    expires = parse_utc(payload.created) + dt.timedelta(days=1)
    bundle = metrics_site.write(tmp_path / "m1", payload, expires=expires)
    fleet_hub.clock.advance(dt.timedelta(days=2))  # type: ignore[attr-defined]
    before = row_counts(fleet_hub)
    with pytest.raises(FreshnessError, match="expired"):
        import_metrics(fleet_hub, bundle)
    assert_refused(fleet_hub, before)


def test_a_wrong_passphrase_stores_nothing(
    fleet_hub: HubContext, metrics_site: MetricsSite, tmp_path: Path
) -> None:
    bundle = metrics_site.bundle(tmp_path / "m1")
    wrong = open_hub(fleet_hub.home.root, lambda _name: "not the hub passphrase")
    before = row_counts(fleet_hub)
    try:
        with pytest.raises(SecretError):
            import_metrics(wrong, bundle)
    finally:
        wrong.close()
    details = assert_refused(fleet_hub, before, outcome="failure")
    assert "not the hub passphrase" not in json.dumps(details)


def test_the_fleet_limits_are_judged_in_the_import(
    fleet_hub: HubContext,
    metrics_site: MetricsSite,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Alerts the figures open are part of the import (result, audit entry, events)."""
    monkeypatch.setenv("AIRLOCK_FLEET_ERROR_RATE_LIMIT", "0.001")  # 6 errors in 2,000 is beyond
    payload = metrics_site.payload(noise=NoiseSpec(epsilon=1.0))
    result = import_metrics(fleet_hub, metrics_site.write(tmp_path / "m1", payload))

    assert result.noise is not None and result.noise["epsilon"] == 1.0
    with Session(fleet_hub.engine) as session:
        row = session.exec(select(HubMetricsImport)).one()
        alerts = session.exec(select(HubFleetAlert)).all()
    assert row.noise["family_epsilon"] == NoiseSpec(epsilon=1.0).family_epsilon
    assert [(a.model, a.version, a.kind) for a in alerts if a.kind == "error-rate"] == [
        ("iris", "3", "error-rate")
    ]
    opened = [a for a in result.alerts if a["kind"] == "error-rate"]
    assert len(opened) == 1 and (opened[0]["model"], opened[0]["version"]) == ("iris", "3")
    entries = AuditLog(fleet_hub.engine, "hub").entries()
    details = json.loads(next(e for e in reversed(entries) if e.action == IMPORT_ACTION).details)
    assert details["alerts"] == json.loads(json.dumps(list(result.alerts)))
    assert details["noise"]["epsilon"] == "1.0"  # audit entries are canonical JSON: no floats
    assert len(events_of(fleet_hub, "fleet.error-rate")) == 1


def test_the_sites_rolled_back_versions_are_kept_and_replaced_by_its_next_report(
    fleet_hub: HubContext, metrics_site: MetricsSite, tmp_path: Path
) -> None:
    reported = (RolledBackVersion("iris", "2", "2026-03-01T10:00:00Z"),)
    first = metrics_site.payload(rolled_back=reported)
    result = import_metrics(fleet_hub, metrics_site.write(tmp_path / "m1", first))
    assert result.to_dict()["rolled_back"] == [reported[0].to_dict()]
    with Session(fleet_hub.engine) as session:
        rows = session.exec(select(HubSiteRollback)).all()
        assert [(r.site_id, r.model, r.version, r.reported_sequence) for r in rows] == [
            (SITE_ID, "iris", "2", 1)
        ]
        assert site_rollbacks.rolled_back_at_site(session, SITE_ID, "iris") == {"2"}
    second = metrics_site.payload()  # iris@2 went through since: the site's list is empty
    import_metrics(fleet_hub, metrics_site.write(tmp_path / "m2", second))
    with Session(fleet_hub.engine) as session:
        assert session.exec(select(HubSiteRollback)).all() == []
