"""Phased rollouts end to end: hub plan → bundle → spoke service on loopback → real node agents.

The hub signs a quick three-ring plan into the site's Director targets; the
spoke imports the bundles; ``create_app`` serves the node API on a real
uvicorn server with the rollout engine's tick as its periodic task; six
simulated nodes (real agents: signed requests, ngclient over HTTP, A/B slots,
onnxruntime) serve random traffic. iris@1 reaches every node ring by ring;
iris@2, slowed by an injected fault (50 ms an answer), is rolled back at the canary ring on the
p99 ratio; iris@3 is promoted to all; the hub revokes iris@3 and, once the
small revocation bundle is imported, every node is back on iris@1 and no node
serves iris@3.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers.fleetenv import Fleet, site_signer
from helpers.serving import serving
from helpers.spokeenv import SITE_ID, accept_import
from sqlmodel import Session, select

from airlock.bundles.clock import FixedClock, SystemClock
from airlock.bundles.release import HealthCriteria, Ring, RolloutPlan
from airlock.hub.context import HubContext
from airlock.hub.export import assign as assign_version
from airlock.hub.export import export
from airlock.hub.export import unassign as unassign_version
from airlock.hub.revocation import revoke
from airlock.node import FaultSpec
from airlock.spoke.cli import periodic_tasks
from airlock.spoke.nodes import Simulation, SimulationSettings, versions_in_use, wait_until
from airlock.spoke.service import create_app
from airlock.spoke.site import Rollout, RolloutEvent, SpokeHome

NODES = 6
QUICK = RolloutPlan(
    rings=(
        Ring("canary", 1, bake_seconds=1),
        Ring("half", "0.5", bake_seconds=1),
        Ring("all", "1", bake_seconds=1),
    ),
    interval_seconds=2,
    # a ratio of 3: six simulated nodes, the server and the engine share one process and
    # the test machine's CPUs, so a p99 of a few milliseconds moves by 1.5x and more on
    # its own; 50 ms of injected latency stays far above 3x even then. Each node sends
    # one request at a time, so a slow canary sends fewer: 2 s intervals and 10 samples
    health=HealthCriteria(
        min_samples=10, max_p99_latency_ratio="3", failure_limit=1, consecutive_successes=1
    ),
)


@dataclass
class Site:
    hub: HubContext
    hub_clock: FixedClock
    spoke: SpokeHome
    sim: Simulation
    media: Path

    def ship(self, name: str, *assign: str, unassign: tuple[str, ...] = ()) -> None:
        for ref in assign:
            model, version = ref.split("@")
            assign_version(self.hub, SITE_ID, model, version, QUICK)
        for family in unassign:
            unassign_version(self.hub, SITE_ID, family)
        self.hub_clock.advance(dt.timedelta(seconds=30))
        export(self.hub, SITE_ID, self.media / name)
        accept_import(self.spoke, self.media / name, FixedClock(self.hub_clock.now()))

    def rollout(self, version: str) -> Rollout:
        with Session(self.spoke.engine) as session:
            rows = session.exec(
                select(Rollout).where(Rollout.model == "iris", Rollout.version == version)
            ).all()
        assert len(rows) == 1, f"expected one rollout of iris@{version}, got {rows}"
        return rows[0]

    def wait_state(self, version: str, *states: str, timeout: float = 60) -> Rollout:
        def reached() -> bool:
            with Session(self.spoke.engine) as session:
                row = session.exec(
                    select(Rollout).where(Rollout.model == "iris", Rollout.version == version)
                ).first()
            return row is not None and row.state in states

        if not wait_until(reached, timeout):
            rows = [(r.id, r.state, r.ring_index, r.reason) for r in self.rollouts()]
            history = [
                (e.kind, e.details) for r in self.rollouts() for e in events(self.spoke, r.id)
            ]
            pytest.fail(f"iris@{version} never reached {states}: {rows}; last: {history[-4:]}")
        return self.rollout(version)

    def rollouts(self) -> list[Rollout]:
        with Session(self.spoke.engine) as session:
            return list(session.exec(select(Rollout).where(Rollout.model == "iris")))

    def fleet_on(self, version: str, timeout: float = 60) -> bool:
        def every_node() -> bool:
            return versions_in_use(self.sim.fleet_view(), "iris") == {version: NODES}

        return wait_until(every_node, timeout)


@pytest.fixture
def site(fleet: Fleet, tmp_path: Path) -> Iterator[Site]:
    hub_clock = FixedClock(fleet.hub_time)
    hub = fleet.new_hub(tmp_path / "hub", hub_clock)
    spoke = fleet.new_spoke(tmp_path / "spoke")
    media = tmp_path / "media"
    media.mkdir()
    site = Site(hub, hub_clock, spoke, None, media)  # type: ignore[arg-type]
    # the first bundle: iris@1 on the quick plan, nothing else for the fleet
    site.ship("bundle-v1", "iris@1", unassign=("classifier", "detector"))
    signer, clock = site_signer(spoke), SystemClock()
    app = create_app(
        spoke, clock, periodic=periodic_tasks(spoke, signer, clock), period_seconds=0.2
    )
    with serving(app) as url:
        settings = SimulationSettings(
            spoke_url=url,
            nodes=NODES,
            rps=30,
            poll_seconds=0.3,
            report_seconds=0.3,
            faults={"iris@2": FaultSpec(latency_ms=50)},
        )
        site.sim = Simulation(spoke, settings, tmp_path / "nodes", clock)
        site.sim.enroll(signer)
        site.sim.start()
        try:
            yield site
        finally:
            site.sim.stop()
            hub.close()
            spoke.engine.dispose()


def events(spoke: SpokeHome, rollout_id: str) -> list[RolloutEvent]:
    with Session(spoke.engine) as session:
        return list(session.exec(select(RolloutEvent).where(RolloutEvent.rollout_id == rollout_id)))


def test_rings_rollback_promotion_and_revocation_on_a_simulated_fleet(site: Site) -> None:
    # iris@1: the family's first rollout goes ring by ring to every node
    first = site.wait_state("1", "complete")
    kinds = [e.kind for e in events(site.spoke, first.id)]
    assert kinds.count("promoted") == 2 and "complete" in kinds
    assert site.fleet_on("1"), site.sim.fleet_view()

    # iris@2 is 50 ms slower on every request: rolled back at the canary ring on the p99 ratio
    site.ship("bundle-v2", "iris@2")
    second = site.wait_state("2", "rolled-back")
    assert second.ring_index == 0, "the canary ring caught it"
    failed = [e.details for e in events(site.spoke, second.id) if e.kind == "analysis-failed"]
    assert failed and all("p99" in str(d) for d in failed)
    assert site.fleet_on("1"), site.sim.fleet_view()

    # iris@3 is healthy: promoted to every node
    site.ship("bundle-v3", "iris@3")
    site.wait_state("3", "complete")
    assert site.fleet_on("3"), site.sim.fleet_view()

    # the hub revokes iris@3; the small revocation bundle moves every node off it at once
    revoke(site.hub, "iris", "3", "drift found in the field")
    site.hub_clock.advance(dt.timedelta(seconds=30))
    envelope = export(site.hub, SITE_ID, site.media / "revocation")
    assert envelope.kind == "revocation"
    accept_import(site.spoke, site.media / "revocation", FixedClock(site.hub_clock.now()))
    assert site.fleet_on("1", timeout=30), site.sim.fleet_view()
    assert site.rollout("3").state == "revoked"
    assert site.rollout("2").state == "rolled-back", "a rolled-back version is not retried"
