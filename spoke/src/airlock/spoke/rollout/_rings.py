"""Which nodes are in which ring, and what each node should hold (its ``NodeDesired`` row).

The rollout engine decides states; this module turns them into per-node
wishes. Ring membership is deterministic and stable: the site's *live*
enrolled nodes sorted by ``sha256(rollout_id + node_id)``, the first
``ring.node_count(n)`` of them (rings are cumulative, so a node in ring 1 stays
in ring 2). A node is live when the spoke heard from it (its latest version
report, or its enrolment) within ``[rollout] node_stale_after`` seconds
(:func:`stale_after_seconds`): a node that stopped reporting is never chosen
as a canary or ring node, and leaves the ring it was in, so a dead node
cannot stall a rollout. Every active node still gets its stable entries.
A ring node gets the stable version plus the candidate; every other node
gets the stable version only. A candidate whose dependencies a node does not
run yet (per its latest signed version report) is held back on that node.

:func:`sync_desired` rewrites every node's entries for the families the engine
manages, keeps other families' entries as they are, never lists a revoked
version, and only touches rows whose content changes (so the site director
re-signs only what changed).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, col, select

from airlock.bundles.clock import parse_utc, utc_iso
from airlock.bundles.errors import AirlockError, UsageError
from airlock.bundles.protocol import ROLES, NodeModel, VersionReport
from airlock.bundles.release import RolloutPlan, version_tuple
from airlock.spoke.site._fleet_tables import (
    EnrolledNode,
    FleetModel,
    NodeDesired,
    NodeReport,
    RevokedVersion,
    Rollout,
)

ACTIVE_STATES = ("pending", "ring", "paused")
"""States of a rollout that is still running (at most one per family)."""
STALE_SETTING = "rollout.node_stale_after"
DEFAULT_STALE_AFTER = 60
"""Seconds: six report intervals of a node agent's default ``report_seconds`` (10)."""


def version_key(version: str) -> tuple[int, tuple[int, ...], str]:
    """A sort key putting model versions in release order (numeric versions first)."""
    try:
        return (1, version_tuple(version), version)
    except AirlockError:
        return (0, (), version)


def active_node_ids(session: Session) -> list[str]:
    """The ids of enrolled nodes that were not removed, sorted."""
    rows = session.exec(select(EnrolledNode).where(EnrolledNode.removed_at == ""))
    return sorted(row.node_id for row in rows)


def stale_after_seconds(config: Any) -> int:
    """``[rollout] node_stale_after`` (env ``AIRLOCK_ROLLOUT_NODE_STALE_AFTER``), in seconds.

    Raises:
        UsageError: not a whole number of seconds above zero.
    """
    value = config.get(STALE_SETTING, DEFAULT_STALE_AFTER)
    try:
        if isinstance(value, bool):
            raise ValueError
        seconds = int(value)
    except (TypeError, ValueError):
        seconds = 0
    if seconds <= 0:
        raise UsageError(
            f"{STALE_SETTING} must be a whole number of seconds above zero, not {value!r}",
            hint="set [rollout] node_stale_after in the spoke's airlock.toml to a few times "
            "the nodes' report_seconds (default 60)",
        )
    return seconds


def last_seen(session: Session) -> dict[str, str]:
    """Each active node's last contact: its latest version report, else its enrolment (UTC)."""
    seen = {
        row.node_id: row.enrolled_at
        for row in session.exec(select(EnrolledNode).where(EnrolledNode.removed_at == ""))
    }
    for row in session.exec(select(NodeReport)):
        if row.node_id in seen and parse_utc(row.received_at) > parse_utc(seen[row.node_id]):
            seen[row.node_id] = row.received_at
    return seen


def live_node_ids(session: Session, now: dt.datetime, stale_after: int) -> list[str]:
    """The active nodes heard from within ``stale_after`` seconds of ``now``, sorted."""
    horizon = now - dt.timedelta(seconds=stale_after)
    return sorted(node for node, when in last_seen(session).items() if parse_utc(when) >= horizon)


