"""``airlock hub import-metrics``: take in a site's metrics bundle.

The work is :func:`airlock.hub.fleet._metrics_import.import_metrics`; this module is
its command line: JSON with ``--json``, else a summary, a warning for a gap in
the site's sequence, the witnessed checkpoint, a table of the figures and the
fleet alerts the import opened.

Errors are raised as :class:`~airlock.bundles.errors.AirlockError` and
reported by the root group's single catch point (a rewritten site log exits 22).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.console import Console

from airlock.bundles.cli import closing_home, emit_json, print_table
from airlock.hub.cli._options import HOME_OPTION, JSON_OPTION, open_home
from airlock.hub.fleet._metrics_import import MetricsImportResult, import_metrics


@click.command("import-metrics")
@HOME_OPTION
@click.argument("bundle", type=click.Path(path_type=Path))
@JSON_OPTION
def import_metrics_(home: Path, bundle: Path, as_json: bool) -> None:
    """Import BUNDLE, a metrics bundle a site wrote with `airlock spoke export-metrics`.

    Checks the site's signature on the envelope (the key registered with the
    site), the payload's hash, decrypts it with the hub's identity, refuses a
    replayed sequence (a gap is reported), and checks that the site's audit
    checkpoint extends the one this hub witnessed before; then cosigns the
    checkpoint as the site's witness and stores the figures. The site receives
    the cosigned checkpoint with its next bundle. Nothing is stored on any
    failure; a rewritten site log exits with code 22 and emits the
    `audit.log-inconsistent` event.
    """
    with closing_home(open_home(home)) as ctx:
        result = import_metrics(ctx, bundle)
    if as_json:
        emit_json(result.to_dict())
        return
    _show(result)


def _show(result: MetricsImportResult) -> None:
    console = Console(highlight=False)
    noise = f", noise ε={result.noise['epsilon']:g}" if result.noise else ""
    console.print(
        f"[green]imported metrics bundle {result.sequence} of {result.site_id}[/green] "
        f"(window {result.window_start} → {result.window_end}): {result.cells} cell(s), "
        f"{result.totals} total(s); held back at the site: {result.suppressed_cells} cell(s), "
        f"{result.suppressed_totals} total(s) (k={result.k}{noise})"
    )
    if result.missing_sequences:
        missing = ", ".join(str(s) for s in result.missing_sequences)
        console.print(
            f"[yellow]warning: metrics bundle(s) {missing} of {result.site_id} never arrived "
            "(lost media?): their figures are not at the hub; export them again at the site "
            "if they can be found[/yellow]"
        )
    how = (
        "first checkpoint, trusted on first use"
        if result.consistency == "first"
        else (f"consistent with the checkpoint witnessed before ({result.consistency})")
    )
    console.print(
        f"witnessed the site's audit log: {result.checkpoint_size} entries, root "
        f"{result.checkpoint_root[:16]}… ({how}); cosigned as {result.witness}"
    )
    if result.versions:
        rows = [
            [
                f"{v['model']}@{v['version']}",
                ", ".join(v["rings"]),
                str(v["requests"]),
                str(v["errors"]),
            ]
            for v in result.versions
        ]
        print_table("figures imported", ["model version", "rings", "requests", "errors"], rows)
    for alert in result.alerts:
        console.print(f"[red]alert opened:[/red] {_alert_line(alert)}")
    if not result.alerts:
        console.print("no fleet alert opened")


def _alert_line(alert: dict[str, Any]) -> str:
    if {"kind", "model", "version"} <= alert.keys():
        value, limit = alert.get("value"), alert.get("limit")
        figures = (
            f": {_number(value)} beyond the limit {_number(limit)}"
            if None not in (value, limit)
            else ""
        )
        return f"{alert['kind']} of {alert['model']}@{alert['version']}{figures}"
    return ", ".join(f"{k}={v}" for k, v in sorted(alert.items()))


def _number(value: Any) -> str:
    """A figure of an alert (a decimal string in the audit log) with three significant digits."""
    try:
        return f"{float(value):.3g}"
    except (TypeError, ValueError):
        return str(value)
