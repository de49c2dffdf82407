"""Revocation: take a released model version back, everywhere, in one audited operation.

``Hub.revoke(name, version, reason)`` runs :func:`revoke` inside one
operation (lock, database, repository files and audit entry together):

1. Refuse an unknown version, an already revoked one, or an empty reason
   (nothing changes; the refusal is audited).
2. Image: remove every target of the version from the role that signs it
   (the family's tenant role, or ``models``) and re-sign that role with its
   key (a tenant-held key's secret is asked for now); new snapshot and
   timestamp.
3. Record the revocation (:class:`~airlock.hub.store._tables.HubRevocation`): the
   version can never be assigned or released again.
4. Every site assigned that version is re-pointed at *its* previous good
   version (:func:`previous_good`): the newest version released before the
   revoked one that is not revoked and that this site did not report as
   rolled back (:mod:`airlock.hub.catalog._site_rollbacks`) — its nodes never ran
   it, or fell back from it. It is signed with the plan that version last had
   at that site (:func:`signed_plan`; the default plan if it never had one).
   With no such version the site is left unassigned for the model, and the
   result (output and audit entry) names the versions skipped and why.
5. Every site's Director targets get the full list of revocations so far in
   ``x-airlock-revocations`` (``{model, version, reason, revoked_at}``) and
   are re-signed, so each site learns why at its next import.
6. A revocation never waits for a change window: it is recorded against the
   change request given (any open one), or against an emergency change
   request created after the fact
   (:func:`~airlock.hub.changes._changes.record_emergency_change`); the
   ``model.revoked`` event goes to the outbox in the same transaction.

The next ``airlock hub export --site S`` is then a small ``revocation``
bundle: the site already holds the previous good version's files (see
:mod:`airlock.hub.export._planner`).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from securesystemslib.signer import Signer
from sqlmodel import Session, select

from airlock.bundles import events as events
from airlock.bundles import tuf as tufrepo
from airlock.bundles.audit import default_principal
from airlock.bundles.clock import utc_iso
from airlock.bundles.errors import ConflictError, UsageError
from airlock.bundles.models import ModelVersion
from airlock.bundles.release import RolloutPlan
from airlock.hub.catalog import _catalog as catalog
from airlock.hub.catalog import _site_rollbacks as site_rollbacks
from airlock.hub.catalog._revocation_view import check_not_revoked, revocation_entries
from airlock.hub.changes import _changes as changes
from airlock.hub.changes import _records as change_records
from airlock.hub.context._context import (
    HubContext,
    director_signers,
    load_image_repo,
    load_site_metadata,
    online_expiry,
)
from airlock.hub.context._operation import Operation, operation
from airlock.hub.repos import _director as director_repo
from airlock.hub.repos import _image as image_repo
from airlock.hub.repos import _signing as signing
from airlock.hub.repos import _tufmeta as tufmeta
from airlock.hub.sites._tenants import tenant_signer
from airlock.hub.store._tables import (
    HubAssignment,
    HubModelVersion,
    HubRevocation,
    HubSignedPlan,
    HubSite,
)

REVOKE_ACTION = "hub.revoke"
MAX_REASON_LENGTH = 1000


@dataclass(frozen=True)
class SiteRepoint:
    """What a revocation did to one site's assignment of the family."""

    site_id: str
    previous: str
    now: str | None
    """The previous good version now assigned, or None (unassigned)."""
    skipped_rolled_back: tuple[str, ...] = ()
    """Earlier versions not chosen because this site reported them rolled back."""

    @property
    def note(self) -> str:
        """Why the site runs what it runs now (empty when nothing was skipped)."""
        if not self.skipped_rolled_back:
            return "" if self.now else "no earlier version that is not revoked"
        skipped = ", ".join(self.skipped_rolled_back)
        if self.now is None:
            return f"unassigned: the site rolled back {skipped}, and no other version is left"
        return f"skipped {skipped}: the site rolled it back"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "site_id": self.site_id,
            "previous": self.previous,
            "now": self.now,
            "skipped_rolled_back": list(self.skipped_rolled_back),
            "note": self.note,
        }


@dataclass(frozen=True)
class RevocationResult:
    """The outcome of ``Hub.revoke``."""

    model: str
    version: str
    reason: str
    revoked_at: str
    principal: str
    role: str
    removed_targets: tuple[str, ...]
    sites: tuple[SiteRepoint, ...]
    """Sites that were assigned the revoked version, and what they run now."""
    notified: tuple[str, ...]
    """Every site whose Director targets now list the revocation."""
    change_request: str = ""
    """The change request it was recorded against (an emergency one made after the fact)."""

    @property
    def ref(self) -> str:
        """``name@version``."""
        return f"{self.model}@{self.version}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (also the audit entry's details)."""
        return {
            "model": self.model,
            "version": self.version,
            "reason": self.reason,
            "revoked_at": self.revoked_at,
            "principal": self.principal,
            "role": self.role,
            "removed_targets": list(self.removed_targets),
            "sites": [s.to_dict() for s in self.sites],
            "notified": list(self.notified),
            "change_request": self.change_request,
        }


