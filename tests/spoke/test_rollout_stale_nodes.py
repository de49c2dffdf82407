"""A dead node does not stall a rollout, and a waiting rollout says what it waits for.

The nodes of a finished simulation stay enrolled but never report again. The
engine leaves nodes not heard from within ``[rollout] node_stale_after``
seconds (default 60) out of its rings, so none becomes the canary; and a ring
that waits — for a live canary, for its nodes to report, for its bake time —
records that once in the rollout's history, which ``rollout show`` displays.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from helpers.rolloutenv import (
    Site,
    iris_site_fixture,  # noqa: F401 - the site fixture
    quick_plan,
    ring_of,
)
from helpers.spokeenv import Invoke, table_rows
from sqlmodel import Session

from airlock.bundles.errors import UsageError
from airlock.spoke.rollout import ring_order, show_rollout


def waits(site: Site) -> list[tuple[str, str]]:
    """(what for, ring) of every ``waiting`` entry in the rollout's history."""
    rollout_id = site.rollout().id
    return [
        (e.details["for"], e.details["ring"])
        for e in site.events(rollout_id)
        if e.kind == "waiting"
    ]


def would_be_canary(site: Site) -> str:
    """The first node of the (created, pending) rollout's ring order among every enrolled node."""
    return ring_order(site.rollout().id, site.nodes)[0]


def test_a_node_not_seen_lately_is_never_the_canary(site: Site) -> None:
    site.assign("iris", "1")
    site.plan("iris", "1", quick_plan())
    site.step()  # created
    dead = would_be_canary(site)
    site.clock.advance(dt.timedelta(minutes=10))
    for node in site.nodes:
        if node != dead:
            site.report(node, [])  # the others are alive
    assert [e["kind"] for e in site.step()] == ["ring-started"]
    [canary] = ring_of(site, "1")
    assert canary != dead
    assert site.holding()[dead] == []  # still enrolled, told nothing new

    for _ in range(3):  # the live nodes run it and report; the dead one stays silent
        site.obey(skip=[dead])
        site.clock.advance(dt.timedelta(seconds=60))
        site.measure(60)
        site.step()
    assert site.rollout().ring_index == 1 and dead not in ring_of(site, "1")


def test_a_ring_node_that_goes_silent_leaves_the_ring(site: Site) -> None:
    site.assign("iris", "1")
    site.plan("iris", "1", quick_plan())
    site.step()
    site.step()
    [canary] = ring_of(site, "1")
    site.clock.advance(dt.timedelta(seconds=61))
    for node in site.nodes:
        if node != canary:
            site.report(node, [])
    site.step()
    [replacement] = ring_of(site, "1")
    assert replacement != canary


def test_a_longer_stale_time_keeps_a_quiet_node_in_the_running(site: Site) -> None:
    with (site.home.path / "airlock.toml").open("a") as config:
        config.write("\n[rollout]\nnode_stale_after = 3600\n")
    site.reopen()
    site.assign("iris", "1")
    site.plan("iris", "1", quick_plan())
    site.step()
    quiet = would_be_canary(site)
    site.clock.advance(dt.timedelta(minutes=10))
    site.step()
    assert ring_of(site, "1") == [quiet]


@pytest.mark.parametrize("value", ["0", "-5", '"soon"', "true"])
def test_a_malformed_stale_time_is_a_usage_error(site: Site, value: str) -> None:
    with (site.home.path / "airlock.toml").open("a") as config:
        config.write(f"\n[rollout]\nnode_stale_after = {value}\n")
    site.reopen()
    with pytest.raises(UsageError, match="node_stale_after must be a whole number"):
        site.step()


def test_a_waiting_rollout_says_what_it_waits_for_once_each(site: Site, airlock: Invoke) -> None:
    site.assign("iris", "1")
    site.plan("iris", "1", quick_plan(bake=900))
    site.step()
    # the whole fleet has been silent for ten minutes: no canary can be chosen
    site.clock.advance(dt.timedelta(minutes=10))
    site.step()
    for _ in range(3):
        site.step(30)
    assert waits(site) == [("canary", "canary")]
    assert ring_of(site, "1") == []
    with Session(site.home.engine) as session:
        shown = show_rollout(session, site.rollout().id, site.clock.now(), 60)
    assert shown["waiting_for"]["for"] == "canary"
    assert sorted(shown["stale_nodes"]) == sorted(site.nodes)

    # the nodes come back: a canary is chosen, and the ring waits for it to report
    for node in site.nodes:
        site.report(node, [])
    site.step(1)
    [canary] = ring_of(site, "1")
    for _ in range(3):
        for node in site.nodes:
            site.report(node, [])
        site.step(10)
    assert waits(site) == [("canary", "canary"), ("report", "canary")]
    [report_wait] = [e for e in site.events(site.rollout().id) if e.kind == "waiting"][1:]
    assert list(report_wait.details["nodes"]) == [canary]

    # it runs the candidate: now only the bake time is missing
    site.run(3)
    assert waits(site) == [("canary", "canary"), ("report", "canary"), ("bake", "canary")]
    assert site.rollout().ring_index == 0

    result = airlock("spoke", "rollout", "show", site.rollout().id, "--home", str(site.home.path))
    assert result.exit_code == 0, result.output
    rows = {row[0]: row[1] for row in table_rows(result.output) if len(row) == 2}
    assert rows["waiting for"].startswith("bake: bake time of 900 s")
    history = [row for row in table_rows(result.output) if len(row) == 3 and row[1] == "waiting"]
    assert [row[2].split(",")[0] for row in history] == ["for=canary", "for=report", "for=bake"]
    shown_json = json.loads(
        airlock(
            "spoke", "rollout", "show", site.rollout().id, "--home", str(site.home.path), "--json"
        ).output
    )
    assert shown_json["waiting_for"]["for"] == "bake"
