"""The site admin's rollout actions: pause, resume, abort, promote — refusals and audit included —
and the ``airlock spoke rollout`` commands."""

from __future__ import annotations

import datetime as dt
import json
import socket
from collections.abc import Iterator

import pytest
from helpers.rolloutenv import Site, complete, iris_site, quick_plan
from helpers.spokeenv import Invoke, assert_error_output, table_rows
from sqlmodel import Session

from airlock.bundles.clock import parse_utc
from airlock.bundles.errors import NotFoundError, UsageError
from airlock.spoke.rollout import abort, list_rollouts, pause, promote, resume, show_rollout
from airlock.spoke.site import SpokeHome

ADMIN = "site-admin"


@pytest.fixture
def site(fleet_spoke: SpokeHome) -> Iterator[Site]:
    """4 nodes, iris@1 stable everywhere, iris@2 in its canary ring (quick plan)."""
    made = iris_site(fleet_spoke)
    complete(made, "1")
    made.assign("iris", "2")
    made.plan("iris", "2", quick_plan(approval="manual", bake=180))
    made.step()
    made.step()
    yield made
    made.home.engine.dispose()


def audited(site: Site, verb: str) -> list[tuple[str, str, str]]:
    """(outcome, principal, object) of every ``spoke.rollout.<verb>`` audit entry."""
    return [
        (e.outcome, e.principal, e.object)
        for e in site.home.audit.entries()
        if e.action == f"spoke.rollout.{verb}"
    ]


def candidates(site: Site) -> list[str]:
    return [n for n, held in site.holding().items() if ("2", "candidate") in held]


def test_pause_freezes_the_rollout_and_resume_does_not_count_the_pause(site: Site) -> None:
    rollout_id = site.rollout().id
    site.run(1)
    ring_nodes = candidates(site)
    started = parse_utc(site.rollout().ring_started_at)
    result = pause(site.home, rollout_id, "night shift", ADMIN, site.clock.now())
    assert result["state"] == "paused" and result["paused_from"] == "ring"
    assert audited(site, "pause") == [("success", ADMIN, rollout_id)]

    events = site.run(10)  # 10 minutes: the engine leaves a paused rollout alone
    assert events == []
    assert candidates(site) == ring_nodes  # nodes keep what they have
    assert site.rollout().consecutive_successes == 1

    result = resume(site.home, rollout_id, ADMIN, site.clock.now())
    assert result["state"] == "ring"
    assert parse_utc(site.rollout().ring_started_at) == started + dt.timedelta(minutes=10)
    assert audited(site, "resume") == [("success", ADMIN, rollout_id)]
    kinds = site.kinds(rollout_id)
    assert kinds[-2:] == ["paused", "resumed"]
    site.run(2)  # 2 more successes; baked 60 + 120 s of 180 s → awaiting promotion
    assert site.rollout().extra["awaiting_promotion"]


def test_refused_actions_change_nothing_and_are_audited(site: Site) -> None:
    rollout_id = site.rollout().id
    before = site.rollout().model_dump()
    with pytest.raises(UsageError, match="not paused"):
        resume(site.home, rollout_id, ADMIN, site.clock.now())
    with pytest.raises(UsageError) as raised:
        promote(site.home, rollout_id, ADMIN, site.clock.now())
    message = raised.value.message
    assert "bake time: 0 s of 180 s" in message
    assert "consecutive successful analyses: 0 of 2" in message
    with pytest.raises(NotFoundError):
        pause(site.home, "iris-9-nope", "x", ADMIN, site.clock.now())
    assert site.rollout().model_dump() == before
    assert audited(site, "resume") == [("refused", ADMIN, rollout_id)]
    assert audited(site, "promote") == [("refused", ADMIN, rollout_id)]
    assert audited(site, "pause") == [("refused", ADMIN, "iris-9-nope")]
    pause(site.home, rollout_id, "x", ADMIN, site.clock.now())
    with pytest.raises(UsageError, match="already paused"):
        pause(site.home, rollout_id, "x", ADMIN, site.clock.now())
    with pytest.raises(UsageError, match="is paused, not in a ring") as raised:
        promote(site.home, rollout_id, ADMIN, site.clock.now())
    assert "resume" in raised.value.hint


