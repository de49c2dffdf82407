"""``airlock audit query`` and ``airlock audit report``: auditors' questions to the log.

Both commands only read. ``query`` streams matching entries as a table, JSON
lines or CSV; ``report`` verifies the whole log and writes a self-contained
HTML report for a time range or a change request (exit 10 when the log does
not verify: the report is still written, and says so). :mod:`._audit` registers
both on the ``audit`` group.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from airlock.bundles.audit._log import AuditRecord
from airlock.bundles.audit._query import (
    FORMATS,
    AuditQuery,
    iter_entries,
    parse_time,
    write_csv,
    write_jsonl,
    write_table,
)
from airlock.bundles.audit._report import check_log, log_snapshot, render_report
from airlock.bundles.cli._audit_options import (
    KEPT_CHECKPOINTS_OPTION,
    LOG_HOME_OPTION,
    TRUSTED_KEY_OPTION,
    checkpoint_keys,
    read_text,
    time_options,
)
from airlock.bundles.cli._toolkit import emit_json, home_database, json_option
from airlock.bundles.config import load_config
from airlock.bundles.errors import UsageError, VerificationError

TABLE_DEFAULT_LIMIT = 1000
"""Rows a table shows without ``--limit`` (a table of a million rows helps nobody)."""

FILTER_OPTIONS: list[tuple[str, str, str]] = [
    ("--principal", "principal", "Who acted (user, service, node:ID)."),
    ("--action", "action", "What was done, e.g. spoke.import or spoke.rollout.* (prefix)."),
    ("--outcome", "outcome", "success, failure, refused or unchanged."),
    ("--site", "site", "Site id."),
    ("--node", "node", "Node id."),
    ("--model", "model", "Model name."),
    ("--version", "version", "Model version."),
    ("--bundle", "bundle_id", "Bundle id."),
    ("--rollout", "rollout_id", "Rollout id."),
    ("--change-request", "change_request", "Change request number ('' for none)."),
    ("--object", "object", "The object field as recorded (e.g. a key id or file)."),
]


def _filter_options(func: Callable[..., Any]) -> Callable[..., Any]:
    for flag, name, text in reversed(FILTER_OPTIONS):
        func = click.option(
            flag, name, multiple=True, metavar="VALUE", help=text + " Repeatable; * = prefix."
        )(func)
    return time_options(func)


def build_query(
    since: str | None, until: str | None, filters: dict[str, Any], **extra: Any
) -> AuditQuery:
    """An :class:`AuditQuery` from command-line text (raises UsageError on bad input)."""
    return AuditQuery(
        since=parse_time(since) if since else None,
        until=parse_time(until, end_of_day=True) if until else None,
        **filters,
        **extra,
    )


@click.command("query")
@LOG_HOME_OPTION
@_filter_options
@click.option(
    "--format",
    "output_format",
    default="table",
    metavar="FORMAT",
    help=f"Output: {', '.join(FORMATS)} (default table).",
)
@json_option(help="Same as --format jsonl.")
@click.option("--limit", type=int, help=f"At most N entries (table default {TABLE_DEFAULT_LIMIT}).")
@click.option("--offset", type=int, default=0, show_default=True, help="Skip N entries first.")
@click.option("--newest-first", is_flag=True, help="Newest entries first.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file instead of standard output.",
)
def query_command(
    home: Path,
    since: str | None,
    until: str | None,
    output_format: str,
    as_json: bool,
    limit: int | None,
    offset: int,
    newest_first: bool,
    out: Path | None,
    **filters: tuple[str, ...],
) -> None:
    """Find who did what, when, to which model and node, with what outcome, under which change.

    Filters combine with AND; a repeated filter matches any of its values.
    Read-only; does not verify the log (use `airlock audit verify`).
    """
    output_format = "jsonl" if as_json else output_format.lower()
    if output_format not in FORMATS:
        raise UsageError(
            f"unknown output format {output_format!r}", hint=f"use one of: {', '.join(FORMATS)}"
        )
    if output_format == "table" and limit is None:
        limit = TABLE_DEFAULT_LIMIT
    query = build_query(
        since, until, filters, limit=limit, offset=offset, newest_first=newest_first
    )
    with home_database(load_config(home), AuditRecord) as engine:
        _write_entries(iter_entries(engine, query), output_format, limit, out)


def _write_entries(
    entries: Iterator[dict[str, Any]], output_format: str, limit: int | None, out: Path | None
) -> None:
    if output_format == "table":
        with contextlib.ExitStack() as stack:
            file = stack.enter_context(out.open("w", encoding="utf-8")) if out else None
            shown = write_table(entries, Console(file=file, width=200 if file else None))
        if shown == limit:
            click.echo(f"(first {shown} entries; --limit N or --format jsonl for more)", err=True)
        return
    writer = write_jsonl if output_format == "jsonl" else write_csv
    if out is None:
        writer(entries, sys.stdout)
        return
    with out.open("w", encoding="utf-8", newline="") as handle:
        count = writer(entries, handle)
    click.echo(f"{count} entries written to {out}", err=True)


@click.command("report")
@LOG_HOME_OPTION
@time_options
@click.option(
    "--change-request",
    "change_requests",
    multiple=True,
    metavar="CHG",
    help="Entries recorded under this change request. Repeatable.",
)
@TRUSTED_KEY_OPTION
@KEPT_CHECKPOINTS_OPTION
@click.option("--title", help="Heading of the report (default from the filters).")
@click.option("--max-rows", type=int, help="List at most N entries (all are counted).")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The HTML file to write.",
)
@json_option(help="Print the summary and status as JSON.")
def report_command(
    home: Path,
    since: str | None,
    until: str | None,
    change_requests: tuple[str, ...],
    key_path: Path | None,
    notes: tuple[Path, ...],
    title: str | None,
    max_rows: int | None,
    out: Path,
    as_json: bool,
) -> None:
    """Write an HTML report for a time range or a change request.

    Verifies the whole log first and shows the result in the report; exits 10
    (after writing the report) when the log does not verify.
    """
    if max_rows is not None and max_rows < 0:
        raise UsageError("--max-rows cannot be negative")
    query = build_query(since, until, {"change_request": change_requests})
    keys = checkpoint_keys(home, key_path)
    external = [read_text(note, "checkpoint") for note in notes]
    heading = title or _default_title(since, until, change_requests)
    with home_database(load_config(home), AuditRecord) as engine:
        query = replace(query, max_seq=log_snapshot(engine))
        status = check_log(engine, keys, external=external)
        summary = render_report(
            engine,
            query,
            status,
            out,
            title=heading,
            source=str(home),
            generated_at=dt.datetime.now(dt.UTC),
            max_rows=max_rows,
        )
    if as_json:
        emit_json(
            {
                "report": str(out),
                "entries": summary.total,
                "first_time": summary.first_time,
                "last_time": summary.last_time,
                "by_outcome": dict(summary.by_outcome),
                "log": status.to_dict(),
            },
            sort_keys=False,
        )
    else:
        click.echo(f"report of {summary.total} entries written to {out}")
    if not status.ok:
        where = f" at entry {status.first_bad_seq}" if status.first_bad_seq else ""
        raise VerificationError(
            f"audit log check failed{where} ({status.kind}): {status.problem}; "
            f"the report {out} says so",
            hint="the log or its checkpoints were altered after they were written; "
            "preserve the database and compare with checkpoints kept elsewhere",
        )


def _default_title(since: str | None, until: str | None, changes: tuple[str, ...]) -> str:
    parts = []
    if changes:
        parts.append("Change " + ", ".join(changes))
    if since or until:
        parts.append(f"{since or 'start'} to {until or 'now'}")
    return " · ".join(parts) or "Whole audit log"
