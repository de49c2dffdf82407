"""The signing request: exactly what the officers are asked to sign, in one file.

``airlock ceremony propose`` (:mod:`airlock.ceremony.coordinator._propose`) builds the
unsigned metadata — Image root, Image top-level targets, Director root — and
writes ``request.json``::

    {"type": "airlock-signing-request", "ceremony_id", "plan_sha256", "plan",
     "kind": "initial" | "rotation", "created",
     "keys":        [{officer, role, name, keyid, public_key, algorithm, storage, uri}],
     "online_keys": {name: key record},          # the hub's keys (public halves)
     "revoked":     [keyid, …],                  # rotation: keys that leave every role
     "previous":    {"ceremony_id", "roots": {"image": <signed root>, "director": …}} | null,
     "metadata":    {"image/2.root.json": <signed part>, …},
     "offers":      {officer: sha256 of their offer file}}

A request is named by the SHA-256 of its bytes; every signature file names
the request it signs, and an officer's tool shows and signs the bytes it read
once. :meth:`SigningRequest.requirements` says which keys must sign each file:
a root needs a threshold of its own root keys and, for a rotation, of the
previous root's; the targets needs a threshold of the new root's targets keys.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from securesystemslib.signer import Key
from tuf.api.metadata import Metadata, Root, Signed, Targets

from airlock.bundles import tuf as tufrepo
from airlock.bundles.clock import parse_utc, utc_iso
from airlock.bundles.errors import MissingFileError, UsageError
from airlock.bundles.keys import KeyRef

REQUEST_TYPE = "airlock-signing-request"
INITIAL = "initial"
ROTATION = "rotation"


@dataclass(frozen=True)
class Requirement:
    """A threshold of keys that must sign one file of the request."""

    label: str
    keys: dict[str, Key]
    threshold: int


@dataclass(frozen=True)
class RequestKey:
    """An officer's key as the request assigns it."""

    officer: str
    role: str
    ref: KeyRef
    storage: str
    algorithm: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "officer": self.officer,
            "role": self.role,
            "storage": self.storage,
            "algorithm": self.algorithm,
            **self.ref.to_dict(),
        }


