"""Planning and recording a site's export (the hub-side half of :mod:`airlock.hub.export._bundle`).

:func:`plan_export` reads the hub's state and computes an :class:`ExportPlan`
without writing anything:

(a) bundle expiry = now + the site's transit budget;
(b) refuse when the Image root, Image targets or Director root expire first;
    re-sign online roles (``models``, ``tenant-*``, the site's Director
    targets) that would, with a later expiry (budget + margin) — a
    tenant-held key's secret is asked for only then; the site's Director
    targets are also re-signed when the return path they carry
    (``x-airlock-return``: the hub's age recipient and witness key, the
    newest metrics bundle the hub acknowledged; :mod:`airlock.hub.trust._return_keys`)
    changed, so that every bundle tells the site where metrics go;
(c) fresh Image snapshot + timestamp and fresh Director snapshot + timestamp
    for the site, all expiring exactly with the bundle (timestamp versions
    strictly increase per repository); the bundle id is chosen here and the
    Director timestamp signs the envelope's claims (``x-airlock-bundle``:
    bundle id, site, sequence, kind, created, expires);
(d) the payload metadata list and (e) the blobs of every assigned model
    not already sent to the site (:func:`split_sent`; all of them when
    ``full``), and the bundle kind.

:func:`write_export` runs inside the export's operation: (f) payload,
(g) next sequence number and signed envelope, (h) what the bundle carried
(:class:`~airlock.hub.store._tables.HubExport`, :class:`~airlock.hub.store._tables.HubSentFile`)
and the ``bundle.exported`` event in the outbox,
(i) rename into place and (j) sign an audit checkpoint covering the export's entry,
just before the database commit.
"""

from __future__ import annotations

import contextlib
import shutil
import uuid
from pathlib import Path

from sqlmodel import Session, select

from airlock.bundles import tuf as tufrepo
from airlock.bundles.errors import ConflictError
from airlock.bundles.models import BundleKind, Envelope, ModelVersion
from airlock.bundles.progress import NO_PROGRESS, Progress
from airlock.hub.catalog import _catalog as catalog
from airlock.hub.catalog._revocation_view import revocation_count
from airlock.hub.context._context import (
    HubContext,
    director_signers,
    get_site,
    load_director_roots,
    load_image_repo,
    load_site_metadata,
)
from airlock.hub.context._operation import Operation, operation
from airlock.hub.export import _bundle as bundle_export
from airlock.hub.export._bundle import ExportPlan
from airlock.hub.export._media import MediaOptions
from airlock.hub.export._record import record_export
from airlock.hub.repos import _director as director_repo
from airlock.hub.repos import _image as image_repo
from airlock.hub.repos import _signing as signing
from airlock.hub.repos import _tufmeta as tufmeta
from airlock.hub.repos._tufmeta import StagedWrites
from airlock.hub.sites._tenants import tenant_signer
from airlock.hub.store._tables import HubAssignment, HubExport, HubSentFile, HubSite
from airlock.hub.trust import _return_keys as return_keys

DEFAULT_MEDIA = MediaOptions()
"""What ``export`` writes unless told otherwise: format 2, one data volume, no parity."""


def split_sent(
    session: Session, site_id: str, models: list[ModelVersion]
) -> tuple[list[ModelVersion], list[ModelVersion]]:
    """Splits assigned versions into (to send, already sent to ``site_id``).

    A version counts as sent when an earlier export to the site carried
    every one of its files with the same SHA-256.
    """
    sent: dict[tuple[str, str], dict[str, str]] = {}
    for row in session.exec(select(HubSentFile).where(HubSentFile.site_id == site_id)):
        sent.setdefault((row.name, row.version), {})[row.filename] = row.sha256
    send: list[ModelVersion] = []
    omit: list[ModelVersion] = []
    for model in models:
        files = sent.get((model.name, model.version), {})
        held = all(files.get(f.filename) == f.sha256 for f in model.files)
        (omit if held else send).append(model)
    return send, omit


