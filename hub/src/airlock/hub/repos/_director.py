"""The Director repository: per-site instructions under one shared root.

The Director root (from the ceremony) names the online keys
``director-targets``, ``director-snapshot`` and ``director-timestamp`` and
anchors the envelope key. Each site has its own ``targets`` (carrying
``x-airlock-site-id``), ``snapshot`` and ``timestamp``, under
``repository/director/sites/<site>/``. A site's targets list every file of
every model version assigned to it, at the Image target path, with the Image
target's length and hashes and a custom field naming the site; the primary
file's custom field also carries the signed rollout plan
(``custom.airlock.rollout``) and, when the assignment was made under a change
request, its signed authorisation (``custom.airlock.change``). The targets
list every revocation so far in ``x-airlock-revocations`` (:func:`set_revocations`)
and the return path for the site's metrics in ``x-airlock-return`` (:func:`set_return_path`).
The timestamp made for an export carries the bundle's claims in
``x-airlock-bundle`` (:func:`refresh`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from securesystemslib.signer import Signer
from tuf.api.metadata import Metadata, Root, Snapshot, TargetFile, Targets, Timestamp

from airlock.bundles import tuf as tufrepo
from airlock.bundles.chunks import BINDING_KEY as CHUNKS_KEY
from airlock.bundles.chunks import ChunkIndex
from airlock.bundles.chunks import binding as chunk_binding
from airlock.bundles.errors import TrustError
from airlock.bundles.metrics import RETURN_FIELD
from airlock.bundles.models import ModelVersion
from airlock.bundles.release import CHANGE_KEY, RolloutPlan
from airlock.hub.repos import _tufmeta as tufmeta
from airlock.hub.repos._tufmeta import StagedWrites

TARGETS = "targets"
SNAPSHOT = "snapshot"
TIMESTAMP = "timestamp"


@dataclass
class DirectorRoots:
    """The Director root history (shared by every site)."""

    directory: Path
    roots: list[Metadata[Root]]
    root_bytes: list[bytes]

    @property
    def root(self) -> Metadata[Root]:
        """The newest root."""
        return self.roots[-1]

    @classmethod
    def load(cls, directory: Path) -> DirectorRoots:
        """Reads ``repository/director/root/``."""
        paths = tufmeta.root_files(directory)
        return cls(directory, tufmeta.load_roots(directory), [p.read_bytes() for p in paths])

    def stage(self, writes: StagedWrites) -> None:
        """Stages the root history, byte for byte."""
        for number, data in enumerate(self.root_bytes, start=1):
            writes.put(self.directory / f"{number}.root.json", data)


@dataclass
class SiteMetadata:
    """One site's Director targets, snapshot and timestamp, in memory."""

    site_id: str
    directory: Path
    targets: Metadata[Targets]
    snapshot: Metadata[Snapshot]
    timestamp: Metadata[Timestamp]

    @classmethod
    def load(cls, directory: Path, site_id: str) -> SiteMetadata:
        """Reads ``repository/director/sites/<site>/``.

        Raises:
            TrustError: the stored targets name another site.
        """
        md = cls(
            site_id=site_id,
            directory=directory,
            targets=tufmeta.load_metadata(directory / f"{TARGETS}.json", Targets),
            snapshot=tufmeta.load_metadata(directory / f"{SNAPSHOT}.json", Snapshot),
            timestamp=tufmeta.load_metadata(directory / f"{TIMESTAMP}.json", Timestamp),
        )
        if md.targets.signed.unrecognized_fields.get(tufrepo.SITE_ID_FIELD) != site_id:
            raise TrustError(f"the stored Director targets in {directory} are not for {site_id}")
        return md

    def stage(
        self, writes: StagedWrites, roles: tuple[str, ...] = (TARGETS, SNAPSHOT, TIMESTAMP)
    ) -> None:
        """Stages the current files of ``roles``."""
        current: dict[str, Metadata[Any]] = {
            TARGETS: self.targets,
            SNAPSHOT: self.snapshot,
            TIMESTAMP: self.timestamp,
        }
        for role in roles:
            writes.put_metadata(self.directory / f"{role}.json", current[role])

    def assigned_paths(self, name: str) -> list[str]:
        """The target paths of family ``name`` in this site's targets."""
        return [p for p in self.targets.signed.targets if p.startswith(f"{name}/")]

    def signed_plan(self, name: str, version: str) -> dict[str, Any] | None:
        """The rollout plan signed for ``name@version`` (None: not assigned, or no plan)."""
        return self._primary_custom(name, version, tufrepo.ROLLOUT_KEY)

    def signed_change(self, name: str, version: str) -> dict[str, Any] | None:
        """The change authorisation signed for ``name@version`` (None: none)."""
        return self._primary_custom(name, version, CHANGE_KEY)

    def _primary_custom(self, name: str, version: str, key: str) -> dict[str, Any] | None:
        prefix = f"{name}/{version}/"
        for path, target in self.targets.signed.targets.items():
            custom = target.custom.get(tufrepo.CUSTOM_KEY) if path.startswith(prefix) else None
            if isinstance(custom, dict) and key in custom:
                return dict(custom[key])
        return None


