"""``airlock spoke identity``: the site's age identity, written out for the stock age tools.

Guide: docs/site-admin.md, "The site's age identity for the stock tools".
"""

from __future__ import annotations

from pathlib import Path

import click

from airlock.bundles.cli import closing_home, emit_json
from airlock.spoke.cli._options import HOME_OPTION, JSON_OPTION, open_home


@click.group("identity", short_help="Export the site's age identity for the stock age tool.")
def identity() -> None:
    """The site's age identity: the X25519 key every bundle for this site is encrypted to."""


@identity.command(
    "export-age", short_help="Write the site's age identity, in plaintext, for age -d -i."
)
@HOME_OPTION
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The identity file to create (mode 0600; an existing file or link is refused).",
)
@JSON_OPTION
def export_age(home: Path, out: Path, as_json: bool) -> None:
    """Write the site's age identity in age-keygen's format, for `age -d -i OUT`.

    With it, stock `age -d -i OUT volume.age | tar tv` lists what a bundle's
    data volume holds. OUT holds the site's decryption key IN PLAINTEXT: keep
    it on the import machine and shred it after use. Needs the site
    passphrase (AIRLOCK_SPOKE_PASSPHRASE or a prompt); audited as
    spoke.identity.export-age (never the key).
    """
    from airlock.spoke.site._age_export import WARNING, export_age_identity

    with closing_home(open_home(home)) as spoke_home:
        result = export_age_identity(spoke_home, out)
    click.secho(WARNING.format(path=result.path), fg="yellow", err=True)
    if as_json:
        emit_json(result.to_dict(), sort_keys=False)
        return
    click.echo(f"wrote the site's age identity to {result.path} (public key {result.recipient})")
