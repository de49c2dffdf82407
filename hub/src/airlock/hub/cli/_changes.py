"""``airlock hub change …``: change requests, their approvers, and ServiceNow imports.

Guide: docs/integrator.md, "Change requests" and "ServiceNow import". The
commands call :mod:`airlock.hub.changes._desk`; an approver's
key passphrase comes from ``AIRLOCK_APPROVER_PASSPHRASE`` or a no-echo
prompt (never the hub passphrase).
"""

from __future__ import annotations

from pathlib import Path

import click
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from rich.console import Console

from airlock.bundles.cli import closing_home, emit_json, print_table
from airlock.bundles.errors import ConflictError
from airlock.bundles.keys import (
    OFFLINE_KDF_ITERATIONS,
    env_or_prompt_secrets,
    generate_signer,
    write_encrypted_key,
)
from airlock.bundles.release import CHANGE_STATES, CHANGE_TYPES
from airlock.hub.changes._desk import (
    add_change_approver,
    approve_change,
    create_change,
    get_change,
    import_servicenow,
    list_change_approvers,
    list_change_requests,
    move_change,
    reject_change,
)
from airlock.hub.changes._records import ChangeRequest
from airlock.hub.cli._options import HOME_OPTION, JSON_OPTION, open_home

APPROVER_PASSPHRASE_ENV = "AIRLOCK_APPROVER_PASSPHRASE"  # noqa: S105 - a variable name
_FILE = click.Path(dir_okay=False, path_type=Path)


def _approver_prompt(secret_name: str) -> str:
    return str(click.prompt(f"Approver key {secret_name}", hide_input=True, err=True))


@click.group("change")
def change() -> None:
    """Change requests: rollouts are assigned only under an approved one.

    \b
    Typical flow (the requester, then an approver, then the release engineer):
      airlock hub change create -d "Roll out iris@3" --start … --end … --covers plant-7:iris@3
      airlock hub change move CHG0000001 --to authorize
      airlock hub change approve CHG0000001 --as alice --key alice.pem
      airlock hub change move CHG0000001 --to implement
      airlock hub assign plant-7 iris 3 --plan plan.toml --change CHG0000001
    """


def _print_change(change: ChangeRequest) -> None:
    rows = [
        ["number", change.number],
        ["type", change.type],
        ["state", change.state],
        ["short description", change.short_description],
        ["justification", change.justification or "-"],
        ["requested by", change.requested_by],
        ["assignment group", change.assignment_group or "-"],
        ["approvers", ", ".join(change.approvers) or "(any registered approver)"],
        ["approval", change.approval],
        ["approved/rejected by", change.approved_by or "-"],
        ["at", change.approved_at or "-"],
        ["approval source", change.approval_source or "-"],
        ["rejection reason", change.rejection_reason or "-"],
        ["window", f"{change.planned_start} → {change.planned_end}"],
        ["covers", ", ".join(str(c) for c in change.covers) or "-"],
        ["source", change.source + (f" ({change.sys_id})" if change.sys_id else "")],
        ["created / updated", f"{change.created} / {change.updated}"],
    ]
    print_table(f"change request {change.number}", ["field", "value"], rows)


@change.command("create")
@HOME_OPTION
@click.option("--type", "change_type", type=click.Choice(CHANGE_TYPES), default="normal")
@click.option("-d", "--short-description", required=True, help="What the change does.")
@click.option("--justification", default="", help="Why it is needed.")
@click.option("--requested-by", help="The requester (default: AIRLOCK_PRINCIPAL or the user).")
@click.option("--group", "assignment_group", default="", help="The assignment group.")
@click.option(
    "--approver",
    "approvers",
    multiple=True,
    help="A person allowed to approve it (repeatable; default: any registered approver).",
)
@click.option("--start", required=True, help="Planned start, UTC: 2026-11-23T14:00:00Z.")
@click.option("--end", required=True, help="Planned end, UTC.")
@click.option(
    "--covers",
    multiple=True,
    metavar="SITE:NAME@VERSION",
    help="A rollout plan it covers (repeatable).",
)
@JSON_OPTION
def change_create(
    home: Path,
    change_type: str,
    short_description: str,
    justification: str,
    requested_by: str | None,
    assignment_group: str,
    approvers: tuple[str, ...],
    start: str,
    end: str,
    covers: tuple[str, ...],
    as_json: bool,
) -> None:
    """Create a change request (state New)."""
    with closing_home(open_home(home)) as ctx:
        created = create_change(
            ctx,
            type=change_type,
            short_description=short_description,
            justification=justification,
            requested_by=requested_by,
            assignment_group=assignment_group,
            approvers=approvers,
            planned_start=start,
            planned_end=end,
            covers=covers,
        )
    if as_json:
        emit_json(created.to_dict())
        return
    Console().print(f"[green]created change request {created.number}[/green] (state new)")


