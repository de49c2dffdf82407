"""The spoke's tables for the return path: what the hub told it, and what it sent.

- :class:`HubReturnRecord` — import: the newest ``x-airlock-return`` Director
  field (the hub's age recipient, its witness key, the checkpoint it last
  acknowledged), one row. Defined in :mod:`airlock.bundles.audit._witness`
  (``airlock audit verify`` checks the acknowledged checkpoint) and re-exported here.
- :class:`MetricsExportRecord` — ``airlock spoke export-metrics``: one row per
  metrics bundle written (sequence, window covered, the checkpoint it carried).
"""

from __future__ import annotations

from sqlmodel import Field, SQLModel

from airlock.bundles.audit import HubReturnRecord


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


__all__ = ["RETURN_TABLES", "HubReturnRecord", "MetricsExportRecord"]

RETURN_TABLES: list[type[SQLModel]] = [HubReturnRecord, MetricsExportRecord]
