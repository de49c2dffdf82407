"""What each site reported as rolled back, and how revocations avoid it.

A site's metrics bundle carries the versions whose newest rollout there
ended rolled back (:mod:`airlock.bundles.metrics._outcomes`). The hub keeps
the newest list per site (:class:`~airlock.hub.store._fleet_tables.HubSiteRollback`,
replaced with each import: :func:`store`), shows it in ``hub status`` and
``hub model list/show``, and a revocation never re-points a site at a
version that site rolled back (:func:`rolled_back_at_site`, used by
:mod:`airlock.hub.revocation._revoke`).
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlmodel import Session, col, select

from airlock.bundles.metrics import RolledBackVersion
from airlock.hub.store._fleet_tables import HubSiteRollback


def store(
    session: Session, site_id: str, sequence: int, reported: Iterable[RolledBackVersion]
) -> None:
    """Replaces the site's rolled-back versions with those of metrics bundle ``sequence``."""
    for old in session.exec(select(HubSiteRollback).where(HubSiteRollback.site_id == site_id)):
        session.delete(old)
    session.flush()
    for item in reported:
        session.add(
            HubSiteRollback(
                site_id=site_id,
                model=item.model,
                version=item.version,
                rolled_back_at=item.rolled_back_at,
                reported_sequence=sequence,
            )
        )


def rolled_back_at_site(session: Session, site_id: str, model: str) -> set[str]:
    """The versions of ``model`` that ``site_id`` reported as rolled back."""
    rows = session.exec(
        select(HubSiteRollback.version).where(
            HubSiteRollback.site_id == site_id, HubSiteRollback.model == model
        )
    )
    return set(rows)


def rolled_back_by_version(session: Session) -> dict[tuple[str, str], list[dict[str, str]]]:
    """(model, version) → the sites that reported it rolled back (``site_id``, ``at``)."""
    found: dict[tuple[str, str], list[dict[str, str]]] = {}
    query = select(HubSiteRollback).order_by(col(HubSiteRollback.site_id))
    for row in session.exec(query):
        entry = {"site_id": row.site_id, "rolled_back_at": row.rolled_back_at}
        found.setdefault((row.model, row.version), []).append(entry)
    return found
