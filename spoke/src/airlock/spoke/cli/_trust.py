"""``airlock spoke trust``: the site's trust state — lowering a time floor a bad clock raised.

Guide: docs/site-admin.md, "The time floor".
"""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

from airlock.bundles.cli import closing_home, emit_json
from airlock.spoke.cli._options import HOME_OPTION, JSON_OPTION, open_home


@click.group("trust", short_help="Manage the site's trust state (time floor).")
def trust() -> None:
    """The site's trust state: the time floor that imports are checked against."""


@trust.command("reset-floor")
@HOME_OPTION
@click.option("--reason", required=True, help="Why the floor is lowered (audited).")
@JSON_OPTION
def reset_floor(home: Path, reason: str, as_json: bool) -> None:
    """Lower the time floor to the newest signed time this site verified.

    The floor only advances to the signed creation time of imported bundles.
    An earlier release also advanced it to the local clock: one import with a
    clock running ahead then refused every import until that time. This sets
    the floor back to the creation time of the last imported bundle. It needs
    the site passphrase (AIRLOCK_SPOKE_PASSPHRASE or a prompt) and is audited.
    A floor raised by compromised online keys is reset by a root rotation
    from the security officers, not by this command.
    """
    from airlock.spoke.site._floor_reset import reset_floor as reset

    with closing_home(open_home(home)) as spoke_home:
        result = reset(spoke_home, reason)
    if as_json:
        emit_json(result.to_dict(), sort_keys=False)
        return
    Console(highlight=False).print(
        f"[green]time floor lowered[/green] from {result.old_floor} to {result.new_floor} "
        f"(signed creation time of bundle {result.bundle_id})"
    )
