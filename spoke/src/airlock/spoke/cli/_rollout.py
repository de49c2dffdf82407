"""``airlock spoke rollout``: watch and steer the site's rollouts (list, show, pause, resume,
abort, promote).

The site admin can slow a rollout down or stop it, never make it go faster
than its signed plan: ``promote`` only works once the current ring is healthy
and baked. Every action is audited with the operator's identity (``--operator``
names a person on a shared account). Guide: docs/site-admin.md, "Rollouts".
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape

from airlock.bundles.audit import default_principal
from airlock.bundles.cli import FittedTable, closing_home, emit_json
from airlock.bundles.clock import SystemClock
from airlock.spoke.cli._options import HOME_OPTION, JSON_OPTION
from airlock.spoke.site._home import SpokeHome

OPERATOR_OPTION = click.option(
    "--operator",
    metavar="NAME",
    help="Who is acting, recorded as 'NAME (os-user@host)' (default: the OS user).",
)


def principal_of(operator: str | None) -> str:
    """The audit principal: the OS user, or ``NAME (os-user@host)`` with ``--operator``."""
    if not operator:
        return default_principal()
    return f"{operator} ({default_principal()}@{socket.gethostname()})"


def _rollout_group() -> None:
    """Rollouts of assigned model versions to this site's nodes, ring by ring.

    \b
    The engine (part of `airlock spoke serve`) starts a rollout for each
    version the hub assigns, runs the canary analysis, promotes healthy
    rings and rolls back on a breach. The site admin may:
      airlock spoke rollout list
      airlock spoke rollout show ID
      airlock spoke rollout pause ID --reason "…"    (nodes keep what they have)
      airlock spoke rollout resume ID
      airlock spoke rollout abort ID --reason "…"    (every node back to stable)
      airlock spoke rollout promote ID               (a healthy ring awaiting approval)
    """


rollout: click.Group = click.group(
    "rollout", short_help="Watch and steer rollouts: pause, resume, abort, promote."
)(_rollout_group)
"""The ``airlock spoke rollout`` group (it registers itself on ``airlock spoke``)."""


@rollout.command("list")
@HOME_OPTION
@JSON_OPTION
def list_(home: Path, as_json: bool) -> None:
    """List every rollout at this site, newest first."""
    from sqlmodel import Session

    from airlock.spoke.rollout._admin import list_rollouts

    with closing_home(SpokeHome(home)) as spoke_home, Session(spoke_home.engine) as session:
        rows = list_rollouts(session)
    if as_json:
        emit_json(rows, sort_keys=False)
        return
    table = FittedTable(title="rollouts")
    for column in ("id", "model", "version", "from", "state", "ring", "successes", "failures"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["id"],
            row["model"],
            row["version"],
            row["from_version"] or "-",
            _state(row),
            f"{row['ring_index'] + 1}/{row['rings']} {row['ring']}",
            f"{row['consecutive_successes']}/{row['needed_successes']}",
            f"{row['failures']} (limit {row['failure_limit']})",
        )
    Console().print(table)


def _state(row: dict[str, Any]) -> str:
    if row["state"] == "paused":
        return f"paused (from {row['paused_from']})"
    if row["awaiting_promotion"]:
        return "ring: awaiting promotion"
    return str(row["state"])


@rollout.command("show", short_help="Show rings, counters, last analysis, history.")
@HOME_OPTION
@click.argument("rollout_id", metavar="ID")
@JSON_OPTION
def show(home: Path, rollout_id: str, as_json: bool) -> None:
    """Show one rollout: rings and their nodes, counters, last analysis, history."""
    from sqlmodel import Session

    from airlock.spoke.rollout._admin import show_rollout
    from airlock.spoke.rollout._rings import stale_after_seconds

    with closing_home(SpokeHome(home)) as spoke_home, Session(spoke_home.engine) as session:
        stale_after = stale_after_seconds(spoke_home.config)
        info = show_rollout(session, rollout_id, SystemClock().now(), stale_after)
    if as_json:
        emit_json(info, sort_keys=False)
        return
    _print_show(Console(), info)


def _print_show(console: Console, info: dict[str, Any]) -> None:
    head = FittedTable(title=f"rollout {info['id']}", show_header=False)
    head.add_column("what")
    head.add_column("value")
    head.add_row("model", f"{info['model']}@{info['version']} (from {info['from_version'] or '-'})")
    head.add_row("state", _state(info))
    if info["reason"]:
        head.add_row("reason", escape(info["reason"]))
    head.add_row("current ring", f"{info['ring_index'] + 1} of {info['rings']}: {info['ring']}")
    head.add_row(
        "consecutive successes", f"{info['consecutive_successes']} of {info['needed_successes']}"
    )
    head.add_row("failures", f"{info['failures']} (limit {info['failure_limit']})")
    head.add_row("analysis interval", f"{info['interval_seconds']} s")
    head.add_row("stable version", info["stable_version"] or "-")
    head.add_row("enrolled nodes", str(info["enrolled_nodes"]))
    if info["stale_nodes"]:
        stale = ", ".join(f"{node} (last {when})" for node, when in info["stale_nodes"].items())
        head.add_row("nodes not seen lately (left out of rings)", escape(stale))
    if info["waiting"]:
        head.add_row("waiting for dependencies", escape(json.dumps(info["waiting"])))
    wait = info["waiting_for"]
    if wait and info["state"] == "ring":
        head.add_row("waiting for", escape(f"{wait['for']}: {wait['reason']}"))
    console.print(head)
    rings = FittedTable(title="rings")
    for column in ("#", "ring", "nodes", "node count", "bake", "traffic", "approval", ""):
        rings.add_column(column)
    for index, ring in enumerate(info["ring_list"]):
        traffic = ring["traffic"]
        if traffic == "split":
            traffic += f" {ring['split_percent']}%"
        rings.add_row(
            str(index + 1),
            ring["name"],
            str(ring["nodes"]),
            str(ring["node_count"]),
            f"{ring['bake_seconds']} s",
            traffic,
            ring["approval"],
            "◀ current" if ring["current"] else "",
        )
    console.print(rings)
    last = info["last_analysis"]
    if last:
        figures = FittedTable(
            title=f"last analysis ({last['since']} → {last['until']}): {last['outcome']}"
        )
        for column in ("cohort", "version", "requests", "errors", "error rate", "p99 ms", "nodes"):
            figures.add_column(column)
        for name in ("canary", "stable"):
            cohort = last[name]
            figures.add_row(
                name,
                str(cohort["version"] or "-"),
                str(cohort["requests"]),
                str(cohort["errors"]),
                _num(cohort["error_rate"]),
                _num(cohort["p99_ms"]),
                str(cohort["nodes"]),
            )
        console.print(figures)
        for line in [*last["breaches"], *last["notes"]]:
            console.print(f"  {escape(line)}")
    history = FittedTable(title="history")
    for column in ("time", "event", "details"):
        history.add_column(column)
    for event in info["events"]:
        history.add_row(event["time"], event["kind"], escape(_brief(event["details"])))
    console.print(history)


def _num(value: Any) -> str:
    return "-" if value is None else str(value)


def _brief(details: dict[str, Any]) -> str:
    """A one-line summary of an event's details for the history table."""
    if "outcome" in details:
        canary, stable = details["canary"], details["stable"]
        text = (
            f"canary {canary['requests']} req, error rate {_num(canary['error_rate'])}, "
            f"p99 {_num(canary['p99_ms'])} ms; stable p99 {_num(stable['p99_ms'])} ms"
        )
        if details.get("p99_ratio") is not None:
            text += f" (ratio {details['p99_ratio']})"
        extra = details.get("breaches") or details.get("notes") or []
        return "; ".join([text, *extra])
    shown = {k: (v[:12] + "…" if k == "plan_sha256" else v) for k, v in details.items()}
    return ", ".join(f"{k}={v}" for k, v in shown.items())


