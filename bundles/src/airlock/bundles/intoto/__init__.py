"""in-toto supply-chain attestations: the layout signed in the ceremony, and the one
verification workflow the hub and the spoke share.

Modules here are private (``_name.py``); other components import the names below.
They are imported on first use (:mod:`airlock.bundles.lazy`): in-toto loads only
when a layout or an attestation is at hand, not in every import or export.
"""

from typing import TYPE_CHECKING

from airlock.bundles.keys._pem import public_key_pem, read_public_key_pem
from airlock.bundles.lazy import lazy_exports

if TYPE_CHECKING:
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

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "Anchor": "_attest",
        "AttestationReport": "_attest",
        "LAYOUT_TARGET": "_layout",
        "LINK_NAME": "_attest",
        "PACKAGE_STEP": "_layout",
        "PIPELINE_STEPS": "_layout",
        "check_expiry": "_layout",
        "check_file_names": "_attest",
        "content_sha256": "_layout",
        "draft_layout": "_layout",
        "fingerprint": "_layout",
        "layout_bytes": "_layout",
        "layout_expires": "_layout",
        "layout_sha256": "_layout",
        "layout_summary": "_layout",
        "link_filename": "_layout",
        "parse_layout": "_layout",
        "sign": "_layout",
        "signing_keys": "_layout",
        "step_keyids": "_layout",
        "verify_version": "_attest",
    },
)
