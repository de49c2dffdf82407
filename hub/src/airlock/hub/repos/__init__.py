"""The hub's repositories: TUF metadata files, the Image and Director repositories, the
content-addressed blob store and the signers of the online and tenant keys.

Modules here are private (``_name.py``); other components import the names below.
"""

from airlock.hub.repos._director import refresh
from airlock.hub.repos._image import ImageRepo, image_targets, verify_delegations
from airlock.hub.repos._signing import (
    DIRECTOR_SNAPSHOT,
    DIRECTOR_TARGETS,
    DIRECTOR_TIMESTAMP,
    ENVELOPE,
    IMAGE_MODELS,
    IMAGE_SNAPSHOT,
    IMAGE_TIMESTAMP,
    ONLINE_KEY_NAMES,
    parse_tenant_secret,
)
from airlock.hub.repos._tufmeta import StagedWrites, bump, meta_file

__all__ = [
    "DIRECTOR_SNAPSHOT",
    "DIRECTOR_TARGETS",
    "DIRECTOR_TIMESTAMP",
    "ENVELOPE",
    "IMAGE_MODELS",
    "IMAGE_SNAPSHOT",
    "IMAGE_TIMESTAMP",
    "ONLINE_KEY_NAMES",
    "ImageRepo",
    "StagedWrites",
    "bump",
    "image_targets",
    "meta_file",
    "parse_tenant_secret",
    "refresh",
    "verify_delegations",
]