def _run_action(
    home: Path, as_json: bool, verb: str, call: Callable[[SpokeHome], dict[str, Any]]
) -> None:
    with closing_home(SpokeHome(home)) as spoke_home:
        result = call(spoke_home)
    if as_json:
        emit_json(result, sort_keys=False)
        return
    Console(highlight=False).print(
        f"[green]{verb}[/green] rollout {result['id']}: now {_state(result)} "
        f"(ring {result['ring_index'] + 1} of {result['rings']}: {result['ring']})"
    )


@rollout.command("pause", short_help="Pause a rollout; nodes keep what they have.")
@HOME_OPTION
@click.argument("rollout_id", metavar="ID")
@click.option("--reason", required=True, help="Why (recorded in the audit log).")
@OPERATOR_OPTION
@JSON_OPTION
def pause(home: Path, rollout_id: str, reason: str, operator: str | None, as_json: bool) -> None:
    """Pause a rollout: the engine stops moving it; nodes keep what they have."""
    from airlock.spoke.rollout._admin import pause as pause_rollout

    who, now = principal_of(operator), SystemClock().now()
    _run_action(home, as_json, "paused", lambda h: pause_rollout(h, rollout_id, reason, who, now))


@rollout.command("resume", short_help="Resume a paused rollout where it was.")
@HOME_OPTION
@click.argument("rollout_id", metavar="ID")
@OPERATOR_OPTION
@JSON_OPTION
def resume(home: Path, rollout_id: str, operator: str | None, as_json: bool) -> None:
    """Resume a paused rollout where it was (the pause does not count as bake time)."""
    from airlock.spoke.rollout._admin import resume as resume_rollout

    who, now = principal_of(operator), SystemClock().now()
    _run_action(home, as_json, "resumed", lambda h: resume_rollout(h, rollout_id, who, now))


@rollout.command("abort", short_help="Abort a rollout: every node back to stable.")
@HOME_OPTION
@click.argument("rollout_id", metavar="ID")
@click.option("--reason", required=True, help="Why (recorded in the audit log).")
@OPERATOR_OPTION
@JSON_OPTION
def abort(home: Path, rollout_id: str, reason: str, operator: str | None, as_json: bool) -> None:
    """Abort a rollout for good: every node goes back to the stable version."""
    from airlock.spoke.rollout._admin import abort as abort_rollout

    who, now = principal_of(operator), SystemClock().now()
    _run_action(home, as_json, "aborted", lambda h: abort_rollout(h, rollout_id, reason, who, now))


@rollout.command("promote", short_help="Promote a healthy ring that awaits approval.")
@HOME_OPTION
@click.argument("rollout_id", metavar="ID")
@OPERATOR_OPTION
@JSON_OPTION
def promote(home: Path, rollout_id: str, operator: str | None, as_json: bool) -> None:
    """Promote a healthy, baked ring that waits for approval to the next ring."""
    from airlock.spoke.rollout._admin import promote as promote_rollout

    who, now = principal_of(operator), SystemClock().now()
    _run_action(home, as_json, "promoted", lambda h: promote_rollout(h, rollout_id, who, now))
