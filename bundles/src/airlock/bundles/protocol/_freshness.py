"""The site's freshness statement for the hub's Image metadata: what a cut-off site vouches for.

The hub's Image timestamp and snapshot (and its online delegated targets
roles) expire with the bundle that carried them: the site's transit budget,
30 days by default. That budget bounds how old a bundle may be when it is
*imported*; it must not bound how long a site keeps serving what it verified.
So the site director vouches, with the site key, for exactly the Image
metadata it verified at import, in a short-lived statement::

    {"signed": {"_type": "airlock-site-freshness", "spec_version": "1",
                "site_id": …, "version": n, "issued": …, "expires": …,
                "image": {"timestamp": {"version", "sha256"},
                          "snapshot":  {"version", "sha256"},
                          "roles": {"targets.json": {"version", "sha256"}, …}}},
     "signatures": [{"keyid": …, "sig": …}]}

signed over canonical JSON (:class:`~airlock.bundles.protocol.SignedDocument`)
with the key the site root trusts for its ``timestamp`` role, which every node
holds from enrolment. A node accepts it *instead of* the expiry of the hub's
timestamp, snapshot and delegated targets only — every hub signature,
threshold, version and hash is still checked, the Image root and top-level
targets (offline roles) must be unexpired, and the statement must name this
site, be unexpired, not go back in version, and bind exactly the versions and
SHA-256 of the files the node verified. A site key can therefore only keep
hub-signed metadata alive; it can never sign a model.

Pure: bytes in, bytes or errors out; :mod:`airlock.spoke.director._image_freshness`
stores and issues, :mod:`airlock.node._tuf_client` verifies.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib import parse

from securesystemslib.signer import Signature, Signer
from tuf.api.metadata import Metadata, Root, Snapshot, Timestamp

from airlock.bundles.canonical import canonical_bytes
from airlock.bundles.clock import parse_utc, utc_iso
from airlock.bundles.errors import AirlockError, FreshnessError, SignatureError, TrustError
from airlock.bundles.protocol._documents import SignedDocument

FRESHNESS_FILE = "site-freshness.json"
"""The statement's name under the Image metadata URL (``/v1/image/site-freshness.json``)."""
STATEMENT_TYPE = "airlock-site-freshness"
LIFETIME = dt.timedelta(days=1)
"""How long one statement is valid; the spoke re-issues it at half its lifetime."""

FileBinding = tuple[int, str]
"""(signed version, SHA-256 of the file's bytes)."""