@change.command("show")
@HOME_OPTION
@click.argument("number")
@JSON_OPTION
def change_show(home: Path, number: str, as_json: bool) -> None:
    """Show change request NUMBER."""
    with closing_home(open_home(home)) as ctx:
        found = get_change(ctx, number)
    if as_json:
        emit_json(found.to_dict())
    else:
        _print_change(found)


@change.command("list")
@HOME_OPTION
@click.option("--state", type=click.Choice(CHANGE_STATES), help="Only changes in this state.")
@JSON_OPTION
def change_list(home: Path, state: str | None, as_json: bool) -> None:
    """List change requests."""
    with closing_home(open_home(home)) as ctx:
        found = [c for c in list_change_requests(ctx) if state in (None, c.state)]
    if as_json:
        emit_json([c.to_dict() for c in found])
        return
    rows = [
        [
            c.number,
            c.type,
            c.state,
            c.approval,
            f"{c.planned_start} → {c.planned_end}",
            ", ".join(str(p) for p in c.covers) or "-",
            c.short_description,
        ]
        for c in found
    ]
    print_table(
        "change requests",
        ["number", "type", "state", "approval", "window", "covers", "description"],
        rows,
    )


@change.command("approve")
@HOME_OPTION
@click.argument("number")
@click.option("--as", "approver", required=True, help="Your registered approver name.")
@click.option(
    "--key",
    type=_FILE,
    required=True,
    help=f"Your Ed25519 private key (encrypted PEM; passphrase: env {APPROVER_PASSPHRASE_ENV}).",
)
@JSON_OPTION
def change_approve(home: Path, number: str, approver: str, key: Path, as_json: bool) -> None:
    """Approve NUMBER (in authorize), signing the approval with your key.

    The hub checks the signature against your registered key; the requester
    may not approve their own change. The change moves to scheduled.
    """
    secrets = env_or_prompt_secrets(APPROVER_PASSPHRASE_ENV, _approver_prompt)
    with closing_home(open_home(home)) as ctx:
        approved = approve_change(ctx, number, approver, key, secrets)
    if as_json:
        emit_json(approved.to_dict())
        return
    Console().print(
        f"[green]{approved.number} approved by {approved.approved_by}[/green] "
        f"(state {approved.state}; key {approved.approval_keyid[:16]}…)"
    )


@change.command("reject")
@HOME_OPTION
@click.argument("number")
@click.option("--as", "approver", required=True, help="Your registered approver name.")
@click.option("--reason", required=True, help="Why it is rejected.")
@JSON_OPTION
def change_reject(home: Path, number: str, approver: str, reason: str, as_json: bool) -> None:
    """Reject NUMBER (in authorize); it goes back to new."""
    with closing_home(open_home(home)) as ctx:
        rejected = reject_change(ctx, number, approver, reason)
    if as_json:
        emit_json(rejected.to_dict())
        return
    Console().print(f"[yellow]{rejected.number} rejected by {approver}[/yellow]: {reason}")


