"""What an assembly expects, derived from verified inputs before any volume is read.

From the signed envelope's series and volume records, the layout (per-site part)
and the verified chunk indexes, this module works out, for every data volume the
site reads, its exact plaintext (:class:`VolumeInfo`: every entry's name, hash,
length and offset), and for every chunk a wanted file needs, where in which
``.part`` file it goes. A layout that does not match the indexes or the envelope
is refused here, before any volume is opened.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from airlock.bundles.canonical import canonical_bytes
from airlock.bundles.chunks._index import ChunkIndex
from airlock.bundles.errors import IntegrityError, UsageError
from airlock.bundles.models._volumes import DATA, PARITY, SeriesRecord, VolumeRecord
from airlock.bundles.volumes._format import Entry, chunk_name, lay_out, volume_head
from airlock.bundles.volumes._layout import Layout, LayoutSeries

_HINT = "the bundle's per-site part does not match its signed metadata; do not import it"


@dataclass(frozen=True)
class AssemblyPlan:
    """A verified plan: what to read and what to build.

    Attributes:
        series: The series records of the signed envelope.
        volumes: The volume records of the signed envelope.
        layout: The layout from the per-site part.
        indexes: File SHA-256 -> its chunk index, each checked against its signed binding.
        wanted: The files to assemble (SHA-256).
    """

    series: tuple[SeriesRecord, ...]
    volumes: tuple[VolumeRecord, ...]
    layout: Layout
    indexes: Mapping[str, ChunkIndex]
    wanted: frozenset[str]


@dataclass(frozen=True)
class VolumeInfo:
    """A data volume as the layout says it must be, byte for byte."""

    record: VolumeRecord
    entries: tuple[Entry, ...]
    plain_size: int
    head: bytes


@dataclass
class SeriesInfo:
    """A series the site reads: its records and volumes."""

    layout: LayoutSeries
    data: list[VolumeInfo] = field(default_factory=list)
    parity: list[VolumeRecord] = field(default_factory=list)


@dataclass(frozen=True)
class Resolved:
    """The plan worked out (see the module docstring).

    Attributes:
        series: Every series the layout lists.
        targets: Chunk name -> ``(file sha256, offset)`` for every place a wanted file needs it.
        plan_id: A digest naming this plan (a state directory belongs to one plan).
    """

    series: tuple[SeriesInfo, ...]
    targets: dict[str, list[tuple[str, int]]]
    plan_id: str


def resolve(plan: AssemblyPlan) -> Resolved:
    """Checks the layout against the envelope and indexes and works out every volume.

    Raises:
        IntegrityError: the layout does not match the envelope or the indexes.
        UsageError: a wanted file has no index.
    """
    key = plan.layout.name_key
    chunks: dict[str, tuple[str, int]] = {}
    for index in plan.indexes.values():
        for i, sha in enumerate(index.chunks):
            chunks.setdefault(chunk_name(key, sha), (sha, index.span(i)[1]))
    records = {r.id: r for r in plan.series}
    by_name = {(v.series, v.kind, v.number): v for v in plan.volumes}
    infos = []
    placed: set[str] = set()
    for series in plan.layout.series:
        record = records.get(series.id)
        if record is None or record != series.record:
            raise IntegrityError(
                f"the layout's series {series.id} is not the one the envelope signs", hint=_HINT
            )
        info = SeriesInfo(layout=series)
        for volume in series.volumes:
            vrec = by_name.get((series.id, DATA, volume.number))
            if vrec is None or vrec.of != series.data or vrec.size != volume.size:
                raise IntegrityError(
                    f"the layout's volume {volume.number} of series {series.id} is not the one "
                    "the envelope signs",
                    hint=_HINT,
                )
            placed_here = []
            for name in volume.chunks:
                if name not in chunks:
                    raise IntegrityError(
                        f"the layout places chunk {name} in {vrec.label}, but no chunk index "
                        "has it",
                        hint=_HINT,
                    )
                placed_here.append((name, *chunks[name]))
            entries, plain_size = lay_out(placed_here)
            placed.update(volume.chunks)
            head = volume_head(series.id, volume.number, series.data)
            info.data.append(VolumeInfo(vrec, tuple(entries), plain_size, head))
        for number in range(1, series.parity + 1):
            prec = by_name.get((series.id, PARITY, number))
            if prec is None:
                raise IntegrityError(
                    f"the envelope lists no parity volume {number} of series {series.id}",
                    hint=_HINT,
                )
            info.parity.append(prec)
        infos.append(info)
    targets = _targets(plan, placed)
    return Resolved(series=tuple(infos), targets=targets, plan_id=_plan_id(plan))


def _targets(plan: AssemblyPlan, placed: set[str]) -> dict[str, list[tuple[str, int]]]:
    key = plan.layout.name_key
    targets: dict[str, list[tuple[str, int]]] = {}
    for sha in sorted(plan.wanted):
        index = plan.indexes.get(sha)
        if index is None:
            raise UsageError(f"file {sha} is wanted but has no chunk index")
        for i, chunk in enumerate(index.chunks):
            name = chunk_name(key, chunk)
            if name not in placed:
                raise IntegrityError(
                    f"chunk {i:,} of file {sha[:16]}… is in no volume of the layout", hint=_HINT
                )
            targets.setdefault(name, []).append((sha, index.span(i)[0]))
    return targets


def _plan_id(plan: AssemblyPlan) -> str:
    doc = {
        "layout": hashlib.sha256(plan.layout.to_bytes()).hexdigest(),
        "volumes": [v.to_dict() for v in plan.volumes],
        "wanted": sorted(plan.wanted),
        "indexes": sorted(i.digest() for i in plan.indexes.values()),
    }
    return hashlib.sha256(canonical_bytes(doc)).hexdigest()
