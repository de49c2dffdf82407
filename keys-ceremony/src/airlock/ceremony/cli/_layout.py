"""``airlock ceremony sign-layout``: an officer signs the in-toto layout with their layout key.

Runbook: docs/security-officer.md, "Sign the in-toto layout".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape

from airlock.bundles.cli import FittedTable
from airlock.bundles.clock import SystemClock
from airlock.ceremony.cli._options import (
    JSON,
    KEYS,
    OFFICER,
    OUT_FILE,
    YES,
    OfficerSecrets,
    typed_hash_confirmation,
)
from airlock.ceremony.officer._layout_signing import sign_layout


def render_layout(summary: dict[str, Any], console: Console) -> None:
    """Prints what the officer is about to sign."""
    console.print("[bold]in-toto layout to sign[/]")
    console.print(f"  content SHA-256  [bold]{summary['content_sha256']}[/]")
    console.print(f"  file SHA-256     {summary['sha256']}")
    console.print(f"  expires          [bold]{summary['expires']}[/]")
    console.print(f"  description      {escape(summary['readme'])}")
    table = FittedTable(title="steps and who may sign their links")
    for column in ("step", "functionary keys", "materials", "products"):
        table.add_column(column, overflow="fold")
    for step in summary["steps"]:
        keys = "\n".join(
            f"{k['fingerprint']} {escape(k['holder'])}".strip() for k in step["functionaries"]
        )
        table.add_row(
            step["name"],
            keys,
            escape("\n".join(step["materials"])),
            escape("\n".join(step["products"])),
        )
    for item in summary["inspections"]:
        table.add_row(
            f"{item['name']} (inspection: {escape(' '.join(item['run']))})",
            "-",
            escape("\n".join(item["materials"])),
            escape("\n".join(item["products"])),
        )
    console.print(table)
    if summary["signatures"]:
        console.print("already signed by:")
        for sig in summary["signatures"]:
            console.print(f"  {sig['fingerprint']} {escape(sig['holder'])}")
    key = summary["signing_key"]
    console.print(f"you sign with your layout key [bold]{key['fingerprint']}[/] ({key['keyid']})")


@click.command("sign-layout")
@click.option(
    "--layout",
    "layout_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The layout from `airlock hub layout draft` (or another officer's signed copy).",
)
@click.option(
    "--plan",
    "plan_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Optional: the plan of the ceremony that made the layout keys (checks you hold one).",
)
@OFFICER
@KEYS
@OUT_FILE
@YES
@JSON
def sign_layout_command(
    layout_path: Path,
    plan_path: Path | None,
    officer: str,
    keys_dir: Path,
    out: Path,
    yes: bool,
    as_json: bool,
) -> None:
    """Review the in-toto layout and sign it with your layout key (writes a new file).

    The layout is read once; what is shown is what is signed. To confirm, type
    the first 8 hex digits of the content SHA-256 shown on screen (the release
    engineer reads it out: it stays the same as officers add signatures).
    Carry the output to the next officer, or to the hub (`airlock hub layout set`).
    """

    confirm = typed_hash_confirmation(
        "content SHA-256", "content_sha256", render_layout, as_json, yes
    )

    result = sign_layout(
        layout_path,
        officer,
        keys_dir,
        out,
        secrets=OfficerSecrets(confirm_passphrase=False),
        confirm=confirm,
        clock=SystemClock(),
        plan_path=plan_path,
    )
    click.echo(
        f"wrote {out}: {result.signatures} signature(s); carry it to the next officer "
        "or to the hub (`airlock hub layout set`)",
        err=as_json,
    )
