"""``airlock events``: deliver and inspect the CloudEvents outbox of a hub or spoke home.

Hub and spoke deliver on their own (after each hub operation; every few
seconds in ``airlock spoke serve``); these commands are for a cron job, for a
webhook that was down, and for looking at what is still pending. Guide:
``docs/integrator.md``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from airlock.bundles.audit import AuditLog, AuditRecord, failure_details, failure_outcome
from airlock.bundles.clock import SystemClock
from airlock.bundles.config import HomeConfig, load_config
from airlock.bundles.db import open_home_database
from airlock.bundles.errors import MediaError
from airlock.bundles.event_delivery import (
    DELIVER_ACTION,
    deliver,
    load_settings,
    pending_filter,
    record_delivery,
)
from airlock.bundles.events import OutboxEvent

HOME_OPTION = click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    envvar="AIRLOCK_HOME",
    help="Hub or spoke home directory (env AIRLOCK_HOME).",
)
JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")


def _open(home: Path) -> tuple[HomeConfig, Engine, AuditLog]:
    config = load_config(home)
    engine = open_home_database(config, AuditRecord)
    site = str(config.get("site_id", "") or "") if config.role == "spoke" else ""
    return config, engine, AuditLog(engine, component=config.role or "airlock", site=site)


@click.group()
def events() -> None:
    """CloudEvents of every state change: the outbox file and the webhook.

    \b
      airlock events deliver --home H          write pending events, POST to the webhook
      airlock events list --home H --pending   what has not reached every destination
    """


@events.command("deliver")
@HOME_OPTION
@JSON_OPTION
def deliver_command(home: Path, as_json: bool) -> None:
    """Write pending events to HOME/events/outbox.jsonl and POST them to the webhook.

    Exits 0 when nothing failed; 5 when the webhook refused or could not be
    reached (the events stay pending and are retried with backoff).
    """
    config, engine, audit = _open(home)
    now = SystemClock().now()
    try:
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
    finally:
        engine.dispose()
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
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
@JSON_OPTION
def list_command(home: Path, pending: bool, limit: int, as_json: bool) -> None:
    """List outbox events, oldest first, with where each has reached."""
    config, engine, _audit = _open(home)
    webhook = load_settings(config).webhook is not None
    try:
        with Session(engine) as session:
            query = select(OutboxEvent).order_by(col(OutboxEvent.seq).desc()).limit(limit)
            if pending:
                query = query.where(pending_filter(webhook))
            rows = list(reversed(session.exec(query).all()))
    finally:
        engine.dispose()
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
        click.echo(json.dumps(items, indent=2))
        return
    table = Table("seq", "time", "type", "subject", "status", "attempts", "last error")
    for item in items:
        table.add_row(
            str(item["seq"]),
            item["time"],
            escape(item["type"]),
            escape(item["subject"]),
            item["status"],
            str(item["attempts"]),
            escape(item["last_error"]),
        )
    Console().print(table)
