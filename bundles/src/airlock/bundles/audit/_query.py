"""Auditors' queries over the audit log: filters in, a stream of entries out.

An :class:`AuditQuery` names what to look for (a UTC time range, who, what,
with what outcome, where, to which object, under which change request); it
turns into one SQL ``WHERE`` over the indexed columns of
:class:`~airlock.bundles.audit._log.AuditRecord`. :func:`iter_entries` streams the
matching entries in ``seq`` order through one streaming cursor (the database
sorts once), so a million-entry answer never sits in memory. The writers turn the stream
into JSON lines, CSV (``details`` as a JSON text column) or a rich table.

Each filter takes one or more values (any of them matches); a value ending in
``*`` matches by prefix (``spoke.rollout.*``, ``node:*``, ``CHG*``), and the
empty string matches entries without that field (e.g. no change request).
Queries only read: they never verify the log (``audit verify`` and the report do).
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields
from typing import IO, Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table as RichTable
from sqlalchemy import Column, ColumnElement, Engine, Table, and_, or_, select, true

from airlock.bundles.audit._log import OUTCOMES, AuditRecord
from airlock.bundles.errors import UsageError

AUDIT_TABLE: Table = AuditRecord.__table__  # type: ignore[attr-defined]

COLUMNS = (
    "seq",
    "event_id",
    "time",
    "component",
    "principal",
    "action",
    "object",
    "outcome",
    "site",
    "node",
    "host",
    "change_request",
    "model",
    "version",
    "bundle_id",
    "rollout_id",
    "reason",
    "details",
    "leaf_hash",
    "chain_hash",
)
"""Every column of an entry, in the order of the JSON lines and CSV output."""

TEXT_FILTERS = (
    "principal",
    "action",
    "outcome",
    "site",
    "node",
    "model",
    "version",
    "bundle_id",
    "rollout_id",
    "change_request",
    "object",
)
"""The filters that match a column of the same name (exact, or prefix with ``*``)."""

FORMATS = ("table", "jsonl", "csv")


def parse_time(text: str, *, end_of_day: bool = False) -> dt.datetime:
    """Parses a time bound given on the command line, in UTC.

    Accepts ISO 8601 dates (``2025-03-01``) and date-times (``2025-03-01T09:30``,
    ``…Z``, ``…+02:00``); a date-time without an offset is taken as UTC.

    Args:
        text: The bound as typed.
        end_of_day: For a date alone, return the start of the *next* day (an
            exclusive upper bound covering the whole day); otherwise midnight.

    Raises:
        UsageError: the text is not an ISO 8601 date or date-time.
    """
    value = text.strip()
    try:
        if len(value) == 10:
            day = dt.date.fromisoformat(value)
            start = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
            return start + dt.timedelta(days=1) if end_of_day else start
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(
            f"{text!r} is not a date or time",
            hint="give an ISO 8601 UTC date or time, e.g. 2025-03-01 or 2025-03-01T09:30:00Z",
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC)


def _as_tuple(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)


@dataclass(frozen=True)
class AuditQuery:
    """What to look for in the audit log. Filters combine with AND; values within one with OR.

    Attributes:
        since: Entries at or after this instant (inclusive).
        until: Entries strictly before this instant (exclusive).
        principal, action, outcome, site, node, model, version, bundle_id,
            rollout_id, change_request, object: Accepted values of that column;
            a value ending in ``*`` matches by prefix.
        limit: At most this many entries (None: all).
        offset: Skip this many matching entries first.
        newest_first: Order by ``seq`` descending instead of ascending.
        max_seq: Only entries numbered up to this (a stable snapshot of a log
            that is still being appended to).
    """

    since: dt.datetime | None = None
    until: dt.datetime | None = None
    principal: tuple[str, ...] = ()
    action: tuple[str, ...] = ()
    outcome: tuple[str, ...] = ()
    site: tuple[str, ...] = ()
    node: tuple[str, ...] = ()
    model: tuple[str, ...] = ()
    version: tuple[str, ...] = ()
    bundle_id: tuple[str, ...] = ()
    rollout_id: tuple[str, ...] = ()
    change_request: tuple[str, ...] = ()
    object: tuple[str, ...] = ()
    limit: int | None = None
    offset: int = 0
    newest_first: bool = field(default=False)
    max_seq: int | None = None

    def __post_init__(self) -> None:
        for name in TEXT_FILTERS:  # a bare string is one value, not its characters
            object.__setattr__(self, name, _as_tuple(getattr(self, name)))
        for bound in ("since", "until"):
            value = getattr(self, bound)
            if value is not None and value.tzinfo is None:
                raise UsageError(f"--{bound} must be a UTC time, not a naive one")
        if self.since and self.until and self.since >= self.until:
            raise UsageError(
                f"--since {self.since.isoformat()} is not before --until {self.until.isoformat()}",
                hint="give a time range whose start is before its end",
            )
        unknown = [o for o in self.outcome if not o.endswith("*") and o not in OUTCOMES]
        if unknown:
            raise UsageError(
                f"unknown outcome {unknown[0]!r}", hint=f"use one of: {', '.join(OUTCOMES)}"
            )
        if (self.limit is not None and self.limit < 0) or self.offset < 0:
            raise UsageError("--limit and --offset cannot be negative")

    def describe(self) -> dict[str, Any]:
        """The filters in force, JSON-ready (for report headers)."""
        described: dict[str, Any] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if value in (None, (), 0, False) or item.name == "max_seq":
                continue
            described[item.name] = value.isoformat() if isinstance(value, dt.datetime) else value
        return described

    def where(self, engine: Engine) -> list[ColumnElement[bool]]:
        """The SQL conditions of this query over :data:`AUDIT_TABLE`."""
        conditions: list[ColumnElement[bool]] = []
        time_column = AUDIT_TABLE.c.time
        # Times are stored as datetime.isoformat() in UTC; the same format compares in order.
        if self.since is not None:
            conditions.append(time_column >= self.since.astimezone(dt.UTC).isoformat())
        if self.until is not None:
            conditions.append(time_column < self.until.astimezone(dt.UTC).isoformat())
        if self.max_seq is not None:
            conditions.append(AUDIT_TABLE.c.seq <= self.max_seq)
        for name in TEXT_FILTERS:
            values: tuple[str, ...] = getattr(self, name)
            if values:
                column = AUDIT_TABLE.c[name]
                conditions.append(or_(*(_match(engine, column, v) for v in values)))
        return conditions


def _match(engine: Engine, column: Column[Any], value: str) -> ColumnElement[bool]:
    if not value.endswith("*"):
        return column == value
    prefix = value.rstrip("*")
    if not prefix:
        return true()  # "*": anything
    if engine.dialect.name == "sqlite":  # binary collation: a range the index can use
        upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        return and_(column >= prefix, column < upper)
    return column.startswith(prefix, autoescape=True)


def _row_to_entry(row: Any) -> dict[str, Any]:
    entry = dict(zip(COLUMNS, row, strict=True))
    entry["details"] = json.loads(entry["details"] or "{}")
    return entry


def iter_entries(
    engine: Engine, query: AuditQuery, *, batch: int = 2000
) -> Iterator[dict[str, Any]]:
    """Streams the matching entries in ``seq`` order, fetching ``batch`` rows at a time.

    One statement, read through a streaming cursor (a server-side cursor on
    PostgreSQL), so the database sorts once and memory stays flat however many
    entries match. Each entry is a dict of :data:`COLUMNS` with ``details``
    parsed from JSON. Nothing is verified: a tampered log still answers (see
    ``audit verify``).
    """
    seq = AUDIT_TABLE.c.seq
    statement = (
        select(*(AUDIT_TABLE.c[name] for name in COLUMNS))
        .where(*query.where(engine))
        .order_by(seq.desc() if query.newest_first else seq)
    )
    if query.limit is not None:
        statement = statement.limit(query.limit)
    if query.offset:
        statement = statement.offset(query.offset)
    with engine.connect() as connection:
        result = connection.execution_options(yield_per=batch).execute(statement)
        for row in result:
            yield _row_to_entry(row)


def write_jsonl(entries: Iterable[dict[str, Any]], out: IO[str]) -> int:
    """Writes one JSON object per line; returns the number of entries written."""
    count = 0
    for entry in entries:
        out.write(json.dumps(entry, ensure_ascii=False) + "\n")
        count += 1
    return count


def write_csv(entries: Iterable[dict[str, Any]], out: IO[str]) -> int:
    """Writes CSV with a header of :data:`COLUMNS`; ``details`` is a JSON text column."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    count = 0
    for entry in entries:
        row = dict(entry, details=json.dumps(entry["details"], sort_keys=True, ensure_ascii=False))
        writer.writerow([row[name] for name in COLUMNS])
        count += 1
    return count


