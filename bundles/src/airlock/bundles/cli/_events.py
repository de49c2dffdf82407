"""``airlock events``: deliver and inspect the CloudEvents outbox of a hub or spoke home.

Hub and spoke deliver on their own (after each hub operation; every few
seconds in ``airlock spoke serve``); these commands are for a cron job, for a
webhook that was down, and for looking at what is still pending. Guide:
``docs/integrator.md``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from airlock.bundles.audit._log import AuditLog, AuditRecord, failure_details, failure_outcome
from airlock.bundles.cli._tables import print_table
from airlock.bundles.cli._toolkit import emit_json, home_database, home_option, json_option
from airlock.bundles.clock import SystemClock
from airlock.bundles.config import HomeConfig, load_config
from airlock.bundles.errors import MediaError
from airlock.bundles.events._delivery import (
    DELIVER_ACTION,
    deliver,
    load_settings,
    pending_filter,
    record_delivery,
)
from airlock.bundles.events._outbox import OutboxEvent

HOME_OPTION = home_option(
    envvar="AIRLOCK_HOME", help="Hub or spoke home directory (env AIRLOCK_HOME)."
)


@contextmanager
def _outbox(home: Path) -> Iterator[tuple[HomeConfig, Engine, AuditLog]]:
    """The home's configuration, its database (disposed afterwards) and its audit log."""
    config = load_config(home)
    with home_database(config, AuditRecord) as engine:
        site = str(config.get("site_id", "") or "") if config.role == "spoke" else ""
        yield config, engine, AuditLog(engine, component=config.role or "airlock", site=site)


@click.group()
def events() -> None:
    """CloudEvents of every state change: the outbox file and the webhook.

    \b
      airlock events deliver --home H          write pending events, POST to the webhook
      airlock events list --home H --pending   what has not reached every destination
    """


@events.command("deliver")
@HOME_OPTION
@json_option()
def deliver_command(home: Path, as_json: bool) -> None:
    """Write pending events to HOME/events/outbox.jsonl and POST them to the webhook.

    Exits 0 when nothing failed; 5 when the webhook refused or could not be
    reached (the events stay pending and are retried with backoff).
    """
    with _outbox(home) as (config, engine, audit):
        now = SystemClock().now()
        try:
            report = deliver(engine, home, config, now)
        except Exception as exc:
            audit.record(
                DELIVER_ACTION,
                failure_outcome(exc),
                object="outbox",
                details=failure_details(exc),
                when=now,
            )
            raise
        record_delivery(audit, report, now)
    if as_json:
        emit_json(report.to_dict(), sort_keys=False)
    else:
        target = f" and {report.webhook}" if report.webhook else ""
        click.echo(
            f"{report.written} written to events/outbox.jsonl, {report.delivered} delivered"
            f"{target}, {report.failed} failed, {report.pending} pending"
        )
    if report.failed:
        raise MediaError(
            f"{report.failed} event(s) could not be delivered to {report.webhook}: "
            + "; ".join(report.errors),
            hint="check the receiver; the events stay pending and are retried with backoff "
            "(`airlock events list --pending`)",
        )


def _status(row: OutboxEvent, webhook: bool) -> str:
    if not row.written_at:
        return "pending"
    if not webhook:
        return "written"
    return "delivered" if row.delivered_at else "retrying" if row.attempts else "written"


@events.command("list")
@HOME_OPTION
@click.option("--pending", is_flag=True, help="Only events not yet at every destination.")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="Show the most recent N events.",
)
@json_option()
def list_command(home: Path, pending: bool, limit: int, as_json: bool) -> None:
    """List outbox events, oldest first, with where each has reached."""
    with _outbox(home) as (config, engine, _audit), Session(engine) as session:
        webhook = load_settings(config).webhook is not None
        query = select(OutboxEvent).order_by(col(OutboxEvent.seq).desc()).limit(limit)
        if pending:
            query = query.where(pending_filter(webhook))
        rows = list(reversed(session.exec(query).all()))
    items: list[dict[str, Any]] = [
        {
            "seq": row.seq,
            "id": row.event_id,
            "type": row.type,
            "subject": row.subject,
            "time": row.time,
            "status": _status(row, webhook),
            "written_at": row.written_at,
            "delivered_at": row.delivered_at,
            "attempts": row.attempts,
            "next_attempt_at": row.next_attempt_at,
            "last_error": row.last_error,
            "event": row.body,
        }
        for row in rows
    ]
    if as_json:
        emit_json(items, sort_keys=False)
        return
    columns = ["seq", "time", "type", "subject", "status", "attempts", "last error"]
    rows_shown = [
        [
            str(item["seq"]),
            item["time"],
            escape(item["type"]),
            escape(item["subject"]),
            item["status"],
            str(item["attempts"]),
            escape(item["last_error"]),
        ]
        for item in items
    ]
    print_table(None, columns, rows_shown)
