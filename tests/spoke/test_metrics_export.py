"""`export_metrics`: what leaves the site is anonymised, signed by the site, readable by the hub.

The fleet spoke (iris@1..3 staged at plant-7) gets metric windows from
enrolled nodes whose labels carry host names and addresses, inserted as the
node service stores them, and a return path naming a hub whose age identity
the test holds. Real site key, real age, real checkpoints and proofs; only
time is fixed.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pyrage
import pytest
from helpers.fleetenv import Fleet
from helpers.spokechange import assert_cloudevent, events_of
from helpers.spokeenv import SITE_ID
from securesystemslib.signer import CryptoSigner, Key
from sqlmodel import Session, select

from airlock.bundles.audit import (
    AuditLog,
    Checkpoint,
    HubReturnRecord,
    cosign,
    verify_checkpoint,
    verify_consistency,
)
from airlock.bundles.clock import utc_iso
from airlock.bundles.db import session_scope
from airlock.bundles.errors import UsageError
from airlock.bundles.metrics import LatencySketch, MetricsPayload, open_metrics_bundle
from airlock.bundles.models import Envelope
from airlock.spoke.metrics import export_metrics, plan_metrics, window_floor
from airlock.spoke.site import (
    EnrolledNode,
    MetricsExportRecord,
    MetricWindow,
    Rollout,
    SpokeHome,
)

ORIGIN = f"airlock/spoke/{SITE_ID}"
GROUPS = {
    ("3", "stable"): [f"node-a{i}" for i in range(1, 7)],  # 6 nodes
    ("3", "canary"): ["node-c1", "node-c2"],  # 2 nodes: suppressed, and stable with it
    ("2", "stable"): [f"node-b{i}" for i in range(1, 6)],  # 5 nodes: published
    ("1", "stable"): ["node-d1", "node-d2", "node-d3"],  # 3 nodes: total suppressed too
}
NODE_IDS = [node for nodes in GROUPS.values() for node in nodes]
HOSTS = {node: f"edge-{node}.plant7.example" for node in NODE_IDS}
ADDRESSES = {node: f"10.7.3.{20 + i}" for i, node in enumerate(NODE_IDS)}
IDENTIFIERS = [*NODE_IDS, *HOSTS.values(), *ADDRESSES.values()]


@pytest.fixture
def hub_identity() -> pyrage.x25519.Identity:
    """The hub's age identity (the test plays the hub)."""
    return pyrage.x25519.Identity.generate()


@pytest.fixture
def now(fleet: Fleet) -> dt.datetime:
    """50 minutes into an hour window, well after the fleet's last import."""
    return window_floor(fleet.hub_time + dt.timedelta(hours=2), 60) + dt.timedelta(minutes=50)


def enrol_nodes(home: SpokeHome, nodes: list[str], when: dt.datetime) -> None:
    """EnrolledNode rows whose labels carry a host name and an address."""
    with session_scope(home.engine) as session:
        for node in nodes:
            session.add(
                EnrolledNode(
                    node_id=node,
                    keyid=f"key-{node}",
                    labels={"hostname": HOSTS[node], "address": ADDRESSES[node]},
                    enrolled_at=utc_iso(when),
                    enrolled_by="site-admin",
                )
            )


def add_windows(home: SpokeHome, received: dt.datetime) -> None:
    """One metric window per node of every group, received at ``received``."""
    with session_scope(home.engine) as session:
        for (version, ring), nodes in GROUPS.items():
            for node in nodes:
                session.add(
                    MetricWindow(
                        node_id=node, model="iris", version=version, role="candidate",
                        ring=ring, window_start=utc_iso(received - dt.timedelta(minutes=1)),
                        window_end=utc_iso(received), received_at=utc_iso(received),
                        requests=10, errors=1, latency=LatencySketch.of([5.0, 7.5]).to_dict(),
                        predictions={"setosa": 6, "versicolor": 4}, confidence={"0.9": 10},
                        shadow_compared=2, shadow_disagreed=1,
                    )
                )  # fmt: skip


WITNESS = CryptoSigner.generate_ed25519()
WITNESS_NAME = "airlock/hub/test-hub"


