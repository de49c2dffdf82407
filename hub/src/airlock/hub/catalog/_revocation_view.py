"""How revocations and site rollbacks show in ``hub status`` and ``hub model list/show``.

Every model version shown carries two fields (tables and ``--json``):

- ``revoked``: null, or ``{"reason", "revoked_at", "principal"}`` — the
  version was revoked and is never signed, assigned or released again;
- ``rolled_back_at``: the sites whose newest rollout of the version ended
  rolled back, as their newest metrics bundle reported it
  (``[{"site_id", "rolled_back_at"}]``); a revocation never falls back to it
  at those sites.

``hub status`` also lists every revocation (``revocations``: ``model``,
``version``, ``reason``, ``revoked_at``, oldest first).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, select

from airlock.bundles import tuf as tufrepo
from airlock.bundles.errors import ConflictError
from airlock.hub.catalog import _site_rollbacks as site_rollbacks
from airlock.hub.context._context import HubContext
from airlock.hub.store._tables import HubRevocation

Flags = dict[tuple[str, str], dict[str, Any]]


def version_flags(engine: Engine) -> Flags:
    """(model, version) → ``{"revoked": …, "rolled_back_at": […]}`` for every flagged version."""
    flags: Flags = {}
    with Session(engine) as session:
        for row in session.exec(select(HubRevocation)):
            entry = flags.setdefault((row.name, row.version), _empty())
            entry["revoked"] = {
                "reason": row.reason,
                "revoked_at": row.revoked_at,
                "principal": row.principal,
            }
        for key, sites in site_rollbacks.rolled_back_by_version(session).items():
            flags.setdefault(key, _empty())["rolled_back_at"] = sites
    return flags


def _empty() -> dict[str, Any]:
    return {"revoked": None, "rolled_back_at": []}


def fields(flags: Flags, name: str, version: str) -> dict[str, Any]:
    """The two fields of one version (for its JSON form)."""
    return dict(flags.get((name, version)) or _empty())


def label(flags: Mapping[tuple[str, str], Mapping[str, Any]], name: str, version: str) -> str:
    """A short status for tables: ``REVOKED <time>: <reason>``, rolled-back sites, or ``ok``."""
    entry = flags.get((name, version))
    if not entry:
        return "ok"
    parts = []
    revoked = entry.get("revoked")
    if revoked:
        parts.append(f"REVOKED {revoked['revoked_at']}: {revoked['reason']}")
    sites = entry.get("rolled_back_at") or []
    if sites:
        parts.append("rolled back at " + ", ".join(s["site_id"] for s in sites))
    return "; ".join(parts) or "ok"


def revocation_entries(session: Session) -> list[dict[str, str]]:
    """Every revocation as an ``x-airlock-revocations`` entry, oldest first."""
    rows = session.exec(select(HubRevocation))
    ordered = sorted(rows, key=lambda r: (r.revoked_at, r.name, r.version))
    return [tufrepo.revocation_entry(r.name, r.version, r.reason, r.revoked_at) for r in ordered]


def revocation_count(session: Session) -> int:
    """How many versions were ever revoked."""
    return len(list(session.exec(select(HubRevocation.name))))


def check_not_revoked(session: Session, name: str, version: str, doing: str) -> None:
    """Refuses to ``doing`` (e.g. "assign") a revoked version.

    Raises:
        ConflictError: ``name@version`` was revoked (the message gives when and why).
    """
    row = session.get(HubRevocation, (name, version))
    if row is not None:
        raise ConflictError(
            f"cannot {doing} {name}@{version}: it was revoked at {row.revoked_at} ({row.reason})",
            hint="a revoked version is never used again; release the fix as a new version",
        )


def list_revocations(ctx: HubContext) -> list[dict[str, str]]:
    """Every revocation (``model``, ``version``, ``reason``, ``revoked_at``), oldest first."""
    with Session(ctx.engine) as session:
        return revocation_entries(session)
