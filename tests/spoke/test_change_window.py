"""Change windows at the spoke: rollouts start and advance only inside the approved window.

The site (4 nodes, ``iris@1`` stable) gets ``iris@2`` under a plan whose
record carries a real change authorisation (the approver's Ed25519 signature
over its statement), written as an import would write it. The engine runs on
a FixedClock; automatic rollbacks and revocations must not wait for any
window and are recorded against an emergency change created after the fact.
Every decision lands as a CloudEvent in the outbox.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest
from helpers.rolloutenv import Behaviour, Site, complete, iris_site, quick_plan
from helpers.spokechange import approved_change, assert_cloudevent, events_of, outbox
from helpers.spokeenv import SITE_ID

from airlock.bundles.audit import AuditLog, AuditRecord
from airlock.bundles.clock import parse_utc, utc_iso
from airlock.bundles.db import session_scope
from airlock.bundles.errors import UsageError
from airlock.bundles.events import EVENT_TYPES
from airlock.bundles.release import ChangeAuthorization, RolloutPlan
from airlock.spoke.rollout import ENGINE_PRINCIPAL, abort, pause, promote, resume
from airlock.spoke.site import RolloutPlanRecord, SpokeHome

SOURCE = f"/airlock/spoke/{SITE_ID}"
MINUTE = dt.timedelta(minutes=1)


@pytest.fixture
def site(fleet_spoke: SpokeHome) -> Iterator[Site]:
    """The fleet spoke with 4 nodes, iris only, ``iris@1`` rolled out (no change request)."""
    made = iris_site(fleet_spoke)
    complete(made, "1")
    yield made
    made.home.engine.dispose()


def authorise(
    site: Site, version: str, auth: ChangeAuthorization | None, plan: RolloutPlan | None = None
) -> None:
    """The Director assigns ``iris@version`` under ``plan``, signed with ``auth`` (an import)."""
    site.assign("iris", version)
    site.plan("iris", version, plan or quick_plan())
    with session_scope(site.home.engine) as session:
        record = session.get(RolloutPlanRecord, ("iris", version))
        assert record is not None
        record.change = auth.to_dict() if auth is not None else {}
        session.add(record)


def audits(site: Site, action: str) -> list[AuditRecord]:
    return [e for e in AuditLog(site.home.engine, "spoke").entries() if e.action == action]


def of_rollout(site: Site, name: str, rollout_id: str) -> list[dict[str, Any]]:
    return [e for e in events_of(site.home, name) if e["data"]["rollout_id"] == rollout_id]


def everyone_holds(site: Site, *held: tuple[str, str]) -> bool:
    return all(sorted(h) == sorted(held) for h in site.holding().values())


def paused_by_window(site: Site, number: str, minutes: int = 3) -> str:
    """``iris@2`` starts in a window that closes ``minutes`` later and gets paused; its id."""
    now = site.clock.now()
    authorise(site, "2", approved_change(number, now, now + minutes * MINUTE))
    site.step()
    site.step()
    site.run(minutes)
    rollout = site.rollout(version="2")
    assert rollout.state == "paused", site.kinds(rollout.id)
    assert rollout.paused_from == "ring"
    return rollout.id


def test_a_rollout_waits_for_its_window_and_starts_inside_it(site: Site) -> None:
    now = site.clock.now()
    opens = now + 10 * MINUTE
    authorise(site, "2", approved_change("CHG0030001", opens, opens + dt.timedelta(hours=2)))
    site.step()
    held = site.step()
    rollout = site.rollout(version="2")
    assert rollout.state == "pending"
    assert [(e["kind"], e["details"]["reason"]) for e in held] == [
        ("waiting-change-window", f"change window CHG0030001 opens at {utc_iso(opens)}")
    ]
    assert site.run(5) == []  # said once; nothing starts before the window
    assert site.rollout(version="2").state == "pending"
    assert everyone_holds(site, ("1", "stable"))
    assert of_rollout(site, "rollout.started", rollout.id) == []

    site.clock.when = opens  # the window's first second
    site.obey()  # the nodes kept reporting meanwhile (a silent node is never the canary)
    kinds = [e["kind"] for e in site.step()]
    assert kinds[0] == "ring-started"
    assert site.rollout(version="2").state == "ring"
    [started] = of_rollout(site, "rollout.started", rollout.id)
    [ring] = of_rollout(site, "rollout.ring-started", rollout.id)
    for event in (started, ring):
        assert_cloudevent(event, SOURCE)
        assert event["subject"] == "iris@2" and event["time"] == utc_iso(opens)
        assert event["data"]["change_request"] == "CHG0030001"
        assert (event["data"]["ring"], event["data"]["ring_index"]) == ("canary", 0)
    [entry] = audits(site, "spoke.rollout.ring-started")[-1:]
    assert (entry.change_request, entry.rollout_id, entry.principal) == (
        "CHG0030001",
        rollout.id,
        ENGINE_PRINCIPAL,
    )
    site.obey()
    assert sum(("2", "candidate") in h for h in site.holding().values()) == 1


def test_rings_advance_only_inside_the_window_and_pause_when_it_closes(site: Site) -> None:
    start = site.clock.now()
    end = start + 5 * MINUTE
    authorise(site, "2", approved_change("CHG0030002", start, end))
    site.step()
    site.step()
    site.run(8)
    rollout = site.rollout(version="2")
    promoted = [e for e in site.events(rollout.id) if e.kind == "promoted"]
    assert promoted, site.kinds(rollout.id)
    assert all(start <= parse_utc(e.time) < end for e in promoted)
    reason = f"change window CHG0030002 closed at {utc_iso(end)}"
    assert (rollout.state, rollout.paused_from, rollout.reason) == ("paused", "ring", reason)
    assert rollout.extra["pause_reason"] == reason
    kinds = site.kinds(rollout.id)
    assert "complete" not in kinds
    paused_at = kinds.index("paused")
    assert "analysis-passed" not in kinds[paused_at:]  # healthy figures count for nothing
    ring = site.rollout(version="2").ring_index
    holding = site.holding()
    assert site.run(5) == []  # still paused: no promotion, no resume, nodes keep what they have
    assert (site.rollout(version="2").state, site.rollout(version="2").ring_index) == (
        "paused",
        ring,
    )
    assert site.holding() == holding
    assert any(("2", "candidate") in h for h in holding.values())

    [entry] = audits(site, "spoke.rollout.paused")
    assert (entry.change_request, entry.principal, entry.reason) == (
        "CHG0030002",
        ENGINE_PRINCIPAL,
        reason,
    )
    [event] = of_rollout(site, "rollout.paused", rollout.id)
    assert event["data"]["reason"] == reason and event["data"]["change_request"] == "CHG0030002"
    assert len(of_rollout(site, "rollout.promoted", rollout.id)) == len(promoted)

    with pytest.raises(UsageError, match="cannot resume: change window CHG0030002 closed"):
        resume(site.home, rollout.id, "site-admin", site.clock.now())
    [refused] = audits(site, "spoke.rollout.resume")
    assert refused.outcome == "refused" and refused.rollout_id == rollout.id

    for event in outbox(site.home):
        assert_cloudevent(event, SOURCE)


def test_a_new_authorisation_resumes_a_paused_rollout_inside_its_window(site: Site) -> None:
    rollout_id = paused_by_window(site, "CHG0030003")
    opens = site.clock.now() + 10 * MINUTE
    authorise(site, "2", approved_change("CHG0030004", opens, opens + dt.timedelta(hours=1)))
    events = site.step()
    assert [(e["kind"], e["details"]["change_request"]) for e in events] == [
        ("change-updated", "CHG0030004")
    ]
    assert site.rollout(version="2").state == "paused"  # not before the new window opens
    site.clock.when = opens
    assert [e["kind"] for e in site.step()] == ["resumed"]
    site.run(12)
    assert [r.id for r in site.rollouts() if r.version == "2"] == [rollout_id]  # same rollout
    assert site.rollout(version="2").state == "complete"
    [resumed] = of_rollout(site, "rollout.resumed", rollout_id)
    [done] = of_rollout(site, "rollout.complete", rollout_id)
    assert resumed["data"]["change_request"] == done["data"]["change_request"] == "CHG0030004"
    assert resumed["data"]["by"] == ENGINE_PRINCIPAL


def test_a_breach_outside_the_window_rolls_back_at_once_under_an_emergency_change(
    site: Site,
) -> None:
    rollout_id = paused_by_window(site, "CHG0030005")
    closed = site.clock.now()
    bad = {"2": Behaviour(error_rate=0.5)}
    events = site.run(2, bad)  # failure_limit 1: the second failed analysis rolls back
    assert [e["kind"] for e in events] == ["analysis-failed", "analysis-failed", "rolled-back"]
    rollout = site.rollout(version="2")
    assert rollout.state == "rolled-back" and site.clock.now() > closed
    assert everyone_holds(site, ("1", "stable"))

    number = f"EMERGENCY-{SITE_ID}-{rollout_id}-1"
    [emergency] = audits(site, "spoke.change.emergency")
    details = json.loads(emergency.details)
    assert (emergency.object, emergency.change_request, emergency.rollout_id) == (
        number,
        number,
        rollout_id,
    )
    assert details["original_change_request"] == "CHG0030005"
    assert (details["type"], details["state"], details["cause"]) == (
        "emergency",
        "review",
        "automatic-rollback",
    )
    assert details["created_after_the_fact"] is True
    [rollback] = audits(site, "spoke.rollout.rolled-back")
    assert rollback.change_request == number and rollback.seq == emergency.seq + 1
    assert json.loads(rollback.details)["original_change_request"] == "CHG0030005"
    [event] = of_rollout(site, "rollout.rolled-back", rollout_id)
    assert event["data"]["change_request"] == number
    assert event["data"]["canary"]["error_rate"] == "0.500000" and event["data"]["breaches"]
    assert (event["data"]["to"], event["data"]["outcome"]) == ("1", "failed")
    [created] = events_of(site.home, "change.created")
    assert (created["subject"], created["data"]["original_change_request"]) == (
        number,
        "CHG0030005",
    )

    # no flapping: the same plan under the same change never starts again …
    authorise(site, "2", approved_change("CHG0030005", site.clock.now(), closed + 60 * MINUTE))
    assert site.step() == [] and len([r for r in site.rollouts() if r.version == "2"]) == 1
    # … a new change request for it does
    authorise(site, "2", approved_change("CHG0030006", site.clock.now(), closed + 60 * MINUTE))
    site.step()
    again = site.rollout(version="2")
    assert again.id != rollout_id and again.extra["change"]["number"] == "CHG0030006"


def test_a_revocation_outside_any_window_acts_at_once_under_an_emergency_change(
    site: Site,
) -> None:
    rollout_id = paused_by_window(site, "CHG0030007")
    site.revoke("iris", "2", "leaks training data")
    events = site.step()
    assert [(e["kind"], e["details"]["reason"]) for e in events] == [
        ("revoked", "leaks training data")
    ]
    assert site.rollout(version="2").state == "revoked"
    assert everyone_holds(site, ("1", "stable"))
    number = f"EMERGENCY-{SITE_ID}-{rollout_id}-1"
    [emergency] = audits(site, "spoke.change.emergency")
    details = json.loads(emergency.details)
    assert (emergency.object, details["cause"], details["original_change_request"]) == (
        number,
        "revocation",
        "CHG0030007",
    )
    [revoked] = audits(site, "spoke.rollout.revoked")
    assert revoked.change_request == number
    [event] = events_of(site.home, "model.version-revoked-at-site")
    assert_cloudevent(event, SOURCE)
    assert event["subject"] == "iris@2"
    assert (event["data"]["change_request"], event["data"]["reason"]) == (
        number,
        "leaks training data",
    )


def test_a_site_that_requires_change_requests_refuses_unauthorised_rollouts(site: Site) -> None:
    config = site.home.path / "airlock.toml"
    config.write_text(config.read_text() + "\n[change]\nrequired = true\n")
    site.reopen()
    authorise(site, "2", None)
    site.step()
    site.run(4)
    rollout = site.rollout(version="2")
    assert rollout.state == "pending"
    assert site.kinds(rollout.id) == ["created", "change-required"]  # said and audited once
    [entry] = audits(site, "spoke.rollout.change-required")
    assert (entry.outcome, entry.rollout_id) == ("refused", rollout.id)
    assert "requires an approved change request" in json.loads(entry.details)["reason"]
    assert everyone_holds(site, ("1", "stable"))
    assert of_rollout(site, "rollout.started", rollout.id) == []

    now = site.clock.now()
    authorise(site, "2", approved_change("CHG0030008", now, now + dt.timedelta(hours=1)))
    kinds = [e["kind"] for e in site.step()]
    assert kinds == ["change-updated", "ring-started"]
    assert site.rollout(version="2").id == rollout.id


def test_operator_actions_are_events_and_respect_the_window(site: Site) -> None:
    start = site.clock.now()
    end = start + 30 * MINUTE
    authorise(site, "2", approved_change("CHG0030009", start, end), quick_plan(approval="manual"))
    site.step()
    site.step()
    rollout_id = site.rollout(version="2").id
    pause(site.home, rollout_id, "waiting for the on-call", "site-admin", site.clock.now())
    resume(site.home, rollout_id, "site-admin", site.clock.now())
    site.run(3)
    assert site.rollout(version="2").extra["awaiting_promotion"] is True
    site.clock.when = end  # the window closes before the engine's next step
    with pytest.raises(UsageError, match="an open change window: change window CHG0030009"):
        promote(site.home, rollout_id, "site-admin", site.clock.now())
    abort(site.home, rollout_id, "not today", "site-admin", site.clock.now())

    for name, action in (
        ("rollout.paused", "spoke.rollout.pause"),
        ("rollout.resumed", "spoke.rollout.resume"),
        ("rollout.aborted", "spoke.rollout.abort"),
    ):
        [event] = of_rollout(site, name, rollout_id)
        assert_cloudevent(event, SOURCE)
        assert (event["data"]["by"], event["data"]["change_request"]) == (
            "site-admin",
            "CHG0030009",
        )
        assert [(e.outcome, e.change_request) for e in audits(site, action)] == [
            ("success", "CHG0030009")
        ]
    [refused] = audits(site, "spoke.rollout.promote")
    assert refused.outcome == "refused"
    assert everyone_holds(site, ("1", "stable"))


def test_a_rollout_without_authorisation_runs_as_before_and_emits_events(site: Site) -> None:
    [first] = site.rollouts()
    rollout_events = [e for e in outbox(site.home) if e["type"] != EVENT_TYPES["bundle.imported"]]
    expected = [
        "rollout.started",
        "rollout.ring-started",
        "rollout.promoted",
        "rollout.ring-started",
        "rollout.promoted",
        "rollout.ring-started",
        "rollout.complete",
    ]
    assert [e["type"] for e in rollout_events] == [EVENT_TYPES[n] for n in expected]
    for event in rollout_events:
        assert_cloudevent(event, SOURCE)
        assert event["data"]["rollout_id"] == first.id
        assert event["data"]["change_request"] == ""
        assert (event["data"]["model"], event["data"]["version"]) == ("iris", "1")
    assert [e["data"]["ring"] for e in events_of(site.home, "rollout.ring-started")] == [
        "canary",
        "half",
        "all",
    ]


def test_a_running_rollout_holds_for_a_later_window_it_is_given(site: Site) -> None:
    authorise(site, "2", None)  # started without a change request
    site.step()
    site.step()
    site.run(1)
    assert site.rollout(version="2").state == "ring"
    opens = site.clock.now() + 10 * MINUTE
    authorise(site, "2", approved_change("CHG0030010", opens, opens + dt.timedelta(hours=1)))
    assert [e["kind"] for e in site.step()] == ["change-updated", "paused"]
    rollout = site.rollout(version="2")
    assert rollout.reason == f"change window CHG0030010 opens at {utc_iso(opens)}"
    site.run(3)
    assert site.rollout(version="2").state == "paused"
    site.clock.when = opens
    assert [e["kind"] for e in site.step()] == ["resumed"]
    assert site.rollout(version="2").state == "ring"
