"""Baseline: the spoke's schema as the release before schema migrations made it.

Exactly the tables and indexes that ``create_all`` made from the spoke's
SQLModel classes (and the shared ``bundles`` tables the spoke uses: audit log
and checkpoints, event outbox, the hub's witness record) in that release;
frozen here, so later model changes never alter it. Every table and index is
created only if missing: on a database made by that release (tables but no
``alembic_version``) this revision adopts what is there, and adds any table its
release did not have yet, the way every open used to.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "spoke_0001"
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
    ("ix_metric_window_model", "metric_window", ("model", "version", "received_at"), False),
    ("ix_metric_window_node_id", "metric_window", ("node_id",), False),
    ("ix_rollout_model", "rollout", ("model",), False),
    ("ix_rollout_event_rollout_id", "rollout_event", ("rollout_id",), False),
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
        "director_assignment",
        sa.Column("path", sa.String(), nullable=False),
        sa.Column("model", sa.String(), nullable=False),
        sa.Column("version", sa.String(), nullable=False),
        sa.Column("filename", sa.String(), nullable=False),
        sa.Column("sha256", sa.String(), nullable=False),
        sa.Column("length", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("path"),
        if_not_exists=True,
    )
    op.create_table(
        "enrolled_node",
        sa.Column("node_id", sa.String(), nullable=False),
        sa.Column("keyid", sa.String(), nullable=False),
        sa.Column("public_key", sa.JSON(), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("enrolled_at", sa.String(), nullable=False),
        sa.Column("enrolled_by", sa.String(), nullable=False),
        sa.Column("removed_at", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("node_id"),
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
        "fleet_model",
        sa.Column("model", sa.String(), nullable=False),
        sa.Column("stable_version", sa.String(), nullable=True),
        sa.Column("updated_at", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("model"),
        if_not_exists=True,
    )
    op.create_table(
        "hub_return",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("hub_recipient", sa.String(), nullable=False),
        sa.Column("witness_name", sa.String(), nullable=False),
        sa.Column("witness_key", sa.JSON(), nullable=False),
        sa.Column("acknowledged_sequence", sa.Integer(), nullable=False),
        sa.Column("acknowledged_size", sa.Integer(), nullable=False),
        sa.Column("acknowledged_note", sa.String(), nullable=False),
        sa.Column("bundle_id", sa.String(), nullable=False),
        sa.Column("updated_at", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        if_not_exists=True,
    )
    op.create_table(
        "metric_window",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("node_id", sa.String(), nullable=False),
        sa.Column("model", sa.String(), nullable=False),
        sa.Column("version", sa.String(), nullable=False),
        sa.Column("role", sa.String(), nullable=False),
        sa.Column("ring", sa.String(), nullable=False),
        sa.Column("window_start", sa.String(), nullable=False),
        sa.Column("window_end", sa.String(), nullable=False),
        sa.Column("received_at", sa.String(), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("errors", sa.Integer(), nullable=False),
        sa.Column("latency", sa.JSON(), nullable=False),
        sa.Column("predictions", sa.JSON(), nullable=False),
        sa.Column("confidence", sa.JSON(), nullable=False),
        sa.Column("shadow_compared", sa.Integer(), nullable=False),
        sa.Column("shadow_disagreed", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        if_not_exists=True,
    )
    op.create_table(
        "metrics_export",
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("bundle_id", sa.String(), nullable=False),
        sa.Column("created", sa.String(), nullable=False),
        sa.Column("window_start", sa.String(), nullable=False),
        sa.Column("window_end", sa.String(), nullable=False),
        sa.Column("checkpoint_size", sa.Integer(), nullable=False),
        sa.Column("checkpoint_root", sa.String(), nullable=False),
        sa.Column("payload_sha256", sa.String(), nullable=False),
        sa.Column("cells", sa.Integer(), nullable=False),
        sa.Column("suppressed_cells", sa.Integer(), nullable=False),
        sa.Column("suppressed_totals", sa.Integer(), nullable=False),
        sa.Column("epsilon", sa.Float(), nullable=True),
        sa.Column("out_path", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("sequence"),
        if_not_exists=True,
    )
    op.create_table(
        "node_desired",
        sa.Column("node_id", sa.String(), nullable=False),
        sa.Column("models", sa.JSON(), nullable=False),
        sa.Column("targets_version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("node_id"),
        if_not_exists=True,
    )
    op.create_table(
        "node_report",
        sa.Column("node_id", sa.String(), nullable=False),
        sa.Column("counter", sa.Integer(), nullable=False),
        sa.Column("received_at", sa.String(), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("node_id"),
        if_not_exists=True,
    )
    op.create_table(
        "revoked_version",
        sa.Column("model", sa.String(), nullable=False),
        sa.Column("version", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("revoked_at", sa.String(), nullable=False),
        sa.Column("bundle_id", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("model", "version"),
        if_not_exists=True,
    )
    op.create_table(
        "rollout",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("model", sa.String(), nullable=False),
        sa.Column("version", sa.String(), nullable=False),
        sa.Column("from_version", sa.String(), nullable=True),
        sa.Column("plan", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("ring_index", sa.Integer(), nullable=False),
        sa.Column("ring_started_at", sa.String(), nullable=False),
        sa.Column("last_analysis_at", sa.String(), nullable=False),
        sa.Column("consecutive_successes", sa.Integer(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("paused_from", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("created_at", sa.String(), nullable=False),
        sa.Column("updated_at", sa.String(), nullable=False),
        sa.Column("bundle_id", sa.String(), nullable=False),
        sa.Column("extra", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        if_not_exists=True,
    )
    op.create_table(
        "rollout_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rollout_id", sa.String(), nullable=False),
        sa.Column("time", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        if_not_exists=True,
    )
    op.create_table(
        "rollout_plan_record",
        sa.Column("model", sa.String(), nullable=False),
        sa.Column("version", sa.String(), nullable=False),
        sa.Column("plan", sa.JSON(), nullable=False),
        sa.Column("plan_sha256", sa.String(), nullable=False),
        sa.Column("depends", sa.JSON(), nullable=False),
        sa.Column("change", sa.JSON(), nullable=False),
        sa.Column("bundle_id", sa.String(), nullable=False),
        sa.Column("recorded_at", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("model", "version"),
        if_not_exists=True,
    )
    op.create_table(
        "site_director_file",
        sa.Column("node_id", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("node_id", "name"),
        if_not_exists=True,
    )
    op.create_table(
        "spoke_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.String(), nullable=False),
        sa.Column("last_sequence", sa.Integer(), nullable=False),
        sa.Column("last_bundle_id", sa.String(), nullable=False),
        sa.Column("time_floor", sa.String(), nullable=False),
        sa.Column("image_root_version", sa.Integer(), nullable=False),
        sa.Column("director_root_version", sa.Integer(), nullable=False),
        sa.Column("director_targets_version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        if_not_exists=True,
    )
    op.create_table(
        "staged_model",
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("version", sa.String(), nullable=False),
        sa.Column("files", sa.String(), nullable=False),
        sa.Column("bundle_id", sa.String(), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("staged_at", sa.String(), nullable=False),
        sa.Column("gate", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("name", "version"),
        if_not_exists=True,
    )
    op.create_table(
        "trusted_metadata",
        sa.Column("repository", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("repository", "name"),
        if_not_exists=True,
    )
    for name, table, columns, unique in INDEXES:
        op.create_index(name, table, list(columns), unique=unique, if_not_exists=True)
