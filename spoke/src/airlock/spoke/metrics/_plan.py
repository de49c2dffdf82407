"""What a metrics export would send: settings, sequence, window, aggregates (steps 1-4).

:func:`plan_metrics` reads the spoke's database and writes nothing; it is
what ``airlock spoke export-metrics --dry-run`` shows and what
:func:`airlock.spoke.metrics._export.export_metrics` then signs, encrypts and
writes (see that module for the whole export, numbered):

1. Settings, ``[metrics]`` in ``airlock.toml`` (env ``AIRLOCK_METRICS_*``):
   ``k`` (default 5), ``window_minutes`` (60), ``epsilon`` (unset: no noise)
   and ``transit_days`` (90). ``--k`` may raise the site's k, never lower it;
   ε must be > 0.
2. The hub's return path (:class:`~airlock.spoke.site._return_tables.HubReturnRecord`),
   and the checkpoint the hub acknowledged last, checked against the local log
   (:func:`~airlock.bundles.audit._witness.check_witnessed`: the hub's
   cosignature, the site's signature, and a local log at least that long
   whose first entries have its root). A log that is shorter or differs was
   truncated or rewritten after the hub saw it: nothing is exported
   (:class:`~airlock.bundles.errors.LogConsistencyError`, exit 22).
3. Sequence and window: the last export's sequence + 1, from the end of the
   last export's window to now; a clock behind that, or behind the spoke's
   time floor, is refused.
4. The metric windows received in that window, summed per model version,
   ring and window and anonymised (k-suppression, complementary cells).
   Node ids stay in :attr:`MetricsPlan.groups`, which is never printed or sent.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session, col, func, select

from airlock.bundles.audit import HubReturnRecord, WitnessedCheckpoint, check_witnessed, home_origin
from airlock.bundles.clock import parse_utc, utc_iso
from airlock.bundles.config import HomeConfig
from airlock.bundles.errors import MediaError, UsageError
from airlock.bundles.metrics import (
    DEFAULT_K,
    DEFAULT_TRANSIT_DAYS,
    ConsistencyProof,
    MetricsPayload,
    NoiseSpec,
    RolledBackVersion,
)
from airlock.spoke.metrics._aggregate import CellGroup, aggregate, totals_of, window_floor
from airlock.spoke.metrics._anonymise import Anonymised, anonymise, check_k
from airlock.spoke.site._fleet_tables import MetricWindow, Rollout
from airlock.spoke.site._home import SpokeHome
from airlock.spoke.site._return_tables import MetricsExportRecord
from airlock.spoke.site._tables import STATE_ID, SpokeState

DEFAULT_WINDOW_MINUTES = 60
NO_RETURN_HINT = (
    "import a bundle from the hub first (`airlock spoke import`): it tells the site "
    "where metrics go"
)


@dataclass(frozen=True)
class MetricsSettings:
    """The ``[metrics]`` settings of a spoke home."""

    k: int = DEFAULT_K
    window_minutes: int = DEFAULT_WINDOW_MINUTES
    epsilon: float | None = None
    transit_days: int = DEFAULT_TRANSIT_DAYS


def _number(config: HomeConfig, name: str, default: Any, kind: type[int] | type[float]) -> Any:
    value = config.get(f"metrics.{name}", default)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        number = kind(str(value).strip()) if not isinstance(value, bool) else None
    except ValueError:
        number = None
    if number is None or not number > 0:
        raise UsageError(
            f"[metrics] {name} must be a positive number, not {value!r}",
            hint=f"fix airlock.toml or AIRLOCK_METRICS_{name.upper()}",
        )
    return number


def load_settings(config: HomeConfig) -> MetricsSettings:
    """Reads and checks ``[metrics]`` (see the module docstring).

    Raises:
        UsageError: a setting is not a positive number, or k is out of range.
    """
    return MetricsSettings(
        k=check_k(_number(config, "k", DEFAULT_K, int)),
        window_minutes=_number(config, "window_minutes", DEFAULT_WINDOW_MINUTES, int),
        epsilon=_number(config, "epsilon", None, float),
        transit_days=_number(config, "transit_days", DEFAULT_TRANSIT_DAYS, int),
    )


@dataclass(frozen=True)
class MetricsPlan:
    """What an export would send (steps 1-4), before noise; node ids only in ``groups``."""

    site_id: str
    sequence: int
    created: dt.datetime
    window_start: dt.datetime
    window_end: dt.datetime
    window_minutes: int
    k: int
    noise: NoiseSpec | None
    rows: int
    """How many metric windows the export covers."""
    anonymised: Anonymised
    """The cells and totals that would leave (counts before noise, when noise is on)."""
    hub_recipient: str
    proof_from: tuple[int, ...]
    """The checkpoint sizes the hub may have seen last: the proofs start there."""
    transit_days: int
    groups: tuple[CellGroup, ...] = field(repr=False)
    """The aggregated groups with their node ids: never printed, never sent."""
    rolled_back: tuple[RolledBackVersion, ...] = ()
    """Versions whose newest rollout here was rolled back (:func:`rolled_back_versions`)."""

    def payload(
        self,
        anonymised: Anonymised | None = None,
        checkpoint: str = "",
        consistency: tuple[ConsistencyProof, ...] = (),
    ) -> MetricsPayload:
        """The payload (by default this plan's preview: no checkpoint or proofs yet)."""
        shown = anonymised or self.anonymised
        return MetricsPayload(
            site_id=self.site_id,
            sequence=self.sequence,
            created=utc_iso(self.created),
            window_start=utc_iso(self.window_start),
            window_end=utc_iso(self.window_end),
            window_minutes=self.window_minutes,
            k=self.k,
            cells=shown.cells,
            totals=shown.totals,
            suppressed_cells=shown.suppressed_cells,
            suppressed_totals=shown.suppressed_totals,
            noise=self.noise,
            checkpoint=checkpoint,
            consistency=consistency,
            rolled_back=self.rolled_back,
        )

    def to_dict(self) -> dict[str, Any]:
        """A summary (no node ids): sequence, window, counts, k, noise, proofs planned."""
        return {
            "site_id": self.site_id,
            "sequence": self.sequence,
            "window": {"start": utc_iso(self.window_start), "end": utc_iso(self.window_end)},
            "window_minutes": self.window_minutes,
            "rows": self.rows,
            "cells": len(self.anonymised.cells),
            "totals": len(self.anonymised.totals),
            "suppressed_cells": self.anonymised.suppressed_cells,
            "suppressed_totals": self.anonymised.suppressed_totals,
            "suppression_reasons": list(self.anonymised.reasons),
            "k": self.k,
            "noise": self.noise.to_dict() if self.noise else None,
            "consistency_from": list(self.proof_from),
            "rolled_back": [r.to_dict() for r in self.rolled_back],
        }


def plan_metrics(
    home: SpokeHome, now: dt.datetime, *, epsilon: float | None = None, k: int | None = None
) -> MetricsPlan:
    """Steps 1-4 of the module docstring; reads only, writes nothing.

    Raises:
        UsageError: no return path yet, ``k`` below the site's, ε not > 0, a bad
            setting, or a clock earlier than the last export's window end.
        LogConsistencyError: the local audit log is shorter than, or differs
            from, the checkpoint the hub acknowledged.
    """
    settings = load_settings(home.config)
    if k is not None and k < settings.k:
        raise UsageError(
            f"--k {k} is below this site's k of {settings.k}",
            hint="--k may only raise k; lower [metrics] k in airlock.toml if that is policy",
        )
    chosen_k = check_k(k if k is not None else settings.k)
    noise = _noise(epsilon if epsilon is not None else settings.epsilon)
    end = parse_utc(utc_iso(now))
    with Session(home.engine) as session:
        hub = session.get(HubReturnRecord, 1)
        if hub is None:
            raise UsageError("the hub's metrics recipient is not known yet", hint=NO_RETURN_HINT)
        _check_acknowledged(home, hub)
        exports = list(session.exec(select(MetricsExportRecord)))
        last = max(exports, key=lambda r: r.sequence, default=None)
        start = parse_utc(last.window_end) if last else _first_start(session, settings, end)
        _check_clock(session, start, end)
        rows = list(
            session.exec(
                select(MetricWindow).where(
                    col(MetricWindow.received_at) >= utc_iso(start),
                    col(MetricWindow.received_at) < utc_iso(end),
                )
            )
        )
        rolled_back = rolled_back_versions(session)
        sizes = {hub.acknowledged_size}
        sizes |= {r.checkpoint_size for r in exports if r.sequence > hub.acknowledged_sequence}
    groups = aggregate(rows, start, end, settings.window_minutes) if end > start else []
    return MetricsPlan(
        site_id=home.site_id,
        sequence=(last.sequence if last else 0) + 1,
        created=end,
        window_start=start,
        window_end=end,
        window_minutes=settings.window_minutes,
        k=chosen_k,
        noise=noise,
        rows=len(rows),
        anonymised=anonymise(groups, totals_of(groups), chosen_k),
        hub_recipient=hub.hub_recipient,
        proof_from=tuple(sorted(s for s in sizes if s > 0)),
        transit_days=settings.transit_days,
        groups=tuple(groups),
        rolled_back=rolled_back,
    )


def rolled_back_versions(session: Session) -> tuple[RolledBackVersion, ...]:
    """Every version whose newest rollout at this site ended rolled back, with when."""
    newest: dict[tuple[str, str], Rollout] = {}
    for rollout in session.exec(select(Rollout)):
        key = (rollout.model, rollout.version)
        if key not in newest or (rollout.created_at, rollout.id) > (
            newest[key].created_at,
            newest[key].id,
        ):
            newest[key] = rollout
    return tuple(
        RolledBackVersion(r.model, r.version, r.updated_at or r.created_at)
        for key, r in sorted(newest.items())
        if r.state == "rolled-back"
    )


def _check_acknowledged(home: SpokeHome, hub: HubReturnRecord) -> None:
    """Refuses to export from a log shorter than, or other than, what the hub acknowledged."""
    if not hub.acknowledged_note:
        return
    witnessed = WitnessedCheckpoint(
        hub.acknowledged_note, hub.witness_name, dict(hub.witness_key), hub.acknowledged_size
    )
    keys = {home_origin(home.config): home.signing_key().public_key}
    check_witnessed(home.engine, witnessed, keys)


def _noise(epsilon: float | None) -> NoiseSpec | None:
    if epsilon is None:
        return None
    try:
        return NoiseSpec(float(epsilon))
    except MediaError:
        raise UsageError(
            f"epsilon must be a number > 0 (at most 100), not {epsilon!r}",
            hint="e.g. --epsilon 1.0; smaller means more noise",
        ) from None


def _first_start(session: Session, settings: MetricsSettings, end: dt.datetime) -> dt.datetime:
    earliest = session.exec(select(func.min(MetricWindow.received_at))).one()
    if not earliest:
        return end
    return min(window_floor(parse_utc(str(earliest)), settings.window_minutes), end)


def _check_clock(session: Session, start: dt.datetime, end: dt.datetime) -> None:
    state = session.get(SpokeState, STATE_ID)
    floor = dt.datetime.fromisoformat(state.time_floor) if state and state.time_floor else None
    if end < start or (floor is not None and end < floor.replace(microsecond=0)):
        raise UsageError(
            f"the local clock reads {utc_iso(end)}, earlier than the last export's window "
            f"end or the newest verified time",
            hint="the clock was set back; fix the system clock, then export again",
        )
