"""The site's home and state: the home directory, every database table of the spoke,
``spoke init``, and the site's own trust-state actions (time floor, cut-off).

Modules here are private (``_name.py``); other components import the names below.
Only the fixed names (``._names``) load with the package; the rest is imported on
first use (:mod:`airlock.bundles.lazy`), so that a command can start opening the
site's identity (``._unlock``) before it loads the database.
"""

from typing import TYPE_CHECKING

from airlock.bundles.lazy import lazy_exports
from airlock.spoke.site._names import (
    AGE_IDENTITY_FILE,
    IDENTITY_FILE,
    PASSPHRASE_ENV,
    SIGNING_KEY_FILE,
    SIGNING_KEYREF_FILE,
)

if TYPE_CHECKING:
    from airlock.spoke.site._fleet_tables import (
        EnrolledNode,
        FleetModel,
        MetricWindow,
        NodeDesired,
        NodeReport,
        RevokedVersion,
        Rollout,
        RolloutEvent,
        RolloutPlanRecord,
        SiteDirectorFile,
    )
    from airlock.spoke.site._floor_reset import reset_floor
    from airlock.spoke.site._home import SpokeHome
    from airlock.spoke.site._init import init_spoke
    from airlock.spoke.site._return_tables import MetricsExportRecord
    from airlock.spoke.site._tables import (
        STATE_ID,
        DirectorAssignment,
        SpokeState,
        StagedModel,
        TrustedMetadataFile,
    )


__all__ = [
    "AGE_IDENTITY_FILE",
    "IDENTITY_FILE",
    "PASSPHRASE_ENV",
    "SIGNING_KEYREF_FILE",
    "SIGNING_KEY_FILE",
    "STATE_ID",
    "DirectorAssignment",
    "EnrolledNode",
    "FleetModel",
    "MetricWindow",
    "MetricsExportRecord",
    "NodeDesired",
    "NodeReport",
    "RevokedVersion",
    "Rollout",
    "RolloutEvent",
    "RolloutPlanRecord",
    "SiteDirectorFile",
    "SpokeHome",
    "SpokeState",
    "StagedModel",
    "TrustedMetadataFile",
    "init_spoke",
    "reset_floor",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "DirectorAssignment": "_tables",
        "EnrolledNode": "_fleet_tables",
        "FleetModel": "_fleet_tables",
        "MetricWindow": "_fleet_tables",
        "MetricsExportRecord": "_return_tables",
        "NodeDesired": "_fleet_tables",
        "NodeReport": "_fleet_tables",
        "RevokedVersion": "_fleet_tables",
        "Rollout": "_fleet_tables",
        "RolloutEvent": "_fleet_tables",
        "RolloutPlanRecord": "_fleet_tables",
        "STATE_ID": "_tables",
        "SiteDirectorFile": "_fleet_tables",
        "SpokeHome": "_home",
        "SpokeState": "_tables",
        "StagedModel": "_tables",
        "TrustedMetadataFile": "_tables",
        "init_spoke": "_init",
        "reset_floor": "_floor_reset",
    },
)
