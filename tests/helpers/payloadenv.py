"""Payload-test helpers: blobs in a content-addressed store and a recording ``on_metadata``.

:func:`airlock.bundles.bundle._payload.read_payload` asks its ``on_metadata`` callback
which blobs the verified metadata allows; :class:`Recorder` records what it
was shown and allows a fixed set (:func:`allowed_of`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from pathlib import Path

from airlock.bundles.bundle import BlobSource


def store_blob(store: Path, data: bytes) -> BlobSource:
    """Writes ``data`` into ``store`` under its SHA-256 and returns it as a blob."""
    digest = hashlib.sha256(data).hexdigest()
    path = store / digest
    path.write_bytes(data)
    return BlobSource(sha256=digest, path=path, length=len(data))


def allowed_of(blobs: Iterable[BlobSource]) -> dict[str, int]:
    """What the metadata allows: each blob's SHA-256 and length."""
    return {b.sha256: b.length for b in blobs}


class Recorder:
    """An ``on_metadata`` that records its calls and allows the given blobs."""

    def __init__(self, allowed: Mapping[str, int]) -> None:
        self.allowed = allowed
        self.calls: list[dict[str, bytes]] = []

    def __call__(self, metadata: dict[str, bytes]) -> Mapping[str, int]:
        """Records ``metadata`` and returns the allowed blobs."""
        self.calls.append(dict(metadata))
        return self.allowed
