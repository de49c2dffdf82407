"""The output of an earlier ceremony: the trust a rotation starts from.

A ceremony directory (``ceremony init`` or ``ceremony finalize``) holds every
root version of both repositories, the Image top-level targets versions, the
online keys and ``ceremony.json``. :func:`load_history` reads it and checks
the root chains and the newest targets before anything is built on it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuf.api.metadata import Metadata, Root, Targets

from airlock.bundles import tuf as tufrepo
from airlock.bundles.ceremony_output import CEREMONY_FILE, online_key_refs
from airlock.bundles.errors import NotFoundError, UsageError
from airlock.bundles.keys import KeyRef
from airlock.bundles.tuf import load_roots, parse_metadata, root_files, verify_root_chain
from airlock.ceremony.roots._build import check_targets_signed

TARGETS_FILE = re.compile(r"([1-9][0-9]{0,8})\.targets\.json")


@dataclass(frozen=True)
class RootHistory:
    """One repository's root versions, oldest first, with their exact bytes."""

    repository: str
    roots: list[Metadata[Root]]
    files: list[bytes]

    @property
    def current(self) -> Metadata[Root]:
        """The newest root."""
        return self.roots[-1]


@dataclass(frozen=True)
class CeremonyHistory:
    """A finished ceremony directory, checked."""

    directory: Path
    record: dict[str, Any]
    image: RootHistory
    director: RootHistory
    targets_files: dict[int, bytes]
    online_keys: dict[str, KeyRef]

    @property
    def ceremony_id(self) -> str:
        """The id of the ceremony that wrote the directory."""
        return str(self.record.get("ceremony_id", ""))

    @property
    def image_targets(self) -> Metadata[Targets]:
        """The newest Image top-level targets."""
        data = self.targets_files[max(self.targets_files)]
        return parse_metadata(data, Targets, f"{tufrepo.IMAGE}/{max(self.targets_files)}.targets")

    def root(self, repository: str) -> RootHistory:
        """The ``image`` or ``director`` root history."""
        return self.image if repository == tufrepo.IMAGE else self.director


def _history(directory: Path, repository: str) -> RootHistory:
    folder = directory / repository
    roots = load_roots(folder)
    verify_root_chain(repository.capitalize(), roots)
    return RootHistory(repository, roots, [p.read_bytes() for p in root_files(folder)])


def load_history(directory: Path) -> CeremonyHistory:
    """Reads and checks a ceremony directory.

    Raises:
        NotFoundError: not a ceremony directory, or files are missing.
        UsageError: ``ceremony.json`` is malformed.
        MediaError: a metadata file is malformed.
        SignatureError: a root chain or the targets is not signed as required.
    """
    directory = Path(directory)
    try:
        record = json.loads((directory / CEREMONY_FILE).read_text(encoding="utf-8"))
        online = online_key_refs(record)
    except FileNotFoundError:
        raise NotFoundError(
            f"{directory} holds no ceremony (no {CEREMONY_FILE})",
            hint="pass the directory the previous ceremony wrote (--rotate-from)",
        ) from None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UsageError(f"{directory / CEREMONY_FILE} is malformed ({exc})") from None
    targets_files = {
        int(match.group(1)): path.read_bytes()
        for path in (directory / tufrepo.IMAGE).glob("*.targets.json")
        if (match := TARGETS_FILE.fullmatch(path.name))
    }
    if not targets_files:
        raise NotFoundError(f"no Image targets (N.targets.json) in {directory / tufrepo.IMAGE}")
    history = CeremonyHistory(
        directory=directory,
        record=record,
        image=_history(directory, tufrepo.IMAGE),
        director=_history(directory, tufrepo.DIRECTOR),
        targets_files=targets_files,
        online_keys=online,
    )
    check_targets_signed(history.image.current.signed, history.image_targets)
    return history
