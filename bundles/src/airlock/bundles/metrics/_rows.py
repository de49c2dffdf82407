"""The metrics row: the columns a table of metric figures has, on the spoke and at the hub.

A spoke stores what each node reports per window (``metric_window``); the hub
stores what each site sent per ring (``hub_metrics_cell``). Both rows carry the
same figures under the same names as :class:`~airlock.bundles.metrics.MetricsCell`,
so :meth:`MetricsCell.to_dict` fills a row and a row's columns aggregate into a
cell. The tables subclass :class:`MetricsRow` (``table=True``) and add their own
keys (node or import, site).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON
from sqlmodel import Field, SQLModel


def json_field() -> Any:
    """A non-null JSON column holding a dict (``{}`` by default).

    The column is declared by type (``sa_type``), not as a shared ``Column``, so
    that every table inheriting it gets a column of its own.
    """
    return Field(default_factory=dict, sa_type=JSON, nullable=False)


class MetricsRow(SQLModel):
    """One model version's figures over one window (a node's, or a ring's at a site).

    Attributes:
        model, version: The model version the figures are about.
        ring: The rollout ring that ran it (``stable`` outside a rollout; "" when unknown).
        window_start, window_end: The window, UTC ISO-8601.
        requests, errors: Counts.
        latency: A :class:`~airlock.bundles.metrics.LatencySketch` in ``to_dict`` form.
        predictions: Predicted class (or value bucket) → count.
        confidence: Confidence bucket → count.
        shadow_compared, shadow_disagreed: Shadow-mode comparisons and disagreements.
    """

    model: str
    version: str
    ring: str = ""
    window_start: str
    window_end: str
    requests: int = 0
    errors: int = 0
    latency: dict[str, Any] = json_field()
    predictions: dict[str, Any] = json_field()
    confidence: dict[str, Any] = json_field()
    shadow_compared: int = 0
    shadow_disagreed: int = 0
