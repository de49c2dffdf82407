"""What an import records: the hub's signed rollout plan per assigned version, with its sha.

Uses the fleet templates (iris@1..3 staged at plant-7): the hub releases and
assigns more, exports a bundle, and the real spoke imports it. Change
authorisations are signed into the Director target next to the plan with the
hub's real online Director keys (:func:`helpers.bundlecraft.resign_director`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers.bundlecraft import forge_bundle, resign_director
from helpers.fleetenv import Fleet
from helpers.gatemodels import classification, release, site_compatibility
from helpers.spokechange import approved_change, assert_cloudevent, events_of
from helpers.spokeenv import SITE_ID, accept_import, refuse_import
from sqlmodel import Session
from tuf.api.metadata import Targets

from airlock.bundles import tuf as tufrepo
from airlock.bundles.audit import AuditLog
from airlock.bundles.canonical import canonical_bytes
from airlock.bundles.clock import FixedClock
from airlock.bundles.errors import StaleBundleError, TrustError
from airlock.bundles.release import CHANGE_KEY, Dependency, HealthCriteria, Ring, RolloutPlan
from airlock.hub.context import HubContext
from airlock.hub.export import assign, export, plan_export
from airlock.spoke.site import RolloutPlanRecord, SpokeHome

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
def hub(fleet_hub: HubContext) -> HubContext:
    """The hub that made the fleet spoke (this module's tests call it ``hub``)."""
    return fleet_hub


@pytest.fixture
def clock(fleet: Fleet) -> FixedClock:
    return FixedClock(fleet.hub_time + dt.timedelta(hours=1))


def _record(home: SpokeHome, model: str, version: str) -> RolloutPlanRecord | None:
    with Session(home.engine) as session:
        return session.get(RolloutPlanRecord, (model, version))


def _sha(plan: RolloutPlan) -> str:
    return hashlib.sha256(canonical_bytes(plan.to_dict())).hexdigest()


def test_the_signed_plan_and_dependencies_land_in_the_plan_record(
    fleet: Fleet, hub: HubContext, fleet_spoke: SpokeHome, clock: FixedClock, tmp_path: Path
) -> None:
    needs = site_compatibility(depends=(Dependency("classifier", "1"),))
    release(hub, "iris", "4", fleet.iris.path, fleet.iris.sets["good"], classification(), needs)
    assign(hub, SITE_ID, "iris", "4", CAREFUL)
    envelope = export(hub, SITE_ID, tmp_path / "bundle-4")

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
    hub: HubContext, fleet_spoke: SpokeHome, clock: FixedClock, tmp_path: Path
) -> None:
    before = _record(fleet_spoke, "iris", "3")
    assert before is not None and before.plan == RolloutPlan().to_dict()
    assert before.plan_sha256 == _sha(RolloutPlan())

    assert assign(hub, SITE_ID, "iris", "3", CAREFUL) is True  # same version, new plan
    envelope = export(hub, SITE_ID, tmp_path / "replan")
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


# --- change authorisations ------------------------------------------------------------------------


def _with_change(change: Any) -> Callable[[Targets], None]:
    """Signs ``change`` as ``custom.airlock.change`` of iris's primary Director target."""

    def edit(targets: Targets) -> None:
        for target in targets.targets.values():
            custom = target.unrecognized_fields["custom"][tufrepo.CUSTOM_KEY]
            if custom["model"] == "iris" and tufrepo.ROLLOUT_KEY in custom:
                custom[CHANGE_KEY] = change

    return edit


def _ship_with_change(hub: HubContext, change: Any, out: Path) -> str:
    """Re-plans iris@3 (new Director targets), signs ``change`` next to the plan; the bundle id."""
    assign(hub, SITE_ID, "iris", "3", CAREFUL)
    plan = plan_export(hub, SITE_ID)
    metadata = resign_director(hub, plan.metadata, _with_change(change))
    return forge_bundle(hub, plan, out, metadata=metadata).bundle_id


def test_a_signed_change_authorisation_is_recorded_with_the_plan(
    fleet: Fleet, hub: HubContext, fleet_spoke: SpokeHome, clock: FixedClock, tmp_path: Path
) -> None:
    now = clock.now()
    auth = approved_change("CHG0031001", now, now + dt.timedelta(hours=4))
    bundle_id = _ship_with_change(hub, auth.to_dict(), tmp_path / "bundle")
    result = accept_import(fleet_spoke, tmp_path / "bundle", clock)
    record = _record(fleet_spoke, "iris", "3")
    assert record is not None
    assert record.change == auth.to_dict()
    assert record.plan_sha256 == _sha(CAREFUL)  # the plan's sha covers the plan only
    [iris] = [p for p in result.plans if p["model"] == "iris"]
    assert (iris["change_request"], iris["changed"]) == ("CHG0031001", True)
    entry = AuditLog(fleet_spoke.engine, "spoke").entries()[-1]
    assert entry.change_request == "CHG0031001"
    assert json.loads(entry.details)["change_requests"] == ["CHG0031001"]
    [event] = [e for e in events_of(fleet_spoke, "bundle.imported") if e["subject"] == bundle_id]
    assert_cloudevent(event, f"/airlock/spoke/{SITE_ID}")
    assert event["data"]["change_requests"] == ["CHG0031001"]
    assert event["data"]["sequence"] == result.sequence and "iris@3" in event["data"]["assigned"]


def _authorisation(**changes: Any) -> dict[str, Any]:
    start = dt.datetime(2026, 11, 23, 14, 0, tzinfo=dt.UTC)
    data = approved_change("CHG0031002", start, start + dt.timedelta(hours=4)).to_dict()
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


@pytest.mark.parametrize(
    "change",
    [
        pytest.param("CHG0031002", id="not-an-object"),
        pytest.param(_authorisation(window_end=None), id="missing-window-end"),
        pytest.param(_authorisation(type="yolo"), id="unknown-type"),
        pytest.param(_authorisation(window_end="2026-11-23T13:00:00Z"), id="window-ends-first"),
        pytest.param(_authorisation(window_start="tomorrow"), id="not-a-time"),
        pytest.param(_authorisation(number=30001), id="number-not-text"),
        pytest.param(_authorisation(number=""), id="no-number"),
    ],
)
def test_a_malformed_change_authorisation_refuses_the_import(
    hub: HubContext, fleet_spoke: SpokeHome, clock: FixedClock, tmp_path: Path, change: Any
) -> None:
    _ship_with_change(hub, change, tmp_path / "bundle")
    refuse_import(
        fleet_spoke,
        tmp_path / "bundle",
        TrustError,
        "the signed change authorisation of iris@3 is malformed",
        clock,
    )
