"""The spoke's tables for the return path: what the hub told it, and what it sent.

- :class:`HubReturnRecord` — import: the newest ``x-airlock-return`` Director
  field (the hub's age recipient, its witness key, the checkpoint it last
  acknowledged), one row.
- :class:`MetricsExportRecord` — ``airlock spoke export-metrics``: one row per
  metrics bundle written (sequence, window covered, the checkpoint it carried).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel


class HubReturnRecord(SQLModel, table=True):
    """Where metrics go and what the hub last acknowledged (from verified Director metadata)."""

    __tablename__ = "hub_return"

    id: int = Field(default=1, primary_key=True)
    hub_recipient: str
    witness_name: str
    witness_key: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False)
    )
    acknowledged_sequence: int = 0
    acknowledged_size: int = 0
    acknowledged_note: str = ""
    """The site's own checkpoint as the hub cosigned it ("" until the first acknowledgement)."""
    bundle_id: str = ""
    """The hub bundle that carried this record."""
    updated_at: str = ""


class MetricsExportRecord(SQLModel, table=True):
    """One metrics bundle this site wrote."""

    __tablename__ = "metrics_export"

    sequence: int = Field(primary_key=True)
    bundle_id: str
    created: str
    window_start: str
    window_end: str
    checkpoint_size: int
    checkpoint_root: str
    """Hex Merkle root of the checkpoint the bundle carried."""
    payload_sha256: str
    cells: int = 0
    suppressed_cells: int = 0
    suppressed_totals: int = 0
    epsilon: float | None = None
    out_path: str = ""


RETURN_TABLES: list[type[SQLModel]] = [HubReturnRecord, MetricsExportRecord]