def bundle_kind(
    session: Session, site_id: str, full: bool, carries_files: bool, omitted: bool
) -> tuple[BundleKind, int]:
    """The kind of the site's next bundle, and how many revocations it lists.

    ``revocation``: no files, and revocations the site's last bundle did not
    list yet; ``delta``: files of versions already sent are left out;
    ``full`` otherwise (always with ``full``).
    """
    revocations = revocation_count(session)
    last = session.exec(
        select(HubExport).where(HubExport.site_id == site_id).order_by(HubExport.sequence.desc())  # type: ignore[attr-defined]
    ).first()
    new_revocations = revocations > (last.revocations if last else 0)
    if full:
        return BundleKind.FULL, revocations
    if not carries_files and new_revocations:
        return BundleKind.REVOCATION, revocations
    return (BundleKind.DELTA if omitted else BundleKind.FULL), revocations


def plan_export(ctx: HubContext, site_id: str, *, full: bool = False) -> ExportPlan:
    """Steps (a)-(e) of the module docstring; writes nothing."""
    with Session(ctx.engine) as session:
        site = get_site(session, site_id)
        assignments = session.exec(
            select(HubAssignment)
            .where(HubAssignment.site_id == site_id)
            .order_by(HubAssignment.name)  # type: ignore[arg-type]
        )
        models = [catalog.get_model(session, a.name, a.version) for a in assignments]
        send, omit = (models, []) if full else split_sent(session, site_id, models)
        kind, revocations = bundle_kind(session, site_id, full, bool(send), bool(omit))
        now = ctx.clock.now()
        bundle_expires = tufrepo.expiry_from(now, site.transit_days)
        image, director = load_image_repo(ctx), load_director_roots(ctx)
        site_md = load_site_metadata(ctx, site_id)
        base = (
            image.timestamp.signed.version if image.timestamp else 0,
            site_md.timestamp.signed.version,
        )
        bundle_export.check_offline_expiry(site_id, image, director, bundle_expires)

        resign_expires = tufrepo.expiry_from(
            now,
            max(
                tufrepo.ONLINE_ROLE_EXPIRY_DAYS,
                site.transit_days + bundle_export.RESIGN_MARGIN_DAYS,
            ),
        )
        resigned: list[str] = []
        if bundle_export.expires_before(image.models.signed.expires, bundle_expires):
            tufmeta.bump(image.models, resign_expires, [ctx.signers.online(signing.IMAGE_MODELS)])
            resigned.append(tufrepo.MODELS_ROLE)
        for name, md in sorted(image.tenants.items()):
            if bundle_export.expires_before(md.signed.expires, bundle_expires):
                tufmeta.bump(md, resign_expires, [tenant_signer(ctx, session, name)])
                resigned.append(tufrepo.tenant_role(name))
        signers = director_signers(ctx)
        writes = StagedWrites()  # and the return-path keys, when this export makes them
        returned = return_keys.return_path(ctx, session, site_id, writes).to_dict()
        return_changed = director_repo.set_return_path(site_md, returned)
        blobs = bundle_export.collect_blobs(ctx.blobs, [f for m in send for f in m.files])
        indexes = {b.sha256: ctx.blobs.chunk_index(b.sha256, b.length) for b in blobs}
        chunks_changed = director_repo.bind_chunk_indexes(site_md, indexes)
        expiring = bundle_export.expires_before(site_md.targets.signed.expires, bundle_expires)
        if expiring or return_changed or chunks_changed:
            tufmeta.bump(site_md.targets, resign_expires, [signers.targets])
        if expiring:
            resigned.append(f"director targets of {site_id}")

    image_repo.refresh(
        image,
        bundle_expires,
        ctx.signers.online(signing.IMAGE_SNAPSHOT),
        ctx.signers.online(signing.IMAGE_TIMESTAMP),
    )
    bundle_id = str(uuid.uuid4())
    claims = tufrepo.bundle_claims(
        bundle_id=bundle_id,
        site_id=site_id,
        sequence=site.sequence + 1,
        kind=str(kind),
        created=now,
        expires=bundle_expires,
    )
    director_repo.refresh(site_md, bundle_expires, signers, bundle=claims)
    image_roles = [r for r in resigned if r in image.targets_roles()]
    image.stage(writes, [*image_roles, image_repo.SNAPSHOT, image_repo.TIMESTAMP])
    site_md.stage(writes)
    return ExportPlan(
        site_id=site_id,
        bundle_id=bundle_id,
        sequence=site.sequence + 1,
        created=now,
        expires=bundle_expires,
        recipients=[site.age_recipient] if site.encrypt else None,
        metadata=bundle_export.collect_metadata(image, director, site_md),
        blobs=blobs,
        indexes=indexes,
        resigned=tuple(resigned),
        base=base,
        writes=writes,
        kind=kind,
        omitted=tuple(m.ref for m in omit),
        carried=tuple((m.name, m.version, f.filename, f.sha256) for m in send for f in m.files),
        revocations=revocations,
        full=full,
    )


