"""The metrics export: nodes' figures aggregated, anonymised (k-anonymity, optional
differential privacy), signed and encrypted to the hub.

Modules here are private (``_name.py``); other components import the names below.
"""

from airlock.spoke.metrics._aggregate import (
    OTHER_LABEL,
    CellGroup,
    TotalGroup,
    aggregate,
    sanitise_labels,
    totals_of,
    window_floor,
)
from airlock.spoke.metrics._anonymise import Anonymised, anonymise, check_k
from airlock.spoke.metrics._export import export_metrics
from airlock.spoke.metrics._noise import CONFIDENCE_DOMAIN, add_noise
from airlock.spoke.metrics._plan import plan_metrics

__all__ = [
    "CONFIDENCE_DOMAIN",
    "OTHER_LABEL",
    "Anonymised",
    "CellGroup",
    "TotalGroup",
    "add_noise",
    "aggregate",
    "anonymise",
    "check_k",
    "export_metrics",
    "plan_metrics",
    "sanitise_labels",
    "totals_of",
    "window_floor",
]
