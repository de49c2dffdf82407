"""The site director's TUF metadata, in memory: the site root, node repositories, Image trust.

Pure building blocks for :mod:`airlock.spoke.director._director` (which stores and
audits): the site root keyed to the one site key, a node's targets /
snapshot / timestamp and how to re-sign them, and :class:`TrustedImage`, a
read-only view of the Image metadata the spoke verified at import, used to
check that every file the site director names is one the hub signs.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib import parse

from securesystemslib.signer import Signer
from tuf.api.metadata import (
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)

from airlock.bundles import tuf as tufrepo
from airlock.bundles.errors import TrustError
from airlock.bundles.protocol import NODE_ID_FIELD, NodeModel

ROOT_LIFETIME = dt.timedelta(days=365)
ROOT_RENEW_BEFORE = dt.timedelta(days=30)
TARGETS_LIFETIME = dt.timedelta(days=7)
SNAPSHOT_LIFETIME = dt.timedelta(days=7)
TIMESTAMP_LIFETIME = dt.timedelta(days=1)
TOP_LEVEL_ROLES = (Root.type, Targets.type, Snapshot.type, Timestamp.type)


def _expiry(now: dt.datetime, lifetime: dt.timedelta) -> dt.datetime:
    return (now + lifetime).astimezone(dt.UTC).replace(microsecond=0)


def new_site_root(site_id: str, signer: Signer, version: int, now: dt.datetime) -> Metadata[Root]:
    """Site root ``version``: every top-level role keyed to the site key, threshold 1."""
    root = Root(
        version=version,
        expires=_expiry(now, ROOT_LIFETIME),
        consistent_snapshot=True,
        unrecognized_fields={tufrepo.SITE_ID_FIELD: site_id},
    )
    for role in TOP_LEVEL_ROLES:
        root.add_key(signer.public_key, role)
    return tufrepo.sign_with(Metadata(root), [signer])


def check_site_key(root: Root, signer: Signer) -> None:
    """Checks ``signer`` holds the key the site root trusts for every role.

    Raises:
        TrustError: the site key is not the one the site root names.
    """
    keyid = signer.public_key.keyid
    for role in TOP_LEVEL_ROLES:
        if keyid not in root.roles[role].keyids:
            raise TrustError(
                f"the site key {keyid[:12]}… is not the {role} key of the site root",
                hint="the site key changed since the site root was made; re-enrol the nodes",
            )


def meta_file(md: Metadata[Any]) -> MetaFile:
    """A snapshot/timestamp entry for ``md``: version, length and SHA-256 of its bytes."""
    data = tufrepo.to_bytes(md)
    return MetaFile(
        version=md.signed.version,
        length=len(data),
        hashes={"sha256": hashlib.sha256(data).hexdigest()},
    )


@dataclass
class NodeRepository:
    """One node's signed targets, snapshot and timestamp."""

    targets: Metadata[Targets]
    snapshot: Metadata[Snapshot]
    timestamp: Metadata[Timestamp]

    def files(self) -> dict[str, bytes]:
        """File name (as ngclient asks with consistent snapshots) → bytes."""
        return {
            "timestamp.json": tufrepo.to_bytes(self.timestamp),
            f"{self.snapshot.signed.version}.snapshot.json": tufrepo.to_bytes(self.snapshot),
            f"{self.targets.signed.version}.targets.json": tufrepo.to_bytes(self.targets),
        }

    @classmethod
    def from_files(cls, node_id: str, files: Mapping[str, bytes]) -> NodeRepository | None:
        """Loads the current files of a node (None when it has none).

        Raises:
            TrustError: the stored files are incomplete or inconsistent.
        """
        if not files:
            return None
        try:
            timestamp = Metadata[Timestamp].from_bytes(files["timestamp.json"])
            snap_version = timestamp.signed.snapshot_meta.version
            snapshot = Metadata[Snapshot].from_bytes(files[f"{snap_version}.snapshot.json"])
            targets_version = snapshot.signed.meta["targets.json"].version
            targets = Metadata[Targets].from_bytes(files[f"{targets_version}.targets.json"])
        except (KeyError, ValueError, TypeError) as exc:
            raise TrustError(
                f"the stored site-director metadata of node {node_id} is incomplete ({exc})",
                hint="remove the node's metadata (node removal) and publish again",
            ) from None
        return cls(targets, snapshot, timestamp)


def node_targets_md(
    site_id: str, node_id: str, targets: dict[str, TargetFile], version: int, now: dt.datetime
) -> Metadata[Targets]:
    """Unsigned node targets naming the site and the node."""
    return Metadata(
        Targets(
            version=version,
            expires=_expiry(now, TARGETS_LIFETIME),
            targets=dict(sorted(targets.items())),
            unrecognized_fields={tufrepo.SITE_ID_FIELD: site_id, NODE_ID_FIELD: node_id},
        )
    )


