"""Format 2 at the hub: volumes sized to the medium, parity, and the small per-site files.

A format-2 bundle (docs/bundle-format.md) carries the model files as chunks in
data volumes of at most ``--volume-size`` bytes, plus ``--parity`` zfec parity
volumes, and per site a small ``site.age`` (TUF metadata, chunk indexes, layout)
and ``envelope.json``. This module turns the hub's export plans into those files:

* :func:`write_shared_volumes` groups the files of one or several sites into
  series — one per exact set of sites that carry a file, encrypted to exactly
  those sites — and writes each series' volumes once
  (:func:`airlock.bundles.volumes.write_series`).
* :func:`write_site_files` writes one site's ``site.age`` and its signed
  ``envelope.json`` naming the series and volumes that site reads.

Volume sizes are decimal, as media are labelled: ``4.7G`` is 4,700,000,000
bytes (a DVD holds 4,707,319,808), ``4G`` fits a FAT32 stick (at most
4 GiB − 1), ``25G`` a 25 GB Blu-ray; ``GiB`` and friends are binary.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from securesystemslib.signer import Signer

from airlock.bundles.atomic import atomic_write_bytes
from airlock.bundles.bundle import ENVELOPE_FILE, BlobSource, sign_envelope
from airlock.bundles.chunks import ChunkIndex
from airlock.bundles.errors import UsageError
from airlock.bundles.models import (
    BUNDLE_FORMAT,
    BundleKind,
    Envelope,
    PayloadPart,
    SeriesRecord,
    VolumeRecord,
)
from airlock.bundles.progress import NO_PROGRESS, Progress
from airlock.bundles.volumes import (
    Layout,
    LayoutSeries,
    SeriesFile,
    SeriesSpec,
    new_name_key,
    new_series_id,
    write_series,
    write_site_part,
)

_UNITS = {
    "": 1,
    "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
    "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
    "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40,
}  # fmt: skip
_SIZE = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)")


@dataclass(frozen=True)
class MediaOptions:
    """How an export is cut for its media.

    Attributes:
        format_version: 2 (volumes) or 1 (one ``payload.age``, read by spokes of
            the previous release; no volumes, no parity).
        volume_size: The largest volume file in bytes (None: one data volume).
        parity: Parity volumes per series (any ``data`` of ``data + parity`` rebuild it).
    """

    format_version: int = BUNDLE_FORMAT
    volume_size: int | None = None
    parity: int = 0

    def __post_init__(self) -> None:
        if self.format_version not in (1, 2):
            raise UsageError(f"unknown bundle format {self.format_version}", hint="use 2 (or 1)")
        if self.format_version == 1 and (self.volume_size is not None or self.parity):
            raise UsageError(
                "format 1 has no volumes and no parity",
                hint="drop --format 1 to cut the bundle into volumes",
            )
        if self.parity < 0:
            raise UsageError("the number of parity volumes cannot be negative")


def parse_volume_size(text: str) -> int:
    """Bytes in a volume size such as ``4.7G``, ``700M``, ``25GB``, ``4GiB`` (see the docstring).

    Raises:
        UsageError: not a size.
    """
    match = _SIZE.fullmatch(text.strip())
    unit = match.group(2).upper() if match else ""
    if match is None or unit not in _UNITS:
        raise UsageError(
            f"{text[:40]!r} is not a volume size",
            hint="give a number with a unit as media are labelled: 700M, 4G, 4.7G, 25G "
            "(decimal), or 4GiB (binary)",
        )
    whole, _, fraction = match.group(1).partition(".")
    scale = _UNITS[unit]
    size = int(whole) * scale + (int(fraction) * scale // 10 ** len(fraction) if fraction else 0)
    if size <= 0:
        raise UsageError(f"a volume size of {text!r} is not positive")
    return size


@dataclass(frozen=True)
class SiteContent:
    """What one site's bundle carries: its recipients (None: unencrypted) and files."""

    site_id: str
    recipients: tuple[str, ...] | None
    blobs: tuple[BlobSource, ...]
    indexes: dict[str, ChunkIndex]


@dataclass
class SiteMedia:
    """The volumes one site reads, once they are written."""

    layout: Layout
    series: list[SeriesRecord] = field(default_factory=list)
    volumes: list[VolumeRecord] = field(default_factory=list)


