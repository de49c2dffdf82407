"""``airlock hub report fleet``: what the fleet's figures say about each model version.

Per model version, across every site and ring whose imported figures
(:mod:`airlock.hub.store._fleet_tables`) fall in the period (windows ending after
``since``; by default the last ``lookback_days``):

- request volume, errors and error rate: per import and window, the site's
  total (:class:`HubMetricsTotal`, which also covers rings whose cells were
  suppressed) or, when it sent none, the sum of its cells;
- latency p50/p95/p99 from the cells' sketches merged
  (:meth:`LatencySketch.merged`, within the sketch's 2 % bound);
- the prediction and confidence distributions, the reference they are
  compared with (:mod:`airlock.hub.fleet._reference`) and the drift: the
  Jensen–Shannon distance between the two (and the same for confidence);
- a breakdown per (site, ring), a timeline per window, the open alerts;
- a status judged on these figures with the ``[fleet]`` limits: ``ok``,
  ``error-rate``, ``drift``, ``insufficient data`` (fewer than
  ``min_requests``: no verdict) or ``no reference``.

Each site's freshness (newest import, the window it ended, sequences never
received, the witnessed checkpoint) is listed whatever the filters.
:mod:`airlock.hub.cli._fleet` shows the report as tables, JSON or HTML.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlmodel import Session, col, select

from airlock.bundles.clock import utc_iso
from airlock.bundles.errors import UsageError
from airlock.bundles.metrics import LatencySketch
from airlock.bundles.release import version_tuple
from airlock.hub.context._context import HubContext
from airlock.hub.fleet._limits import FleetLimits
from airlock.hub.fleet._reference import js_distance, reference_distribution
from airlock.hub.store._fleet_tables import (
    HubFleetAlert,
    HubMetricsCell,
    HubMetricsImport,
    HubMetricsTotal,
)
from airlock.hub.store._tables import HubSite

QUANTILES = {"p50": 0.5, "p95": 0.95, "p99": 0.99}
STATUSES = ("ok", "drift", "error-rate", "insufficient data", "no reference")


@dataclass(frozen=True)
class GroupFigures:
    """One (site, ring) of a version: its cells added up."""

    site_id: str
    ring: str
    windows: int
    nodes: int
    """The most nodes any one window covered."""
    requests: int
    errors: int
    error_rate: float | None
    latency: dict[str, float | None]
    predictions: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


@dataclass(frozen=True)
class VersionReport:
    """One model version's fleet figures, its reference, drift and status."""

    model: str
    version: str
    sites: list[str]
    rings: list[str]
    requests: int
    errors: int
    error_rate: float | None
    latency: dict[str, float | None]
    predictions: dict[str, int]
    confidence: dict[str, int]
    reference: dict[str, Any] | None
    drift: float | None
    confidence_drift: float | None
    status: str
    groups: list[GroupFigures] = field(default_factory=list)
    timeline: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ref(self) -> str:
        """``model@version``."""
        return f"{self.model}@{self.version}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"ref": self.ref, **asdict(self)}


@dataclass(frozen=True)
class SiteFreshness:
    """How recent a site's figures are, and what never arrived."""

    site_id: str
    last_sequence: int = 0
    window_end: str = ""
    imported_at: str = ""
    missing_sequences: list[int] = field(default_factory=list)
    checkpoint_size: int = 0
    consistency: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


@dataclass(frozen=True)
class FleetReport:
    """The whole report: limits, versions, site freshness."""

    generated_at: str
    since: str
    model: str | None
    limits: FleetLimits
    versions: list[VersionReport]
    sites: list[SiteFreshness]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "generated_at": self.generated_at,
            "since": self.since,
            "model": self.model,
            "limits": self.limits.to_dict(),
            "versions": [v.to_dict() for v in self.versions],
            "sites": [s.to_dict() for s in self.sites],
        }


