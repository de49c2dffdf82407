"""``airlock spoke attestations``: hand a staged version's in-toto evidence to the stock tools.

Guide: docs/site-admin.md, "Attestations".
"""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

from airlock.bundles.cli import closing_home, emit_json
from airlock.spoke.cli._options import HOME_OPTION, JSON_OPTION
from airlock.spoke.site._home import SpokeHome


@click.group("attestations", short_help="Export a staged version's in-toto evidence.")
def attestations() -> None:
    """In-toto attestations of staged model versions (checked at every import)."""


@attestations.command("export")
@HOME_OPTION
@click.argument("ref", metavar="MODEL@VERSION")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="A new or empty directory.",
)
@click.option(
    "--with-model",
    is_flag=True,
    help="Also copy the staged model files (otherwise put them there yourself).",
)
@JSON_OPTION
def export(home: Path, ref: str, out: Path, with_model: bool, as_json: bool) -> None:
    """Write MODEL@VERSION's root.layout, links and layout keys (PEM) to --out.

    The keys are the officers' layout keys, anchored in this site's trusted
    Image root, that signed the layout. With the model file(s) in the same
    directory, the stock in-toto tool verifies the supply chain on its own:

    \b
      cd OUT && in-toto-verify --layout root.layout --verification-keys layout-key.*.pem
    """
    from airlock.spoke.importing._attestations import export as export_attestations

    with closing_home(SpokeHome(home)) as spoke_home:
        result = export_attestations(spoke_home, ref, out, with_model)
    if as_json:
        emit_json(result.to_dict(), sort_keys=False)
        return
    console = Console(highlight=False)
    console.print(f"[green]wrote the attestations of {result.ref} to {result.out}[/green]")
    for name in result.files + result.keys:
        console.print(f"  {name}")
    if not with_model:
        console.print("copy the model file(s) into the directory, then:")
    console.print(f"  cd {result.out} && {result.command}")
