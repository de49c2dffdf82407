"""What the hub has released and what became of it: model versions, release records
and their files, rollout plan files, revocations and site rollbacks as views.

Modules here are private (``_name.py``); other components import the names below.
"""

from airlock.hub.catalog._catalog import list_models
from airlock.hub.catalog._release_files import (
    ReleaseParts,
    read_compat,
    read_thresholds,
    release_parts,
)
from airlock.hub.catalog._revocation_view import list_revocations
from airlock.hub.catalog._rollout_plans import read_plan
from airlock.hub.catalog._site_rollbacks import rolled_back_at_site, store

__all__ = [
    "ReleaseParts",
    "list_models",
    "list_revocations",
    "read_compat",
    "read_plan",
    "read_thresholds",
    "release_parts",
    "rolled_back_at_site",
    "store",
]