def object_label(entry: dict[str, Any]) -> str:
    """What an entry acted on, for people: ``model@version``, else the object, bundle, rollout."""
    if entry.get("model"):
        model = entry["model"] + (f"@{entry['version']}" if entry.get("version") else "")
        return str(model)
    for key in ("object", "bundle_id", "rollout_id"):
        if entry.get(key):
            return str(entry[key])
    return ""


def write_table(entries: Iterable[dict[str, Any]], console: Console, *, title: str = "") -> int:
    """Prints the entries as a rich table (who, what, when, object, where, outcome, change).

    The reason column is shown on consoles at least 140 characters wide.
    """
    with_reason = console.width >= 140
    table = RichTable(title=title or None, box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("seq", justify="right", no_wrap=True)
    table.add_column("time (UTC)", no_wrap=True)
    for heading in ("principal", "action", "object", "where"):
        table.add_column(heading, overflow="fold")
    table.add_column("outcome", no_wrap=True)
    table.add_column("change", overflow="fold")
    if with_reason:
        table.add_column("reason", overflow="fold", max_width=40)
    colours = {"success": "green", "failure": "red", "refused": "yellow", "unchanged": "dim"}
    count = 0
    for entry in entries:
        where = "/".join(part for part in (entry["site"], entry["node"]) if part)
        outcome = entry["outcome"]
        cells = [
            str(entry["seq"]),
            entry["time"][:19].replace("T", " "),
            escape(entry["principal"]),
            escape(entry["action"]),
            escape(object_label(entry)),
            escape(where),
            f"[{colours.get(outcome, 'white')}]{escape(outcome)}[/]",
            escape(entry["change_request"]),
        ]
        table.add_row(*cells, *([escape(entry["reason"])] if with_reason else []))
        count += 1
    console.print(table)
    return count
