"""Metrics bundles as a site makes them, from real parts, for the hub's import tests.

:class:`MetricsSite` plays the site's side of the return path with the real
pieces: it appends to the spoke's real audit log, signs a real checkpoint of
it with the site key (:func:`airlock.bundles.audit._checkpoint_store.write_checkpoint`),
computes real RFC 6962 consistency proofs from the spoke's stored tree, and
writes the bundle with :func:`airlock.bundles.metrics._bundle.write_metrics_bundle`
(envelope signed by the site key, payload age-encrypted to the recipient the
hub put into the site's Director targets). Tests then damage what an attacker
could: the medium's files, or the spoke's database (a rewritten log).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from securesystemslib.signer import Signer
from sqlalchemy import func
from sqlmodel import Session, col, delete, select

from airlock.bundles import audit as checkpoint_store
from airlock.bundles.audit import AuditLog, AuditRecord, Checkpoint, read_checkpoint
from airlock.bundles.clock import FixedClock, utc_iso
from airlock.bundles.metrics import (
    RETURN_FIELD,
    ConsistencyProof,
    LatencySketch,
    MetricsCell,
    MetricsPayload,
    MetricsTotal,
    ReturnPath,
    write_metrics_bundle,
)
from airlock.hub.context import HubContext, load_site_metadata
from airlock.hub.store import PASSPHRASE_ENV, HubMetricsCell, HubMetricsImport, HubMetricsTotal
from airlock.spoke.site import SpokeHome
from helpers.fleetenv import site_signer
from helpers.hubenv import HUB_PASSPHRASE
from helpers.spokeenv import AIRLOCK

IMPORT_ACTION = "hub.metrics.import"
METRICS_TABLES = (HubMetricsImport, HubMetricsCell, HubMetricsTotal)


def return_path_of(hub: HubContext, site_id: str) -> ReturnPath:
    """The ``x-airlock-return`` field of the site's stored (signed) Director targets."""
    fields = load_site_metadata(hub, site_id).targets.signed.unrecognized_fields
    return ReturnPath.from_dict(fields[RETURN_FIELD])


