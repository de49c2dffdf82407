"""The Image repository: every released model version, as TUF targets.

Roles (see :mod:`airlock.bundles.tuf._repo`): ``root`` and ``targets`` come
from the ceremony (offline keys); ``targets`` delegates ``models`` (online
key ``image-models``), which delegates one terminating role per tenant,
``tenant-<name>``, for the paths of that tenant's model families
(``<family>/*/*`` each), signed by the tenant's key. The tenant role signs
its families' targets directly. Snapshot and timestamp are signed with the
online keys ``image-snapshot`` and ``image-timestamp``.

On disk (``repository/image/``): the root history ``N.root.json`` kept byte
for byte as the ceremony wrote it, and the current version of every other role
as ``<role>.json``. :class:`ImageRepo` holds all of it in memory; the
functions below change it and re-sign what they change, and
:meth:`ImageRepo.stage` hands the changed files to a :class:`StagedWrites`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from securesystemslib.signer import Key, Signer
from tuf.api.metadata import (
    DelegatedRole,
    Delegations,
    Metadata,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)

from airlock.bundles import tuf as tufrepo
from airlock.bundles.errors import ConflictError, TrustError
from airlock.bundles.models import ModelVersion
from airlock.hub.repos import _tufmeta as tufmeta
from airlock.hub.repos._tufmeta import StagedWrites

TARGETS = "targets"
SNAPSHOT = "snapshot"
TIMESTAMP = "timestamp"


@dataclass
class ImageRepo:
    """The Image repository's current metadata, in memory."""

    directory: Path
    roots: list[Metadata[Root]]
    root_bytes: list[bytes]
    targets: Metadata[Targets]
    models: Metadata[Targets]
    tenants: dict[str, Metadata[Targets]] = field(default_factory=dict)
    """Each tenant's role by tenant name (a tenant has one once its first model is signed)."""
    snapshot: Metadata[Snapshot] | None = None
    timestamp: Metadata[Timestamp] | None = None

    @property
    def root(self) -> Metadata[Root]:
        """The newest root."""
        return self.roots[-1]

    @classmethod
    def load(cls, directory: Path) -> ImageRepo:
        """Reads ``repository/image/`` of a hub home.

        Raises:
            NotFoundError: a metadata file is missing.
            MediaError: a file is not the metadata it should be.
        """
        paths = tufmeta.root_files(directory)
        tenants = {}
        for path in sorted(directory.glob(f"{tufrepo.TENANT_ROLE_PREFIX}*.json")):
            role = path.name.removesuffix(".json")
            tenants[role.removeprefix(tufrepo.TENANT_ROLE_PREFIX)] = tufmeta.load_metadata(
                path, Targets
            )
        return cls(
            directory=directory,
            roots=tufmeta.load_roots(directory),
            root_bytes=[p.read_bytes() for p in paths],
            targets=tufmeta.load_metadata(directory / f"{TARGETS}.json", Targets),
            models=tufmeta.load_metadata(directory / f"{tufrepo.MODELS_ROLE}.json", Targets),
            tenants=tenants,
            snapshot=tufmeta.load_metadata(directory / f"{SNAPSHOT}.json", Snapshot),
            timestamp=tufmeta.load_metadata(directory / f"{TIMESTAMP}.json", Timestamp),
        )

    def targets_roles(self) -> dict[str, Metadata[Targets]]:
        """Every targets role by role name: ``targets``, ``models``, ``tenant-<name>``…"""
        roles = {TARGETS: self.targets, tufrepo.MODELS_ROLE: self.models}
        for name, md in self.tenants.items():
            roles[tufrepo.tenant_role(name)] = md
        return roles

    def stage(self, writes: StagedWrites, roles: list[str]) -> None:
        """Stages the current files of ``roles`` (role names, or snapshot/timestamp)."""
        current: dict[str, Metadata[Targets] | Metadata[Snapshot] | Metadata[Timestamp] | None]
        current = {**self.targets_roles(), SNAPSHOT: self.snapshot, TIMESTAMP: self.timestamp}
        for role in roles:
            md = current[role]
            assert md is not None
            writes.put_metadata(self.directory / f"{role}.json", md)

    def stage_roots(self, writes: StagedWrites) -> None:
        """Stages the root history, byte for byte."""
        for number, data in enumerate(self.root_bytes, start=1):
            writes.put(self.directory / f"{number}.root.json", data)

    def model_targets(self, name: str) -> dict[str, TargetFile]:
        """The targets of family ``name`` by path, whichever tenant signs them (empty if none)."""
        prefix = f"{name}/"
        return {
            path: target
            for md in self.tenants.values()
            for path, target in md.signed.targets.items()
            if path.startswith(prefix)
        }


def new_models_role(expires: dt.datetime, signer: Signer) -> Metadata[Targets]:
    """Version 1 of the ``models`` role: no targets, no delegations yet."""
    md = Metadata(Targets(version=1, expires=expires, delegations=Delegations(keys={}, roles={})))
    return tufrepo.sign_with(md, [signer])


