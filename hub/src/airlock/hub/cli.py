"""``airlock hub``: the release engineer's commands.

Every command takes ``--home`` (env ``AIRLOCK_HUB_HOME``, default
``./hub-home``) and ``--json``; the hub passphrase comes from
``AIRLOCK_HUB_PASSPHRASE`` or a no-echo prompt, and only commands that sign
ask for it. Errors are raised as :class:`~airlock.bundles.errors.AirlockError`
and reported by the root group's single catch point.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from airlock.bundles.errors import UsageError
from airlock.bundles.keys import env_or_prompt_secrets
from airlock.bundles.models import SiteIdentity
from airlock.hub.home import DEFAULT_HOME, HOME_ENV, PASSPHRASE_ENV
from airlock.hub.hub import Hub
from airlock.hub.sites import read_public_key_file

HOME_OPTION = click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    default=str(DEFAULT_HOME),
    show_default=True,
    envvar=HOME_ENV,
    help=f"Hub home directory (env {HOME_ENV}).",
)
JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")


def _prompt(secret_name: str) -> str:
    return str(click.prompt(f"Hub {secret_name}", hide_input=True, err=True))


def _secrets() -> Any:
    return env_or_prompt_secrets(PASSPHRASE_ENV, _prompt)


def _open(home: Path) -> Hub:
    return Hub.open(home, _secrets())


def _emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True))


def _table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    table = Table(title=title)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*row)
    Console().print(table)


@click.group()
def hub() -> None:
    """Release engineer: sign models and export bundles for air-gapped sites.

    \b
    Typical flow:
      airlock hub init --from CEREMONY
      airlock hub site add --identity site-identity.json
      airlock hub model add NAME VERSION model.onnx
      airlock hub assign SITE NAME VERSION
      airlock hub export --site SITE --out /media/usb/bundle
    The hub passphrase comes from AIRLOCK_HUB_PASSPHRASE or a prompt.
    """


@hub.command("init")
@HOME_OPTION
@click.option(
    "--from",
    "ceremony",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="The ceremony's output directory (`airlock ceremony init --out`).",
)
@JSON_OPTION
def init(home: Path, ceremony: Path, as_json: bool) -> None:
    """Create a hub home from a key ceremony's output.

    Checks every root's threshold signatures, the Image targets' signatures,
    and that each online key is the one the roots name for its role and opens
    with the hub passphrase. Copies the public metadata and the online keys
    (never the offline keys) and creates the Image `models` role.
    """
    created = Hub.init(home, ceremony, _secrets())
    report = created.status()
    created.close()
    if as_json:
        _emit_json(report)
        return
    Console().print(f"[green]hub home created:[/green] {home}")
    _roles_table(report)


def _roles_table(report: dict[str, Any]) -> None:
    rows = []
    for role, info in report["roles"].items():
        left = "" if info["days_left"] is None else f"{info['days_left']}"
        style = "[yellow]" if info.get("expiring") else ""
        rows.append([role, str(info["version"]), str(info["expires"]), f"{style}{left}"])
    _table("signed roles", ["role", "version", "expires", "days left"], rows)


@hub.group("site")
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
    hub_ = _open(home)
    if identity is not None:
        if site_id or recipient or signing_key:
            raise UsageError("pass either --identity, or SITE_ID --recipient --signing-key")
        info = hub_.add_site_from_file(identity, transit_days, not no_encryption)
    else:
        if not (site_id and recipient and signing_key):
            raise UsageError(
                "no site identity given",
                hint="pass --identity site-identity.json (or SITE_ID --recipient --signing-key)",
            )
        keyid, key = read_public_key_file(signing_key)
        ident = SiteIdentity(site_id, recipient, keyid, key)
        info = hub_.add_site(ident, transit_days, not no_encryption)
    if as_json:
        _emit_json(info.to_dict())
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
    sites = _open(home).sites()
    if as_json:
        _emit_json([s.to_dict() for s in sites])
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
    _table("sites", columns, rows)


@hub.group("model")
def model() -> None:
    """Release and list model versions."""


@model.command("add")
@HOME_OPTION
@click.argument("name")
@click.argument("version")
@click.argument("path", type=click.Path(path_type=Path))
@JSON_OPTION
def model_add(home: Path, name: str, version: str, path: Path, as_json: bool) -> None:
    """Release NAME VERSION from PATH (an .onnx file or a flat directory with external data).

    The ONNX graph is checked, every file is stored by SHA-256 and signed as
    an Image target of family NAME. Versions are immutable.
    """
    release = _open(home).release_model(name, version, path)
    if as_json:
        _emit_json({"created": release.created, **release.model.to_dict()})
        return
    console = Console()
    if not release.created:
        console.print(
            f"{release.model.ref} is already released with identical files: nothing changed"
        )
        return
    console.print(f"[green]released {release.model.ref}[/green]")
    rows = [
        [f.filename, str(f.length), f.sha256, "yes" if f.primary else ""]
        for f in release.model.files
    ]
    _table("files", ["file", "bytes", "sha256", "graph"], rows)


@model.command("list")
@HOME_OPTION
@JSON_OPTION
def model_list(home: Path, as_json: bool) -> None:
    """List released model versions."""
    models = _open(home).models()
    if as_json:
        _emit_json([m.to_dict() for m in models])
        return
    rows = [
        [m.name, m.version, str(len(m.files)), str(sum(f.length for f in m.files))] for m in models
    ]
    _table("models", ["name", "version", "files", "bytes"], rows)


@hub.command("assign")
@HOME_OPTION
@click.argument("site_id")
@click.argument("name")
@click.argument("version")
@JSON_OPTION
def assign(home: Path, site_id: str, name: str, version: str, as_json: bool) -> None:
    """Tell SITE to run NAME@VERSION (replaces the site's previous version of NAME)."""
    changed = _open(home).assign(site_id, name, version)
    if as_json:
        _emit_json({"site_id": site_id, "model": name, "version": version, "changed": changed})
    elif changed:
        Console().print(f"[green]{site_id} now runs {name}@{version}[/green] (in its next bundle)")
    else:
        Console().print(f"{site_id} already runs {name}@{version}: nothing changed")


@hub.command("unassign")
@HOME_OPTION
@click.argument("site_id")
@click.argument("name")
@JSON_OPTION
def unassign(home: Path, site_id: str, name: str, as_json: bool) -> None:
    """Remove SITE's assignment of model NAME."""
    _open(home).unassign(site_id, name)
    if as_json:
        _emit_json({"site_id": site_id, "model": name, "removed": True})
    else:
        Console().print(f"[green]{name} removed from {site_id}[/green] (in its next bundle)")


@hub.command("export")
@HOME_OPTION
@click.option("--site", "site_id", required=True, help="The site to export for.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="New (or empty) bundle directory, e.g. on removable media.",
)
@JSON_OPTION
def export_(home: Path, site_id: str, out: Path, as_json: bool) -> None:
    """Write SITE's next full bundle: signed envelope.json + encrypted payload.

    Refuses when the Image root, Image targets or Director root would expire
    before the bundle (run a re-signing ceremony first).
    """
    hub_ = _open(home)
    if as_json:
        envelope = hub_.export(site_id, out)
        _emit_json({"out": str(out), "envelope": envelope.to_dict()})
        return
    console = Console()
    with console.status(f"exporting the bundle for {site_id}…"):
        envelope = hub_.export(site_id, out)
    console.print(
        f"[green]bundle {envelope.sequence} for {site_id} written to {out}[/green] "
        f"(expires {envelope.expires:%Y-%m-%d %H:%M}Z)"
    )
    rows = [[p.name, str(p.size), p.sha256] for p in envelope.parts]
    _table("payload parts", ["part", "bytes", "sha256"], rows)


@hub.command("status")
@HOME_OPTION
@JSON_OPTION
def status(home: Path, as_json: bool) -> None:
    """Show role versions and expiries, sites, models and assignments."""
    report = _open(home).status()
    if as_json:
        _emit_json(report)
        return
    _roles_table(report)
    site_rows = [
        [
            s["site_id"],
            str(s["sequence"]),
            str(s["director_targets"]["version"]),
            ", ".join(f"{n}@{v}" for n, v in s["assignments"].items()) or "-",
        ]
        for s in report["sites"]
    ]
    _table("sites", ["site", "last sequence", "director targets", "assigned"], site_rows)
    model_rows = [
        [m["name"], m["version"], str(m["files"]), str(m["bytes"])] for m in report["models"]
    ]
    _table("models", ["name", "version", "files", "bytes"], model_rows)
