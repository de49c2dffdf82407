"""Format-2 bundles from the hub's real plan: real keys, real age, real TUF, real volumes.

Until the hub writes format 2 itself, the spoke's tests build format-2 bundles
here from :func:`airlock.hub.export.plan_export` (whose Director targets sign
every carried file's chunk-index binding), with the volume layer's own writers
(:func:`airlock.bundles.volumes.write_series`, ``write_site_part``), and the
envelope signed with the hub's real envelope key — as
:mod:`helpers.bundlecraft` does for format 1. Nothing here changes the hub's
state: the plan is never committed.

Attacks edit what a courier (or a compromised envelope key) could: volume files,
the envelope (re-signed with the real key), the per-site part (re-encrypted to
the site and re-signed into the envelope) — or, for a per-site part the writer
would refuse to make (links, escaping paths, unknown entries), exactly the tar
entries given (:meth:`V2Bundle.write_raw_site_part`, the format-2 counterpart of
:func:`helpers.bundlecraft.forge_raw_bundle`).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airlock.bundles.agestream import AgeWriter
from airlock.bundles.bundle import ENVELOPE_FILE, hash_file, sign_envelope
from airlock.bundles.canonical import pretty_bytes
from airlock.bundles.chunks import ChunkIndex
from airlock.bundles.models import DATA, PARITY, Envelope, PayloadPart, VolumeRecord
from airlock.bundles.volumes import (
    Layout,
    SeriesFile,
    SeriesSpec,
    new_name_key,
    new_series_id,
    write_series,
    write_site_part,
)
from airlock.hub.context import HubContext
from airlock.hub.export import ExportPlan, director_roots
from helpers.bundlecraft import Entry, envelope_signer, regular, tar_bytes


@dataclass
class V2Bundle:
    """A format-2 bundle written by :func:`write_v2_bundle`.

    Attributes:
        root: The bundle directory (volumes at its top level).
        site_dir: Where ``envelope.json`` and ``site.age`` are (``root`` or
            ``root/sites/<site>``).
        envelope: The signed envelope.
        plan: The hub's plan it was made from.
        metadata: The metadata in the per-site part.
        indexes: The chunk index bytes in the per-site part, by file SHA-256.
        layout: The layout in the per-site part.
    """

    root: Path
    site_dir: Path
    envelope: Envelope
    plan: ExportPlan
    metadata: list[tuple[str, bytes]]
    indexes: dict[str, bytes]
    layout: Layout
    recipients: tuple[str, ...] | None = field(default=None)

    def data_volumes(self) -> list[VolumeRecord]:
        """The data volume records, in order."""
        return [v for v in self.envelope.volumes if v.kind == DATA]

    def parity_volumes(self) -> list[VolumeRecord]:
        """The parity volume records, in order."""
        return [v for v in self.envelope.volumes if v.kind == PARITY]

    def path(self, record: VolumeRecord) -> Path:
        """Where a volume's file is."""
        return self.root / record.name

    def scatter(self, dest: Path, groups: list[list[VolumeRecord]]) -> list[Path]:
        """Copies the bundle onto several "media": ``dest/m1`` gets the envelope and site part
        (and the first group), ``dest/m2``… the other groups of volumes. Returns the directories.
        """
        dirs = []
        for number, group in enumerate(groups, start=1):
            medium = dest / f"m{number}"
            medium.mkdir(parents=True)
            for record in group:
                shutil.copy2(self.path(record), medium / record.name)
            dirs.append(medium)
        if not dirs:
            dirs.append(dest / "m1")
            dirs[0].mkdir(parents=True)
        for name in (
            ENVELOPE_FILE,
            self.envelope.site_part.name if self.envelope.site_part else "",
        ):
            if name:
                shutil.copy2(self.site_dir / name, dirs[0] / name)
        return dirs

    def resign(self, hub: HubContext, **changes: Any) -> Envelope:
        """Signs the envelope again (real envelope key) with ``changes`` to its fields."""
        self.envelope = dataclasses.replace(self.envelope, **changes)
        (self.site_dir / ENVELOPE_FILE).write_bytes(
            sign_envelope(self.envelope, [envelope_signer(hub)], director_roots(self.plan.metadata))
        )
        return self.envelope

    def rewrite_site_part(
        self,
        hub: HubContext,
        indexes: Mapping[str, bytes] | None = None,
        metadata: list[tuple[str, bytes]] | None = None,
        layout: Layout | None = None,
    ) -> Envelope:
        """Writes a new per-site part (to the site) and signs it into the envelope (real key)."""
        (self.site_dir / self.envelope.site_part.name).unlink()  # type: ignore[union-attr]
        name, size, digest = write_site_part(
            self.site_dir,
            self.recipients,
            metadata if metadata is not None else self.metadata,
            dict(indexes if indexes is not None else self.indexes),
            layout or self.layout,
        )
        return self.resign(hub, site_part=PayloadPart(name, size, digest))

    def site_part_entries(self) -> list[Entry]:
        """The entries of the genuine per-site part, in the writer's order."""
        return [
            *(regular(name, data) for name, data in self.metadata),
            *(regular(f"index/{sha}.json", data) for sha, data in sorted(self.indexes.items())),
            regular("layout.json", self.layout.to_bytes()),
        ]

    def write_raw_site_part(self, hub: HubContext, entries: list[Entry]) -> Envelope:
        """Replaces the per-site part with exactly ``entries`` (a pax tar), encrypted to the
        site, and signs its size and SHA-256 into the envelope (real key): what a compromised
        hub could ship, with only the strict reader in the way."""
        assert self.recipients, "an encrypted bundle"
        path = self.site_dir / self.envelope.site_part.name  # type: ignore[union-attr]
        with path.open("wb") as out:
            writer = AgeWriter(out, list(self.recipients))
            writer.write(tar_bytes(entries))
            writer.close()
        return self.resign(hub, site_part=PayloadPart(path.name, *hash_file(path)))


