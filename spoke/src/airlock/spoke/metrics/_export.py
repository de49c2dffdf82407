"""``airlock spoke export-metrics``: the site's figures for the hub, anonymised, signed, encrypted.

The export, in order (each step fails closed; steps 1-4 are
:func:`airlock.spoke.metrics._plan.plan_metrics`, which writes nothing and is
what ``--dry-run`` shows):

1. Settings, ``[metrics]`` in ``airlock.toml`` (env ``AIRLOCK_METRICS_*``):
   ``k`` (default 5), ``window_minutes`` (60), ``epsilon`` (unset: no noise)
   and ``transit_days`` (90). ``--k`` may raise the site's k, never lower it;
   ε must be > 0.
2. The hub's return path (:class:`~airlock.spoke.site._return_tables.HubReturnRecord`,
   from the newest hub bundle imported): the hub's age recipient and the
   checkpoint the hub last acknowledged. Without one nothing can be sent; a
   local log shorter than, or not extending, that checkpoint is refused
   before anything is written (exit 22, audited).
3. Sequence and window: the last export's sequence + 1; from the end of the
   last export's window (first export: the earliest metric window received,
   floored to the window grid, or now when there is none) to now. No rows is
   still an export: it carries the checkpoint, so the hub witnesses the log.
4. The metric windows the spoke received in that window are summed per model
   version, ring and window (:mod:`airlock.spoke.metrics._aggregate`); with ε,
   Laplace noise goes on every count (:mod:`airlock.spoke.metrics._noise`);
   site-wide totals are summed; groups of fewer than k nodes, and cells from
   which one could be derived, are suppressed (:mod:`airlock.spoke.metrics._anonymise`).
   Node ids stop here: only how many nodes a figure covers leaves the site.
5. One transaction: the ``spoke.metrics.export`` audit entry (window, counts,
   k, and ε with its per-family share when noise is on: the ε budget), a new
   signed checkpoint of the audit log (covering that entry), RFC 6962
   consistency proofs from every checkpoint the hub may have seen last (the one
   it acknowledged and those of later exports), the bundle
   (:func:`~airlock.bundles.metrics._bundle.write_metrics_bundle`: envelope
   signed with the site key, payload age-encrypted to the hub), the
   :class:`~airlock.spoke.site._return_tables.MetricsExportRecord` and the
   ``metrics.exported`` event. Any failure: rolled back, the bundle removed,
   a failure audit entry written on its own.
6. The event outbox is delivered, best effort.

What leaves is exactly the :class:`~airlock.bundles.metrics._model.MetricsPayload`:
per cell model, version, ring, window, node count, requests, errors, a latency
sketch, prediction-class and confidence-bucket counts, shadow counts; per
total the same counts across rings; k, the suppressed counts, the noise spec,
the checkpoint note and the proofs. No node id, host name, address or free text.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from securesystemslib.signer import Signer
from sqlmodel import Session, func, select

from airlock.bundles import audit as checkpoint_store
from airlock.bundles import events as event_delivery
from airlock.bundles.audit import failure_details, failure_outcome
from airlock.bundles.clock import utc_iso
from airlock.bundles.db import session_scope
from airlock.bundles.errors import ConflictError, SecretError, UsageError
from airlock.bundles.events import emit, source_of
from airlock.bundles.metrics import ConsistencyProof, MetricsPayload, write_metrics_bundle
from airlock.spoke.metrics._aggregate import totals_of
from airlock.spoke.metrics._anonymise import Anonymised, anonymise
from airlock.spoke.metrics._plan import MetricsPlan, plan_metrics
from airlock.spoke.site._home import PASSPHRASE_ENV, SpokeHome
from airlock.spoke.site._return_tables import MetricsExportRecord

ACTION = "spoke.metrics.export"


@dataclass(frozen=True)
class MetricsExportResult:
    """What an export wrote (no node ids)."""

    plan: MetricsPlan
    bundle_id: str
    out_dir: Path
    payload: MetricsPayload
    """The payload as encrypted (after noise)."""
    checkpoint_size: int
    checkpoint_root: str
    payload_sha256: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return self.plan.to_dict() | {
            "bundle_id": self.bundle_id,
            "out": str(self.out_dir),
            "cells": len(self.payload.cells),
            "totals": len(self.payload.totals),
            "checkpoint": {"size": self.checkpoint_size, "root": self.checkpoint_root},
            "consistency_from": [p.old_size for p in self.payload.consistency],
            "payload_sha256": self.payload_sha256,
        }


def export_metrics(
    home: SpokeHome,
    out_dir: Path,
    now: dt.datetime,
    *,
    epsilon: float | None = None,
    k: int | None = None,
    principal: str | None = None,
) -> MetricsExportResult:
    """Writes the next metrics bundle to ``out_dir`` (steps 1-6 of the module docstring).

    Raises:
        ConflictError: ``out_dir`` exists and is not an empty directory.
        UsageError: see :func:`plan_metrics`.
        SecretError: the site passphrase is missing or wrong.
        AirlockError: anything else; nothing was changed but a failure audit entry.
    """
    out_dir = Path(out_dir)
    existed = out_dir.is_dir()
    written = False
    try:
        if out_dir.exists() and (not existed or any(out_dir.iterdir())):
            raise ConflictError(
                f"{out_dir} already exists and is not empty",
                hint="give --out a new or empty directory (a bundle is never written over another)",
            )
        plan = plan_metrics(home, now, epsilon=epsilon, k=k)
        signer, origin = _site_signer(home)
        final = plan.anonymised
        if plan.noise is not None:
            from airlock.spoke.metrics._noise import add_noise

            noised = add_noise(plan.groups, plan.noise)
            final = anonymise(noised, totals_of(noised), plan.k)
        bundle_id = str(uuid.uuid4())
        with session_scope(home.engine) as session:
            _check_sequence(session, plan.sequence)
            home.audit.record(
                ACTION,
                "success",
                object=bundle_id,
                details=_audit_details(plan, final, bundle_id),
                session=session,
                when=now,
                principal=principal,
            )
            made = checkpoint_store.write_checkpoint(
                home.audit, signer, origin, now, session=session, principal=principal
            )
            tree = checkpoint_store.stored_tree(session)
            proofs = tuple(
                ConsistencyProof(old, tree.size, tuple(tree.consistency_proof(old)))
                for old in plan.proof_from
                if 0 < old <= tree.size
            )
            payload = plan.payload(final, made.note, proofs)
            envelope = write_metrics_bundle(
                out_dir,
                payload,
                signer=signer,
                recipient=plan.hub_recipient,
                created=plan.created,
                expires=plan.created + dt.timedelta(days=plan.transit_days),
                bundle_id=bundle_id,
            )
            written = True
            result = MetricsExportResult(
                plan,
                bundle_id,
                out_dir,
                payload,
                made.size,
                made.root.hex(),
                envelope.parts[0].sha256,
            )
            session.add(_export_record(result))
            emit(
                session,
                "metrics.exported",
                source_of("spoke", home.site_id),
                bundle_id,
                _event_data(result),
                now,
            )
    except BaseException as exc:
        if written:
            shutil.rmtree(out_dir, ignore_errors=True)
            if existed:
                with contextlib.suppress(OSError):
                    out_dir.mkdir()
        if not isinstance(exc, Exception):
            raise
        home.audit.record(
            ACTION,
            failure_outcome(exc),
            object=str(out_dir),
            details=failure_details(exc),
            when=now,
            principal=principal,
        )
        raise
    event_delivery.deliver_best_effort(home.engine, home.path, home.config, now, home.audit)
    return result


def _site_signer(home: SpokeHome) -> tuple[Signer, str]:
    """The site key's signer (asks for the passphrase) and the checkpoint origin."""
    if home.secrets is None:
        raise SecretError(
            "the site passphrase is needed to sign the metrics bundle",
            hint=f"set {PASSPHRASE_ENV} or run the command in a terminal",
        )
    key = checkpoint_store.home_checkpoint_key(home.config, home.secrets)
    if key.ref.keyid != home.signing_key().keyid:
        raise UsageError(
            "the published audit checkpoint key is not this site's signing key",
            hint=f"restore {checkpoint_store.KEY_FILE} from the home's backup",
        )
    return checkpoint_store.checkpoint_signer(home.config, key, home.secrets), key.origin


