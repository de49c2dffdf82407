"""What an officer does on their own offline machine: their key directory, key offers,
reviewing and signing a request, and signing the in-toto layout.

Modules here are private (``_name.py``); other components import the names below.
"""

from airlock.ceremony.officer._keydir import AUDIT_DB, OFFICER_FILE, OfficerKeys
from airlock.ceremony.officer._layout_signing import SIGN_LAYOUT_ACTION, sign_layout
from airlock.ceremony.officer._offers import (
    HsmSlot,
    generate_offer,
    proof_payload,
    read_offer,
    verify_offer,
)
from airlock.ceremony.officer._signing import sign_request

__all__ = [
    "AUDIT_DB",
    "OFFICER_FILE",
    "SIGN_LAYOUT_ACTION",
    "HsmSlot",
    "OfficerKeys",
    "generate_offer",
    "proof_payload",
    "read_offer",
    "sign_layout",
    "sign_request",
    "verify_offer",
]
