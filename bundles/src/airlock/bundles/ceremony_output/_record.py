"""The ceremony record (``ceremony.json``): typed, and read back with :func:`load_ceremony`.

The ceremony writes it (:meth:`CeremonyRecord.to_dict`); the hub reads the same
record (:func:`online_key_refs` for the keys it holds). A coordinated ceremony's
record carries more fields (plan, request, layout): they are kept by whoever
copies the file and ignored here.

The record lists every key (name, URI relative to the ceremony directory,
public key) and the version, expiry, threshold and SHA-256 of each metadata
file the ceremony signed. It is *not* signed itself: whoever reads the roots
through it (:meth:`CeremonyRecord.read_metadata`) gets the bytes only when they
match the recorded hash, and must still verify the roots' signatures.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from securesystemslib.signer import SecretsHandler, Signer

from airlock.bundles.ceremony_output._names import (
    CEREMONY_FILE,
    DIRECTOR_ROOT_FILE,
    IMAGE_ROOT_FILE,
    ONLINE_KEY_NAMES,
)
from airlock.bundles.clock import parse_utc, utc_iso
from airlock.bundles.errors import IntegrityError, NotFoundError, UsageError
from airlock.bundles.keys._signers import KeyRef, KeyStore
from airlock.bundles.tuf._repo import DIRECTOR, IMAGE, metadata_filename

ROOT_FILES = {IMAGE: IMAGE_ROOT_FILE, DIRECTOR: DIRECTOR_ROOT_FILE}
"""Where each repository's version-1 root lives, relative to the ceremony directory."""


def sha256_hex(data: bytes) -> str:
    """The SHA-256 hex digest of ``data``."""
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class RootRecord:
    """What the ceremony signed for one repository's root."""

    version: int
    expires: dt.datetime
    threshold: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "version": self.version,
            "expires": utc_iso(self.expires),
            "threshold": self.threshold,
            "sha256": self.sha256,
        }


@dataclass(frozen=True)
class TargetsRecord:
    """What the ceremony signed for the Image top-level targets."""

    version: int
    expires: dt.datetime
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"version": self.version, "expires": utc_iso(self.expires), "sha256": self.sha256}


