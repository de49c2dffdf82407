"""``airlock hub status``: what the hub publishes, and until when.

Read-only; needs no passphrase. Reports every Image role (root, targets,
models, tenant-*, snapshot, timestamp) and the Director root with version and
expiry, flags roles that expire within :data:`WARN_DAYS`, and lists sites
(with their Director targets version and assignments), tenants (with their
families), released models (with their family's tenant, and whether they were
revoked or rolled back at a site: :mod:`airlock.hub.catalog._revocation_view`) and
every revocation.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from tuf.api.metadata import Metadata, Signed

from airlock.bundles import tuf as tufrepo
from airlock.bundles.clock import utc_iso
from airlock.hub.catalog import _revocation_view as revocation_view
from airlock.hub.catalog._catalog import list_models
from airlock.hub.catalog._revocation_view import list_revocations
from airlock.hub.context._context import (
    HubContext,
    load_director_roots,
    load_image_repo,
    load_site_metadata,
)
from airlock.hub.sites._sites import list_sites
from airlock.hub.sites._tenants import family_tenants, list_tenants

WARN_DAYS = 30


def role_info(md: Metadata[Any] | None, now: dt.datetime) -> dict[str, Any]:
    """Version, expiry and days left of one role."""
    if md is None:
        return {"version": None, "expires": None, "days_left": None, "expiring": False}
    signed: Signed = md.signed
    expires = tufrepo.signed_expires(signed)
    days_left = (expires - now).total_seconds() / 86400
    return {
        "version": signed.version,
        "expires": utc_iso(expires),
        "days_left": math.floor(days_left),
        "expiring": days_left < WARN_DAYS,
    }


def hub_status(ctx: HubContext) -> dict[str, Any]:
    """The status report (the ``--json`` shape of ``airlock hub status``)."""
    now = ctx.clock.now()
    image = load_image_repo(ctx)
    director = load_director_roots(ctx)
    roles = {
        "image root": role_info(image.root, now),
        "image targets": role_info(image.targets, now),
        "image models": role_info(image.models, now),
        **{
            f"image {tufrepo.tenant_role(name)}": role_info(md, now)
            for name, md in sorted(image.tenants.items())
        },
        "image snapshot": role_info(image.snapshot, now),
        "image timestamp": role_info(image.timestamp, now),
        "director root": role_info(director.root, now),
    }
    sites = []
    for site in list_sites(ctx):
        entry = site.to_dict()
        entry["director_targets"] = role_info(load_site_metadata(ctx, site.site_id).targets, now)
        sites.append(entry)
    tenant_of = family_tenants(ctx)
    flags = revocation_view.version_flags(ctx.engine)
    models = [
        {
            "name": m.name,
            "version": m.version,
            "tenant": tenant_of.get(m.name),
            "files": len(m.files),
            "bytes": sum(f.length for f in m.files),
            **revocation_view.fields(flags, m.name, m.version),
        }
        for m in list_models(ctx)
    ]
    return {
        "home": str(ctx.home.root),
        "now": utc_iso(now),
        "roles": roles,
        "sites": sites,
        "tenants": [t.to_dict() for t in list_tenants(ctx)],
        "models": models,
        "revocations": list_revocations(ctx),
    }
