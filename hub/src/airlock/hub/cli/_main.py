"""``airlock hub``: the release engineer's commands.

Every command takes ``--home`` (env ``AIRLOCK_HUB_HOME``, default
``./hub-home``) and ``--json``; the hub passphrase comes from
``AIRLOCK_HUB_PASSPHRASE`` or a no-echo prompt, and only commands that sign
ask for it. Errors are raised as :class:`~airlock.bundles.errors.AirlockError`
and reported by the root group's single catch point.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.console import Console

from airlock.bundles.cli import LazyGroup, closing_home, db_group, emit_json, print_table
from airlock.bundles.clock import utc_iso
from airlock.hub.cli._options import HOME_OPTION, JSON_OPTION, hub_secrets, open_home
from airlock.hub.store._home import ROLE

SUBCOMMANDS = {
    "assign": "airlock.hub.cli._rollout:assign",
    "change": "airlock.hub.cli._changes:change",
    "export": "airlock.hub.cli._rollout:export_",
    "import-metrics": "airlock.hub.cli._metrics:import_metrics_",
    "layout": "airlock.hub.cli._layout:layout",
    "model": "airlock.hub.cli._models:model",
    "report": "airlock.hub.cli._fleet:report",
    "revoke": "airlock.hub.cli._rollout:revoke",
    "site": "airlock.hub.cli._sites:site",
    "tenant": "airlock.hub.cli._sites:tenant",
    "unassign": "airlock.hub.cli._rollout:unassign",
}
"""The commands of sibling modules, by name: where each lives (imported when it runs, or
when help lists it; the sibling modules never import this one)."""


@click.group(cls=LazyGroup, lazy_commands=SUBCOMMANDS)
def hub() -> None:
    """Release engineer: sign models and export bundles for air-gapped sites.

    \b
    Typical flow:
      airlock hub init --from CEREMONY
      airlock hub site add --identity site-identity.json
      airlock hub model add NAME VERSION model.onnx   (or: model import models:/NAME@ALIAS)
      airlock hub assign SITE NAME VERSION [--plan plan.toml] [--change CHG…]
      airlock hub export --site SITE --out /media/usb/bundle
    To take a bad version back everywhere:
      airlock hub revoke NAME VERSION --reason "…"   (then export for each site)
    Change requests (create, approve, import from ServiceNow): airlock hub change --help
    After the security officers rotate or re-sign the offline roles:
      airlock hub trust update --from CEREMONY
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
    from airlock.hub.sites._status import hub_status
    from airlock.hub.trust._bootstrap import init_hub

    created = init_hub(home, ceremony, hub_secrets())
    report = hub_status(created)
    created.close()
    if as_json:
        emit_json(report)
        return
    Console().print(f"[green]hub home created:[/green] {home}")
    _roles_table(report)


def _roles_table(report: dict[str, Any]) -> None:
    rows = []
    for role, info in report["roles"].items():
        left = "" if info["days_left"] is None else f"{info['days_left']}"
        style = "[yellow]" if info.get("expiring") else ""
        rows.append([role, str(info["version"]), str(info["expires"]), f"{style}{left}"])
    print_table("signed roles", ["role", "version", "expires", "days left"], rows)


@hub.group("trust")
def trust() -> None:
    """Adopt the security officers' root and targets rotations."""


@trust.command("update")
@HOME_OPTION
@click.option(
    "--from",
    "ceremony",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="The rotation or re-signing ceremony's output directory.",
)
@JSON_OPTION
def trust_update(home: Path, ceremony: Path, as_json: bool) -> None:
    """Adopt new root versions and a re-signed Image targets from a ceremony's output.

    Checks that the ceremony names this hub's online keys, that every root is
    signed by its own threshold and the previous root's, that the Image
    targets is signed by the newest root's targets threshold, that the hub's
    roots are unchanged at the start of the ceremony's chain, that something
    is newer and nothing goes back, and that nothing has expired. Then adds
    the new versions (keeping the old ones) and re-signs the Image snapshot
    and timestamp. Every site's next bundle carries the new chain.
    """
    from airlock.hub.trust._update import update_trust

    with closing_home(open_home(home)) as hub_:
        update = update_trust(hub_, ceremony)
        if as_json:
            emit_json(update.to_dict())
            return
        Console().print(f"[green]trust updated[/green] from ceremony {update.ceremony_id or '?'}")
        rows = [
            [
                role.role,
                str(role.old_version),
                str(role.new_version) if role.changed else "unchanged",
                utc_iso(role.expires),
            ]
            for role in update.roles
        ]
        print_table("offline roles", ["role", "was", "now", "expires"], rows)


@hub.command("status")
@HOME_OPTION
@JSON_OPTION
def status(home: Path, as_json: bool) -> None:
    """Show role versions and expiries, sites, models and assignments."""
    from airlock.hub.catalog import _revocation_view as revocation_view
    from airlock.hub.sites._status import hub_status

    with closing_home(open_home(home)) as ctx:
        report = hub_status(ctx)
    if as_json:
        emit_json(report)
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
    print_table("sites", ["site", "last sequence", "director targets", "assigned"], site_rows)
    flags = {(m["name"], m["version"]): m for m in report["models"]}
    model_rows = [
        [
            m["name"],
            m["version"],
            m["tenant"] or "-",
            str(m["files"]),
            str(m["bytes"]),
            revocation_view.label(flags, m["name"], m["version"]),
        ]
        for m in report["models"]
    ]
    print_table("models", ["name", "version", "tenant", "files", "bytes", "status"], model_rows)
    if report["revocations"]:
        revoked_rows = [
            [f"{r['model']}@{r['version']}", r["revoked_at"], r["reason"]]
            for r in report["revocations"]
        ]
        print_table("revoked versions", ["version", "revoked at", "reason"], revoked_rows)


hub.add_command(db_group(ROLE, HOME_OPTION))  # `db status|upgrade`: the database's schema version
