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
import re
from pathlib import Path
from typing import Any, TypeVar

from securesystemslib.signer import Signer
from tuf.api.metadata import Metadata, MetaFile, Root, Snapshot, Targets, Timestamp
from tuf.api.serialization import DeserializationError

from airlock.bundles import tufrepo
from airlock.bundles.atomic import atomic_write_bytes
from airlock.bundles.errors import MediaError, NotFoundError

T = TypeVar("T", Root, Timestamp, Snapshot, Targets)
ROOT_FILE = re.compile(r"^([1-9][0-9]{0,8})\.root\.json$")


def load_metadata(path: Path, signed_type: type[T]) -> Metadata[T]:
    """Reads one metadata file and checks its type.

    Raises:
        NotFoundError: the file does not exist.
        MediaError: it is not TUF metadata of ``signed_type``.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise NotFoundError(
            f"metadata file {path} does not exist",
            hint="the hub home is incomplete; restore it from backup",
        ) from None
    return parse_metadata(data, signed_type, str(path))


def parse_metadata(data: bytes, signed_type: type[T], what: str) -> Metadata[T]:
    """Parses metadata bytes and checks the signed type.

    Raises:
        MediaError: not TUF metadata of ``signed_type``.
    """
    try:
        md = Metadata[Any].from_bytes(data)
    except DeserializationError as exc:
        raise MediaError(f"{what} is not valid TUF metadata ({exc})") from None
    if not isinstance(md.signed, signed_type):
        raise MediaError(f"{what} holds {md.signed.type} metadata, expected {signed_type.type}")
    return md  # type: ignore[return-value]


def root_files(directory: Path) -> list[Path]:
    """The ``N.root.json`` files of a directory, in version order, checked contiguous from 1.

    Raises:
        NotFoundError: there is no ``1.root.json``.
        MediaError: a version is missing in between.
    """
    found: dict[int, Path] = {}
    if directory.is_dir():
        for entry in directory.iterdir():
            match = ROOT_FILE.fullmatch(entry.name)
            if match:
                found[int(match.group(1))] = entry
    if not found:
        raise NotFoundError(f"no root metadata (1.root.json) in {directory}")
    versions = sorted(found)
    if versions != list(range(1, len(versions) + 1)):
        raise MediaError(
            f"root history in {directory} has gaps: versions {versions}",
            hint="every root version from 1 up must be present",
        )
    return [found[v] for v in versions]


def load_roots(directory: Path) -> list[Metadata[Root]]:
    """Loads the whole root history of a directory (see :func:`root_files`)."""
    roots = []
    for number, path in enumerate(root_files(directory), start=1):
        md = load_metadata(path, Root)
        if md.signed.version != number:
            raise MediaError(f"{path.name} holds root version {md.signed.version}")
        roots.append(md)
    return roots


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
) -> Metadata[Timestamp]:
    """A timestamp one version above ``previous`` pointing at ``snapshot``."""
    version = previous.signed.version + 1 if previous else 1
    md = Metadata(Timestamp(version=version, expires=expires, snapshot_meta=meta_file(snapshot)))
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
