"""``airlock spoke status``: what this site trusts, has staged, and is told to run.

Also the site's runtime as the validation gate sees it (detected or declared
in ``[runtime]``), each staged version's gate figures, the versions the hub
revoked (``revoked``: ``model``, ``version``, ``reason``, ``revoked_at``) and
those whose newest rollout here was rolled back (``rolled_back``: ``model``,
``version``, ``rolled_back_at``). Each staged version carries the same as
``revoked`` (null or ``{reason, revoked_at}``) and ``rolled_back_at`` (null or
a time).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session, col, select

from airlock.bundles.audit import HubReturnRecord
from airlock.bundles.clock import SystemClock
from airlock.bundles.errors import UsageError
from airlock.node.runtime import NOT_SIGNED, site_runtime
from airlock.spoke.importing._attestation_policy import layout_source, read_policy
from airlock.spoke.metrics._plan import rolled_back_versions
from airlock.spoke.site._cutoff import cut_off
from airlock.spoke.site._fleet_tables import RevokedVersion
from airlock.spoke.site._home import SpokeHome
from airlock.spoke.site._return_tables import MetricsExportRecord
from airlock.spoke.site._tables import STATE_ID, DirectorAssignment, SpokeState, StagedModel


@dataclass(frozen=True)
class SpokeStatus:
    """A snapshot of a spoke's state, for tables and ``--json``."""

    site_id: str
    image_root_version: int
    director_root_version: int
    director_targets_version: int
    last_sequence: int
    last_bundle_id: str
    time_floor: str
    staged: list[dict[str, Any]]
    assigned: list[dict[str, Any]]
    runtime: dict[str, Any]
    metrics: dict[str, Any]
    """The return path: the last metrics export and what the hub acknowledged."""
    cut_off: dict[str, Any] = field(default_factory=dict)
    """Days since the last bundle, transit budget and root expiries, warnings."""
    attestations: dict[str, Any] = field(default_factory=dict)
    """The attestation policy: required, the signed layout held, the unsafe exceptions."""
    revoked: list[dict[str, str]] = field(default_factory=list)
    """Every version the hub revoked that this site had staged (``RevokedVersion``)."""
    rolled_back: list[dict[str, str]] = field(default_factory=list)
    """Versions whose newest rollout here was rolled back (what the hub is told)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "site_id": self.site_id,
            "trusted_roots": {
                "image": self.image_root_version,
                "director": self.director_root_version,
            },
            "director_targets_version": self.director_targets_version,
            "last_sequence": self.last_sequence,
            "last_bundle_id": self.last_bundle_id,
            "time_floor": self.time_floor,
            "staged_models": self.staged,
            "director_assignments": self.assigned,
            "runtime": self.runtime,
            "metrics": self.metrics,
            "cut_off": self.cut_off,
            "attestations": self.attestations,
            "revoked": self.revoked,
            "rolled_back": self.rolled_back,
        }


def read_status(home: SpokeHome, now: dt.datetime | None = None) -> SpokeStatus:
    """Reads the spoke's status from its database (``now``: the system clock by default).

    Raises:
        UsageError: the home has no spoke state, or its ``[runtime]`` section is malformed.
    """
    with Session(home.engine) as session:
        state = session.get(SpokeState, STATE_ID)
        if state is None:
            raise UsageError(f"{home.path} has no spoke state", hint="run `airlock spoke init`")
        staged: list[dict[str, Any]] = [
            {
                "model": row.name,
                "version": row.version,
                "files": len(json.loads(row.files)),
                "bytes": sum(int(f["length"]) for f in json.loads(row.files)),
                "sequence": row.sequence,
                "staged_at": row.staged_at,
                "gate": row.gate,
            }
            for row in session.exec(
                select(StagedModel).order_by(StagedModel.name, StagedModel.version)
            )  # type: ignore[arg-type]
        ]
        revoked = {
            (r.model, r.version): {"reason": r.reason, "revoked_at": r.revoked_at}
            for r in session.exec(select(RevokedVersion))
        }
        rolled_back = {(r.model, r.version): r for r in rolled_back_versions(session)}
        for item in staged:
            key = (str(item["model"]), str(item["version"]))
            item["revoked"] = revoked.get(key)
            item["rolled_back_at"] = rolled_back[key].rolled_back_at if key in rolled_back else None
        assigned: dict[tuple[str, str], dict[str, Any]] = {}
        for row in session.exec(select(DirectorAssignment).order_by(DirectorAssignment.path)):  # type: ignore[arg-type]
            entry = assigned.setdefault(
                (row.model, row.version),
                {"model": row.model, "version": row.version, "files": 0, "staged": True},
            )
            entry["files"] += 1
            entry["staged"] = entry["staged"] and (home.blob_dir / row.sha256).is_file()
        return SpokeStatus(
            site_id=state.site_id,
            image_root_version=state.image_root_version,
            director_root_version=state.director_root_version,
            director_targets_version=state.director_targets_version,
            last_sequence=state.last_sequence,
            last_bundle_id=state.last_bundle_id,
            time_floor=state.time_floor,
            staged=staged,
            assigned=list(assigned.values()),
            runtime=site_runtime(home.config).to_dict(),
            metrics=_metrics(session),
            cut_off=cut_off(session, state.time_floor, now or SystemClock().now()),
            attestations=_attestations(home, session),
            revoked=[{"model": m, "version": v, **e} for (m, v), e in sorted(revoked.items())],
            rolled_back=[r.to_dict() for r in rolled_back.values()],
        )


def _attestations(home: SpokeHome, session: Session) -> dict[str, Any]:
    """The attestation policy in force, with any unsafe exception (see attestation_policy)."""
    held = layout_source(session)
    policy = read_policy(home)
    return {
        **policy.to_dict(),
        "layout_held": held,
        "enforced": policy.required or held is not None,
    }


def _metrics(session: Session) -> dict[str, Any]:
    """The last metrics export, and the hub's newest acknowledgement (from its metadata)."""
    last = session.exec(
        select(MetricsExportRecord).order_by(col(MetricsExportRecord.sequence).desc())
    ).first()
    hub = session.get(HubReturnRecord, 1)
    return {
        "hub_recipient_known": hub is not None,
        "last_export": (
            {"sequence": last.sequence, "window_end": last.window_end, "created": last.created}
            if last
            else None
        ),
        "hub_acknowledged": (
            {"sequence": hub.acknowledged_sequence, "log_size": hub.acknowledged_size}
            if hub and hub.acknowledged_sequence
            else None
        ),
    }