def latest_reports(session: Session) -> dict[str, VersionReport]:
    """Each node's latest signed version report (malformed ones are skipped)."""
    reports: dict[str, VersionReport] = {}
    for row in session.exec(select(NodeReport)):
        try:
            reports[row.node_id] = VersionReport.from_dict(row.report["signed"])
        except (AirlockError, KeyError, TypeError):
            continue
    return reports


def revoked_versions(session: Session) -> dict[tuple[str, str], str]:
    """(model, version) → reason, for every version the hub revoked."""
    return {(r.model, r.version): r.reason for r in session.exec(select(RevokedVersion))}


def ring_order(rollout_id: str, node_ids: Iterable[str]) -> list[str]:
    """``node_ids`` in this rollout's ring order (stable across steps and restarts)."""
    return sorted(
        node_ids, key=lambda n: (hashlib.sha256((rollout_id + n).encode()).hexdigest(), n)
    )


def ring_nodes(
    rollout: Rollout, node_ids: Sequence[str], ring_index: int | None = None
) -> list[str]:
    """The nodes ring ``ring_index`` (default: the current one) of ``rollout`` covers."""
    plan = RolloutPlan.from_dict(rollout.plan)
    index = rollout.ring_index if ring_index is None else ring_index
    count = max(ring.node_count(len(node_ids)) for ring in plan.rings[: index + 1])
    return ring_order(rollout.id, node_ids)[:count]


def runs_version(report: VersionReport | None, model: str, version: str) -> bool:
    """Whether a node's report shows ``model@version`` serving (active, or as candidate)."""
    if report is None:
        return False
    return any(
        item.model == model and version in (item.active_version, item.candidate_version)
        for item in report.installed
    )


def missing_dependencies(
    report: VersionReport | None, depends: Sequence[Mapping[str, Any]]
) -> list[str]:
    """The dependencies (``model>=min``) a node's latest report does not show it running."""
    missing = []
    for dependency in depends:
        model, minimum = str(dependency["model"]), str(dependency["min_version"])
        active = report.active_version(model) if report is not None else None
        if active is None or version_key(active) < version_key(minimum):
            missing.append(f"{model}>={minimum}")
    return missing


def depends_of(rollout: Rollout) -> list[dict[str, Any]]:
    """The dependencies recorded with a rollout's version."""
    return [dict(d) for d in rollout.extra.get("depends", [])]


@dataclass(frozen=True)
class RingView:
    """Where one rollout's current ring stands on the site's nodes."""

    members: list[str]
    """Nodes in the current ring."""
    eligible: list[str]
    """Ring nodes whose dependencies are met: they get the candidate."""
    waiting: dict[str, list[str]]
    """Ring nodes held back → the dependencies they lack."""


def ring_view(
    rollout: Rollout, node_ids: Sequence[str], reports: Mapping[str, VersionReport]
) -> RingView:
    """The current ring's members, split by whether their dependencies are met."""
    members = ring_nodes(rollout, node_ids)
    depends = depends_of(rollout)
    waiting = {}
    for node in members:
        missing = missing_dependencies(reports.get(node), depends)
        if missing:
            waiting[node] = missing
    eligible = [n for n in members if n not in waiting]
    return RingView(members, eligible, waiting)


def _stable(model: str, version: str | None) -> list[NodeModel]:
    return [] if version is None else [NodeModel(model, version, role="stable")]


def candidate_entry(rollout: Rollout) -> NodeModel:
    """The candidate's entry on a ring node, with the ring's traffic mode."""
    ring = RolloutPlan.from_dict(rollout.plan).rings[rollout.ring_index]
    return NodeModel(
        rollout.model,
        rollout.version,
        role="candidate",
        traffic=ring.traffic,
        split_percent=ring.split_percent if ring.traffic == "split" else None,
        rollout_id=rollout.id,
    )