def release_key(created: str, version: str) -> tuple[str, tuple[tuple[int, int | str], ...]]:
    """Release order: release time, then the version string compared part by part."""
    parts = tuple(
        (0, int(part)) if part.isdigit() else (1, part) for part in re.findall(r"\d+|\D+", version)
    )
    return created, parts


def previous_good(
    session: Session, name: str, version: str, skip: Collection[str] = ()
) -> ModelVersion | None:
    """The newest usable version of ``name`` released before ``version`` (or None).

    Usable: neither revoked nor in ``skip`` (a site's rolled-back versions).
    "Before" is release order in the catalogue (:func:`release_key`).
    """
    rows = list(session.exec(select(HubModelVersion).where(HubModelVersion.name == name)))
    revoked_rows = session.exec(select(HubRevocation).where(HubRevocation.name == name))
    revoked = {r.version for r in revoked_rows} | set(skip)
    by_key = {r.version: release_key(r.created, r.version) for r in rows}
    limit = by_key[version]
    earlier = [v for v, key in by_key.items() if key < limit and v not in revoked]
    if not earlier:
        return None
    return catalog.get_model(session, name, max(earlier, key=by_key.__getitem__))


def _site_fallback(
    session: Session, site_id: str, name: str, version: str
) -> tuple[ModelVersion | None, tuple[str, ...]]:
    """The site's previous good version, and the newer ones skipped as rolled back there."""
    rolled_back = site_rollbacks.rolled_back_at_site(session, site_id, name)
    fallback = previous_good(session, name, version, skip=rolled_back)
    if not rolled_back:
        return fallback, ()
    plain = previous_good(session, name, version)
    skipped: list[str] = []
    while plain is not None and (fallback is None or plain.version != fallback.version):
        skipped.append(plain.version)
        plain = previous_good(session, name, plain.version)
    return fallback, tuple(v for v in skipped if v in rolled_back)


def _revoke(
    ctx: HubContext, op: Operation, name: str, version: str, reason: str, change: str | None = None
) -> RevocationResult:
    """Steps 1-6 of the module docstring, inside the revocation's operation."""
    reason = " ".join(reason.split())
    op.details = {"model": name, "version": version, "reason": reason}
    if change is not None:
        op.details["change_request"] = change
    if not reason:
        raise UsageError("a revocation needs a reason", hint='pass --reason "what is wrong"')
    if len(reason) > MAX_REASON_LENGTH:
        raise UsageError(f"the reason is longer than {MAX_REASON_LENGTH} characters")
    session = op.session
    catalog.get_model(session, name, version)
    check_not_revoked(session, name, version, "revoke")

    now = ctx.clock.now()
    revoked_at, principal = utc_iso(now), default_principal()
    change = _change_request(session, change, name, version, reason, principal, now)
    expires = online_expiry(ctx)
    role, removed = _remove_from_image(ctx, op, name, version, expires)

    session.add(
        HubRevocation(
            name=name, version=version, reason=reason, revoked_at=revoked_at, principal=principal
        )
    )
    session.flush()
    entries = revocation_entries(session)
    signers = director_signers(ctx)
    repointed: list[SiteRepoint] = []
    notified: list[str] = []
    for site in session.exec(select(HubSite).order_by(HubSite.site_id)):  # type: ignore[arg-type]
        site_md = load_site_metadata(ctx, site.site_id)
        director_repo.set_revocations(site_md, entries)
        assignment = session.get(HubAssignment, (site.site_id, name))
        if assignment is not None and assignment.version == version:
            fallback, skipped = _site_fallback(session, site.site_id, name, version)
            plan = signed_plan(session, site.site_id, fallback) if fallback else None
            director_repo.set_model(site_md, fallback, name, expires, signers.targets, plan)
            repointed.append(_repoint(session, assignment, fallback, revoked_at, skipped))
        else:
            tufmeta.bump(site_md.targets, expires, [signers.targets])
        director_repo.refresh(site_md, expires, signers)
        site_md.stage(op.writes)
        notified.append(site.site_id)

    result = RevocationResult(
        model=name,
        version=version,
        reason=reason,
        revoked_at=revoked_at,
        principal=principal,
        role=role,
        removed_targets=tuple(removed),
        sites=tuple(repointed),
        notified=tuple(notified),
        change_request=change,
    )
    op.details = result.to_dict()
    events.emit(
        session, "model.revoked", change_records.hub_source(), result.ref, result.to_dict(), now
    )
    return result


