"""The hub's database tables (SQLModel), next to the shared audit log table.

The database holds what the hub decided (sites, tenants and their keys,
model families and their tenant, released model versions and their files,
assignments, revocations, per-site bundle sequence numbers and what each
export carried, change requests and their approvers' keys);
the signed TUF metadata that publishes those decisions lives as files under
``repository/``. Table names start with ``hub_`` so that a hub and a spoke
can share one PostgreSQL server without clashing.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from airlock.bundles.audit import AuditCheckpoint, AuditRecord
from airlock.bundles.events import OutboxEvent
from airlock.hub.store._fleet_tables import FLEET_TABLES


class HubSite(SQLModel, table=True):
    """A registered site: its public keys and bundle policy."""

    __tablename__ = "hub_site"

    site_id: str = Field(primary_key=True)
    age_recipient: str
    signing_keyid: str
    signing_key: str  # JSON of the securesystemslib public key dict
    transit_days: int
    encrypt: bool = True
    sequence: int = 0  # the sequence number of the last exported bundle
    created: str


class HubTenant(SQLModel, table=True):
    """A tenant: its delegated Image role ``tenant-<name>`` and the key that signs it."""

    __tablename__ = "hub_tenant"

    name: str = Field(primary_key=True)
    keyid: str
    key_uri: str
    public_key: str  # JSON of the securesystemslib public key dict
    held_by: str  # "hub" (encrypted with the hub passphrase) or "tenant"
    created: str


class HubFamily(SQLModel, table=True):
    """A model family and the tenant it belongs to (for good: a family never moves)."""

    __tablename__ = "hub_family"

    name: str = Field(primary_key=True)
    tenant: str = Field(foreign_key="hub_tenant.name", index=True)
    created: str


class HubModelVersion(SQLModel, table=True):
    """A released, immutable model version."""

    __tablename__ = "hub_model_version"

    name: str = Field(primary_key=True, foreign_key="hub_family.name")
    version: str = Field(primary_key=True)
    created: str
    release: str = "{}"
    """The signed release record (lineage, validation, compatibility) as JSON."""


class HubModelFile(SQLModel, table=True):
    """One file of a model version, stored as ``blobs/sha256/<sha256>``."""

    __tablename__ = "hub_model_file"

    name: str = Field(primary_key=True)
    version: str = Field(primary_key=True)
    filename: str = Field(primary_key=True)
    sha256: str = Field(index=True)
    length: int
    primary: bool = False
    kind: str = "model"


class HubAssignment(SQLModel, table=True):
    """Which version of a model family a site should run (one per site and family)."""

    __tablename__ = "hub_assignment"

    site_id: str = Field(primary_key=True, foreign_key="hub_site.site_id")
    name: str = Field(primary_key=True, foreign_key="hub_family.name")
    version: str
    assigned: str


class HubSignedPlan(SQLModel, table=True):
    """The rollout plan last signed for a version at a site (reused when a revocation falls back).

    A site that already rolled a version back refuses to roll it out again under
    the same plan (no flapping); re-pointing a site at that version after a
    revocation must therefore carry the plan it had, not a new default one.
    """

    __tablename__ = "hub_signed_plan"

    site_id: str = Field(primary_key=True, foreign_key="hub_site.site_id")
    name: str = Field(primary_key=True)
    version: str = Field(primary_key=True)
    plan: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    signed_at: str


class HubRevocation(SQLModel, table=True):
    """A revoked model version: never assigned or released again, listed to every site."""

    __tablename__ = "hub_revocation"

    name: str = Field(primary_key=True)
    version: str = Field(primary_key=True)
    reason: str
    revoked_at: str
    principal: str


class HubExport(SQLModel, table=True):
    """One bundle exported to a site."""

    __tablename__ = "hub_export"

    site_id: str = Field(primary_key=True, foreign_key="hub_site.site_id")
    sequence: int = Field(primary_key=True)
    bundle_id: str
    kind: str
    full: bool = False
    """Exported with ``--full``: every assigned version's files, whatever was sent before."""
    revocations: int = 0
    """How many revocations the hub had recorded (the bundle lists them all)."""
    created: str


class HubSentFile(SQLModel, table=True):
    """A file of a model version that a bundle carried to a site (the newest such bundle)."""

    __tablename__ = "hub_sent_file"

    site_id: str = Field(primary_key=True, foreign_key="hub_site.site_id")
    name: str = Field(primary_key=True)
    version: str = Field(primary_key=True)
    filename: str = Field(primary_key=True)
    sha256: str
    sequence: int


class HubChangeRequest(SQLModel, table=True):
    """A change request (:mod:`airlock.hub.changes._changes`), after ServiceNow's record."""

    __tablename__ = "hub_change_request"

    number: str = Field(primary_key=True)
    type: str
    state: str = Field(index=True)
    short_description: str
    justification: str = ""
    requested_by: str = Field(index=True)
    assignment_group: str = ""
    approvers: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    """Who may approve it (empty: any registered approver but the requester)."""
    approval: str = "not requested"
    approved_by: str = ""
    approved_at: str = ""
    approval_keyid: str = ""
    approval_signature: str = ""
    approval_source: str = ""
    """``approver`` (the approver's own key) or ``servicenow`` (imported; signed by the hub)."""
    rejection_reason: str = ""
    planned_start: str
    planned_end: str
    covers: list[dict[str, str]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    """The rollout plans it covers: ``{"site", "model", "version"}``."""
    source: str = "airlock"
    """``airlock`` (created here) or ``servicenow`` (imported)."""
    sys_id: str = ""
    created: str
    updated: str


class HubChangeApprover(SQLModel, table=True):
    """A change approver's registered Ed25519 public key."""

    __tablename__ = "hub_change_approver"

    name: str = Field(primary_key=True)
    keyid: str
    public_key: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    added: str
    added_by: str


HUB_TABLES: list[type[SQLModel]] = [
    AuditRecord,
    AuditCheckpoint,
    OutboxEvent,
    HubSite,
    HubTenant,
    HubFamily,
    HubModelVersion,
    HubModelFile,
    HubAssignment,
    HubSignedPlan,
    HubRevocation,
    HubExport,
    HubSentFile,
    HubChangeRequest,
    HubChangeApprover,
    *FLEET_TABLES,
]
