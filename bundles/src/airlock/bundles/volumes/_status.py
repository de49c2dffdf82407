"""What an assembly says about itself: per volume state, files complete, and the refusal text."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from airlock.bundles.errors import NotEnoughVolumesError
from airlock.bundles.models._volumes import DATA, VolumeRecord

VERIFIED = "verified"
PARTIAL = "partial"
MISSING = "missing"
DAMAGED = "damaged"
PENDING = "pending"
UNUSED = "unused"


@dataclass(frozen=True)
class VolumeStatus:
    """One volume as the assembly knows it.

    Attributes:
        record: The envelope's record (name, series, kind, number, of, size).
        state: ``verified``, ``partial``, ``missing``, ``damaged``, ``pending`` (found,
            not read yet) or ``unused`` (a parity volume not needed, or a data volume
            holding nothing this site still needs).
        verified: Chunk entries verified (data volumes).
        chunks: Chunk entries in the volume (data volumes).
        damage: Where and how it is damaged (empty unless damaged).
        rebuilt: Whether its chunks were (partly) rebuilt from parity.
    """

    record: VolumeRecord
    state: str
    verified: int = 0
    chunks: int = 0
    damage: tuple[str, ...] = ()
    rebuilt: bool = False

    def describe(self) -> str:
        """One line: ``volume 3 of 7 (<name>): partial (1,204 of 4,480 chunks)``."""
        text = f"{self.record.label}: {self.state}"
        if self.record.kind == DATA and (
            self.state in (PARTIAL, DAMAGED) or (self.state == MISSING and self.verified)
        ):
            text += f" ({self.verified:,} of {self.chunks:,} chunks verified)"
        if self.rebuilt:
            text += " (rebuilt from parity)"
        if self.damage:
            text += ": " + "; ".join(_strip(self.record, d) for d in self.damage[:3])
            if len(self.damage) > 3:
                text += f"; … {len(self.damage) - 3} more"
        return text


def _strip(record: VolumeRecord, text: str) -> str:
    prefix = record.label
    return text[len(prefix) :].lstrip(":, ") if text.startswith(prefix) else text


@dataclass(frozen=True)
class AssemblyStatus:
    """The whole assembly: every volume of the series the site reads, and the files."""

    volumes: tuple[VolumeStatus, ...]
    files_complete: int
    files_total: int

    @property
    def complete(self) -> bool:
        """Whether every wanted file is complete (every chunk verified)."""
        return self.files_complete == self.files_total

    def lines(self) -> list[str]:
        """Human-readable lines, one per volume, then the files."""
        lines = [v.describe() for v in self.volumes]
        lines.append(f"files complete: {self.files_complete:,} of {self.files_total:,}")
        return lines


def short_label(record: VolumeRecord) -> str:
    """``volume 3 (<name>)`` / ``parity 2 (<name>)``, as the refusal lists candidates."""
    noun = "volume" if record.kind == DATA else "parity"
    return f"{noun} {record.number} ({record.name})"


def not_enough(
    series: str,
    k: int,
    usable: int,
    candidates: Sequence[VolumeRecord],
    missing: Sequence[VolumeRecord],
    damaged: Sequence[tuple[VolumeRecord, str]],
) -> str:
    """The refusal text for one series that cannot be completed."""
    more = k - usable
    names = ", ".join(short_label(r) for r in candidates)
    need = (
        f"need {'this volume' if more == 1 else 'all of'}: {names}"
        if more >= len(candidates)
        else f"need any {more} more of: {names}"
    )
    parts = [f"series {series}: {usable} of the {k} volumes needed to rebuild are usable; {need}"]
    if missing:
        parts.append("missing: " + ", ".join(r.label for r in missing))
    if damaged:
        parts.append("damaged: " + "; ".join(text for _, text in damaged))
    return ". ".join(parts)


def refuse(texts: Sequence[str]) -> NotEnoughVolumesError:
    """The error for every series that cannot be completed."""
    return NotEnoughVolumesError(
        "not enough volumes to complete the import: " + " | ".join(texts),
        hint="bring the volumes named (from any copy of the media), then import again: "
        "what was verified is kept",
    )
