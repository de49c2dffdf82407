"""The ceremony's output, as both its writer (the ceremony) and its reader (the hub) see
it: the names of its files and online keys, and the typed record ``ceremony.json``.

Modules here are private (``_name.py``); other components import the names below.
"""

from airlock.bundles.ceremony_output._names import (
    CEREMONY_FILE,
    DIRECTOR_ROOT_FILE,
    DIRECTOR_SNAPSHOT,
    DIRECTOR_TARGETS,
    DIRECTOR_TIMESTAMP,
    ENVELOPE,
    IMAGE_MODELS,
    IMAGE_ROOT_FILE,
    IMAGE_SNAPSHOT,
    IMAGE_TARGETS_FILE,
    IMAGE_TIMESTAMP,
    OFFLINE_DIR,
    ONLINE_DIR,
    ONLINE_KEY_NAMES,
    offline_key_path,
    online_key_path,
)
from airlock.bundles.ceremony_output._record import (
    ROOT_FILES,
    CeremonyRecord,
    RootRecord,
    TargetsRecord,
    key_refs,
    load_ceremony,
    missing_online_keys,
    online_key_refs,
    sha256_hex,
)

__all__ = [
    "CEREMONY_FILE",
    "DIRECTOR_ROOT_FILE",
    "DIRECTOR_SNAPSHOT",
    "DIRECTOR_TARGETS",
    "DIRECTOR_TIMESTAMP",
    "ENVELOPE",
    "IMAGE_MODELS",
    "IMAGE_ROOT_FILE",
    "IMAGE_SNAPSHOT",
    "IMAGE_TARGETS_FILE",
    "IMAGE_TIMESTAMP",
    "OFFLINE_DIR",
    "ONLINE_DIR",
    "ONLINE_KEY_NAMES",
    "ROOT_FILES",
    "CeremonyRecord",
    "RootRecord",
    "TargetsRecord",
    "key_refs",
    "load_ceremony",
    "missing_online_keys",
    "offline_key_path",
    "online_key_path",
    "online_key_refs",
    "sha256_hex",
]