def _check_sequence(session: Session, sequence: int) -> None:
    newest = session.exec(select(func.max(MetricsExportRecord.sequence))).one()
    if (newest or 0) != sequence - 1:
        raise ConflictError(
            f"another metrics export (sequence {newest}) was written meanwhile",
            hint="run the export again: it continues from the newest one",
        )


def _audit_details(plan: MetricsPlan, final: Anonymised, bundle_id: str) -> dict[str, Any]:
    details: dict[str, Any] = {
        "sequence": plan.sequence,
        "bundle_id": bundle_id,
        "window": {"start": utc_iso(plan.window_start), "end": utc_iso(plan.window_end)},
        "rows": plan.rows,
        "cells": len(final.cells),
        "totals": len(final.totals),
        "suppressed_cells": final.suppressed_cells,
        "suppressed_totals": final.suppressed_totals,
        "k": plan.k,
    }
    if plan.noise is not None:  # as text: audit entries are canonical JSON, which has no floats
        details |= {
            "epsilon": plan.noise.epsilon,
            "family_epsilon": plan.noise.family_epsilon,
            "mechanism": plan.noise.mechanism,
            "noise_families": list(plan.noise.families),
        }
    return details


def _export_record(result: MetricsExportResult) -> MetricsExportRecord:
    payload = result.payload
    return MetricsExportRecord(
        sequence=payload.sequence,
        bundle_id=result.bundle_id,
        created=payload.created,
        window_start=payload.window_start,
        window_end=payload.window_end,
        checkpoint_size=result.checkpoint_size,
        checkpoint_root=result.checkpoint_root,
        payload_sha256=result.payload_sha256,
        cells=len(payload.cells),
        suppressed_cells=payload.suppressed_cells,
        suppressed_totals=payload.suppressed_totals,
        epsilon=payload.noise.epsilon if payload.noise else None,
        out_path=str(result.out_dir.resolve()),
    )


def _event_data(result: MetricsExportResult) -> dict[str, Any]:
    payload = result.payload
    return {
        "bundle_id": result.bundle_id,
        "site_id": payload.site_id,
        "sequence": payload.sequence,
        "window": {"start": payload.window_start, "end": payload.window_end},
        "cells": len(payload.cells),
        "totals": len(payload.totals),
        "suppressed_cells": payload.suppressed_cells,
        "suppressed_totals": payload.suppressed_totals,
        "checkpoint_size": result.checkpoint_size,
    }
