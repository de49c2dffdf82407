"""What the hub signs about a model version besides its bytes, as TUF targets'
``custom`` fields: the release record, the rollout plan, the change authorisation.

Modules here are private (``_name.py``); other components import the names below.
"""

from airlock.bundles.release._change import (
    CHANGE_KEY,
    CHANGE_STATES,
    CHANGE_TYPES,
    ChangeAuthorization,
    window_text,
)
from airlock.bundles.release._record import (
    Compatibility,
    Dependency,
    Lineage,
    ReleaseInfo,
    ValidationSpec,
    decimal,
    version_tuple,
)
from airlock.bundles.release._rollout_plan import HealthCriteria, Ring, RolloutPlan, SiteLimits

__all__ = [
    "CHANGE_KEY",
    "CHANGE_STATES",
    "CHANGE_TYPES",
    "ChangeAuthorization",
    "Compatibility",
    "Dependency",
    "HealthCriteria",
    "Lineage",
    "ReleaseInfo",
    "Ring",
    "RolloutPlan",
    "SiteLimits",
    "ValidationSpec",
    "decimal",
    "version_tuple",
    "window_text",
]