def set_return(
    home: SpokeHome, recipient: str, sequence: int = 0, size: int = 0, note: str = ""
) -> None:
    """The HubReturnRecord an import of the hub's Director metadata stores.

    With ``note`` (the site's checkpoint the hub imported), the hub's witness cosigns it.
    """
    key = WITNESS.public_key
    with session_scope(home.engine) as session:
        row = session.get(HubReturnRecord, 1) or HubReturnRecord(hub_recipient="", witness_name="")
        row.hub_recipient, row.witness_name = recipient, WITNESS_NAME
        row.witness_key = key.to_dict() | {"keyid": key.keyid}
        row.acknowledged_sequence, row.acknowledged_size = sequence, size
        row.acknowledged_note = (
            cosign(note, WITNESS_NAME, WITNESS, dt.datetime.now(dt.UTC)) if note else ""
        )
        session.add(row)


@pytest.fixture
def site(
    fleet_spoke: SpokeHome, hub_identity: pyrage.x25519.Identity, now: dt.datetime
) -> Iterator[SpokeHome]:
    """The fleet spoke with nodes, one round of metric windows and the hub's return path."""
    enrol_nodes(fleet_spoke, NODE_IDS, now - dt.timedelta(hours=1))
    add_windows(fleet_spoke, now - dt.timedelta(minutes=40))
    add_windows(fleet_spoke, now - dt.timedelta(minutes=10))
    set_return(fleet_spoke, str(hub_identity.to_public()))
    yield fleet_spoke


def site_key(home: SpokeHome) -> Key:
    return home.signing_key().public_key


def open_bundle(
    home: SpokeHome, bundle: Path, identity: pyrage.x25519.Identity, now: dt.datetime
) -> tuple[Envelope, MetricsPayload]:
    """What the hub does first: the envelope must verify with this site's key."""

    def key_of(site: str) -> Key:
        assert site == SITE_ID
        return site_key(home)

    return open_metrics_bundle(bundle, key_of, identity, now)


def last_entry_details(home: SpokeHome, action: str) -> dict[str, object]:
    [entry] = [e for e in AuditLog(home.engine, "spoke").entries() if e.action == action][-1:]
    assert entry.outcome == "success"
    return dict(json.loads(entry.details))


def test_the_bundle_carries_anonymised_aggregates_and_no_identifier(
    site: SpokeHome, hub_identity: pyrage.x25519.Identity, now: dt.datetime, tmp_path: Path
) -> None:
    result = export_metrics(site, tmp_path / "metrics-1", now, principal="site-admin")
    envelope, payload = open_bundle(site, tmp_path / "metrics-1", hub_identity, now)

    raw = pyrage.decrypt((tmp_path / "metrics-1" / "payload.age").read_bytes(), [hub_identity])
    leaked = [ident for ident in IDENTIFIERS if ident.encode() in raw]
    assert leaked == [], f"identifiers in the exported bytes: {leaked}"
    assert (envelope.sequence, envelope.bundle_id, payload.sequence) == (1, result.bundle_id, 1)
    start = window_floor(now, 60)
    assert (payload.window_start, payload.window_end) == (utc_iso(start), utc_iso(now))
    assert envelope.window == (start, now)

    [cell] = payload.cells  # iris@2: 5 nodes; iris@3's rings (6 + 2) and iris@1 (3) held back
    assert (cell.version, cell.ring, cell.nodes, cell.requests, cell.errors) == (
        "2", "stable", 5, 100, 10
    )  # fmt: skip
    assert (cell.predictions, cell.confidence) == ({"setosa": 60, "versicolor": 40}, {"0.9": 100})
    assert LatencySketch.from_dict(cell.latency).count == 20
    assert [(t.version, t.nodes, t.requests) for t in payload.totals] == [
        ("2", 5, 100),
        ("3", 8, 160),
    ]
    assert (payload.suppressed_cells, payload.suppressed_totals, payload.k) == (3, 1, 5)
    assert payload.noise is None and payload.consistency == ()

    checkpoint = verify_checkpoint(payload.checkpoint, {ORIGIN: site_key(site)})
    entries = AuditLog(site.engine, "spoke").entries()
    assert checkpoint.size == len(entries) and entries[-1].action == "audit.checkpoint"
    assert entries[-2].action == "spoke.metrics.export" and entries[-2].principal == "site-admin"
    details = json.loads(entries[-2].details)
    assert details == {
        "sequence": 1,
        "bundle_id": result.bundle_id,
        "window": {"start": payload.window_start, "end": payload.window_end},
        "rows": 2 * len(NODE_IDS),
        "cells": 1,
        "totals": 2,
        "suppressed_cells": 3,
        "suppressed_totals": 1,
        "k": 5,
    }
    with Session(site.engine) as session:
        [record] = session.exec(select(MetricsExportRecord)).all()
    assert (record.sequence, record.bundle_id, record.checkpoint_size) == (
        1,
        result.bundle_id,
        checkpoint.size,
    )
    assert record.checkpoint_root == checkpoint.root.hex()
    assert record.payload_sha256 == envelope.parts[0].sha256
    [event] = events_of(site, "metrics.exported")
    assert_cloudevent(event, f"/airlock/spoke/{SITE_ID}")
    assert event["data"]["sequence"] == 1 and event["data"]["suppressed_cells"] == 3
    told = json.dumps([details, event]) + (site.path / "events" / "outbox.jsonl").read_text()
    assert [ident for ident in IDENTIFIERS if ident in told] == []


