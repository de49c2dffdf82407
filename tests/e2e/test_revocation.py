"""Revocation end to end: `hub revoke`, a small revocation bundle, and what the spoke records.

The fleet templates (:mod:`helpers.fleetenv`): the hub released iris@1..3 and
shipped each in turn to plant-7, whose spoke staged all three; iris@3 is
assigned. Real hub, real spoke, real TUF and age; only the clocks are fixed.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers.bundlecraft import forge_bundle
from helpers.fleetenv import Fleet
from helpers.spokeenv import SITE_ID, World, accept_import, refuse_import
from sqlmodel import Session, select
from tuf.api.metadata import Targets

from airlock.bundles import tuf as tufrepo
from airlock.bundles.audit import AuditLog
from airlock.bundles.bundle import ENVELOPE_FILE
from airlock.bundles.clock import FixedClock
from airlock.bundles.errors import IntegrityError, StaleBundleError, TrustError
from airlock.bundles.models import BundleKind
from airlock.bundles.release import RolloutPlan
from airlock.hub import repos as director_repo
from airlock.hub import repos as tufmeta
from airlock.hub.context import HubContext, director_signers, load_site_metadata
from airlock.hub.export import export, plan_export
from airlock.hub.repos import StagedWrites
from airlock.hub.revocation import revoke
from airlock.spoke.importing import UNLISTED_REASON, plan_sha256
from airlock.spoke.site import (
    DirectorAssignment,
    RevokedVersion,
    RolloutPlanRecord,
    SpokeHome,
    StagedModel,
)

REASON = "misclassifies versicolor after the sensor firmware update"
OMITTED = ("classifier@1", "detector@1", "iris@2")
"""What plant-7 runs after the revocation (the world's classifier and detector, sent long ago)."""
HINT = "import the earlier bundle first, or ask the hub for `airlock hub export --full`"


@pytest.fixture
def hub(fleet: Fleet, tmp_path: Path) -> Iterator[HubContext]:
    opened = fleet.new_hub(tmp_path / "hub")
    yield opened
    opened.close()


@pytest.fixture
def spoke(fleet: Fleet, tmp_path: Path) -> Iterator[SpokeHome]:
    home = fleet.new_spoke(tmp_path / "spoke")
    yield home
    home.engine.dispose()


@pytest.fixture
def later(fleet: Fleet) -> FixedClock:
    """The spoke's clock: an hour after the hub's last change."""
    return FixedClock(fleet.hub_time + dt.timedelta(hours=1))


def _payload_size(bundle: Path) -> int:
    """Bytes of every file of the bundle but its envelope (payload, or site part and volumes)."""
    return sum(
        p.stat().st_size for p in bundle.rglob("*") if p.is_file() and p != bundle / ENVELOPE_FILE
    )


def _rows(home: SpokeHome, table: type) -> list:  # type: ignore[type-arg]
    with Session(home.engine) as session:
        return list(session.exec(select(table)))


def test_a_revocation_bundle_moves_the_site_back_and_records_the_reason(
    hub: HubContext, spoke: SpokeHome, later: FixedClock, tmp_path: Path
) -> None:
    revocation = revoke(hub, "iris", "3", REASON)
    assert [(s.site_id, s.previous, s.now) for s in revocation.sites] == [(SITE_ID, "3", "2")]

    full_plan = plan_export(hub, SITE_ID, full=True)  # for comparison only: never recorded
    forge_bundle(hub, full_plan, tmp_path / "full-for-comparison")
    envelope = export(hub, SITE_ID, tmp_path / "media" / "revocation")
    bundle = tmp_path / "media" / "revocation"
    omitted = OMITTED
    assert (envelope.kind, envelope.omitted) == (BundleKind.REVOCATION, omitted)
    assert not list(bundle.glob("blobs*"))
    blob_bytes = sum(b.length for b in full_plan.blobs)
    assert blob_bytes > 0
    assert _payload_size(bundle) <= _payload_size(tmp_path / "full-for-comparison") - blob_bytes
    exported = json.loads(AuditLog(hub.engine, "hub").entries()[-2].details)  # [-1]: checkpoint
    assert (exported["kind"], exported["blobs"]) == ("revocation", [])

    result = accept_import(spoke, bundle, later)
    assert (result.kind, result.new_blobs, result.staged) == ("revocation", 0, [])
    assert result.assigned == result.already_staged == list(omitted)
    assert result.revoked == [
        {"model": "iris", "version": "3", "reason": REASON, "revoked_at": revocation.revoked_at}
    ]
    revoked = _rows(spoke, RevokedVersion)
    assert [(r.model, r.version, r.reason, r.bundle_id) for r in revoked] == [
        ("iris", "3", REASON, envelope.bundle_id)
    ]
    assigned = {(a.model, a.version) for a in _rows(spoke, DirectorAssignment)}
    assert ("iris", "2") in assigned and ("iris", "3") not in assigned
    staged = {(s.name, s.version) for s in _rows(spoke, StagedModel)}
    assert {("iris", "1"), ("iris", "2"), ("iris", "3")} <= staged, "nothing is deleted"
    details = json.loads(AuditLog(spoke.engine, "spoke").entries()[-1].details)
    assert details["revoked"] == result.revoked and details["omitted"] == list(omitted)
    plans = {f"{p['model']}@{p['version']}": p for p in details["plans"]}
    assert list(plans) == list(omitted)
    default_sha = plan_sha256(RolloutPlan().to_dict())  # fallbacks carry the default plan
    assert plans["iris@2"]["plan_sha256"] == default_sha

    before = len(_rows(spoke, RevokedVersion))
    refuse_import(spoke, bundle, StaleBundleError, "not newer", later)  # records nothing
    assert len(_rows(spoke, RevokedVersion)) == before


def test_a_delta_bundle_is_refused_by_a_site_without_the_omitted_version(
    hub: HubContext, world: World, later: FixedClock, tmp_path: Path
) -> None:
    """A site that lost the earlier bundles cannot use a delta; `--full` is its way back."""
    revoke(hub, "iris", "3", REASON)
    export(hub, SITE_ID, tmp_path / "revocation")
    fresh = world.new_spoke(tmp_path / "fresh-spoke")  # plant-7, nothing imported
    try:
        error = refuse_import(fresh, tmp_path / "revocation", IntegrityError, "iris@2", later)
        assert "leaves out the files of classifier@1, detector@1, iris@2" in error.message
        assert error.hint == HINT
        assert _rows(fresh, RolloutPlanRecord) == [] and _rows(fresh, RevokedVersion) == []

        envelope = export(hub, SITE_ID, tmp_path / "full", full=True)
        assert (envelope.kind, envelope.omitted) == (BundleKind.FULL, ())
        result = accept_import(fresh, tmp_path / "full", later)
        assert (result.staged, result.revoked) == (list(OMITTED), [])  # iris@3 was never here
        records = _rows(fresh, RolloutPlanRecord)
        assert sorted(f"{r.model}@{r.version}" for r in records) == list(OMITTED)
    finally:
        fresh.engine.dispose()


def _director_signs(hub: HubContext, change: Callable[[Targets], None]) -> None:
    """Changes the site's stored Director targets and re-signs them with the real online keys.

    Stands for a hub whose Director signed something odd; the next export ships it.
    """
    site_md = load_site_metadata(hub, SITE_ID)
    change(site_md.targets.signed)
    signers = director_signers(hub)
    expires = site_md.targets.signed.expires
    tufmeta.bump(site_md.targets, expires, [signers.targets])
    director_repo.refresh(site_md, expires, signers)
    writes = StagedWrites()
    site_md.stage(writes)
    writes.apply()


def test_a_version_the_image_drops_without_a_listed_reason_is_still_revoked(
    hub: HubContext, spoke: SpokeHome, later: FixedClock, tmp_path: Path
) -> None:
    """Fail closed: the Director does not list it, but the Image no longer signs it."""
    revoke(hub, "iris", "3", REASON)
    _director_signs(hub, lambda t: t.unrecognized_fields.pop(tufrepo.REVOCATIONS_FIELD))
    export(hub, SITE_ID, tmp_path / "unlisted")

    result = accept_import(spoke, tmp_path / "unlisted", later)
    assert [(r["version"], r["reason"]) for r in result.revoked] == [("3", UNLISTED_REASON)]
    (row,) = _rows(spoke, RevokedVersion)
    assert (row.version, row.reason, row.revoked_at) == (
        "3",
        UNLISTED_REASON,
        later.now().isoformat(),
    )


def test_a_malformed_signed_plan_refuses_the_bundle(
    hub: HubContext, spoke: SpokeHome, later: FixedClock, tmp_path: Path
) -> None:
    def bad_plan(targets: Targets) -> None:
        (custom,) = [
            t.custom["airlock"]
            for t in targets.targets.values()
            if t.custom["airlock"]["model"] == "iris" and "rollout" in t.custom["airlock"]
        ]
        custom["rollout"] = {"rings": [{"name": "canary", "nodes": "0.1"}]}  # no last ring

    _director_signs(hub, bad_plan)
    export(hub, SITE_ID, tmp_path / "bad-plan")
    error = refuse_import(spoke, tmp_path / "bad-plan", TrustError, "rollout plan", later)
    assert "iris@3" in error.message and "must cover every node" in error.message
