"""Small helpers of the public API: fresh ids and keys, the minimum volume size, finding volumes."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from pathlib import Path

from airlock.bundles.chunks._index import CHUNK_SIZE
from airlock.bundles.volumes._format import NAME_KEY_BYTES
from airlock.bundles.volumes._layers import encryption_for
from airlock.bundles.volumes._plan import minimum_volume_size as _minimum


def new_series_id() -> str:
    """A random series id: 16 lower-case hex (never derived from content)."""
    return secrets.token_hex(8)


def new_name_key() -> bytes:
    """A random 32-byte name key, one per export run."""
    return secrets.token_bytes(NAME_KEY_BYTES)


def minimum_volume_size(recipients: Sequence[str] | None, chunk_size: int = CHUNK_SIZE) -> int:
    """The smallest ``volume_size`` that holds one chunk, for volumes sealed to ``recipients``."""
    return _minimum(encryption_for(recipients).geometry, chunk_size)


def find_volumes(directories: Sequence[Path], names: Iterable[str]) -> dict[str, Path]:
    """Which of ``names`` are present as regular files in ``directories`` (first one wins)."""
    found: dict[str, Path] = {}
    for name in names:
        for directory in directories:
            path = Path(directory) / name
            if path.is_file():
                found[name] = path
                break
    return found
