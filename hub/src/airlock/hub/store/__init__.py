"""The hub's home directory and its database tables (the bottom layer).

Modules here are private (``_name.py``); other components import the names below.
"""

from airlock.hub.store._fleet_tables import (
    HubFleetAlert,
    HubMetricsCell,
    HubMetricsImport,
    HubMetricsTotal,
    HubReferenceDistribution,
    HubSiteRollback,
)
from airlock.hub.store._home import PASSPHRASE_ENV
from airlock.hub.store._tables import HubExport, HubRevocation

__all__ = [
    "PASSPHRASE_ENV",
    "HubExport",
    "HubFleetAlert",
    "HubMetricsCell",
    "HubMetricsImport",
    "HubMetricsTotal",
    "HubReferenceDistribution",
    "HubRevocation",
    "HubSiteRollback",
]