def test_promote_a_healthy_manual_ring(site: Site) -> None:
    rollout_id = site.rollout().id
    events = site.run(3)
    assert [e["kind"] for e in events][-1] == "awaiting-promotion"
    assert site.run(3)[-1]["kind"] == "analysis-passed"  # still waiting, said once
    assert site.rollout().ring_index == 0
    result = promote(site.home, rollout_id, "alice", site.clock.now())
    assert result["ring_index"] == 1 and result["ring"] == "half"
    assert len(candidates(site)) == 2
    assert audited(site, "promote") == [("success", "alice", rollout_id)]
    assert site.kinds(rollout_id)[-1] == "promoted"


def test_abort_sends_every_node_back_and_finished_rollouts_refuse(site: Site) -> None:
    rollout_id = site.rollout().id
    assert candidates(site)
    result = abort(site.home, rollout_id, "wrong model", ADMIN, site.clock.now())
    assert result["state"] == "aborted" and "wrong model" in result["reason"]
    assert all(held == [("1", "stable")] for held in site.holding().values())
    assert audited(site, "abort") == [("success", ADMIN, rollout_id)]
    for action in (
        lambda: pause(site.home, rollout_id, "x", ADMIN, site.clock.now()),
        lambda: resume(site.home, rollout_id, ADMIN, site.clock.now()),
        lambda: abort(site.home, rollout_id, "x", ADMIN, site.clock.now()),
        lambda: promote(site.home, rollout_id, ADMIN, site.clock.now()),
    ):
        with pytest.raises(UsageError, match="cannot be changed any more"):
            action()
    assert site.run(3) == []  # not restarted: same version, same plan
    assert site.rollout().state == "aborted"


def test_list_and_show(site: Site) -> None:
    site.run(2)
    with Session(site.home.engine) as session:
        rows = list_rollouts(session)
        info = show_rollout(session, site.rollout().id)
    assert [(r["version"], r["state"]) for r in rows] == [("2", "ring"), ("1", "complete")]
    assert [r["node_count"] for r in info["ring_list"]] == [1, 2, 4]
    assert [r["current"] for r in info["ring_list"]] == [True, False, False]
    assert info["consecutive_successes"] == 2 and info["stable_version"] == "1"
    assert info["last_analysis"]["outcome"] == "passed"
    assert [e["kind"] for e in info["events"]][:2] == ["created", "ring-started"]


# --- the commands -------------------------------------------------------------------------------


def test_cli_list_show_and_json(site: Site, airlock: Invoke) -> None:
    home = str(site.home.path)
    rollout_id = site.rollout().id
    site.run(1)
    result = airlock("spoke", "rollout", "list", "--home", home)
    assert result.exit_code == 0, result.output
    rows = table_rows(result.output)
    assert rows[0][:5] == [rollout_id, "iris", "2", "1", "ring"]
    listed = json.loads(airlock("spoke", "rollout", "list", "--home", home, "--json").output)
    assert listed[0]["id"] == rollout_id
    result = airlock("spoke", "rollout", "show", rollout_id, "--home", home)
    assert result.exit_code == 0, result.output
    assert "last analysis" in result.output and "analysis-passed" in result.output
    shown = json.loads(
        airlock("spoke", "rollout", "show", rollout_id, "--home", home, "--json").output
    )
    assert shown["ring_list"][0]["node_count"] == 1
    result = airlock("spoke", "rollout", "show", "nope", "--home", home)
    assert result.exit_code == 3
    assert_error_output(result.stderr, "no rollout 'nope'")


def test_cli_actions_are_audited_with_the_operator(site: Site, airlock: Invoke) -> None:
    home = str(site.home.path)
    rollout_id = site.rollout().id
    result = airlock(
        "spoke",
        "rollout",
        "pause",
        rollout_id,
        "--reason",
        "audit",
        "--operator",
        "alice",
        "--home",
        home,
    )
    assert result.exit_code == 0, result.output
    assert "paused" in result.output
    who = f"alice ({ADMIN}@{socket.gethostname()})"
    assert audited(site, "pause") == [("success", who, rollout_id)]
    result = airlock("spoke", "rollout", "promote", rollout_id, "--home", home)
    assert result.exit_code == 3
    assert_error_output(result.stderr, "is paused, not in a ring")
    assert audited(site, "promote") == [("refused", ADMIN, rollout_id)]
    result = airlock("spoke", "rollout", "resume", rollout_id, "--home", home, "--json")
    assert result.exit_code == 0 and json.loads(result.output)["state"] == "ring"
    result = airlock("spoke", "rollout", "abort", rollout_id, "--reason", "enough", "--home", home)
    assert result.exit_code == 0, result.output
    assert site.rollout().state == "aborted"
    assert audited(site, "abort") == [("success", ADMIN, rollout_id)]