def write_v2_bundle(
    hub: HubContext,
    plan: ExportPlan,
    out: Path,
    *,
    volume_size: int | None = None,
    parity: int = 0,
    multi_site_layout: bool = False,
    recipients: tuple[str, ...] | str | None = "plan",
    metadata: list[tuple[str, bytes]] | None = None,
    edit_indexes: Callable[[dict[str, ChunkIndex]], None] | None = None,
) -> V2Bundle:
    """Writes ``plan`` as a format-2 bundle into ``out`` (a new directory); see the module doc.

    Args:
        hub: The hub (its real envelope key signs).
        plan: The hub's export plan (not committed).
        out: The bundle directory to create.
        volume_size: Most bytes per data volume (None: one volume).
        parity: Parity volumes.
        multi_site_layout: Put the envelope and site part in ``sites/<site>/``.
        recipients: The volumes' and site part's age recipients ("plan": the plan's).
        metadata: The per-site part's metadata (default: the plan's).
        edit_indexes: Changes the indexes before anything is written (a lying hub).
    """
    out.mkdir(parents=True)
    chosen = (
        (tuple(plan.recipients) if plan.recipients else None)
        if recipients == "plan"
        else recipients
    )
    assert not isinstance(chosen, str)
    indexes = dict(plan.indexes)
    if edit_indexes is not None:
        edit_indexes(indexes)
    name_key = new_name_key()
    series_records, volumes, layout_series = [], [], []
    if plan.blobs:
        spec = SeriesSpec(
            id=new_series_id(),
            recipients=chosen,
            files=tuple(SeriesFile(b.sha256, Path(b.path), indexes[b.sha256]) for b in plan.blobs),
        )
        written = write_series(out, spec, name_key, volume_size, parity)
        series_records.append(written.series)
        volumes.extend(written.volumes)
        layout_series.append(written.layout)
    layout = Layout(name_key=name_key, series=tuple(layout_series))
    site_dir = out / "sites" / plan.site_id if multi_site_layout else out
    site_dir.mkdir(parents=True, exist_ok=True)
    index_bytes = {sha: index.to_bytes() for sha, index in indexes.items()}
    meta = list(metadata if metadata is not None else plan.metadata)
    name, size, digest = write_site_part(site_dir, chosen, meta, index_bytes, layout)
    envelope = Envelope(
        bundle_id=plan.bundle_id,
        kind=plan.kind,
        source="hub",
        site_id=plan.site_id,
        sequence=plan.sequence,
        created=plan.created,
        expires=plan.expires,
        encrypted=chosen is not None,
        parts=(),
        format_version=2,
        omitted=plan.omitted,
        site_part=PayloadPart(name, size, digest),
        series=tuple(series_records),
        volumes=tuple(volumes),
    )
    (site_dir / ENVELOPE_FILE).write_bytes(
        sign_envelope(envelope, [envelope_signer(hub)], director_roots(plan.metadata))
    )
    return V2Bundle(out, site_dir, envelope, plan, meta, index_bytes, layout, chosen)


def edit_envelope_json(bundle: V2Bundle, edit: Callable[[dict[str, Any]], None]) -> None:
    """Edits the envelope file in place without signing it again (a courier's edit)."""
    path = bundle.site_dir / ENVELOPE_FILE
    doc = json.loads(path.read_bytes())
    edit(doc)
    path.write_bytes(pretty_bytes(doc))
