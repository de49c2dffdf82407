"""A/B slots: each model family keeps two versions on disk, one active, one for fallback.

Layout under the agent home::

    slots/<model>/A/          every file of one version, under its target file name
    slots/<model>/B/
    slots/<model>/.incoming-* a version being downloaded (renamed into a slot when complete)

A new version goes into the inactive slot (Mender's scheme): its files are
downloaded into a temporary directory beside the slots and renamed into place
only when every file arrived, so a slot holds either a complete version or
nothing usable. Committing switches the active slot; falling back leaves the
active slot as it was and marks the other one ``failed``. The active slot's
files are never deleted or overwritten (:meth:`SlotStore.install` refuses).

:class:`FamilySlots` is the per-family record kept in the agent's
``state.json``; :class:`SlotStore` does the file work.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from airlock.bundles.errors import ConflictError, IntegrityError
from airlock.bundles.models import check_name

SLOTS = ("A", "B")
EMPTY, INSTALLING, INSTALLED, READY, FAILED = "empty", "installing", "installed", "ready", "failed"
SLOT_STATES = (EMPTY, INSTALLING, INSTALLED, READY, FAILED)
"""``ready`` passed its health check here; ``failed`` did not (and is not retried)."""


class FileToInstall(Protocol):
    """One verified file of a version (:class:`airlock.node._verify.VerifiedFile`)."""

    @property
    def filename(self) -> str:
        """The file's name inside the slot."""
        ...

    @property
    def length(self) -> int:
        """Its signed length in bytes."""
        ...

    @property
    def primary(self) -> bool:
        """Whether it is the version's primary model file."""
        ...


Download = Callable[[Any, Path], Path]
"""``verifier.download(file, dest) -> path``: fetches and verifies one file to ``dest``."""


@dataclass
class SlotRecord:
    """What one slot holds."""

    version: str | None = None
    sha256: str | None = None
    state: str = EMPTY
    reason: str = ""
    primary: str | None = None
    """The primary model file's name."""

    def holds(self, version: str, sha256: str) -> bool:
        """Whether the slot holds exactly this version (same primary file)."""
        return self.version == version and self.sha256 == sha256 and self.state != INSTALLING

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "version": self.version,
            "sha256": self.sha256,
            "state": self.state,
            "reason": self.reason,
            "primary": self.primary,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SlotRecord:
        """Parses :meth:`to_dict` output; an install cut short reads back as empty."""
        state = str(data.get("state", EMPTY))
        if state not in SLOT_STATES or state == INSTALLING:
            return cls()
        return cls(
            data.get("version"),
            data.get("sha256"),
            state,
            str(data.get("reason", "")),
            data.get("primary"),
        )


