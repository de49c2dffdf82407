"""A site for rollout-engine tests: enrolled nodes that obey, report and measure.

The nodes are the outside world, so they are simulated at the database edge
exactly as the spoke's service would record them: enrolled keys
(:class:`EnrolledNode`), signed version reports (:class:`NodeReport`, a real
:class:`SignedDocument` signed with the node's own Ed25519 key) and metric
windows (:class:`MetricWindow`, latency as a real :class:`LatencySketch`).
A node "obeys" by reporting what its ``NodeDesired`` row tells it to hold.
Time is a :class:`FixedClock`; each engine step runs in its own transaction.

:func:`iris_site` is the usual start (four nodes, only iris assigned); test
modules import :func:`iris_site_fixture` to get it as their ``site`` fixture.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from securesystemslib.signer import CryptoSigner
from sqlmodel import Session, col, delete, select

from airlock.bundles.canonical import canonical_bytes
from airlock.bundles.clock import FixedClock, utc_iso
from airlock.bundles.db import session_scope
from airlock.bundles.keys import generate_signer
from airlock.bundles.metrics import LatencySketch
from airlock.bundles.protocol import InstalledModel, Refusal, SignedDocument, VersionReport
from airlock.bundles.release import HealthCriteria, Ring, RolloutPlan
from airlock.spoke.rollout import event_dict, step
from airlock.spoke.site import (
    DirectorAssignment,
    EnrolledNode,
    FleetModel,
    MetricWindow,
    NodeDesired,
    NodeReport,
    RevokedVersion,
    Rollout,
    RolloutEvent,
    RolloutPlanRecord,
    SpokeHome,
)
from helpers.spokeenv import site_secrets

T0 = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)
"""When the rollout tests start (after every fleet bundle was imported)."""


def quick_plan(
    *,
    approval: str = "auto",
    bake: int = 120,
    interval: int = 60,
    successes: int = 2,
    failure_limit: int = 1,
    min_samples: int = 50,
    traffic: str = "all",
) -> RolloutPlan:
    """Three rings (1 node, half, all) with short bake times: tests run them in a few steps."""
    split = 50 if traffic == "split" else None
    return RolloutPlan(
        rings=(
            Ring("canary", 1, bake, traffic, split, approval),
            Ring("half", "0.5", bake, traffic, split, approval),
            Ring("all", "1", bake, traffic, split, approval),
        ),
        interval_seconds=interval,
        health=HealthCriteria(
            min_samples=min_samples, failure_limit=failure_limit, consecutive_successes=successes
        ),
    )


@dataclass
class Behaviour:
    """How a model version behaves on every node: error rate and latency (ms)."""

    error_rate: float = 0.0
    latency_ms: float = 10.0


@dataclass
class Site:
    """A spoke home with nodes; see the module docstring."""

    home: SpokeHome
    clock: FixedClock = field(default_factory=lambda: FixedClock(T0))
    nodes: dict[str, CryptoSigner] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    requests: int = 60
    """Requests each node answers per model version and window."""

    # --- the outside world -----------------------------------------------------------------

    def only(self, *models: str) -> None:
        """Keeps only ``models`` in the Director's assignments (fewer rollouts to watch)."""
        with session_scope(self.home.engine) as session:
            session.exec(
                delete(DirectorAssignment).where(~col(DirectorAssignment.model).in_(models))
            )  # type: ignore[call-overload]

    def assign(self, model: str, version: str) -> None:
        """The Director (a newer import) now assigns ``model@version``."""
        with session_scope(self.home.engine) as session:
            rows = list(
                session.exec(select(DirectorAssignment).where(DirectorAssignment.model == model))
            )
            template = rows[0]
            for row in rows:
                session.delete(row)
            session.flush()
            session.add(
                DirectorAssignment(
                    path=f"{model}/{version}/{template.filename}",
                    model=model,
                    version=version,
                    filename=template.filename,
                    sha256=template.sha256,
                    length=template.length,
                )
            )

    def plan(
        self,
        model: str,
        version: str,
        plan: RolloutPlan | dict[str, Any] | None = None,
        depends: Sequence[Mapping[str, str]] = (),
    ) -> str:
        """Records the signed plan an import would record for ``model@version``; returns its sha."""
        data = plan.to_dict() if isinstance(plan, RolloutPlan) else dict(plan or {})
        digest = hashlib.sha256(canonical_bytes(data)).hexdigest()
        with session_scope(self.home.engine) as session:
            record = session.get(RolloutPlanRecord, (model, version)) or RolloutPlanRecord(
                model=model, version=version
            )
            record.plan, record.plan_sha256 = data, digest
            record.depends = [dict(d) for d in depends]
            record.bundle_id = f"bundle-{digest[:6]}"
            record.recorded_at = utc_iso(self.clock.now())
            session.add(record)
        return digest

    def revoke(self, model: str, version: str, reason: str = "bad model") -> None:
        """An import of a revocation bundle."""
        with session_scope(self.home.engine) as session:
            session.add(
                RevokedVersion(
                    model=model,
                    version=version,
                    reason=reason,
                    revoked_at=utc_iso(self.clock.now()),
                )
            )

    def enrol(self, count: int) -> list[str]:
        """Enrols ``count`` more nodes with fresh Ed25519 keys."""
        added = []
        with session_scope(self.home.engine) as session:
            for _ in range(count):
                node_id = f"node-{len(self.nodes) + 1:02d}"
                signer = generate_signer()
                self.nodes[node_id] = signer
                session.add(
                    EnrolledNode(
                        node_id=node_id,
                        keyid=signer.public_key.keyid,
                        public_key=signer.public_key.to_dict(),
                        enrolled_at=utc_iso(self.clock.now()),
                        enrolled_by="site-admin",
                    )
                )
                added.append(node_id)
        return added

    def report(
        self,
        node_id: str,
        installed: Sequence[InstalledModel],
        refusals: Sequence[Refusal] = (),
        session: Session | None = None,
    ) -> None:
        """``node_id`` sends a signed version report."""
        if session is None:
            with session_scope(self.home.engine) as own:
                return self.report(node_id, installed, refusals, own)
        counter = self.counters.get(node_id, 0) + 1
        self.counters[node_id] = counter
        now = utc_iso(self.clock.now())
        report = VersionReport(node_id, counter, now, tuple(installed), now, tuple(refusals))
        document = SignedDocument.sign(self.nodes[node_id], report.to_dict())
        row = session.get(NodeReport, node_id) or NodeReport(
            node_id=node_id, counter=counter, received_at=now
        )
        row.counter, row.received_at, row.report = counter, now, document.to_dict()
        session.add(row)
        return None

    def obey(self, skip: Sequence[str] = ()) -> None:
        """Every node (but ``skip``) reports running exactly what its NodeDesired says."""
        with session_scope(self.home.engine) as session:
            for node_id in self.nodes:
                if node_id not in skip:
                    self.report(node_id, self._running(node_id, session), session=session)

    def _running(self, node_id: str, session: Session) -> list[InstalledModel]:
        """What a node runs once it obeyed its NodeDesired row."""
        installed = []
        by_model: dict[str, list[dict[str, Any]]] = {}
        for entry in self.desired(node_id, session):
            by_model.setdefault(entry["model"], []).append(entry)
        for model, entries in sorted(by_model.items()):
            stable = next((e["version"] for e in entries if e["role"] == "stable"), None)
            cand = next((e for e in entries if e["role"] == "candidate"), None)
            if cand is not None and cand["traffic"] == "all":
                installed.append(InstalledModel(model, cand["version"], "B", stable))
            elif cand is not None:
                installed.append(
                    InstalledModel(model, stable, "A", None, cand["version"], cand["traffic"])
                )
            else:
                installed.append(InstalledModel(model, stable, "A"))
        return installed

    def measure(
        self,
        seconds: int,
        behaviour: Mapping[str, Behaviour] | None = None,
        requests: int | None = None,
    ) -> None:
        """Every node sends a metrics window ending now, for each version answering there."""
        behaviour = behaviour or {}
        end = self.clock.now()
        start = end - dt.timedelta(seconds=seconds)
        count = self.requests if requests is None else requests
        with session_scope(self.home.engine) as session:
            for node_id in self.nodes:
                entries = self.desired(node_id, session)
                for entry in entries:
                    cand_all = any(
                        e["role"] == "candidate"
                        and e["traffic"] == "all"
                        and e["model"] == entry["model"]
                        for e in entries
                    )
                    if entry["role"] == "stable" and cand_all:
                        continue  # on standby
                    act = behaviour.get(entry["version"], Behaviour())
                    session.add(
                        MetricWindow(
                            node_id=node_id,
                            model=entry["model"],
                            version=entry["version"],
                            role=entry["role"],
                            window_start=utc_iso(start),
                            window_end=utc_iso(end),
                            received_at=utc_iso(end),
                            requests=count,
                            errors=round(count * act.error_rate),
                            latency=LatencySketch.of([act.latency_ms] * count).to_dict(),
                        )
                    )

    # --- the spoke -------------------------------------------------------------------------

    def step(self, advance: int = 0) -> list[dict[str, Any]]:
        """Moves the clock by ``advance`` seconds and runs one engine step; returns its events."""
        self.clock.advance(dt.timedelta(seconds=advance))
        with session_scope(self.home.engine) as session:
            return [event_dict(e) for e in step(self.home, session, self.clock.now())]

    def run(
        self, intervals: int, behaviour: Mapping[str, Behaviour] | None = None, seconds: int = 60
    ) -> list[dict[str, Any]]:
        """``intervals`` times: nodes obey, time passes, nodes measure, the engine steps."""
        events: list[dict[str, Any]] = []
        for _ in range(intervals):
            self.obey()
            self.clock.advance(dt.timedelta(seconds=seconds))
            self.measure(seconds, behaviour)
            events += self.step()
        return events

    def reopen(self) -> None:
        """A restarted spoke: a fresh SpokeHome on the same directory."""
        self.home.engine.dispose()
        self.home = SpokeHome(self.home.path, site_secrets)

    # --- reading the state -----------------------------------------------------------------

    def rollout(self, model: str = "iris", version: str | None = None) -> Rollout:
        """The newest rollout of ``model`` (of ``version``, if given)."""
        with Session(self.home.engine) as session:
            query = select(Rollout).where(Rollout.model == model)
            if version is not None:
                query = query.where(Rollout.version == version)
            rows = list(session.exec(query.order_by(col(Rollout.created_at), col(Rollout.id))))
        assert rows, f"no rollout of {model}"
        return rows[-1]

    def rollouts(self, model: str = "iris") -> list[Rollout]:
        """Every rollout of ``model``, oldest first."""
        with Session(self.home.engine) as session:
            query = select(Rollout).where(Rollout.model == model)
            return list(session.exec(query.order_by(col(Rollout.created_at), col(Rollout.id))))

    def events(self, rollout_id: str) -> list[RolloutEvent]:
        """A rollout's history."""
        with Session(self.home.engine) as session:
            query = select(RolloutEvent).where(RolloutEvent.rollout_id == rollout_id)
            return list(session.exec(query.order_by(col(RolloutEvent.id))))

    def kinds(self, rollout_id: str) -> list[str]:
        """The kinds of a rollout's events, in order."""
        return [e.kind for e in self.events(rollout_id)]

    def desired(self, node_id: str, session: Session | None = None) -> list[dict[str, Any]]:
        """What the engine wants ``node_id`` to hold."""
        if session is not None:
            row = session.get(NodeDesired, node_id)
            return list(row.models) if row is not None else []
        with Session(self.home.engine) as own:
            return self.desired(node_id, own)

    def holding(self, model: str = "iris") -> dict[str, list[tuple[str, str]]]:
        """node → [(version, role)] of ``model`` in its NodeDesired."""
        return {
            node: [(e["version"], e["role"]) for e in self.desired(node) if e["model"] == model]
            for node in self.nodes
        }

    def stable(self, model: str = "iris") -> str | None:
        """The family's stable version."""
        with Session(self.home.engine) as session:
            row = session.get(FleetModel, model)
            return row.stable_version if row is not None else None


def complete(site: Site, version: str, model: str = "iris") -> str:
    """Rolls ``model@version`` out to every node with :func:`quick_plan`; returns the rollout id."""
    site.assign(model, version)
    site.plan(model, version, quick_plan())
    site.step()
    site.step()
    site.run(6)
    rollout = site.rollout(model, version)
    assert rollout.state == "complete", site.kinds(rollout.id)
    return rollout.id


def iris_site(home: SpokeHome, nodes: int = 4) -> Site:
    """``home`` as a :class:`Site` with ``nodes`` enrolled nodes; only iris is assigned."""
    made = Site(home)
    made.only("iris")
    made.enrol(nodes)
    return made


@pytest.fixture(name="site")
def iris_site_fixture(fleet_spoke: SpokeHome) -> Iterator[Site]:
    """The fleet spoke with 4 enrolled nodes; only iris is assigned."""
    made = iris_site(fleet_spoke)
    yield made
    made.home.engine.dispose()


def ring_of(site: Site, version: str) -> list[str]:
    """The nodes told to run ``version`` as the candidate."""
    return sorted(n for n, held in site.holding().items() if (version, "candidate") in held)
