"""``airlock spoke``: the group, its own commands (init, status), and the others.

The group's other commands live in sibling modules that never import this one;
they are registered here, in one place, at the end of the module, by where they
live: each is imported when it runs (or when help lists it), so that
``airlock spoke import`` does not load the web service or the simulator. This
module itself imports nothing heavy (``import``, in its own module, starts
opening the site's identity on a second thread first, and loads the importer
while it runs).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from airlock.bundles.cli import LazyGroup, closing_home, db_group, emit_json
from airlock.spoke.cli._options import HOME_OPTION, JSON_OPTION
from airlock.spoke.site._names import PASSPHRASE_ENV, ROLE

if TYPE_CHECKING:
    from rich.console import Console

SUBCOMMANDS = {
    "attestations": "airlock.spoke.cli._attestations:attestations",
    "export-metrics": "airlock.spoke.cli._metrics:export_metrics_command",
    "identity": "airlock.spoke.cli._identity:identity",
    "import": "airlock.spoke.cli._import:import_command",
    "node": "airlock.spoke.cli._nodes:node",
    "rollout": "airlock.spoke.cli._rollout:rollout",
    "serve": "airlock.spoke.cli._serve:serve",
    "simulate": "airlock.spoke.cli._simulate:simulate",
    "trust": "airlock.spoke.cli._trust:trust",
}
"""The commands of sibling modules, by name: where each lives (imported when used)."""


@click.group(cls=LazyGroup, lazy_commands=SUBCOMMANDS)
def spoke() -> None:
    """Site admin: import and verify bundles at an air-gapped site.

    \b
    Typical flow:
      airlock spoke init --site-id S --image-root … --director-root …
      (give site-identity.json to the hub; it registers the site)
      airlock spoke import /media/usb/bundle   (or one directory per medium)
      airlock spoke status
    The site passphrase comes from AIRLOCK_SPOKE_PASSPHRASE or a prompt.
    """


@spoke.command("init")
@HOME_OPTION
@click.option("--site-id", required=True, help="This site's id (a-z, 0-9, -).")
@click.option(
    "--image-root",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The Image repository's root metadata from the ceremony (e.g. image/1.root.json).",
)
@click.option(
    "--director-root",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The Director repository's root metadata from the ceremony.",
)
@click.option(
    "--allow-unencrypted",
    is_flag=True,
    help="Accept bundles the hub exported without encryption (off by default).",
)
@JSON_OPTION
def init(
    home: Path,
    site_id: str,
    image_root: Path,
    director_root: Path,
    allow_unencrypted: bool,
    as_json: bool,
) -> None:
    """Create a spoke home: site keys, trusted roots, empty state.

    Prints the site identity (age recipient and Ed25519 key) that the hub
    needs: it is also written to HOME/site-identity.json.
    """
    from rich.console import Console

    from airlock.bundles.cli import FittedTable
    from airlock.bundles.keys import env_or_prompt_secrets
    from airlock.spoke.site._init import init_spoke

    passphrase = env_or_prompt_secrets(PASSPHRASE_ENV, _new_passphrase)("passphrase")
    result = init_spoke(home, site_id, image_root, director_root, passphrase, not allow_unencrypted)
    if as_json:
        emit_json(result.to_dict(), sort_keys=False)
        return
    console = Console()
    console.print(f"[green]spoke home created:[/green] {result.home}")
    table = FittedTable(title=f"site {site_id}: give these to the hub (site-identity.json)")
    table.add_column("what")
    table.add_column("value", overflow="fold")
    table.add_row("age recipient", result.identity.age_recipient)
    table.add_row("signing key id", result.identity.signing_keyid)
    for repo, digest in result.root_sha256.items():
        table.add_row(f"{repo} root sha256", digest)
    console.print(table)
    console.print("Compare the root SHA-256 values with the ceremony record before trusting them.")


def _new_passphrase(secret_name: str) -> str:
    return str(
        click.prompt(f"New site {secret_name}", hide_input=True, confirmation_prompt=True, err=True)
    )


@spoke.command("status", short_help="Show trust state, staged models and assignments.")
@HOME_OPTION
@JSON_OPTION
def status(home: Path, as_json: bool) -> None:
    """Show trusted root versions, last sequence, staged models and assignments."""
    from rich.console import Console
    from rich.markup import escape

    from airlock.bundles.cli import FittedTable
    from airlock.spoke.site._home import SpokeHome
    from airlock.spoke.status import read_status

    with closing_home(SpokeHome(home)) as spoke_home:
        info = read_status(spoke_home)
    if as_json:
        emit_json(info.to_dict(), sort_keys=False)
        return
    console = Console()
    overview = FittedTable(title=f"spoke {info.site_id}", show_header=False)
    overview.add_column("what")
    overview.add_column("value")
    overview.add_row("Image root version", str(info.image_root_version))
    overview.add_row("Director root version", str(info.director_root_version))
    overview.add_row("Director targets version", str(info.director_targets_version))
    overview.add_row("last bundle sequence", str(info.last_sequence))
    overview.add_row("last bundle id", info.last_bundle_id or "-")
    overview.add_row("time floor", info.time_floor)
    days = info.cut_off.get("days_since_last_bundle")
    overview.add_row("days since the last bundle", "-" if days is None else str(days))
    overview.add_row("transit budget ends", info.cut_off.get("transit_budget_ends") or "-")
    overview.add_row("Image root expires", info.cut_off.get("image_root_expires") or "-")
    overview.add_row("Image targets expires", info.cut_off.get("image_targets_expires") or "-")
    last, acked = info.metrics["last_export"], info.metrics["hub_acknowledged"]
    overview.add_row(
        "last metrics export",
        f"{last['sequence']}, up to {last['window_end']}" if last else "none yet",
    )
    overview.add_row(
        "hub acknowledged",
        f"metrics {acked['sequence']} (audit log of {acked['log_size']} entries)"
        if acked
        else "nothing yet",
    )
    overview.add_row(*_attestation_row(info.attestations))
    if info.attestations["unsafe_allow_unattested"]:
        overview.add_row(*_unsafe_row(info.attestations))
    console.print(overview)
    for warning in info.cut_off.get("warnings", []):
        style = "bold red" if warning.startswith("STRONG") else "yellow"
        console.print(f"[{style}]warning:[/{style}] {warning}", highlight=False)
    staged = FittedTable(title="staged models")
    for column in ("model", "version", "files", "bytes", "sequence", "staged at", "status"):
        staged.add_column(column)
    for row in info.staged:
        staged.add_row(
            row["model"],
            row["version"],
            str(row["files"]),
            str(row["bytes"]),
            str(row["sequence"]),
            row["staged_at"],
            _version_status(row),
        )
    console.print(staged)
    if info.revoked:
        revoked = FittedTable(title="revoked by the hub (never run again)")
        for column in ("model", "version", "revoked at", "reason"):
            revoked.add_column(column)
        for item in info.revoked:
            revoked.add_row(
                item["model"], item["version"], item["revoked_at"], escape(item["reason"])
            )
        console.print(revoked)
    _print_gate(console, info.staged, info.runtime)
    assigned = FittedTable(title="assigned by the Director")
    for column in ("model", "version", "files", "staged"):
        assigned.add_column(column)
    for row in info.assigned:
        assigned.add_row(
            row["model"], row["version"], str(row["files"]), "yes" if row["staged"] else "no"
        )
    console.print(assigned)


def _attestation_row(policy: dict[str, Any]) -> tuple[str, str]:
    """The overview row saying when versions must carry in-toto attestations."""
    if policy["require_attestations"]:
        return "attestations", "required for every version (require_attestations)"
    if policy["layout_held"]:
        return "attestations", f"required: the site holds a signed layout ({policy['layout_held']})"
    return "attestations", "not required until the site holds a signed layout"


def _unsafe_row(policy: dict[str, Any]) -> tuple[str, str]:
    """The warning row for ``[policy] unsafe_allow_unattested``."""
    unsafe = policy["unsafe_allow_unattested"]
    families = "every family" if isinstance(unsafe, str) else ", ".join(unsafe)
    return "UNSAFE: unattested allowed", f"{families} (policy.unsafe_allow_unattested)"


def _version_status(row: dict[str, Any]) -> str:
    """``[red]REVOKED[/red] …``, ``rolled back …`` or ``ok`` for a staged version."""
    from rich.markup import escape

    parts = []
    if row.get("revoked"):
        revoked = row["revoked"]
        parts.append(f"[red]REVOKED[/red] {revoked['revoked_at']}: {escape(revoked['reason'])}")
    if row.get("rolled_back_at"):
        parts.append(f"[yellow]rolled back[/yellow] {row['rolled_back_at']}")
    return "; ".join(parts) or "ok"


def _print_gate(console: Console, staged: list[dict[str, Any]], runtime: dict[str, Any]) -> None:
    """The validation gate's tables: the site runtime, and each staged version's figures."""
    from rich.markup import escape

    from airlock.bundles.cli import FittedTable
    from airlock.spoke.status import gate_row

    declared = set(runtime["declared"])
    site = FittedTable(title="site runtime (validation gate)", show_header=False)
    site.add_column("what")
    site.add_column("value")
    for key, label, value in (
        ("onnxruntime", "onnxruntime", runtime["onnxruntime"]),
        ("max_opset", "newest ONNX opset", str(runtime["max_opset"])),
        ("providers", "execution providers", ", ".join(runtime["providers"])),
        ("architecture", "architecture", runtime["architecture"]),
        ("memory_mb", "memory", f"{runtime['memory_mb']} MB"),
    ):
        source = "declared in \\[runtime]" if key in declared else "detected"
        site.add_row(label, f"{escape(value)} ({source})")
    console.print(site)
    gate = FittedTable(title="validation gate")
    for column in ("model", "version", "gate", "result", "p95 latency", "thresholds"):
        gate.add_column(column)
    gate.add_column("compatibility")
    for row in staged:
        gate.add_row(row["model"], row["version"], *(escape(c) for c in gate_row(row["gate"])))
    console.print(gate)


spoke.add_command(db_group(ROLE, HOME_OPTION))  # `db status|upgrade`: the database's schema version
