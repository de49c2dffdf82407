"""One courier's media for several sites: shared volumes, each site's own small files.

``airlock hub export --site A --site B … --out DIR`` writes the model content
once: files that several of the sites carry go into volumes encrypted to
exactly those sites (:func:`airlock.hub.export._media.write_shared_volumes`),
and each site gets ``DIR/sites/<site>/envelope.json`` and ``site.age`` of its
own. How it stays all-or-nothing per site:

1. Every site's export is planned (nothing is written) to learn what it carries.
2. The volumes are written next to ``DIR`` and renamed to ``DIR`` when complete
   — with no envelope in it yet, nothing there can be mistaken for a bundle.
3. Site by site, in its own audited operation: the export is planned again
   (it must carry exactly what step 1 planned, or the hub changed meanwhile),
   the site's files are written into a hidden directory under ``DIR/sites``,
   renamed to ``DIR/sites/<site>`` just before its transaction commits, and
   removed again if the commit fails.

A failure in step 3 leaves the sites already exported complete and usable;
the error names them. When no site was exported, ``DIR`` is removed.
"""

from __future__ import annotations

import contextlib
import shutil
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

from airlock.bundles.bundle import SITES_DIR
from airlock.bundles.errors import AirlockError, ConflictError, UsageError
from airlock.bundles.models import Envelope
from airlock.bundles.progress import NO_PROGRESS, Progress
from airlock.hub.context._context import HubContext, get_site
from airlock.hub.context._operation import operation
from airlock.hub.export import _bundle as bundle_export
from airlock.hub.export._bundle import ExportPlan
from airlock.hub.export._media import (
    EnvelopeClaims,
    MediaOptions,
    SiteContent,
    SiteMedia,
    write_shared_volumes,
    write_site_files,
)
from airlock.hub.export._planner import plan_export
from airlock.hub.export._record import record_export
from airlock.hub.repos import _signing as signing


def export_sites(
    ctx: HubContext,
    site_ids: Sequence[str],
    out_dir: Path,
    *,
    full: bool = False,
    media: MediaOptions | None = None,
    progress: Progress = NO_PROGRESS,
) -> list[Envelope]:
    """Exports the next bundle of every site in ``site_ids`` onto shared media in ``out_dir``.

    Raises:
        UsageError: fewer than two sites, a site named twice, format 1, or
            encrypted and unencrypted sites mixed.
        ConflictError: ``out_dir`` is not new, or the hub changed meanwhile.
        AirlockError: a site's export failed after others were written (named).
    """
    media = media or MediaOptions()
    if len(site_ids) < 2 or len(set(site_ids)) != len(site_ids):
        raise UsageError("a shared export names two or more different sites")
    if media.format_version != 2:
        raise UsageError(
            "format 1 cannot share volumes between sites", hint="export each site on its own"
        )
    out_dir = Path(out_dir)
    planned = {site_id: plan_export(ctx, site_id, full=full) for site_id in site_ids}
    contents = [_content(plan) for plan in planned.values()]
    work = bundle_export.prepare_out_dir(out_dir)
    try:
        site_media = write_shared_volumes(work, contents, media, progress)
        (work / SITES_DIR).mkdir()
        bundle_export.promote_bundle(work, out_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    envelopes: list[Envelope] = []
    for content in contents:
        try:
            envelopes.append(_export_site(ctx, out_dir, content, site_media, full))
        except AirlockError as exc:
            if not envelopes:
                shutil.rmtree(out_dir, ignore_errors=True)
                raise
            done = ", ".join(e.site_id for e in envelopes)
            raise type(exc)(
                f"exported for {done}; the export for {content.site_id} failed: {exc.message}",
                exc.hint,
            ) from exc
    return envelopes


def _content(plan: ExportPlan) -> SiteContent:
    return SiteContent(
        site_id=plan.site_id,
        recipients=tuple(plan.recipients) if plan.recipients is not None else None,
        blobs=tuple(plan.blobs),
        indexes=dict(plan.indexes),
    )


def _export_site(
    ctx: HubContext,
    out_dir: Path,
    planned: SiteContent,
    site_media: Mapping[str, SiteMedia],
    full: bool,
) -> Envelope:
    """Step 3 of the module docstring for one site."""
    sites = out_dir / SITES_DIR
    final = sites / planned.site_id
    with operation(ctx, "hub.export", planned.site_id) as op:
        plan = plan_export(ctx, planned.site_id, full=full)
        if _content(plan) != planned:
            raise ConflictError(
                f"the hub changed while the shared export for {planned.site_id} was written",
                hint="export again",
            )
        site = get_site(op.session, plan.site_id)
        work = sites / f".{plan.site_id}.partial-{uuid.uuid4().hex[:8]}"
        work.mkdir()
        op.cleanup.append(lambda: shutil.rmtree(work, ignore_errors=True))
        claims = EnvelopeClaims(
            bundle_id=plan.bundle_id,
            kind=plan.kind,
            sequence=plan.sequence,
            created=plan.created,
            expires=plan.expires,
            omitted=plan.omitted,
        )
        envelope = write_site_files(
            work,
            claims,
            plan.metadata,
            planned,
            site_media[plan.site_id],
            [ctx.signers.online(signing.ENVELOPE)],
            bundle_export.director_roots(plan.metadata),
        )

        def promote() -> None:
            bundle_export.promote_bundle(work, final)

        def unpromote() -> None:
            with contextlib.suppress(FileNotFoundError):
                shutil.rmtree(final)

        op.before_commit.append(promote)
        op.undo.append(unpromote)
        record_export(ctx, op, site, plan, envelope, out_dir)
        return envelope
