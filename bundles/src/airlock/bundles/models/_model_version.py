"""A released model version and its files, and a site's public identity."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from airlock.bundles.errors import UsageError
from airlock.bundles.models._names import SHA256_PATTERN, check_name, check_site_id
from airlock.bundles.release._record import FILE_KINDS, ReleaseInfo


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