def family_wishes(
    model: str,
    stable: str | None,
    rollout: Rollout | None,
    node_ids: Sequence[str],
    reports: Mapping[str, VersionReport],
    current: Mapping[str, list[NodeModel]],
    live: Sequence[str] | None = None,
) -> dict[str, list[NodeModel]]:
    """What every active node should hold of one family.

    Args:
        model: The family.
        stable: The family's stable version (None: nothing yet).
        rollout: The family's active rollout, if any.
        node_ids: Active nodes.
        reports: Latest version reports by node (for dependencies).
        current: The family's entries each node holds now (kept while paused).
        live: The nodes rings are chosen from (default: ``node_ids``).
    """
    if rollout is None or rollout.state == "pending":
        return {node: _stable(model, stable) for node in node_ids}
    fallback = _stable(model, rollout.from_version)
    if rollout.state == "paused":  # nodes keep their candidate; the stable entry is refreshed
        return {
            node: [*fallback, *(e for e in current.get(node, []) if e.role == "candidate")]
            for node in node_ids
        }
    eligible = set(ring_view(rollout, node_ids if live is None else live, reports).eligible)
    candidate = candidate_entry(rollout)
    return {
        node: [*fallback, candidate] if node in eligible else list(fallback) for node in node_ids
    }


def _order(entry: Mapping[str, Any]) -> tuple[str, int, str]:
    role = str(entry.get("role", "stable"))
    return (str(entry.get("model")), ROLES.index(role) if role in ROLES else 9, str(entry))


def sync_desired(session: Session, now: dt.datetime, *, stale_after: int) -> list[str]:
    """Rewrites every node's NodeDesired from the engine's state; returns the nodes changed.

    Families managed here are those with a FleetModel row or an active rollout;
    entries of other families are kept. Revoked versions are dropped from every
    row, removed nodes included. Rings are chosen among the nodes seen within
    ``stale_after`` seconds.
    """
    node_ids = active_node_ids(session)
    live = live_node_ids(session, now, stale_after)
    reports = latest_reports(session)
    revoked = revoked_versions(session)
    stable = {row.model: row.stable_version for row in session.exec(select(FleetModel))}
    rollouts = {
        r.model: r
        for r in session.exec(select(Rollout).where(col(Rollout.state).in_(ACTIVE_STATES)))
    }
    families = sorted(set(stable) | set(rollouts))
    rows = {row.node_id: row for row in session.exec(select(NodeDesired))}
    current: dict[str, dict[str, list[NodeModel]]] = {}
    for node, row in rows.items():
        for entry in row.models:
            item = NodeModel.from_dict(entry)
            current.setdefault(item.model, {}).setdefault(node, []).append(item)
    wishes: dict[str, list[dict[str, Any]]] = {
        node: [e for e in row.models if e.get("model") not in families]
        for node, row in rows.items()
    }
    for model in families:
        per_node = family_wishes(
            model,
            stable.get(model),
            rollouts.get(model),
            node_ids,
            reports,
            current.get(model, {}),
            live,
        )
        for node, entries in per_node.items():
            wishes.setdefault(node, []).extend(e.to_dict() for e in entries)
    return _write(session, rows, wishes, revoked, now)


def _write(
    session: Session,
    rows: Mapping[str, NodeDesired],
    wishes: Mapping[str, list[dict[str, Any]]],
    revoked: Mapping[tuple[str, str], str],
    now: dt.datetime,
) -> list[str]:
    """Saves the rows whose wishes changed (revoked versions dropped); returns their nodes."""
    changed = []
    for node, wished in sorted(wishes.items()):
        kept = sorted(
            (e for e in wished if (e.get("model"), e.get("version")) not in revoked), key=_order
        )
        existing = rows.get(node)
        if existing is not None and existing.models == kept:
            continue
        if existing is None and not kept:
            continue
        row = existing or NodeDesired(node_id=node, models=[])
        row.models = kept
        row.updated_at = utc_iso(now)
        session.add(row)
        changed.append(node)
    session.flush()
    return changed