@dataclass(frozen=True)
class SigningRequest:
    """A parsed signing request (see the module docstring)."""

    ceremony_id: str
    plan: dict[str, Any]
    plan_sha256: str
    kind: str
    created: dt.datetime
    keys: tuple[RequestKey, ...]
    online_keys: dict[str, KeyRef]
    revoked: tuple[str, ...]
    previous: dict[str, Any] | None
    metadata: dict[str, dict[str, Any]]
    offers: dict[str, str]
    tool_version: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the content of ``request.json``)."""
        return {
            "type": REQUEST_TYPE,
            "ceremony_id": self.ceremony_id,
            "plan": self.plan,
            "plan_sha256": self.plan_sha256,
            "kind": self.kind,
            "created": utc_iso(self.created),
            "keys": [key.to_dict() for key in self.keys],
            "online_keys": {name: ref.to_dict() for name, ref in self.online_keys.items()},
            "revoked": list(self.revoked),
            "previous": self.previous,
            "metadata": self.metadata,
            "offers": self.offers,
            "tool_version": self.tool_version,
        }

    def signed(self, path: str) -> Signed:
        """The unsigned metadata of ``path`` (a fresh copy)."""
        data = copy.deepcopy(self.metadata[path])
        return Targets.from_dict(data) if path.endswith(".targets.json") else Root.from_dict(data)

    def unsigned(self, path: str) -> Metadata[Any]:
        """``path`` wrapped as metadata with no signatures yet."""
        return Metadata(self.signed(path))

    def root_path(self, repository: str) -> str:
        """The path of the new root of ``image`` or ``director``."""
        return next(p for p in self.metadata if p.startswith(f"{repository}/") and "root" in p)

    def targets_path(self) -> str:
        """The path of the new Image targets."""
        return next(p for p in self.metadata if p.endswith(".targets.json"))

    def previous_root(self, repository: str) -> Metadata[Root] | None:
        """The root the rotation starts from (with its signatures), if any."""
        if self.previous is None:
            return None
        data = copy.deepcopy(self.previous["roots"][repository])
        md: Metadata[Root] = Metadata.from_dict(data)
        return md

    def requirements(self, path: str) -> list[Requirement]:
        """Which keys must sign ``path``, and how many of them."""
        if path.endswith(".targets.json"):
            image_root = self.signed(self.root_path(tufrepo.IMAGE))
            assert isinstance(image_root, Root)
            return [_role_requirement("new Image root's targets keys", image_root, Targets.type)]
        repository = path.split("/", 1)[0]
        new = self.signed(path)
        assert isinstance(new, Root)
        title = repository.capitalize()
        needs = [_role_requirement(f"new {title} root's root keys", new, Root.type)]
        previous = self.previous_root(repository)
        if previous is not None:
            needs.append(
                _role_requirement(
                    f"current {title} root's root keys (v{previous.signed.version})",
                    previous.signed,
                    Root.type,
                )
            )
        return needs

    def owner(self, keyid: str) -> str:
        """The officer who offered ``keyid`` in this ceremony ("" if none did)."""
        return next((key.officer for key in self.keys if key.ref.keyid == keyid), "")


def _role_requirement(label: str, root: Root, role: str) -> Requirement:
    spec = root.roles[role]
    return Requirement(label, {kid: root.keys[kid] for kid in spec.keyids}, spec.threshold)


def parse_request(data: bytes, source: str = "the request") -> SigningRequest:
    """Parses request bytes.

    Raises:
        UsageError: not a signing request.
    """
    try:
        doc = json.loads(data)
        if doc.get("type") != REQUEST_TYPE:
            raise ValueError(f"type is {doc.get('type')!r}")
        keys = tuple(
            RequestKey(
                officer=str(item["officer"]),
                role=str(item["role"]),
                ref=KeyRef.from_dict(dict(item)),
                storage=str(item["storage"]),
                algorithm=str(item["algorithm"]),
            )
            for item in doc["keys"]
        )
        request = SigningRequest(
            ceremony_id=str(doc["ceremony_id"]),
            plan=dict(doc["plan"]),
            plan_sha256=str(doc["plan_sha256"]),
            kind=str(doc["kind"]),
            created=parse_utc(doc["created"]),
            keys=keys,
            online_keys={n: KeyRef.from_dict(dict(v)) for n, v in doc["online_keys"].items()},
            revoked=tuple(str(k) for k in doc["revoked"]),
            previous=doc["previous"],
            metadata={str(p): dict(v) for p, v in doc["metadata"].items()},
            offers={str(k): str(v) for k, v in doc["offers"].items()},
            tool_version=str(doc["tool_version"]),
        )
        if request.kind not in (INITIAL, ROTATION) or (request.kind == ROTATION) != bool(
            request.previous
        ):
            raise ValueError(f"kind {request.kind!r} does not match the previous roots")
        for path in request.metadata:  # every file parses as what its name says
            request.signed(path)
        for repository in tufrepo.REPOSITORIES:
            request.root_path(repository)
            request.previous_root(repository)
        request.targets_path()
    except (ValueError, KeyError, TypeError, AttributeError, StopIteration) as exc:
        raise UsageError(
            f"{source} is not a valid signing request ({type(exc).__name__}: {exc})",
            hint="carry the request.json that `airlock ceremony propose` wrote, unchanged",
        ) from None
    return request


def read_request(path: Path) -> tuple[SigningRequest, bytes]:
    """Reads a request file once; returns it parsed, with the exact bytes read.

    Raises:
        NotFoundError: no such file.
        UsageError: not a signing request.
    """
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise MissingFileError(
            f"no signing request at {path}",
            hint="pass the request.json that `airlock ceremony propose` wrote",
        ) from None
    return parse_request(data, str(path)), data
