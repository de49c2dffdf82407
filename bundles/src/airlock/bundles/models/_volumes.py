"""What a format-2 envelope signs about the media: the per-site part, the series and volumes.

A format-2 bundle carries its model files as chunks in numbered **data
volumes** (standard age files, or tars when the site takes no encryption),
grouped in **series**: one series per set of sites that share the content.
A series may add **parity volumes** (zfec check shares over the data
volumes' bytes), so that any ``data`` of its ``data + parity`` volumes
rebuild it. The small **per-site part** (``site.age``) carries the TUF
metadata, the chunk indexes and the layout.

A volume's file name is derived from its fields (never chosen freely), so
a name on the medium says what the file claims to be:
``<series>-data-003-of-007.age`` and ``<series>-parity-001-of-002.zfec``.
Data volumes carry no hash here (each chunk is checked against the signed
chunk index, and age authenticates every 64 KiB); parity volumes do (a
rebuild trusts their bytes only once they match).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from airlock.bundles.errors import MediaError
from airlock.bundles.models._names import ENVELOPE_HINT, SHA256_PATTERN
from airlock.bundles.strict import MAX_SAFE_INTEGER, exact_keys, get_int, get_str

SERIES_PATTERN = re.compile(r"[0-9a-f]{16}")
SITE_PART_NAMES = ("site.age", "site.tar")
DATA = "data"
PARITY = "parity"
MAX_VOLUMES = 256
"""zfec codes at most 256 shares: data + parity volumes of one series."""
MIN_STRIPE, MAX_STRIPE = 4096, 64 << 20


def volume_name(series: str, kind: str, number: int, of: int, encrypted: bool) -> str:
    """The file name of a volume (see the module docstring)."""
    suffix = ".zfec" if kind == PARITY else (".age" if encrypted else ".tar")
    return f"{series}-{kind}-{number:03d}-of-{of:03d}{suffix}"


@dataclass(frozen=True)
class SeriesRecord:
    """One series: its id, how many data and parity volumes, the parity stripe in bytes."""

    id: str
    data: int
    parity: int
    stripe: int

    def __post_init__(self) -> None:
        if not SERIES_PATTERN.fullmatch(self.id):
            raise MediaError(f"invalid series id {self.id[:40]!r}", hint=ENVELOPE_HINT)
        if not (self.data >= 1 and 0 <= self.parity <= self.data):
            raise MediaError(
                f"series {self.id}: {self.data} data and {self.parity} parity volumes "
                "(at least one data volume, at most as many parity as data volumes)",
                hint=ENVELOPE_HINT,
            )
        if self.data + self.parity > MAX_VOLUMES or not MIN_STRIPE <= self.stripe <= MAX_STRIPE:
            raise MediaError(
                f"series {self.id}: volume count or stripe out of range", hint=ENVELOPE_HINT
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"id": self.id, "data": self.data, "parity": self.parity, "stripe": self.stripe}

    @classmethod
    def from_dict(cls, data: Any) -> SeriesRecord:
        """Parses :meth:`to_dict` output strictly (TypeError/ValueError/MediaError)."""
        exact_keys(data, "a series", ("id", "data", "parity", "stripe"))
        return cls(
            id=get_str(data, "id"),
            data=get_int(data, "data", low=1, high=MAX_VOLUMES),
            parity=get_int(data, "parity", high=MAX_VOLUMES),
            stripe=get_int(data, "stripe", low=1),
        )


@dataclass(frozen=True)
class VolumeRecord:
    """One volume file: which series, data or parity, its number, its size (and parity hash)."""

    name: str
    series: str
    kind: str
    number: int
    of: int
    size: int
    sha256: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in (DATA, PARITY) or not SERIES_PATTERN.fullmatch(self.series):
            raise MediaError(f"invalid volume {self.name[:80]!r}", hint=ENVELOPE_HINT)
        if not 1 <= self.number <= self.of <= MAX_VOLUMES or not 0 <= self.size <= MAX_SAFE_INTEGER:
            raise MediaError(
                f"volume {self.name[:80]!r}: number or size out of range", hint=ENVELOPE_HINT
            )
        if self.name not in {
            volume_name(self.series, self.kind, self.number, self.of, encrypted)
            for encrypted in (True, False)
        }:
            raise MediaError(
                f"volume name {self.name[:80]!r} does not say what the envelope says it is",
                hint=ENVELOPE_HINT,
            )
        if (self.kind == PARITY) != (self.sha256 is not None) or (
            self.sha256 is not None and not SHA256_PATTERN.fullmatch(self.sha256)
        ):
            raise MediaError(
                f"volume {self.name}: a parity volume, and only a parity volume, has a SHA-256",
                hint=ENVELOPE_HINT,
            )

    @property
    def label(self) -> str:
        """How messages name it: ``volume 3 of 7 (<name>)`` or ``parity volume 1 of 2 (…)``."""
        noun = "volume" if self.kind == DATA else "parity volume"
        return f"{noun} {self.number} of {self.of} ({self.name})"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        doc: dict[str, Any] = {
            "name": self.name,
            "series": self.series,
            "kind": self.kind,
            "number": self.number,
            "of": self.of,
            "size": self.size,
        }
        if self.sha256 is not None:
            doc["sha256"] = self.sha256
        return doc

    @classmethod
    def from_dict(cls, data: Any) -> VolumeRecord:
        """Parses :meth:`to_dict` output strictly (TypeError/ValueError/MediaError)."""
        exact_keys(
            data, "a volume", ("name", "series", "kind", "number", "of", "size"), ("sha256",)
        )
        return cls(
            name=get_str(data, "name"),
            series=get_str(data, "series"),
            kind=get_str(data, "kind"),
            number=get_int(data, "number", low=1, high=MAX_VOLUMES),
            of=get_int(data, "of", low=1, high=MAX_VOLUMES),
            size=get_int(data, "size"),
            sha256=get_str(data, "sha256") if "sha256" in data else None,
        )


def check_media(
    series: tuple[SeriesRecord, ...], volumes: tuple[VolumeRecord, ...], encrypted: bool
) -> None:
    """Checks that the volumes are exactly those their series declare.

    Every series has data volumes 1…data and parity volumes 1…parity (each
    with ``of`` equal to that count), named for the envelope's encryption;
    parity volumes are as long as the longest data volume; no volume names
    an unknown series; no series id appears twice.

    Raises:
        MediaError: they are not.
    """
    ids = [s.id for s in series]
    if len(set(ids)) != len(ids):
        raise MediaError("the envelope lists a series twice", hint=ENVELOPE_HINT)
    expected = {}
    for record in series:
        for kind, count in ((DATA, record.data), (PARITY, record.parity)):
            for number in range(1, count + 1):
                expected[volume_name(record.id, kind, number, count, encrypted)] = record
    names = [v.name for v in volumes]
    if len(set(names)) != len(names) or set(names) != set(expected):
        raise MediaError(
            "the envelope's volumes are not exactly those its series declare",
            hint=ENVELOPE_HINT,
        )
    for record in series:
        own = [v for v in volumes if v.series == record.id]
        longest = max(v.size for v in own if v.kind == DATA)
        if any(v.kind == PARITY and v.size != longest for v in own):
            raise MediaError(
                f"series {record.id}: a parity volume is not as long as the longest data volume",
                hint=ENVELOPE_HINT,
            )
