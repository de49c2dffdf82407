"""Step 6 of an import: the one transaction that records a verified bundle.

:func:`commit_import` moves the spoke from the state an import was verified
against to the bundle's: trusted metadata, sequence, time floor, Director
assignments, staged models, rollout plans and revocations
(:mod:`airlock.spoke.importing._records`), the audit entry and the
``bundle.imported`` event — all or nothing. :class:`ImportResult` says what
changed. The steps before it live in :mod:`airlock.spoke.importing._importer`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import delete

from airlock.bundles.clock import Clock, utc_iso
from airlock.bundles.db import session_scope
from airlock.bundles.events import emit, source_of
from airlock.bundles.models import Envelope
from airlock.bundles.tuf import VerifiedMetadata
from airlock.spoke.gate._gate import GateReport
from airlock.spoke.importing import _records as import_records
from airlock.spoke.site._home import SpokeHome
from airlock.spoke.site._tables import (
    DirectorAssignment,
    SpokeState,
    StagedModel,
    TrustedMetadataFile,
    lock_state,
)


@dataclass
class ImportResult:
    """What an import changed."""

    bundle_id: str
    sequence: int
    staged: list[str] = field(default_factory=list)
    already_staged: list[str] = field(default_factory=list)
    assigned: list[str] = field(default_factory=list)
    new_blobs: int = 0
    attested: list[str] = field(default_factory=list)
    gate: dict[str, Any] = field(default_factory=dict)
    kind: str = "full"
    revoked: list[dict[str, str]] = field(default_factory=list)
    """Staged versions this import marked revoked ({model, version, reason, revoked_at})."""
    plans: list[dict[str, Any]] = field(default_factory=list)
    """The signed plan of every assigned version ({model, version, plan_sha256, changed})."""
    hub_return: dict[str, Any] | None = None
    """The hub's return path recorded (recipient, witness, acknowledgement), when carried."""
    receipt: dict[str, Any] | None = None
    """The signed import receipt (``airlock-import-receipt/1``) in the audit entry."""
    volumes: dict[str, list[str]] = field(default_factory=dict)
    """Format 2: the volumes read, rebuilt from parity, and resumed from an earlier run."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        doc: dict[str, Any] = {
            "bundle_id": self.bundle_id,
            "sequence": self.sequence,
            "staged": self.staged,
            "already_staged": self.already_staged,
            "assigned": self.assigned,
            "new_blobs": self.new_blobs,
            "attested": self.attested,
            "gate": self.gate,
        }
        if self.volumes:
            doc["volumes"] = self.volumes
        if self.receipt is not None:
            doc["receipt"] = self.receipt
        return doc


def commit_import(
    home: SpokeHome,
    envelope: Envelope,
    verified: VerifiedMetadata,
    new_blobs: int,
    clock: Clock,
    attested: list[str] | None = None,
    gate: GateReport | None = None,
    records: import_records.ImportRecords | None = None,
    *,
    base: SpokeState,
    rotated_to: int | None = None,
    receipt: Callable[[ImportResult, dt.datetime], dict[str, Any]] | None = None,
) -> ImportResult:
    """Step 6: one transaction moves the spoke to the verified bundle's state.

    The state row is locked and must still be the one the verification
    started from (``base``; :func:`~airlock.spoke.site._tables.lock_state`), so the
    envelope's sequence check of step 1 still holds. The time floor only
    advances to the creation time the Director timestamp signed; a Director
    root rotation not yet recorded (``rotated_to``) resets sequence and floor
    to the bundle's own values and the audit entry records ``reset``.
    ``receipt`` signs the import receipt (from the result, at the commit's
    time); it goes into the audit entry's details and ``ImportResult.receipt``.

    Raises:
        StaleBundleError: another replica committed an import meanwhile.
    """
    now = clock.now()
    result = ImportResult(
        bundle_id=envelope.bundle_id,
        sequence=envelope.sequence,
        new_blobs=new_blobs,
        attested=list(attested or []),
        gate=gate.versions if gate else {},
        kind=str(envelope.kind),
    )
    by_model: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for target in verified.targets:
        by_model.setdefault((target.model, target.version), []).append(target.to_dict())
    with session_scope(home.engine) as session:
        state = lock_state(session, base)  # replicas sharing the database commit one by one
        # An offline root rotation not yet recorded resets what online keys could have set.
        resets = rotated_to is not None and state.director_root_version < rotated_to
        before = {"sequence": state.last_sequence, "time_floor": state.time_floor}
        # The floor only advances to signed times (the creation time the Director
        # timestamp bound, step 4), never to the local clock.
        floor = envelope.created
        if not resets:
            floor = max(dt.datetime.fromisoformat(state.time_floor), floor)
        state.last_sequence = envelope.sequence
        state.last_bundle_id = envelope.bundle_id
        state.time_floor = floor.isoformat()
        state.image_root_version = verified.image_root_version
        state.director_root_version = verified.director_root_version
        state.director_targets_version = verified.director_targets_version
        state.updated_at = now.isoformat()
        session.add(state)
        session.exec(delete(TrustedMetadataFile))  # type: ignore[call-overload]
        for repo, files in verified.new_trusted.items():
            for name, data in files.items():
                session.add(TrustedMetadataFile(repository=repo, name=name, data=data))
        session.exec(delete(DirectorAssignment))  # type: ignore[call-overload]
        for target in verified.targets:
            session.add(
                DirectorAssignment(
                    path=target.path,
                    model=target.model,
                    version=target.version,
                    filename=target.filename,
                    sha256=target.sha256,
                    length=target.length,
                )
            )
        for (name, version), model_files in sorted(by_model.items()):
            ref = f"{name}@{version}"
            result.assigned.append(ref)
            if session.get(StagedModel, (name, version)) is not None:
                result.already_staged.append(ref)
                continue
            session.add(
                StagedModel(
                    name=name,
                    version=version,
                    files=json.dumps(model_files, sort_keys=True),
                    bundle_id=envelope.bundle_id,
                    sequence=envelope.sequence,
                    staged_at=now.isoformat(),
                    gate=result.gate.get(ref, {}),
                )
            )
            result.staged.append(ref)
        if records is not None:
            recorded = import_records.record(session, records, envelope.bundle_id, now)
            result.plans, result.revoked = recorded.plans, recorded.revoked
            result.hub_return = recorded.hub_return
        changes = sorted({str(p["change_request"]) for p in result.plans if "change_request" in p})
        if receipt is not None:
            result.receipt = receipt(result, now)
        home.audit.record(
            "spoke.import",
            "success",
            object=envelope.bundle_id,
            details={
                "sequence": envelope.sequence,
                "kind": str(envelope.kind),
                "created": utc_iso(envelope.created),
                **({"reset": _reset(before, state, rotated_to)} if resets else {}),
                "image_root_version": verified.image_root_version,
                "director_root_version": verified.director_root_version,
                "staged": result.staged,
                "assigned": result.assigned,
                "new_blobs": new_blobs,
                "attested": result.attested,
                "gate": gate.to_dict() if gate else None,
                "omitted": list(envelope.omitted),
                "revoked": result.revoked,
                "plans": result.plans,
                "change_requests": changes,
                "hub_return": result.hub_return,
                **({"receipt": result.receipt} if result.receipt is not None else {}),
            },
            change_request=changes[0] if len(changes) == 1 else "",
            session=session,
            when=now,
        )
        emit(
            session,
            "bundle.imported",
            source_of("spoke", home.site_id),
            envelope.bundle_id,
            {
                "bundle_id": envelope.bundle_id,
                "site_id": home.site_id,
                "sequence": envelope.sequence,
                "kind": str(envelope.kind),
                "staged": result.staged,
                "assigned": result.assigned,
                "revoked": result.revoked,
                "plans": result.plans,
                "change_requests": changes,
            },
            now,
        )
    return result


def _reset(before: dict[str, Any], state: SpokeState, rotated_to: int | None) -> dict[str, Any]:
    """The audit record of a root rotation's reset: sequence and floor, old → new."""
    return {
        "director_root_version": rotated_to,
        "sequence": {"old": before["sequence"], "new": state.last_sequence},
        "time_floor": {"old": before["time_floor"], "new": state.time_floor},
    }
