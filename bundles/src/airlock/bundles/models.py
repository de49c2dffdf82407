"""The typed model layer: the nouns of the design brief, validated on construction.

Every model has ``to_dict``/``from_dict``. ``from_dict`` is used on untrusted
input too, so it raises :class:`~airlock.bundles.errors.MediaError` for data
that is not well-formed, before any trust decision is made.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from airlock.bundles.clock import parse_utc, utc_iso
from airlock.bundles.errors import MediaError, UsageError
from airlock.bundles.release._record import FILE_KINDS, ReleaseInfo
from airlock.bundles.strict import (
    MAX_SAFE_INTEGER,
    exact_keys,
    get_bool,
    get_int,
    get_str,
    get_utc,
)

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
SITE_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
SHA256_PATTERN = re.compile(r"[0-9a-f]{64}")
BUNDLE_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}", re.ASCII)
FORMAT_VERSION = 1
HUB_SOURCE = "hub"
"""The envelope ``source`` of every bundle a hub exports (full, delta, revocation)."""
ENVELOPE_HINT = "the envelope.json is damaged or not an Airlock bundle; export it again"


def check_name(kind: str, value: str) -> str:
    """Validates a model name, version or file name (one safe path segment).

    Raises:
        UsageError: the value is empty, too long, or has characters outside ``A-Za-z0-9._-``.
    """
    if not NAME_PATTERN.fullmatch(value) or value in {".", ".."}:
        raise UsageError(
            f"invalid {kind} {value!r}",
            hint="use 1-128 characters from A-Z a-z 0-9 . _ - starting with a letter or digit",
        )
    return value


def check_site_id(value: str) -> str:
    """Validates a site id (lower-case letters, digits and dashes, max 63).

    Raises:
        UsageError: the site id is not in that form.
    """
    if not SITE_PATTERN.fullmatch(value):
        raise UsageError(
            f"invalid site id {value!r}",
            hint="use 1-63 characters from a-z 0-9 - starting with a letter or digit",
        )
    return value


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
        if not re.fullmatch(r"payload\.(age|tar)(\.[0-9]{3})?", self.name):
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

    def __post_init__(self) -> None:
        if self.format_version != FORMAT_VERSION:
            raise MediaError(
                f"unsupported bundle format version {self.format_version}",
                hint=f"this Airlock reads format version {FORMAT_VERSION}; upgrade the spoke",
            )
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
        if not self.parts:
            raise MediaError("bundle envelope lists no payload parts", hint=ENVELOPE_HINT)
        names = [p.name for p in self.parts]
        if len(set(names)) != len(names):
            raise MediaError("bundle envelope lists a payload part twice", hint=ENVELOPE_HINT)
        if self.omitted and self.kind not in (BundleKind.DELTA, BundleKind.REVOCATION):
            raise MediaError(f"a {self.kind} bundle cannot omit model versions", hint=ENVELOPE_HINT)
        if (self.window is not None) != (self.kind == BundleKind.METRICS):
            raise MediaError(
                "a metrics bundle, and only a metrics bundle, names a time window",
                hint=ENVELOPE_HINT,
            )
        if self.window is not None and self.window[1] < self.window[0]:
            raise MediaError("the metrics window ends before it starts", hint=ENVELOPE_HINT)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (this is what gets signed, in canonical JSON)."""
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
                "parts": [p.to_dict() for p in self.parts],
            }
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
            if version != FORMAT_VERSION:  # before the key set: a newer format may add fields
                raise MediaError(
                    f"unsupported bundle format version {version}",
                    hint=f"this Airlock reads format version {FORMAT_VERSION}; upgrade it",
                )
            exact_keys(data, "the bundle envelope", ENVELOPE_FIELDS, OPTIONAL_ENVELOPE_FIELDS)
            if not isinstance(data["parts"], list):
                raise TypeError("parts must be a list")
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
                parts=tuple(PayloadPart.from_dict(p) for p in data["parts"]),
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
OPTIONAL_ENVELOPE_FIELDS = ("omitted", "window")


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


@dataclass(frozen=True)
class ModelFile:
    """One file of a model version (the ONNX graph or an external-data file)."""

    filename: str
    sha256: str
    length: int
    primary: bool = False
    kind: str = "model"

    def __post_init__(self) -> None:
        check_name("file name", self.filename)
        if not SHA256_PATTERN.fullmatch(self.sha256) or self.length < 0:
            raise UsageError(f"invalid hash or length for {self.filename!r}")
        if self.kind not in FILE_KINDS:
            raise UsageError(f"unknown file kind {self.kind!r} for {self.filename!r}")
        if self.primary and self.kind != "model":
            raise UsageError(f"{self.filename!r}: only a model file can be the primary file")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "filename": self.filename,
            "sha256": self.sha256,
            "length": self.length,
            "primary": self.primary,
            "kind": self.kind,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelFile:
        """Parses :meth:`to_dict` output."""
        return cls(
            filename=str(data["filename"]),
            sha256=str(data["sha256"]),
            length=int(data["length"]),
            primary=bool(data.get("primary", False)),
            kind=str(data.get("kind", "model")),
        )


@dataclass(frozen=True)
class ModelVersion:
    """A released model version: name, version and its content-addressed files."""

    name: str
    version: str
    files: tuple[ModelFile, ...] = field(default_factory=tuple)
    release: ReleaseInfo = field(default_factory=ReleaseInfo)

    def __post_init__(self) -> None:
        check_name("model name", self.name)
        check_name("model version", self.version)
        if sum(1 for f in self.files if f.primary) > 1:
            raise UsageError(f"{self.ref} has more than one primary ONNX file")

    @property
    def ref(self) -> str:
        """``name@version``, as used in messages and audit entries."""
        return f"{self.name}@{self.version}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "name": self.name,
            "version": self.version,
            "files": [f.to_dict() for f in self.files],
            "release": self.release.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelVersion:
        """Parses :meth:`to_dict` output."""
        return cls(
            name=str(data["name"]),
            version=str(data["version"]),
            files=tuple(ModelFile.from_dict(f) for f in data.get("files", [])),
            release=ReleaseInfo.from_dict(data.get("release")),
        )

    def files_of_kind(self, kind: str) -> list[ModelFile]:
        """The files of one kind (``model``, ``validation``, ``layout``, ``link``)."""
        return [f for f in self.files if f.kind == kind]


@dataclass(frozen=True)
class SiteIdentity:
    """The public parts of a site that the hub needs to register it.

    ``airlock spoke init`` writes this as ``site-identity.json``;
    ``airlock hub site add --identity site-identity.json`` reads it.
    """

    site_id: str
    age_recipient: str
    signing_keyid: str
    signing_key: dict[str, Any]

    def __post_init__(self) -> None:
        check_site_id(self.site_id)
        if not self.age_recipient.startswith("age1"):
            raise UsageError(
                f"{self.age_recipient!r} is not an age X25519 recipient",
                hint="it starts with 'age1'; copy it from `airlock spoke init` output",
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "site_id": self.site_id,
            "age_recipient": self.age_recipient,
            "signing_key": {"keyid": self.signing_keyid, "public_key": self.signing_key},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SiteIdentity:
        """Parses :meth:`to_dict` output.

        Raises:
            UsageError: malformed.
        """
        try:
            return cls(
                site_id=str(data["site_id"]),
                age_recipient=str(data["age_recipient"]),
                signing_keyid=str(data["signing_key"]["keyid"]),
                signing_key=dict(data["signing_key"]["public_key"]),
            )
        except (KeyError, TypeError) as exc:
            raise UsageError(f"malformed site identity: missing {exc}") from None
