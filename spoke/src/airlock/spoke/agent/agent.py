"""The node agent's reconcile loop: verify, install, health-check, serve, report.

Each :meth:`Agent.poll_once`:

1. ``verifier.refresh()`` — the node's assignment, verified end to end
   (:class:`~airlock.spoke.agent.verify.NodeVerifier`). On failure the node
   keeps serving what it has and reports the refusal (``*@*``) with the reason.
2. Unload at once every version the verifier no longer returns (revoked by the
   hub, or unassigned by the site director); stop serving unassigned families.
3. Reconcile each family (families waiting on a dependency are retried in the
   same poll once the others moved): the stable version, then the candidate —
   dependencies, download into the inactive slot, compatibility, health check,
   then commit (switch the active slot) or fall back (keep it). A version that
   failed its health check is not retried; a refused one is not downloaded
   again while this process runs.
4. Send a signed :class:`~airlock.spoke.protocol.VersionReport` (its counter
   persisted before use) and the metrics window.

The verifier and the report sender are injected (:class:`Verifier`,
:class:`ReportSender`): a real ``NodeVerifier`` and ``NodeClient`` in
production. Installs, commits, fallbacks and refusals go to the home's
``agent-log.jsonl``.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from airlock.bundles.clock import Clock, utc_iso
from airlock.bundles.errors import AirlockError, GateError, MediaError, SecretError
from airlock.bundles.release import ReleaseInfo
from airlock.spoke.agent.health import (
    COMPATIBILITY_CHECKS,
    check_node_compatibility,
    health_check,
    open_model,
    unmet_dependency,
)
from airlock.spoke.agent.home import AgentHome, AgentState
from airlock.spoke.agent.inference import LoadedModel, Predictor, Route
from airlock.spoke.agent.recorder import Recorder
from airlock.spoke.agent.slots import (
    FAILED,
    INSTALLING,
    READY,
    Download,
    FamilySlots,
    SlotRecord,
)
from airlock.spoke.agent.verify import VerifiedAssignment, VerifiedFile
from airlock.spoke.protocol import (
    HEALTH_CHECK,
    NODES_PATH,
    InstalledModel,
    MetricsReport,
    NodeModel,
    Refusal,
    SignedDocument,
    VersionReport,
)

METADATA_REFUSAL = "*@*"
MAX_PENDING_WINDOWS = 60


class Verifier(Protocol):
    """What the agent needs of :class:`~airlock.spoke.agent.verify.NodeVerifier`."""

    @property
    def last_verified(self) -> Any:
        """When the assignment last verified (a datetime, or None)."""
        ...

    def refresh(self) -> Sequence[VerifiedAssignment]:
        """The verified assignment; raises AirlockError when it does not verify."""
        ...

    def download(self, file: VerifiedFile, dest: Path) -> Path:
        """Fetches and verifies one file to ``dest``."""
        ...


class ReportSender(Protocol):
    """What the agent needs of :class:`~airlock.spoke.agent.client.NodeClient`."""

    def post_document(self, path: str, doc: SignedDocument) -> dict[str, Any]:
        """POSTs a signed document to the spoke; raises AirlockError on failure."""
        ...


def reports_path(node_id: str) -> str:
    """Where a node posts its version reports."""
    return f"{NODES_PATH}/{node_id}/reports"


def metrics_path(node_id: str) -> str:
    """Where a node posts its metrics windows."""
    return f"{NODES_PATH}/{node_id}/metrics"


@dataclass
class PollOutcome:
    """What one poll did."""

    verified: bool
    error: AirlockError | None = None
    """Why the assignment did not verify (the node kept what it had)."""
    changes: list[str] = field(default_factory=list)
    refusals: tuple[Refusal, ...] = ()
    report_sent: bool = False
    metrics_sent: int = 0
    send_error: AirlockError | None = None

    @property
    def ok(self) -> bool:
        """Verified, and the reports reached the spoke."""
        return self.verified and self.send_error is None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "ok": self.ok,
            "verified": self.verified,
            "error": self.error.to_dict() if self.error else None,
            "changes": self.changes,
            "refusals": [r.to_dict() for r in self.refusals],
            "report_sent": self.report_sent,
            "metrics_sent": self.metrics_sent,
            "send_error": self.send_error.to_dict() if self.send_error else None,
        }


class Agent:
    """One node: its slots, its served models, its reports.

    Args:
        home: The agent's home (key, state, slots).
        verifier: Verifies the assignment and downloads files.
        sender: Posts signed documents to the spoke.
        clock: Report times and metrics windows (defaults to the home's clock).
        predictor: Serves inference (a new one recording into a new Recorder by default).
    """

    def __init__(
        self,
        home: AgentHome,
        verifier: Verifier,
        sender: ReportSender,
        clock: Clock | None = None,
        predictor: Predictor | None = None,
    ) -> None:
        self.home = home
        self.verifier = verifier
        self.sender = sender
        self.clock = clock or home.clock
        self.predictor = predictor or Predictor(Recorder(home.node_id, self.clock.now()))
        self.recorder = self.predictor.recorder
        self._lock = threading.RLock()
        self._poll_lock = threading.Lock()
        self._report_lock = threading.Lock()
        self.state = home.load_state()
        self._pending: list[MetricsReport] = []
        self.reconciler = Reconciler(home, self.state, self.predictor, self._lock, self.clock)
        self.reconciler.restore()

    @property
    def node_id(self) -> str:
        """This node's id."""
        return self.home.node_id

    def poll_once(self) -> PollOutcome:
        """Verifies, reconciles every family, then reports (see the module docstring)."""
        with self._poll_lock:
            try:
                assignments = list(self.verifier.refresh())
            except AirlockError as exc:
                outcome = PollOutcome(verified=False, error=exc)
                self._refuse_metadata(exc)
            else:
                outcome = PollOutcome(verified=True)
                with self._lock:
                    self.state.refusals.pop(METADATA_REFUSAL, None)
                outcome.changes = self.reconciler.reconcile(assignments, self.verifier.download)
            self.report_once(outcome)
            outcome.refusals = tuple(self.state.refusals.values())
            return outcome

    def report_once(self, outcome: PollOutcome | None = None) -> PollOutcome:
        """Sends the version report and the metrics window(s) due."""
        outcome = outcome or PollOutcome(verified=True)
        with self._report_lock:
            try:
                self.send_version_report()
                outcome.report_sent = True
            except AirlockError as exc:
                outcome.send_error = exc
                self.home.log("report-failed", reason=exc.message)
            sent, error = self.send_metrics()
        outcome.metrics_sent = sent
        outcome.send_error = outcome.send_error or error
        return outcome

    def version_report(self) -> VersionReport:
        """A new version report (takes the next counter value and persists it first)."""
        with self._lock:
            self.state.counter += 1
            self.home.save_state(self.state)
            installed = tuple(self._installed())
            refusals = tuple(self.state.refusals.values())
            counter = self.state.counter
        return VersionReport(
            node_id=self.node_id,
            counter=counter,
            time=utc_iso(self.clock.now()),
            installed=installed,
            last_verified=_iso(self.verifier.last_verified),
            refusals=refusals,
            runtime=self.home.runtime().to_dict(),
        )

    def send_version_report(self) -> VersionReport:
        """Signs and sends a version report; returns it.

        Raises:
            AirlockError: the spoke did not take it (transport, refusal).
        """
        report = self.version_report()
        doc = SignedDocument.sign(self.home.signer(), report.to_dict())
        self.sender.post_document(reports_path(self.node_id), doc)
        return report

    def send_metrics(self) -> tuple[int, AirlockError | None]:
        """Flushes the metrics window and sends it with any not sent before.

        A transport failure keeps the windows for the next try; a window the
        spoke refuses (e.g. already counted) is dropped.
        """
        report = self.recorder.flush(self.clock.now())
        if report is not None:
            self._pending.append(report)
            del self._pending[:-MAX_PENDING_WINDOWS]
        sent = 0
        while self._pending:
            try:
                doc = SignedDocument.sign(self.home.signer(), self._pending[0].to_dict())
                self.sender.post_document(metrics_path(self.node_id), doc)
            except (MediaError, SecretError) as exc:
                return sent, exc
            except AirlockError as exc:
                self.home.log("metrics-dropped", reason=exc.message)
                self._pending.pop(0)
                return sent, exc
            self._pending.pop(0)
            sent += 1
        return sent, None

    def run(self, stop: threading.Event) -> None:
        """Polls every ``poll_seconds`` and reports every ``report_seconds`` until ``stop``."""
        next_poll = next_report = time.monotonic()
        while not stop.is_set():
            now = time.monotonic()
            try:
                if now >= next_poll:
                    self.poll_once()
                    next_poll = now + self.home.poll_seconds
                    next_report = now + self.home.report_seconds
                elif now >= next_report:
                    self.report_once()
                    next_report = now + self.home.report_seconds
            except Exception as exc:  # keep serving whatever goes wrong in one round
                self.home.log("error", reason=f"{type(exc).__name__}: {exc}"[:300])
                next_poll = now + self.home.poll_seconds
            stop.wait(max(0.0, min(next_poll, next_report) - time.monotonic()))

    def status(self) -> dict[str, Any]:
        """The node's state: families, slots, refusals, counter (the status endpoint)."""
        with self._lock:
            return {
                "node_id": self.node_id,
                "counter": self.state.counter,
                "installed": [m.to_dict() for m in self._installed()],
                "families": {n: f.to_dict() for n, f in sorted(self.state.families.items())},
                "refusals": [r.to_dict() for r in self.state.refusals.values()],
                "last_verified": _iso(self.verifier.last_verified),
            }

    def _installed(self) -> list[InstalledModel]:
        models = []
        for name in sorted(self.reconciler.assigned):
            family = self.state.families.get(name)
            if family is None:
                continue
            route = self.predictor.route(name)
            candidate = route.candidate if route else None
            default = default_model(route)
            standby = family.slots[family.other(family.active)]
            models.append(
                InstalledModel(
                    model=name,
                    active_version=default.version if default else None,
                    active_slot=family.active,
                    standby_version=standby.version if standby.state != "failed" else None,
                    candidate_version=candidate.version if candidate else None,
                    traffic=route.traffic if route and candidate else "all",
                    state=family.state,
                )
            )
        return models

    def _refuse_metadata(self, exc: AirlockError) -> None:
        with self._lock:
            previous = self.state.refusals.get(METADATA_REFUSAL)
            if previous is None or previous.reason != exc.message:
                refusal = Refusal("*", "*", exc.message, utc_iso(self.clock.now()))
                self.state.refusals[METADATA_REFUSAL] = refusal
                self.home.save_state(self.state)
                self.home.log("refused", model="*", version="*", reason=exc.message)


class Reconciler:
    """Brings each family's slots and served versions to what the verifier returned."""

    def __init__(
        self,
        home: AgentHome,
        state: AgentState,
        predictor: Predictor,
        lock: threading.RLock,
        clock: Clock,
    ) -> None:
        self.home = home
        self.state = state
        self.predictor = predictor
        self.clock = clock
        self._lock = lock
        self.assigned: set[str] = set()
        """Families assigned at the last successful refresh (or restored)."""
        self._loaded: dict[str, LoadedModel] = {}
        """``model@version#sha256`` → the loaded, health-checked version."""
        self._refused: dict[str, str] = {}
        """Versions refused as incompatible (not downloaded again while this process runs)."""

    def restore(self) -> None:
        """Serves what the state says was committed (before the first poll after a restart).

        The first successful poll then unloads whatever is no longer assigned.
        """
        for name, family in self.state.families.items():
            served = [
                self._reload(family, version) for version in (family.stable, family.candidate)
            ]
            stable, candidate = served
            if stable is None and candidate is None:
                continue
            if family.stable is None:
                route = Route(None, candidate)
            else:
                route = Route(stable, candidate, family.traffic, family.split_percent)
            self.predictor.serve(name, route)
            self.assigned.add(name)

    def _reload(self, family: FamilySlots, version: str | None) -> LoadedModel | None:
        for slot, record in family.slots.items():
            if version is None or record.version != version or record.state != READY:
                continue
            if record.primary is None:
                return None
            graph = self.home.slots.directory(family.model, slot) / record.primary
            try:
                loaded = open_model(family.model, version, graph, ReleaseInfo())
            except GateError:
                return None
            self._loaded[f"{family.model}@{version}#{record.sha256}"] = loaded
            return loaded
        return None

    def reconcile(self, assignments: Sequence[VerifiedAssignment], download: Download) -> list[str]:
        """Installs, checks, commits or falls back each family; returns what changed."""
        changes: list[str] = []
        desired: dict[str, dict[str, VerifiedAssignment]] = {}
        for assignment in assignments:
            desired.setdefault(assignment.node_model.model, {})[assignment.node_model.role] = (
                assignment
            )
        self._unload(desired, {_key(a) for a in assignments}, changes)
        pending = sorted(desired)
        while pending:
            waiting = [m for m in pending if self._family(m, desired[m], download, changes)]
            if len(waiting) == len(pending):
                break
            pending = waiting
        with self._lock:
            wanted = {a.ref for a in assignments} | {METADATA_REFUSAL}
            for ref in [r for r in self.state.refusals if r not in wanted]:
                del self.state.refusals[ref]
            self.home.save_state(self.state)
        return changes

    def _unload(
        self, desired: dict[str, dict[str, VerifiedAssignment]], keys: set[str], changes: list[str]
    ) -> None:
        """Stops unassigned families and drops versions no longer returned, at once."""
        for key in [k for k in self._loaded if k not in keys]:
            gone = self._loaded.pop(key)
            self.home.log("unloaded", model=gone.model, version=gone.version)
            changes.append(f"unloaded {gone.ref}")
        kept = list(self._loaded.values())
        for name, route in self.predictor.models().items():
            if name not in desired:
                self.predictor.stop(name)
                self.home.log("stopped", model=name)
                changes.append(f"stopped {name}")
                continue
            stable = route.stable if any(route.stable is k for k in kept) else None
            candidate = route.candidate if any(route.candidate is k for k in kept) else None
            if (stable, candidate) != (route.stable, route.candidate):
                self.predictor.serve(
                    name, Route(stable, candidate, route.traffic, route.split_percent)
                )
        self.assigned = set(desired)

    def _family(
        self,
        model: str,
        roles: dict[str, VerifiedAssignment],
        download: Download,
        changes: list[str],
    ) -> bool:
        """Reconciles one family; True when it waits for a dependency."""
        with self._lock:
            family = self.state.family(model)
        before = self.predictor.route(model)
        was_serving = (family.active, _version_of(default_model(before)))
        stable_a, candidate_a = roles.get("stable"), roles.get("candidate")
        primary = stable_a or candidate_a
        assert primary is not None
        candidate = (
            candidate_a
            if stable_a
            and candidate_a
            and candidate_a.node_model.version != stable_a.node_model.version
            else None
        )
        primary_slot, primary_status = self._ensure(family, primary, None, download, changes)
        loaded_primary = self._loaded.get(_key(primary)) if primary_slot else None
        loaded_candidate, candidate_status = None, "ready"
        if primary_slot is not None:
            family.commit(primary_slot)
            if candidate is not None:
                slot, candidate_status = self._ensure(
                    family, candidate, primary_slot, download, changes
                )
                if slot is not None:
                    loaded_candidate = self._loaded.get(_key(candidate))
                    if candidate.node_model.traffic == "all":
                        family.commit(slot)
        statuses = {primary_status, candidate_status}
        family.state = (
            "fell-back"
            if "failed" in statuses
            else "refused"
            if statuses & {"refused", "waiting"}
            else "installing"
            if "retry" in statuses
            else "committed"
        )
        if stable_a is None:
            route = Route(None, loaded_primary)
        else:
            node = candidate.node_model if candidate else stable_a.node_model
            route = Route(loaded_primary, loaded_candidate, node.traffic, node.split_percent or 0)
        with self._lock:
            family.stable = route.stable.version if route.stable else None
            family.candidate = route.candidate.version if route.candidate else None
            family.traffic, family.split_percent = route.traffic, route.split_percent
            self.predictor.serve(model, route)
            version = _version_of(default_model(route))
            if version is not None and (family.active, version) != was_serving:
                self.home.log("commit", model=model, version=version, slot=family.active)
                changes.append(f"commit {model}@{version} slot {family.active}")
            self.home.save_state(self.state)
        return "waiting" in statuses

    def _ensure(
        self,
        family: FamilySlots,
        assignment: VerifiedAssignment,
        keep: str | None,
        download: Download,
        changes: list[str],
    ) -> tuple[str | None, str]:
        """Gets ``assignment`` into a slot, checked and loaded: (slot, ``ready``) or (None, why).

        ``why`` is ``failed`` (health check; not retried), ``refused``
        (incompatible), ``waiting`` (dependency) or ``retry`` (download).
        """
        node, primary = assignment.node_model, assignment.primary_file
        key = _key(assignment)
        slot = family.slot_of(node.version, primary.sha256)
        if slot is not None and family.slots[slot].state == FAILED:
            self._refuse(node, family.slots[slot].reason, kind=HEALTH_CHECK)
            return None, "failed"
        if key in self._refused:
            return None, "refused"
        if slot is not None and key in self._loaded:
            self._clear(node)
            return slot, "ready"
        dependency = unmet_dependency(assignment.release, self._committed())
        if dependency is not None:
            self._refuse(node, f"waiting for dependency {dependency}", "waiting")
            return None, "waiting"
        if slot is None:
            try:
                slot = family.install_target(keep)
                with self._lock:  # a restart mid-install finds the slot empty, never stale
                    family.state = "installing"
                    family.slots[slot] = SlotRecord(node.version, primary.sha256, INSTALLING)
                    self.home.save_state(self.state)
                self.home.slots.install(
                    family, slot, node.version, primary.sha256, assignment.files, download
                )
            except AirlockError as exc:
                self._refuse(node, f"install failed: {exc.message}")
                return None, "retry"
            self.home.log("installed", model=node.model, version=node.version, slot=slot)
            changes.append(f"installed {assignment.ref} slot {slot}")
            with self._lock:
                self.home.save_state(self.state)
        directory = self.home.slots.directory(node.model, slot)
        try:
            check_node_compatibility(
                assignment.ref,
                assignment.release,
                self.home.runtime(),
                directory / primary.filename,
            )
            family.state = "health-check"
            fault = self.predictor.fault(assignment.ref)
            loaded, p95 = health_check(
                node.model,
                node.version,
                directory,
                primary.filename,
                assignment.release,
                fault.latency_ms,
            )
        except GateError as exc:
            if exc.figures.get("failed") in COMPATIBILITY_CHECKS:
                self._refused[key] = exc.message
                self._refuse(node, exc.message)
                changes.append(f"refused {assignment.ref}")
                return None, "refused"
            with self._lock:
                family.fall_back(slot, exc.message)
                self.home.save_state(self.state)
            self._refuse(node, exc.message, "fell-back", kind=HEALTH_CHECK, slot=slot)
            changes.append(f"fell back from {assignment.ref}")
            return None, "failed"
        with self._lock:
            family.slots[slot].state = READY
            self._loaded[key] = loaded
            self.home.save_state(self.state)
        self._clear(node)
        self.home.log(
            "health-passed", model=node.model, version=node.version, slot=slot, p95_ms=round(p95, 3)
        )
        return slot, "ready"

    def _committed(self) -> dict[str, str | None]:
        """Family → the version this node answers with by default (for dependencies)."""
        return {
            name: _version_of(default_model(route))
            for name, route in self.predictor.models().items()
        }

    def _refuse(
        self,
        node: NodeModel,
        reason: str,
        event: str = "refused",
        kind: str = "refused",
        **extra: Any,
    ) -> None:
        ref = f"{node.model}@{node.version}"
        with self._lock:
            previous = self.state.refusals.get(ref)
            if previous is not None and (previous.reason, previous.kind) == (reason, kind):
                return
            self.state.refusals[ref] = Refusal(
                node.model, node.version, reason, utc_iso(self.clock.now()), kind
            )
            self.home.save_state(self.state)
        self.home.log(event, model=node.model, version=node.version, reason=reason, **extra)

    def _clear(self, node: NodeModel) -> None:
        with self._lock:
            self.state.refusals.pop(f"{node.model}@{node.version}", None)


def default_model(route: Route | None) -> LoadedModel | None:
    """The version that answers a family's requests by default (the committed one)."""
    if route is None:
        return None
    if route.candidate is not None and (route.stable is None or route.traffic == "all"):
        return route.candidate
    return route.stable


def _version_of(loaded: LoadedModel | None) -> str | None:
    return loaded.version if loaded is not None else None


def _key(assignment: VerifiedAssignment) -> str:
    return f"{assignment.ref}#{assignment.primary_file.sha256}"


def _iso(value: Any) -> str | None:
    """A verifier's ``last_verified`` (datetime, text or None) as report text."""
    if value is None:
        return None
    return utc_iso(value) if isinstance(value, dt.datetime) else str(value)
