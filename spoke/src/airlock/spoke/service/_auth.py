"""Authentication of node requests to the spoke service: enrolled keys, fresh, not replayed.

Every request under ``/v1`` is signed by the node (see
:func:`airlock.bundles.protocol.sign_request`). :class:`NodeAuthenticator`
checks, in order, failing closed at the first problem:

1. the request names a node (``X-Airlock-Node``)           → 401 ``unsigned``
2. the node is enrolled and not removed                     → 401 ``unenrolled`` / ``removed``
3. the signature verifies with the enrolled key             → 401 ``bad-signature``
4. the date is within :data:`~airlock.bundles.protocol.MAX_SKEW` → 401 ``stale-date``
5. the nonce was not seen inside the window                 → 401 ``replayed-nonce``
6. a path naming a node names the caller                    → 403 ``wrong-node``

Refusals are counted in Prometheus by reason and audited as
``spoke.node.request``/``refused`` — at most one entry per (claimed node,
reason) per minute, so that a flood of bad requests cannot flood the log.
The claimed node id is attacker-controlled: it is recorded only when it is
a well-formed name, and never trusted for anything else.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass

from securesystemslib.signer import Key
from sqlmodel import Session

from airlock.bundles.clock import Clock
from airlock.bundles.errors import (
    AirlockError,
    AuditWriteError,
    FreshnessError,
    SignatureError,
    WrongSiteError,
)
from airlock.bundles.models import NAME_PATTERN
from airlock.bundles.protocol import HEADER_NODE, NonceCache, verify_request
from airlock.spoke.service._metrics import ServiceMetrics
from airlock.spoke.site._fleet_tables import EnrolledNode
from airlock.spoke.site._home import SpokeHome

logger = logging.getLogger(__name__)

AUDIT_THROTTLE = dt.timedelta(minutes=1)
MAX_THROTTLE_KEYS = 10_000
SERVICE_PRINCIPAL = "spoke-service"
"""The audit principal of refusals: the service saw them; the caller is not authenticated."""


@dataclass(frozen=True)
class AuthenticatedNode:
    """A node whose request passed every check."""

    node_id: str
    key: Key


class RequestRefused(Exception):
    """A request the service refuses: the HTTP status and the error to send back."""

    def __init__(self, status: int, error: AirlockError, reason: str = "") -> None:
        super().__init__(error.message)
        self.status = status
        self.error = error
        self.reason = reason


class _LockedNonceCache(NonceCache):
    """A :class:`NonceCache` safe to share between the server's worker threads."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()

    def check_and_add(self, nonce: str, now: dt.datetime) -> bool:
        """See :meth:`NonceCache.check_and_add`."""
        with self._lock:
            return super().check_and_add(nonce, now)


class NodeAuthenticator:
    """Checks node requests against the enrolled keys (one per app: its own nonce cache)."""

    def __init__(self, home: SpokeHome, clock: Clock, metrics: ServiceMetrics) -> None:
        self._home = home
        self._clock = clock
        self._metrics = metrics
        self._nonces = _LockedNonceCache()
        self._throttle: dict[tuple[str, str], dt.datetime] = {}
        self._throttle_lock = threading.Lock()

    def authenticate(
        self,
        headers: Mapping[str, str],
        method: str,
        path: str,
        body: bytes,
        path_node: str | None,
    ) -> AuthenticatedNode:
        """Authenticates one request.

        Args:
            headers: The request headers (case-insensitive mapping).
            method: The HTTP method.
            path: The path exactly as the client sent it, with ``?query`` if any.
            body: The request body.
            path_node: The node id named in the path, if the route has one.

        Raises:
            RequestRefused: see the module docstring; audited and counted.
        """
        claimed = headers.get(HEADER_NODE, "")
        now = self._clock.now()
        try:
            node = self._check(headers, claimed, method, path, body, now)
        except RequestRefused as refused:
            self._refused(claimed, refused.reason, path, now)
            raise
        if path_node is not None and path_node != node.node_id:
            self._refused(claimed, "wrong-node", path, now)
            raise RequestRefused(
                403,
                WrongSiteError(
                    f"node {node.node_id!r} may not fetch or post another node's files",
                    hint="a node reads its own site-director metadata and posts its own reports",
                ),
                "wrong-node",
            )
        return node

    def _check(
        self,
        headers: Mapping[str, str],
        claimed: str,
        method: str,
        path: str,
        body: bytes,
        now: dt.datetime,
    ) -> AuthenticatedNode:
        if not claimed:
            raise RequestRefused(
                401,
                SignatureError(
                    "the request does not name a node",
                    hint="nodes must sign every request with their enrolled key",
                ),
                "unsigned",
            )
        with Session(self._home.engine) as session:
            enrolled = session.get(EnrolledNode, claimed) if _well_formed(claimed) else None
        if enrolled is None or enrolled.removed_at:
            raise RequestRefused(
                401,
                SignatureError(
                    f"node {_printable(claimed)!r} is not enrolled at this spoke",
                    hint="the site admin enrols nodes with `airlock spoke node enroll`",
                ),
                "unenrolled" if enrolled is None else "removed",
            )
        try:
            key = Key.from_dict(enrolled.keyid, dict(enrolled.public_key))
            verify_request(key, headers, method, path, body, now, self._nonces)
        except SignatureError as exc:
            raise RequestRefused(401, exc, "bad-signature") from None
        except FreshnessError as exc:
            reason = "replayed-nonce" if "replayed" in exc.message else "stale-date"
            raise RequestRefused(401, exc, reason) from None
        except Exception:  # a malformed stored key: fail closed
            raise RequestRefused(
                401,
                SignatureError(f"node {claimed!r} has no usable enrolled key"),
                "bad-key",
            ) from None
        return AuthenticatedNode(claimed, key)

    def _refused(self, claimed: str, reason: str, path: str, now: dt.datetime) -> None:
        self._metrics.refused.labels(reason).inc()
        node = claimed if _well_formed(claimed) else ""
        if not self._should_audit(node, reason, now):
            return
        try:
            self._home.audit.record(
                "spoke.node.request",
                "refused",
                node=node,
                principal=SERVICE_PRINCIPAL,
                details={"reason": reason, "path": path[:256]},
                when=now,
            )
        except AuditWriteError as exc:  # the request is refused either way
            logger.error("could not audit a refused node request: %s", exc.message)

    def _should_audit(self, node: str, reason: str, now: dt.datetime) -> bool:
        with self._throttle_lock:
            if len(self._throttle) >= MAX_THROTTLE_KEYS:
                cutoff = now - AUDIT_THROTTLE
                self._throttle = {k: t for k, t in self._throttle.items() if t > cutoff}
            key = (node, reason) if len(self._throttle) < MAX_THROTTLE_KEYS else ("*", reason)
            last = self._throttle.get(key)
            if last is not None and now - last < AUDIT_THROTTLE:
                return False
            self._throttle[key] = now
            return True


def _well_formed(node_id: str) -> bool:
    return bool(NAME_PATTERN.fullmatch(node_id)) and node_id not in {".", ".."}


def _printable(value: str) -> str:
    return value[:64] if _well_formed(value) else "(malformed id)"
