"""Signed node requests: the spoke's paths, and how a node signs (and the spoke checks)
every HTTP request it makes.

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
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Mapping

from securesystemslib.signer import Key, Signature, Signer

from airlock.bundles.clock import parse_utc, utc_iso
from airlock.bundles.errors import FreshnessError, SignatureError

API_PREFIX = "/v1"
IMAGE_PATH = f"{API_PREFIX}/image"
NODES_PATH = f"{API_PREFIX}/nodes"
HEADER_NODE = "X-Airlock-Node"
HEADER_DATE = "X-Airlock-Date"
HEADER_NONCE = "X-Airlock-Nonce"
HEADER_SIGNATURE = "X-Airlock-Signature"
MAX_SKEW = dt.timedelta(minutes=5)


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
