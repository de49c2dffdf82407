"""What a series will hold before a byte is written: chunks placed greedily into volumes.

Chunks are taken file by file, in order; a chunk already placed in the series (same
SHA-256) is not placed again. A volume takes chunks while its whole file (age
header, tags, tar headers and end-of-archive included) stays within the volume
size; then the next volume starts. A chunk never spans volumes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from airlock.bundles.chunks._index import CHUNK_SIZE, ChunkIndex
from airlock.bundles.errors import UsageError
from airlock.bundles.models._volumes import MAX_VOLUMES
from airlock.bundles.volumes._cipher import Geometry
from airlock.bundles.volumes._format import Entry, archive_size, chunk_name, entry_span, lay_out


@dataclass(frozen=True)
class SeriesFile:
    """A file to carry in a series.

    Attributes:
        sha256: Its SHA-256 (hex), the signed target's.
        path: Where its bytes are (the blob store).
        index: Its chunk index (every chunk is re-hashed against it while writing).
    """

    sha256: str
    path: Path
    index: ChunkIndex


@dataclass(frozen=True)
class SeriesSpec:
    """One series to write.

    Attributes:
        id: 16 lower-case hex, random per series.
        recipients: age recipients (``age1…``) of every site of the series; None: plain tars.
        files: The files, in the order their chunks are placed.
    """

    id: str
    recipients: tuple[str, ...] | None
    files: tuple[SeriesFile, ...]


@dataclass(frozen=True)
class Source:
    """Where a placed chunk's bytes come from: file and chunk number."""

    file: SeriesFile
    chunk: int


@dataclass
class PlannedVolume:
    """A data volume before it is written."""

    number: int
    entries: list[Entry] = field(default_factory=list)
    sources: list[Source] = field(default_factory=list)
    plain_size: int = 0
    file_size: int = 0


def minimum_volume_size(geometry: Geometry, chunk_size: int = CHUNK_SIZE) -> int:
    """The smallest volume size that holds one chunk of ``chunk_size`` bytes."""
    return geometry.file_size(archive_size(entry_span(chunk_size)))


def too_small(volume_size: int, minimum: int) -> UsageError:
    """The refusal of a volume size below the minimum (it names the minimum)."""
    return UsageError(
        f"a volume size of {volume_size:,} bytes cannot hold one chunk: "
        f"the minimum is {minimum:,} bytes",
        hint=f"give a volume size of at least {minimum:,} bytes (media are far larger)",
    )


def plan_volumes(
    spec: SeriesSpec, name_key: bytes, volume_size: int | None, geometry: Geometry, parity: int
) -> list[PlannedVolume]:
    """Places every distinct chunk of the series into data volumes.

    Raises:
        UsageError: the volume size cannot hold a chunk, or the volume and parity counts
            are out of bounds (more parity than data volumes, over 256 in all).
    """
    largest = max((f.index.chunk_size for f in spec.files), default=CHUNK_SIZE)
    if volume_size is not None:
        minimum = minimum_volume_size(geometry, largest)
        if volume_size < minimum:
            raise too_small(volume_size, minimum)
    seen: set[str] = set()
    groups: list[list[tuple[str, str, int, Source]]] = [[]]
    used = 0
    for item in spec.files:
        for i, sha in enumerate(item.index.chunks):
            if sha in seen:
                continue
            seen.add(sha)
            length = item.index.span(i)[1]
            span = entry_span(length)
            if (
                volume_size is not None
                and groups[-1]
                and geometry.file_size(archive_size(used + span)) > volume_size
            ):
                groups.append([])
                used = 0
            groups[-1].append((chunk_name(name_key, sha), sha, length, Source(item, i)))
            used += span
    _check_counts(len(groups), parity)
    volumes = []
    for number, group in enumerate(groups, start=1):
        entries, plain_size = lay_out([(n, s, length) for n, s, length, _ in group])
        volumes.append(
            PlannedVolume(
                number=number,
                entries=entries,
                sources=[g[3] for g in group],
                plain_size=plain_size,
                file_size=geometry.file_size(plain_size),
            )
        )
    return volumes


def _check_counts(data: int, parity: int) -> None:
    if parity < 0:
        raise UsageError("the number of parity volumes cannot be negative")
    if parity > data:
        raise UsageError(
            f"{parity} parity volumes for {data} data volume(s): at most one parity volume "
            "per data volume",
            hint=f"give --parity {data} or less, or a smaller --volume-size",
        )
    if data + parity > MAX_VOLUMES:
        raise UsageError(
            f"{data} data and {parity} parity volumes: at most {MAX_VOLUMES} volumes in all",
            hint="give a larger --volume-size (or fewer parity volumes)",
        )


def recipients_tuple(recipients: Sequence[str] | None) -> tuple[str, ...] | None:
    """Normalises a recipient list (None stays None)."""
    return None if recipients is None else tuple(recipients)
