"""``airlock hub report fleet``: how each model version does across the sites.

Read-only: it needs no passphrase (a drift reference computed for the first
time is cached in the database, under the home lock so it never races an
import). See :mod:`airlock.hub.fleet._report` for what the figures mean; this
module shows them as rich tables, JSON, or one HTML file with inline SVG
charts (``templates/fleet_report.html.j2``: autoescaped, no scripts, no
external assets — auditors open it offline).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import jinja2
from rich.console import Console
from sqlmodel import Session

from airlock.bundles.atomic import atomic_writer
from airlock.bundles.audit import parse_time
from airlock.bundles.cli import emit_json, print_table
from airlock.bundles.clock import parse_utc, utc_iso
from airlock.bundles.errors import SecretError, UsageError
from airlock.bundles.metrics import CONFIDENCE_BUCKETS, confidence_bucket
from airlock.hub.cli._options import HOME_OPTION, JSON_OPTION
from airlock.hub.context._context import HubContext, open_hub
from airlock.hub.fleet._report import QUANTILES, FleetReport, fleet_report


def _no_secret(name: str) -> str:
    raise SecretError(
        f"the fleet report reads only and does not use the hub's {name}",
        hint="report this as a bug: `airlock hub report fleet` must not need a secret",
    )


@click.group("report")
def report() -> None:
    """Reports over what sites sent back (read-only, no passphrase)."""


@report.command("fleet")
@HOME_OPTION
@click.option("--model", metavar="NAME", help="Only this model family.")
@click.option(
    "--since",
    metavar="WHEN",
    help="Windows ending after this UTC date or time (ISO 8601); default: the lookback "
    "([fleet] lookback_days, 7).",
)
@click.option(
    "--html",
    "html_out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write a self-contained HTML report with charts to this file.",
)
@JSON_OPTION
def fleet(
    home: Path, model: str | None, since: str | None, html_out: Path | None, as_json: bool
) -> None:
    """Per model version across sites and rings: volume, errors, latency, drift.

    Drift is the Jensen–Shannon distance between the fleet's predictions and
    the version's answers on its signed validation set. Limits come from the
    hub's [fleet] settings (drift_limit, error_rate_limit, min_requests,
    lookback_days; env AIRLOCK_FLEET_*).
    """
    start = parse_time(since) if since else None
    if html_out is not None and not html_out.parent.is_dir():
        raise UsageError(
            f"cannot write {html_out}: {html_out.parent} is not a directory",
            hint="create the directory first, or pass another --html path",
        )
    opened = open_hub(home, _no_secret)
    try:
        with _home_lock(opened), Session(opened.engine) as session:
            result = fleet_report(session, opened, model=model, since=start, now=opened.clock.now())
            session.commit()
    finally:
        opened.close()
    if html_out is not None:
        render_html(result, html_out, source=str(home))
    if as_json:
        emit_json(result.to_dict() | ({"html": str(html_out)} if html_out else {}))
        return
    _print(result)
    if html_out is not None:
        Console().print(f"HTML report written to {html_out}")


@contextlib.contextmanager
def _home_lock(opened: HubContext) -> Iterator[None]:
    """The hub home's lock (the report caches drift references), as an Airlock error."""
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(opened.home.lock())
        except OSError as exc:
            raise UsageError(
                f"cannot lock the hub home {opened.home.root} ({exc.strerror or exc})",
                hint="the fleet report caches drift references in the hub's database: run it "
                "on a writable hub home (or a writable copy)",
            ) from None
        yield


def _quantiles(latency: dict[str, float | None]) -> str:
    """``p50/p95/p99`` in milliseconds, one decimal each."""
    return "/".join(_cell(latency[q], "{:.1f}") for q in QUANTILES)


def _cell(value: float | None, fmt: str) -> str:
    return "-" if value is None else fmt.format(value)


