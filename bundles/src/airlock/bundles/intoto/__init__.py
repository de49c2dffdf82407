"""in-toto supply-chain attestations: the layout signed in the ceremony, and the one
verification workflow the hub and the spoke share.

Modules here are private (``_name.py``); other components import the names below.
"""

from airlock.bundles.intoto._attest import (
    LINK_NAME,
    Anchor,
    AttestationReport,
    check_file_names,
    verify_version,
)
from airlock.bundles.intoto._layout import (
    LAYOUT_TARGET,
    PACKAGE_STEP,
    PIPELINE_STEPS,
    check_expiry,
    content_sha256,
    draft_layout,
    fingerprint,
    layout_bytes,
    layout_expires,
    layout_sha256,
    layout_summary,
    link_filename,
    parse_layout,
    sign,
    signing_keys,
    step_keyids,
)
from airlock.bundles.keys._pem import public_key_pem, read_public_key_pem

__all__ = [
    "LAYOUT_TARGET",
    "LINK_NAME",
    "PACKAGE_STEP",
    "PIPELINE_STEPS",
    "Anchor",
    "AttestationReport",
    "check_expiry",
    "check_file_names",
    "content_sha256",
    "draft_layout",
    "fingerprint",
    "layout_bytes",
    "layout_expires",
    "layout_sha256",
    "layout_summary",
    "link_filename",
    "parse_layout",
    "public_key_pem",
    "read_public_key_pem",
    "sign",
    "signing_keys",
    "step_keyids",
    "verify_version",
]