@dataclass(frozen=True)
class DirectorSigners:
    """The three online Director signers."""

    targets: Signer
    snapshot: Signer
    timestamp: Signer


def new_site(
    site_id: str,
    directory: Path,
    expires: dt.datetime,
    signers: DirectorSigners,
    revocations: list[dict[str, str]] | None = None,
) -> SiteMetadata:
    """Version 1 of a site's targets (no targets, names the site), snapshot and timestamp.

    ``revocations`` (every revocation so far) go into ``x-airlock-revocations``.
    """
    fields: dict[str, Any] = {tufrepo.SITE_ID_FIELD: site_id}
    if revocations:
        fields[tufrepo.REVOCATIONS_FIELD] = list(revocations)
    targets = Metadata(Targets(version=1, expires=expires, unrecognized_fields=fields))
    tufrepo.sign_with(targets, [signers.targets])
    snapshot = tufmeta.next_snapshot(None, {TARGETS: targets}, expires, signers.snapshot)
    timestamp = tufmeta.next_timestamp(None, snapshot, expires, signers.timestamp)
    return SiteMetadata(site_id, directory, targets, snapshot, timestamp)


def director_targets(
    site_id: str,
    model: ModelVersion,
    plan: RolloutPlan | None = None,
    change: dict[str, Any] | None = None,
) -> list[TargetFile]:
    """The Director target files telling ``site_id`` to run ``model`` under ``plan``.

    None signs the default plan (see :func:`airlock.bundles.tuf._repo.director_custom`);
    ``change`` is the change authorisation signed next to it (None: none).
    """
    return [
        TargetFile(
            length=f.length,
            hashes={"sha256": f.sha256},
            path=tufrepo.target_path(model.name, model.version, f.filename),
            unrecognized_fields={
                "custom": tufrepo.director_custom(site_id, model, f.filename, plan, change)
            },
        )
        for f in model.files
    ]


def set_model(
    site: SiteMetadata,
    model: ModelVersion | None,
    name: str,
    expires: dt.datetime,
    signer: Signer,
    plan: RolloutPlan | None = None,
    change: dict[str, Any] | None = None,
) -> None:
    """Replaces the site's entries for family ``name`` with ``model``'s files (None removes).

    ``plan`` is signed into the primary file's custom field (None: the
    default plan), and ``change`` (a ``ChangeAuthorization.to_dict()``) next
    to it. Re-signs the site's targets with a bumped version.
    """
    targets = site.targets.signed.targets
    for path in site.assigned_paths(name):
        del targets[path]
    if model is not None:
        for target in director_targets(site.site_id, model, plan, change):
            targets[target.path] = target
    tufmeta.bump(site.targets, expires, [signer])


def bind_chunk_indexes(site: SiteMetadata, indexes: Mapping[str, ChunkIndex]) -> bool:
    """Signs each carried file's chunk-index binding into its target (``custom.airlock.chunks``).

    ``indexes`` maps a file's SHA-256 to its index; targets of other files are
    left as they are. The caller re-signs the targets when this returns True.

    Returns:
        True when a target's binding changed.
    """
    changed = False
    for target in site.targets.signed.targets.values():
        index = indexes.get(target.hashes.get("sha256", ""))
        custom = target.unrecognized_fields.get("custom", {}).get(tufrepo.CUSTOM_KEY)
        if index is None or not isinstance(custom, dict):
            continue
        value = chunk_binding(index)
        if custom.get(CHUNKS_KEY) != value:
            custom[CHUNKS_KEY] = value
            changed = True
    return changed


def set_revocations(site: SiteMetadata, revocations: list[dict[str, str]]) -> None:
    """Sets the site's ``x-airlock-revocations`` list (the caller re-signs the targets)."""
    site.targets.signed.unrecognized_fields[tufrepo.REVOCATIONS_FIELD] = list(revocations)


def set_return_path(site: SiteMetadata, value: dict[str, Any]) -> bool:
    """Sets the site's ``x-airlock-return`` field (the caller re-signs the targets).

    Returns:
        True when the field changed (the targets must be re-signed).
    """
    fields = site.targets.signed.unrecognized_fields
    if fields.get(RETURN_FIELD) == value:
        return False
    fields[RETURN_FIELD] = dict(value)
    return True


def refresh(
    site: SiteMetadata,
    expires: dt.datetime,
    signers: DirectorSigners,
    bundle: dict[str, Any] | None = None,
) -> None:
    """Makes the site's next snapshot and timestamp, both expiring at ``expires``.

    ``bundle`` (:func:`airlock.bundles.tuf._repo.bundle_claims`, given at export)
    is signed into the timestamp as ``x-airlock-bundle``: what the bundle's
    envelope will state, confirmed by the timestamp key.
    """
    site.snapshot = tufmeta.next_snapshot(
        site.snapshot, {TARGETS: site.targets}, expires, signers.snapshot
    )
    fields = {tufrepo.BUNDLE_FIELD: dict(bundle)} if bundle is not None else None
    site.timestamp = tufmeta.next_timestamp(
        site.timestamp, site.snapshot, expires, signers.timestamp, fields
    )
