"""The envelope of a bundle: its kind, its payload parts, and the signed plaintext
description (:class:`Envelope`) every receiver checks before decrypting anything."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from airlock.bundles.clock import parse_utc, utc_iso
from airlock.bundles.errors import MediaError
from airlock.bundles.models._names import (
    BUNDLE_ID_PATTERN,
    ENVELOPE_HINT,
    FORMAT_VERSION,
    FORMAT_VERSIONS,
    HUB_SOURCE,
    NAME_PATTERN,
    SHA256_PATTERN,
    SITE_PATTERN,
)
from airlock.bundles.models._volumes import (
    SITE_PART_NAMES,
    SeriesRecord,
    VolumeRecord,
    check_media,
)
from airlock.bundles.strict import (
    MAX_SAFE_INTEGER,
    exact_keys,
    get_bool,
    get_int,
    get_str,
    get_utc,
)

PAYLOAD_PART_NAME = re.compile(r"payload\.(age|tar)(\.[0-9]{3})?")
"""The payload parts of a format-1 bundle."""


class BundleKind(StrEnum):
    """What a bundle carries."""

    FULL = "full"
    DELTA = "delta"
    REVOCATION = "revocation"
    METRICS = "metrics"


@dataclass(frozen=True)
class PayloadPart:
    """One payload file of a bundle: its name, size and SHA-256 (of the bytes on media)."""

    name: str
    size: int
    sha256: str

    def __post_init__(self) -> None:
        if self.name not in SITE_PART_NAMES and not PAYLOAD_PART_NAME.fullmatch(self.name):
            raise MediaError(f"invalid payload part name {self.name[:64]!r}", hint=ENVELOPE_HINT)
        if not 0 <= self.size <= MAX_SAFE_INTEGER or not SHA256_PATTERN.fullmatch(self.sha256):
            raise MediaError(
                f"invalid size or hash for payload part {self.name!r}", hint=ENVELOPE_HINT
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"name": self.name, "size": self.size, "sha256": self.sha256}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PayloadPart:
        """Parses :meth:`to_dict` output (raises MediaError when malformed)."""
        try:
            exact_keys(data, "a payload part", ("name", "size", "sha256"))
            return cls(
                name=get_str(data, "name"),
                size=get_int(data, "size"),
                sha256=get_str(data, "sha256"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise MediaError(f"malformed payload part: {exc}", hint=ENVELOPE_HINT) from None


@dataclass(frozen=True)
class Envelope:
    """The plaintext, signed description of a bundle, checked before any decryption."""

    bundle_id: str
    kind: BundleKind
    source: str
    site_id: str
    sequence: int
    created: dt.datetime
    expires: dt.datetime
    encrypted: bool
    parts: tuple[PayloadPart, ...]
    format_version: int = FORMAT_VERSION
    omitted: tuple[str, ...] = ()
    """``name@version`` of assigned versions whose files the bundle leaves out
    because the site already holds them (delta and revocation bundles only)."""
    window: tuple[dt.datetime, dt.datetime] | None = None
    """Metrics bundles only: the time the figures cover, [start, end)."""
    site_part: PayloadPart | None = None
    """Format 2: the per-site part (``site.age``: metadata, chunk indexes, layout)."""
    series: tuple[SeriesRecord, ...] = ()
    """Format 2: the volume series the site reads."""
    volumes: tuple[VolumeRecord, ...] = ()
    """Format 2: every data and parity volume of those series."""

    def __post_init__(self) -> None:
        if self.format_version not in FORMAT_VERSIONS:
            raise MediaError(
                f"unsupported bundle format version {self.format_version}",
                hint=f"this Airlock reads format versions {_versions()}; upgrade the spoke",
            )
        if self.format_version == 1:
            self._check_format_1()
        else:
            self._check_format_2()
        if not 1 <= self.sequence <= MAX_SAFE_INTEGER:
            raise MediaError(
                f"bundle sequence {str(self.sequence)[:40]} is outside 1…{MAX_SAFE_INTEGER}",
                hint=ENVELOPE_HINT,
            )
        if not BUNDLE_ID_PATTERN.fullmatch(self.bundle_id):
            raise MediaError(f"invalid bundle id {self.bundle_id[:64]!r}", hint=ENVELOPE_HINT)
        if not SITE_PATTERN.fullmatch(self.site_id):
            raise MediaError(f"invalid site id {self.site_id[:64]!r}", hint=ENVELOPE_HINT)
        if self.source != envelope_source(self.kind, self.site_id):
            raise MediaError(
                f"a {self.kind} bundle for site {self.site_id} cannot come from "
                f"{self.source[:64]!r} (expected {envelope_source(self.kind, self.site_id)!r})",
                hint=ENVELOPE_HINT,
            )
        if self.expires <= self.created:
            raise MediaError("bundle expires before it was created", hint=ENVELOPE_HINT)
        if self.omitted and self.kind not in (BundleKind.DELTA, BundleKind.REVOCATION):
            raise MediaError(f"a {self.kind} bundle cannot omit model versions", hint=ENVELOPE_HINT)
        if (self.window is not None) != (self.kind == BundleKind.METRICS):
            raise MediaError(
                "a metrics bundle, and only a metrics bundle, names a time window",
                hint=ENVELOPE_HINT,
            )
        if self.window is not None and self.window[1] < self.window[0]:
            raise MediaError("the metrics window ends before it starts", hint=ENVELOPE_HINT)

    def _check_format_1(self) -> None:
        if self.site_part is not None or self.series or self.volumes:
            raise MediaError("a format-1 envelope lists no volumes", hint=ENVELOPE_HINT)
        if not self.parts:
            raise MediaError("bundle envelope lists no payload parts", hint=ENVELOPE_HINT)
        names = [p.name for p in self.parts]
        if not all(PAYLOAD_PART_NAME.fullmatch(name) for name in names):
            raise MediaError("a format-1 payload part is named payload.*", hint=ENVELOPE_HINT)
        if len(set(names)) != len(names):
            raise MediaError("bundle envelope lists a payload part twice", hint=ENVELOPE_HINT)

    def _check_format_2(self) -> None:
        if self.kind == BundleKind.METRICS or self.parts:
            raise MediaError(
                "a format-2 envelope is a hub's bundle with volumes, not payload parts",
                hint=ENVELOPE_HINT,
            )
        expected = SITE_PART_NAMES[0] if self.encrypted else SITE_PART_NAMES[1]
        if self.site_part is None or self.site_part.name != expected:
            raise MediaError(
                f"a format-2 envelope names its per-site part {expected}", hint=ENVELOPE_HINT
            )
        check_media(self.series, self.volumes, self.encrypted)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (this is what gets signed, in canonical JSON)."""
        if self.format_version == 2:
            assert self.site_part is not None
            media: dict[str, Any] = {
                "site_part": self.site_part.to_dict(),
                "series": [s.to_dict() for s in self.series],
                "volumes": [v.to_dict() for v in self.volumes],
            }
        else:
            media = {"parts": [p.to_dict() for p in self.parts]}
        return (
            {
                "format_version": self.format_version,
                "bundle_id": self.bundle_id,
                "kind": str(self.kind),
                "source": self.source,
                "site_id": self.site_id,
                "sequence": self.sequence,
                "created": utc_iso(self.created),
                "expires": utc_iso(self.expires),
                "encrypted": self.encrypted,
            }
            | media
            | ({"omitted": list(self.omitted)} if self.omitted else {})
            | (
                {"window": {"start": utc_iso(self.window[0]), "end": utc_iso(self.window[1])}}
                if self.window
                else {}
            )
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Envelope:
        """Parses :meth:`to_dict` output under the strict schema (:mod:`airlock.bundles.strict`).

        Exactly the fields :meth:`to_dict` writes, each of its exact JSON type:
        an unknown field, a string where a boolean belongs, a number where a
        string belongs or a sequence outside ``1 … 2**53 − 1`` is refused.

        Raises:
            MediaError: malformed (the message names the field).
        """
        try:
            if not isinstance(data, dict):
                raise TypeError("the bundle envelope is not an object")
            version = get_int(data, "format_version")
            if version not in FORMAT_VERSIONS:  # before the key set: a newer format may add fields
                raise MediaError(
                    f"unsupported bundle format version {version}",
                    hint=f"this Airlock reads format versions {_versions()}; upgrade it",
                )
            required = ENVELOPE_FIELDS if version == 1 else ENVELOPE_FIELDS_2
            exact_keys(data, "the bundle envelope", required, OPTIONAL_ENVELOPE_FIELDS)
            for key in ("parts", "series", "volumes"):
                if key in data and not isinstance(data[key], list):
                    raise TypeError(f"{key} must be a list")
            return cls(
                format_version=version,
                bundle_id=get_str(data, "bundle_id"),
                kind=BundleKind(get_str(data, "kind")),
                source=get_str(data, "source"),
                site_id=get_str(data, "site_id"),
                sequence=get_int(data, "sequence", low=1),
                created=parse_utc(get_utc(data, "created")),
                expires=parse_utc(get_utc(data, "expires")),
                encrypted=get_bool(data, "encrypted"),
                parts=tuple(PayloadPart.from_dict(p) for p in data.get("parts", ())),
                site_part=PayloadPart.from_dict(data["site_part"]) if version == 2 else None,
                series=tuple(SeriesRecord.from_dict(s) for s in data.get("series", ())),
                volumes=tuple(VolumeRecord.from_dict(v) for v in data.get("volumes", ())),
                omitted=_omitted(data["omitted"]) if "omitted" in data else (),
                window=_window(data["window"]) if "window" in data else None,
            )
        except MediaError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise MediaError(f"malformed bundle envelope: {exc}", hint=ENVELOPE_HINT) from None


ENVELOPE_FIELDS = (
    "format_version",
    "bundle_id",
    "kind",
    "source",
    "site_id",
    "sequence",
    "created",
    "expires",
    "encrypted",
    "parts",
)
ENVELOPE_FIELDS_2 = (
    *(name for name in ENVELOPE_FIELDS if name != "parts"),
    "site_part",
    "series",
    "volumes",
)
OPTIONAL_ENVELOPE_FIELDS = ("omitted", "window")


def _versions() -> str:
    return " and ".join(str(v) for v in FORMAT_VERSIONS)


def envelope_source(kind: BundleKind, site_id: str) -> str:
    """The ``source`` the writer puts into an envelope of ``kind`` for ``site_id``.

    A hub's bundles come from ``hub``; a metrics bundle from ``site:<site id>``.
    """
    return f"site:{site_id}" if kind == BundleKind.METRICS else HUB_SOURCE


def _window(value: Any) -> tuple[dt.datetime, dt.datetime]:
    window = exact_keys(value, "the envelope's window", ("start", "end"))
    return parse_utc(get_utc(window, "start")), parse_utc(get_utc(window, "end"))


def _omitted(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(
        isinstance(ref, str)
        and ref.count("@") == 1
        and all(NAME_PATTERN.fullmatch(p) for p in ref.split("@"))
        for ref in value
    ):
        raise TypeError("omitted must be a list of name@version strings")
    return tuple(value)
