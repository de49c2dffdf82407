"""Recording an export, inside its operation: what every written bundle commits with.

The site's next sequence number, the export and every file it carried
(:class:`~airlock.hub.store._tables.HubExport`,
:class:`~airlock.hub.store._tables.HubSentFile`), the ``bundle.exported`` event
in the outbox, the plan's repository files, the audit details, and — last
before the commit — an audit checkpoint covering the export's own entry.
"""

from __future__ import annotations

from pathlib import Path

from sqlmodel import Session

from airlock.bundles import audit as checkpoint_store
from airlock.bundles import events as events
from airlock.bundles.clock import utc_iso
from airlock.bundles.models import Envelope
from airlock.hub.context._context import HubContext
from airlock.hub.context._operation import Operation
from airlock.hub.export._bundle import ExportPlan
from airlock.hub.store._tables import HubExport, HubSentFile, HubSite


def record_export(
    ctx: HubContext,
    op: Operation,
    site: HubSite,
    plan: ExportPlan,
    envelope: Envelope,
    out_dir: Path,
) -> None:
    """Records the written bundle of ``plan`` in ``op`` (see the module docstring)."""
    site.sequence = plan.sequence
    op.session.add(site)
    _record_sent(op.session, plan, envelope)
    _emit_exported(ctx, op.session, plan, envelope)
    op.writes.merge(plan.writes)
    op.before_commit.append(lambda: _write_checkpoint(ctx, op))
    op.details = {
        "bundle_id": envelope.bundle_id,
        "site_id": plan.site_id,
        "sequence": plan.sequence,
        "created": utc_iso(plan.created),
        "expires": utc_iso(plan.expires),
        "encrypted": envelope.encrypted,
        "format_version": envelope.format_version,
        "parts": [p.to_dict() for p in envelope.parts],
        "volumes": [v.to_dict() for v in envelope.volumes],
        "metadata_files": len(plan.metadata),
        "kind": str(plan.kind),
        "full": plan.full,
        "omitted": list(plan.omitted),
        "blobs": [b.sha256 for b in plan.blobs],
        "resigned": list(plan.resigned),
        "out_dir": str(out_dir),
    }


def _emit_exported(ctx: HubContext, session: Session, plan: ExportPlan, envelope: Envelope) -> None:
    """The ``bundle.exported`` event, in the export's transaction (subject: the bundle id)."""
    data = {
        "site": plan.site_id,
        "sequence": plan.sequence,
        "kind": str(plan.kind),
        "bundle_id": envelope.bundle_id,
        "expires": utc_iso(plan.expires),
        "models": sorted({f"{name}@{version}" for name, version, _, _ in plan.carried}),
        "omitted": list(plan.omitted),
    }
    source = events.source_of("hub", ctx.audit.host)
    events.emit(session, "bundle.exported", source, envelope.bundle_id, data, ctx.clock.now())


def _write_checkpoint(ctx: HubContext, op: Operation) -> None:
    """Signs an audit checkpoint covering the export's own entry, in the export's transaction.

    Runs last before the commit (after the export's entry), so a refused
    export leaves no checkpoint and no new key behind; the hub's checkpoint
    key is made on first use, encrypted with the hub passphrase.
    """
    key = checkpoint_store.home_checkpoint_key(ctx.config, ctx.signers.secrets)
    signer = checkpoint_store.checkpoint_signer(ctx.config, key, ctx.signers.secrets)
    checkpoint_store.write_checkpoint(
        ctx.audit, signer, key.origin, ctx.clock.now(), session=op.session
    )


def _record_sent(session: Session, plan: ExportPlan, envelope: Envelope) -> None:
    """Step (h): the export and every file it carried to the site."""
    session.add(
        HubExport(
            site_id=plan.site_id,
            sequence=plan.sequence,
            bundle_id=envelope.bundle_id,
            kind=str(plan.kind),
            full=plan.full,
            revocations=plan.revocations,
            created=utc_iso(plan.created),
        )
    )
    for name, version, filename, sha256 in plan.carried:
        row = session.get(HubSentFile, (plan.site_id, name, version, filename))
        if row is None:
            row = HubSentFile(
                site_id=plan.site_id,
                name=name,
                version=version,
                filename=filename,
                sha256=sha256,
                sequence=plan.sequence,
            )
        row.sha256, row.sequence = sha256, plan.sequence
        session.add(row)
