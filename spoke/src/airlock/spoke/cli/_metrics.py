"""``airlock spoke export-metrics``: send the site's anonymised figures back to the hub.

Guide: docs/site-admin.md. ``--dry-run`` shows exactly what would leave the
site (and needs no passphrase); the export itself is
:func:`airlock.spoke.metrics._export.export_metrics`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape

from airlock.bundles.cli import FittedTable, closing_home, emit_json
from airlock.bundles.clock import SystemClock
from airlock.bundles.metrics import LatencySketch, MetricsCell, MetricsPayload, MetricsTotal
from airlock.spoke.cli._options import HOME_OPTION, JSON_OPTION, open_home
from airlock.spoke.site._home import SpokeHome


@click.command("export-metrics", short_help="Export anonymised metrics for the hub.")
@HOME_OPTION
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="A new (or empty) directory for the metrics bundle; required unless --dry-run.",
)
@click.option("--dry-run", is_flag=True, help="Show exactly what would leave; write nothing.")
@click.option(
    "--epsilon",
    type=float,
    default=None,
    help="Add Laplace noise to every count with this ε budget [default: [metrics] epsilon].",
)
@click.option(
    "--k",
    "k",
    type=int,
    default=None,
    help="Suppress groups of fewer than K nodes; may only raise [metrics] k (default 5).",
)
@JSON_OPTION
def export_metrics_command(
    home: Path,
    out: Path | None,
    dry_run: bool,
    epsilon: float | None,
    k: int | None,
    as_json: bool,
) -> None:
    """Write a metrics bundle for the hub: anonymised aggregates and an audit checkpoint.

    Sums what the nodes reported since the last export per model version,
    ring and time window, suppresses any group of fewer than k nodes (and any
    cell from which one could be derived), optionally adds noise, and writes
    to --out an envelope signed with the site key and a payload encrypted to
    the hub, with a new signed checkpoint of the site's audit log. No node id,
    host name or address leaves the site. --dry-run prints exactly what would
    leave (--json: the payload document) and writes nothing. The site
    passphrase (AIRLOCK_SPOKE_PASSPHRASE or a prompt) is needed only to export.
    """
    from airlock.spoke.metrics._export import export_metrics
    from airlock.spoke.metrics._plan import plan_metrics

    now = SystemClock().now()
    if dry_run:
        with closing_home(SpokeHome(home)) as spoke_home:
            plan = plan_metrics(spoke_home, now, epsilon=epsilon, k=k)
        if as_json:
            emit_json(plan.payload().to_dict())
            return
        console = Console(highlight=False)
        _print_summary(console, "would export", plan.to_dict(), "")
        _print_payload(console, plan.payload())
        for reason in plan.anonymised.reasons:
            console.print(f"  suppressed: {escape(reason)}")
        if plan.noise is not None:
            console.print(
                f"[yellow]noise:[/yellow] every count above gets Laplace noise "
                f"(ε = {plan.noise.epsilon:g}) at export; these are the counts before noise"
            )
        console.print(
            "checkpoint: the export signs a new checkpoint of the site's audit log "
            "and sends it with consistency proofs"
            + (f" from size {', '.join(map(str, plan.proof_from))}" if plan.proof_from else "")
        )
        console.print("[dim]dry run: nothing was written[/dim]")
        return
    if out is None:
        raise click.UsageError("--out DIR is required (or give --dry-run)")
    with closing_home(open_home(home)) as spoke_home:
        result = export_metrics(spoke_home, out, now, epsilon=epsilon, k=k)
    if as_json:
        emit_json(result.to_dict(), sort_keys=False)
        return
    console = Console(highlight=False)
    _print_summary(console, "exported", result.to_dict(), str(result.out_dir))
    console.print("[dim]--dry-run shows every cell before an export[/dim]")


def _print_summary(console: Console, verb: str, info: Mapping[str, object], path: str) -> None:
    window = info["window"]
    assert isinstance(window, Mapping)
    noise = info["noise"]
    table = FittedTable(title=f"metrics {verb}: site {info['site_id']}", show_header=False)
    table.add_column("what")
    table.add_column("value", overflow="fold")
    table.add_row("sequence", str(info["sequence"]))
    table.add_row("window", f"{window['start']} → {window['end']}")
    table.add_row("metric windows read", str(info["rows"]))
    table.add_row("cells", str(info["cells"]))
    table.add_row("totals", str(info["totals"]))
    table.add_row(
        "suppressed", f"{info['suppressed_cells']} cell(s), {info['suppressed_totals']} total(s)"
    )
    table.add_row("k", str(info["k"]))
    table.add_row(
        "noise",
        f"Laplace, ε = {noise['epsilon']:g}" if isinstance(noise, Mapping) else "none",
    )
    checkpoint = info.get("checkpoint")
    if isinstance(checkpoint, Mapping):
        table.add_row("checkpoint size", str(checkpoint["size"]))
    if path:
        table.add_row("bundle", escape(path))
    console.print(table)


def _print_payload(console: Console, payload: MetricsPayload) -> None:
    _print_cells(console, payload.cells)
    _print_totals(console, payload.totals)


def _latency(cell: MetricsCell, q: float) -> str:
    value = LatencySketch.from_dict(cell.latency).quantile(q)
    return "-" if value is None else f"{value:.1f}"


def _counts(counts: Mapping[str, int]) -> str:
    return " ".join(f"{key}={count}" for key, count in sorted(counts.items())) or "-"


def _clock(start: str, end: str) -> str:
    """A window as ``HH:MM-HH:MM`` (the summary above gives the dates)."""
    return f"{start[11:16]}-{end[11:16]}"


def _print_cells(console: Console, cells: Iterable[MetricsCell]) -> None:
    cells = list(cells)
    table = FittedTable(title="cells (per model version, ring and window)")
    for column in ("model", "ring", "window", "nodes", "requests", "errors", "p50 ms", "p95 ms"):
        table.add_column(column)
    answers = FittedTable(title="answers and confidence of each cell (exact counts)")
    for column in ("model", "ring", "window", "predicted class = count", "confidence = count"):
        answers.add_column(column, overflow="fold")
    for cell in cells:
        name, ring = escape(f"{cell.model}@{cell.version}"), escape(cell.ring)
        window = _clock(cell.window_start, cell.window_end)
        table.add_row(
            name,
            ring,
            window,
            str(cell.nodes),
            str(cell.requests),
            str(cell.errors),
            _latency(cell, 0.5),
            _latency(cell, 0.95),
        )
        answers.add_row(
            name, ring, window, escape(_counts(cell.predictions)), escape(_counts(cell.confidence))
        )
    console.print(table)
    if cells:
        console.print(answers)


def _print_totals(console: Console, totals: Iterable[MetricsTotal]) -> None:
    table = FittedTable(title="totals (per model version and window, all rings)")
    for column in ("model", "window", "nodes", "requests", "errors"):
        table.add_column(column)
    for total in totals:
        table.add_row(
            escape(f"{total.model}@{total.version}"),
            _clock(total.window_start, total.window_end),
            str(total.nodes),
            str(total.requests),
            str(total.errors),
        )
    console.print(table)
