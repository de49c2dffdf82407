"""``layout.json``: where every chunk is, per series and data volume (inside the per-site part).

Canonical JSON::

    {"format": "airlock-layout/2", "name_key": "<64 hex>",
     "series": [{"id": "<series>", "data": 7, "parity": 2, "stripe": 1048576,
                 "volumes": [{"number": 1, "size": 4700000000, "chunks": ["<name>", …]}, …]}]}

``size`` is the volume file's size in bytes. The layout is read strictly: exact
keys and types, volumes numbered 1…data in order, names 32 lower-case hex, no
name twice in one series.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from airlock.bundles.canonical import canonical_bytes
from airlock.bundles.errors import IntegrityError
from airlock.bundles.models._volumes import SERIES_PATTERN, SeriesRecord
from airlock.bundles.strict import exact_keys, get_int, get_str, strict_json
from airlock.bundles.volumes._format import NAME_KEY_BYTES

LAYOUT_FORMAT = "airlock-layout/2"
STRIPE = 1 << 20
"""Parity stripe in bytes (the contract's S)."""

_NAME = re.compile(r"[0-9a-f]{32}")
_KEY = re.compile(r"[0-9a-f]{64}")
_HINT = "the bundle's per-site part is damaged or forged; copy the bundle again"


@dataclass(frozen=True)
class LayoutVolume:
    """One data volume: its number, file size and chunk names in order."""

    number: int
    size: int
    chunks: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"number": self.number, "size": self.size, "chunks": list(self.chunks)}


@dataclass(frozen=True)
class LayoutSeries:
    """One series: its id, volume counts, stripe and data volumes."""

    id: str
    data: int
    parity: int
    stripe: int
    volumes: tuple[LayoutVolume, ...]

    @property
    def record(self) -> SeriesRecord:
        """The envelope's series record for it."""
        return SeriesRecord(id=self.id, data=self.data, parity=self.parity, stripe=self.stripe)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "id": self.id,
            "data": self.data,
            "parity": self.parity,
            "stripe": self.stripe,
            "volumes": [v.to_dict() for v in self.volumes],
        }


@dataclass(frozen=True)
class Layout:
    """The layout of one export run (see the module docstring)."""

    name_key: bytes
    series: tuple[LayoutSeries, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "format": LAYOUT_FORMAT,
            "name_key": self.name_key.hex(),
            "series": [s.to_dict() for s in self.series],
        }

    def to_bytes(self) -> bytes:
        """Canonical JSON bytes."""
        return canonical_bytes(self.to_dict())

    @classmethod
    def from_bytes(cls, data: bytes) -> Layout:
        """Parses a layout strictly.

        Raises:
            IntegrityError: not a well-formed layout.
        """
        try:
            doc = exact_keys(strict_json(data), "the layout", ("format", "name_key", "series"))
            if get_str(doc, "format") != LAYOUT_FORMAT:
                raise ValueError(f"format is not {LAYOUT_FORMAT!r}")
            key = get_str(doc, "name_key")
            if not _KEY.fullmatch(key):
                raise ValueError("name_key is not 64 lower-case hex digits")
            if not isinstance(doc["series"], list):  # empty: a bundle that carries no files
                raise ValueError("series is not a list")
            series = tuple(_series(item) for item in doc["series"])
            if len({s.id for s in series}) != len(series):
                raise ValueError("a series is listed twice")
            return cls(name_key=bytes.fromhex(key), series=series)
        except (ValueError, TypeError, RecursionError) as exc:
            raise IntegrityError(f"malformed layout.json: {exc}", hint=_HINT) from None
        except IntegrityError:
            raise
        except Exception as exc:  # MediaError from SeriesRecord, and the like
            raise IntegrityError(f"malformed layout.json: {exc}", hint=_HINT) from None

    def __post_init__(self) -> None:
        if len(self.name_key) != NAME_KEY_BYTES:
            raise ValueError("the name key is 32 bytes")


def _series(item: Any) -> LayoutSeries:
    doc = exact_keys(item, "a series", ("id", "data", "parity", "stripe", "volumes"))
    series_id = get_str(doc, "id")
    if not SERIES_PATTERN.fullmatch(series_id):
        raise ValueError(f"invalid series id {series_id[:40]!r}")
    record = SeriesRecord(
        id=series_id,
        data=get_int(doc, "data", low=1),
        parity=get_int(doc, "parity"),
        stripe=get_int(doc, "stripe", low=1),
    )
    volumes = doc["volumes"]
    if not isinstance(volumes, list) or len(volumes) != record.data:
        raise ValueError(f"series {series_id}: volumes is not a list of {record.data}")
    parsed = []
    seen: set[str] = set()
    for number, volume in enumerate(volumes, start=1):
        vdoc = exact_keys(volume, "a volume", ("number", "size", "chunks"))
        if get_int(vdoc, "number") != number:
            raise ValueError(f"series {series_id}: volumes are not numbered 1…{record.data}")
        chunks = vdoc["chunks"]
        if not isinstance(chunks, list) or not all(
            isinstance(c, str) and _NAME.fullmatch(c) for c in chunks
        ):
            raise ValueError(f"series {series_id} volume {number}: invalid chunk names")
        if seen.intersection(chunks) or len(set(chunks)) != len(chunks):
            raise ValueError(f"series {series_id}: a chunk name appears twice")
        seen.update(chunks)
        parsed.append(LayoutVolume(number, get_int(vdoc, "size"), tuple(chunks)))
    return LayoutSeries(record.id, record.data, record.parity, record.stripe, volumes=tuple(parsed))
