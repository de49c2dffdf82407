"""The return path and the fleet view: importing metrics bundles, fleet reports,
reference distributions and fleet alerts.

Modules here are private (``_name.py``); other components import the names below.
"""

from airlock.hub.fleet._alerts import ALERT_ACTION, evaluate_alerts
from airlock.hub.fleet._limits import FleetLimits
from airlock.hub.fleet._metrics_import import import_metrics
from airlock.hub.fleet._reference import (
    EXPECTED_LABELS,
    VALIDATION_SET,
    js_distance,
    reference_distribution,
)
from airlock.hub.fleet._report import FleetReport, fleet_report

__all__ = [
    "ALERT_ACTION",
    "EXPECTED_LABELS",
    "VALIDATION_SET",
    "FleetLimits",
    "FleetReport",
    "evaluate_alerts",
    "fleet_report",
    "import_metrics",
    "js_distance",
    "reference_distribution",
]
