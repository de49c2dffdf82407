"""``airlock spoke import --status``: what a pending format-2 import holds and still needs.

Read from the import's state alone (no passphrase, no medium needed): the
envelope and per-site part an earlier run verified and kept, and the
assembler's record of every verified chunk. Per volume: verified, partial
(how many chunks), missing, damaged (why), pending (on the given media, not
read yet) or unused (nothing this site still needs from it); then, per series,
how many more volumes are needed and which would do.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
from dataclasses import dataclass, field
from typing import Any

from airlock.bundles.bundle import unverified_envelope
from airlock.bundles.chunks import ChunkIndex
from airlock.bundles.clock import utc_iso
from airlock.bundles.errors import AirlockError
from airlock.bundles.models import DATA, Envelope
from airlock.bundles.volumes import Assembler, AssemblyPlan, read_site_part
from airlock.spoke.importing import _pending as pending_state
from airlock.spoke.importing._media import Media
from airlock.spoke.importing._pending import PendingImport
from airlock.spoke.importing._volumes_import import WANTED_COPY, status_report
from airlock.spoke.site._home import SpokeHome


@dataclass
class PendingStatus:
    """One pending import, as ``--status`` shows it."""

    bundle_id: str
    sequence: int
    kind: str
    created: dt.datetime
    expires: dt.datetime
    started_at: dt.datetime
    site_part_verified: bool = False
    volumes: list[dict[str, Any]] = field(default_factory=list)
    files_complete: int = 0
    files_total: int = 0
    needed: list[str] = field(default_factory=list)
    """Per series that lacks volumes: how many more, and which would do."""
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "bundle_id": self.bundle_id,
            "sequence": self.sequence,
            "kind": self.kind,
            "created": utc_iso(self.created),
            "expires": utc_iso(self.expires),
            "started_at": utc_iso(self.started_at),
            "site_part_verified": self.site_part_verified,
            "files_complete": self.files_complete,
            "files_total": self.files_total,
            "volumes": self.volumes,
            "needed": self.needed,
            "note": self.note,
        }

    def lines(self, media: bool = False) -> list[str]:
        """Human-readable lines (``media``: the given directories were scanned)."""
        lines = [
            f"pending import of {self.kind} bundle {self.bundle_id} (sequence {self.sequence}), "
            f"begun {utc_iso(self.started_at)}, expires {utc_iso(self.expires)}"
        ]
        if self.note:
            return [*lines, f"  {self.note}"]
        if not self.site_part_verified:
            return [*lines, "  nothing verified yet: import with the media holding envelope.json"]
        for volume in self.volumes:
            lines.append(f"  {volume['label']}: {_describe(volume, media)}")
        lines.append(f"  files complete: {self.files_complete} of {self.files_total}")
        lines += [f"  still needed: {need}" for need in self.needed]
        if not self.needed:
            lines.append(
                "  nothing more is needed: import again with the media still to read"
                if self.files_complete < self.files_total
                else "  complete: import again to stage it"
            )
        return lines


def _describe(volume: dict[str, Any], media: bool) -> str:
    state = str(volume["state"])
    if state == "partial":
        text = f"partial ({volume['chunks_verified']:,} of {volume['chunks']:,} chunks verified)"
    elif state == "pending":
        text = "on the given media, not read yet" if media else "not read yet"
    elif state == "unused":
        text = "not needed"
    else:
        text = state
    if volume["rebuilt"]:
        text += " (rebuilt from parity)"
    if volume["damage"]:
        text += ": " + "; ".join(volume["damage"][:3])
    return text


def pending_status(
    home: SpokeHome, pending: PendingImport, media: Media | None, read_state: bool
) -> PendingStatus:
    """The status of one pending import (``read_state``: the import lock is held)."""
    envelope = unverified_envelope(pending.read(pending_state.ENVELOPE_COPY) or b"")
    status = PendingStatus(
        pending.bundle_id,
        pending.sequence,
        str(envelope.kind),
        pending.created,
        pending.expires,
        pending.started_at,
    )
    if not read_state:
        status.note = "another import is running: its volumes are shown when it ends"
        return status
    wanted = pending.read(WANTED_COPY)
    copy = pending.path / pending_state.SITE_PART_COPY
    if wanted is None or not os.path.lexists(copy):
        return status
    try:
        _fill(status, pending, envelope, copy, json.loads(wanted), media)
    except (AirlockError, ValueError, KeyError, OSError) as exc:
        status.note = f"its state cannot be read ({exc}); abandon it with --abandon"
    return status


def _fill(
    status: PendingStatus,
    pending: PendingImport,
    envelope: Envelope,
    copy: Any,
    wanted: dict[str, int],
    media: Media | None,
) -> None:
    fd = os.open(copy, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError("the kept per-site part is not a regular file")
        site = read_site_part(fd, None)
    finally:
        os.close(fd)
    indexes = {sha: ChunkIndex.from_bytes(site.indexes[sha]) for sha in wanted}
    plan = AssemblyPlan(envelope.series, envelope.volumes, site.layout, indexes, frozenset(wanted))
    status.site_part_verified = True
    if not wanted:
        return
    with Assembler(plan, pending.assembly, None) as assembler:
        if media is not None:
            assembler.found = {
                n: p
                for n, p in media.volumes.items()
                if n in assembler.infos or n in assembler.parity_records
            }
        report = status_report(assembler.status())
    status.volumes = report["volumes"]
    status.files_complete, status.files_total = report["files_complete"], report["files_total"]
    status.needed = still_needed(envelope, status.volumes)


def still_needed(envelope: Envelope, volumes: list[dict[str, Any]]) -> list[str]:
    """Per series: how many more volumes are needed, and which (any of them) would do."""
    needed = []
    by_name = {v.name: v for v in envelope.volumes}
    for series in envelope.series:
        own = [v for v in volumes if by_name[v["name"]].series == series.id]
        lacking = [v for v in own if v["kind"] == DATA and v["state"] in ("missing", "damaged")]
        usable_parity = [v for v in own if v["kind"] != DATA and v["state"] in ("pending",)]
        more = len(lacking) - len(usable_parity)
        if more <= 0:
            continue
        candidates = lacking + [
            v for v in own if v["kind"] != DATA and v["state"] in ("missing", "unused")
        ]
        names = ", ".join(v["label"] for v in candidates)
        if more >= len(candidates):
            needed.append(f"all of: {names}")
        else:
            needed.append(f"any {more} more of: {names}")
    return needed
