"""The names a bundle payload archive may contain, and the payload file names.

Exactly two forms are allowed, both built by :mod:`airlock.bundles.tuf._repo`:

* ``metadata/<repository>/<file>`` — TUF (and in-toto) metadata; both segments
  are single safe path segments (``A-Za-z0-9._-``, starting with a letter or
  digit, so never ``.`` or ``..``);
* ``blobs/sha256/<64 lower-case hex digits>`` — a content-addressed file.
"""

from __future__ import annotations

import re
from enum import StrEnum

from airlock.bundles.models._names import NAME_PATTERN, SHA256_PATTERN
from airlock.bundles.tuf._repo import BLOB_PREFIX, METADATA_PREFIX

PAYLOAD_ENCRYPTED = "payload.age"
PAYLOAD_PLAINTEXT = "payload.tar"

_SEGMENT = NAME_PATTERN.pattern.removeprefix("^").removesuffix("$")
METADATA_NAME = re.compile(rf"{METADATA_PREFIX}/{_SEGMENT}/{_SEGMENT}")
BLOB_NAME = re.compile(rf"{BLOB_PREFIX}/[0-9a-f]{{64}}")


class EntryKind(StrEnum):
    """What an archive entry carries."""

    METADATA = "metadata"
    BLOB = "blob"


def entry_kind(name: str) -> EntryKind | None:
    """The kind of a valid archive entry name, or None when the name is not allowed."""
    if METADATA_NAME.fullmatch(name):
        return EntryKind.METADATA
    if BLOB_NAME.fullmatch(name):
        return EntryKind.BLOB
    return None


def blob_digest(name: str) -> str:
    """The SHA-256 hex digest named by a valid blob entry name."""
    return name[len(BLOB_PREFIX) + 1 :]


def is_sha256_hex(value: str) -> bool:
    """True for 64 lower-case hex digits."""
    return bool(SHA256_PATTERN.fullmatch(value))


def shown(name: str, limit: int = 160) -> str:
    """An entry name made safe for a message: repr-escaped and shortened."""
    text = repr(name)
    return text if len(text) <= limit else text[: limit - 3] + "..."
