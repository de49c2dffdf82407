"""The spoke's local Image mirror: which hub-signed files a node may fetch, by URL name.

The spoke passes the hub's Image metadata and model files through unchanged;
nodes verify them with ``tuf.ngclient`` from the Image root in their bootstrap
file. This module maps the names a node asks for to what the spoke trusts:

* metadata — ``N.root.json`` from the trusted root history, ``timestamp.json``,
  and ``V.<role>.json`` only when the stored trusted file of that role has
  version ``V`` (consistent snapshots: any other version is not served);
* ``site-freshness.json`` — the site director's freshness statement for that
  metadata (:mod:`airlock.bundles.protocol`), signed by the site key;
* targets — ``<model>/<version>/<sha256>.<file>`` only for a file of a staged,
  unrevoked version whose blob is present in the content-addressed store.

Pure lookups: no HTTP here (see :mod:`airlock.spoke.service._app`), nothing written.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib import parse

from sqlmodel import Session

from airlock.bundles.protocol import FRESHNESS_FILE
from airlock.bundles.tuf import IMAGE
from airlock.spoke.director._image_freshness import stored_statement
from airlock.spoke.site._fleet_tables import RevokedVersion
from airlock.spoke.site._home import SpokeHome
from airlock.spoke.site._tables import StagedModel, TrustedMetadataFile

_ROOT_NAME = re.compile(r"^([1-9][0-9]{0,9})\.root\.json$")
_VERSIONED_NAME = re.compile(r"^([1-9][0-9]{0,9})\.([^/]+)\.json$")
_TARGET_FILE = re.compile(r"^([0-9a-f]{64})\.(.+)$")
_UNVERSIONED_ROLES = frozenset({"root", "timestamp"})


def image_metadata(session: Session, name: str) -> bytes | None:
    """The bytes of Image metadata file ``name`` as a node asks for it, or None.

    Args:
        session: A database session.
        name: The file name in the URL: ``N.root.json``, ``timestamp.json``,
            ``site-freshness.json`` or ``V.<role>.json`` (a role name may be
            URL-quoted, as ngclient sends it).

    Returns:
        The trusted file's bytes, unchanged; None when the spoke does not trust
        a file of that name and version.
    """
    if name == "timestamp.json":
        return _trusted(session, "timestamp.json")
    if name == FRESHNESS_FILE:
        return stored_statement(session)
    root = _ROOT_NAME.match(name)
    if root:
        return _trusted(session, f"root_history/{int(root.group(1))}.root.json")
    versioned = _VERSIONED_NAME.match(name)
    if versioned is None:
        return None
    version, role = int(versioned.group(1)), parse.unquote(versioned.group(2))
    if role in _UNVERSIONED_ROLES or not role or "/" in role:
        return None
    data = _trusted(session, f"{parse.quote(role, '')}.json")
    if data is None or _signed_version(data) != version:
        return None
    return data


def image_target(home: SpokeHome, session: Session, url_path: str) -> Path | None:
    """The staged blob a node may download at Image target URL path ``url_path``, or None.

    Args:
        home: The spoke home (for the blob store).
        session: A database session.
        url_path: ``<model>/<version>/<sha256>.<file>`` (ngclient's consistent
            snapshot form of the target path ``<model>/<version>/<file>``).

    Returns:
        The blob's path when the file belongs to a staged version with that
        SHA-256, the version is not revoked and the blob exists; else None.
    """
    parts = url_path.split("/")
    if len(parts) != 3 or not all(parts):
        return None
    model, version, hashed_name = parts
    match = _TARGET_FILE.match(hashed_name)
    if match is None:
        return None
    sha256, filename = match.group(1), match.group(2)
    staged = session.get(StagedModel, (model, version))
    if staged is None or session.get(RevokedVersion, (model, version)) is not None:
        return None
    if not any(
        entry.get("sha256") == sha256 and entry.get("filename") == filename
        for entry in _staged_files(staged)
    ):
        return None
    blob = home.blob_dir / sha256
    return blob if blob.is_file() else None


def _trusted(session: Session, cache_name: str) -> bytes | None:
    row = session.get(TrustedMetadataFile, (IMAGE, cache_name))
    return None if row is None else bytes(row.data)


def _signed_version(data: bytes) -> int | None:
    try:
        version = json.loads(data)["signed"]["version"]
    except (ValueError, KeyError, TypeError):
        return None
    return version if isinstance(version, int) else None


def _staged_files(staged: StagedModel) -> list[dict[str, Any]]:
    try:
        files = json.loads(staged.files)
    except ValueError:
        return []
    return [f for f in files if isinstance(f, dict)] if isinstance(files, list) else []
