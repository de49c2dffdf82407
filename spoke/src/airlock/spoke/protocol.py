"""The node protocol: what a node agent and the spoke say to each other over HTTP.

Every request a node makes is signed with the node's enrolled Ed25519 key
(:func:`sign_request` / :func:`verify_request`), including plain GETs of TUF
metadata: an unenrolled node gets nothing. The signed message binds method,
path (with query), a UTC timestamp, a random nonce and the SHA-256 of the
body; the spoke refuses a timestamp more than :data:`MAX_SKEW` away from its
clock and a nonce it has seen inside that window (replay).

Paths served by the spoke (``{node}`` is the caller's own node id)::

    GET  /v1/image/{N}.root.json | timestamp.json | {V}.{role}.json
    GET  /v1/image/targets/{model}/{version}/{sha256}.{file}
    GET  /v1/nodes/{node}/director/{N}.root.json | timestamp.json | {V}.{role}.json
    POST /v1/nodes/{node}/reports      body: a SignedDocument of a VersionReport
    POST /v1/nodes/{node}/metrics      body: a SignedDocument of a MetricsReport
    GET  /metrics                      Prometheus text format (no node data)
    GET  /healthz

The site-director targets of a node (signed by the site key under the site
root) list every file of every version the node should hold, at the Image
target path, with the Image length and hashes, and ``custom.airlock``:
:class:`NodeModel` fields plus ``file``. The node verifies them against the
Image metadata it fetched itself (both with ``tuf.ngclient``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from securesystemslib.signer import Key, Signature, Signer

from airlock.bundles.canonical import canonical_bytes
from airlock.bundles.clock import parse_utc, utc_iso
from airlock.bundles.errors import FreshnessError, SignatureError, UsageError
from airlock.bundles.models import check_name

API_PREFIX = "/v1"
IMAGE_PATH = f"{API_PREFIX}/image"
NODES_PATH = f"{API_PREFIX}/nodes"
HEADER_NODE = "X-Airlock-Node"
HEADER_DATE = "X-Airlock-Date"
HEADER_NONCE = "X-Airlock-Nonce"
HEADER_SIGNATURE = "X-Airlock-Signature"
MAX_SKEW = dt.timedelta(minutes=5)
NODE_ID_FIELD = "x-airlock-node-id"
"""Site-director targets name their node here (as the hub's Director names the site)."""

ROLES = ("stable", "candidate")
"""A NodeModel's role: the version the fleet trusts, or the one being rolled out."""
TRAFFIC = ("all", "split", "shadow")
"""How a candidate runs on a node (see :mod:`airlock.bundles.release._rollout_plan`)."""


def director_base(node_id: str) -> str:
    """The metadata base path of ``node_id``'s site-director repository."""
    return f"{NODES_PATH}/{node_id}/director"


def request_message(method: str, path: str, date: str, nonce: str, body: bytes) -> bytes:
    """The bytes a node signs for one request."""
    digest = hashlib.sha256(body).hexdigest()
    return f"airlock-node-request-v1\n{method.upper()}\n{path}\n{date}\n{nonce}\n{digest}".encode()


def sign_request(
    signer: Signer, node_id: str, method: str, path: str, body: bytes, now: dt.datetime
) -> dict[str, str]:
    """The authentication headers of one request (``path`` includes any query string)."""
    date, nonce = utc_iso(now), secrets.token_hex(16)
    signature = signer.sign(request_message(method, path, date, nonce, body))
    return {
        HEADER_NODE: node_id,
        HEADER_DATE: date,
        HEADER_NONCE: nonce,
        HEADER_SIGNATURE: signature.signature,
    }


class NonceCache:
    """Nonces seen inside the skew window (per spoke process)."""

    def __init__(self) -> None:
        self._seen: dict[str, dt.datetime] = {}

    def check_and_add(self, nonce: str, now: dt.datetime) -> bool:
        """False when ``nonce`` was seen inside the window; records it otherwise."""
        if len(self._seen) > 100_000 or len(self._seen) % 1024 == 0:
            cutoff = now - 2 * MAX_SKEW
            self._seen = {n: t for n, t in self._seen.items() if t >= cutoff}
        if nonce in self._seen:
            return False
        self._seen[nonce] = now
        return True


def verify_request(
    key: Key,
    headers: Mapping[str, str],
    method: str,
    path: str,
    body: bytes,
    now: dt.datetime,
    nonces: NonceCache,
) -> None:
    """Checks one request's signature, timestamp and nonce against the node's enrolled key.

    Raises:
        SignatureError: missing headers or a signature that does not verify.
        FreshnessError: timestamp outside :data:`MAX_SKEW`, or a replayed nonce.
    """
    try:
        date, nonce, sig = (headers[HEADER_DATE], headers[HEADER_NONCE], headers[HEADER_SIGNATURE])
        when = parse_utc(date)
    except (KeyError, ValueError):
        raise SignatureError(
            "the request carries no valid node signature headers",
            hint="nodes must sign every request with their enrolled key",
        ) from None
    try:
        key.verify_signature(
            Signature(key.keyid, sig), request_message(method, path, date, nonce, body)
        )
    except Exception:
        raise SignatureError(
            "the request's signature does not verify with the node's enrolled key",
            hint="check the node uses the key the site admin enrolled",
        ) from None
    if abs(now - when) > MAX_SKEW:
        raise FreshnessError(
            f"the request is dated {date}, too far from the spoke's clock ({utc_iso(now)})",
            hint="fix the node's clock",
        )
    if not nonces.check_and_add(nonce, now):
        raise FreshnessError("the request was replayed (nonce seen before)")


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
class ModelVersionMetrics:
    """One model version's figures on one node over one report window."""

    model: str
    version: str
    role: str
    requests: int = 0
    errors: int = 0
    latency: dict[str, int] = field(default_factory=dict)
    """A :class:`airlock.bundles.metrics._sketch.LatencySketch` in its ``to_dict`` form."""
    predictions: dict[str, int] = field(default_factory=dict)
    """Answer (class label, or a bucketed value for regression) → count."""
    shadow_compared: int = 0
    shadow_disagreed: int = 0
    confidence: dict[str, int] = field(default_factory=dict)
    """Confidence bucket (highest class probability, ``"0.0"`` … ``"0.9"``) → count."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "model": self.model,
            "version": self.version,
            "role": self.role,
            "requests": self.requests,
            "errors": self.errors,
            "latency": self.latency,
            "predictions": self.predictions,
            "confidence": self.confidence,
            "shadow_compared": self.shadow_compared,
            "shadow_disagreed": self.shadow_disagreed,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelVersionMetrics:
        """Parses :meth:`to_dict` output."""
        return cls(
            model=str(data["model"]),
            version=str(data["version"]),
            role=str(data.get("role", "stable")),
            requests=int(data.get("requests", 0)),
            errors=int(data.get("errors", 0)),
            latency={str(k): int(v) for k, v in (data.get("latency") or {}).items()},
            predictions={str(k): int(v) for k, v in (data.get("predictions") or {}).items()},
            confidence={str(k): int(v) for k, v in (data.get("confidence") or {}).items()},
            shadow_compared=int(data.get("shadow_compared", 0)),
            shadow_disagreed=int(data.get("shadow_disagreed", 0)),
        )


@dataclass(frozen=True)
class MetricsReport:
    """What a node measured over one window (``signed`` part of a SignedDocument)."""

    node_id: str
    window_start: str
    window_end: str
    models: tuple[ModelVersionMetrics, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "type": "metrics",
            "node_id": self.node_id,
            "window_start": self.window_start,
            "window_end": self.window_end,
            "models": [m.to_dict() for m in self.models],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MetricsReport:
        """Parses :meth:`to_dict` output.

        Raises:
            UsageError: malformed, or the window is not two UTC times in order.
        """
        try:
            report = cls(
                node_id=str(data["node_id"]),
                window_start=str(data["window_start"]),
                window_end=str(data["window_end"]),
                models=tuple(ModelVersionMetrics.from_dict(m) for m in data.get("models") or []),
            )
            if parse_utc(report.window_end) < parse_utc(report.window_start):
                raise ValueError("the window ends before it starts")
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"malformed metrics report: {exc}") from None
        return report


@dataclass(frozen=True)
class InstalledModel:
    """One model family on a node, as the node reports it."""

    model: str
    active_version: str | None
    active_slot: str
    standby_version: str | None = None
    candidate_version: str | None = None
    traffic: str = "all"
    state: str = "committed"
    """``committed``, ``installing``, ``health-check``, ``fell-back`` or ``refused``."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "model": self.model,
            "active_version": self.active_version,
            "active_slot": self.active_slot,
            "standby_version": self.standby_version,
            "candidate_version": self.candidate_version,
            "traffic": self.traffic,
            "state": self.state,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InstalledModel:
        """Parses :meth:`to_dict` output."""
        return cls(
            model=str(data["model"]),
            active_version=data.get("active_version"),
            active_slot=str(data.get("active_slot", "A")),
            standby_version=data.get("standby_version"),
            candidate_version=data.get("candidate_version"),
            traffic=str(data.get("traffic", "all")),
            state=str(data.get("state", "committed")),
        )


HEALTH_CHECK = "health-check"
"""The :attr:`Refusal.kind` of a version that failed the node's health check."""


@dataclass(frozen=True)
class Refusal:
    """A version the node would not install, and why.

    ``kind`` is :data:`HEALTH_CHECK` when the node installed the version and
    fell back because it failed its health check (bad health: the rollout
    engine counts it as a failed analysis), else ``refused`` (incompatible,
    waiting for a dependency, a failed download or verification).
    """

    model: str
    version: str
    reason: str
    time: str
    kind: str = "refused"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "model": self.model,
            "version": self.version,
            "reason": self.reason,
            "time": self.time,
            "kind": self.kind,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Refusal:
        """Parses :meth:`to_dict` output."""
        return cls(
            str(data["model"]),
            str(data["version"]),
            str(data["reason"]),
            str(data["time"]),
            str(data.get("kind", "refused")),
        )


@dataclass(frozen=True)
class VersionReport:
    """A node's signed account of what it runs (Uptane's version report, per node)."""

    node_id: str
    counter: int
    time: str
    installed: tuple[InstalledModel, ...] = ()
    last_verified: str | None = None
    refusals: tuple[Refusal, ...] = ()
    runtime: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "type": "version-report",
            "node_id": self.node_id,
            "counter": self.counter,
            "time": self.time,
            "installed": [m.to_dict() for m in self.installed],
            "last_verified": self.last_verified,
            "refusals": [r.to_dict() for r in self.refusals],
            "runtime": self.runtime,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VersionReport:
        """Parses :meth:`to_dict` output.

        Raises:
            UsageError: malformed.
        """
        try:
            return cls(
                node_id=str(data["node_id"]),
                counter=int(data["counter"]),
                time=str(data["time"]),
                installed=tuple(InstalledModel.from_dict(m) for m in data.get("installed") or []),
                last_verified=data.get("last_verified"),
                refusals=tuple(Refusal.from_dict(r) for r in data.get("refusals") or []),
                runtime=dict(data.get("runtime") or {}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"malformed version report: {exc}") from None

    def active_version(self, model: str) -> str | None:
        """The version of ``model`` this node answers with, if any."""
        for item in self.installed:
            if item.model == model:
                return item.active_version
        return None


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
