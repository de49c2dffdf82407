"""Node enrolment: the site admin enrols a node's public key; no other node gets anything.

:func:`enroll_node` records the node's key (:class:`EnrolledNode`), makes sure
the site root exists (the site director's trust anchor) and returns the
node's :class:`AgentBootstrap`: the spoke's URL, the Image root the spoke
trusts now and the site root. :func:`remove_node` revokes a node at once: the
service refuses its next request and its site-director metadata is deleted.

Both join the caller's session (audited in it). :func:`enroll` and
:func:`remove` are the command-level wrappers: one transaction, the bootstrap
file written before it commits, and a ``refused``/``failure`` audit entry
with nothing changed when anything fails.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from securesystemslib.signer import Signer
from sqlmodel import Session, col, select

from airlock.bundles.atomic import atomic_write_json
from airlock.bundles.audit import default_principal, failure_details, failure_outcome
from airlock.bundles.clock import Clock, utc_iso
from airlock.bundles.db import session_scope
from airlock.bundles.errors import ConflictError, MissingFileError, NotFoundError, UsageError
from airlock.bundles.models import NAME_PATTERN
from airlock.bundles.protocol import AgentBootstrap, NodeIdentity
from airlock.bundles.tuf import IMAGE
from airlock.spoke.director import _director as site_director
from airlock.spoke.site._fleet_tables import EnrolledNode, NodeReport
from airlock.spoke.site._home import SpokeHome
from airlock.spoke.site._tables import TrustedMetadataFile

MAX_LABEL_VALUE = 256


@dataclass(frozen=True)
class NodeInfo:
    """One enrolled (or removed) node, for ``airlock spoke node list``."""

    node_id: str
    keyid: str
    labels: dict[str, Any]
    enrolled_at: str
    enrolled_by: str
    removed_at: str
    last_report: str
    active_versions: dict[str, str | None]

    @property
    def status(self) -> str:
        """``enrolled`` or ``removed``."""
        return "removed" if self.removed_at else "enrolled"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "node_id": self.node_id,
            "status": self.status,
            "keyid": self.keyid,
            "labels": self.labels,
            "enrolled_at": self.enrolled_at,
            "enrolled_by": self.enrolled_by,
            "removed_at": self.removed_at,
            "last_report": self.last_report,
            "active_versions": self.active_versions,
        }


def enroll_node(
    home: SpokeHome,
    session: Session,
    identity: NodeIdentity,
    labels: dict[str, str],
    spoke_url: str,
    signer: Signer,
    now: dt.datetime,
    tls_ca_pem: str | None = None,
) -> AgentBootstrap:
    """Enrols ``identity`` (in ``session``) and returns the node's bootstrap.

    A node id already enrolled with the same key is left unchanged (the
    bootstrap is made again); a removed node may be enrolled again.

    Raises:
        ConflictError: the node id is enrolled with a different key.
        UsageError: a bad label or URL.
        NotFoundError: the spoke trusts no Image root (not initialised).
    """
    _check_labels(labels)
    _check_url(spoke_url)
    existing = session.get(EnrolledNode, identity.node_id)
    if existing is not None and not existing.removed_at and existing.keyid != identity.keyid:
        raise ConflictError(
            f"node {identity.node_id!r} is already enrolled with another key "
            f"({existing.keyid[:12]}…)",
            hint="remove it first (airlock spoke node remove) if the node really has a new key",
        )
    site_root = site_director.ensure_site_root(home, session, signer, now)
    image_root = session.get(TrustedMetadataFile, (IMAGE, "root.json"))
    if image_root is None:
        raise NotFoundError(
            "this spoke trusts no Image root yet", hint="initialise the spoke (airlock spoke init)"
        )
    unchanged = existing is not None and not existing.removed_at
    if not unchanged:
        row = existing or EnrolledNode(
            node_id=identity.node_id, keyid="", enrolled_at="", enrolled_by=""
        )
        row.keyid = identity.keyid
        row.public_key = identity.public_key.to_dict()
        row.labels = dict(labels)
        row.enrolled_at = utc_iso(now)
        row.enrolled_by = default_principal()
        row.removed_at = ""
        session.add(row)
    home.audit.record(
        "spoke.node.enroll",
        "success",
        object=identity.node_id,
        node=identity.node_id,
        details={
            "keyid": identity.keyid,
            "labels": dict(labels),
            "spoke_url": spoke_url,
            "unchanged": unchanged,
        },
        session=session,
        when=now,
    )
    return AgentBootstrap(
        site_id=home.site_id,
        node_id=identity.node_id,
        spoke_url=spoke_url,
        image_root=bytes(image_root.data).decode(),
        site_root=site_root.decode(),
        tls_ca_pem=tls_ca_pem,
    )


def remove_node(
    home: SpokeHome, session: Session, node_id: str, reason: str, now: dt.datetime
) -> None:
    """Removes an enrolled node (in ``session``): refused from now on, its metadata deleted.

    Raises:
        UsageError: no reason given.
        NotFoundError: the node is not enrolled (or already removed).
    """
    if not reason.strip():
        raise UsageError("a reason is needed to remove a node", hint="pass --reason TEXT")
    row = session.get(EnrolledNode, node_id)
    if row is None or row.removed_at:
        raise NotFoundError(f"node {node_id!r} is not enrolled at this spoke")
    row.removed_at = utc_iso(now)
    session.add(row)
    site_director.forget_node(session, node_id)
    home.audit.record(
        "spoke.node.remove",
        "success",
        object=node_id,
        node=node_id,
        details={"keyid": row.keyid, "reason": reason},
        session=session,
        when=now,
    )


def list_nodes(session: Session) -> list[NodeInfo]:
    """Every node ever enrolled, with its last report time and active versions."""
    reports = {r.node_id: r for r in session.exec(select(NodeReport))}
    nodes = []
    for row in session.exec(select(EnrolledNode).order_by(col(EnrolledNode.node_id))):
        report = reports.get(row.node_id)
        nodes.append(
            NodeInfo(
                node_id=row.node_id,
                keyid=row.keyid,
                labels=dict(row.labels),
                enrolled_at=row.enrolled_at,
                enrolled_by=row.enrolled_by,
                removed_at=row.removed_at,
                last_report=report.received_at if report else "",
                active_versions=_active_versions(report.report if report else {}),
            )
        )
    return nodes


def enroll(
    home: SpokeHome,
    identity_file: Path,
    labels: Sequence[str],
    spoke_url: str,
    out: Path,
    clock: Clock,
    tls_ca_file: Path | None = None,
) -> AgentBootstrap:
    """``airlock spoke node enroll``: enrols, writes ``out``; audits and changes nothing on failure.

    ``labels`` are ``KEY=VALUE`` strings (see :func:`parse_labels`).
    The site key is unlocked through ``home``'s secrets handler.

    Raises:
        AirlockError: the subclass says what failed.
    """
    now = clock.now()
    node_id = ""
    try:
        identity = NodeIdentity.from_dict(_read_json(identity_file, "node identity"))
        node_id = identity.node_id
        parsed = parse_labels(labels)
        tls_ca_pem = _read_text(tls_ca_file, "TLS CA certificate") if tls_ca_file else None
        signer = home.keystore().signer(home.signing_key())
        with session_scope(home.engine) as session:
            bootstrap = enroll_node(
                home, session, identity, parsed, spoke_url, signer, now, tls_ca_pem
            )
            atomic_write_json(out, bootstrap.to_dict())
        return bootstrap
    except Exception as exc:
        _audit_failure(home, "spoke.node.enroll", node_id or identity_file.name, exc, now)
        raise


def remove(home: SpokeHome, node_id: str, reason: str, clock: Clock) -> None:
    """``airlock spoke node remove``: removes; audits and changes nothing on failure.

    Raises:
        AirlockError: the subclass says what failed.
    """
    now = clock.now()
    try:
        with session_scope(home.engine) as session:
            remove_node(home, session, node_id, reason, now)
    except Exception as exc:
        _audit_failure(home, "spoke.node.remove", node_id, exc, now)
        raise


def _audit_failure(
    home: SpokeHome, action: str, node_id: str, exc: Exception, now: dt.datetime
) -> None:
    home.audit.record(
        action,
        failure_outcome(exc),
        object=node_id,
        node=node_id if NAME_PATTERN.fullmatch(node_id) else "",
        details=failure_details(exc),
        when=now,
    )


def parse_labels(values: Sequence[str]) -> dict[str, str]:
    """Parses ``KEY=VALUE`` label arguments.

    Raises:
        UsageError: an argument without ``=`` or with an invalid key or value.
    """
    labels: dict[str, str] = {}
    for value in values:
        key, sep, label = value.partition("=")
        if not sep:
            raise UsageError(f"label {value!r} is not KEY=VALUE", hint="e.g. --label zone=line-2")
        labels[key] = label
    _check_labels(labels)
    return labels


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(_read_text(path, what))
    except ValueError:
        raise UsageError(f"the {what} file {path} is not JSON") from None
    if not isinstance(data, dict):
        raise UsageError(f"the {what} file {path} is not a JSON object")
    return data


def _read_text(path: Path, what: str) -> str:
    try:
        return Path(path).read_text()
    except FileNotFoundError:
        raise MissingFileError(f"the {what} file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the {what} file {path} ({type(exc).__name__})") from None


def _check_labels(labels: dict[str, str]) -> None:
    for key, value in labels.items():
        if not NAME_PATTERN.fullmatch(key):
            raise UsageError(
                f"invalid label name {key!r}", hint="use A-Z a-z 0-9 . _ - (max 128), e.g. zone"
            )
        if len(value) > MAX_LABEL_VALUE or not value.isprintable():
            raise UsageError(f"invalid value for label {key!r}")


def _check_url(url: str) -> None:
    if not url.startswith(("https://", "http://")) or len(url) > 2048:
        raise UsageError(
            f"the spoke URL {url!r} is not an http(s) URL",
            hint="pass the URL nodes reach the spoke at, e.g. https://spoke.site:8750",
        )


def _active_versions(stored: dict[str, Any]) -> dict[str, str | None]:
    installed = (stored.get("signed") or {}).get("installed") or []
    return {
        str(item.get("model")): item.get("active_version")
        for item in installed
        if isinstance(item, dict)
    }
