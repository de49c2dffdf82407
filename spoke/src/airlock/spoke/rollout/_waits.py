"""What a rollout in a ring is waiting for, said once in its history.

A ring that does not move must say why, or a dead node looks like a slow one.
After each step of a rollout in a ring, :func:`note_wait` works out the first
thing it waits for:

``canary``  no live node can join the ring: none was heard from within
            ``[rollout] node_stale_after`` seconds (the stale ones are named);
``report``  ring nodes were told to run the candidate and have not yet
            reported running it (named, with when each was last heard from);
``bake``    every ring node runs it; the ring's bake time has not passed.

Each is recorded as one ``waiting`` event in the rollout's history when it
begins (not on every tick): the rollout's ``extra["waiting_for"]`` keeps the
current one, so the same wait is not recorded twice, and a new ring starts
afresh. A wait decides nothing, so it is a note for the site admin: it is not
among the events an engine step returns (nor audited, nor sent as a
CloudEvent). ``airlock spoke rollout show`` displays the current wait, and its
history every one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from airlock.bundles.clock import parse_utc, utc_iso
from airlock.bundles.release import RolloutPlan
from airlock.spoke.rollout._decisions import StepContext, add_event, set_extra
from airlock.spoke.rollout._rings import RingView, last_seen
from airlock.spoke.site._fleet_tables import Rollout

WAIT_EVENT = "waiting"
WAIT_KEY = "waiting_for"
"""The rollout's ``extra`` key holding the current wait's details (``{}``: none)."""


def current_wait(
    rollout: Rollout,
    view: RingView,
    running: Sequence[str],
    seen: Mapping[str, str],
    stale_after: int,
    now: dt.datetime,
) -> dict[str, Any]:
    """What the ring waits for (``{}``: nothing that needs saying).

    Args:
        rollout: A rollout in a ring.
        view: Its current ring over the live nodes.
        running: The ring nodes that report running the candidate.
        seen: Each active node's last contact (UTC text).
        stale_after: The site's ``node_stale_after``, in seconds.
        now: The engine's time.
    """
    ring = RolloutPlan.from_dict(rollout.plan).rings[rollout.ring_index]
    if not view.members:
        stale = sorted(seen)
        return {
            "for": "canary",
            "ring": ring.name,
            "reason": f"no node was heard from in the last {stale_after} s",
            "stale_nodes": {node: seen[node] for node in stale},
        }
    silent = [node for node in view.eligible if node not in running]
    if silent:
        return {
            "for": "report",
            "ring": ring.name,
            "reason": f"{len(silent)} ring node(s) have not reported running "
            f"{rollout.model}@{rollout.version}",
            "nodes": {node: seen.get(node, "") for node in silent},
        }
    baked_at = parse_utc(rollout.ring_started_at) + dt.timedelta(seconds=ring.bake_seconds)
    if running and now < baked_at:
        return {
            "for": "bake",
            "ring": ring.name,
            "reason": f"bake time of {ring.bake_seconds} s in ring {ring.name!r}",
            "until": utc_iso(baked_at),
        }
    return {}


def note_wait(
    ctx: StepContext, rollout: Rollout, view: RingView, running: Sequence[str], stale_after: int
) -> None:
    """Records what ``rollout`` waits for as one ``waiting`` event when that changes."""
    seen = last_seen(ctx.session)
    wait = current_wait(rollout, view, running, seen, stale_after, ctx.now)
    before = rollout.extra.get(WAIT_KEY) or {}
    if wait.get("for") == before.get("for"):
        return
    set_extra(rollout, **{WAIT_KEY: wait})
    if wait:
        add_event(ctx.session, rollout, WAIT_EVENT, ctx.now, wait)