def iris_cells(start: str, end: str, requests: int = 1000) -> tuple[MetricsCell, ...]:
    """Two rings of iris@3 figures over one window, summed over five nodes each."""
    latency = LatencySketch.of([4.0 + (i % 7) for i in range(requests)]).to_dict()
    return tuple(
        MetricsCell(
            model="iris",
            version="3",
            ring=ring,
            window_start=start,
            window_end=end,
            nodes=5,
            requests=requests,
            errors=3,
            latency=latency,
            predictions={
                "0": requests // 3,
                "1": requests // 3,
                "2": requests - 2 * (requests // 3),
            },
            confidence={"0.9": requests - 100, "0.5": 100},
        )
        for ring in ("candidate", "stable")
    )


@dataclass
class MetricsSite:
    """The site's side of the return path (see the module docstring)."""

    spoke: SpokeHome
    recipient: str
    clock: FixedClock
    sequence: int = 0
    sizes: list[int] = field(default_factory=list)
    """Checkpoint sizes of earlier bundles (proofs are sent from each, like the spoke does)."""
    window_end: str = ""

    @classmethod
    def of(cls, spoke: SpokeHome, hub: HubContext, start: dt.datetime) -> MetricsSite:
        """A site that encrypts to the recipient the hub signed into its Director targets."""
        return cls(spoke, return_path_of(hub, spoke.site_id).hub_recipient, FixedClock(start))

    @property
    def origin(self) -> str:
        """The site's checkpoint origin."""
        return f"airlock/spoke/{self.spoke.site_id}"

    def activity(self, entries: int = 3) -> None:
        """Appends ``entries`` audit entries (the site doing its work)."""
        for number in range(entries):
            self.clock.advance(dt.timedelta(seconds=10))
            self.spoke.audit.record(
                "spoke.test.work", "success", object=f"step-{number}", when=self.clock.now()
            )

    def checkpoint(self) -> Checkpoint:
        """A new signed checkpoint of the spoke's whole log."""
        signer = site_signer(self.spoke)
        return checkpoint_store.write_checkpoint(
            self.spoke.audit, signer, self.origin, self.clock.now()
        )

    def proofs(
        self, new_size: int, olds: Sequence[int] | None = None
    ) -> tuple[ConsistencyProof, ...]:
        """Consistency proofs from each earlier size to ``new_size``, from the stored tree."""
        with Session(self.spoke.engine) as session:
            tree = checkpoint_store.stored_tree(session)
        return tuple(
            ConsistencyProof(old, new_size, tuple(tree.consistency_proof(old, new_size)))
            for old in (self.sizes if olds is None else olds)
            if 0 < old <= new_size
        )

    def payload(self, **changes: Any) -> MetricsPayload:
        """The next payload: new activity, a new checkpoint, proofs, cells (``changes`` win)."""
        self.activity()
        self.clock.advance(dt.timedelta(minutes=1))
        checkpoint = self.checkpoint()
        now = self.clock.now()
        start = self.window_end or utc_iso(now - dt.timedelta(hours=1))
        end = utc_iso(now)
        cells = iris_cells(start, end)
        totals = (MetricsTotal("iris", "3", start, end, nodes=10, requests=2000, errors=6),)
        payload = MetricsPayload(
            site_id=self.spoke.site_id,
            sequence=self.sequence + 1,
            created=end,
            window_start=start,
            window_end=end,
            window_minutes=60,
            k=5,
            cells=cells,
            totals=totals,
            suppressed_cells=1,
            checkpoint=checkpoint.note,
            consistency=self.proofs(checkpoint.size),
        )
        return replace(payload, **changes)

    def write(
        self,
        out: Path,
        payload: MetricsPayload,
        *,
        signer: Signer | None = None,
        recipient: str | None = None,
        expires: dt.datetime | None = None,
    ) -> Path:
        """Writes ``payload`` as a bundle at ``out`` and remembers its sequence and size."""
        created = self.clock.now()
        write_metrics_bundle(
            out,
            payload,
            signer=signer or site_signer(self.spoke),
            recipient=recipient or self.recipient,
            created=created,
            expires=expires or created + dt.timedelta(days=90),
        )
        self.sequence = max(self.sequence, payload.sequence)
        self.window_end = payload.window_end
        if payload.checkpoint:
            self.sizes.append(read_checkpoint(payload.checkpoint).size)
        return out

    def bundle(self, out: Path, **changes: Any) -> Path:
        """The site's next metrics bundle at ``out``."""
        return self.write(out, self.payload(**changes))

    def rewrite_log(self, keep: int) -> None:
        """An attacker at the site: deletes every audit entry after the first ``keep``."""
        with Session(self.spoke.engine) as session:
            session.exec(delete(AuditRecord).where(col(AuditRecord.seq) > keep))  # type: ignore[call-overload]
            session.commit()


def row_counts(hub: HubContext) -> dict[str, int]:
    """Rows of every hub_metrics_* table."""
    with Session(hub.engine) as session:
        return {
            table.__tablename__: int(session.exec(select(func.count()).select_from(table)).one())
            for table in METRICS_TABLES
        }


def assert_refused(
    hub: HubContext, before: dict[str, int], outcome: str = "refused"
) -> dict[str, Any]:
    """Nothing stored, and the import's own failure entry is the newest; returns its details."""
    assert row_counts(hub) == before
    last = AuditLog(hub.engine, "hub").entries()[-1]
    assert (last.action, last.outcome) == (IMPORT_ACTION, outcome)
    details: dict[str, Any] = json.loads(last.details)
    return details


def run_hub_airlock(
    *args: str, passphrase: str = HUB_PASSPHRASE
) -> subprocess.CompletedProcess[str]:
    """Runs ``.venv/bin/airlock`` in a real process with the hub passphrase in its environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRLOCK_")}
    env.update({"AIRLOCK_PRINCIPAL": "release-engineer", "COLUMNS": "200", "NO_COLOR": "1"})
    env[PASSPHRASE_ENV] = passphrase
    return subprocess.run(
        [str(AIRLOCK), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
