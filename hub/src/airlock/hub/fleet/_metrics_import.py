"""``airlock hub import-metrics``: take in a site's metrics bundle and witness the site's log.

:func:`import_metrics` is one audited hub operation (``hub.metrics.import``):
its entry is written in the same transaction as what it stores, and any
failure stores nothing and leaves a ``refused`` (or ``failure``) entry of its
own. The steps, in order; the first that fails refuses the whole bundle:

1. **Open** (:func:`airlock.bundles.metrics._bundle.open_metrics_bundle`):
   exactly ``envelope.json`` and ``payload.age``; the envelope signed by the
   key registered for the site it names (a site this hub does not know is
   refused); a metrics bundle of that site, not expired; the payload of the
   signed size and SHA-256, decrypted with the hub's identity
   (:mod:`airlock.hub.trust._return_keys`), naming the envelope's site, sequence and
   window.
2. **Sequence**: not above the site's newest import — a replay — is refused;
   a gap (lost media) is accepted and the missing sequences are reported.
3. **Checkpoint**: the site's audit checkpoint, signed by the site key under
   origin ``airlock/spoke/<site>``, must extend the checkpoint of the site's
   newest import — the one this hub witnessed and acknowledged — by the
   RFC 6962 consistency proof the site sent from that size. A shorter log, a
   missing proof or a proof that does not verify means the site's log was
   rewritten: :class:`LogConsistencyError`, and, after the operation failed,
   the CloudEvent ``audit.log-inconsistent`` in a transaction of its own. The
   first import of a site is trusted on first use.
4. **Cosign**: the hub adds its witness cosignature (C2SP ``cosignature/v1``)
   to the site's checkpoint; the site receives it with its next bundle.
5. **Store**: a :class:`HubMetricsImport` row with its cells and totals, the
   site's rolled-back versions (:mod:`airlock.hub.catalog._site_rollbacks`, replacing what the
   site reported before; revocations never fall back to them), the
   ``metrics.imported`` event, and the fleet's drift and error-rate limits
   checked for the model versions it reported
   (:func:`airlock.hub.fleet._alerts.evaluate_alerts`).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from securesystemslib.signer import Key
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from airlock.bundles import audit as cosignature
from airlock.bundles import events as event_delivery
from airlock.bundles import events as events
from airlock.bundles.audit import Checkpoint
from airlock.bundles.clock import utc_iso
from airlock.bundles.db import session_scope
from airlock.bundles.errors import (
    AirlockError,
    FreshnessError,
    LogConsistencyError,
    MediaError,
    WrongSiteError,
)
from airlock.bundles.metrics import MetricsPayload, open_metrics_bundle
from airlock.bundles.models import Envelope
from airlock.hub.catalog import _site_rollbacks as site_rollbacks
from airlock.hub.context._context import HubContext
from airlock.hub.context._operation import Operation, operation
from airlock.hub.fleet import _alerts as fleet_alerts
from airlock.hub.fleet._consistency import (
    check_consistency,
    site_checkpoint,
    witnessed_checkpoint,
)
from airlock.hub.store._fleet_tables import HubMetricsCell, HubMetricsImport, HubMetricsTotal
from airlock.hub.store._tables import HubSite
from airlock.hub.trust import _return_keys as return_keys

IMPORT_ACTION = "hub.metrics.import"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MetricsImportResult:
    """What one import stored, and what the hub made of it."""

    site_id: str
    sequence: int
    bundle_id: str
    window_start: str
    window_end: str
    cells: int
    totals: int
    suppressed_cells: int
    suppressed_totals: int
    k: int
    noise: dict[str, Any] | None
    missing_sequences: tuple[int, ...]
    checkpoint_size: int
    checkpoint_root: str
    consistency: str
    """``first`` (trust on first use) or ``proof from N``."""
    witness: str
    versions: tuple[dict[str, Any], ...] = ()
    """Per model version: ``model``, ``version``, ``rings``, ``requests``, ``errors``."""
    alerts: tuple[dict[str, Any], ...] = ()
    rolled_back: tuple[dict[str, str], ...] = ()
    """The versions the site reports as rolled back (its whole current list)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``--json`` output and the audit entry's details)."""
        return {
            "site_id": self.site_id,
            "sequence": self.sequence,
            "bundle_id": self.bundle_id,
            "window": {"start": self.window_start, "end": self.window_end},
            "cells": self.cells,
            "totals": self.totals,
            "suppressed": {
                "cells": self.suppressed_cells,
                "totals": self.suppressed_totals,
                "k": self.k,
            },
            "noise": self.noise,
            "missing_sequences": list(self.missing_sequences),
            "checkpoint": {
                "size": self.checkpoint_size,
                "root": self.checkpoint_root,
                "consistency": self.consistency,
                "witness": self.witness,
            },
            "versions": [dict(v) for v in self.versions],
            "alerts": [dict(a) for a in self.alerts],
            "rolled_back": [dict(r) for r in self.rolled_back],
        }


