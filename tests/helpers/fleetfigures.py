"""Fleet figures as an import stores them, for the fleet report and alert tests.

:func:`add_import` writes what ``airlock hub import-metrics`` stores for one
site's bundle (an import row, its cells and totals) straight into a hub's
database, so that report and alert tests choose their figures exactly.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlmodel import Session

from airlock.bundles.clock import utc_iso
from airlock.bundles.metrics import LatencySketch
from airlock.hub.context import HubContext
from airlock.hub.fleet import FleetReport, fleet_report, reference_distribution
from airlock.hub.store import HubMetricsCell, HubMetricsImport, HubMetricsTotal

WINDOW = dt.timedelta(hours=1)


def cell(
    model: str,
    version: str,
    ring: str,
    *,
    requests: int,
    errors: int = 0,
    latencies: Sequence[float] = (),
    predictions: dict[str, int] | None = None,
    confidence: dict[str, int] | None = None,
    nodes: int = 5,
) -> dict[str, Any]:
    """One cell's figures (window and site are filled in by :func:`add_import`)."""
    return {
        "model": model,
        "version": version,
        "ring": ring,
        "nodes": nodes,
        "requests": requests,
        "errors": errors,
        "latency": LatencySketch.of(latencies).to_dict(),
        "predictions": predictions or {},
        "confidence": confidence or {},
    }


def add_import(
    hub: HubContext,
    site_id: str,
    sequence: int,
    end: dt.datetime,
    cells: Sequence[dict[str, Any]],
    totals: Sequence[dict[str, Any]] = (),
    *,
    missing: Sequence[int] = (),
    checkpoint_size: int = 40,
    session: Session | None = None,
) -> None:
    """Stores one import of ``site_id`` covering the hour before ``end``, as an import does.

    With ``session`` the rows join it (flushed, not committed), as inside ``import-metrics``;
    without, they are committed on their own.
    """
    if session is None:
        with Session(hub.engine) as own:
            add_import(
                hub,
                site_id,
                sequence,
                end,
                cells,
                totals,
                missing=missing,
                checkpoint_size=checkpoint_size,
                session=own,
            )
            own.commit()
        return
    window = {"window_start": utc_iso(end - WINDOW), "window_end": utc_iso(end)}
    row = HubMetricsImport(
        site_id=site_id,
        sequence=sequence,
        bundle_id=f"metrics-{site_id}-{sequence}",
        created=utc_iso(end),
        imported_at=utc_iso(end + dt.timedelta(minutes=5)),
        payload_sha256="ab" * 32,
        k=5,
        missing_sequences=list(missing),
        checkpoint_size=checkpoint_size,
        checkpoint_root="cd" * 32,
        checkpoint_note="note",
        cosigned_note="note",
        consistency="first" if sequence == 1 else f"proof from {checkpoint_size - 1}",
        **window,
    )
    session.add(row)
    session.flush()
    assert row.id is not None
    for figures in cells:
        session.add(HubMetricsCell(import_id=row.id, site_id=site_id, **window, **figures))
    for figures in totals:
        session.add(HubMetricsTotal(import_id=row.id, site_id=site_id, **window, **figures))
    session.flush()


def report_of(hub: HubContext, **options: Any) -> FleetReport:
    with Session(hub.engine) as session:
        result = fleet_report(session, hub, now=hub.clock.now(), **options)
        session.commit()
    return result


def reference_of(hub: HubContext, model: str, version: str) -> dict[str, int]:
    with Session(hub.engine) as session:
        ref = reference_distribution(session, hub, model, version)
        assert ref is not None
        session.commit()
        return dict(ref.predictions)


def scaled(counts: dict[str, int], factor: int) -> dict[str, int]:
    return {k: v * factor for k, v in counts.items()}
