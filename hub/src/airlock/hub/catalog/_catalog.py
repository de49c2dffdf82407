"""The catalogue of released model versions, as rows of the hub database.

Reads and writes :class:`~airlock.bundles.models.ModelVersion` through the
``hub_model_version`` and ``hub_model_file`` tables; the signed record of the
same releases is the Image repository.
"""

from __future__ import annotations

import json

from sqlmodel import Session, select

from airlock.bundles.errors import NotFoundError
from airlock.bundles.models import ModelFile, ModelVersion
from airlock.bundles.release import ReleaseInfo
from airlock.hub.context._context import HubContext
from airlock.hub.store._tables import HubModelFile, HubModelVersion


def find_model(session: Session, name: str, version: str) -> ModelVersion | None:
    """The released version ``name@version`` with its files, or None."""
    row = session.get(HubModelVersion, (name, version))
    if row is None:
        return None
    rows = session.exec(
        select(HubModelFile)
        .where(HubModelFile.name == name, HubModelFile.version == version)
        .order_by(HubModelFile.filename)  # type: ignore[arg-type]
    )
    files = tuple(
        ModelFile(
            filename=r.filename, sha256=r.sha256, length=r.length, primary=r.primary, kind=r.kind
        )
        for r in rows
    )
    release = ReleaseInfo.from_dict(json.loads(row.release))
    return ModelVersion(name=name, version=version, files=files, release=release)


def get_model(session: Session, name: str, version: str) -> ModelVersion:
    """Like :func:`find_model`, for a version that must exist.

    Raises:
        NotFoundError: it was never released.
    """
    model = find_model(session, name, version)
    if model is None:
        raise NotFoundError(
            f"model version {name}@{version} is not released",
            hint="add it with `airlock hub model add NAME VERSION PATH`",
        )
    return model


def model_versions(session: Session) -> list[ModelVersion]:
    """Every released version, ordered by name then version string."""
    keys = sorted((r.name, r.version) for r in session.exec(select(HubModelVersion)))
    return [get_model(session, name, version) for name, version in keys]


def add_model_rows(session: Session, model: ModelVersion, created: str) -> None:
    """Records a new release (the caller's transaction commits it)."""
    session.add(
        HubModelVersion(
            name=model.name,
            version=model.version,
            created=created,
            release=json.dumps(model.release.to_dict(), sort_keys=True),
        )
    )
    for f in model.files:
        session.add(
            HubModelFile(
                name=model.name,
                version=model.version,
                filename=f.filename,
                sha256=f.sha256,
                length=f.length,
                primary=f.primary,
                kind=f.kind,
            )
        )


def list_models(ctx: HubContext) -> list[ModelVersion]:
    """Every released model version, by name and version."""
    with Session(ctx.engine) as session:
        return model_versions(session)
