"""The hub's tables for what sites send back: imports, figures, references, alerts.

- :class:`HubMetricsImport` — ``airlock hub import-metrics``: one row per
  imported bundle (per site, sequence unique), with the site's checkpoint and
  the hub's cosignature on it (the newest row per site is what the hub has
  witnessed and acknowledges in the site's next Director metadata).
- :class:`HubMetricsCell`, :class:`HubMetricsTotal` — the figures of each
  import, as the site sent them (per model version, ring and window; totals
  per model version and window across rings).
- :class:`HubReferenceDistribution` — per model version, the prediction and
  confidence distribution of its signed validation set (the drift reference),
  computed once.
- :class:`HubSiteRollback` — per site, the versions whose newest rollout
  there was rolled back, as the site's newest metrics bundle reported them
  (replaced with each import); a revocation never falls back to one of them.
- :class:`HubFleetAlert` — drift or error-rate limits a model version is
  beyond; an alert opens once (event + audit entry) and closes when the
  figures are back within limits.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from airlock.bundles.metrics import MetricsRow


def _json(default: Any = None) -> Any:
    factory = dict if default is None else list
    return Field(default_factory=factory, sa_column=Column(JSON, nullable=False))


class HubMetricsImport(SQLModel, table=True):
    """One metrics bundle imported from a site."""

    __tablename__ = "hub_metrics_import"
    __table_args__ = (UniqueConstraint("site_id", "sequence"),)

    id: int | None = Field(default=None, primary_key=True)
    site_id: str = Field(index=True)
    sequence: int
    bundle_id: str
    created: str
    imported_at: str
    window_start: str
    window_end: str
    payload_sha256: str
    k: int
    noise: dict[str, Any] = _json()
    """The payload's :class:`~airlock.bundles.metrics._model.NoiseSpec` dict ({} when none)."""
    suppressed_cells: int = 0
    suppressed_totals: int = 0
    missing_sequences: list[int] = _json([])
    """Sequences skipped since the previous import (lost media): reported, not refused."""
    checkpoint_size: int
    checkpoint_root: str
    """Hex Merkle root."""
    checkpoint_note: str
    """The site's signed checkpoint, as received."""
    cosigned_note: str
    """The same note with the hub's witness cosignature added."""
    consistency: str = ""
    """How the checkpoint was checked: ``first`` (trust on first use) or ``proof from N``."""


class HubMetricsCell(MetricsRow, table=True):
    """One (model version, ring, window) cell of an import (the figures: :class:`MetricsRow`)."""

    __tablename__ = "hub_metrics_cell"
    __table_args__ = (Index("ix_hub_metrics_cell_model", "model", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    import_id: int = Field(foreign_key="hub_metrics_import.id", index=True)
    site_id: str
    nodes: int


class HubMetricsTotal(SQLModel, table=True):
    """One (model version, window) site-wide total of an import."""

    __tablename__ = "hub_metrics_total"

    id: int | None = Field(default=None, primary_key=True)
    import_id: int = Field(foreign_key="hub_metrics_import.id", index=True)
    site_id: str
    model: str
    version: str
    window_start: str
    window_end: str
    nodes: int
    requests: int = 0
    errors: int = 0


class HubReferenceDistribution(SQLModel, table=True):
    """A model version's answers on its own validation set: what drift is measured against."""

    __tablename__ = "hub_reference_distribution"

    model: str = Field(primary_key=True)
    version: str = Field(primary_key=True)
    validation_sha256: str
    source: str
    """``validation-set`` (the model run on its signed validation set) or ``expected-labels``."""
    predictions: dict[str, Any] = _json()
    confidence: dict[str, Any] = _json()
    rows: int = 0
    computed_at: str = ""


class HubFleetAlert(SQLModel, table=True):
    """A model version beyond a configured limit (drift or error rate)."""

    __tablename__ = "hub_fleet_alert"

    id: int | None = Field(default=None, primary_key=True)
    model: str = Field(index=True)
    version: str
    kind: str
    """``drift`` or ``error-rate``."""
    value: float
    limit: float
    opened_at: str
    closed_at: str = ""
    event_id: str = ""


class HubSiteRollback(SQLModel, table=True):
    """A version a site reported as rolled back (its newest rollout there ended so)."""

    __tablename__ = "hub_site_rollback"

    site_id: str = Field(primary_key=True)
    model: str = Field(primary_key=True)
    version: str = Field(primary_key=True)
    rolled_back_at: str
    reported_sequence: int
    """The metrics bundle that reported it."""


FLEET_TABLES: list[type[SQLModel]] = [
    HubMetricsImport,
    HubMetricsCell,
    HubMetricsTotal,
    HubReferenceDistribution,
    HubFleetAlert,
    HubSiteRollback,
]