def write_shared_volumes(
    out_dir: Path,
    contents: Sequence[SiteContent],
    media: MediaOptions,
    progress: Progress = NO_PROGRESS,
) -> dict[str, SiteMedia]:
    """Writes the data and parity volumes of every series into ``out_dir``.

    Every file goes into the series of the exact set of sites that carry it,
    encrypted to exactly those sites' recipients; one name key serves the run.

    Returns:
        Per site id: the layout, series and volume records it reads.

    Raises:
        UsageError: encrypted and unencrypted sites mixed, or a volume size or
            parity count the volumes cannot honour.
    """
    if len({c.recipients is None for c in contents}) > 1:
        raise UsageError(
            "an export for several sites cannot mix sites with and without encryption",
            hint="export the unencrypted site(s) separately",
        )
    name_key = new_name_key()
    carriers: dict[str, list[SiteContent]] = {}
    sources: dict[str, BlobSource] = {}
    for content in contents:
        for blob in content.blobs:
            carriers.setdefault(blob.sha256, []).append(content)
            sources.setdefault(blob.sha256, blob)
    groups: dict[tuple[str, ...], list[str]] = {}
    for sha256, sites in carriers.items():
        groups.setdefault(tuple(c.site_id for c in sites), []).append(sha256)
    by_site = {c.site_id: c for c in contents}
    written: dict[tuple[str, ...], LayoutSeries] = {}
    records: dict[tuple[str, ...], list[VolumeRecord]] = {}
    for site_ids, files in groups.items():
        recipients = _recipients([by_site[s] for s in site_ids])
        spec = SeriesSpec(
            id=new_series_id(),
            recipients=recipients,
            files=tuple(
                SeriesFile(sha256, sources[sha256].path, by_site[site_ids[0]].indexes[sha256])
                for sha256 in files
            ),
        )
        result = write_series(out_dir, spec, name_key, media.volume_size, media.parity, progress)
        written[site_ids], records[site_ids] = result.layout, list(result.volumes)
    media_of: dict[str, SiteMedia] = {}
    for content in contents:
        mine = [key for key in written if content.site_id in key]
        media_of[content.site_id] = SiteMedia(
            layout=Layout(name_key=name_key, series=tuple(written[key] for key in mine)),
            series=[written[key].record for key in mine],
            volumes=[v for key in mine for v in records[key]],
        )
    return media_of


def _recipients(contents: Sequence[SiteContent]) -> tuple[str, ...] | None:
    if contents[0].recipients is None:
        return None
    return tuple(dict.fromkeys(r for c in contents for r in c.recipients or ()))


def write_site_files(
    site_dir: Path,
    claims: EnvelopeClaims,
    metadata: list[tuple[str, bytes]],
    content: SiteContent,
    site_media: SiteMedia,
    signers: list[Signer],
    roots: dict[str, Any] | None,
) -> Envelope:
    """Writes one site's ``site.age`` and signed ``envelope.json`` into ``site_dir``.

    Returns:
        The envelope that was signed.
    """
    indexes = {sha256: index.to_bytes() for sha256, index in content.indexes.items()}
    name, size, sha256 = write_site_part(
        site_dir, content.recipients, metadata, indexes, site_media.layout
    )
    part = PayloadPart(name=name, size=size, sha256=sha256)
    envelope = Envelope(
        bundle_id=claims.bundle_id,
        kind=claims.kind,
        source=claims.source,
        site_id=content.site_id,
        sequence=claims.sequence,
        created=claims.created,
        expires=claims.expires,
        encrypted=content.recipients is not None,
        parts=(),
        format_version=2,
        omitted=claims.omitted,
        site_part=part,
        series=tuple(site_media.series),
        volumes=tuple(site_media.volumes),
    )
    atomic_write_bytes(site_dir / ENVELOPE_FILE, sign_envelope(envelope, signers, roots))
    return envelope


@dataclass(frozen=True)
class EnvelopeClaims:
    """What a site's envelope states besides its media (and the Director timestamp signs)."""

    bundle_id: str
    kind: BundleKind
    sequence: int
    created: dt.datetime
    expires: dt.datetime
    source: str = "hub"
    omitted: tuple[str, ...] = ()
