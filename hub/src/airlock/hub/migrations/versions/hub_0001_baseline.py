"""Baseline: the hub's schema as the release before schema migrations made it.

Exactly the tables and indexes that ``create_all`` made from the hub's
SQLModel classes (and the shared ``bundles`` tables the hub uses: audit log
and checkpoints, event outbox) in that release; frozen here, so later model
changes never alter it. Every table and index is created only if missing:
on a database made by that release (tables but no ``alembic_version``) this
revision adopts what is there, and adds any table its release did not have
yet, the way every open used to.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "hub_0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


INDEXES: tuple[tuple[str, str, tuple[str, ...], bool], ...] = (
    ("ix_audit_log_action", "audit_log", ("action",), False),
    ("ix_audit_log_action_time", "audit_log", ("action", "time"), False),
    ("ix_audit_log_bundle_id", "audit_log", ("bundle_id",), False),
    ("ix_audit_log_change_request", "audit_log", ("change_request",), False),
    ("ix_audit_log_event_id", "audit_log", ("event_id",), True),
    ("ix_audit_log_model", "audit_log", ("model",), False),
    ("ix_audit_log_node", "audit_log", ("node",), False),
    ("ix_audit_log_object", "audit_log", ("object",), False),
    ("ix_audit_log_outcome", "audit_log", ("outcome",), False),
    ("ix_audit_log_principal", "audit_log", ("principal",), False),
    ("ix_audit_log_rollout_id", "audit_log", ("rollout_id",), False),
    ("ix_audit_log_site", "audit_log", ("site",), False),
    ("ix_audit_log_time", "audit_log", ("time",), False),
    ("ix_audit_log_version", "audit_log", ("version",), False),
    ("ix_event_outbox_event_id", "event_outbox", ("event_id",), True),
    ("ix_event_outbox_time", "event_outbox", ("time",), False),
    ("ix_event_outbox_type", "event_outbox", ("type",), False),
    ("ix_hub_change_request_requested_by", "hub_change_request", ("requested_by",), False),
    ("ix_hub_change_request_state", "hub_change_request", ("state",), False),
    ("ix_hub_fleet_alert_model", "hub_fleet_alert", ("model",), False),
    ("ix_hub_metrics_import_site_id", "hub_metrics_import", ("site_id",), False),
    ("ix_hub_model_file_sha256", "hub_model_file", ("sha256",), False),
    ("ix_hub_family_tenant", "hub_family", ("tenant",), False),
    ("ix_hub_metrics_cell_import_id", "hub_metrics_cell", ("import_id",), False),
    ("ix_hub_metrics_cell_model", "hub_metrics_cell", ("model", "version"), False),
    ("ix_hub_metrics_total_import_id", "hub_metrics_total", ("import_id",), False),
)
"""Every index of the tables above: name, table, columns, unique."""


def upgrade() -> None:
    """Creates whatever of the baseline schema is missing."""
    op.create_table(
        "audit_checkpoint",
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("root_hash", sa.String(), nullable=False),
        sa.Column("note", sa.String(), nullable=False),
        sa.Column("created", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("size"),
        if_not_exists=True,
    )
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.String(), nullable=False),
        sa.Column("time", sa.String(), nullable=False),
        sa.Column("component", sa.String(), nullable=False),
        sa.Column("principal", sa.String(), nullable=False),
        sa.Column("action", sa.String(), nullable=False),
        sa.Column("object", sa.String(), nullable=False),
        sa.Column("outcome", sa.String(), nullable=False),
        sa.Column("site", sa.String(), nullable=False),
        sa.Column("node", sa.String(), nullable=False),
        sa.Column("host", sa.String(), nullable=False),
        sa.Column("change_request", sa.String(), nullable=False),
        sa.Column("model", sa.String(), nullable=False),
        sa.Column("version", sa.String(), nullable=False),
        sa.Column("bundle_id", sa.String(), nullable=False),
        sa.Column("rollout_id", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("details", sa.String(), nullable=False),
        sa.Column("leaf_hash", sa.String(), nullable=False),
        sa.Column("chain_hash", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
        if_not_exists=True,
    )
    op.create_table(
        "event_outbox",
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.String(), nullable=False),
        sa.Column("type", sa.String(), nullable=False),
        sa.Column("subject", sa.String(), nullable=False),
        sa.Column("time", sa.String(), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("written_at", sa.String(), nullable=False),
        sa.Column("delivered_at", sa.String(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.String(), nullable=False),
        sa.Column("last_error", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
        if_not_exists=True,
    )
    op.create_table(
        "hub_change_approver",
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("keyid", sa.String(), nullable=False),
        sa.Column("public_key", sa.JSON(), nullable=False),
        sa.Column("added", sa.String(), nullable=False),
        sa.Column("added_by", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
        if_not_exists=True,
    )
    op.create_table(
        "hub_change_request",
        sa.Column("number", sa.String(), nullable=False),
        sa.Column("type", sa.String(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("short_description", sa.String(), nullable=False),
        sa.Column("justification", sa.String(), nullable=False),
        sa.Column("requested_by", sa.String(), nullable=False),
        sa.Column("assignment_group", sa.String(), nullable=False),
        sa.Column("approvers", sa.JSON(), nullable=False),
        sa.Column("approval", sa.String(), nullable=False),
        sa.Column("approved_by", sa.String(), nullable=False),
        sa.Column("approved_at", sa.String(), nullable=False),
        sa.Column("approval_keyid", sa.String(), nullable=False),
        sa.Column("approval_signature", sa.String(), nullable=False),
        sa.Column("approval_source", sa.String(), nullable=False),
        sa.Column("rejection_reason", sa.String(), nullable=False),
        sa.Column("planned_start", sa.String(), nullable=False),
        sa.Column("planned_end", sa.String(), nullable=False),
        sa.Column("covers", sa.JSON(), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("sys_id", sa.String(), nullable=False),
        sa.Column("created", sa.String(), nullable=False),
        sa.Column("updated", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("number"),
        if_not_exists=True,
    )
    op.create_table(
        "hub_fleet_alert",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(), nullable=False),
        sa.Column("version", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("limit", sa.Float(), nullable=False),
        sa.Column("opened_at", sa.String(), nullable=False),
        sa.Column("closed_at", sa.String(), nullable=False),
        sa.Column("event_id", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        if_not_exists=True,
    )
    op.create_table(
        "hub_metrics_import",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.String(), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("bundle_id", sa.String(), nullable=False),
        sa.Column("created", sa.String(), nullable=False),
        sa.Column("imported_at", sa.String(), nullable=False),
        sa.Column("window_start", sa.String(), nullable=False),
        sa.Column("window_end", sa.String(), nullable=False),
        sa.Column("payload_sha256", sa.String(), nullable=False),
        sa.Column("k", sa.Integer(), nullable=False),
        sa.Column("noise", sa.JSON(), nullable=False),
        sa.Column("suppressed_cells", sa.Integer(), nullable=False),
        sa.Column("suppressed_totals", sa.Integer(), nullable=False),
        sa.Column("missing_sequences", sa.JSON(), nullable=False),
        sa.Column("checkpoint_size", sa.Integer(), nullable=False),
        sa.Column("checkpoint_root", sa.String(), nullable=False),
        sa.Column("checkpoint_note", sa.String(), nullable=False),
        sa.Column("cosigned_note", sa.String(), nullable=False),
        sa.Column("consistency", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("site_id", "sequence"),
        if_not_exists=True,
    )
    op.create_table(
        "hub_model_file",
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("version", sa.String(), nullable=False),
        sa.Column("filename", sa.String(), nullable=False),
        sa.Column("sha256", sa.String(), nullable=False),
        sa.Column("length", sa.Integer(), nullable=False),
        sa.Column("primary", sa.Boolean(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("name", "version", "filename"),
        if_not_exists=True,
    )
    op.create_table(
        "hub_reference_distribution",
        sa.Column("model", sa.String(), nullable=False),
        sa.Column("version", sa.String(), nullable=False),
        sa.Column("validation_sha256", sa.String(), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("predictions", sa.JSON(), nullable=False),
        sa.Column("confidence", sa.JSON(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("computed_at", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("model", "version"),
        if_not_exists=True,
    )
    op.create_table(
        "hub_revocation",
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("version", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("revoked_at", sa.String(), nullable=False),
        sa.Column("principal", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("name", "version"),
        if_not_exists=True,
    )
    op.create_table(
        "hub_site",
        sa.Column("site_id", sa.String(), nullable=False),
        sa.Column("age_recipient", sa.String(), nullable=False),
        sa.Column("signing_keyid", sa.String(), nullable=False),
        sa.Column("signing_key", sa.String(), nullable=False),
        sa.Column("transit_days", sa.Integer(), nullable=False),
        sa.Column("encrypt", sa.Boolean(), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("created", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("site_id"),
        if_not_exists=True,
    )
    op.create_table(
        "hub_site_rollback",
        sa.Column("site_id", sa.String(), nullable=False),
        sa.Column("model", sa.String(), nullable=False),
        sa.Column("version", sa.String(), nullable=False),
        sa.Column("rolled_back_at", sa.String(), nullable=False),
        sa.Column("reported_sequence", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("site_id", "model", "version"),
        if_not_exists=True,
    )
    op.create_table(
        "hub_tenant",
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("keyid", sa.String(), nullable=False),
        sa.Column("key_uri", sa.String(), nullable=False),
        sa.Column("public_key", sa.String(), nullable=False),
        sa.Column("held_by", sa.String(), nullable=False),
        sa.Column("created", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
        if_not_exists=True,
    )
    op.create_table(
        "hub_export",
        sa.Column("site_id", sa.String(), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("bundle_id", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("full", sa.Boolean(), nullable=False),
        sa.Column("revocations", sa.Integer(), nullable=False),
        sa.Column("created", sa.String(), nullable=False),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["hub_site.site_id"],
        ),
        sa.PrimaryKeyConstraint("site_id", "sequence"),
        if_not_exists=True,
    )
    op.create_table(
        "hub_family",
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("tenant", sa.String(), nullable=False),
        sa.Column("created", sa.String(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant"],
            ["hub_tenant.name"],
        ),
        sa.PrimaryKeyConstraint("name"),
        if_not_exists=True,
    )
    op.create_table(
        "hub_metrics_cell",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("import_id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.String(), nullable=False),
        sa.Column("model", sa.String(), nullable=False),
        sa.Column("version", sa.String(), nullable=False),
        sa.Column("ring", sa.String(), nullable=False),
        sa.Column("window_start", sa.String(), nullable=False),
        sa.Column("window_end", sa.String(), nullable=False),
        sa.Column("nodes", sa.Integer(), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("errors", sa.Integer(), nullable=False),
        sa.Column("latency", sa.JSON(), nullable=False),
        sa.Column("predictions", sa.JSON(), nullable=False),
        sa.Column("confidence", sa.JSON(), nullable=False),
        sa.Column("shadow_compared", sa.Integer(), nullable=False),
        sa.Column("shadow_disagreed", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["import_id"],
            ["hub_metrics_import.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        if_not_exists=True,
    )
    op.create_table(
        "hub_metrics_total",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("import_id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.String(), nullable=False),
        sa.Column("model", sa.String(), nullable=False),
        sa.Column("version", sa.String(), nullable=False),
        sa.Column("window_start", sa.String(), nullable=False),
        sa.Column("window_end", sa.String(), nullable=False),
        sa.Column("nodes", sa.Integer(), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("errors", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["import_id"],
            ["hub_metrics_import.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        if_not_exists=True,
    )
    op.create_table(
        "hub_sent_file",
        sa.Column("site_id", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("version", sa.String(), nullable=False),
        sa.Column("filename", sa.String(), nullable=False),
        sa.Column("sha256", sa.String(), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["hub_site.site_id"],
        ),
        sa.PrimaryKeyConstraint("site_id", "name", "version", "filename"),
        if_not_exists=True,
    )
    op.create_table(
        "hub_signed_plan",
        sa.Column("site_id", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("version", sa.String(), nullable=False),
        sa.Column("plan", sa.JSON(), nullable=False),
        sa.Column("signed_at", sa.String(), nullable=False),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["hub_site.site_id"],
        ),
        sa.PrimaryKeyConstraint("site_id", "name", "version"),
        if_not_exists=True,
    )
    op.create_table(
        "hub_assignment",
        sa.Column("site_id", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("version", sa.String(), nullable=False),
        sa.Column("assigned", sa.String(), nullable=False),
        sa.ForeignKeyConstraint(
            ["name"],
            ["hub_family.name"],
        ),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["hub_site.site_id"],
        ),
        sa.PrimaryKeyConstraint("site_id", "name"),
        if_not_exists=True,
    )
    op.create_table(
        "hub_model_version",
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("version", sa.String(), nullable=False),
        sa.Column("created", sa.String(), nullable=False),
        sa.Column("release", sa.String(), nullable=False),
        sa.ForeignKeyConstraint(
            ["name"],
            ["hub_family.name"],
        ),
        sa.PrimaryKeyConstraint("name", "version"),
        if_not_exists=True,
    )
    for name, table, columns, unique in INDEXES:
        op.create_index(name, table, list(columns), unique=unique, if_not_exists=True)
