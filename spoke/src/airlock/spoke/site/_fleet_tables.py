"""The spoke's fleet tables: enrolled nodes, what they report, what they are told, rollouts.

Owned by (readers in brackets):

- :class:`EnrolledNode` — ``airlock spoke node enroll`` (service auth, engine).
- :class:`NodeReport`, :class:`MetricWindow` — the service's ingest endpoints
  (engine analysis, status, Prometheus, the metrics export of issue 7).
- :class:`NodeDesired` — the rollout engine: what each node should hold.
- :class:`SiteDirectorFile` — the site director: signed TUF metadata per node
  (and the shared site root under ``node_id = ""``), served by the service.
- :class:`Rollout`, :class:`RolloutEvent`, :class:`FleetModel` — the engine.
- :class:`RolloutPlanRecord` — import: the signed plan each assigned version came with
  (and its change authorisation, when the hub works under change requests).
- :class:`RevokedVersion` — import: versions the hub no longer signs.

JSON columns hold the ``to_dict`` forms of the dataclasses in
:mod:`airlock.bundles.protocol` and :mod:`airlock.bundles.release._rollout_plan`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Column, Index, LargeBinary
from sqlmodel import Field, SQLModel

from airlock.bundles.metrics import MetricsRow


def _json(default: Any = None) -> Any:
    factory = dict if default is None else list
    return Field(default_factory=factory, sa_column=Column(JSON, nullable=False))


class EnrolledNode(SQLModel, table=True):
    """A node whose public key the site admin enrolled; no other node gets anything."""

    __tablename__ = "enrolled_node"

    node_id: str = Field(primary_key=True)
    keyid: str
    public_key: dict[str, Any] = _json()
    labels: dict[str, Any] = _json()
    enrolled_at: str
    enrolled_by: str
    removed_at: str = ""


class NodeReport(SQLModel, table=True):
    """The newest signed version report of each node (the signed document, verbatim)."""

    __tablename__ = "node_report"

    node_id: str = Field(primary_key=True)
    counter: int
    received_at: str
    report: dict[str, Any] = _json()
    """The :class:`airlock.bundles.protocol.SignedDocument` as received."""


class MetricWindow(MetricsRow, table=True):
    """One node's figures for one model version over one report window.

    The figures are :class:`airlock.bundles.metrics.MetricsRow`'s; ``ring`` is the
    rollout ring that ran the version as a candidate when the row arrived, or
    ``stable`` (:func:`airlock.spoke.service._ingest.ring_of`); metrics exports
    group by it.
    """

    __tablename__ = "metric_window"
    __table_args__ = (Index("ix_metric_window_model", "model", "version", "received_at"),)

    id: int | None = Field(default=None, primary_key=True)
    node_id: str = Field(index=True)
    role: str
    received_at: str


class NodeDesired(SQLModel, table=True):
    """What the engine wants a node to hold (NodeModel dicts), and the targets version signed."""

    __tablename__ = "node_desired"

    node_id: str = Field(primary_key=True)
    models: list[dict[str, Any]] = _json([])
    targets_version: int = 0
    updated_at: str = ""


class SiteDirectorFile(SQLModel, table=True):
    """One signed site-director metadata file (``node_id = ""``: the shared site roots)."""

    __tablename__ = "site_director_file"

    node_id: str = Field(primary_key=True)
    name: str = Field(primary_key=True)
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class RolloutPlanRecord(SQLModel, table=True):
    """The plan the hub's Director signed for a version assigned to this site."""

    __tablename__ = "rollout_plan_record"

    model: str = Field(primary_key=True)
    version: str = Field(primary_key=True)
    plan: dict[str, Any] = _json()
    plan_sha256: str = ""
    depends: list[dict[str, Any]] = _json([])
    """The version's signed ``compatibility.depends`` ({model, min_version} dicts)."""
    change: dict[str, Any] = _json()
    """The signed change authorisation (``ChangeAuthorization.to_dict()``; {} when none).

    ``plan_sha256`` covers the plan only; the engine's no-flapping key is
    (model, version, plan_sha256, change number)."""
    bundle_id: str = ""
    recorded_at: str = ""


class RevokedVersion(SQLModel, table=True):
    """A staged version the hub's Image repository no longer signs."""

    __tablename__ = "revoked_version"

    model: str = Field(primary_key=True)
    version: str = Field(primary_key=True)
    reason: str = ""
    revoked_at: str = ""
    bundle_id: str = ""


class FleetModel(SQLModel, table=True):
    """Per model family: the version the whole fleet may fall back to."""

    __tablename__ = "fleet_model"

    model: str = Field(primary_key=True)
    stable_version: str | None = None
    updated_at: str = ""


class Rollout(SQLModel, table=True):
    """One version's rollout across the site's nodes (the engine's persistent state)."""

    __tablename__ = "rollout"

    id: str = Field(primary_key=True)
    model: str = Field(index=True)
    version: str
    from_version: str | None = None
    plan: dict[str, Any] = _json()
    """The plan as the site runs it (after :meth:`RolloutPlan.slowed`)."""
    state: str = "pending"
    """pending, ring, paused, complete, rolled-back, aborted, revoked."""
    ring_index: int = 0
    ring_started_at: str = ""
    last_analysis_at: str = ""
    consecutive_successes: int = 0
    failures: int = 0
    paused_from: str = ""
    reason: str = ""
    created_at: str = ""
    updated_at: str = ""
    bundle_id: str = ""
    extra: dict[str, Any] = _json()


class RolloutEvent(SQLModel, table=True):
    """One step of a rollout's history, with the figures that drove it."""

    __tablename__ = "rollout_event"

    id: int | None = Field(default=None, primary_key=True)
    rollout_id: str = Field(index=True)
    time: str
    kind: str
    details: dict[str, Any] = _json()


FLEET_TABLES: list[type[SQLModel]] = [
    EnrolledNode,
    NodeReport,
    MetricWindow,
    NodeDesired,
    SiteDirectorFile,
    RolloutPlanRecord,
    RevokedVersion,
    FleetModel,
    Rollout,
    RolloutEvent,
]
