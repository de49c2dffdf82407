"""How long this site has been cut off from the hub, and what that means for its nodes.

Part of ``airlock spoke status``. The last bundle's time is the spoke's time
floor (the newest time the hub signed); the end of its transit budget is the
expiry of the trusted Image timestamp (the hub makes it expire with the
bundle). Past that budget the nodes run on the site director's freshness
statement (:mod:`airlock.bundles.protocol`), which only the running
spoke service re-issues; past :data:`LONG_CUT_OFF_DAYS` the warning is
strong; when the Image root or top-level targets expire, nodes install
nothing new until a re-signed root arrives.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlmodel import Session
from tuf.api.metadata import Metadata

from airlock.bundles.clock import utc_iso
from airlock.bundles.tuf import IMAGE
from airlock.spoke.site._tables import TrustedMetadataFile

LONG_CUT_OFF_DAYS = 90


def cut_off(session: Session, time_floor: str, now: dt.datetime) -> dict[str, Any]:
    """The cut-off report: days since the last bundle, the relevant expiries, warnings."""
    expiries = {
        name: _expires(session, f"{name}.json") for name in ("timestamp", "root", "targets")
    }
    report: dict[str, Any] = {
        "last_bundle": time_floor or None,
        "days_since_last_bundle": None,
        "transit_budget_ends": _iso(expiries["timestamp"]),
        "image_root_expires": _iso(expiries["root"]),
        "image_targets_expires": _iso(expiries["targets"]),
        "warnings": [],
    }
    warnings: list[str] = report["warnings"]
    try:
        last = dt.datetime.fromisoformat(time_floor.replace("Z", "+00:00")).astimezone(dt.UTC)
    except ValueError:
        return report
    days = (now - last).days
    report["days_since_last_bundle"] = days
    budget_end = expiries["timestamp"]
    if days > LONG_CUT_OFF_DAYS:
        warnings.append(
            f"STRONG: no bundle from the hub for {days} days (over {LONG_CUT_OFF_DAYS}): "
            "nodes still run on the site's freshness statement, but no revocation can "
            "reach this site; import a bundle as soon as possible"
        )
    elif budget_end is not None and now >= budget_end:
        warnings.append(
            f"cut off past the transit budget ({days} days since the last bundle): nodes run "
            "on the site's freshness statement; keep `airlock spoke serve` running and "
            "import a bundle from the hub"
        )
    for role in ("root", "targets"):
        expires = expiries[role]
        if expires is not None and now >= expires:
            warnings.append(
                f"the hub's Image {role} expired {utc_iso(expires)}: nodes install nothing new "
                "and no node can enrol until a bundle with re-signed roots is imported"
            )
    return report


def _expires(session: Session, name: str) -> dt.datetime | None:
    row = session.get(TrustedMetadataFile, (IMAGE, name))
    if row is None:
        return None
    try:
        return Metadata.from_bytes(bytes(row.data)).signed.expires.astimezone(dt.UTC)
    except (ValueError, TypeError):
        return None


def _iso(when: dt.datetime | None) -> str | None:
    return None if when is None else utc_iso(when)
