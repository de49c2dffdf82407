"""Rollouts gated on change requests: the hub's refusals, and the signed record at the site.

The fleet templates (:mod:`helpers.fleetenv`): iris@1..3 released and staged at
plant-7, iris@3 assigned. The hub assigns iris@2 under a change request; the
authorisation (number, window, approval) is signed into plant-7's Director
targets and arrives at the spoke with the next bundle. The spoke's window
gating itself is tested with the rollout engine.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers.fleetenv import Fleet
from helpers.hubenv import HUB_PASSPHRASE, tree_digest
from helpers.spokeenv import SITE_ID, accept_import
from securesystemslib.signer import CryptoSigner
from sqlmodel import Session, select
from tuf.api.metadata import Targets

from airlock.bundles import tuf as tufrepo
from airlock.bundles.audit import AuditLog
from airlock.bundles.cli import main
from airlock.bundles.clock import FixedClock, utc_iso
from airlock.bundles.errors import UsageError
from airlock.bundles.events import OutboxEvent
from airlock.bundles.release import CHANGE_KEY, ChangeAuthorization, RolloutPlan
from airlock.hub.changes import (
    add_change_approver,
    approve_change,
    create_change,
    get_change,
    move_change,
)
from airlock.hub.context import HubContext, load_director_roots, load_site_metadata
from airlock.hub.export import assign, export
from airlock.hub.sites import list_sites
from airlock.spoke.site import RolloutPlanRecord

PLAN = RolloutPlan()


@pytest.fixture(scope="module")
def alice() -> CryptoSigner:
    return CryptoSigner.generate_ed25519()


@pytest.fixture
def clock(fleet: Fleet) -> FixedClock:
    return FixedClock(fleet.hub_time)


@pytest.fixture
def hub(
    fleet: Fleet, tmp_path: Path, clock: FixedClock, alice: CryptoSigner
) -> Iterator[HubContext]:
    opened = fleet.new_hub(tmp_path / "hub", clock)
    add_change_approver(opened, "alice", alice.public_key)
    yield opened
    opened.close()


def open_change(hub: HubContext, covers: str = f"{SITE_ID}:iris@2", hours: int = 8) -> str:
    """A change request in authorize, its window from an hour ago to ``hours`` from now."""
    now = hub.clock.now()
    number = create_change(
        hub,
        short_description="Roll iris back to 2 at plant-7",
        requested_by="carol",
        planned_start=utc_iso(now - dt.timedelta(hours=1)),
        planned_end=utc_iso(now + dt.timedelta(hours=hours)),
        covers=[covers],
    ).number
    move_change(hub, number, "authorize")
    return number


def ready_change(hub: HubContext, alice: CryptoSigner, **kwargs: object) -> str:
    number = open_change(hub, **kwargs)  # type: ignore[arg-type]
    approve_change(hub, number, "alice", alice)
    move_change(hub, number, "implement")
    return number


def outbox_size(hub: HubContext) -> int:
    with Session(hub.engine) as session:
        return len(list(session.exec(select(OutboxEvent))))


def _not_approved(hub: HubContext, alice: CryptoSigner, clock: FixedClock) -> str:
    return open_change(hub)


def _scheduled(hub: HubContext, alice: CryptoSigner, clock: FixedClock) -> str:
    number = open_change(hub)
    approve_change(hub, number, "alice", alice)
    return number


def _other_plan(hub: HubContext, alice: CryptoSigner, clock: FixedClock) -> str:
    return ready_change(hub, alice, covers=f"{SITE_ID}:iris@1")


def _window_over(hub: HubContext, alice: CryptoSigner, clock: FixedClock) -> str:
    number = ready_change(hub, alice, hours=2)
    clock.advance(dt.timedelta(hours=2))
    return number


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (_not_approved, "is not approved"),
        (_scheduled, "is in scheduled, not implement"),
        (_other_plan, "does not cover plant-7:iris@2"),
        (_window_over, "window of change .* ended"),
    ],
)
def test_an_assignment_outside_its_change_is_refused(
    hub: HubContext, alice: CryptoSigner, clock: FixedClock, make: object, match: str
) -> None:
    number = make(hub, alice, clock)  # type: ignore[operator]
    before, events = tree_digest(hub.home.root), outbox_size(hub)
    with pytest.raises(UsageError, match=match):
        assign(hub, SITE_ID, "iris", "2", PLAN, change=number)
    assert tree_digest(hub.home.root) == before
    assert outbox_size(hub) == events
    assert list_sites(hub)[0].assignments["iris"] == "3"
    entry = AuditLog(hub.engine, "hub").entries()[-1]
    assert (entry.action, entry.outcome, entry.change_request) == (
        "hub.assign",
        "refused",
        number,
    )


def test_a_hub_that_requires_changes_refuses_an_assignment_without_one(
    hub: HubContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRLOCK_CHANGE_REQUIRED", "true")
    with pytest.raises(UsageError, match="only under a change request"):
        assign(hub, SITE_ID, "iris", "2", PLAN)
    monkeypatch.setenv("AIRLOCK_CHANGE_REQUIRED", "false")
    assert assign(hub, SITE_ID, "iris", "2", PLAN) is True


def test_the_approved_change_travels_signed_to_the_site(
    hub: HubContext, alice: CryptoSigner, fleet: Fleet, tmp_path: Path
) -> None:
    number = ready_change(hub, alice)
    assert assign(hub, SITE_ID, "iris", "2", PLAN, change=number) is True
    assert assign(hub, SITE_ID, "iris", "2", PLAN, change=number) is False  # nothing new
    entry = AuditLog(hub.engine, "hub").entries()[-1]
    assert (entry.outcome, entry.change_request) == ("unchanged", number)

    site_md = load_site_metadata(hub, SITE_ID)
    targets = site_md.targets
    load_director_roots(hub).root.signed.verify_delegate(
        Targets.type, targets.signed_bytes, targets.signatures
    )
    signed = site_md.signed_change("iris", "2")
    assert signed is not None
    primary = [
        t.custom[tufrepo.CUSTOM_KEY]
        for t in targets.signed.targets.values()
        if CHANGE_KEY in t.custom[tufrepo.CUSTOM_KEY]
    ]
    assert len(primary) == 1 and primary[0]["rollout"] == PLAN.to_dict()
    auth = ChangeAuthorization.from_dict(signed)
    assert auth == get_change(hub, number).authorization()
    assert (auth.number, auth.approved_by, auth.type) == (number, "alice", "normal")
    auth.verify_approval(alice.public_key)

    bundle = tmp_path / "media" / "bundle"
    export(hub, SITE_ID, bundle)
    spoke = fleet.new_spoke(tmp_path / "spoke")
    try:
        accept_import(spoke, bundle, FixedClock(hub.clock.now() + dt.timedelta(minutes=5)))
        with Session(spoke.engine) as session:
            record = session.get(RolloutPlanRecord, ("iris", "2"))
            assert record is not None
            assert record.change == auth.to_dict()
        ChangeAuthorization.from_dict(record.change).verify_approval(alice.public_key)
    finally:
        spoke.engine.dispose()


def test_reassigning_under_a_new_change_resigns(hub: HubContext, alice: CryptoSigner) -> None:
    first = ready_change(hub, alice)
    assign(hub, SITE_ID, "iris", "2", PLAN, change=first)
    second = ready_change(hub, alice)
    assert assign(hub, SITE_ID, "iris", "2", PLAN, change=second) is True
    assert load_site_metadata(hub, SITE_ID).signed_change("iris", "2")["number"] == second  # type: ignore[index]
    assert assign(hub, SITE_ID, "iris", "3", PLAN) is True
    assert load_site_metadata(hub, SITE_ID).signed_change("iris", "3") is None


def test_the_cli_assigns_under_a_change(
    hub: HubContext, alice: CryptoSigner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRLOCK_HUB_PASSPHRASE", HUB_PASSPHRASE)
    pending = open_change(hub)
    plan = tmp_path / "plan.toml"
    plan.write_text('interval_seconds = 30\n\n[[rings]]\nname = "all"\nnodes = "1"\n')
    args = ["hub", "assign", SITE_ID, "iris", "2", "--plan", str(plan)]
    args += ["--home", str(hub.home.root), "--change", pending]
    refused = CliRunner().invoke(main, args)
    assert refused.exit_code == 3 and f"change {pending} is not approved" in refused.output
    approve_change(hub, pending, "alice", alice)
    move_change(hub, pending, "implement")
    done = CliRunner().invoke(main, args)
    assert done.exit_code == 0, done.output
    assert load_site_metadata(hub, SITE_ID).signed_change("iris", "2")["number"] == pending  # type: ignore[index]
