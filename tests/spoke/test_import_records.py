"""What an import records: the hub's signed rollout plan per assigned version, with its sha.

Uses the fleet templates (iris@1..3 staged at plant-7): the hub releases and
assigns more, exports a bundle, and the real spoke imports it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.fleetenv import Fleet
from helpers.gatemodels import classification, release, site_compatibility
from helpers.spokeenv import SITE_ID, accept_import, refuse_import
from sqlmodel import Session

from airlock.bundles.audit import AuditLog
from airlock.bundles.canonical import canonical_bytes
from airlock.bundles.clock import FixedClock
from airlock.bundles.errors import StaleBundleError
from airlock.bundles.release import Dependency
from airlock.bundles.rollout import HealthCriteria, Ring, RolloutPlan
from airlock.hub.hub import Hub
from airlock.spoke.fleet_state import RolloutPlanRecord
from airlock.spoke.home import SpokeHome

CAREFUL = RolloutPlan(
    rings=(
        Ring("canary", 1, bake_seconds=900, traffic="shadow"),
        Ring("half", "0.5", traffic="split", split_percent=30, approval="manual"),
        Ring("all", "1"),
    ),
    interval_seconds=120,
    health=HealthCriteria(max_error_rate="0.005", min_samples=100),
)


@pytest.fixture
def hub(fleet: Fleet, tmp_path: Path) -> Iterator[Hub]:
    opened = fleet.new_hub(tmp_path / "hub")
    yield opened
    opened.close()


@pytest.fixture
def clock(fleet: Fleet) -> FixedClock:
    return FixedClock(fleet.hub_time + dt.timedelta(hours=1))


def _record(home: SpokeHome, model: str, version: str) -> RolloutPlanRecord | None:
    with Session(home.engine) as session:
        return session.get(RolloutPlanRecord, (model, version))


def _sha(plan: RolloutPlan) -> str:
    return hashlib.sha256(canonical_bytes(plan.to_dict())).hexdigest()


def test_the_signed_plan_and_dependencies_land_in_the_plan_record(
    fleet: Fleet, hub: Hub, fleet_spoke: SpokeHome, clock: FixedClock, tmp_path: Path
) -> None:
    needs = site_compatibility(depends=(Dependency("classifier", "1"),))
    release(hub, "iris", "4", fleet.iris.path, fleet.iris.sets["good"], classification(), needs)
    hub.assign(SITE_ID, "iris", "4", CAREFUL)
    envelope = hub.export(SITE_ID, tmp_path / "bundle-4")

    result = accept_import(fleet_spoke, tmp_path / "bundle-4", clock)
    assert result.staged == ["iris@4"] and result.kind == "delta"
    record = _record(fleet_spoke, "iris", "4")
    assert record is not None
    assert record.plan == CAREFUL.to_dict()
    assert RolloutPlan.from_dict(record.plan) == CAREFUL
    assert record.plan_sha256 == _sha(CAREFUL)
    assert record.depends == [{"model": "classifier", "min_version": "1"}]
    assert (record.bundle_id, record.recorded_at) == (envelope.bundle_id, clock.now().isoformat())
    details = json.loads(AuditLog(fleet_spoke.engine, "spoke").entries()[-1].details)
    assert {
        "model": "iris",
        "version": "4",
        "plan_sha256": _sha(CAREFUL),
        "changed": True,
    } in details["plans"]
    assert details["revoked"] == []


def test_a_new_plan_for_the_same_version_replaces_the_record(
    hub: Hub, fleet_spoke: SpokeHome, clock: FixedClock, tmp_path: Path
) -> None:
    before = _record(fleet_spoke, "iris", "3")
    assert before is not None and before.plan == RolloutPlan().to_dict()
    assert before.plan_sha256 == _sha(RolloutPlan())

    assert hub.assign(SITE_ID, "iris", "3", CAREFUL) is True  # same version, new plan
    envelope = hub.export(SITE_ID, tmp_path / "replan")
    assert envelope.omitted and "iris@3" in envelope.omitted
    result = accept_import(fleet_spoke, tmp_path / "replan", clock)
    assert (result.new_blobs, result.staged, result.revoked) == (0, [], [])
    after = _record(fleet_spoke, "iris", "3")
    assert after is not None
    assert (after.plan, after.plan_sha256, after.bundle_id) == (
        CAREFUL.to_dict(),
        _sha(CAREFUL),
        envelope.bundle_id,
    )
    changed = {(p["model"], p["version"]): p["changed"] for p in result.plans}
    assert changed[("iris", "3")] is True and changed[("classifier", "1")] is False

    refuse_import(fleet_spoke, tmp_path / "replan", StaleBundleError, "not newer", clock)
    assert _record(fleet_spoke, "iris", "3") == after  # a stale bundle records nothing
