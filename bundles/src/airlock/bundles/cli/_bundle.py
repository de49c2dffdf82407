"""``airlock bundle``: look at a bundle on media without any key (site admins, couriers)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.console import Console

from airlock.bundles.bundle._inspect import inspect_bundle
from airlock.bundles.cli._tables import print_table
from airlock.bundles.cli._toolkit import emit_json, json_option
from airlock.bundles.clock import SystemClock


@click.group()
def bundle() -> None:
    """Look at a bundle on media, with no key: what its envelope says, what is missing.

    \b
      airlock bundle inspect /media/dvd1 /media/dvd2 …
    """


@bundle.command("inspect")
@click.argument(
    "directories",
    nargs=-1,
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
)
@click.option("--site", "site_id", help="Which site's envelope, on media made for several sites.")
@json_option()
def inspect(directories: tuple[Path, ...], site_id: str | None, as_json: bool) -> None:
    """What the plaintext envelope says and which volumes DIRECTORIES hold (nothing verified)."""
    report = inspect_bundle(list(directories), SystemClock().now(), site_id)
    if as_json:
        emit_json(report)
        return
    _print(report)


def _print(report: dict[str, Any]) -> None:
    console = Console()
    expiry = "EXPIRED" if report["expired"] else "valid"
    console.print(
        f"Bundle {report['bundle_id']} for site [bold]{report['site_id']}[/] — "
        f"{report['kind']}, sequence {report['sequence']}, format {report['format_version']}\n"
        f"created {report['created']}, expires {report['expires']} ({expiry}); "
        f"{'encrypted (age)' if report['encrypted'] else 'NOT encrypted'}\n"
        "[dim]Nothing is verified here: `airlock spoke import` checks the signature and "
        "every chunk.[/]"
    )
    if report["format_version"] == 1:
        parts = [(p["name"], str(p["size"]), p["state"]) for p in report["parts"]]
        print_table("payload parts", ("file", "signed size", "state"), parts, console=console)
        return
    part = report["site_part"]
    console.print(f"per-site part {part['name']}: {part['size']} bytes, {part['state']}")
    rows = [
        (
            v["name"],
            f"{v['kind']} {v['number']} of {v['of']}",
            str(v["size"]),
            v["state"],
            v["path"] or "",
        )
        for v in report["volumes"]
    ]
    if rows:
        print_table(
            "volumes", ("file", "volume", "size", "state", "found at"), rows, console=console
        )
    for series in report["series"]:
        if series["complete"]:
            verdict = "every data volume is present"
        elif series["rebuildable"]:
            verdict = f"can be rebuilt from parity ({', '.join(series['lost_data'])} missing)"
        else:
            verdict = (
                f"cannot be imported yet: bring {series['needed']} more volume(s) of this "
                f"series ({', '.join(series['lost_data'])} missing)"
            )
        console.print(
            f"series {series['id']}: {series['data']} data + {series['parity']} parity volumes, "
            f"{series['present']} present — {verdict}"
        )