@dataclass(frozen=True)
class CeremonyRecord:
    """A finished ceremony, as recorded in ``DIR/ceremony.json``.

    Attributes:
        out_dir: The ceremony directory (key URIs and file paths are relative to it).
        ceremony_id: Random UUID of this ceremony.
        created: When it ran (aware UTC).
        tool_version: Version of airlock.bundles that ran it.
        algorithm: Key algorithm of every key.
        offline_keys: The officers' keys by name (``image-root-1``, …).
        online_keys: The hub's keys by name (``image-snapshot``, …, ``envelope``).
        roots: ``image`` and ``director`` root records.
        image_targets: The Image top-level targets record.
    """

    out_dir: Path
    ceremony_id: str
    created: dt.datetime
    tool_version: str
    algorithm: str
    offline_keys: Mapping[str, KeyRef]
    online_keys: Mapping[str, KeyRef]
    roots: Mapping[str, RootRecord]
    image_targets: TargetsRecord

    def to_dict(self) -> dict[str, Any]:
        """The content of ``ceremony.json`` (public data only)."""
        return {
            "ceremony_id": self.ceremony_id,
            "created": utc_iso(self.created),
            "tool_version": self.tool_version,
            "algorithm": self.algorithm,
            "offline_keys": {name: ref.to_dict() for name, ref in self.offline_keys.items()},
            "online_keys": {name: ref.to_dict() for name, ref in self.online_keys.items()},
            "roots": {repo: rec.to_dict() for repo, rec in self.roots.items()},
            "image_targets": self.image_targets.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], out_dir: Path) -> CeremonyRecord:
        """Parses :meth:`to_dict` output.

        Raises:
            UsageError: the data is malformed.
        """
        try:
            roots = {
                repo: RootRecord(
                    version=int(rec["version"]),
                    expires=parse_utc(rec["expires"]),
                    threshold=int(rec["threshold"]),
                    sha256=str(rec["sha256"]),
                )
                for repo, rec in dict(data["roots"]).items()
            }
            targets = data["image_targets"]
            record = cls(
                out_dir=Path(out_dir),
                ceremony_id=str(data["ceremony_id"]),
                created=parse_utc(data["created"]),
                tool_version=str(data["tool_version"]),
                algorithm=str(data["algorithm"]),
                offline_keys=_named_refs(data["offline_keys"]),
                online_keys=_named_refs(data["online_keys"]),
                roots=roots,
                image_targets=TargetsRecord(
                    version=int(targets["version"]),
                    expires=parse_utc(targets["expires"]),
                    sha256=str(targets["sha256"]),
                ),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise UsageError(
                f"{Path(out_dir) / CEREMONY_FILE} is malformed ({type(exc).__name__}: {exc})",
                hint="restore the ceremony directory from the officers' copy",
            ) from None
        missing = set(ROOT_FILES) - set(record.roots)
        if missing:
            raise UsageError(f"the ceremony record has no {', '.join(sorted(missing))} root")
        return record

    def key(self, name: str) -> KeyRef:
        """The offline or online key called ``name``.

        Raises:
            NotFoundError: no such key in this ceremony.
        """
        ref = self.offline_keys.get(name) or self.online_keys.get(name)
        if ref is None:
            raise NotFoundError(f"the ceremony has no key named {name!r}")
        return ref

    def signers(self, names: Iterable[str], secrets_handler: SecretsHandler) -> list[Signer]:
        """Opens the keys ``names`` through a :class:`KeyStore` rooted at the ceremony dir.

        Raises:
            SecretError: a passphrase is wrong or missing.
            NotFoundError: a key or its file does not exist.
        """
        store = KeyStore(self.out_dir, secrets_handler)
        return [store.signer(self.key(name)) for name in names]

    def metadata_path(self, relative: str) -> Path:
        """Absolute path of a metadata file of this ceremony (e.g. :data:`IMAGE_ROOT_FILE`)."""
        return self.out_dir / relative

    def read_root(self, repository: str) -> bytes:
        """The newest root the ceremony signed for ``image`` or ``director``, hash-checked.

        Raises:
            NotFoundError: unknown repository or missing file.
            IntegrityError: the file does not match the recorded SHA-256.
        """
        if repository not in ROOT_FILES:
            raise NotFoundError(f"no repository {repository!r} (use image or director)")
        record = self.roots[repository]
        relative = f"{repository}/{metadata_filename('root', record.version)}"
        return self.read_metadata(relative, record.sha256)

    def read_image_targets(self) -> bytes:
        """The signed Image targets the ceremony made, checked against its hash."""
        version = self.image_targets.version
        relative = f"{IMAGE}/{metadata_filename('targets', version)}"
        return self.read_metadata(relative, self.image_targets.sha256)

    def read_metadata(self, relative: str, sha256: str) -> bytes:
        """Reads ``relative`` under the ceremony directory and checks its SHA-256.

        Raises:
            NotFoundError: the file is missing.
            IntegrityError: the file does not match ``sha256``.
        """
        path = self.metadata_path(relative)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise NotFoundError(
                f"{path} is missing from the ceremony directory",
                hint="copy the whole ceremony output (image/ and director/) again",
            ) from None
        if sha256_hex(data) != sha256:
            raise IntegrityError(
                f"{relative} does not match the SHA-256 in {CEREMONY_FILE}",
                hint="the file was altered or swapped; take it again from the officers' copy",
            )
        return data


def key_refs(data: Mapping[str, Any]) -> dict[str, KeyRef]:
    """Parses a key section of the record (``offline_keys`` or ``online_keys``).

    Raises:
        UsageError: a key record is malformed.
        AttributeError, TypeError, ValueError: the section is not a name → key map.
    """
    return {name: KeyRef.from_dict(dict(item)) for name, item in dict(data).items()}


def online_key_refs(record: Mapping[str, Any]) -> dict[str, KeyRef]:
    """The online keys of a parsed ``ceremony.json`` (any ceremony's: minimal or coordinated).

    Each key is filed under its role name (:data:`ONLINE_KEY_NAMES`); whether it
    is the key the roots name for that role is for the reader to verify (the hub
    does, before it adopts a ceremony).

    Raises:
        UsageError: a key record is malformed.
        KeyError, AttributeError, TypeError, ValueError: the record has no
            ``online_keys`` map.
    """
    return key_refs(record["online_keys"])


def _named_refs(data: Mapping[str, Any]) -> dict[str, KeyRef]:
    refs = key_refs(data)
    for name, ref in refs.items():
        if ref.name != name:
            raise ValueError(f"key record {name!r} is named {ref.name!r}")
    return refs


def missing_online_keys(refs: Mapping[str, KeyRef]) -> list[str]:
    """The names in :data:`ONLINE_KEY_NAMES` that ``refs`` lacks, in that order."""
    return [name for name in ONLINE_KEY_NAMES if name not in refs]


def load_ceremony(out_dir: Path) -> CeremonyRecord:
    """Reads ``out_dir/ceremony.json``.

    Raises:
        NotFoundError: ``out_dir`` holds no ceremony.
        UsageError: the record is malformed.
    """
    path = Path(out_dir) / CEREMONY_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NotFoundError(
            f"{out_dir} holds no key ceremony (no {CEREMONY_FILE})",
            hint="pass the directory `airlock ceremony init --out` created",
        ) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path} is not a ceremony record")
    return CeremonyRecord.from_dict(data, Path(out_dir))