@dataclass
class FamilySlots:
    """One model family's two slots, which one is active, and the family's state."""

    model: str
    active: str = SLOTS[0]
    slots: dict[str, SlotRecord] = field(
        default_factory=lambda: {name: SlotRecord() for name in SLOTS}
    )
    state: str = "committed"
    """As reported: ``committed``, ``installing``, ``health-check``, ``fell-back``, ``refused``."""
    stable: str | None = None
    """The version served as stable (None: nothing committed)."""
    candidate: str | None = None
    """The candidate version served beside it, if any."""
    traffic: str = "all"
    split_percent: int = 0

    @staticmethod
    def other(slot: str) -> str:
        """The slot that is not ``slot``."""
        return SLOTS[1] if slot == SLOTS[0] else SLOTS[0]

    @property
    def active_record(self) -> SlotRecord:
        """The active slot's record."""
        return self.slots[self.active]

    def slot_of(self, version: str, sha256: str) -> str | None:
        """The slot holding ``version`` (with this primary file), if any."""
        for name in SLOTS:
            if self.slots[name].holds(version, sha256):
                return name
        return None

    def install_target(self, keep: str | None = None) -> str:
        """Where a new version goes: an empty active slot, else the inactive one.

        Args:
            keep: A slot that must not be overwritten either (the stable version's).

        Raises:
            ConflictError: both slots must be kept.
        """
        empty = self.active_record.version is None and self.active_record.state == EMPTY
        if empty and keep != self.active:
            return self.active
        target = self.other(self.active)
        if target == keep:
            raise ConflictError(
                f"{self.model}: both slots hold versions that must be kept",
                hint="the site director assigned a candidate while the stable one is not active",
            )
        return target

    def commit(self, slot: str) -> None:
        """Makes ``slot`` the active slot (its version answers from now on)."""
        self.active = slot

    def fall_back(self, slot: str, reason: str) -> None:
        """Marks ``slot`` failed; the active slot stays as it is."""
        self.slots[slot].state = FAILED
        self.slots[slot].reason = reason
        self.state = "fell-back"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "model": self.model,
            "active": self.active,
            "state": self.state,
            "slots": {name: record.to_dict() for name, record in self.slots.items()},
            "stable": self.stable,
            "candidate": self.candidate,
            "traffic": self.traffic,
            "split_percent": self.split_percent,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FamilySlots:
        """Parses :meth:`to_dict` output."""
        slots = data.get("slots") or {}
        active = str(data.get("active", SLOTS[0]))
        return cls(
            model=str(data["model"]),
            active=active if active in SLOTS else SLOTS[0],
            slots={name: SlotRecord.from_dict(slots.get(name) or {}) for name in SLOTS},
            state=str(data.get("state", "committed")),
            stable=data.get("stable"),
            candidate=data.get("candidate"),
            traffic=str(data.get("traffic", "all")),
            split_percent=int(data.get("split_percent") or 0),
        )


class SlotStore:
    """The slot directories of every family under one root (``HOME/slots``)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def directory(self, model: str, slot: str) -> Path:
        """The directory of ``model``'s slot ``slot``."""
        return self.root / check_name("model name", model) / slot

    def install(
        self,
        family: FamilySlots,
        slot: str,
        version: str,
        sha256: str,
        files: Iterable[FileToInstall],
        download: Download,
    ) -> Path:
        """Downloads every file of ``version`` into ``slot`` (atomically); returns the directory.

        The family record marks the slot ``installing`` first and ``installed``
        when the files are in place; the caller persists it around the call.

        Raises:
            ConflictError: ``slot`` is the active slot and holds a version.
                (An empty active slot, or one this install marked ``installing``, is fine.)
            IntegrityError: a downloaded file is not the signed length.
            AirlockError: whatever ``download`` raises (the slot is then empty).
        """
        if slot == family.active and family.slots[slot].state not in (EMPTY, INSTALLING):
            raise ConflictError(
                f"{family.model}: refusing to overwrite the active slot {slot}",
                hint="new versions go into the inactive slot",
            )
        family_dir = self.root / check_name("model name", family.model)
        family_dir.mkdir(parents=True, exist_ok=True)
        family.slots[slot] = SlotRecord(version, sha256, INSTALLING)
        incoming = Path(tempfile.mkdtemp(prefix=f".incoming-{slot}-", dir=family_dir))
        primary = None
        try:
            for file in files:
                primary = file.filename if file.primary else primary
                dest = incoming / check_name("file name", file.filename)
                got = Path(download(file, dest))
                if got != dest:
                    shutil.move(str(got), dest)
                if dest.stat().st_size != file.length:
                    raise IntegrityError(
                        f"{family.model}@{version}: {file.filename} is {dest.stat().st_size} "
                        f"bytes, the signed length is {file.length}"
                    )
            target = family_dir / slot
            _replace_dir(incoming, target)
        except BaseException:
            shutil.rmtree(incoming, ignore_errors=True)
            family.slots[slot] = SlotRecord()
            raise
        family.slots[slot] = SlotRecord(version, sha256, INSTALLED, primary=primary)
        return target


def _replace_dir(source: Path, target: Path) -> None:
    """Renames ``source`` to ``target``, removing what ``target`` held."""
    if target.exists():
        trash = Path(tempfile.mkdtemp(prefix=f".trash-{target.name}-", dir=target.parent))
        target.rename(trash / target.name)
        source.rename(target)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        source.rename(target)
