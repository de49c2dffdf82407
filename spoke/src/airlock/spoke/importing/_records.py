"""What an import records besides staging: signed rollout plans and revoked versions.

Runs in two halves around the importer's step 6:

- :func:`prepare` (after TUF verification, before anything is promoted):
  parses the rollout plan the hub's Director signed for every assigned
  version (``custom.airlock.rollout`` of its primary file; a target without
  one gets the default :class:`~airlock.bundles.release._rollout_plan.RolloutPlan`), the
  change authorisation signed next to it (``custom.airlock.change``, a
  :class:`~airlock.bundles.release._change.ChangeAuthorization`; absent when the hub
  does not work under change requests), the version's signed dependencies
  (``release.compatibility.depends`` of the Image target) and the Director's
  ``x-airlock-revocations`` list, and the hub's ``x-airlock-return`` field
  (:class:`~airlock.bundles.metrics._model.ReturnPath`: where metrics go, the
  hub's witness key, the checkpoint it last acknowledged). A malformed plan,
  authorisation, list or return field refuses the whole import
  (:class:`TrustError`). An acknowledgement is verified before anything is
  stored, failing closed: the witness's cosignature, this site's own
  signature, and that the acknowledged tree is a prefix of this site's audit
  log — else the hub vouches for a log this site did not write.
- :func:`record` (inside the import's one transaction): upserts a
  :class:`~airlock.spoke.site._fleet_tables.RolloutPlanRecord` per assigned version
  (plan, its SHA-256 — over the plan only —, dependencies, authorisation)
  and adds a :class:`~airlock.spoke.site._fleet_tables.RevokedVersion` for every
  staged version that the newly verified Image metadata no longer signs, or
  that the Director lists as revoked. The reason comes from the Director's
  list; a version that disappeared from the Image without being listed is
  still revoked (fail closed) with :data:`UNLISTED_REASON`. It upserts the
  :class:`~airlock.bundles.audit.HubReturnRecord` when the Director
  carries a return field (absent: what is stored stays).

A stale or refused bundle never reaches :func:`record`, so it records nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import pyrage
from securesystemslib.signer import Key
from sqlalchemy import Engine
from sqlmodel import Session, select

from airlock.bundles import tuf as tufrepo
from airlock.bundles.audit import (
    HubReturnRecord,
    ed25519_public_bytes,
    stored_tree,
    verify_checkpoint,
    verify_cosignature,
)
from airlock.bundles.canonical import canonical_bytes
from airlock.bundles.errors import AirlockError, MediaError, SignatureError, TrustError
from airlock.bundles.metrics import RETURN_FIELD, ReturnPath
from airlock.bundles.release import CHANGE_KEY, ChangeAuthorization, ReleaseInfo, RolloutPlan
from airlock.bundles.tuf import VerifiedMetadata, VerifiedTarget
from airlock.spoke.site._fleet_tables import RevokedVersion, RolloutPlanRecord
from airlock.spoke.site._tables import StagedModel

UNLISTED_REASON = "no longer signed by the hub"
"""The reason recorded for a staged version the Image dropped without a listed revocation."""

MALFORMED_HINT = (
    "the hub signed metadata this spoke cannot use; do not import it and report it to the hub"
)
FOREIGN_LOG_HINT = (
    "the hub vouches for an audit log this site did not write; do not import the bundle, "
    "keep it, and report it to the hub"
)
VersionKey = tuple[str, str]


class StagedFile(NamedTuple):
    """A file of a staged version, as its row records it."""

    model: str
    version: str
    sha256: str

    @property
    def key(self) -> VersionKey:
        """(model, version)."""
        return (self.model, self.version)


@dataclass(frozen=True)
class SignedPlan:
    """The plan the Director signed for one assigned version, and its dependencies."""

    model: str
    version: str
    plan: dict[str, Any]
    plan_sha256: str
    depends: list[dict[str, Any]]
    change: dict[str, Any]
    """The signed :class:`ChangeAuthorization` (``to_dict`` form); {} when none."""


@dataclass(frozen=True)
class ImportRecords:
    """What :func:`record` will write, computed before the transaction."""

    plans: tuple[SignedPlan, ...]
    listed: dict[VersionKey, dict[str, str]]
    """Revocations the Director lists: (model, version) → entry."""
    unsigned: frozenset[VersionKey]
    """Staged versions with a file the verified Image no longer signs."""
    return_path: ReturnPath | None = None
    """The Director's ``x-airlock-return`` field (None: absent, keep what is stored)."""
    acknowledged_size: int = 0
    """The size of the (verified) checkpoint the hub acknowledged (0: none)."""


@dataclass(frozen=True)
class SiteLog:
    """This site's own audit log and checkpoint key, to check the hub's acknowledgement."""

    origin: str
    """``airlock/spoke/<site id>``."""
    key: Key
    """The site key (the public half)."""
    engine: Engine


