"""The site director: the spoke signs each node's assignment as TUF metadata with the site key.

Inside a site the spoke plays the hub Director's part one level down (the
design brief's trust model). The site key is the only key of a small TUF
repository per site:

* the **site root** (``N.root.json``, stored under ``node_id = ""``): roles
  root, targets, snapshot and timestamp all keyed to the site key, threshold
  1, consistent snapshots, naming the site in ``x-airlock-site-id``; shared by
  every node, given to a node at enrolment;
* per node, its own ``V.targets.json`` (naming the site and the node in
  ``x-airlock-node-id``), ``V.snapshot.json`` and ``timestamp.json``: only the
  current version of each is kept.

A node's targets list every file of every model version the rollout engine
wants it to hold (:class:`~airlock.spoke.site._fleet_tables.NodeDesired`), at the
Image target path with the Image length and hashes. Nothing is signed unless
every such file is staged, not revoked, and signed by the Image metadata the
spoke trusts — and nodes check the same again against the Image metadata they
verify themselves (:mod:`airlock.node._verify`), so a compromised spoke
can only choose among hub-signed, unrevoked models.

The functions join the caller's database session (nothing is committed
here) and never talk HTTP; the service serves :func:`node_metadata`.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

from securesystemslib.signer import Signer
from sqlmodel import Session, col, select
from tuf.api.metadata import Metadata, Root, TargetFile

from airlock.bundles import tuf as tufrepo
from airlock.bundles.errors import TrustError, UsageError
from airlock.bundles.protocol import NodeModel
from airlock.spoke.director import _image_freshness as image_freshness
from airlock.spoke.director._meta import (
    ROOT_RENEW_BEFORE,
    NodeRepository,
    TrustedImage,
    check_site_key,
    new_site_root,
    node_target,
    node_targets_md,
    renew,
    sign_node,
)
from airlock.spoke.site._fleet_tables import NodeDesired, RevokedVersion, SiteDirectorFile
from airlock.spoke.site._home import SpokeHome
from airlock.spoke.site._tables import StagedModel, TrustedMetadataFile

SITE_ROOT_NODE = ""
"""The ``node_id`` under which the shared site root files are stored."""
_ROOT_NAME = re.compile(r"^([1-9][0-9]{0,9})\.root\.json$")

VersionFile = tuple[TargetFile, str, str]
"""An Image-signed file of a version: (Image target, kind, file name)."""


def ensure_site_root(home: SpokeHome, session: Session, signer: Signer, now: dt.datetime) -> bytes:
    """Creates the site root if absent, renews it before it expires; returns the newest.

    Version 1 lives 365 days; when the newest root expires within 30 days a
    new version (same key, signed by it) is added.

    Raises:
        TrustError: the stored root names another site or another key.
    """
    roots = _root_files(session)
    if not roots:
        return _add_root(home, session, new_site_root(home.site_id, signer, 1, now), now)
    newest = max(roots)
    md = Metadata[Root].from_bytes(roots[newest])
    if md.signed.unrecognized_fields.get(tufrepo.SITE_ID_FIELD) != home.site_id:
        raise TrustError(
            f"the stored site root does not name this site ({home.site_id})",
            hint="the database belongs to another site; restore this site's database",
        )
    check_site_key(md.signed, signer)
    if md.signed.expires.astimezone(dt.UTC) - now <= ROOT_RENEW_BEFORE:
        renewed = new_site_root(home.site_id, signer, newest + 1, now)
        return _add_root(home, session, renewed, now)
    return roots[newest]


def _add_root(home: SpokeHome, session: Session, md: Metadata[Root], now: dt.datetime) -> bytes:
    data = tufrepo.to_bytes(md)
    version = md.signed.version
    session.add(SiteDirectorFile(node_id=SITE_ROOT_NODE, name=f"{version}.root.json", data=data))
    home.audit.record(
        "spoke.site_director.root",
        "success",
        object=f"site-root@{version}",
        details={"version": version, "expires": md.signed.expires.isoformat()},
        session=session,
        when=now,
    )
    return data


def publish_pending(
    home: SpokeHome, session: Session, signer: Signer, now: dt.datetime
) -> list[str]:
    """Signs new metadata for every node whose signed targets differ from ``NodeDesired``.

    Every wanted version is checked first, for every node; one that is not
    staged, is revoked, or whose files the trusted Image metadata does not
    sign makes the whole call fail with nothing written.

    Returns:
        The ids of the nodes re-signed (sorted).

    Raises:
        TrustError: a node is told to hold a version the spoke may not hand out.
        UsageError: a ``NodeDesired`` row is malformed.
    """
    site_id = home.site_id
    rows = list(session.exec(select(NodeDesired).order_by(col(NodeDesired.node_id))))
    checked: dict[tuple[str, str], list[VersionFile]] = {}
    image: TrustedImage | None = None  # loaded on first use
    plans: list[tuple[NodeDesired, list[NodeModel], dict[str, TargetFile]]] = []
    for row in rows:
        models = _node_models(row)
        wanted: dict[str, TargetFile] = {}
        for node_model in models:
            key = (node_model.model, node_model.version)
            if key not in checked:
                image = image or _trusted_image(session)
                checked[key] = _version_files(session, image, *key)
            for signed, kind, filename in checked[key]:
                target = node_target(site_id, row.node_id, node_model, signed, kind, filename)
                if target.path in wanted:
                    raise UsageError(f"node {row.node_id} is told to hold {target.path} twice")
                wanted[target.path] = target
        plans.append((row, models, wanted))

    ensure_site_root(home, session, signer, now)
    stored = _node_files(session)
    published: dict[str, Any] = {}
    for row, models, wanted in plans:
        files = stored.get(row.node_id, {})
        unchanged = _unchanged_version(files, wanted)
        if unchanged is not None:
            if row.targets_version != unchanged:
                row.targets_version = unchanged
                session.add(row)
            continue
        current = NodeRepository.from_files(row.node_id, files)
        version = current.targets.signed.version + 1 if current else 1
        targets = node_targets_md(site_id, row.node_id, wanted, version, now)
        _store(session, row.node_id, sign_node(signer, targets, current, now))
        row.targets_version = version
        session.add(row)
        published[row.node_id] = {
            "targets_version": version,
            "models": [f"{m.model}@{m.version}" for m in models],
        }
    if published:
        home.audit.record(
            "spoke.site_director.publish",
            "success",
            object="site-director",
            details={"nodes": published},
            session=session,
            when=now,
        )
    return sorted(published)


def refresh_expiring(
    home: SpokeHome, session: Session, signer: Signer, now: dt.datetime
) -> list[str]:
    """Re-signs node metadata that expires within half its lifetime (and renews the site root).

    Also keeps the site's freshness statement for the Image metadata current
    (:func:`airlock.spoke.director._image_freshness.ensure_statement`).

    Returns:
        The ids of the nodes re-signed (sorted).
    """
    ensure_site_root(home, session, signer, now)
    image_freshness.ensure_statement(home, session, signer, now)
    renewed: dict[str, int] = {}
    for node_id, files in sorted(_node_files(session).items()):
        current = NodeRepository.from_files(node_id, files)
        if current is None:
            continue
        repo = renew(signer, home.site_id, node_id, current, now)
        if repo is None:
            continue
        _store(session, node_id, repo)
        desired = session.get(NodeDesired, node_id)
        if desired is not None:
            desired.targets_version = repo.targets.signed.version
            session.add(desired)
        renewed[node_id] = repo.timestamp.signed.version
    if renewed:
        home.audit.record(
            "spoke.site_director.refresh",
            "success",
            object="site-director",
            details={"timestamp_versions": renewed},
            session=session,
            when=now,
        )
    return sorted(renewed)


def forget_node(session: Session, node_id: str) -> None:
    """Deletes a node's site-director metadata (node removal; the caller audits).

    Raises:
        UsageError: ``node_id`` is empty (that would be the site root).
    """
    if not node_id:
        raise UsageError("a node id is needed to forget a node's metadata")
    for row in session.exec(select(SiteDirectorFile).where(SiteDirectorFile.node_id == node_id)):
        session.delete(row)


def node_metadata(session: Session, node_id: str, name: str) -> bytes | None:
    """The file ``name`` of ``node_id``'s site-director repository, as a node asks for it.

    ``N.root.json`` is the shared site root version N; ``timestamp.json``,
    ``V.snapshot.json`` and ``V.targets.json`` are the node's current files.
    Anything else, another version, or an unknown node: None.
    """
    if not node_id:
        return None
    root = _ROOT_NAME.match(name)
    if root:
        return site_root(session, int(root.group(1)))
    row = session.get(SiteDirectorFile, (node_id, name))
    return None if row is None else bytes(row.data)


def site_root(session: Session, version: int | None = None) -> bytes | None:
    """Site root ``version`` (the newest when None), or None when there is none."""
    roots = _root_files(session)
    if not roots:
        return None
    return roots.get(max(roots) if version is None else version)


def load_node(session: Session, node_id: str) -> NodeRepository | None:
    """A node's current signed metadata, or None when it has none.

    Raises:
        TrustError: the stored files are inconsistent.
    """
    rows = session.exec(select(SiteDirectorFile).where(SiteDirectorFile.node_id == node_id))
    return NodeRepository.from_files(node_id, {row.name: bytes(row.data) for row in rows})


def _node_files(session: Session) -> dict[str, dict[str, bytes]]:
    """Every node's stored files (node id → file name → bytes), in one query."""
    files: dict[str, dict[str, bytes]] = {}
    rows = session.exec(select(SiteDirectorFile).where(SiteDirectorFile.node_id != SITE_ROOT_NODE))
    for row in rows:
        files.setdefault(row.node_id, {})[row.name] = bytes(row.data)
    return files