@change.command("move")
@HOME_OPTION
@click.argument("number")
@click.option("--to", "to", type=click.Choice(CHANGE_STATES), required=True)
@JSON_OPTION
def change_move(home: Path, number: str, to: str, as_json: bool) -> None:
    """Move NUMBER forward to another state (or cancel it).

    New → Assess → Authorize → Scheduled → Implement → Review → Closed;
    canceled from any state before closed. Nothing goes past authorize
    without an approval, and nothing moves back.
    """
    with closing_home(open_home(home)) as ctx:
        moved = move_change(ctx, number, to)
    if as_json:
        emit_json(moved.to_dict())
        return
    Console().print(f"[green]{moved.number} is now {moved.state}[/green]")


@change.command("import")
@HOME_OPTION
@click.argument("path", type=_FILE)
@JSON_OPTION
def change_import(home: Path, path: Path, as_json: bool) -> None:
    """Import change requests from a ServiceNow JSON export (all or nothing).

    Approved records are signed by the hub on ServiceNow's behalf
    (approval source `servicenow`); see docs/integrator.md.
    """
    with closing_home(open_home(home)) as ctx:
        result = import_servicenow(ctx, path)
    if as_json:
        emit_json(result.to_dict())
        return
    Console().print(
        f"[green]imported {path}[/green]: {len(result.created)} new, "
        f"{len(result.updated)} updated, {len(result.unchanged)} unchanged"
    )


@change.command("keygen")
@click.option("--out", type=_FILE, required=True, help="The new private key file (e.g. alice.pem).")
@JSON_OPTION
def change_keygen(out: Path, as_json: bool) -> None:
    """Make an approver's Ed25519 key pair: OUT (encrypted) and OUT's .pub.pem.

    Run it on the approver's own machine; give the .pub.pem to the hub
    (`airlock hub change approver add NAME --key …pub.pem`). The passphrase
    comes from AIRLOCK_APPROVER_PASSPHRASE or a prompt.
    """
    public_path = out.with_name(out.name.removesuffix(".pem") + ".pub.pem")
    for path in (out, public_path):
        if path.exists():
            raise ConflictError(f"{path} already exists", hint="choose another --out")
    passphrase = env_or_prompt_secrets(APPROVER_PASSPHRASE_ENV, _new_passphrase)("passphrase")
    signer = generate_signer("ed25519")
    write_encrypted_key(out, signer, passphrase, OFFLINE_KDF_ITERATIONS)
    public_pem = signer._private_key.public_key().public_bytes(
        Encoding.PEM, PublicFormat.SubjectPublicKeyInfo
    )
    public_path.write_bytes(public_pem)
    if as_json:
        emit_json(
            {"key": str(out), "public_key": str(public_path), "keyid": signer.public_key.keyid}
        )
        return
    Console().print(f"[green]wrote {out} and {public_path}[/green] (key {signer.public_key.keyid})")


def _new_passphrase(secret_name: str) -> str:
    return str(
        click.prompt(
            f"New approver key {secret_name}", hide_input=True, confirmation_prompt=True, err=True
        )
    )


@change.group("approver")
def approver() -> None:
    """Register the people who approve change requests (their public keys)."""


@approver.command("add")
@HOME_OPTION
@click.argument("name")
@click.option("--key", type=_FILE, required=True, help="The approver's Ed25519 public key (PEM).")
@JSON_OPTION
def approver_add(home: Path, name: str, key: Path, as_json: bool) -> None:
    """Register approver NAME with their public key."""
    with closing_home(open_home(home)) as ctx:
        info = add_change_approver(ctx, name, key)
    if as_json:
        emit_json(info.to_dict())
        return
    Console().print(f"[green]approver {info.name} registered[/green] (key {info.keyid})")


@approver.command("list")
@HOME_OPTION
@JSON_OPTION
def approver_list(home: Path, as_json: bool) -> None:
    """List registered approvers."""
    with closing_home(open_home(home)) as ctx:
        found = list_change_approvers(ctx)
    if as_json:
        emit_json([a.to_dict() for a in found])
        return
    print_table(
        "change approvers",
        ["name", "key id", "added", "added by"],
        [[a.name, a.keyid, a.added, a.added_by] for a in found],
    )