def import_metrics(ctx: HubContext, bundle_dir: Path) -> MetricsImportResult:
    """Verifies, witnesses and stores one metrics bundle (steps 1-5 of the module docstring).

    Raises:
        MediaError, UnsafeArchiveError: not a well-formed metrics bundle.
        WrongSiteError: a site this hub does not know, or a bundle relabelled.
        SignatureError: the envelope or checkpoint is not signed by the site's key.
        IntegrityError, DecryptionError: the payload was altered, or is not for this hub.
        FreshnessError: expired, or a replay of an imported sequence.
        LogConsistencyError: the site's audit log does not extend what the hub witnessed.
        SecretError: the hub passphrase is missing or wrong.
    """
    bundle_dir = Path(bundle_dir)
    inconsistency: dict[str, Any] = {}
    try:
        with operation(ctx, IMPORT_ACTION, str(bundle_dir)) as op:
            return _import(ctx, op, bundle_dir, inconsistency)
    except LogConsistencyError as exc:
        _emit_inconsistent(ctx, {**inconsistency, "message": exc.message})
        raise


def _import(
    ctx: HubContext, op: Operation, bundle_dir: Path, inconsistency: dict[str, Any]
) -> MetricsImportResult:
    now, session = ctx.clock.now(), op.session
    identity = return_keys.hub_identity(ctx)
    envelope, payload = open_metrics_bundle(bundle_dir, _site_keys(session), identity, now)  # 1
    site_id = payload.site_id
    key = _site_keys(session)(site_id)
    previous = return_keys.newest_import(session, site_id)
    missing = _check_sequence(site_id, payload.sequence, previous)  # 2
    checkpoint = site_checkpoint(site_id, payload.checkpoint, key)  # 3
    inconsistency.update(
        site=site_id,
        sequence=payload.sequence,
        bundle_id=envelope.bundle_id,
        received={"size": checkpoint.size, "root": checkpoint.root.hex()},
        witnessed=witnessed_checkpoint(previous),
    )
    consistency = check_consistency(site_id, previous, checkpoint, payload.consistency)
    seen = return_keys.witness(ctx)  # 4
    cosigned = cosignature.cosign(checkpoint.note, seen.name, return_keys.witness_signer(ctx), now)
    row = _store(session, envelope, payload, missing, checkpoint, cosigned, consistency, now)  # 5
    refs = {(c.model, c.version) for c in payload.cells}
    result = MetricsImportResult(
        site_id=site_id,
        sequence=payload.sequence,
        bundle_id=envelope.bundle_id,
        window_start=payload.window_start,
        window_end=payload.window_end,
        cells=len(payload.cells),
        totals=len(payload.totals),
        suppressed_cells=payload.suppressed_cells,
        suppressed_totals=payload.suppressed_totals,
        k=payload.k,
        noise=payload.noise.to_dict() if payload.noise else None,
        missing_sequences=tuple(missing),
        checkpoint_size=checkpoint.size,
        checkpoint_root=checkpoint.root.hex(),
        consistency=consistency,
        witness=seen.name,
        versions=_versions(payload),
        alerts=tuple(fleet_alerts.evaluate_alerts(session, ctx, sorted(refs), now)),
        rolled_back=tuple(r.to_dict() for r in payload.rolled_back),
    )
    data = {
        "site": site_id,
        "sequence": row.sequence,
        "bundle_id": envelope.bundle_id,
        "window": {"start": payload.window_start, "end": payload.window_end},
        "cells": len(payload.cells),
        "missing_sequences": list(missing),
        "checkpoint_size": checkpoint.size,
    }
    source = events.source_of("hub", ctx.audit.host)
    events.emit(session, "metrics.imported", source, envelope.bundle_id, data, now)
    op.details = {"bundle": str(bundle_dir), **result.to_dict()}
    return result


