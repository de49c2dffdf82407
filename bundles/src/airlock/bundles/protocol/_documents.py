"""Signed documents and the node's identity files: what a node and its spoke exchange
as JSON.

The site-director targets of a node (signed by the site key under the site
root) list every file of every version the node should hold, at the Image
target path, with the Image length and hashes, and ``custom.airlock``:
:class:`NodeModel` fields plus ``file``. The node verifies them against the
Image metadata it fetched itself (both with ``tuf.ngclient``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from securesystemslib.signer import Key, Signature, Signer

from airlock.bundles.canonical import canonical_bytes
from airlock.bundles.errors import SignatureError, UsageError
from airlock.bundles.models import check_name

NODE_ID_FIELD = "x-airlock-node-id"
"""Site-director targets name their node here (as the hub's Director names the site)."""

ROLES = ("stable", "candidate")
"""A NodeModel's role: the version the fleet trusts, or the one being rolled out."""
TRAFFIC = ("all", "split", "shadow")
"""How a candidate runs on a node (see :mod:`airlock.bundles.release._rollout_plan`)."""


@dataclass(frozen=True)
class SignedDocument:
    """A JSON document signed by one key over its canonical JSON (reports, metrics)."""

    signed: dict[str, Any]
    keyid: str
    signature: str

    @classmethod
    def sign(cls, signer: Signer, signed: dict[str, Any]) -> SignedDocument:
        """Signs ``signed`` with ``signer``."""
        sig = signer.sign(canonical_bytes(signed))
        return cls(signed=signed, keyid=sig.keyid, signature=sig.signature)

    def verify(self, key: Key) -> dict[str, Any]:
        """Returns ``signed`` when the signature verifies with ``key``.

        Raises:
            SignatureError: wrong key or bad signature.
        """
        if self.keyid != key.keyid:
            raise SignatureError(
                f"the document is signed by key {self.keyid[:12]}…, not the node's"
            )
        try:
            key.verify_signature(
                Signature(self.keyid, self.signature), canonical_bytes(self.signed)
            )
        except Exception:
            raise SignatureError("the document's signature does not verify") from None
        return self.signed

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"signed": self.signed, "signatures": [{"keyid": self.keyid, "sig": self.signature}]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SignedDocument:
        """Parses :meth:`to_dict` output.

        Raises:
            UsageError: malformed.
        """
        try:
            sig = data["signatures"][0]
            return cls(dict(data["signed"]), str(sig["keyid"]), str(sig["sig"]))
        except (KeyError, IndexError, TypeError) as exc:
            raise UsageError(f"malformed signed document: {exc}") from None


@dataclass(frozen=True)
class NodeModel:
    """One model version a node is told to hold, in the site director's targets."""

    model: str
    version: str
    role: str = "stable"
    traffic: str = "all"
    split_percent: int | None = None
    rollout_id: str = ""

    def __post_init__(self) -> None:
        check_name("model name", self.model)
        check_name("model version", self.version)
        if self.role not in ROLES:
            raise UsageError(f"node model role {self.role!r} is not one of {ROLES}")
        if self.traffic not in TRAFFIC:
            raise UsageError(f"node model traffic {self.traffic!r} is not one of {TRAFFIC}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (also the custom fields of the node's targets)."""
        return {
            "model": self.model,
            "version": self.version,
            "role": self.role,
            "traffic": self.traffic,
            "split_percent": self.split_percent,
            "rollout_id": self.rollout_id,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NodeModel:
        """Parses :meth:`to_dict` output."""
        split = data.get("split_percent")
        return cls(
            model=str(data["model"]),
            version=str(data["version"]),
            role=str(data.get("role", "stable")),
            traffic=str(data.get("traffic", "all")),
            split_percent=None if split is None else int(split),
            rollout_id=str(data.get("rollout_id", "")),
        )


@dataclass(frozen=True)
class NodeIdentity:
    """A node's public identity (``node-identity.json``, written by ``airlock agent init``)."""

    node_id: str
    public_key: Key

    @property
    def keyid(self) -> str:
        """The key id of the node's Ed25519 key."""
        return str(self.public_key.keyid)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "node_id": self.node_id,
            "keyid": self.keyid,
            "public_key": self.public_key.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NodeIdentity:
        """Parses :meth:`to_dict` output.

        Raises:
            UsageError: malformed, or the key id does not match the key.
        """
        try:
            node_id = check_name("node id", str(data["node_id"]))
            key = Key.from_dict(str(data["keyid"]), dict(data["public_key"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(
                f"malformed node identity: {exc}",
                hint="use the node-identity.json that `airlock agent init` wrote",
            ) from None
        return cls(node_id, key)


@dataclass(frozen=True)
class AgentBootstrap:
    """What a node needs to trust its spoke (``agent-bootstrap.json``, from ``spoke node enroll``).

    The roots are the TUF root metadata files themselves (bytes as JSON text):
    the Image root the spoke trusts now, and the site root the site key signs.
    """

    site_id: str
    node_id: str
    spoke_url: str
    image_root: str
    site_root: str
    tls_ca_pem: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "type": "agent-bootstrap",
            "site_id": self.site_id,
            "node_id": self.node_id,
            "spoke_url": self.spoke_url,
            "image_root": self.image_root,
            "site_root": self.site_root,
            "tls_ca_pem": self.tls_ca_pem,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AgentBootstrap:
        """Parses :meth:`to_dict` output.

        Raises:
            UsageError: malformed.
        """
        try:
            return cls(
                site_id=str(data["site_id"]),
                node_id=str(data["node_id"]),
                spoke_url=str(data["spoke_url"]),
                image_root=str(data["image_root"]),
                site_root=str(data["site_root"]),
                tls_ca_pem=data.get("tls_ca_pem"),
            )
        except (KeyError, TypeError) as exc:
            raise UsageError(
                f"malformed agent bootstrap file: missing {exc}",
                hint="use the agent-bootstrap.json that `airlock spoke node enroll` wrote",
            ) from None
