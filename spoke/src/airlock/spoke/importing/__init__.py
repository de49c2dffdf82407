"""Importing a bundle: verify everything (envelope, payload, TUF, in-toto, the gate),
then stage and record it in one transaction — or change nothing.

Modules here are private (``_name.py``); other components import the names below.
"""

from airlock.spoke.importing._attestation_policy import read_policy
from airlock.spoke.importing._commit import ImportResult
from airlock.spoke.importing._importer import import_bundle
from airlock.spoke.importing._records import UNLISTED_REASON, plan_sha256
from airlock.spoke.importing._storage import CLEANUP_ACTION

__all__ = [
    "CLEANUP_ACTION",
    "UNLISTED_REASON",
    "ImportResult",
    "import_bundle",
    "plan_sha256",
    "read_policy",
]