def _site_keys(session: Session) -> Callable[[str], Key]:
    def lookup(site_id: str) -> Key:
        row = session.get(HubSite, site_id)
        if row is None:
            raise WrongSiteError(
                f"the metrics bundle comes from {site_id[:64]!r}, which is not a site of this hub",
                hint="register the site with `airlock hub site add --identity "
                "site-identity.json`, or import the bundle at the hub the site reports to",
            )
        return Key.from_dict(row.signing_keyid, json.loads(row.signing_key))

    return lookup


def _check_sequence(site_id: str, sequence: int, previous: HubMetricsImport | None) -> list[int]:
    """Step 2: the sequences skipped since the newest import (FreshnessError for a replay)."""
    newest = previous.sequence if previous else 0
    if sequence < 1:
        raise MediaError(f"metrics bundle sequence {sequence} is not a positive number")
    if sequence <= newest:
        raise FreshnessError(
            f"metrics bundle {sequence} of site {site_id} was already imported (newest: {newest})",
            hint="this is a replay or an old medium; take the site's newest export",
        )
    return list(range(newest + 1, sequence))


def _store(
    session: Session,
    envelope: Envelope,
    payload: MetricsPayload,
    missing: list[int],
    checkpoint: Checkpoint,
    cosigned: str,
    consistency: str,
    now: dt.datetime,
) -> HubMetricsImport:
    """Step 5: the import row, its cells and its totals (in the operation's transaction)."""
    row = HubMetricsImport(
        site_id=payload.site_id,
        sequence=payload.sequence,
        bundle_id=envelope.bundle_id,
        created=utc_iso(envelope.created),
        imported_at=utc_iso(now),
        window_start=payload.window_start,
        window_end=payload.window_end,
        payload_sha256=envelope.parts[0].sha256,
        k=payload.k,
        noise=payload.noise.to_dict() if payload.noise else {},
        suppressed_cells=payload.suppressed_cells,
        suppressed_totals=payload.suppressed_totals,
        missing_sequences=missing,
        checkpoint_size=checkpoint.size,
        checkpoint_root=checkpoint.root.hex(),
        checkpoint_note=checkpoint.note,
        cosigned_note=cosigned,
        consistency=consistency,
    )
    session.add(row)
    session.flush()
    if row.id is None:
        raise AirlockError("the metrics import row got no id from the database")
    for cell in payload.cells:
        session.add(HubMetricsCell(import_id=row.id, site_id=payload.site_id, **cell.to_dict()))
    for total in payload.totals:
        session.add(HubMetricsTotal(import_id=row.id, site_id=payload.site_id, **total.to_dict()))
    site_rollbacks.store(session, payload.site_id, payload.sequence, payload.rolled_back)
    session.flush()
    return row


def _versions(payload: MetricsPayload) -> tuple[dict[str, Any], ...]:
    summary: dict[tuple[str, str], dict[str, Any]] = {}
    for cell in payload.cells:
        entry = summary.setdefault(
            (cell.model, cell.version),
            {"model": cell.model, "version": cell.version, "rings": [], "requests": 0, "errors": 0},
        )
        if cell.ring not in entry["rings"]:
            entry["rings"].append(cell.ring)
        entry["requests"] += cell.requests
        entry["errors"] += cell.errors
    return tuple(summary[key] for key in sorted(summary))


def _emit_inconsistent(ctx: HubContext, data: dict[str, Any]) -> None:
    """Tells change management the site's log is inconsistent (own transaction, best effort).

    The import's own failure entry is the audit record; an event that cannot
    be written is logged, never raised over the LogConsistencyError.
    """
    now = ctx.clock.now()
    source = events.source_of("hub", ctx.audit.host)
    try:
        with session_scope(ctx.engine) as session:
            subject = str(data.get("site", ""))
            events.emit(session, "audit.log-inconsistent", source, subject, data, now)
    except (SQLAlchemyError, AirlockError, OSError):
        log.exception("could not write the audit.log-inconsistent event")
        return
    event_delivery.deliver_best_effort(ctx.engine, ctx.home.root, ctx.config, now, ctx.audit)