def gate_row(figures: dict[str, Any]) -> list[str]:
    """A staged version's gate figures as table cells: outcome, result, p95, thresholds, runtime.

    ``not signed`` marks what the hub did not sign (the gate did not check it).
    """
    if not figures:
        return ["-", "-", "-", "-", "-"]
    validation = figures.get("validation")
    compat = figures.get("compatibility")
    outcome = str(figures.get("outcome", "-"))
    if not isinstance(validation, dict) and not isinstance(compat, dict):
        return [f"{outcome} (nothing signed)", "not signed", "-", "not signed", "not signed"]
    result, latency, thresholds = "not signed", "-", "not signed"
    if isinstance(validation, dict):
        samples = validation.get("samples")
        if "accuracy" in validation:
            result = f"accuracy {float(validation['accuracy']):.4f} on {samples}"
            limits = [_limit("accuracy >=", validation["min_accuracy"])]
        else:
            result = f"max error {float(validation['max_abs_error']):.6g} on {samples}"
            limits = [_limit("error <=", validation["max_error"])]
        latency = f"{validation['p95_latency_ms']} ms"
        limits.append(_limit("p95 <=", validation["max_p95_latency_ms"], " ms"))
        thresholds = ", ".join(limits)
    runtime = "not signed"
    if isinstance(compat, dict):
        opset = compat.get("opset", {})
        parts = [f"opset {opset.get('model')} <= {opset.get('supported')}"]
        parts += [f"{d['model']} {d['found']} >= {d['min_version']}" for d in compat["depends"]]
        runtime = "ok: " + ", ".join(parts)
    return [outcome, result, latency, thresholds, runtime]


def _limit(what: str, value: Any, unit: str = "") -> str:
    name = what.split()[0]
    return f"{name} not signed" if value == NOT_SIGNED else f"{what} {value}{unit}"
