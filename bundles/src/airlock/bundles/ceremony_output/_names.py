"""The names in a ceremony's output directory: files, folders and the online keys.

A ceremony writes its output (``airlock ceremony init --out DIR``, or a
coordinated ceremony's finalize) and the hub reads it (``airlock hub init``,
``airlock hub trust update``), so every name both sides use is a constant here::

    DIR/ceremony.json             the ceremony record (:class:`CeremonyRecord`)
    DIR/image/N.root.json         Image roots, version 1 up
    DIR/image/N.targets.json      Image top-level targets
    DIR/director/N.root.json      Director roots, version 1 up
    DIR/offline-keys/<name>.pem   officers' keys (never read by the hub)
    DIR/online-keys/<name>.pem    the hub's keys, encrypted, one per ONLINE_KEY_NAMES
"""

from __future__ import annotations

from tuf.api.metadata import Root, Targets

from airlock.bundles.tuf._repo import DIRECTOR, IMAGE, metadata_filename

CEREMONY_FILE = "ceremony.json"
OFFLINE_DIR = "offline-keys"
ONLINE_DIR = "online-keys"

IMAGE_ROOT_FILE = f"{IMAGE}/{metadata_filename(Root.type, 1)}"
IMAGE_TARGETS_FILE = f"{IMAGE}/{metadata_filename(Targets.type, 1)}"
DIRECTOR_ROOT_FILE = f"{DIRECTOR}/{metadata_filename(Root.type, 1)}"

IMAGE_SNAPSHOT = "image-snapshot"
IMAGE_TIMESTAMP = "image-timestamp"
IMAGE_MODELS = "image-models"
DIRECTOR_TARGETS = "director-targets"
DIRECTOR_SNAPSHOT = "director-snapshot"
DIRECTOR_TIMESTAMP = "director-timestamp"
ENVELOPE = "envelope"
ONLINE_KEY_NAMES = (
    IMAGE_SNAPSHOT,
    IMAGE_TIMESTAMP,
    IMAGE_MODELS,
    DIRECTOR_TARGETS,
    DIRECTOR_SNAPSHOT,
    DIRECTOR_TIMESTAMP,
    ENVELOPE,
)
"""The keys the hub holds online (encrypted with the hub passphrase)."""


def offline_key_path(name: str) -> str:
    """Where offline key ``name`` is stored, relative to the ceremony directory."""
    return f"{OFFLINE_DIR}/{name}.pem"


def online_key_path(name: str) -> str:
    """Where online key ``name`` is stored, relative to the ceremony directory."""
    return f"{ONLINE_DIR}/{name}.pem"