def delegate_family(
    repo: ImageRepo,
    tenant: str,
    family: str,
    key: Key,
    expires: dt.datetime,
    models_signer: Signer,
) -> None:
    """Adds model family ``family``'s paths to ``tenant-<tenant>`` and re-signs ``models``.

    The tenant's first family creates its delegation: terminating, threshold
    1, the tenant's ``key``.

    Raises:
        ConflictError: the family is already delegated (to any tenant), or the
            tenant's delegation names another key.
    """
    role_name = tufrepo.tenant_role(tenant)
    delegations = repo.models.signed.delegations
    if delegations is None or delegations.roles is None:
        delegations = Delegations(keys={}, roles={})
        repo.models.signed.delegations = delegations
    assert delegations.roles is not None
    paths = tufrepo.family_paths(family)
    for role in delegations.roles.values():
        if set(paths) & set(role.paths or []):
            raise ConflictError(f"model family {family!r} is already delegated to {role.name}")
    current = delegations.roles.get(role_name)
    if current is None:
        delegations.keys[key.keyid] = key
        delegations.roles[role_name] = DelegatedRole(
            name=role_name, keyids=[key.keyid], threshold=1, terminating=True, paths=paths
        )
    elif current.keyids != [key.keyid]:
        raise ConflictError(f"the delegation of {role_name} names another key than the tenant's")
    else:
        current.paths = [*(current.paths or []), *paths]
    tufmeta.bump(repo.models, expires, [models_signer])


def tenant_delegation(repo: ImageRepo, tenant: str) -> DelegatedRole | None:
    """The delegation of ``tenant-<tenant>`` in ``models``, or None."""
    delegations = repo.models.signed.delegations
    roles = delegations.roles if delegations is not None else None
    return (roles or {}).get(tufrepo.tenant_role(tenant))


def image_targets(model: ModelVersion) -> list[TargetFile]:
    """The Image target files of a model version."""
    return [
        TargetFile(
            length=f.length,
            hashes={"sha256": f.sha256},
            path=tufrepo.target_path(model.name, model.version, f.filename),
            unrecognized_fields={"custom": tufrepo.image_custom(model, f.filename, f.primary)},
        )
        for f in model.files
    ]


def add_model(
    repo: ImageRepo,
    model: ModelVersion,
    tenant: str,
    expires: dt.datetime,
    tenant_signer: Signer,
) -> None:
    """Adds a model version's files to its tenant's role (creating it at version 1).

    Raises:
        ConflictError: a target path of this version is already signed, or is
            outside the paths ``models`` delegates to the tenant.
    """
    role_name = tufrepo.tenant_role(tenant)
    delegated = tenant_delegation(repo, tenant)
    if delegated is None:
        raise ConflictError(f"{role_name} is not delegated by models")
    md = repo.tenants.get(tenant)
    new = md is None
    if md is None:
        md = Metadata(Targets(version=1, expires=expires))
    for target in image_targets(model):
        if not delegated.is_delegated_path(target.path):
            raise ConflictError(f"Image target {target.path} is outside the paths of {role_name}")
        if target.path in md.signed.targets:
            raise ConflictError(f"Image target {target.path} is already signed")
        md.signed.targets[target.path] = target
    if new:
        repo.tenants[tenant] = tufrepo.sign_with(md, [tenant_signer])
    else:
        tufmeta.bump(md, expires, [tenant_signer])


def refresh(
    repo: ImageRepo,
    expires: dt.datetime,
    snapshot_signer: Signer,
    timestamp_signer: Signer,
) -> None:
    """Makes the next snapshot (every targets role) and timestamp, both expiring at ``expires``."""
    repo.snapshot = tufmeta.next_snapshot(
        repo.snapshot, dict(repo.targets_roles()), expires, snapshot_signer
    )
    repo.timestamp = tufmeta.next_timestamp(
        repo.timestamp, repo.snapshot, expires, timestamp_signer
    )


def verify_delegations(repo: ImageRepo) -> None:
    """Checks root → targets → models → tenant-* (a self-check for status and tests).

    Every role must be signed by the keys its delegator names, and every
    target of a tenant role must lie within the paths delegated to it.

    Raises:
        TrustError: a role does not verify, or signs a target outside its paths.
    """
    chain: list[tuple[Root | Targets, str, Metadata[Targets]]] = [
        (repo.root.signed, TARGETS, repo.targets),
        (repo.targets.signed, tufrepo.MODELS_ROLE, repo.models),
    ]
    chain += [
        (repo.models.signed, tufrepo.tenant_role(name), md) for name, md in repo.tenants.items()
    ]
    for delegator, role, md in chain:
        try:
            delegator.verify_delegate(role, md.signed_bytes, md.signatures)
        except Exception as exc:
            raise TrustError(f"Image role {role} does not verify: {exc}") from None
    for name, md in repo.tenants.items():
        delegated = tenant_delegation(repo, name)
        assert delegated is not None  # verify_delegate found it
        outside = sorted(p for p in md.signed.targets if not delegated.is_delegated_path(p))
        if outside:
            raise TrustError(
                f"Image role {delegated.name} signs targets outside its paths: {', '.join(outside)}"
            )
