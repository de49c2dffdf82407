"""Assignments: which model version each site should run, under which rollout plan.

:func:`assign` and :func:`unassign` are audited operations that re-sign the
site's Director targets (see :mod:`airlock.hub.repos._director`); the rollout
plan and, under a change request, its signed authorisation go into the
custom field of the version's primary file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from airlock.bundles.clock import utc_iso
from airlock.bundles.errors import NotFoundError, UsageError
from airlock.bundles.models import ModelVersion
from airlock.bundles.release import RolloutPlan
from airlock.hub.catalog import _catalog as catalog
from airlock.hub.catalog import _rollout_plans as rollout_plans
from airlock.hub.catalog._revocation_view import check_not_revoked
from airlock.hub.changes._desk import authorize_assignment
from airlock.hub.context._context import (
    HubContext,
    director_signers,
    get_site,
    load_site_metadata,
    online_expiry,
)
from airlock.hub.context._operation import Operation, operation
from airlock.hub.repos import _director as director_repo
from airlock.hub.revocation import _revoke as revoke
from airlock.hub.store._tables import HubAssignment


def assign(
    ctx: HubContext,
    site_id: str,
    name: str,
    version: str,
    plan: RolloutPlan | None = None,
    *,
    plan_file: Path | None = None,
    change: str | None = None,
) -> bool:
    """Tells a site to run ``name@version`` (replacing its previous version of ``name``).

    The rollout plan is signed into the site's Director targets, in the
    custom field of the version's primary file (``custom.airlock.rollout``),
    and with ``change`` the change request's signed authorisation next to
    it (``custom.airlock.change``; see :mod:`airlock.hub.changes._desk`).

    Args:
        ctx: The hub.
        site_id: The site.
        name: The model family.
        version: The version (never a revoked one).
        plan: The rollout plan; None signs the default :class:`RolloutPlan`.
        plan_file: A TOML plan file (:mod:`airlock.hub.catalog._rollout_plans`), read
            inside the audited operation; instead of ``plan``.
        change: The change request it is done under: approved, in Implement,
            covering ``site_id:name@version``, its window not over. Required
            when the hub's ``[change] required`` is true.

    Returns:
        False when the site already had exactly that version under the same
        plan (nothing changed).

    Raises:
        NotFoundError: unknown site or model version.
        ConflictError: the version was revoked.
        UsageError: the plan file is unreadable or invalid, or the change
            request is missing or does not allow this rollout.
    """
    with operation(ctx, "hub.assign", f"{site_id}:{name}@{version}", change or "") as op:
        op.details = {"site_id": site_id, "model": name, "version": version}
        if change is not None:
            op.details["change_request"] = change
        if plan_file is not None:
            if plan is not None:
                raise UsageError("pass either a plan or a plan file, not both")
            op.details["plan_file"] = str(plan_file)
            plan = rollout_plans.read_plan(Path(plan_file))
        plan = plan or RolloutPlan()
        op.details["plan"] = plan.to_dict()
        get_site(op.session, site_id)
        model = catalog.get_model(op.session, name, version)
        check_not_revoked(op.session, name, version, "assign")
        authorization = authorize_assignment(ctx, op.session, change, site_id, name, version)
        current = op.session.get(HubAssignment, (site_id, name))
        signed = load_site_metadata(ctx, site_id)
        if (
            current is not None
            and current.version == version
            and signed.signed_plan(name, version) == plan.to_dict()
            and signed.signed_change(name, version) == authorization
        ):
            op.outcome = "unchanged"
            return False
        op.details["previous"] = current.version if current else None
        _resign_site(ctx, op, site_id, name, model, plan, authorization)
        assigned = utc_iso(ctx.clock.now())
        if current is None:
            current = HubAssignment(site_id=site_id, name=name, version=version, assigned=assigned)
        current.version, current.assigned = version, assigned
        op.session.add(current)
        revoke.remember_plan(op.session, site_id, name, version, plan, assigned)
        return True


def unassign(ctx: HubContext, site_id: str, name: str) -> None:
    """Removes a site's assignment of model family ``name``.

    Raises:
        NotFoundError: unknown site, or no such assignment.
    """
    with operation(ctx, "hub.unassign", f"{site_id}:{name}") as op:
        get_site(op.session, site_id)
        current = op.session.get(HubAssignment, (site_id, name))
        if current is None:
            raise NotFoundError(f"site {site_id!r} has no assignment of model {name!r}")
        op.details = {"site_id": site_id, "model": name, "previous": current.version}
        _resign_site(ctx, op, site_id, name, None)
        op.session.delete(current)


def _resign_site(
    ctx: HubContext,
    op: Operation,
    site_id: str,
    name: str,
    model: ModelVersion | None,
    plan: RolloutPlan | None = None,
    change: dict[str, Any] | None = None,
) -> None:
    site_md = load_site_metadata(ctx, site_id)
    expires = online_expiry(ctx)
    signers = director_signers(ctx)
    director_repo.set_model(site_md, model, name, expires, signers.targets, plan, change)
    director_repo.refresh(site_md, expires, signers)
    site_md.stage(op.writes)
    op.details["director_targets_version"] = site_md.targets.signed.version