def _root_files(session: Session) -> dict[int, bytes]:
    rows = session.exec(select(SiteDirectorFile).where(SiteDirectorFile.node_id == SITE_ROOT_NODE))
    roots: dict[int, bytes] = {}
    for row in rows:
        match = _ROOT_NAME.match(row.name)
        if match:
            roots[int(match.group(1))] = bytes(row.data)
    return roots


def _store(session: Session, node_id: str, repo: NodeRepository) -> None:
    files = repo.files()
    existing = {
        row.name: row
        for row in session.exec(select(SiteDirectorFile).where(SiteDirectorFile.node_id == node_id))
    }
    for name, row in existing.items():
        if name not in files:
            session.delete(row)
    for name, data in files.items():
        if name in existing:
            existing[name].data = data
            session.add(existing[name])
        else:
            session.add(SiteDirectorFile(node_id=node_id, name=name, data=data))


def _unchanged_version(files: dict[str, bytes], wanted: dict[str, TargetFile]) -> int | None:
    """The stored targets version when it lists exactly ``wanted`` (fast path, no TUF parsing)."""
    names = [name for name in files if name.endswith(".targets.json")]
    if len(names) != 1:
        return None
    try:
        signed = json.loads(files[names[0]])["signed"]
        same = signed["targets"] == {path: t.to_dict() for path, t in wanted.items()}
        return int(signed["version"]) if same else None
    except (ValueError, KeyError, TypeError):
        return None