def _checkpoint(payload: MetricsPayload, home: SpokeHome) -> Checkpoint:
    return verify_checkpoint(payload.checkpoint, {ORIGIN: site_key(home)})


def test_the_next_export_continues_the_window_and_proves_consistency(
    site: SpokeHome, hub_identity: pyrage.x25519.Identity, now: dt.datetime, tmp_path: Path
) -> None:
    export_metrics(site, tmp_path / "m1", now)
    _, first = open_bundle(site, tmp_path / "m1", hub_identity, now)
    later = now + dt.timedelta(minutes=30)
    add_windows(site, now + dt.timedelta(minutes=5))

    export_metrics(site, tmp_path / "m2", later)
    envelope, second = open_bundle(site, tmp_path / "m2", hub_identity, later)
    assert second.sequence == envelope.sequence == 2
    assert (second.window_start, second.window_end) == (first.window_end, utc_iso(later))
    assert sum(t.requests for t in second.totals) == 10 * 13  # only the new round, 13 nodes
    old, new = _checkpoint(first, site), _checkpoint(second, site)
    [proof] = second.consistency  # the hub acknowledged nothing yet: from export 1's checkpoint
    assert (proof.old_size, proof.new_size) == (old.size, new.size)
    verify_consistency(old.size, new.size, old.root, new.root, proof.hashes)

    set_return(site, str(hub_identity.to_public()), 1, old.size, first.checkpoint)
    latest = later + dt.timedelta(minutes=1)
    export_metrics(site, tmp_path / "m3", latest)
    _, third = open_bundle(site, tmp_path / "m3", hub_identity, latest)
    newest = _checkpoint(third, site)
    assert sorted(p.old_size for p in third.consistency) == [old.size, new.size]
    ordered = sorted(third.consistency, key=lambda p: p.old_size)
    for proof, earlier in zip(ordered, (old, new), strict=True):
        assert proof.new_size == newest.size
        verify_consistency(earlier.size, newest.size, earlier.root, newest.root, proof.hashes)
    assert third.sequence == 3 and third.window_start == second.window_end and third.cells == ()