def _check_base(ctx: HubContext, site: HubSite, plan: ExportPlan) -> None:
    image = load_image_repo(ctx)
    site_md = load_site_metadata(ctx, plan.site_id)
    now_base = (
        image.timestamp.signed.version if image.timestamp else 0,
        site_md.timestamp.signed.version,
    )
    if site.sequence != plan.sequence - 1 or now_base != plan.base:
        raise ConflictError(
            f"the hub changed since this export for {plan.site_id} was planned",
            hint="plan the export again",
        )


def write_export(
    ctx: HubContext,
    op: Operation,
    plan: ExportPlan,
    out_dir: Path,
    media: MediaOptions = DEFAULT_MEDIA,
    progress: Progress = NO_PROGRESS,
) -> Envelope:
    """Steps (f)-(h) of the module docstring, inside the export's operation."""
    site = get_site(op.session, plan.site_id)
    _check_base(ctx, site, plan)
    return_keys.check_staged(ctx, plan.writes)
    work = bundle_export.prepare_out_dir(out_dir)
    op.cleanup.append(lambda: shutil.rmtree(work, ignore_errors=True))
    envelope = bundle_export.write_bundle_files(
        work,
        site_id=plan.site_id,
        sequence=plan.sequence,
        created=plan.created,
        expires=plan.expires,
        metadata=plan.metadata,
        blobs=plan.blobs,
        recipients=plan.recipients,
        signers=[ctx.signers.online(signing.ENVELOPE)],
        kind=plan.kind,
        bundle_id=plan.bundle_id,
        omitted=plan.omitted,
        media=media,
        indexes=plan.indexes,
        progress=progress,
    )
    promoted: list[Path] = []

    def promote() -> None:
        bundle_export.promote_bundle(work, out_dir)
        promoted.append(out_dir)

    def unpromote() -> None:
        for path in promoted:
            with contextlib.suppress(FileNotFoundError):
                shutil.rmtree(path)

    op.before_commit.append(promote)
    op.undo.append(unpromote)
    record_export(ctx, op, site, plan, envelope, out_dir)
    return envelope


def commit_export(
    ctx: HubContext, plan: ExportPlan, out_dir: Path, media: MediaOptions = DEFAULT_MEDIA
) -> Envelope:
    """Writes a planned bundle to ``out_dir`` and records it (sequence, repository, audit).

    Tests may pass a plan whose ``metadata`` or ``blobs`` were replaced to
    craft bad bundles; the envelope is still signed with the real key.

    Raises:
        ConflictError: ``out_dir`` is not new, or the hub changed since the plan.
    """
    with operation(ctx, "hub.export", plan.site_id) as op:
        return write_export(ctx, op, plan, Path(out_dir), media)


def export(
    ctx: HubContext,
    site_id: str,
    out_dir: Path,
    *,
    full: bool = False,
    media: MediaOptions = DEFAULT_MEDIA,
    progress: Progress = NO_PROGRESS,
) -> Envelope:
    """Plans and writes a site's next bundle into ``out_dir`` (must be new or empty).

    ``full`` sends every assigned version's files again (a site that lost media).

    Raises:
        NotFoundError: unknown site, or a blob is missing.
        UsageError: an offline role expires before the bundle would.
        ConflictError: ``out_dir`` is not new.
    """
    with operation(ctx, "hub.export", site_id) as op:
        plan = plan_export(ctx, site_id, full=full)
        return write_export(ctx, op, plan, Path(out_dir), media, progress)