def sign_node(
    signer: Signer,
    targets: Metadata[Targets],
    previous: NodeRepository | None,
    now: dt.datetime,
    *,
    new_snapshot: bool = True,
) -> NodeRepository:
    """Signs ``targets`` and makes the snapshot (unless kept) and timestamp above ``previous``."""
    tufrepo.sign_with(targets, [signer])
    if new_snapshot or previous is None:
        version = previous.snapshot.signed.version + 1 if previous else 1
        snapshot = Metadata(
            Snapshot(
                version=version,
                expires=_expiry(now, SNAPSHOT_LIFETIME),
                meta={"targets.json": meta_file(targets)},
            )
        )
        tufrepo.sign_with(snapshot, [signer])
    else:
        snapshot = previous.snapshot
    ts_version = previous.timestamp.signed.version + 1 if previous else 1
    timestamp = Metadata(
        Timestamp(
            version=ts_version,
            expires=_expiry(now, TIMESTAMP_LIFETIME),
            snapshot_meta=meta_file(snapshot),
        )
    )
    tufrepo.sign_with(timestamp, [signer])
    return NodeRepository(targets, snapshot, timestamp)


def renew(
    signer: Signer, site_id: str, node_id: str, current: NodeRepository, now: dt.datetime
) -> NodeRepository | None:
    """Re-signs whatever of a node's metadata expires within half its lifetime (None: nothing).

    Targets keep their content (version + 1); a new targets version brings a
    new snapshot, and any re-signing brings a new timestamp.
    """

    def due(expires: dt.datetime, lifetime: dt.timedelta) -> bool:
        return expires.astimezone(dt.UTC) - now <= lifetime / 2

    if due(current.targets.signed.expires, TARGETS_LIFETIME):
        targets = node_targets_md(
            site_id,
            node_id,
            dict(current.targets.signed.targets),
            current.targets.signed.version + 1,
            now,
        )
        return sign_node(signer, targets, current, now)
    if due(current.snapshot.signed.expires, SNAPSHOT_LIFETIME):
        return sign_node(signer, current.targets, current, now)
    if due(current.timestamp.signed.expires, TIMESTAMP_LIFETIME):
        return sign_node(signer, current.targets, current, now, new_snapshot=False)
    return None


def node_target(
    site_id: str, node_id: str, node_model: NodeModel, image: TargetFile, kind: str, filename: str
) -> TargetFile:
    """The site-director target telling a node to hold one Image-signed file."""
    custom = {
        **node_model.to_dict(),
        "file": filename,
        "kind": kind,
        "site_id": site_id,
        "node_id": node_id,
    }
    return TargetFile(
        length=image.length,
        hashes=dict(image.hashes),
        path=image.path,
        unrecognized_fields={"custom": {tufrepo.CUSTOM_KEY: custom}},
    )


class TrustedImage:
    """The Image targets the spoke trusts (verified at import), walked like ngclient does.

    Only role files whose version is the one the trusted snapshot lists are
    used, so a stale cached delegation (say, one that still lists a revoked
    version) never counts.
    """

    def __init__(self, files: Mapping[str, bytes]) -> None:
        self._files = dict(files)
        try:
            snapshot = Metadata[Snapshot].from_bytes(self._files["snapshot.json"])
        except (KeyError, ValueError) as exc:
            raise TrustError(
                f"the spoke trusts no Image snapshot ({type(exc).__name__})",
                hint="import a bundle from the hub first",
            ) from None
        self._meta = snapshot.signed.meta
        self._roles: dict[str, Targets | None] = {}

    def _role(self, name: str) -> Targets | None:
        if name not in self._roles:
            self._roles[name] = self._load_role(name)
        return self._roles[name]

    def _load_role(self, name: str) -> Targets | None:
        meta = self._meta.get(f"{name}.json")
        data = self._files.get(f"{parse.quote(name, '')}.json")
        if meta is None or data is None:
            return None
        try:
            md = Metadata[Targets].from_bytes(data)
        except ValueError:
            return None
        if not isinstance(md.signed, Targets) or md.signed.version != meta.version:
            return None
        return md.signed

    def target(self, path: str) -> TargetFile | None:
        """The Image target at ``path`` (preorder depth-first through delegations), or None."""
        to_visit = [Targets.type]
        visited: set[str] = set()
        while to_visit and len(visited) < 32:
            name = to_visit.pop()
            if name in visited:
                continue
            role = self._role(name)
            if role is None:
                continue
            if path in role.targets:
                return role.targets[path]
            visited.add(name)
            if role.delegations is None:
                continue
            children = []
            for child, terminating in role.delegations.get_roles_for_target(path):
                children.append(child)
                if terminating:
                    to_visit = []
                    break
            to_visit.extend(reversed(children))
        return None