def test_noise_changes_counts_not_suppression_and_its_budget_is_audited(
    site: SpokeHome,
    hub_identity: pyrage.x25519.Identity,
    now: dt.datetime,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AIRLOCK_METRICS_EPSILON", "1.5")  # the site's [metrics] epsilon
    plan = plan_metrics(site, now)
    export_metrics(site, tmp_path / "noisy", now)
    _, payload = open_bundle(site, tmp_path / "noisy", hub_identity, now)

    assert payload.noise is not None and payload.noise.epsilon == 1.5
    assert (payload.suppressed_cells, payload.suppressed_totals) == (3, 1)
    [cell], [exact] = payload.cells, plan.anonymised.cells
    assert cell.nodes == exact.nodes == 5 and cell.key == exact.key
    noised = (cell.requests, cell.errors, cell.latency, cell.predictions, cell.confidence)
    assert noised != (
        exact.requests,
        exact.errors,
        exact.latency,
        exact.predictions,
        exact.confidence,
    )
    details = last_entry_details(site, "spoke.metrics.export")
    assert details["epsilon"] == "1.5" and details["mechanism"] == payload.noise.mechanism
    assert float(str(details["family_epsilon"])) == 1.5 / len(payload.noise.families)
    with Session(site.engine) as session:
        [record] = session.exec(select(MetricsExportRecord)).all()
    assert record.epsilon == 1.5


def test_k_may_be_raised_and_epsilon_must_be_positive(site: SpokeHome, now: dt.datetime) -> None:
    stricter = plan_metrics(site, now, k=6)  # iris@2's 5 nodes are now too few as well
    assert (stricter.k, stricter.anonymised.cells) == (6, ())
    assert [t.version for t in stricter.anonymised.totals] == ["3"]
    with pytest.raises(UsageError, match="below this site's k of 5") as lower:
        plan_metrics(site, now, k=4)
    assert lower.value.hint
    with pytest.raises(UsageError, match="epsilon must be a number > 0"):
        plan_metrics(site, now, epsilon=0.0)


def test_an_export_without_metrics_still_carries_the_checkpoint(
    fleet_spoke: SpokeHome, hub_identity: pyrage.x25519.Identity, now: dt.datetime, tmp_path: Path
) -> None:
    set_return(fleet_spoke, str(hub_identity.to_public()))
    export_metrics(fleet_spoke, tmp_path / "empty", now)
    _, payload = open_bundle(fleet_spoke, tmp_path / "empty", hub_identity, now)
    assert (payload.window_start, payload.window_end) == (utc_iso(now), utc_iso(now))
    assert (payload.cells, payload.totals, payload.suppressed_cells) == ((), (), 0)
    checkpoint = _checkpoint(payload, fleet_spoke)
    assert checkpoint.size == AuditLog(fleet_spoke.engine, "spoke").count()


def test_a_failure_while_writing_rolls_everything_back(
    site: SpokeHome, now: dt.datetime, tmp_path: Path
) -> None:
    """The recipient is refused inside the transaction: no record, no checkpoint, no bundle."""
    with session_scope(site.engine) as session:
        row = session.get(HubReturnRecord, 1)
        assert row is not None
        row.hub_recipient = "age1notarecipient"
        session.add(row)
    before = AuditLog(site.engine, "spoke").entries()
    with pytest.raises(UsageError, match="recipient is not valid"):
        export_metrics(site, tmp_path / "out", now)
    after = AuditLog(site.engine, "spoke").entries()
    assert [e.seq for e in after[:-1]] == [e.seq for e in before]
    assert (after[-1].action, after[-1].outcome) == ("spoke.metrics.export", "refused")
    assert json.loads(after[-1].details)["error"] == "UsageError"
    assert not (tmp_path / "out").exists() and list(tmp_path.glob(".out.*")) == []
    with Session(site.engine) as session:
        assert session.exec(select(MetricsExportRecord)).all() == []
    assert events_of(site, "metrics.exported") == []


def test_the_versions_this_site_rolled_back_go_to_the_hub(
    site: SpokeHome, hub_identity: pyrage.x25519.Identity, now: dt.datetime, tmp_path: Path
) -> None:
    def rollout(rid: str, version: str, state: str, minutes: int) -> Rollout:
        when = utc_iso(now - dt.timedelta(minutes=minutes))
        return Rollout(
            id=rid, model="iris", version=version, state=state, created_at=when, updated_at=when
        )

    with session_scope(site.engine) as session:
        session.add(rollout("r1", "2", "rolled-back", 50))
        session.add(rollout("r2", "3", "rolled-back", 40))
        session.add(rollout("r3", "3", "complete", 30))  # 3 was retried and went through
    export_metrics(site, tmp_path / "m1", now)
    _, payload = open_bundle(site, tmp_path / "m1", hub_identity, now)
    assert [r.to_dict() for r in payload.rolled_back] == [
        {"model": "iris", "version": "2", "rolled_back_at": utc_iso(now - dt.timedelta(minutes=50))}
    ]