def fleet_report(
    session: Session,
    ctx: HubContext,
    *,
    model: str | None = None,
    since: dt.datetime | None = None,
    now: dt.datetime,
) -> FleetReport:
    """The fleet report over windows ending after ``since`` (default: the lookback).

    References computed for the first time are added to ``session`` (commit to cache them).

    Raises:
        UsageError: a ``[fleet]`` setting is malformed.
    """
    limits = FleetLimits.from_config(ctx.config)
    since = since or now - dt.timedelta(days=limits.lookback_days)
    cells, totals = _load(session, since, model=model)
    refs = {(c.model, c.version) for c in cells} | {(t.model, t.version) for t in totals}
    versions = [
        _version(session, ctx, ref, cells, totals, limits)
        for ref in sorted(refs, key=lambda r: (r[0], _version_key(r[1])))
    ]
    return FleetReport(utc_iso(now), utc_iso(since), model, limits, versions, _freshness(session))


def judge(
    session: Session,
    ctx: HubContext,
    refs: Iterable[tuple[str, str]],
    *,
    since: dt.datetime,
    limits: FleetLimits,
) -> list[VersionReport]:
    """The figures and status of each of ``refs`` that has figures after ``since``."""
    wanted = set(refs)
    reports = []
    for name in sorted({m for m, _ in wanted}):
        cells, totals = _load(session, since, model=name)
        present = {(c.model, c.version) for c in cells} | {(t.model, t.version) for t in totals}
        for ref in sorted(wanted & present):
            reports.append(_version(session, ctx, ref, cells, totals, limits))
    return reports


def _load(
    session: Session, since: dt.datetime, *, model: str | None
) -> tuple[list[HubMetricsCell], list[HubMetricsTotal]]:
    """Cells and totals whose window ends after ``since`` (times are ``…Z`` text: sortable)."""
    start = utc_iso(since)
    cell_query = select(HubMetricsCell).where(col(HubMetricsCell.window_end) > start)
    total_query = select(HubMetricsTotal).where(col(HubMetricsTotal.window_end) > start)
    if model is not None:
        cell_query = cell_query.where(HubMetricsCell.model == model)
        total_query = total_query.where(HubMetricsTotal.model == model)
    return list(session.exec(cell_query)), list(session.exec(total_query))


def _version_key(version: str) -> tuple[int, Any]:
    try:
        return (0, version_tuple(version))
    except UsageError:
        return (1, version)


def _version(
    session: Session,
    ctx: HubContext,
    ref: tuple[str, str],
    all_cells: list[HubMetricsCell],
    all_totals: list[HubMetricsTotal],
    limits: FleetLimits,
) -> VersionReport:
    cells = [c for c in all_cells if (c.model, c.version) == ref]
    totals = [t for t in all_totals if (t.model, t.version) == ref]
    volume = _volume(cells, totals)
    requests = sum(r for r, _ in volume.values())
    errors = sum(e for _, e in volume.values())
    predictions = _added(c.predictions for c in cells)
    confidence = _added(c.confidence for c in cells)
    reference = reference_distribution(session, ctx, *ref)
    drift = js_distance(predictions, reference.predictions) if reference else None
    confidence_drift = js_distance(confidence, reference.confidence) if reference else None
    rate = _rate(errors, requests)
    timeline: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for (_, start, end), (r, e) in volume.items():
        timeline[(start, end)][0] += r
        timeline[(start, end)][1] += e
    alerts = session.exec(
        select(HubFleetAlert).where(
            HubFleetAlert.model == ref[0],
            HubFleetAlert.version == ref[1],
            HubFleetAlert.closed_at == "",
        )
    )
    return VersionReport(
        model=ref[0],
        version=ref[1],
        sites=sorted({c.site_id for c in cells} | {t.site_id for t in totals}),
        rings=sorted({c.ring for c in cells}),
        requests=requests,
        errors=errors,
        error_rate=rate,
        latency=_quantiles(cells),
        predictions=predictions,
        confidence=confidence,
        reference=_reference_dict(reference),
        drift=drift,
        confidence_drift=confidence_drift,
        status=_status(requests, rate, reference is not None, drift, limits),
        groups=_groups(cells),
        timeline=[
            {"window_start": s, "window_end": e, "requests": r, "errors": n}
            for (s, e), (r, n) in sorted(timeline.items())
        ],
        alerts=[a.model_dump() for a in alerts],
    )


