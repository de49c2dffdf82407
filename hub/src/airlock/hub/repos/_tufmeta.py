"""Small TUF metadata helpers shared by the Image and Director repositories.

Reading metadata files with clear errors, bumping and re-signing a role,
building snapshot/timestamp meta entries (version, length and SHA-256 of the
exact bytes that ship), and :class:`StagedWrites`: the files an operation will
write when it commits, written atomically and undone if the commit fails.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
from pathlib import Path
from typing import Any, TypeVar

from securesystemslib.signer import Signer
from tuf.api.metadata import Metadata, MetaFile, Root, Snapshot, Targets, Timestamp

from airlock.bundles import tuf as tufrepo
from airlock.bundles.atomic import atomic_write_bytes
from airlock.bundles.tuf import ROOT_FILE as ROOT_FILE
from airlock.bundles.tuf import load_metadata as load_metadata
from airlock.bundles.tuf import load_roots as load_roots
from airlock.bundles.tuf import parse_metadata as parse_metadata
from airlock.bundles.tuf import root_files as root_files

T = TypeVar("T", Root, Timestamp, Snapshot, Targets)


def bump(md: Metadata[T], expires: dt.datetime, signers: list[Signer]) -> Metadata[T]:
    """Increments the version, sets the expiry and re-signs ``md`` (in place)."""
    md.signed.version += 1
    md.signed.expires = expires
    tufrepo.sign_with(md, signers)
    return md


def meta_file(md: Metadata[Any]) -> MetaFile:
    """A snapshot/timestamp entry for ``md``: version, length and SHA-256 of its bytes."""
    data = tufrepo.to_bytes(md)
    return MetaFile(
        version=md.signed.version,
        length=len(data),
        hashes={"sha256": hashlib.sha256(data).hexdigest()},
    )


def next_snapshot(
    previous: Metadata[Snapshot] | None,
    roles: dict[str, Metadata[Any]],
    expires: dt.datetime,
    signer: Signer,
) -> Metadata[Snapshot]:
    """A snapshot one version above ``previous`` listing every targets role in ``roles``."""
    version = previous.signed.version + 1 if previous else 1
    meta = {f"{name}.json": meta_file(md) for name, md in sorted(roles.items())}
    md = Metadata(Snapshot(version=version, expires=expires, meta=meta))
    return tufrepo.sign_with(md, [signer])


def next_timestamp(
    previous: Metadata[Timestamp] | None,
    snapshot: Metadata[Snapshot],
    expires: dt.datetime,
    signer: Signer,
    fields: dict[str, Any] | None = None,
) -> Metadata[Timestamp]:
    """A timestamp one version above ``previous`` pointing at ``snapshot``.

    ``fields`` are extra (``x-airlock-*``) fields signed into it.
    """
    version = previous.signed.version + 1 if previous else 1
    md = Metadata(
        Timestamp(
            version=version,
            expires=expires,
            snapshot_meta=meta_file(snapshot),
            unrecognized_fields=dict(fields or {}),
        )
    )
    return tufrepo.sign_with(md, [signer])


class StagedWrites:
    """Files an operation writes when it commits, atomically each, undone on failure.

    Usage: ``put`` everything while nothing is written yet, then ``apply()``
    just before the database commit, and ``revert()`` if that commit fails.
    """

    def __init__(self) -> None:
        self._files: dict[Path, tuple[bytes, int]] = {}
        self._previous: list[tuple[Path, bytes | None]] = []

    def put(self, path: Path, data: bytes, mode: int = 0o644) -> None:
        """Stages ``data`` for ``path`` (a later put for the same path wins)."""
        self._files[Path(path)] = (data, mode)

    def put_metadata(self, path: Path, md: Metadata[Any]) -> None:
        """Stages TUF metadata, serialised the way Airlock ships it."""
        self.put(path, tufrepo.to_bytes(md))

    def merge(self, other: StagedWrites) -> None:
        """Stages every file ``other`` has staged (``other`` is not applied)."""
        self._files.update(other._files)

    @property
    def paths(self) -> list[Path]:
        """The staged paths, in staging order."""
        return list(self._files)

    def apply(self) -> None:
        """Writes every staged file atomically, remembering what was there before."""
        for path, (data, mode) in self._files.items():
            previous = path.read_bytes() if path.exists() else None
            self._previous.append((path, previous))
            atomic_write_bytes(path, data, mode=mode)

    def revert(self) -> None:
        """Restores every file :meth:`apply` wrote to its previous content (or removes it)."""
        while self._previous:
            path, previous = self._previous.pop()
            if previous is None:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            else:
                atomic_write_bytes(path, previous, mode=path.stat().st_mode & 0o777)
