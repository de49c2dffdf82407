"""``airlock hub site …`` and ``airlock hub tenant …``: register and list sites and tenants."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

from airlock.bundles.cli import closing_home, emit_json, print_table
from airlock.bundles.errors import UsageError
from airlock.bundles.keys import FILE_SCHEME
from airlock.bundles.models import SiteIdentity
from airlock.hub.cli._options import (
    HOME_OPTION,
    JSON_OPTION,
    open_home,
)
from airlock.hub.sites._sites import (
    add_site,
    add_site_from_file,
    list_sites,
    read_public_key_file,
)
from airlock.hub.sites._tenants import (
    add_tenant,
    list_tenants,
    read_public_key,
)


@click.group("site")
def site() -> None:
    """Register and list sites."""


@site.command("add")
@HOME_OPTION
@click.argument("site_id", required=False)
@click.option(
    "--identity",
    type=click.Path(dir_okay=False, path_type=Path),
    help="site-identity.json written by `airlock spoke init`.",
)
@click.option("--recipient", help="The site's age recipient (age1…), instead of --identity.")
@click.option(
    "--signing-key",
    type=click.Path(dir_okay=False, path_type=Path),
    help="JSON file with the site's public signing key, instead of --identity.",
)
@click.option("--transit-days", type=int, help="Days a bundle may take to reach the site.")
@click.option("--no-encryption", is_flag=True, help="Export plain tar payloads to this site.")
@JSON_OPTION
def site_add(
    home: Path,
    site_id: str | None,
    identity: Path | None,
    recipient: str | None,
    signing_key: Path | None,
    transit_days: int | None,
    no_encryption: bool,
    as_json: bool,
) -> None:
    """Register a site: its age recipient, signing key and transit budget.

    Either --identity FILE, or SITE_ID --recipient age1… --signing-key KEY.json.
    """
    with closing_home(open_home(home)) as hub_:
        if identity is not None:
            if site_id or recipient or signing_key:
                raise UsageError("pass either --identity, or SITE_ID --recipient --signing-key")
            info = add_site_from_file(hub_, identity, transit_days, not no_encryption)
        else:
            if not (site_id and recipient and signing_key):
                raise UsageError(
                    "no site identity given",
                    hint="pass --identity site-identity.json "
                    "(or SITE_ID --recipient --signing-key)",
                )
            keyid, key = read_public_key_file(signing_key)
            ident = SiteIdentity(site_id, recipient, keyid, key)
            info = add_site(hub_, ident, transit_days, not no_encryption)
        if as_json:
            emit_json(info.to_dict())
            return
        encryption = "on" if info.encrypt else "[yellow]off[/yellow]"
        Console().print(
            f"[green]site {info.site_id} registered[/green]: transit budget {info.transit_days} "
            f"days, encryption {encryption}"
        )


@site.command("list")
@HOME_OPTION
@JSON_OPTION
def site_list(home: Path, as_json: bool) -> None:
    """List registered sites."""
    with closing_home(open_home(home)) as ctx:
        sites = list_sites(ctx)
    if as_json:
        emit_json([s.to_dict() for s in sites])
        return
    rows = [
        [
            s.site_id,
            str(s.transit_days),
            "yes" if s.encrypt else "no",
            str(s.sequence),
            ", ".join(f"{n}@{v}" for n, v in s.assignments.items()) or "-",
            s.age_recipient,
        ]
        for s in sites
    ]
    columns = ["site", "transit days", "encrypted", "last sequence", "assigned", "recipient"]
    print_table("sites", columns, rows)


@click.group("tenant")
def tenant() -> None:
    """Add and list tenants: each signs its own model families with its own key."""


@tenant.command("add")
@HOME_OPTION
@click.argument("name")
@click.option(
    "--key-uri",
    help="A key the tenant holds: hsm:… or airlock-file:/path/key.pem (default: a new "
    "hub-held key, encrypted with the hub passphrase).",
)
@click.option(
    "--public-key",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The tenant-held key's public key: PEM, or JSON with its keyid (with --key-uri).",
)
@JSON_OPTION
def tenant_add(
    home: Path, name: str, key_uri: str | None, public_key: Path | None, as_json: bool
) -> None:
    """Add tenant NAME, whose Image role `tenant-NAME` will sign its model families.

    Without --key-uri the hub makes the tenant's key and keeps it encrypted
    with the hub passphrase. With --key-uri the tenant holds the key: the hub
    opens it only when it signs the tenant's role (releasing one of its
    models, or an export re-signing the role before it expires) and then asks
    for the key's own passphrase or PIN (prompt, or AIRLOCK_TENANT_SECRET_<NAME>).
    """
    key = read_public_key(public_key) if public_key is not None else None
    with closing_home(open_home(home)) as ctx:
        info = add_tenant(ctx, name, _absolute_file_uri(key_uri), key)
    if as_json:
        emit_json(info.to_dict())
        return
    Console().print(
        f"[green]tenant {info.name} added[/green]: key {info.keyid} held by {info.held_by}"
    )


def _absolute_file_uri(uri: str | None) -> str | None:
    """An ``airlock-file:`` URI with a relative path, made absolute from the working directory."""
    prefix = f"{FILE_SCHEME}:"
    if uri is None or not uri.startswith(prefix):
        return uri
    return f"{prefix}{Path(uri.removeprefix(prefix)).absolute()}"


@tenant.command("list")
@HOME_OPTION
@JSON_OPTION
def tenant_list(home: Path, as_json: bool) -> None:
    """List tenants, their keys and model families."""
    with closing_home(open_home(home)) as ctx:
        tenants = list_tenants(ctx)
    if as_json:
        emit_json([t.to_dict() for t in tenants])
        return
    rows = [[t.name, t.held_by, t.keyid, t.key_uri, ", ".join(t.families) or "-"] for t in tenants]
    print_table("tenants", ["tenant", "key held by", "key id", "key URI", "families"], rows)
