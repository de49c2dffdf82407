"""Releasing model versions: store their files, sign them as Image targets, list them.

:func:`release_model` is one audited operation (see :mod:`airlock.hub.context._operation`):
the files are staged, checked (ONNX, validation spec, in-toto links), signed
by the family's tenant role, and promoted into the blob store — or nothing
changes. Released versions are immutable.
"""

from __future__ import annotations

import functools
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airlock.bundles import tuf as tufrepo
from airlock.bundles.clock import utc_iso
from airlock.bundles.errors import ConflictError, UsageError
from airlock.bundles.models import ModelVersion, check_name
from airlock.bundles.release import ReleaseInfo
from airlock.hub.catalog import _catalog as catalog
from airlock.hub.catalog._revocation_view import check_not_revoked
from airlock.hub.context._context import HubContext, load_image_repo, online_expiry
from airlock.hub.context._operation import Operation, operation
from airlock.hub.intake import _attestations as attestations
from airlock.hub.intake._staging import stage_model
from airlock.hub.repos import _image as image_repo
from airlock.hub.repos import _signing as signing
from airlock.hub.sites import _tenants as tenants


@dataclass(frozen=True)
class ModelRelease:
    """The outcome of :func:`release_model`: the version, and whether it is new."""

    model: ModelVersion
    created: bool


def add_model(
    ctx: HubContext,
    name: str,
    version: str,
    path: Path,
    release: ReleaseInfo | None = None,
    extras: Mapping[str, tuple[Path, str]] | None = None,
    *,
    tenant: str | None = None,
    links: Path | None = None,
) -> ModelVersion:
    """Releases a model version (see :func:`release_model`) and returns it."""
    return release_model(
        ctx, name, version, path, release, extras, tenant=tenant, links=links
    ).model


def release_model(
    ctx: HubContext,
    name: str,
    version: str,
    path: Path,
    release: ReleaseInfo | None = None,
    extras: Mapping[str, tuple[Path, str]] | None = None,
    *,
    tenant: str | None = None,
    links: Path | None = None,
    intake: Mapping[str, Any] | None = None,
) -> ModelRelease:
    """Stores a model's files and signs them as Image targets of family ``name``.

    Args:
        ctx: The hub.
        name: The model family.
        version: The version (immutable once released).
        path: The ``.onnx`` file or flat model directory.
        release: Lineage, validation thresholds and compatibility, signed
            into the primary target's custom field.
        extras: Other files of the version by target file name: (path,
            kind), e.g. ``{"validation.npz": (path, "validation")}``.
        tenant: The tenant the family belongs to (see :mod:`airlock.hub.sites._tenants`);
            None means the family's tenant, or ``default`` for a new family.
        links: A directory of the training pipeline's in-toto links: the
            current layout, these links and a ``package`` link the hub records
            become targets of the version (see :mod:`airlock.hub.intake._attestations`).
        intake: Where an imported version came from (the MLflow URI, the
            alias and the version it resolved to): recorded in the audit
            entry, whose action is then ``hub.model.import``.

    Re-releasing identical bytes and release record changes nothing
    (``created`` is False). The lineage's MLflow alias is not compared: a
    version imported again through another alias is unchanged, keeps the
    first import's alias in its signed record, and audits the new one.

    Raises:
        UsageError: bad name, path layout, ONNX graph, or a validation
            spec naming a file the version does not have.
        ConflictError: the version exists with different files or record, or
            the family belongs to another tenant than ``tenant``.
        NotFoundError: a new family names a tenant that does not exist.
        SecretError: the hub passphrase, or a tenant-held key's secret, is wrong.
        AttestationError: the links do not verify against the current layout.
    """
    action = "hub.model.import" if intake is not None else "hub.model.add"
    with operation(ctx, action, f"{name}@{version}") as op:
        check_name("model name", name)
        check_name("model version", version)
        tenants.check_release(op.session, name, tenant)
        ctx.home.tmp_dir.mkdir(exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix="model-", dir=ctx.home.tmp_dir))
        op.cleanup.append(lambda: shutil.rmtree(staging, ignore_errors=True))
        staged = stage_model(Path(path), staging, extras)
        if links is not None:
            staged = attestations.attach(ctx, op, f"{name}@{version}", staged, Path(links))
        model = ModelVersion(
            name=name, version=version, files=staged.files, release=release or ReleaseInfo()
        )
        _check_release(model)
        op.details = op.details | {
            "model": name,
            "version": version,
            "files": [f.to_dict() for f in model.files],
            "release": model.release.to_dict(),
        }
        if intake is not None:
            op.details["intake"] = dict(intake)
        check_not_revoked(op.session, name, version, "release")
        existing = catalog.find_model(op.session, name, version)
        if existing is not None:
            if set(existing.files) != set(model.files) or (
                _immutable_record(existing.release) != _immutable_record(model.release)
            ):
                raise ConflictError(
                    f"{model.ref} is already released with different files or release record",
                    hint="released versions are immutable; release the change as a new version",
                )
            op.outcome = "unchanged"
            return ModelRelease(existing, created=False)
        _sign_model(ctx, op, model, tenant)
        for file in model.files:
            if ctx.blobs.promote(staged.staged_path(file), file.sha256):
                op.undo.append(functools.partial(ctx.blobs.remove, file.sha256))
            # Indexed now (page cache warm, off the export's path): exports read it from cache.
            ctx.blobs.chunk_index(file.sha256, file.length)
        return ModelRelease(model, created=True)


def _sign_model(ctx: HubContext, op: Operation, model: ModelVersion, tenant: str | None) -> None:
    now = utc_iso(ctx.clock.now())
    expires = online_expiry(ctx)
    image = load_image_repo(ctx)
    row, new_family = tenants.place_family(ctx, op, image, model.name, tenant)
    roles = [tufrepo.tenant_role(row.name)]
    if new_family:
        roles.append(tufrepo.MODELS_ROLE)
    image_repo.add_model(image, model, row.name, expires, tenants.signer(ctx, row))
    image_repo.refresh(
        image,
        expires,
        ctx.signers.online(signing.IMAGE_SNAPSHOT),
        ctx.signers.online(signing.IMAGE_TIMESTAMP),
    )
    image.stage(op.writes, [*roles, image_repo.SNAPSHOT, image_repo.TIMESTAMP])
    catalog.add_model_rows(op.session, model, now)


def _immutable_record(release: ReleaseInfo) -> dict[str, Any]:
    """The release record as compared for immutability: without the MLflow alias used."""
    record = release.to_dict()
    if record["lineage"] is not None:
        record["lineage"] = {**record["lineage"], "alias": ""}
    return record


def _check_release(model: ModelVersion) -> None:
    """A validation spec must name a validation file of the version.

    Raises:
        UsageError: it names none, or a file of another kind.
    """
    spec = model.release.validation
    if spec is None:
        return
    names = {f.filename for f in model.files_of_kind("validation")}
    if spec.file not in names:
        raise UsageError(
            f"the validation spec of {model.ref} names {spec.file!r}, which is not a "
            "validation file of the version",
            hint="pass the validation set with the version (e.g. --validation-set FILE)",
        )