@dataclass(frozen=True)
class ImageBinding:
    """The Image metadata a statement vouches for: each file's version and SHA-256."""

    timestamp: FileBinding
    snapshot: FileBinding
    roles: Mapping[str, FileBinding]
    """``<role>.json`` (as the snapshot names it) → binding, for every targets role."""

    def to_dict(self) -> dict[str, Any]:
        """JSON form (inside the signed part)."""

        def entry(binding: FileBinding) -> dict[str, Any]:
            return {"version": binding[0], "sha256": binding[1]}

        return {
            "timestamp": entry(self.timestamp),
            "snapshot": entry(self.snapshot),
            "roles": {name: entry(b) for name, b in sorted(self.roles.items())},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ImageBinding:
        """Parses :meth:`to_dict` output strictly.

        Raises:
            TrustError: malformed.
        """

        def entry(value: Any) -> FileBinding:
            if not isinstance(value, dict) or set(value) != {"version", "sha256"}:
                raise ValueError("each entry has exactly a version and a sha256")
            version, sha256 = value["version"], value["sha256"]
            if type(version) is not int or version < 1 or not _is_sha256(sha256):
                raise ValueError("bad version or sha256")
            return version, sha256

        try:
            if set(data) != {"timestamp", "snapshot", "roles"}:
                raise ValueError("unexpected fields")
            roles = data["roles"]
            if not isinstance(roles, dict):
                raise ValueError("roles is not an object")
            return cls(
                entry(data["timestamp"]),
                entry(data["snapshot"]),
                {str(name): entry(value) for name, value in roles.items()},
            )
        except (ValueError, TypeError, AttributeError) as exc:
            raise TrustError(f"the site freshness statement is malformed ({exc})") from None


@dataclass(frozen=True)
class Statement:
    """A verified statement's contents."""

    site_id: str
    version: int
    issued: dt.datetime
    expires: dt.datetime
    image: ImageBinding


def binding(files: Mapping[str, bytes]) -> ImageBinding:
    """What a statement must bind for trusted Image files (ngclient cache names → bytes).

    Raises:
        TrustError: the files lack a timestamp, snapshot or a role the snapshot lists.
    """
    try:
        ts_bytes, snap_bytes = files["timestamp.json"], files["snapshot.json"]
        timestamp = Metadata[Timestamp].from_bytes(ts_bytes).signed
        snapshot = Metadata[Snapshot].from_bytes(snap_bytes).signed
        roles = {}
        for name in snapshot.meta:
            data = files[f"{parse.quote(name[: -len('.json')], '')}.json"]
            roles[name] = (_signed_version(data), _sha256(data))
    except (KeyError, ValueError, TypeError) as exc:
        raise TrustError(
            f"the spoke's trusted Image metadata is incomplete ({type(exc).__name__}: {exc})",
            hint="import a bundle from the hub first",
        ) from None
    return ImageBinding(
        (timestamp.version, _sha256(ts_bytes)), (snapshot.version, _sha256(snap_bytes)), roles
    )


def sign_statement(
    signer: Signer, site_id: str, version: int, image: ImageBinding, now: dt.datetime
) -> bytes:
    """A new statement, signed by the site key, valid for :data:`LIFETIME` from ``now``."""
    signed = {
        "_type": STATEMENT_TYPE,
        "spec_version": "1",
        "site_id": site_id,
        "version": version,
        "issued": utc_iso(now),
        "expires": utc_iso(now + LIFETIME),
        "image": image.to_dict(),
    }
    return canonical_bytes(SignedDocument.sign(signer, signed).to_dict())


def parse_statement(data: bytes) -> Statement:
    """The statement's contents, unverified (used by the spoke on what it signed itself).

    Raises:
        TrustError: malformed.
    """
    return _contents(_document(data).signed)


def verify_statement(data: bytes, site_root: Root, site_id: str, now: dt.datetime) -> Statement:
    """Verifies a statement: signed by the site root's timestamp key(s), this site, unexpired.

    Raises:
        SignatureError: not signed by the key the site root trusts.
        TrustError: malformed, or for another site.
        FreshnessError: expired.
    """
    document = _document(data)
    signature = Signature(document.keyid, document.signature)
    try:
        site_root.verify_delegate(
            Timestamp.type, canonical_bytes(document.signed), {document.keyid: signature}
        )
    except Exception:
        raise SignatureError(
            f"the site freshness statement is not signed by this site's key "
            f"(signed by {document.keyid[:12]}…)",
            hint="do not trust this spoke's answer and tell the site admin",
        ) from None
    statement = _contents(document.signed)
    if statement.site_id != site_id:
        raise TrustError(
            f"the site freshness statement is for site {statement.site_id!r}, not {site_id!r}"
        )
    if statement.expires <= now:
        raise FreshnessError(
            f"the site freshness statement version {statement.version} expired "
            f"{utc_iso(statement.expires)}",
            hint="the spoke service re-issues it while it runs; check `airlock spoke serve` "
            "is running and the spoke's clock is right",
        )
    return statement


def _document(data: bytes) -> SignedDocument:
    try:
        raw = json.loads(data)
        if not isinstance(raw, dict) or len(raw.get("signatures") or ()) != 1:
            raise ValueError("exactly one signature is expected")
        return SignedDocument.from_dict(raw)
    except (ValueError, AirlockError) as exc:
        raise TrustError(f"the site freshness statement is malformed ({exc})") from None


def _contents(signed: Mapping[str, Any]) -> Statement:
    expected = {"_type", "spec_version", "site_id", "version", "issued", "expires", "image"}
    try:
        if set(signed) != expected or signed["_type"] != STATEMENT_TYPE:
            raise ValueError("not a site freshness statement")
        if signed["spec_version"] != "1" or type(signed["version"]) is not int:
            raise ValueError("unsupported spec version or bad version")
        if signed["version"] < 1 or not isinstance(signed["site_id"], str):
            raise ValueError("bad version or site id")
        issued, expires = parse_utc(signed["issued"]), parse_utc(signed["expires"])
    except (ValueError, TypeError) as exc:
        raise TrustError(f"the site freshness statement is malformed ({exc})") from None
    image = ImageBinding.from_dict(signed["image"]) if isinstance(signed["image"], dict) else None
    if image is None:
        raise TrustError("the site freshness statement is malformed (no image binding)")
    return Statement(signed["site_id"], signed["version"], issued, expires, image)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _signed_version(data: bytes) -> int:
    version = json.loads(data)["signed"]["version"]
    if type(version) is not int:
        raise ValueError("a role's version is not an integer")
    return version


def _is_sha256(value: Any) -> bool:
    return (
        isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)
    )
