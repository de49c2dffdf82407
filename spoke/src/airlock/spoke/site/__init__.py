"""The site's home and state: the home directory, every database table of the spoke,
``spoke init``, and the site's own trust-state actions (time floor, cut-off).

Modules here are private (``_name.py``); other components import the names below.
"""

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
from airlock.spoke.site._home import (
    AGE_IDENTITY_FILE,
    IDENTITY_FILE,
    PASSPHRASE_ENV,
    SIGNING_KEY_FILE,
    SIGNING_KEYREF_FILE,
    SpokeHome,
)
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