def _print(result: FleetReport) -> None:
    limits = result.limits
    console = Console(highlight=False)
    console.print(
        f"fleet figures of windows ending after {result.since}; limits: drift "
        f"{limits.drift_limit}, error rate {limits.error_rate_limit:.2%}, "
        f"at least {limits.min_requests} requests for a verdict"
    )
    if not result.versions:
        console.print("no figures from any site in this period")
    rows: list[list[str]] = []
    for v in result.versions:
        reference: dict[str, Any] = v.reference or {}
        rows.append(
            [
                v.ref,
                v.status,
                str(len(v.sites)),
                str(v.requests),
                _cell(v.error_rate, "{:.2%}"),
                _quantiles(v.latency),
                _cell(v.drift, "{:.3f}")
                + (f" ({reference['source']})" if reference else " (no reference)"),
                ", ".join(a["kind"] for a in v.alerts) or "-",
            ]
        )
    if rows:
        columns = ["version", "status", "sites", "requests", "error rate"]
        columns += ["/".join(QUANTILES) + " ms", "drift", "open alerts"]
        print_table("model versions", columns, rows)
    groups = [
        [
            v.ref,
            g.site_id,
            g.ring,
            str(g.nodes),
            str(g.requests),
            _cell(g.error_rate, "{:.2%}"),
            _quantiles(g.latency),
        ]
        for v in result.versions
        for g in v.groups
    ]
    if groups:
        columns = ["version", "site", "ring", "nodes", "requests", "error rate"]
        print_table("by site and ring", [*columns, "/".join(QUANTILES) + " ms"], groups)
    sites = [
        [
            s.site_id,
            str(s.last_sequence) if s.last_sequence else "never",
            s.window_end or "-",
            ", ".join(map(str, s.missing_sequences)) or "-",
            str(s.checkpoint_size) if s.last_sequence else "-",
        ]
        for s in result.sites
    ]
    print_table(
        "sites", ["site", "last import", "window end", "missing", "witnessed log size"], sites
    )


PALETTE = ("#0969da", "#cf222e", "#1a7f37", "#8250df", "#bc4c00", "#1b7c83", "#9a6700")


def _volume_series(report: FleetReport) -> dict[str, Any]:
    """Request volume over time per version, as points in a 0..1 × 0..1 box."""
    points = [
        (v.ref, parse_utc(p["window_end"]).timestamp(), p["requests"])
        for v in report.versions
        for p in v.timeline
    ]
    if not points:
        return {"series": [], "peak": 0, "first": "", "last": ""}
    first, last = min(t for _, t, _ in points), max(t for _, t, _ in points)
    peak = max(r for _, _, r in points) or 1
    span = (last - first) or 1.0
    series = []
    for index, version in enumerate(report.versions):
        series.append(
            {
                "ref": version.ref,
                "color": PALETTE[index % len(PALETTE)],
                "points": [
                    ((t - first) / span if last > first else 0.5, r / peak)
                    for ref, t, r in points
                    if ref == version.ref
                ],
            }
        )
    return {
        "series": series,
        "peak": peak,
        "first": utc_iso(dt.datetime.fromtimestamp(first, dt.UTC)),
        "last": utc_iso(dt.datetime.fromtimestamp(last, dt.UTC)),
    }


def render_html(report: FleetReport, out: Path, *, source: str) -> None:
    """Writes the report as one self-contained HTML file (atomically).

    Args:
        report: The report (:func:`~airlock.hub.fleet._report.fleet_report`).
        out: The HTML file to write.
        source: Where the figures came from (the hub home), for the header.
    """
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("airlock.hub", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    page = env.get_template("fleet_report.html.j2").render(
        report=report,
        source=source,
        volume=_volume_series(report),
        colors={v.ref: PALETTE[i % len(PALETTE)] for i, v in enumerate(report.versions)},
        quantiles=list(QUANTILES),
        confidence_buckets=[
            confidence_bucket(i / CONFIDENCE_BUCKETS) for i in range(CONFIDENCE_BUCKETS)
        ],
    )
    with atomic_writer(out) as handle:
        handle.write(page.encode("utf-8"))
