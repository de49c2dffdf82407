"""Reconciling a node's slots with its verified assignment, one model family at a time.

For each family (stable version, then candidate): dependencies, download into the
inactive slot, compatibility with this node's runtime, health check on the model's
signed validation set, then commit (switch the active slot) or fall back (keep it).
A version that failed its health check is not retried; one refused as incompatible is
not downloaded again while this process runs. Unassigned versions are unloaded at once.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from airlock.bundles.clock import Clock, utc_iso
from airlock.bundles.errors import AirlockError, GateError
from airlock.bundles.protocol import (
    HEALTH_CHECK,
    NodeModel,
    Refusal,
)
from airlock.bundles.release import ReleaseInfo
from airlock.node._health import (
    COMPATIBILITY_CHECKS,
    check_node_compatibility,
    health_check,
    open_model,
    unmet_dependency,
)
from airlock.node._home import AgentHome, AgentState
from airlock.node._inference import LoadedModel, Predictor, Route
from airlock.node._slots import FAILED, INSTALLING, READY, Download, FamilySlots, SlotRecord
from airlock.node._verify import VerifiedAssignment

METADATA_REFUSAL = "*@*"
"""The refusal key of a failed metadata refresh (no single version is to blame)."""


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
