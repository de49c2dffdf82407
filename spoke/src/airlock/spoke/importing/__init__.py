"""Importing a bundle: verify everything (envelope, per-site part or payload, TUF, chunk
indexes, in-toto, the gate), then stage and record it in one transaction — or change
nothing. A format-2 bundle may come on several media and resumes where it stopped.

Modules here are private (``_name.py``); other components import the names below.
"""

from typing import TYPE_CHECKING

from airlock.bundles.lazy import lazy_exports
from airlock.spoke.importing._attestation_policy import read_policy
from airlock.spoke.importing._command import (
    abandon_import,
    import_bundle,
    import_media,
    import_status,
)
from airlock.spoke.importing._commit import ImportResult
from airlock.spoke.importing._pending import (
    ABANDON_ACTION,
    EXPIRED_ACTION,
    PARTIAL_ACTION,
    PendingImport,
    list_pending,
)
from airlock.spoke.importing._receipt import write_receipt_file
from airlock.spoke.importing._records import UNLISTED_REASON, plan_sha256
from airlock.spoke.importing._storage import CLEANUP_ACTION

if TYPE_CHECKING:
    from airlock.spoke.importing._pending_status import PendingStatus

__all__ = [
    "ABANDON_ACTION",
    "CLEANUP_ACTION",
    "EXPIRED_ACTION",
    "PARTIAL_ACTION",
    "UNLISTED_REASON",
    "ImportResult",
    "PendingImport",
    "PendingStatus",
    "abandon_import",
    "import_bundle",
    "import_media",
    "import_status",
    "list_pending",
    "plan_sha256",
    "read_policy",
    "write_receipt_file",
]

__getattr__, __dir__ = lazy_exports(__name__, {"PendingStatus": "_pending_status"})
