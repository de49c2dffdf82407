"""``airlock bundle inspect``: what a bundle's plaintext envelope says, with no key at all.

For the site admin at the import machine and the courier packing media:
which site, which sequence and kind, when it expires, how many volumes,
which of them the given directories hold (by name and size — nothing is
decrypted and no signature is checked, so the answer is a description, not
a verdict), and whether what is missing can still be rebuilt from parity.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from airlock.bundles.bundle._envelope import parse_envelope_document
from airlock.bundles.bundle._media import LocatedBundle, locate_bundle
from airlock.bundles.clock import utc_iso
from airlock.bundles.models import DATA


def inspect_bundle(
    directories: Sequence[Path], now: dt.datetime, site_id: str | None = None
) -> dict[str, Any]:
    """Describes the bundle on ``directories`` (JSON-ready; see the module docstring).

    Raises:
        UsageError: no directory, or several sites' envelopes and no ``site_id``.
        MediaError: no envelope, or files that make the reading ambiguous.
    """
    located = locate_bundle(directories, site_id)
    envelope = located.envelope
    signatures = parse_envelope_document(located.envelope_bytes).signatures
    report: dict[str, Any] = {
        "envelope": str(located.envelope_dir / "envelope.json"),
        "envelope_sha256": hashlib.sha256(located.envelope_bytes).hexdigest(),
        "verified": False,
        "format_version": envelope.format_version,
        "bundle_id": envelope.bundle_id,
        "site_id": envelope.site_id,
        "kind": str(envelope.kind),
        "sequence": envelope.sequence,
        "created": utc_iso(envelope.created),
        "expires": utc_iso(envelope.expires),
        "expired": now >= envelope.expires,
        "encrypted": envelope.encrypted,
        "signed_by": [s.keyid for s in signatures],
        "omitted": list(envelope.omitted),
    }
    if envelope.format_version == 1:
        report["parts"] = [
            _file(located.envelope_dir / p.name, p.size) | {"name": p.name} for p in envelope.parts
        ]
        return report
    assert envelope.site_part is not None
    report["site_part"] = {"name": envelope.site_part.name} | (
        _file(located.site_part, envelope.site_part.size)
        if located.site_part
        else {"size": envelope.site_part.size, "state": "missing"}
    )
    report["series"] = _series(located)
    report["volumes"] = [
        {
            "name": v.record.name,
            "series": v.record.series,
            "kind": v.record.kind,
            "number": v.record.number,
            "of": v.record.of,
            "size": v.record.size,
            "state": v.state,
            "path": str(v.path) if v.path else None,
        }
        for v in located.volumes
    ]
    return report


def _file(path: Path | None, size: int) -> dict[str, Any]:
    if path is None:
        return {"size": size, "state": "missing"}
    try:
        found = path.lstat().st_size
    except FileNotFoundError:
        return {"size": size, "state": "missing"}
    return {"size": size, "state": "present" if found == size else "wrong size", "path": str(path)}


def _series(located: LocatedBundle) -> list[dict[str, Any]]:
    """Per series: how many volumes are present, and whether the rest can be rebuilt."""
    result = []
    for series in located.envelope.series:
        own = [v for v in located.volumes if v.record.series == series.id]
        usable = sum(1 for v in own if v.state == "present")
        lost_data = [v.record.label for v in own if v.record.kind == DATA and v.state != "present"]
        result.append(
            {
                "id": series.id,
                "data": series.data,
                "parity": series.parity,
                "present": usable,
                "lost_data": lost_data,
                "complete": not lost_data,
                "rebuildable": usable >= series.data,
                "needed": max(series.data - usable, 0),
            }
        )
    return result