def _status(
    requests: int, rate: float | None, has_reference: bool, drift: float | None, limits: FleetLimits
) -> str:
    """The verdict: no verdict below ``min_requests``; the error rate before drift."""
    if requests < limits.min_requests:
        return "insufficient data"
    if rate is not None and rate > limits.error_rate_limit:
        return "error-rate"
    if not has_reference:
        return "no reference"
    if drift is None:  # only site totals: no predictions to compare
        return "insufficient data"
    return "drift" if drift > limits.drift_limit else "ok"


def _volume(
    cells: list[HubMetricsCell], totals: list[HubMetricsTotal]
) -> dict[tuple[int, str, str], tuple[int, int]]:
    """(import, window start, end) → (requests, errors): the site total, else its cells' sum."""
    volume: dict[tuple[int, str, str], tuple[int, int]] = {}
    for cell in cells:
        key = (cell.import_id, cell.window_start, cell.window_end)
        requests, errors = volume.get(key, (0, 0))
        volume[key] = (requests + cell.requests, errors + cell.errors)
    for total in totals:
        volume[(total.import_id, total.window_start, total.window_end)] = (0, 0)
    for total in totals:
        key = (total.import_id, total.window_start, total.window_end)
        requests, errors = volume[key]
        volume[key] = (requests + total.requests, errors + total.errors)
    return volume


def _rate(errors: int, requests: int) -> float | None:
    return min(1.0, errors / requests) if requests > 0 else None


def _added(maps: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for counts in maps:
        for key, value in counts.items():
            out[key] = out.get(key, 0) + int(value)
    return dict(sorted(out.items()))


def _quantiles(cells: Iterable[HubMetricsCell]) -> dict[str, float | None]:
    sketch = LatencySketch.merged(LatencySketch.from_dict(c.latency) for c in cells)
    return {name: sketch.quantile(q) for name, q in QUANTILES.items()}


def _groups(cells: list[HubMetricsCell]) -> list[GroupFigures]:
    by_group: dict[tuple[str, str], list[HubMetricsCell]] = defaultdict(list)
    for cell in cells:
        by_group[(cell.site_id, cell.ring)].append(cell)
    groups = []
    for (site_id, ring), members in sorted(by_group.items()):
        requests = sum(c.requests for c in members)
        errors = sum(c.errors for c in members)
        groups.append(
            GroupFigures(
                site_id=site_id,
                ring=ring,
                windows=len({(c.import_id, c.window_start) for c in members}),
                nodes=max(c.nodes for c in members),
                requests=requests,
                errors=errors,
                error_rate=_rate(errors, requests),
                latency=_quantiles(members),
                predictions=_added(c.predictions for c in members),
            )
        )
    return groups


def _reference_dict(reference: Any) -> dict[str, Any] | None:
    if reference is None:
        return None
    return {
        "source": reference.source,
        "rows": reference.rows,
        "validation_sha256": reference.validation_sha256,
        "computed_at": reference.computed_at,
        "predictions": dict(sorted(reference.predictions.items())),
        "confidence": dict(sorted(reference.confidence.items())),
    }


def _freshness(session: Session) -> list[SiteFreshness]:
    newest: dict[str, HubMetricsImport] = {}
    missing: dict[str, set[int]] = defaultdict(set)
    for row in session.exec(select(HubMetricsImport)):
        missing[row.site_id].update(row.missing_sequences)
        if row.site_id not in newest or row.sequence > newest[row.site_id].sequence:
            newest[row.site_id] = row
    site_ids = {s.site_id for s in session.exec(select(HubSite))} | set(newest)
    out = []
    for site_id in sorted(site_ids):
        last = newest.get(site_id)
        if last is None:
            out.append(SiteFreshness(site_id))
            continue
        out.append(
            SiteFreshness(
                site_id=site_id,
                last_sequence=last.sequence,
                window_end=last.window_end,
                imported_at=last.imported_at,
                missing_sequences=sorted(missing[site_id]),
                checkpoint_size=last.checkpoint_size,
                consistency=last.consistency,
            )
        )
    return out
