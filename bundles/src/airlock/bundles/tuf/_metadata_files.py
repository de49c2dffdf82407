"""Reading TUF metadata files and root histories, shared by the ceremony and the hub.

A root history is a directory of ``N.root.json`` files, contiguous from 1;
:func:`verify_root_chain` checks that each root is signed by a threshold of
its own keys and of the previous root's — what a TUF client checks when it
walks from the root it trusts to the newest one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

from tuf.api.metadata import Metadata, Root, Snapshot, Targets, Timestamp
from tuf.api.serialization import DeserializationError

from airlock.bundles.errors import MediaError, NotFoundError, SignatureError, TrustError
from airlock.bundles.tuf import _repo as tufrepo

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
            hint="the directory is incomplete; restore it from its backup or the officers' copy",
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


def verify_root_chain(repository: str, roots: list[Metadata[Root]]) -> None:
    """Checks each root is signed by its own threshold and by the previous root's.

    Raises:
        SignatureError: a root is not signed as required.
        TrustError: a root does not use consistent snapshots.
    """
    for index, md in enumerate(roots):
        tufrepo.check_root_signed(md)
        if index:
            try:
                roots[index - 1].signed.verify_delegate(Root.type, md.signed_bytes, md.signatures)
            except Exception as exc:
                raise SignatureError(
                    f"{repository} root version {md.signed.version} is not signed by a "
                    f"threshold of the previous root's keys ({exc})",
                    hint="collect the missing signatures from the previous root's officers",
                ) from None
        if not md.signed.consistent_snapshot:
            raise TrustError(
                f"{repository} root version {md.signed.version} has consistent_snapshot off"
            )


def check_root_history(repo: str, files: Iterable[str]) -> None:
    """Every root of a repository from version 1 up must be in the bundle (the format says so).

    A site that trusts root N only reads roots after N, but the bundle must carry
    the whole chain, so that any site — and an auditor — can walk it from 1.

    Args:
        repo: ``image`` or ``director`` (for the message).
        files: The names of the repository's metadata files in the bundle.

    Raises:
        TrustError: ``1.root.json`` is missing, or a version in between is.
    """
    versions = sorted(int(m.group(1)) for m in map(ROOT_FILE.fullmatch, files) if m)
    if versions[:1] != [1] or versions != list(range(1, len(versions) + 1)):
        have = ", ".join(map(str, versions)) or "none"
        raise TrustError(
            f"the bundle's {repo.capitalize()} metadata does not carry every root from "
            f"version 1 (1.root.json, 2.root.json, …; it has: {have})",
            hint="the bundle is incomplete or was not made by an Airlock hub; "
            "do not use it and ask the hub for a new export",
        )
