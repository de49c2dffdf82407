"""TUF for Airlock's two repositories (Image and Director): the shared conventions,
reading metadata files and root histories, the root chain an envelope carries, and the
verification core for both repositories of a bundle.

Modules here are private (``_name.py``); other components import the names below.
The verification core (``_verify``: python-tuf's client and its HTTP stack) is
imported on first use: the hub, which signs and never verifies, does not load it.
"""

from typing import TYPE_CHECKING

from airlock.bundles.lazy import lazy_exports
from airlock.bundles.tuf._agreement import VerifiedTarget, agree_with_image
from airlock.bundles.tuf._metadata_files import (
    load_metadata,
    load_roots,
    parse_metadata,
    root_files,
    verify_root_chain,
)
from airlock.bundles.tuf._repo import (
    BUNDLE_FIELD,
    CUSTOM_KEY,
    DIRECTOR,
    ENVELOPE_FIELD,
    IMAGE,
    LAYOUT_FIELD,
    METADATA_PREFIX,
    MODELS_ROLE,
    MODELS_ROLE_PATHS,
    ONLINE_ROLE_EXPIRY_DAYS,
    REPOSITORIES,
    REVOCATIONS_FIELD,
    ROLLOUT_KEY,
    ROOT_EXPIRY_DAYS,
    ROOT_FILE,
    SITE_ID_FIELD,
    TARGETS_EXPIRY_DAYS,
    TENANT_ROLE_PREFIX,
    archive_blob_name,
    archive_metadata_name,
    bundle_claims,
    check_root_signed,
    director_custom,
    envelope_keys,
    expiry_from,
    family_paths,
    image_custom,
    layout_keys,
    metadata_filename,
    parse_revocations,
    revocation_entry,
    set_envelope_keys,
    set_layout_keys,
    sha256_of_target,
    sign_with,
    signed_expires,
    target_path,
    tenant_role,
    to_bytes,
)
from airlock.bundles.tuf._root_chain import parse_root_chain, walk_root_chain

if TYPE_CHECKING:
    from airlock.bundles.tuf._verify import (
        VerifiedMetadata,
        initial_trusted,
        verify_repositories,
    )

__all__ = [
    "BUNDLE_FIELD",
    "CUSTOM_KEY",
    "DIRECTOR",
    "ENVELOPE_FIELD",
    "IMAGE",
    "LAYOUT_FIELD",
    "METADATA_PREFIX",
    "MODELS_ROLE",
    "MODELS_ROLE_PATHS",
    "ONLINE_ROLE_EXPIRY_DAYS",
    "REPOSITORIES",
    "REVOCATIONS_FIELD",
    "ROLLOUT_KEY",
    "ROOT_EXPIRY_DAYS",
    "ROOT_FILE",
    "SITE_ID_FIELD",
    "TARGETS_EXPIRY_DAYS",
    "TENANT_ROLE_PREFIX",
    "VerifiedMetadata",
    "VerifiedTarget",
    "agree_with_image",
    "archive_blob_name",
    "archive_metadata_name",
    "bundle_claims",
    "check_root_signed",
    "director_custom",
    "envelope_keys",
    "expiry_from",
    "family_paths",
    "image_custom",
    "initial_trusted",
    "layout_keys",
    "load_metadata",
    "load_roots",
    "metadata_filename",
    "parse_metadata",
    "parse_revocations",
    "parse_root_chain",
    "revocation_entry",
    "root_files",
    "set_envelope_keys",
    "set_layout_keys",
    "sha256_of_target",
    "sign_with",
    "signed_expires",
    "target_path",
    "tenant_role",
    "to_bytes",
    "verify_repositories",
    "verify_root_chain",
    "walk_root_chain",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "VerifiedMetadata": "_verify",
        "initial_trusted": "_verify",
        "verify_repositories": "_verify",
    },
)