def _node_models(row: NodeDesired) -> list[NodeModel]:
    try:
        return [NodeModel.from_dict(item) for item in row.models]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise UsageError(
            f"the desired models of node {row.node_id} are malformed ({exc})"
        ) from None


def _trusted_image(session: Session) -> TrustedImage:
    rows = session.exec(
        select(TrustedMetadataFile).where(TrustedMetadataFile.repository == tufrepo.IMAGE)
    )
    return TrustedImage({row.name: bytes(row.data) for row in rows})


def _version_files(
    session: Session, image: TrustedImage, model: str, version: str
) -> list[VersionFile]:
    """The Image-signed files of a staged, unrevoked version.

    Raises:
        TrustError: not staged, revoked, or a file the trusted Image metadata does not sign.
    """
    ref = f"{model}@{version}"
    if session.get(RevokedVersion, (model, version)) is not None:
        raise TrustError(
            f"{ref} is revoked by the hub: refusing to assign it to a node",
            hint="assign another version (the rollout engine moves nodes off revoked versions)",
        )
    staged = session.get(StagedModel, (model, version))
    if staged is None:
        raise TrustError(
            f"{ref} is not staged on this spoke: refusing to assign it to a node",
            hint="import the bundle that carries it first",
        )
    try:
        entries = json.loads(staged.files)
        files = [(str(e["filename"]), str(e["sha256"]), int(e["length"])) for e in entries]
    except (ValueError, KeyError, TypeError) as exc:
        raise TrustError(f"the staged file list of {ref} is unreadable ({exc})") from None
    if not files:
        raise TrustError(f"{ref} has no staged files")
    result: list[VersionFile] = []
    for filename, sha256, length in files:
        path = tufrepo.target_path(model, version, filename)
        signed = image.target(path)
        if signed is None:
            raise TrustError(
                f"the Image metadata this spoke trusts does not sign {path}",
                hint="the hub never released it or has revoked it; assign another version",
            )
        custom_field = signed.custom.get(tufrepo.CUSTOM_KEY) if signed.custom else None
        custom = custom_field if isinstance(custom_field, dict) else {}
        fields = (custom.get("model"), custom.get("version"), custom.get("file"))
        if (
            signed.length != length
            or tufrepo.sha256_of_target(signed) != sha256
            or fields != (model, version, filename)
        ):
            raise TrustError(
                f"the staged {path} does not match the trusted Image target",
                hint="the staged files were altered; re-import the version's bundle",
            )
        result.append((signed, str(custom.get("kind", "model")), filename))
    return result