def plan_sha256(plan: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of a plan's ``to_dict`` form."""
    return hashlib.sha256(canonical_bytes(dict(plan))).hexdigest()


def staged_files(session: Session) -> dict[str, StagedFile]:
    """Target path → :class:`StagedFile` of every file of every staged version."""
    paths: dict[str, StagedFile] = {}
    for row in session.exec(select(StagedModel)):
        for item in json.loads(row.files):
            paths[str(item["path"])] = StagedFile(row.name, row.version, str(item["sha256"]))
    return paths


def prepare(
    verified: VerifiedMetadata,
    staged_paths: Mapping[str, StagedFile],
    site_log: SiteLog | None = None,
) -> ImportRecords:
    """Parses plans, dependencies, revocations and the return path of a verified bundle.

    Args:
        verified: The bundle's verified metadata, verified with
            ``watch=staged_paths`` so that ``verified.unsigned`` is meaningful.
        staged_paths: :func:`staged_files` as read before verification.
        site_log: This site's log, to check an acknowledgement against (without
            it, a return field carrying one is refused: fail closed).

    Raises:
        TrustError: a signed plan, release record, revocation list or return
            field is malformed, or the hub's acknowledgement does not verify.
    """
    plans = tuple(_signed_plan(t) for t in verified.targets if t.primary and t.kind == "model")
    entries = tufrepo.parse_revocations(verified.director_fields.get(tufrepo.REVOCATIONS_FIELD))
    listed = {(e["model"], e["version"]): e for e in entries}
    unsigned = frozenset(staged_paths[p].key for p in verified.unsigned if p in staged_paths)
    path = parse_return_path(verified.director_fields.get(RETURN_FIELD))
    size = check_acknowledgement(path, site_log) if path else 0
    return ImportRecords(plans, listed, unsigned, path, size)


def parse_return_path(value: Any) -> ReturnPath | None:
    """The Director's ``x-airlock-return`` field (None when absent), not yet its acknowledgement.

    Raises:
        TrustError: malformed, an hub recipient that is not an age X25519
            recipient, or a witness key that is not Ed25519.
    """
    if value is None:
        return None
    try:
        path = ReturnPath.from_dict(value)
        witness_key(path)
        pyrage.x25519.Recipient.from_str(path.hub_recipient)
    except (MediaError, SignatureError) as exc:
        reason = exc.message
    except (pyrage.RecipientError, KeyError, TypeError, ValueError) as exc:
        reason = f"{type(exc).__name__}: {str(exc)[:200]}"
    else:
        return path
    raise TrustError(
        f"the Director's {RETURN_FIELD} field is malformed: {reason}", hint=MALFORMED_HINT
    )


def witness_key(path: ReturnPath) -> Key:
    """The hub witness's Ed25519 key of a return path (its dict carries ``keyid``).

    Raises:
        KeyError, TypeError, ValueError: not a key dict; SignatureError: not Ed25519.
    """
    data = dict(path.witness_key)
    key = Key.from_dict(str(data.pop("keyid")), data)
    ed25519_public_bytes(key)
    return key


def check_acknowledgement(path: ReturnPath, site_log: SiteLog | None) -> int:
    """Verifies the checkpoint the hub says it acknowledged; returns its size (0: none).

    Checks the witness's cosignature, this site's own signature (origin
    ``site_log.origin``), and that the signed (size, root) is a prefix of the
    local audit log.

    Raises:
        TrustError: any of these fails, or there is no log to check against.
    """
    if not path.acknowledged_note:
        return 0
    what = f"the hub's acknowledgement of metrics bundle {path.acknowledged_sequence}"
    if site_log is None:
        raise TrustError(f"{what} cannot be checked here", hint=FOREIGN_LOG_HINT)
    try:
        verify_cosignature(path.acknowledged_note, path.witness_name, witness_key(path))
        checkpoint = verify_checkpoint(path.acknowledged_note, {site_log.origin: site_log.key})
    except (MediaError, SignatureError) as exc:
        raise TrustError(f"{what} does not verify: {exc.message}", hint=FOREIGN_LOG_HINT) from None
    with Session(site_log.engine) as session:
        tree = stored_tree(session, upto=checkpoint.size)
    if checkpoint.origin != site_log.origin or tree.size != checkpoint.size:
        raise TrustError(
            f"{what} names a checkpoint of {checkpoint.size} entries of {checkpoint.origin}, "
            f"which this site's audit log ({tree.size} entries) does not have",
            hint=FOREIGN_LOG_HINT,
        )
    if tree.root() != checkpoint.root:
        raise TrustError(
            f"{what} names a checkpoint of {checkpoint.size} entries whose root "
            f"{checkpoint.root.hex()[:16]}… is not that of this site's audit log",
            hint=FOREIGN_LOG_HINT,
        )
    return checkpoint.size


def _signed_plan(target: VerifiedTarget) -> SignedPlan:
    ref = f"{target.model}@{target.version}"
    raw = target.director_custom.get(tufrepo.ROLLOUT_KEY)
    try:
        if raw is not None and not isinstance(raw, Mapping):
            raise TypeError("not an object")
        plan = RolloutPlan.from_dict(raw).to_dict()
        release = ReleaseInfo.from_dict(target.image_custom.get("release"))
    except (AirlockError, TypeError, ValueError) as exc:
        raise TrustError(
            f"the signed rollout plan or release record of {ref} is malformed: {exc}",
            hint=MALFORMED_HINT,
        ) from None
    try:
        change = signed_change(target.director_custom.get(CHANGE_KEY))
    except (AirlockError, TypeError, ValueError) as exc:
        raise TrustError(
            f"the signed change authorisation of {ref} is malformed: {exc}", hint=MALFORMED_HINT
        ) from None
    depends = [d.to_dict() for d in release.compatibility.depends] if release.compatibility else []
    return SignedPlan(target.model, target.version, plan, plan_sha256(plan), depends, change)


def signed_change(raw: Any) -> dict[str, Any]:
    """The ``to_dict`` form of a signed change authorisation ({} when there is none).

    Every field must be present and a string, and the authorisation must be
    valid (:class:`ChangeAuthorization` checks type and window on construction).

    Raises:
        TypeError: not an object, or a field is not a string.
        UsageError: a field is missing, or the authorisation is invalid.
    """
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise TypeError("the change authorisation is not an object")
    loose = [k for k in ChangeAuthorization.__dataclass_fields__ if not isinstance(raw.get(k), str)]
    if any(k in raw for k in loose):
        raise TypeError(f"change authorisation fields must be text: {', '.join(loose)}")
    return ChangeAuthorization.from_dict(raw).to_dict()


@dataclass(frozen=True)
class Recorded:
    """What :func:`record` wrote (for the import's result and audit entry)."""

    plans: list[dict[str, Any]]
    revoked: list[dict[str, str]]
    hub_return: dict[str, Any] | None = None
    """Summary of the return path recorded (None: the Director carried none)."""

    @property
    def revoked_refs(self) -> list[str]:
        """``name@version`` of every newly revoked version."""
        return [f"{r['model']}@{r['version']}" for r in self.revoked]


def record(session: Session, records: ImportRecords, bundle_id: str, now: dt.datetime) -> Recorded:
    """Writes plans and revocations in the import's transaction (see the module docstring)."""
    when = now.isoformat()
    plans = [_upsert_plan(session, plan, bundle_id, when) for plan in records.plans]
    staged = {(row.name, row.version) for row in session.exec(select(StagedModel))}
    revoked: list[dict[str, str]] = []
    for key in sorted(staged & (records.unsigned | set(records.listed))):
        if session.get(RevokedVersion, key) is not None:
            continue
        entry = records.listed.get(key)
        reason = entry["reason"] if entry else UNLISTED_REASON
        revoked_at = entry["revoked_at"] if entry else when
        session.add(
            RevokedVersion(
                model=key[0],
                version=key[1],
                reason=reason,
                revoked_at=revoked_at,
                bundle_id=bundle_id,
            )
        )
        revoked.append(tufrepo.revocation_entry(key[0], key[1], reason, revoked_at))
    hub_return = _upsert_return(session, records, bundle_id, when)
    return Recorded(plans=plans, revoked=revoked, hub_return=hub_return)


def _upsert_return(
    session: Session, records: ImportRecords, bundle_id: str, when: str
) -> dict[str, Any] | None:
    path = records.return_path
    if path is None:
        return None
    values: dict[str, Any] = {
        "hub_recipient": path.hub_recipient,
        "witness_name": path.witness_name,
        "witness_key": dict(path.witness_key),
        "acknowledged_sequence": path.acknowledged_sequence,
        "acknowledged_size": records.acknowledged_size,
        "acknowledged_note": path.acknowledged_note,
    }
    row = session.get(HubReturnRecord, 1) or HubReturnRecord(hub_recipient="", witness_name="")
    changed = any(getattr(row, name) != value for name, value in values.items())
    if changed:
        for name, value in values.items():
            setattr(row, name, value)
        row.bundle_id, row.updated_at = bundle_id, when
        session.add(row)
    return {
        "hub_recipient": path.hub_recipient,
        "witness": path.witness_name,
        "acknowledged_sequence": path.acknowledged_sequence,
        "acknowledged_size": records.acknowledged_size,
        "changed": changed,
    }


def _upsert_plan(session: Session, signed: SignedPlan, bundle_id: str, when: str) -> dict[str, Any]:
    row = session.get(RolloutPlanRecord, (signed.model, signed.version))
    new = (signed.plan_sha256, signed.depends, signed.change)
    changed = row is None or (row.plan_sha256, row.depends, row.change) != new
    if row is None:
        row = RolloutPlanRecord(model=signed.model, version=signed.version)
    if changed:
        row.plan, row.plan_sha256, row.depends = signed.plan, signed.plan_sha256, signed.depends
        row.change = dict(signed.change)
        row.bundle_id, row.recorded_at = bundle_id, when
        session.add(row)
    summary = {
        "model": signed.model,
        "version": signed.version,
        "plan_sha256": signed.plan_sha256,
        "changed": changed,
    }
    if signed.change:
        summary["change_request"] = signed.change["number"]
    return summary
