"""The hub's trust: creating a home from a ceremony, adopting rotation ceremonies,
and the return-path keys (age identity, witness key) sites send metrics to.

Modules here are private (``_name.py``); other components import the names below.
"""

from airlock.hub.trust._bootstrap import init_hub
from airlock.hub.trust._return_keys import (
    AGE_IDENTITY_FILE,
    RECIPIENT_FILE,
    hub_identity,
    hub_recipient,
    newest_import,
    return_path,
    witness,
)
from airlock.hub.trust._update import update_trust

__all__ = [
    "AGE_IDENTITY_FILE",
    "RECIPIENT_FILE",
    "hub_identity",
    "hub_recipient",
    "init_hub",
    "newest_import",
    "return_path",
    "update_trust",
    "witness",
]
