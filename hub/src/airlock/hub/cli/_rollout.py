"""``airlock hub assign``, ``unassign``, ``revoke`` and ``export``: what sites run, and bundles."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

from airlock.bundles.cli import closing_home, emit_json, print_table, progress_for
from airlock.bundles.models import Envelope
from airlock.hub.cli._options import (
    FILE_PATH,
    HOME_OPTION,
    JSON_OPTION,
    open_home,
)
from airlock.hub.export._assignments import assign as assign_version
from airlock.hub.export._assignments import unassign as unassign_version
from airlock.hub.export._media import MediaOptions, parse_volume_size
from airlock.hub.export._planner import DEFAULT_MEDIA, export
from airlock.hub.export._shared import export_sites
from airlock.hub.revocation._revoke import revoke as revoke_version


@click.command("assign")
@HOME_OPTION
@click.argument("site_id")
@click.argument("name")
@click.argument("version")
@click.option(
    "--plan",
    "plan_file",
    type=FILE_PATH,
    help="Rollout plan (TOML: interval_seconds, [health], [[rings]]); default: the "
    "default plan (canary 5 %, quarter, all).",
)
@click.option(
    "--change",
    metavar="CHG…",
    help="The change request it is done under (approved, in implement, covering "
    "SITE:NAME@VERSION); required when the hub's [change] required is true.",
)
@JSON_OPTION
def assign(
    home: Path,
    site_id: str,
    name: str,
    version: str,
    plan_file: Path | None,
    change: str | None,
    as_json: bool,
) -> None:
    """Tell SITE to run NAME@VERSION (replaces the site's previous version of NAME).

    The rollout plan is signed into the site's Director targets with the
    assignment, and with --change the change request's number, window and
    approval next to it; assigning the same version with another plan
    re-signs it. Revoked versions are refused.
    """
    with closing_home(open_home(home)) as ctx:
        changed = assign_version(ctx, site_id, name, version, plan_file=plan_file, change=change)
    if as_json:
        emit_json({"site_id": site_id, "model": name, "version": version, "changed": changed})
    elif changed:
        Console().print(f"[green]{site_id} now runs {name}@{version}[/green] (in its next bundle)")
    else:
        Console().print(f"{site_id} already runs {name}@{version} with that plan: nothing changed")


@click.command("revoke")
@HOME_OPTION
@click.argument("name")
@click.argument("version")
@click.option("--reason", required=True, help="Why: every site is told, and it is audited.")
@click.option(
    "--change",
    metavar="CHG…",
    help="An open change request to record it against (default: a new emergency one).",
)
@JSON_OPTION
def revoke(
    home: Path, name: str, version: str, reason: str, change: str | None, as_json: bool
) -> None:
    """Revoke NAME@VERSION everywhere: never signed, assigned or released again.

    Removes the version from the Image repository (re-signing its tenant's
    role: a tenant-held key's secret is asked for), points every site that
    runs it at its previous good version (never one that site reported as
    rolled back; with none left it is unassigned), and lists the
    revocation and its reason in every site's Director metadata. Then export
    for each site: the bundles are small, as the sites already hold the
    previous version. A revocation never waits for a change window: without
    --change it is recorded against an emergency change request made after
    the fact.
    """
    with closing_home(open_home(home)) as ctx:
        result = revoke_version(ctx, name, version, reason, change)
    if as_json:
        emit_json(result.to_dict())
        return
    console = Console()
    console.print(f"[green]revoked {result.ref}[/green] ({result.reason})")
    console.print(f"recorded against change request {result.change_request}")
    rows = [[s.site_id, s.previous, s.now or "(unassigned)", s.note] for s in result.sites]
    if rows:
        print_table("sites moved off the revoked version", ["site", "was", "now", "why"], rows)
    console.print(
        f"{len(result.notified)} site(s) to export for: {', '.join(result.notified) or '-'}"
    )


@click.command("unassign")
@HOME_OPTION
@click.argument("site_id")
@click.argument("name")
@JSON_OPTION
def unassign(home: Path, site_id: str, name: str, as_json: bool) -> None:
    """Remove SITE's assignment of model NAME."""
    with closing_home(open_home(home)) as ctx:
        unassign_version(ctx, site_id, name)
    if as_json:
        emit_json({"site_id": site_id, "model": name, "removed": True})
    else:
        Console().print(f"[green]{name} removed from {site_id}[/green] (in its next bundle)")


@click.command("export")
@HOME_OPTION
@click.option(
    "--site",
    "site_ids",
    required=True,
    multiple=True,
    help="The site to export for; several --site write one set of media for all of them "
    "(the model content once, each site's small files under sites/<site>/).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="New (or empty) bundle directory, e.g. on removable media.",
)
@click.option(
    "--full",
    is_flag=True,
    help="Send every assigned version's files again (for a site that lost a bundle).",
)
@click.option(
    "--volume-size",
    metavar="SIZE",
    help="Cut the model files into volumes of at most SIZE bytes, as media are labelled: "
    "700M, 4G (FAT32), 4.7G (DVD), 25G (Blu-ray); 4GiB is binary. Default: one volume.",
)
@click.option(
    "--parity",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Parity volumes: the bundle imports from any k of its k+N volumes.",
)
@click.option(
    "--format",
    "format_version",
    type=click.IntRange(1, 2),
    default=DEFAULT_MEDIA.format_version,
    show_default=True,
    help="Bundle format: 2 (volumes) or 1 (one payload.age, for spokes of the previous release).",
)
@JSON_OPTION
def export_(
    home: Path,
    site_ids: tuple[str, ...],
    out: Path,
    full: bool,
    volume_size: str | None,
    parity: int,
    format_version: int,
    as_json: bool,
) -> None:
    """Write SITE's next bundle: signed envelope.json, per-site part and volumes.

    Files of versions already sent to the site are left out (a `delta`
    bundle, or a `revocation` bundle when only revocations changed); --full
    sends everything. Refuses when the Image root, Image targets or Director
    root would expire before the bundle (run a re-signing ceremony and
    `airlock hub trust update` first).
    """
    media = MediaOptions(
        format_version=format_version,
        volume_size=parse_volume_size(volume_size) if volume_size else None,
        parity=parity,
    )
    with closing_home(open_home(home)) as hub_:
        progress = progress_for(as_json)
        if len(site_ids) > 1:
            envelopes = export_sites(hub_, site_ids, out, full=full, media=media, progress=progress)
        else:
            envelopes = [export(hub_, site_ids[0], out, full=full, media=media, progress=progress)]
    if as_json:
        if len(envelopes) == 1:
            emit_json({"out": str(out), "envelope": envelopes[0].to_dict()})
        else:
            emit_json({"out": str(out), "envelopes": [e.to_dict() for e in envelopes]})
        return
    for envelope in envelopes:
        _print_export(envelope, out)


def _print_export(envelope: Envelope, out: Path) -> None:
    console = Console()
    console.print(
        f"[green]{envelope.kind} bundle {envelope.sequence} for {envelope.site_id} written to "
        f"{out}[/green] (expires {envelope.expires:%Y-%m-%d %H:%M}Z, format "
        f"{envelope.format_version})"
    )
    if envelope.omitted:
        console.print(f"already at the site, not sent again: {', '.join(envelope.omitted)}")
    if envelope.format_version == 1:
        rows = [[p.name, str(p.size), p.sha256] for p in envelope.parts]
        print_table("payload parts", ["part", "bytes", "sha256"], rows)
        return
    rows = [[v.name, f"{v.kind} {v.number} of {v.of}", f"{v.size:,}"] for v in envelope.volumes]
    if rows:
        print_table("volumes", ["file", "volume", "bytes"], rows)
    for series in envelope.series:
        console.print(
            f"series {series.id}: any {series.data} of its {series.data + series.parity} "
            "volumes import it"
        )
