"""``airlock audit report``: a self-contained HTML report over part of the audit log.

A report covers the entries an :class:`~airlock.bundles.audit._query.AuditQuery`
selects (a time range, a change request, or any other filter) and shows:

* the verification status of the *whole* log, checked as the report is made,
  and what it was checked against;
* a summary: how many entries, their time span, counts by outcome, action and
  principal (SQL ``GROUP BY``, not Python loops);
* a timeline (entries per hour, day or month, by outcome, gaps included);
* every matching entry with its outcome, streamed from the database into the
  page (:meth:`jinja2.Template.generate`), so memory stays flat however long
  the report.

The page is one HTML file (jinja2 with autoescaping, inline CSS, no scripts or
external assets), written atomically. The entries are numbered up to the last
``seq`` seen when the report started, so entries appended meanwhile do not make
the summary and the listing disagree.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import jinja2
from securesystemslib.signer import Key
from sqlalchemy import Engine, func, select

from airlock.bundles.atomic import atomic_writer
from airlock.bundles.audit._log import OUTCOMES
from airlock.bundles.audit._log_verify import LogReport, verify_log
from airlock.bundles.audit._query import AUDIT_TABLE, AuditQuery, iter_entries, object_label

TOP = 50
"""Rows shown in each "by principal / by action" table; the rest are summed as "others"."""


def check_log(
    engine: Engine, keys: Mapping[str, Key] | None, *, external: Sequence[str] = ()
) -> LogReport:
    """Verifies the whole audit log: every entry, the Merkle tree, every signed checkpoint.

    The :class:`~airlock.bundles.audit._log_verify.LogReport` of :func:`verify_log`, with
    ``signatures_checked`` false when no key was given.

    Args:
        engine: The hub's or spoke's database.
        keys: Checkpoint public keys by note key name (None: roots are compared
            but signatures are not checked).
        external: Signed checkpoint notes kept outside the database.
    """
    report = verify_log(engine, keys, external=external)
    return replace(report, signatures_checked=report.signatures_checked and keys is not None)


@dataclass(frozen=True)
class TimelineBucket:
    """Entries in one period of the timeline, by outcome."""

    label: str
    total: int
    by_outcome: dict[str, int]


@dataclass(frozen=True)
class Summary:
    """Counts over the entries a report covers."""

    total: int
    first_time: str = ""
    last_time: str = ""
    first_seq: int | None = None
    last_seq: int | None = None
    by_outcome: list[tuple[str, int]] = field(default_factory=list)
    by_action: list[tuple[str, int]] = field(default_factory=list)
    by_principal: list[tuple[str, int]] = field(default_factory=list)
    timeline: list[TimelineBucket] = field(default_factory=list)
    period: str = "day"


def _counts(engine: Engine, query: AuditQuery, column: str, top: int) -> list[tuple[str, int]]:
    target = AUDIT_TABLE.c[column]
    count = func.count().label("n")
    statement = (
        select(target, count)
        .where(*query.where(engine))
        .group_by(target)
        .order_by(count.desc(), target)
    )
    with engine.connect() as connection:
        rows = [(str(name), int(n)) for name, n in connection.execute(statement)]
    if len(rows) > top:
        rest = sum(n for _, n in rows[top:])
        rows = [*rows[:top], (f"(others: {len(rows) - top})", rest)]
    return rows


PERIODS = {"hour": 13, "day": 10, "month": 7}
"""Timeline periods and the length of the ISO time prefix that names one."""


def _period_for(first: str, last: str) -> str:
    span = dt.datetime.fromisoformat(last) - dt.datetime.fromisoformat(first)
    if span <= dt.timedelta(days=2):
        return "hour"
    return "day" if span <= dt.timedelta(days=92) else "month"


def _labels(first: str, last: str, period: str) -> Iterator[str]:
    """Every period label from the first entry's to the last's (gaps included)."""
    size = PERIODS[period]
    start = dt.datetime.fromisoformat(first).astimezone(dt.UTC)
    end_label = last[:size]
    if period == "month":
        year, month = start.year, start.month
        while (label := f"{year:04d}-{month:02d}") <= end_label:
            yield label
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        return
    step = dt.timedelta(hours=1) if period == "hour" else dt.timedelta(days=1)
    current = start.replace(minute=0, second=0, microsecond=0)
    if period == "day":
        current = current.replace(hour=0)
    while (label := current.isoformat()[:size]) <= end_label:
        yield label
        current += step


def _timeline(
    engine: Engine, query: AuditQuery, first: str, last: str
) -> tuple[str, list[TimelineBucket]]:
    period = _period_for(first, last)
    bucket = func.substr(AUDIT_TABLE.c.time, 1, PERIODS[period]).label("bucket")
    statement = (
        select(bucket, AUDIT_TABLE.c.outcome, func.count())
        .where(*query.where(engine))
        .group_by(bucket, AUDIT_TABLE.c.outcome)
    )
    found: dict[str, dict[str, int]] = {}
    with engine.connect() as connection:
        for label, outcome, n in connection.execute(statement):
            found.setdefault(str(label), {})[str(outcome)] = int(n)
    buckets = [
        TimelineBucket(label, sum(found.get(label, {}).values()), found.get(label, {}))
        for label in _labels(first, last, period)
    ]
    return period, buckets


def summarize(engine: Engine, query: AuditQuery) -> Summary:
    """Counts, time span and timeline of the entries ``query`` selects (ignoring its limit)."""
    columns = AUDIT_TABLE.c
    statement = select(
        func.count(),
        func.min(columns.time),
        func.max(columns.time),
        func.min(columns.seq),
        func.max(columns.seq),
    ).where(*query.where(engine))
    with engine.connect() as connection:
        total, first, last, first_seq, last_seq = connection.execute(statement).one()
    if not total:
        return Summary(total=0)
    period, timeline = _timeline(engine, query, first, last)
    return Summary(
        total=int(total),
        first_time=first,
        last_time=last,
        first_seq=first_seq,
        last_seq=last_seq,
        by_outcome=_counts(engine, query, "outcome", len(OUTCOMES) + TOP),
        by_action=_counts(engine, query, "action", TOP),
        by_principal=_counts(engine, query, "principal", TOP),
        timeline=timeline,
        period=period,
    )


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("airlock.bundles", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["object_label"] = object_label
    return env


def log_snapshot(engine: Engine) -> int:
    """The highest ``seq`` in the log now (0 when empty)."""
    with engine.connect() as connection:
        return int(connection.execute(select(func.max(AUDIT_TABLE.c.seq))).scalar() or 0)


def render_report(
    engine: Engine,
    query: AuditQuery,
    status: LogReport,
    out: Path,
    *,
    title: str,
    source: str,
    generated_at: dt.datetime,
    max_rows: int | None = None,
) -> Summary:
    """Writes the HTML report of the entries ``query`` selects to ``out`` (atomically).

    Args:
        engine: The database of the hub or spoke.
        query: Which entries the report covers; its ``limit``/``offset`` are ignored.
        status: The verification status of the whole log (:func:`check_log`),
            taken after ``query.max_seq`` was fixed (:func:`log_snapshot`).
        out: The HTML file to write.
        title: The report's heading, e.g. "Change CHG0030001".
        source: Where the log came from (home directory), for the header.
        generated_at: When the report was made (UTC).
        max_rows: List at most this many entries (None: all); the summary still counts all.

    Returns:
        The summary shown in the report.
    """
    scoped = replace(
        query,
        limit=None,
        offset=0,
        newest_first=False,
        max_seq=query.max_seq or log_snapshot(engine),
    )
    summary = summarize(engine, scoped)
    shown = summary.total if max_rows is None else min(max_rows, summary.total)
    entries = itertools.islice(iter_entries(engine, scoped), shown)
    peak = max((bucket.total for bucket in summary.timeline), default=0)
    stream = (
        _environment()
        .get_template("audit_report.html.j2")
        .generate(
            title=title,
            source=source,
            generated_at=generated_at.astimezone(dt.UTC).isoformat(timespec="seconds"),
            filters=query.describe(),
            status=status,
            summary=summary,
            outcomes=OUTCOMES,
            peak=peak,
            entries=entries,
            shown=shown,
            snapshot=scoped.max_seq,
        )
    )
    with atomic_writer(out) as handle:
        for chunk in stream:
            handle.write(chunk.encode("utf-8"))
    return summary