def _change_request(
    session: Session,
    change: str | None,
    name: str,
    version: str,
    reason: str,
    principal: str,
    now: dt.datetime,
) -> str:
    """The open change request given, or a new emergency one covering the affected sites.

    Raises:
        NotFoundError: the change request given does not exist.
        UsageError: it is closed or canceled.
    """
    if change is not None:
        row = changes.get_row(session, change)
        if row.state in change_records.FINAL_STATES:
            raise UsageError(
                f"change {change} is {row.state}; a revocation needs an open change request",
                hint="leave out --change: an emergency change request is recorded for it",
            )
        return change
    affected = session.exec(
        select(HubAssignment).where(HubAssignment.name == name, HubAssignment.version == version)
    )
    covers = [change_records.CoveredPlan(a.site_id, name, version) for a in affected]
    summary = f"Emergency revocation of {name}@{version}: {reason}"
    return changes.record_emergency_change(session, summary, principal, now, covers)


def _remove_from_image(
    ctx: HubContext, op: Operation, name: str, version: str, expires: Any
) -> tuple[str, list[str]]:
    """Removes the version's targets from the role that signs them and re-signs it."""
    image = load_image_repo(ctx)
    prefix = f"{name}/{version}/"
    signing_roles = {
        role: md
        for role, md in image.targets_roles().items()
        if any(path.startswith(prefix) for path in md.signed.targets)
    }
    if not signing_roles:
        raise ConflictError(
            f"{name}@{version} is in the catalogue but no Image role signs it",
            hint="the hub's repository is inconsistent; check `airlock hub status`",
        )
    if image_repo.TARGETS in signing_roles:
        raise UsageError(
            f"{name}@{version} is signed by the offline Image targets role",
            hint="the security officers must remove it in a re-signing ceremony",
        )
    removed: list[str] = []
    for role, md in signing_roles.items():
        paths = sorted(p for p in md.signed.targets if p.startswith(prefix))
        for path in paths:
            del md.signed.targets[path]
        removed += paths
        tufmeta.bump(md, expires, [_role_signer(ctx, op.session, role)])
    image_repo.refresh(
        image,
        expires,
        ctx.signers.online(signing.IMAGE_SNAPSHOT),
        ctx.signers.online(signing.IMAGE_TIMESTAMP),
    )
    image.stage(op.writes, [*signing_roles, image_repo.SNAPSHOT, image_repo.TIMESTAMP])
    return ", ".join(sorted(signing_roles)), removed


def _role_signer(ctx: HubContext, session: Session, role: str) -> Signer:
    if role == tufrepo.MODELS_ROLE:
        return ctx.signers.online(signing.IMAGE_MODELS)
    return tenant_signer(ctx, session, role.removeprefix(tufrepo.TENANT_ROLE_PREFIX))


def _repoint(
    session: Session,
    assignment: HubAssignment,
    fallback: ModelVersion | None,
    when: str,
    skipped: tuple[str, ...],
) -> SiteRepoint:
    previous = assignment.version
    if fallback is None:
        session.delete(assignment)
        return SiteRepoint(assignment.site_id, previous, None, skipped)
    assignment.version, assignment.assigned = fallback.version, when
    session.add(assignment)
    return SiteRepoint(assignment.site_id, previous, fallback.version, skipped)


def remember_plan(
    session: Session, site_id: str, name: str, version: str, plan: RolloutPlan, when: str
) -> None:
    """Records the plan just signed for ``name@version`` at ``site_id`` (:class:`HubSignedPlan`)."""
    row = session.get(HubSignedPlan, (site_id, name, version))
    if row is None:
        row = HubSignedPlan(site_id=site_id, name=name, version=version, signed_at=when)
    row.plan, row.signed_at = plan.to_dict(), when
    session.add(row)


def signed_plan(session: Session, site_id: str, model: ModelVersion) -> RolloutPlan | None:
    """The plan last signed for ``model`` at ``site_id``; None (the default plan) if never."""
    row = session.get(HubSignedPlan, (site_id, model.name, model.version))
    return RolloutPlan.from_dict(row.plan) if row is not None else None


def revoke(
    ctx: HubContext, name: str, version: str, reason: str, change: str | None = None
) -> RevocationResult:
    """Revokes ``name@version`` everywhere (see the module docstring).

    Removes its targets from the Image role that signs them, records the
    revocation, re-points every site assigned it at the previous good
    version (or unassigns), and lists the revocation with its reason in
    every site's Director targets. It never waits for a change window: it
    is recorded against ``change`` (an open change request), or against an
    emergency change request created after the fact.

    Raises:
        NotFoundError: the version was never released.
        ConflictError: it is already revoked.
        UsageError: no reason given.
        SecretError: a tenant-held key's secret, or the hub passphrase, is wrong.
    """
    with operation(ctx, REVOKE_ACTION, f"{name}@{version}", change or "") as op:
        return _revoke(ctx, op, name, version, reason, change)
